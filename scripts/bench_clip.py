#!/usr/bin/env python3
"""PyTorch eager side of scripts/bench_clip.sh: the ViT-L/14-336 image tower
(model/clip/testdata/reference_clip.py, random weights) at 240 px, forward
under no_grad, fp32 and (on CUDA) bf16 autocast. Prints one line per run:
PRECISION BATCH IMAGES_PER_SECOND."""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model", "clip", "testdata"))
import reference_clip  # noqa: E402

dev = torch.device("cuda" if torch.cuda.is_available() and os.environ.get("MADCLIP_BENCH_DEVICE") != "cpu" else "cpu")
spec = os.environ.get("MADCLIP_BENCH_BATCHES") or ("16,64" if dev.type == "cuda" else "2")
batches = [int(b) for b in spec.split(",")]
min_time = float(os.environ.get("MADCLIP_BENCH_SECONDS", "3"))
torch.manual_seed(1)
m = reference_clip.Vision(336, 14, 1024, 24, 16, 768, "gelu")
for p in m.parameters():
    torch.nn.init.normal_(p, std=0.02)
m = m.to(dev).eval()


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


precisions = ["fp32"] + (["bf16"] if dev.type == "cuda" else [])
for prec in precisions:
    for batch in batches:
        x = torch.rand(batch, 3, 240, 240, device=dev)
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=prec == "bf16"):
            m(x)
            sync()
            n, t0 = 0, time.perf_counter()
            while True:
                m(x)
                n += 1
                sync()
                el = time.perf_counter() - t0
                if el >= min_time and n >= 2:
                    break
        print(f"{prec} {batch} {batch * n / el:.2f}", flush=True)
