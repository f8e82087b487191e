"""Independent PyTorch computation of MadCLIP training steps for
train/step_test.go: the 42 prompts through CLIP's text tower (no causal
mask, exact GELU) with the context vectors as leaves, the adapters on the
given taps, the detection, focal and dice losses of every layer summed with
weight 1, backward, and torch.optim.Adam (lr 1e-3, betas 0.5 and 0.999);
the paper's ablations as CONFIG_JSON asks: "shared" adapters for both
branches, a "common" head for detection and segmentation, "nosub" scores,
the "softmax" detection loss; and the options "causal" (the prompts with
CLIP's causal mask) and "quick_gelu" (CLIP's own activation).

    reference_step.py TENSORS.safetensors STEPS CONFIG_JSON

Prints {"loss": [per step], "final": {name: flattened values}}."""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "model", "clip", "testdata"))
import reference_clip  # noqa: E402

EOT = 49407


def text_features(clip, layout, ctx):
    """layout [42, 77]: token ids, -1 where the next context vector goes;
    rows by class, phrase, then position."""
    rows, eots = [], []
    for r, ids in enumerate(layout.tolist()):
        c, i, pos = r // 21, (r % 21) // 3, r % 3
        vectors = iter(ctx[c][i, pos])
        rows.append(torch.stack([next(vectors) if t < 0 else clip.token_embedding.weight[t] for t in ids]))
        eots.append(ids.index(EOT))
    x = torch.stack(rows) + clip.positional_embedding
    x, _ = clip.transformer(x.permute(1, 0, 2))
    x = clip.ln_final(x.permute(1, 0, 2))
    f = x[torch.arange(len(eots)), torch.tensor(eots)] @ clip.text_projection
    return F.normalize(f.reshape(2, 21, -1).mean(1), dim=-1)


def adapter(p, branch, layer, tap, cfg):
    """The adapter's detection and segmentation tokens; with "shared" both
    branches are one adapter, with "common" one head serves both tasks."""
    if cfg.get("shared"):
        branch = "shared"
    w = lambda n: p[f"adapters.{branch}.{layer}.{n}.weight"]
    h = F.layer_norm(F.leaky_relu(tap @ w("fc1").T, 0.01), (tap.shape[-1],), eps=1e-5)[:, 1:]
    det = F.normalize(F.leaky_relu(h @ w("det").T, 0.01), dim=-1)
    if cfg.get("common"):
        return det, det
    return det, F.normalize(F.leaky_relu(h @ w("seg").T, 0.01), dim=-1)


def pair(on, oab, tn, tab, cfg):
    """[S_n, S_ab] per patch; with "nosub" without the opposite class."""
    if cfg.get("nosub"):
        return on @ tn, oab @ tab
    return on @ tn - on @ tab, oab @ tab - oab @ tn


def loss(p, clip, t, cfg):
    layers, size = cfg["layers"], cfg["size"]
    tn, tab = text_features(clip, t["layout"], [p["prompts.normal"], p["prompts.abnormal"]])
    y, masks = t["labels"], t["masks"]
    sign = (2 * y - 1)[:, None]
    total = 0
    for li in range(layers):
        (dn, sn), (da, sa) = adapter(p, "normal", li, t[f"tap.{li}"], cfg), adapter(p, "abnormal", li, t[f"tap.{li}"], cfg)
        det_n, det_ab = pair(dn, da, tn, tab, cfg)
        if cfg.get("softmax"):
            # The softmax ablation: probabilities of the pair, their means
            # over patches fed to BCE-with-logits as the authors' code does.
            prob = torch.stack([det_n, det_ab], -1).softmax(-1)
            n, a = prob[..., 0].mean(1), prob[..., 1].mean(1)
            total = total + F.binary_cross_entropy_with_logits(1 - n, y) + F.binary_cross_entropy_with_logits(a, y)
        else:
            # Detection: each branch's patch scores through a sigmoid, as BCE.
            total = total - (F.logsigmoid(-sign * det_n).mean(1) + F.logsigmoid(sign * det_ab).mean(1)).mean()
        # Segmentation: the two branches' maps, upsampled, softmax over them.
        s = torch.stack(pair(sn, sa, tn, tab, cfg), 1)
        g = int(round(s.shape[-1] ** 0.5))
        prob = F.interpolate(s.reshape(-1, 2, g, g), size=(size, size), mode="bilinear", align_corners=True).softmax(1)
        onehot = torch.stack([1 - masks, masks], 1).clamp(1e-5, 1 - 1e-5)
        pt = (onehot * prob).sum(1) + 1e-5
        total = total + (-(1 - pt) ** 2 * pt.log()).mean()
        pa = prob[:, 1]
        total = total + (1 - (2 * (pa * masks).sum((1, 2)) + 1) / (pa.sum((1, 2)) + masks.sum((1, 2)) + 1)).mean()
    return total


def main():
    t = reference_clip.read_safetensors(sys.argv[1])
    steps = int(sys.argv[2])
    cfg = json.loads(sys.argv[3])
    clip_w = {k[len("clip."):]: v for k, v in t.items() if k.startswith("clip.")}
    act = "quick_gelu" if cfg.get("quick_gelu") else "gelu"
    clip = reference_clip.load(clip_w, cfg["vision_heads"], cfg["text_heads"], act, causal=bool(cfg.get("causal")))
    for q in clip.parameters():
        q.requires_grad_(False)
    p = {k[len("init."):]: v.clone().requires_grad_() for k, v in t.items() if k.startswith("init.")}
    opt = torch.optim.Adam(p.values(), lr=1e-3, betas=(0.5, 0.999), eps=1e-8)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        total = loss(p, clip, t, cfg)
        total.backward()
        opt.step()
        losses.append(total.item())
    json.dump({"loss": losses, "final": {k: v.detach().flatten().tolist() for k, v in p.items()}}, sys.stdout)


main()
