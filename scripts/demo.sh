#!/usr/bin/env bash
# The README's main job: the whole pipeline on a built-in default. Writes a
# synthetic dataset, trains MadCLIP on it (on real CLIP weights when
# `madclip weights path` finds some, else on the tiny random CLIP), evaluates
# it with a report, and draws the heatmap of one test image.
# Outputs under $DEMO (default build/demo); the heatmap is $DEMO/heatmap.png.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=bin/madclip
DEMO=${DEMO:-build/demo}
"$BIN" doctor
"$BIN" synth --out "$DEMO"
if weights=$("$BIN" weights path 2>/dev/null); then
  echo "training on $weights"
  MODEL=(--weights "$weights" --epochs 20)
else
  echo "no CLIP weights found: training on the tiny random CLIP (see 'madclip weights download')"
  MODEL=(--preset tiny --epochs 5 --image-size 112)
fi
"$BIN" train --data "$DEMO" --dataset Brain --shots 8 "${MODEL[@]}" --out "$DEMO/brain.safetensors"
"$BIN" eval --checkpoint "$DEMO/brain.safetensors" --data "$DEMO" --report "$DEMO/report"
"$BIN" predict "$DEMO/Brain_AD/test/Ungood/img/000.png" --checkpoint "$DEMO/brain.safetensors" \
  --heatmap "$DEMO/heatmap.png"
echo "heatmap of one abnormal test image: $DEMO/heatmap.png; report: $DEMO/report"
