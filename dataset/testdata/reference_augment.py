"""Independent computation of the authors' static augmentation for
dataset/dataset_test.go, in PyTorch, written from the rules in
docs/design.md ("Training"): images [N, 3, S, S] and masks [N, 1, S, S]
come in as raw float32 files, the 16 variants go out the same way.

    reference_augment.py DIR N S SEED

Reads DIR/images.f32 and DIR/masks.f32; writes DIR/aug_images.f32 and
DIR/aug_masks.f32 (masks thresholded at 0.5)."""
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F


def affine(x, theta):
    th = torch.tensor(theta, dtype=torch.float64).to(torch.float32)[None].repeat(x.shape[0], 1, 1)
    grid = F.affine_grid(th, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def rotation(a):
    return [[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]]


def translation(a, b):
    return [[1.0, 0.0, a], [0.0, 1.0, b]]


def zoom(x, s):
    h, w = x.shape[-2:]
    nh, nw = int(h / s), int(w / s)
    top, left = (h - nh) // 2, (w - nw) // 2
    crop = x[:, :, top:top + nh, left:left + nw]
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)


def jitter(x, b, c):
    y = x * b
    mean = y.mean(dim=[1, 2], keepdim=True)
    return ((y - mean) * c + mean).clamp(0, 1)


def augment(img, mask, b, c):
    imgs, masks = [img], [mask]
    for a in [-math.pi / 8, -math.pi / 16, math.pi / 16, math.pi / 8]:
        imgs.append(affine(img, rotation(a)))
        masks.append(affine(mask, rotation(a)))
    for a, bb in [(0.1, 0.1), (-0.1, 0.1), (-0.1, -0.1), (0.1, -0.1)]:
        imgs.append(affine(img, translation(a, bb)))
        masks.append(affine(mask, translation(a, bb)))
    for s in [1.1, 1.15, 1.2, 1.3]:
        imgs.append(zoom(img, s))
        masks.append(zoom(mask, s))
    imgs.append(jitter(img, b, c))
    masks.append(mask)
    imgs.append(img.flip(3))
    masks.append(mask.flip(3))
    imgs.append(img.flip(2))
    masks.append(mask.flip(2))
    m = torch.cat(masks)
    return torch.cat(imgs), (m > 0.5).to(m.dtype)


def main():
    d, n, s, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    img = torch.from_numpy(np.fromfile(f"{d}/images.f32", dtype=np.float32).reshape(n, 3, s, s))
    mask = torch.from_numpy(np.fromfile(f"{d}/masks.f32", dtype=np.float32).reshape(n, 1, s, s))
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(2, dtype=torch.float64, generator=g)
    b, c = 1 + float(u[0]) * 0.4 - 0.2, 1 + float(u[1]) * 0.4 - 0.2
    ai, am = augment(img, mask, b, c)
    ai.numpy().tofile(f"{d}/aug_images.f32")
    am.numpy().tofile(f"{d}/aug_masks.f32")
    print(b, c)


main()
