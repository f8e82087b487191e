"""Independent CLIP in PyTorch for model/clip's tests and benchmarks, built
from standard nn modules (nn.MultiheadAttention, nn.LayerNorm, nn.Linear,
nn.Conv2d) in OpenAI's layout, so that OpenAI's tensor names load into it with
load_state_dict(strict=True).

    reference_clip.py WEIGHTS INPUTS CONFIG_JSON   (the Go test's entry point)

reads the safetensors files the Go test wrote (parsed here by hand, no
safetensors package) and prints the embeddings, logits and taps as JSON."""
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DT = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "F16": np.float16}


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        arr = np.frombuffer(body[b:e], dtype=DT[v["dtype"]]).reshape(v["shape"])
        out[k] = torch.from_numpy(arr.copy())
    return out


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    def __init__(self, width, heads, act, mask):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", nn.GELU() if act == "gelu" else QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))
        self.ln_2 = nn.LayerNorm(width)
        self.mask = mask

    def forward(self, x):  # x: [L, B, D], sequence first as OpenAI's model
        h = self.ln_1(x)
        m = self.mask.to(x.dtype) if self.mask is not None else None
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=m)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, act, mask=None):
        super().__init__()
        self.resblocks = nn.Sequential(*[Block(width, heads, act, mask) for _ in range(layers)])

    def forward(self, x, taps=()):
        out = []
        for i, blk in enumerate(self.resblocks):
            x = blk(x)
            if i + 1 in taps:
                out.append(x)
        return x, out


class Vision(nn.Module):
    def __init__(self, px, patch, width, layers, heads, embed, act):
        super().__init__()
        grid = px // patch
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.positional_embedding = nn.Parameter(torch.empty(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads, act)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.empty(width, embed))

    def forward(self, x, taps=()):
        x = self.conv1(x)
        B, W, g, _ = x.shape
        x = x.reshape(B, W, g * g).permute(0, 2, 1)
        pos = self.positional_embedding
        G = int(round(math.sqrt(pos.shape[0] - 1)))
        if G != g:
            grid = pos[1:].reshape(1, G, G, W).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(g, g), mode="bicubic", align_corners=False, antialias=True)
            pos = torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(g * g, W)])
        x = torch.cat([self.class_embedding.to(x.dtype).expand(B, 1, W), x], 1) + pos.to(x.dtype)
        x = self.ln_pre(x).permute(1, 0, 2)
        x, tapped = self.transformer(x, taps)
        x = x.permute(1, 0, 2)
        return self.ln_post(x[:, 0]) @ self.proj, [t.permute(1, 0, 2) for t in tapped]


class CLIP(nn.Module):
    def __init__(self, cfg, act="quick_gelu", causal=True):
        super().__init__()
        self.visual = Vision(cfg["image_size"], cfg["patch"], cfg["vision_width"], cfg["vision_layers"],
                             cfg["vision_heads"], cfg["embed"], act)
        ctx, width = cfg["context"], cfg["text_width"]
        mask = torch.full((ctx, ctx), float("-inf")).triu(1) if causal else None
        self.transformer = Transformer(width, cfg["text_layers"], cfg["text_heads"], act, mask)
        self.token_embedding = nn.Embedding(cfg["vocab"], width)
        self.positional_embedding = nn.Parameter(torch.empty(ctx, width))
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, cfg["embed"]))
        self.logit_scale = nn.Parameter(torch.tensor(0.0))

    def encode_text(self, ids):
        x = self.token_embedding(ids) + self.positional_embedding
        x, _ = self.transformer(x.permute(1, 0, 2))
        x = self.ln_final(x.permute(1, 0, 2))
        return x[torch.arange(x.shape[0]), ids.argmax(-1)] @ self.text_projection


def config_from(w, heads_v, heads_t):
    grid = int(round(math.sqrt(w["visual.positional_embedding"].shape[0] - 1)))
    patch = w["visual.conv1.weight"].shape[-1]
    return {"image_size": grid * patch, "patch": patch, "vision_width": w["visual.conv1.weight"].shape[0],
            "vision_layers": len({k.split(".")[3] for k in w if k.startswith("visual.transformer.resblocks.")}),
            "vision_heads": heads_v, "embed": w["text_projection"].shape[1],
            "context": w["positional_embedding"].shape[0], "vocab": w["token_embedding.weight"].shape[0],
            "text_width": w["ln_final.weight"].shape[0],
            "text_layers": len({k.split(".")[2] for k in w if k.startswith("transformer.resblocks.")}),
            "text_heads": heads_t}


def load(w, heads_v, heads_t, act="quick_gelu", causal=True):
    m = CLIP(config_from(w, heads_v, heads_t), act, causal)
    m.load_state_dict(w, strict=True)
    return m.eval()


def vision(w, images, act, taps, heads):
    """Image embeddings and taps of weights w (used by cmd/madclip's test)."""
    m = load(w, heads, 1, act)
    return m.visual(images, taps)


def main():
    w = read_safetensors(sys.argv[1])
    inp = read_safetensors(sys.argv[2])
    cfg = json.loads(sys.argv[3])
    torch.set_grad_enabled(False)
    m = load(w, cfg["vision_heads"], cfg["text_heads"], cfg["act"], cfg["causal"])
    img, tapped = m.visual(inp["images"], cfg["taps"])
    txt = m.encode_text(inp["ids"])
    ni, nt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = m.logit_scale.exp() * ni @ nt.t()
    json.dump({"image": img.flatten().tolist(), "text": txt.flatten().tolist(),
               "logits": logits.flatten().tolist(), "taps": [t.flatten().tolist() for t in tapped]}, sys.stdout)


if __name__ == "__main__":
    main()
