#!/usr/bin/env bash
# GPU check, run on the device machine (it has PyTorch with CUDA, cmake and
# g++, but no Go). Prepare the Go binaries here first with `make gpu-bin`,
# then run this script there with gpu-bin/ carried along, in two calls that
# each fit the device tool's 10 minutes (the bridge built by the first is
# kept for the second on the same warm machine):
#   scripts/gpu_check.sh tests     1-3 below
#   scripts/gpu_check.sh figures   4-7 below
#   scripts/gpu_check.sh           all of it
#   1. builds the bridge against that machine's PyTorch (build-cuda/);
#   2. runs the torch tests with CUDA expected (CPU-vs-CUDA ops, bf16
#      autocast), the model/clip CUDA tests, and the training step on CUDA
#      against the CPU (TestStepOnCUDA: fp32 scores under bf16, loss and
#      Adam's step);
#   3. the tiny-op and matmul benchmarks and the bf16 8192^2 matmul TFLOP/s;
#   4. the ViT-L/14 forward beside PyTorch eager (fp32 and bf16 autocast,
#      batch 16 and 64);
#   5. times a 16-shot ViT-L/14 training run (feature cache, step, 60 epochs
#      extrapolated);
#   6. times `madclip eval` over 1,000 240-px test images, decoding included
#      (ViT-L/14 with random weights, a 1-epoch checkpoint), in images/s;
#      with MADCLIP_GPU_BENCH=1 also `madclip bench` over six synthetic
#      datasets (16 shots, one seed);
#   7. runs `madclip doctor` on the GPU.
# The whole output also goes to $OUT/gpu_check-STAGE.log when $OUT is set
# (the device tool returns only the output's tail).
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:-all}
case $stage in tests | figures | all) ;; *)
  echo "usage: scripts/gpu_check.sh [tests|figures|all]" >&2
  exit 2
  ;;
esac
if [ -n "${OUT:-}" ] && [ -z "${GPU_CHECK_LOGGED:-}" ]; then
  export GPU_CHECK_LOGGED=1
  set +e
  "$0" "$stage" 2>&1 | tee "$OUT/gpu_check-$stage.log"
  exit "${PIPESTATUS[0]}"
fi
BIN=$(cd "${BIN:-gpu-bin}" && pwd)
PY=${PYTHON:-python3}
[ -x "$BIN/torch.test" ] || { echo "no $BIN/torch.test: run 'make gpu-bin' on the build machine" >&2; exit 1; }

# 1. The bridge against this machine's PyTorch (incremental when kept).
PREFIX=$("$PY" -c 'import torch;print(torch.utils.cmake_prefix_path)')
TORCH_LIB=$("$PY" -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
echo "== PyTorch $("$PY" -c 'import torch;print(torch.__version__, torch.version.cuda)')"
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DMADCLIP_CODECS=OFF -DCMAKE_PREFIX_PATH="$PREFIX" >build-cuda.log 2>&1 || { tail -40 build-cuda.log; exit 1; }
cmake --build build-cuda -j "$(nproc)" >>build-cuda.log 2>&1 || { tail -40 build-cuda.log; exit 1; }
grep -h "madclip:" build-cuda.log || true
# The CUDA libraries of a pip-installed PyTorch live in its nvidia/*
# packages, which Python preloads and a Go process must be told of.
NVLIBS=$("$PY" - <<'EOF'
import glob, os
try:
    import nvidia
except ImportError:
    raise SystemExit
dirs = set()
for root in nvidia.__path__:
    for lib in glob.glob(os.path.join(root, "**", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(lib))
print(":".join(sorted(dirs)))
EOF
)
export LD_LIBRARY_PATH=$PWD/build-cuda:$TORCH_LIB${NVLIBS:+:$NVLIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export MADCLIP_TEST_PYTHON=$(command -v "$PY") # the Python references of the tests

status=0
if [ "$stage" != figures ]; then
  echo "== 2. torch tests, CUDA expected"
  (cd torch && MADCLIP_EXPECT_CUDA=1 "$BIN/torch.test" -test.v -test.count 1 2>&1 | grep -E '^(--- FAIL|--- SKIP|FAIL|PASS|ok)|cuda_test|Error' ) || status=1
  echo "== 2. model/clip and train CUDA tests"
  (cd model/clip && MADCLIP_EXPECT_CUDA=1 "$BIN/clip.test" -test.run CUDA -test.v -test.count 1 2>&1 | grep -E '^(--- |PASS|FAIL|ok)|cuda_test') || status=1
  (cd train && MADCLIP_EXPECT_CUDA=1 "$BIN/train.test" -test.run CUDA -test.v -test.count 1 2>&1 | grep -E '^(--- |PASS|FAIL|ok)|cuda_test') || status=1
  echo "== 3. benchmarks"
  (cd torch && "$BIN/torch.test" -test.run '^$' -test.bench 'TinyAdd|Matmul1024|CUDAMatmulBF16' -test.benchtime 2s) || status=1
fi
if [ "$stage" != tests ]; then
  echo "== 4. ViT-L/14 at 240 px: madclip vs PyTorch eager (fp32 and bf16, batch 16 and 64)"
  BIN="$BIN" PYTHON="$PY" MADCLIP_BENCH_SECONDS=2 scripts/bench_clip.sh || status=1
  echo "== 5. a 16-shot ViT-L/14 training run (random weights, synthetic data)"
  (cd train && "$BIN/train.test" -test.run '^$' -test.bench Train16Shot -test.benchtime 1x -test.v 2>&1 | grep -E "Benchmark|on cuda|ms/step") || status=1
  echo "== 6. madclip eval over 1,000 240-px test images (decoding included), ViT-L/14 with random weights"
  EV=/tmp/madclip-eval
  "$BIN/madclip" synth --out "$EV" --datasets Brain --size 240 --valid 16 --test 500 -q >/dev/null || status=1
  "$BIN/madclip" train --data "$EV" --dataset Brain --preset ViT-L/14-336 --shots 8 --draw-shots --epochs 1 \
    --out "$EV/ck.safetensors" -q >/dev/null || status=1
  start=$(date +%s.%N)
  "$BIN/madclip" eval --checkpoint "$EV/ck.safetensors" --data "$EV" --batch 64 -q >"$EV/eval.txt" || status=1
  end=$(date +%s.%N)
  sed -n 1,12p "$EV/eval.txt"
  "$PY" -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'eval: 1000 images in {s:.1f} s, {1000/s:.0f} img/s (start-up included)')" "$start" "$end"
  if [ "${MADCLIP_GPU_BENCH:-0}" = 1 ]; then
    echo "== 6. madclip bench: six synthetic datasets of 240-px images, 16 shots, 1 seed, ViT-L/14 (random weights)"
    "$BIN/madclip" synth --out /tmp/madclip-bench --datasets all --size 240 --valid 16 --test 100 >/dev/null
    start=$SECONDS
    "$BIN/madclip" bench --data /tmp/madclip-bench --preset ViT-L/14-336 \
      --shots 16 --seeds 1 --epochs "${MADCLIP_GPU_BENCH_EPOCHS:-60}" || status=1
    echo "bench wall time $((SECONDS - start)) s"
  fi
  echo "== 7. doctor"
  "$BIN/madclip" doctor || status=1
fi
exit $status
