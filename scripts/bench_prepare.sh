#!/usr/bin/env bash
# What each scan costs before the model, on this machine, in one run:
# decoding, conversion to RGB, the bicubic resize to 240 px and the float
# [3, 240, 240] planes, in madclip (dataset.Prepare) and in the authors'
# Python pipeline (PIL's open/convert("RGB")/resize(BICUBIC), then the
# ToTensor arithmetic in torch). Four images written by PIL: 256- and
# 512-px grey PNGs (MRI and CT slices), a 512-px colour PNG and a 512-px
# colour JPEG. The two sides take turns for ROUNDS rounds (3 by default),
# each keeping its best time per image.
# Usage: scripts/bench_prepare.sh   (ROUNDS=5 scripts/bench_prepare.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
PY=${PYTHON:-/usr/bin/python3}
ROUNDS=${ROUNDS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/img"

"$PY" - "$work/img" <<'PYEOF'
import sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(3)
def scan(n):  # a bright disc with texture on black, like a slice
    y, x = np.mgrid[:n, :n] / n - 0.5
    disc = (x * x + y * y < 0.16) * (120 + 60 * np.sin(9 * x) * np.cos(7 * y))
    return np.clip(disc + rng.normal(0, 8, (n, n)), 0, 255).astype(np.uint8)
d = sys.argv[1]
Image.fromarray(scan(256)).save(f"{d}/grey-256.png")
Image.fromarray(scan(512)).save(f"{d}/grey-512.png")
rgb = np.stack([scan(512), scan(512), scan(512)], -1)
Image.fromarray(rgb).save(f"{d}/colour-512.png")
Image.fromarray(rgb).save(f"{d}/colour-512.jpg", quality=90)
PYEOF

go test -c -o "$work/dataset.test" ./dataset

py_round() {
  "$PY" - "$work/img" <<'PYEOF'
import os, sys, time
import torch
from PIL import Image
torch.set_num_threads(1)
d = sys.argv[1]
def prepare(path):
    img = Image.open(path).convert("RGB").resize((240, 240), Image.BICUBIC)
    t = torch.ByteTensor(torch.ByteStorage.from_buffer(img.tobytes()))
    return t.view(240, 240, 3).permute(2, 0, 1).float().div(255)
for name in sorted(os.listdir(d)):
    path = os.path.join(d, name)
    prepare(path)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < 1:
        prepare(path); n += 1
    print(name, (time.perf_counter() - t) / n * 1e9)
PYEOF
}

go_round() {
  MADCLIP_PREPARE_DIR="$work/img" "$work/dataset.test" -test.run '^$' -test.bench Prepare -test.benchtime 1s |
    awk '$1 ~ /^BenchmarkPrepare\// { sub(/^BenchmarkPrepare\//, "", $1); sub(/-[0-9]+$/, "", $1); print $1, $3 }'
}

for r in $(seq "$ROUNDS"); do
  if ((r % 2)); then go_round >>"$work/go"; py_round >>"$work/py"; else py_round >>"$work/py"; go_round >>"$work/go"; fi
done
echo "per image, best of $ROUNDS alternating rounds ($(nproc) cores; torch $("$PY" -c "import torch; print(torch.__version__)"))"
awk 'FNR == NR { if (!($1 in g)) names[n++] = $1; if (!($1 in g) || $2 < g[$1]) g[$1] = $2; next }
     { if (!($1 in p) || $2 < p[$1]) p[$1] = $2 }
     END {
       printf "%-16s %12s %12s %8s\n", "image", "madclip", "PIL+torch", "ratio"
       for (i = 0; i < n; i++) { k = names[i]; printf "%-16s %9.2f ms %9.2f ms %7.2fx\n", k, g[k]/1e6, p[k]/1e6, g[k]/p[k] }
     }' "$work/go" "$work/py"
