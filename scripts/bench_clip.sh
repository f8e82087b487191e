#!/usr/bin/env bash
# ViT-L/14 image tower at 240 px (MadCLIP's backbone), forward, images/s:
# madclip (Go over libtorch) beside PyTorch eager, on the same machine in one
# run. Batches: MADCLIP_BENCH_BATCHES (default 2 on CPU, 16,64 on GPU).
# Usage: scripts/bench_clip.sh            (after `make build`)
#        BIN=gpu-bin scripts/bench_clip.sh (a prebuilt model/clip test binary)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3

if [ -n "${BIN:-}" ]; then
  BIN=$(cd "$BIN" && pwd) # the test binary runs from model/clip
  go_out=$(cd model/clip && "$BIN/clip.test" -test.run '^$' -test.bench ViTL14At240 -test.benchtime 3x -test.v 2>&1)
else
  go_out=$(go test -run '^$' -bench ViTL14At240 -benchtime 3x -v ./model/clip 2>&1)
fi
py_out=$("$PY" scripts/bench_clip.py)

echo "$go_out" | grep -E "built in" || true
printf '%-6s %6s %16s %16s %8s\n' precision batch "madclip img/s" "PyTorch img/s" ratio
while read -r prec batch py; do
  go=$(echo "$go_out" | awk -v k="BenchmarkViTL14At240/${prec}/batch${batch}-" 'index($1,k)==1 {for(i=1;i<=NF;i++) if($i=="img/s") print $(i-1)}')
  [ -n "$go" ] || go=nan
  awk -v p="$prec" -v b="$batch" -v g="$go" -v y="$py" 'BEGIN{printf "%-6s %6d %16.2f %16.2f %7.2fx\n", p, b, g, y, g/y}'
done <<<"$py_out"
