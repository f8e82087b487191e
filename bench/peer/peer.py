#!/usr/bin/env python3
"""madclip beside PyTorch, the same work in both, taking turns on one machine.

This process drives two workers over pipes: bench/peer (Go) is madclip's
side, this script with --serve the PyTorch side. For each task both sides set up, run once
to warm up, then run ROUNDS times alternately (madclip first in odd rounds,
PyTorch first in even ones), so that a busy machine slows both alike. Each run
reports its time and the peak resident memory while it ran (VmHWM, reset
before each run). The table gives min and median times, their ratios
(madclip ÷ PyTorch: below 1 is faster), and the peak memory of each side.

The PyTorch side is written here with standard nn modules
(model/clip/testdata/reference_clip.py's CLIP; nn.Linear adapters; the
losses in plain torch), random weights as on madclip's side:
  step-tiny, step-vitl  one MadCLIP training step, batch 16 with masks, from a
                        cache of 32 images' tapped features (tiny preset or
                        ViT-L/14 shapes): the 42 prompts through the text
                        tower, 8 adapters, detection + focal + Dice losses,
                        backward, Adam
  forward               the ViT-L/14 image tower at 240 px, batch 2, no graph
  cache                 tapped features (blocks 6, 12, 18, 24) of 8 images
  predict-vitl, predict-tiny
                        every PNG of a folder scored, batch 16, decoding and
                        bicubic resizing included (--images of them)

    peer.py --go bin/madclip-peer [--tasks a,b] [--rounds N] [--images N]

Each task runs in a fresh pair of processes (this script with --serve is the
PyTorch one), so that no task inherits another's memory."""
import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "model", "clip", "testdata"))
import reference_clip  # noqa: E402

PRESETS = {
    "tiny": dict(image_size=56, patch=14, vision_width=128, vision_layers=4, vision_heads=2, embed=64,
                 context=77, vocab=49408, text_width=128, text_layers=2, text_heads=2),
    "ViT-L/14-336": dict(image_size=336, patch=14, vision_width=1024, vision_layers=24, vision_heads=16, embed=768,
                         context=77, vocab=49408, text_width=768, text_layers=12, text_heads=12),
}
SIZE = 240


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def build_clip(preset):
    torch.manual_seed(1)
    m = reference_clip.CLIP(PRESETS[preset], act="gelu", causal=False)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.02)
    return m.eval()


