#!/usr/bin/env bash
# GPU check, run on the device machine (it has PyTorch with CUDA, cmake and
# g++, but no Go). Prepare the Go binaries here first with `make gpu-bin`,
# then run this script there with gpu-bin/ carried along:
#   1. builds the bridge against that machine's PyTorch (build-cuda/);
#   2. runs the torch test binary with CUDA expected (CPU-vs-CUDA op checks,
#      bf16 autocast), the tiny-op and matmul benchmarks, and the bf16
#      8192^2 matmul TFLOP/s;
#   3. runs the model/clip tests and the ViT-L/14 forward benchmark beside
#      PyTorch eager (fp32 and bf16 autocast, batch 16 and 64);
#   4. runs the MadCLIP model tests and times a 16-shot ViT-L/14 training run
#      (feature cache, step, 60 epochs extrapolated);
#   5. times `madclip eval` over 1,000 240-px test images, decoding included
#      (ViT-L/14 with random weights, a 1-epoch checkpoint), in images/s;
#   6. with MADCLIP_GPU_BENCH=1, times `madclip bench` over six synthetic
#      datasets (16 shots, one seed, ViT-L/14 with random weights);
#   7. runs `madclip doctor` on the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/gpu-bin}
PY=${PYTHON:-python3}
[ -x "$BIN/torch.test" ] || { echo "no $BIN/torch.test: run 'make gpu-bin' on the build machine" >&2; exit 1; }

PREFIX=$("$PY" -c 'import torch;print(torch.utils.cmake_prefix_path)')
TORCH_LIB=$("$PY" -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
echo "== PyTorch $("$PY" -c 'import torch;print(torch.__version__, torch.version.cuda)')"
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX" >build-cuda.log 2>&1 || { tail -40 build-cuda.log; exit 1; }
cmake --build build-cuda -j "$(nproc)" >>build-cuda.log 2>&1 || { tail -40 build-cuda.log; exit 1; }
grep -h "madclip:" build-cuda.log || true
export LD_LIBRARY_PATH=$PWD/build-cuda:$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

status=0
echo "== torch tests, CUDA expected"
(cd torch && MADCLIP_EXPECT_CUDA=1 "$BIN/torch.test" -test.v -test.count 1 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|cuda_test|Error' ) || status=1
echo "== benchmarks"
(cd torch && "$BIN/torch.test" -test.run '^$' -test.bench 'TinyAdd|Matmul1024|CUDAMatmulBF16' -test.benchtime 2s) || status=1
echo "== model/clip tests, CUDA expected"
(cd model/clip && MADCLIP_EXPECT_CUDA=1 "$BIN/clip.test" -test.count 1 2>&1 | tail -5) || status=1
echo "== ViT-L/14 at 240 px: madclip vs PyTorch eager (fp32 and bf16, batch 16 and 64)"
BIN="$BIN" PYTHON="$PY" MADCLIP_BENCH_SECONDS=2 scripts/bench_clip.sh || status=1
echo "== MadCLIP: tests, then a 16-shot ViT-L/14 training run (random weights, synthetic data)"
(cd model && MADCLIP_EXPECT_CUDA=1 "$BIN/model.test" -test.count 1 2>&1 | tail -3) || status=1
(cd train && "$BIN/train.test" -test.run '^$' -test.bench Train16Shot -test.benchtime 1x -test.v 2>&1 | grep -E "Benchmark|on cuda|ms/step") || status=1
echo "== madclip eval over 1,000 240-px test images (decoding included), ViT-L/14 with random weights"
EV=/tmp/madclip-eval
"$BIN/madclip" synth --out "$EV" --datasets Brain --size 240 --valid 16 --test 500 -q >/dev/null || status=1
"$BIN/madclip" train --data "$EV" --dataset Brain --preset ViT-L/14-336 --shots 8 --draw-shots --epochs 1 \
  --out "$EV/ck.safetensors" -q >/dev/null || status=1
start=$(date +%s.%N)
"$BIN/madclip" eval --checkpoint "$EV/ck.safetensors" --data "$EV" --batch 64 -q | head -3 || status=1
end=$(date +%s.%N)
"$PY" -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'eval: 1000 images in {s:.1f} s, {1000/s:.0f} img/s (start-up included)')" "$start" "$end"
if [ "${MADCLIP_GPU_BENCH:-0}" = 1 ]; then
  echo "== madclip bench: six synthetic datasets of 240-px images, 16 shots, 1 seed, ViT-L/14 (random weights)"
  "$BIN/madclip" synth --out /tmp/madclip-bench --datasets all --size 240 --valid 16 --test 100 >/dev/null
  start=$SECONDS
  "$BIN/madclip" bench --data /tmp/madclip-bench --preset ViT-L/14-336 \
    --shots 16 --seeds 1 --epochs "${MADCLIP_GPU_BENCH_EPOCHS:-60}" || status=1
  echo "bench wall time $((SECONDS - start)) s"
fi
echo "== doctor"
"$BIN/madclip" doctor || status=1
exit $status
