#!/usr/bin/env bash
# Compares the bridge with PyTorch eager Python on this machine, in one run:
#  - the overhead of one tiny op (adding two 1-element tensors);
#  - 1024x1024 f32 matmul throughput (same BLAS, so they should match).
# The two sides take turns, round by round (ROUNDS, 3 by default), so a
# machine that gets busier or quieter during the run cannot favour one of
# them; each keeps its best round. Every product is freed before the next
# is computed, on both sides.
# Usage: scripts/bench_bridge.sh   (ROUNDS=5 scripts/bench_bridge.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
ROUNDS=${ROUNDS:-3}

go test -c -o /tmp/madclip-bench-torch.$$ ./torch
trap 'rm -f /tmp/madclip-bench-torch.$$' EXIT

py_round() {
  "$PY" - <<'PYEOF'
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
while time.perf_counter() - t < 1.0:
    x @ y; reps += 1
print(f"{best:.1f} {2*n**3*reps/(time.perf_counter() - t)/1e9:.1f}")
PYEOF
}

go_add_ns="" go_gflops="" py_add_ns="" py_gflops=""
for ((r = 1; r <= ROUNDS; r++)); do
  out=$(cd torch && /tmp/madclip-bench-torch.$$ -test.run '^$' -test.bench 'TinyAdd$|Matmul1024' -test.benchtime 1s)
  a=$(awk '/^BenchmarkTinyAdd-/ {print $3}' <<<"$out")
  g=$(awk '/^BenchmarkMatmul1024-/ {for (i=1;i<=NF;i++) if ($i=="GFLOP/s") print $(i-1)}' <<<"$out")
  read -r pa pg < <(py_round)
  go_add_ns=$(awk -v m="$go_add_ns" -v v="$a" 'BEGIN { print (m == "" || v < m) ? v : m }')
  go_gflops=$(awk -v m="$go_gflops" -v v="$g" 'BEGIN { print (m == "" || v > m) ? v : m }')
  py_add_ns=$(awk -v m="$py_add_ns" -v v="$pa" 'BEGIN { print (m == "" || v < m) ? v : m }')
  py_gflops=$(awk -v m="$py_gflops" -v v="$pg" 'BEGIN { print (m == "" || v > m) ? v : m }')
  echo "round $r of $ROUNDS: Go $a ns, $g GF/s; PyTorch $pa ns, $pg GF/s" >&2
done

echo "torch $("$PY" -c 'import torch;print(torch.__version__)' 2>/dev/null), $(nproc) cores, best of $ROUNDS alternating rounds"
printf '%-34s %12s %12s %8s\n' "" "madclip (Go)" "PyTorch (Py)" "ratio"
awk -v g="$go_add_ns" -v p="$py_add_ns" 'BEGIN{printf "%-34s %9.0f ns %9.0f ns %7.2fx\n", "tiny add (lower is better)", g, p, g/p}'
awk -v g="$go_gflops" -v p="$py_gflops" 'BEGIN{printf "%-34s %6.1f GF/s %6.1f GF/s %7.2fx\n", "1024^2 f32 matmul (higher better)", g, p, g/p}'
