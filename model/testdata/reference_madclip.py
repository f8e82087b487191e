"""Independent MadCLIP computation for model/madclip_test.go, in PyTorch
with nn modules: the adapters, the prompt assembly and text features (through
model/clip/testdata/reference_clip.py's text tower, no causal mask), the
scores, the anomaly map and the detection score.

    reference_madclip.py TENSORS.safetensors CONFIG_JSON"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "clip", "testdata"))
import reference_clip  # noqa: E402


class Adapter(nn.Module):
    def __init__(self, width, embed):
        super().__init__()
        self.fc1 = nn.Linear(width, width, bias=False)
        self.det = nn.Linear(width, embed, bias=False)
        self.seg = nn.Linear(width, embed, bias=False)
        self.norm = nn.LayerNorm(width, elementwise_affine=False)

    def forward(self, x):
        h = self.norm(F.leaky_relu(self.fc1(x), 0.01))[:, 1:]
        det = F.normalize(F.leaky_relu(self.det(h), 0.01), dim=-1)
        seg = F.normalize(F.leaky_relu(self.seg(h), 0.01), dim=-1)
        return det, seg


def main():
    t = reference_clip.read_safetensors(sys.argv[1])
    cfg = json.loads(sys.argv[2])
    clip_w = {k[len("clip."):]: v for k, v in t.items() if k.startswith("clip.")}
    model = reference_clip.load(clip_w, cfg["vision_heads"], cfg["text_heads"], "gelu", causal=False)
    torch.set_grad_enabled(False)
    width, embed = clip_w["visual.conv1.weight"].shape[0], clip_w["text_projection"].shape[1]

    # Prompts: rebuild each layout from the "X×8 {phrase}." ids.
    n_ctx, rows, eots = 8, [], []
    for c, cls in enumerate(["normal", "abnormal"]):
        for i in range(7):
            ids = t[f"ids.{cls}.{i}"]
            plen = int(t[f"plen.{cls}.{i}"])
            emb = model.token_embedding(ids)
            sot, phrase, rest = emb[:1], emb[1 + n_ctx:1 + n_ctx + plen], emb[1 + n_ctx + plen:]
            eot = int(ids.argmax())
            for j, pos in enumerate(["end", "front", "middle"]):
                ctx = t[f"madclip.prompts.{cls}"][i, j]  # [phrases, positions, 8, width]
                if pos == "end":
                    rows.append(torch.cat([sot, ctx, phrase, rest]))
                elif pos == "front":
                    rows.append(torch.cat([sot, phrase, ctx, rest]))
                else:
                    rows.append(torch.cat([sot, ctx[:4], phrase, ctx[4:], rest]))
                eots.append(eot)
    x = torch.stack(rows) + model.positional_embedding
    x, _ = model.transformer(x.permute(1, 0, 2))
    x = model.ln_final(x.permute(1, 0, 2))
    feats = x[torch.arange(len(eots)), torch.tensor(eots)] @ model.text_projection
    text = F.normalize(feats.reshape(2, 21, -1).mean(1), dim=-1)
    if "text" in t:  # the Go side may fix the text features instead
        text = t["text"]

    out = {"text": text.flatten().tolist(), "det": [], "seg": []}
    amap, dscore = 0, 0
    for li in range(cfg["layers"]):
        ad = {}
        for b in ["normal", "abnormal"]:
            a = Adapter(width, embed)
            a.load_state_dict({"fc1.weight": t[f"madclip.adapters.{b}.{li}.fc1.weight"],
                               "det.weight": t[f"madclip.adapters.{b}.{li}.det.weight"],
                               "seg.weight": t[f"madclip.adapters.{b}.{li}.seg.weight"]})
            ad[b] = a(t[f"tap.{li}"])
        tn, tab = text[0], text[1]
        for head, k in (("det", 0), ("seg", 1)):
            on, oab = ad["normal"][k], ad["abnormal"][k]
            s = torch.stack([on @ tn - on @ tab, oab @ tab - oab @ tn], -1)
            out[head].append(s.flatten().tolist())
            if head == "seg":
                B, P, _ = s.shape
                g = int(round(P ** 0.5))
                m = F.interpolate(s.permute(0, 2, 1).reshape(B, 2, g, g), size=(cfg["size"], cfg["size"]),
                                  mode="bilinear", align_corners=True)
                amap = amap + m.softmax(1)[:, 1]
            else:
                dscore = dscore + torch.sigmoid(s[..., 1] - s[..., 0]).mean(1)
    out["map"] = amap.flatten().tolist()
    out["score"] = dscore.flatten().tolist()
    json.dump(out, sys.stdout)


main()