def taps_of(n_layers):
    return [n_layers * (i + 1) // 4 for i in range(4)]


class Adapter(nn.Module):
    def __init__(self, width, embed):
        super().__init__()
        self.fc1 = nn.Linear(width, width, bias=False)
        self.det = nn.Linear(width, embed, bias=False)
        self.seg = nn.Linear(width, embed, bias=False)

    def forward(self, x):  # x: [B, 1+P, W]
        h = F.layer_norm(F.leaky_relu(self.fc1(x), 0.01), (x.shape[-1],))[:, 1:]
        return (F.normalize(F.leaky_relu(self.det(h), 0.01), dim=-1),
                F.normalize(F.leaky_relu(self.seg(h), 0.01), dim=-1))


class Prompts(nn.Module):
    """CoOp-style class-specific contexts: per class 7 phrases × 3 positions ×
    8 vectors, assembled around frozen token embeddings of "X×8 {phrase}."."""

    def __init__(self, clip):
        super().__init__()
        d = clip.ln_final.weight.shape[0]
        g = torch.Generator().manual_seed(5)
        self.ctx = nn.ParameterDict()
        self.fixed, self.eot, self.plen = {}, {}, {}
        for cls in ("normal", "abnormal"):
            for pos in ("end", "front", "middle"):
                self.ctx[f"{cls}_{pos}"] = nn.Parameter(torch.randn(7, 8, d, generator=g) * 0.02)
            plen = [1, 2, 2, 2, 3, 3, 3]  # phrase lengths in tokens, as for "Brain"
            ids = torch.zeros(7, 77, dtype=torch.long)
            for i, n in enumerate(plen):
                row = [49406] + [343] * 8 + list(range(1000, 1000 + n)) + [269, 49407]
                ids[i, :len(row)] = torch.tensor(row)
            with torch.no_grad():
                self.fixed[cls] = clip.token_embedding(ids)
            self.eot[cls] = ids.argmax(-1)
            self.plen[cls] = plen

    def forward(self, clip):
        feats = []
        for cls in ("normal", "abnormal"):
            emb, rows = self.fixed[cls], []
            for pos in ("end", "front", "middle"):
                ctx = self.ctx[f"{cls}_{pos}"]
                for i, n in enumerate(self.plen[cls]):
                    e = emb[i]
                    sot, phrase, rest = e[:1], e[9:9 + n], e[9 + n:]
                    if pos == "end":
                        rows.append(torch.cat([sot, ctx[i], phrase, rest]))
                    elif pos == "front":
                        rows.append(torch.cat([sot, phrase, ctx[i], rest]))
                    else:
                        rows.append(torch.cat([sot, ctx[i, :4], phrase, ctx[i, 4:], rest]))
            x = torch.stack(rows) + clip.positional_embedding
            x, _ = clip.transformer(x.permute(1, 0, 2))
            x = clip.ln_final(x.permute(1, 0, 2))
            eot = self.eot[cls].repeat(3)
            f = x[torch.arange(len(rows)), eot] @ clip.text_projection
            feats.append(F.normalize(f.mean(0), dim=-1))
        return torch.stack(feats)  # [2, E]


class MadCLIP(nn.Module):
    def __init__(self, clip, preset):
        super().__init__()
        cfg = PRESETS[preset]
        self.clip = clip
        self.layers = taps_of(cfg["vision_layers"])
        w, e = cfg["vision_width"], cfg["embed"]
        self.normal = nn.ModuleList([Adapter(w, e) for _ in self.layers])
        self.abnormal = nn.ModuleList([Adapter(w, e) for _ in self.layers])
        self.prompts = Prompts(clip)
        self.grid = SIZE // cfg["patch"]

    def trainable(self):
        return list(self.normal.parameters()) + list(self.abnormal.parameters()) + list(self.prompts.ctx.parameters())

    def scores(self, taps, text):
        det, seg = [], []
        tn, tab = text[0], text[1]
        for li, x in enumerate(taps):
            dn, sn = self.normal[li](x)
            da, sa = self.abnormal[li](x)
            det.append(torch.stack([dn @ tn - dn @ tab, da @ tab - da @ tn], -1))
            seg.append(torch.stack([sn @ tn - sn @ tab, sa @ tab - sa @ tn], -1))
        return det, seg

    def seg_probs(self, s):
        B, P, _ = s.shape
        m = s.permute(0, 2, 1).reshape(B, 2, self.grid, self.grid)
        return F.interpolate(m, size=(SIZE, SIZE), mode="bilinear", align_corners=True).softmax(1)


def loss_of(model, det, seg, labels, masks):
    total = 0
    l = (2 * labels - 1).unsqueeze(1)
    for d, s in zip(det, seg):
        total = total - (F.logsigmoid(-l * d[..., 0]).mean(1) + F.logsigmoid(l * d[..., 1]).mean(1)).mean()
        p = model.seg_probs(s)
        onehot = torch.stack([1 - masks, masks], 1).clamp(1e-5, 1 - 1e-5)
        pt = (onehot * p).sum(1) + 1e-5
        total = total + (-(1 - pt) ** 2 * pt.log()).mean()
        pa = p[:, 1]
        inter = (pa * masks).sum((1, 2))
        total = total + (1 - (2 * inter + 1) / (pa.sum((1, 2)) + masks.sum((1, 2)) + 1)).mean()
    return total


class Step:
    def __init__(self, preset):
        self.preset = preset

    def setup(self, arg):
        clip = build_clip(self.preset)
        for p in clip.parameters():
            p.requires_grad_(False)
        self.m = MadCLIP(clip, self.preset)
        self.opt = torch.optim.Adam(self.m.trainable(), lr=1e-3, betas=(0.5, 0.999))
        cfg = PRESETS[self.preset]
        g = torch.Generator().manual_seed(2)
        tokens = (SIZE // cfg["patch"]) ** 2 + 1
        self.taps = [torch.randn(32, tokens, cfg["vision_width"], generator=g) for _ in self.m.layers]
        self.labels = torch.cat([torch.zeros(16), torch.ones(16)])
        self.masks = (torch.rand(32, SIZE, SIZE, generator=g) > 0.9).float() * self.labels.view(32, 1, 1)
        self.g = torch.Generator().manual_seed(3)

    def run(self):
        idx = torch.randperm(32, generator=self.g)[:16]
        taps = [t[idx] for t in self.taps]
        det, seg = self.m.scores(taps, self.m.prompts(self.m.clip))
        loss = loss_of(self.m, det, seg, self.labels[idx], self.masks[idx])
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        loss.item()


class Forward:
    def setup(self, arg):
        self.clip = build_clip("ViT-L/14-336")
        self.x = torch.rand(2, 3, SIZE, SIZE)

    def run(self):
        with torch.no_grad():
            pooled, _ = self.clip.visual(self.x)
            pooled.tolist()


class Cache:
    def setup(self, arg):
        self.clip = build_clip("ViT-L/14-336")
        self.x = torch.rand(8, 3, SIZE, SIZE)

    def run(self):
        with torch.no_grad():
            _, taps = self.clip.visual(self.x, taps_of(24))
            self.kept = taps


class Predict:
    def __init__(self, preset):
        self.preset = preset

    def setup(self, folder):
        self.m = MadCLIP(build_clip(self.preset), self.preset).eval()
        with torch.no_grad():
            self.text = self.m.prompts(self.m.clip)
        self.paths = sorted(os.path.join(folder, n) for n in os.listdir(folder))

    def run(self):
        scores = []
        with torch.no_grad():
            for b in range(0, len(self.paths), 16):
                imgs = []
                for p in self.paths[b:b + 16]:
                    im = Image.open(p).convert("RGB").resize((SIZE, SIZE), Image.BICUBIC)
                    imgs.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1))
                x = torch.stack(imgs)
                _, taps = self.m.clip.visual(x, self.m.layers)
                det, seg = self.m.scores(taps, self.text)
                amap = sum(self.m.seg_probs(s)[:, 1] for s in seg) / len(seg)
                dscore = sum(torch.sigmoid(d[..., 1] - d[..., 0]).mean(1) for d in det) / len(det)
                maps = amap.numpy().copy()  # madclip hands every map over (heatmaps, .npy, pixel metrics)
                scores += list(zip(maps.reshape(len(maps), -1).max(1).tolist(), dscore.tolist()))
        assert len(scores) == len(self.paths)


