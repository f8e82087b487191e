#!/usr/bin/env bash
# Compares the bridge with PyTorch eager Python on this machine, in one run:
#  - the overhead of one tiny op (adding two 1-element tensors);
#  - 1024x1024 f32 matmul throughput (same BLAS, so they should match).
# Usage: scripts/bench_bridge.sh   (after `make build`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}

go_out=$(go test -run '^$' -bench 'TinyAdd$|Matmul1024' -benchtime 2s -count 1 ./torch)
go_add_ns=$(awk '/^BenchmarkTinyAdd-/ {print $3}' <<<"$go_out")
go_gflops=$(awk '/^BenchmarkMatmul1024-/ {for (i=1;i<=NF;i++) if ($i=="GFLOP/s") print $(i-1)}' <<<"$go_out")

read -r py_add_ns py_gflops < <("$PY" - <<'PYEOF'
import time, torch
a = torch.ones(1); b = torch.ones(1)
for _ in range(20000): c = a + b
best = float("inf")
for _ in range(5):
    n = 200000
    t = time.perf_counter()
    for _ in range(n): c = a + b
    best = min(best, (time.perf_counter() - t) / n * 1e9)
n = 1024
x = torch.randn(n, n); y = torch.randn(n, n)
x @ y
reps = 0; t = time.perf_counter()
while time.perf_counter() - t < 2.0:
    z = x @ y; reps += 1
el = time.perf_counter() - t
print(f"{best:.1f} {2*n**3*reps/el/1e9:.1f}")
PYEOF
)

echo "torch $(/usr/bin/python3 -c 'import torch;print(torch.__version__)' 2>/dev/null), $(nproc) cores"
printf '%-34s %12s %12s %8s\n' "" "madclip (Go)" "PyTorch (Py)" "ratio"
awk -v g="$go_add_ns" -v p="$py_add_ns" 'BEGIN{printf "%-34s %9.0f ns %9.0f ns %7.2fx\n", "tiny add (lower is better)", g, p, g/p}'
awk -v g="$go_gflops" -v p="$py_gflops" 'BEGIN{printf "%-34s %6.1f GF/s %6.1f GF/s %7.2fx\n", "1024^2 f32 matmul (higher better)", g, p, g/p}'
