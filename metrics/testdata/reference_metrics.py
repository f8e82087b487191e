"""scikit-learn's AUROC, average precision and F1-max for metrics_test.go.

    reference_metrics.py CASES.json   (a list of {"scores": [...], "labels": [...]})"""
import json
import sys

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

out = []
for c in json.load(open(sys.argv[1])):
    y, s = np.array(c["labels"], dtype=bool), np.array(c["scores"], dtype=np.float32)
    p, r, _ = precision_recall_curve(y, s)
    f1 = np.max(np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-300), 0))
    out.append({"auroc": roc_auc_score(y, s), "ap": average_precision_score(y, s), "f1": float(f1)})
json.dump(out, sys.stdout)
