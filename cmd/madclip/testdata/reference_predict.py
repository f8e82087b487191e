"""Independent end-to-end prediction for cmd/madclip's TestPredictMatchesPyTorch:
from image file to score, detection score and anomaly map, with PIL and
PyTorch only, as the authors' test pass computes them (RGB, bicubic resize,
/255 with no mean/std, the CLIP image tower tapped at the checkpoint's
layers, the adapters, the stored text features; the map and the detection
score averaged over layers).

    reference_predict.py WEIGHTS CHECKPOINT CASES_JSON

CASES_JSON is a list of {"path": image}; prints a list of
{"score", "det_score", "map"} (map flattened, row-major)."""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

here = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(here, "..", "..", "..", "model", "clip", "testdata"))
sys.path.insert(0, os.path.join(here, "..", "..", "..", "model", "testdata"))
import reference_clip  # noqa: E402


def adapter(ck, branch, layer, tap):
    w = lambda n: ck[f"adapters.{branch}.{layer}.{n}.weight"]
    h = F.layer_norm(F.leaky_relu(tap @ w("fc1").T, 0.01), (tap.shape[-1],), eps=1e-5)[:, 1:]
    det = F.normalize(F.leaky_relu(h @ w("det").T, 0.01), dim=-1)
    seg = F.normalize(F.leaky_relu(h @ w("seg").T, 0.01), dim=-1)
    return det, seg


def main():
    weights = reference_clip.read_safetensors(sys.argv[1])
    ck = reference_clip.read_safetensors(sys.argv[2])
    with open(sys.argv[2], "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(json.loads(f.read(n))["__metadata__"]["madclip"])
    cases = json.loads(sys.argv[3])
    layers, size = meta["model"]["layers"], meta["model"]["image_size"]
    heads = meta["backbone"]["clip_config"]["vision_heads"]
    torch.set_grad_enabled(False)
    tn, tab = ck["text_features"][0], ck["text_features"][1]
    out = []
    for c in cases:
        im = Image.open(c["path"]).convert("RGB").resize((size, size), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(im, dtype=np.float32).transpose(2, 0, 1).copy() / 255.0)[None]
        _, taps = reference_clip.vision(weights, x, "gelu", layers, heads)
        amap, det = 0, 0
        for li, tap in enumerate(taps):
            (dn, sn), (da, sa) = adapter(ck, "normal", li, tap), adapter(ck, "abnormal", li, tap)
            det = det + torch.sigmoid((da @ tab - da @ tn) - (dn @ tn - dn @ tab)).mean(1)
            s = torch.stack([sn @ tn - sn @ tab, sa @ tab - sa @ tn], 1)  # [1, 2, patches]
            g = int(round(s.shape[-1] ** 0.5))
            m = F.interpolate(s.reshape(1, 2, g, g), size=(size, size), mode="bilinear", align_corners=True)
            amap = amap + m.softmax(1)[:, 1]
        amap, det = amap / len(layers), det / len(layers)
        out.append({"score": amap.max().item(), "det_score": det.item(), "map": amap.flatten().tolist()})
    json.dump(out, sys.stdout)


main()
