"""scikit-learn's AUROC, average precision, F1-max, Youden's J and the
confusion matrix at 0.3 for metrics_test.go.

    reference_metrics.py CASES.json   (a list of {"scores": [...], "labels": [...]})"""
import json
import sys

import numpy as np
from sklearn.metrics import (average_precision_score, confusion_matrix, precision_recall_curve, roc_auc_score,
                             roc_curve)

out = []
for c in json.load(open(sys.argv[1])):
    y, s = np.array(c["labels"], dtype=bool), np.array(c["scores"], dtype=np.float32)
    p, r, _ = precision_recall_curve(y, s)
    f1 = np.max(np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-300), 0))
    fpr, tpr, _ = roc_curve(y, s)
    tn, fp, fn, tp = confusion_matrix(y, s >= np.float32(0.3), labels=[False, True]).ravel()
    out.append({"auroc": roc_auc_score(y, s), "ap": average_precision_score(y, s), "f1": float(f1),
                "youden": float(np.max(tpr - fpr)), "confusion": [int(tp), int(fp), int(tn), int(fn)]})
json.dump(out, sys.stdout)
