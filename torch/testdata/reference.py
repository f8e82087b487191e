"""Independent reference for torch/reference_test.go: computes the same
operations with PyTorch's Python API (torch.nn.functional) on the inputs the
Go test wrote, and prints the results as JSON."""
import json
import sys

import torch
import torch.nn.functional as F


def t(case, name):
    x = case[name]
    return torch.tensor(x["v"], dtype=torch.float64).reshape(x["shape"])


def compute(c):
    op = c["op"]
    if op == "interpolate":
        return F.interpolate(t(c, "x"), size=tuple(c["size"]), mode=c["mode"],
                             align_corners=c.get("align_corners"), antialias=c["antialias"])
    if op == "grid_sample":
        grid = F.affine_grid(t(c, "theta"), c["size"], align_corners=False)
        return F.grid_sample(t(c, "x"), grid, mode="bilinear", padding_mode="reflection",
                             align_corners=False)
    if op == "layer_norm":
        return F.layer_norm(t(c, "x"), c["norm_shape"], t(c, "w"), t(c, "b"), eps=1e-5)
    if op == "conv2d":
        return F.conv2d(t(c, "x"), t(c, "w"), t(c, "b"), stride=c["stride"], padding=c["padding"])
    if op == "attention":
        q, k, v = t(c, "q"), t(c, "k"), t(c, "v")
        s = q @ k.transpose(-2, -1) / (q.shape[-1] ** 0.5)
        if c.get("causal"):
            L, S = s.shape[-2], s.shape[-1]
            s = s.masked_fill(~torch.ones(L, S, dtype=torch.bool).tril(), float("-inf"))
        return torch.softmax(s, -1) @ v
    if op == "gelu":
        return F.gelu(t(c, "x"))
    if op == "logsigmoid":
        return F.logsigmoid(t(c, "x"))
    if op == "log_softmax":
        return F.log_softmax(t(c, "x"), dim=-1)
    if op == "normalize":
        return F.normalize(t(c, "x"), dim=-1)
    raise ValueError(op)


cases = json.load(open(sys.argv[1]))
out = {name: compute(c).flatten().tolist() for name, c in cases.items()}
json.dump(out, sys.stdout)