TASKS = {"step-tiny": lambda: Step("tiny"), "step-vitl": lambda: Step("ViT-L/14-336"), "forward": Forward,
         "cache": Cache, "predict-tiny": lambda: Predict("tiny"), "predict-vitl": lambda: Predict("ViT-L/14-336")}


class Worker:
    """One side in a process of its own, spoken to over a pipe."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.argv = argv

    def ask(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        reply = self.p.stdout.readline().strip()
        if not reply or reply.startswith("error"):
            sys.exit(f"{self.argv[0]}: {line}: {reply or 'no answer'}")
        return reply

    def run(self, task):
        _, secs, kb = self.ask("run " + task).split()
        return float(secs), int(kb)

    def close(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.close()
        self.p.wait()


def run_task(t):
    reset_peak()
    t0 = time.perf_counter()
    t.run()
    return time.perf_counter() - t0, peak_kb()


def serve():
    """The PyTorch side, speaking bench/peer's protocol on stdin/stdout."""
    tasks = {}
    for line in sys.stdin:
        f = line.split()
        if not f:
            continue
        if f[0] == "quit":
            return
        try:
            if f[0] == "setup":
                tasks[f[1]] = TASKS[f[1]]()
                tasks[f[1]].setup(f[2] if len(f) > 2 else "")
                print("ready", flush=True)
            elif f[0] == "run":
                secs, kb = run_task(tasks[f[1]])
                print(f"done {secs:.6f} {kb}", flush=True)
            elif f[0] == "free":
                tasks.pop(f[1], None)
                print("freed", flush=True)
            else:
                print("error unknown request", line.strip(), flush=True)
        except Exception as e:  # reported to the driver, which stops
            print("error", str(e).replace("\n", " "), flush=True)


def write_images(folder, n):
    rng = np.random.default_rng(7)
    for i in range(n):
        a = (rng.random((256, 256)) * 64 + np.linspace(0, 160, 256)[None, :]).astype(np.uint8)
        Image.fromarray(a).save(os.path.join(folder, f"{i:04d}.png"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--go")
    ap.add_argument("--serve", action="store_true", help="be the PyTorch worker (the driver starts it)")
    ap.add_argument("--tasks", default="step-tiny,step-vitl,forward,cache,predict-tiny,predict-vitl")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=16)
    args = ap.parse_args()
    if args.serve:
        serve()
        return
    if not args.go:
        sys.exit("peer.py: give --go (the madclip peer binary)")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {cpu}, {os.cpu_count()} cores; torch {torch.__version__} "
          f"({torch.get_num_threads()} intra-op threads); each task in a fresh process pair, "
          f"1 warm-up + {args.rounds} rounds taking turns; {args.images} images for predict")
    print(f"{'task':<13} {'madclip s min/median':>21} {'PyTorch s min/median':>21} {'time ratio min/median':>22} "
          f"{'peak MB madclip/PyTorch':>24} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as folder:
        write_images(folder, args.images)
        for name in args.tasks.split(","):
            if name not in TASKS:
                sys.exit(f"peer.py: unknown task {name} (known: {', '.join(TASKS)})")
            go = Worker([args.go])
            py = Worker([sys.executable, os.path.abspath(__file__), "--serve"])
            arg = folder if name.startswith("predict") else ""
            for w in (go, py):
                w.ask(f"setup {name} {arg}".strip())
                w.run(name)  # warm-up, not counted
            g, p = [], []
            for r in range(args.rounds):
                for w, out in ([(go, g), (py, p)] if r % 2 == 0 else [(py, p), (go, g)]):
                    # OpenBLAS's threads spin for a while after a call: let the
                    # other side's settle so that neither run pays for them.
                    time.sleep(1)
                    out.append(w.run(name))
            go.close()
            py.close()
            gt, pt = [x[0] for x in g], [x[0] for x in p]
            gm, pm = max(x[1] for x in g) / 1024, max(x[1] for x in p) / 1024
            print(f"{name:<13} {min(gt):>10.3f} /{statistics.median(gt):>9.3f} {min(pt):>10.3f} /{statistics.median(pt):>9.3f} "
                  f"{min(gt) / min(pt):>11.2f} /{statistics.median(gt) / statistics.median(pt):>9.2f} "
                  f"{gm:>11.0f} /{pm:>11.0f} {gm / pm:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
