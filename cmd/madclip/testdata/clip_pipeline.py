"""Reference for `madclip clip`: OpenAI's preprocessing done with PIL and
torch (shorter side to the model's resolution with PIL's bicubic resize,
centre crop, /255, CLIP's mean and std), then the independent CLIP forward of
model/clip/testdata/reference_clip.py. Prints the L2-normalised image
embeddings as JSON.

    clip_pipeline.py WEIGHTS.safetensors PX HEADS IMAGE..."""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "model", "clip", "testdata"))
import reference_clip  # noqa: E402

MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).reshape(3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).reshape(3, 1, 1)


def preprocess(path, px):
    im = Image.open(path).convert("RGB")
    w, h = im.size
    if w < h:
        size = (px, int(px * h / w))
    else:
        size = (int(px * w / h), px)
    im = im.resize(size, Image.BICUBIC)
    w, h = im.size
    top, left = int(round((h - px) / 2.0)), int(round((w - px) / 2.0))
    im = im.crop((left, top, left + px, top + px))
    x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)
    return (x - MEAN) / STD


def main():
    w = reference_clip.read_safetensors(sys.argv[1])
    px, heads = int(sys.argv[2]), int(sys.argv[3])
    x = torch.stack([preprocess(p, px) for p in sys.argv[4:]])
    with torch.no_grad():
        img, _ = reference_clip.vision(w, x, "quick_gelu", [], heads)
    json.dump(F.normalize(img, dim=-1).tolist(), sys.stdout)


main()
