"""Independent CLIP forward in PyTorch for model/clip's tests: reads the
safetensors weights and inputs the Go test wrote (parsed here by hand, no
safetensors package), runs the towers with torch.nn.functional and prints the
results as JSON."""
import json
import math
import struct
import sys

import numpy as np
import torch
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


def block(x, w, p, heads, act, causal):
    B, L, D = x.shape
    h = F.layer_norm(x, (D,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], 1e-5)
    q, k, v = F.linear(h, w[p + "attn.in_proj_weight"], w[p + "attn.in_proj_bias"]).chunk(3, dim=-1)
    split = lambda t: t.reshape(B, L, heads, D // heads).transpose(1, 2)
    q, k, v = split(q), split(k), split(v)
    s = q @ k.transpose(-1, -2) / math.sqrt(D // heads)
    if causal:
        s = s + torch.full((L, L), float("-inf")).triu(1)
    a = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, L, D)
    x = x + F.linear(a, w[p + "attn.out_proj.weight"], w[p + "attn.out_proj.bias"])
    h = F.layer_norm(x, (D,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], 1e-5)
    h = F.linear(h, w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"])
    h = F.gelu(h) if act == "gelu" else h * torch.sigmoid(1.702 * h)
    return x + F.linear(h, w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"])


def layers(w, prefix):
    return len({k[len(prefix):].split(".")[0] for k in w if k.startswith(prefix)})


def vision(w, img, act, taps, heads):
    W, _, P, _ = w["visual.conv1.weight"].shape
    x = F.conv2d(img, w["visual.conv1.weight"], stride=P)
    g = x.shape[-1]
    x = x.flatten(2).transpose(1, 2)
    pos = w["visual.positional_embedding"]
    G = int(round(math.sqrt(pos.shape[0] - 1)))
    if G != g:
        grid = pos[1:].reshape(1, G, G, W).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(g, g), mode="bicubic", align_corners=False, antialias=True)
        pos = torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(g * g, W)])
    cls = w["visual.class_embedding"].reshape(1, 1, W).expand(x.shape[0], 1, W)
    x = torch.cat([cls, x], 1) + pos
    x = F.layer_norm(x, (W,), w["visual.ln_pre.weight"], w["visual.ln_pre.bias"], 1e-5)
    tapped = []
    for i in range(layers(w, "visual.transformer.resblocks.")):
        x = block(x, w, f"visual.transformer.resblocks.{i}.", heads, act, False)
        if i + 1 in taps:
            tapped.append(x)
    pooled = F.layer_norm(x[:, 0], (W,), w["visual.ln_post.weight"], w["visual.ln_post.bias"], 1e-5)
    return pooled @ w["visual.proj"], tapped


def text(w, ids, act, causal, heads):
    D = w["ln_final.weight"].shape[0]
    x = w["token_embedding.weight"][ids] + w["positional_embedding"]
    for i in range(layers(w, "transformer.resblocks.")):
        x = block(x, w, f"transformer.resblocks.{i}.", heads, act, causal)
    x = F.layer_norm(x, (D,), w["ln_final.weight"], w["ln_final.bias"], 1e-5)
    return x[torch.arange(x.shape[0]), ids.argmax(-1)] @ w["text_projection"]


def main():
    w = read_safetensors(sys.argv[1])
    inp = read_safetensors(sys.argv[2])
    cfg = json.loads(sys.argv[3])
    torch.set_grad_enabled(False)
    img, tapped = vision(w, inp["images"], cfg["act"], cfg["taps"], cfg["vision_heads"])
    txt = text(w, inp["ids"], cfg["act"], cfg["causal"], cfg["text_heads"])
    ni, nt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = w["logit_scale"].exp() * ni @ nt.t()
    out = {"image": img.flatten().tolist(), "text": txt.flatten().tolist(),
           "logits": logits.flatten().tolist(),
           "taps": [t.flatten().tolist() for t in tapped]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
