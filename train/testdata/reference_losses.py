"""Independent PyTorch computation of MadCLIP's losses for
train/losses_test.go: value and gradients with respect to the scores.

    reference_losses.py TENSORS.safetensors CONFIG_JSON"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "model", "clip", "testdata"))
import reference_clip  # noqa: E402  (its safetensors reader)


def det_loss(s, y):
    l = (2 * y - 1).unsqueeze(1)
    return -(F.logsigmoid(-l * s[..., 0]).mean(1) + F.logsigmoid(l * s[..., 1]).mean(1)).mean()


def softmax_loss(s, y):
    # The authors' loss_type=softmax: BCE-with-logits applied to the mean
    # softmax probabilities of each class over the patches.
    p = s.softmax(-1)
    bce = torch.nn.BCEWithLogitsLoss()
    return bce(1 - p[..., 0].mean(1), y) + bce(p[..., 1].mean(1), y)


def focal(p, m):
    onehot = torch.stack([1 - m, m], 1).clamp(1e-5, 1 - 1e-5)
    pt = (onehot * p).sum(1) + 1e-5
    return (-(1 - pt) ** 2 * pt.log()).mean()


def dice(p, m):
    inter = (p * m).sum((1, 2))
    return (1 - (2 * inter + 1) / (p.sum((1, 2)) + m.sum((1, 2)) + 1)).mean()


def main():
    t = reference_clip.read_safetensors(sys.argv[1])
    cfg = json.loads(sys.argv[2])
    y, masks = t["labels"].double(), t["masks"].double()
    det = [t[f"det.{i}"].double().requires_grad_() for i in range(cfg["layers"])]
    seg = [t[f"seg.{i}"].double().requires_grad_() for i in range(cfg["layers"])]
    out = {}
    for name, use_masks, soft in (("full", True, False), ("nomask", False, False), ("softmax", True, True)):
        total = 0
        for d, s in zip(det, seg):
            total = total + (softmax_loss(d, y) if soft else det_loss(d, y))
            if use_masks:
                B, P, _ = s.shape
                g = int(round(P ** 0.5))
                logits = F.interpolate(s.permute(0, 2, 1).reshape(B, 2, g, g), size=(cfg["size"], cfg["size"]),
                                       mode="bilinear", align_corners=True)
                p = logits.softmax(1)
                total = total + focal(p, masks) + dice(p[:, 1], masks)
        grads = torch.autograd.grad(total, det + seg, allow_unused=True)
        out[name] = {"loss": total.item(),
                     "grads": [g.flatten().tolist() if g is not None else None for g in grads]}
    json.dump(out, sys.stdout)


main()
