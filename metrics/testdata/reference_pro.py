"""An independent per-region overlap (PRO) and AUPRO for metrics_test.go,
written from the definition: regions are scipy.ndimage.label's 8-connected
components of each mask; at every distinct score, PRO is the mean over
regions of the fraction of the region at or above it, FPR the fraction of
normal pixels at or above it; AUPRO integrates PRO over FPR in [0, limit]
with numpy's trapezoid, interpolating at the limit, divided by limit.

    reference_pro.py CASES.json  (a list of {"w", "h", "scores": [[...]], "masks": [[...]], "limit"})"""
import json
import sys

import numpy as np
from scipy import ndimage

out = []
for c in json.load(open(sys.argv[1])):
    w, h, limit = c["w"], c["h"], c["limit"]
    maps = [np.array(s, dtype=np.float32).reshape(h, w) for s in c["scores"]]
    gts = [np.array(m, dtype=bool).reshape(h, w) for m in c["masks"]]
    regions = []  # (image index, boolean mask of the region)
    for i, g in enumerate(gts):
        lab, n = ndimage.label(g, structure=np.ones((3, 3)))
        regions += [(i, lab == k) for k in range(1, n + 1)]
    normal = np.concatenate([(~g).ravel() for g in gts])
    flat = np.concatenate([m.ravel() for m in maps])
    fprs, pros = [0.0], [0.0]
    for t in np.unique(flat)[::-1]:
        fprs.append(float(np.sum((flat >= t) & normal) / np.sum(normal)))
        pros.append(float(np.mean([np.mean(maps[i][r] >= t) for i, r in regions])))
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs <= limit
    x, y = list(fprs[keep]), list(pros[keep])
    if x[-1] < limit and len(x) < len(fprs):
        k = len(x)
        x.append(limit)
        y.append(pros[k - 1] + (pros[k] - pros[k - 1]) * (limit - fprs[k - 1]) / (fprs[k] - fprs[k - 1]))
    trapz = getattr(np, "trapezoid", None) or np.trapz
    out.append({"aupro": float(trapz(y, x) / limit), "regions": len(regions), "points": len(fprs)})
json.dump(out, sys.stdout)
