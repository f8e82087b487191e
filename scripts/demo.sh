#!/usr/bin/env bash
# The README's main job: the whole pipeline on a built-in default. Writes a
# synthetic dataset, trains MadCLIP on it (on real CLIP weights when
# `madclip weights path` finds some, else on the tiny random CLIP), evaluates
# it with a report, and draws the heatmap and the figure of one test image.
# Outputs under $DEMO (default build/demo): $DEMO/heatmap.png, $DEMO/panel.png.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=bin/madclip
DEMO=${DEMO:-build/demo}
"$BIN" doctor
# synth refuses dataset folders it did not mark as its own, and every
# output refuses a file madclip did not mark; the default demo folder is
# this script's, so what a madclip from before the marks left there goes.
if [ "$DEMO" = build/demo ]; then
  for d in Brain_AD Chest_AD; do
    if [ -d "$DEMO/$d" ] && { [ ! -f "$DEMO/$d/.madclip-synth" ] ||
      ! head -c 100 "$DEMO/$d/test/good/img/000.png" 2>/dev/null | grep -qa madclip; }; then
      rm -rf "${DEMO:?}/$d"
    fi
  done
  rm -rf "$DEMO/report" "$DEMO/heatmap.png" "$DEMO/panel.png" "$DEMO/mask.png"
fi
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
"$BIN" predict "$DEMO/Brain_AD/test/Ungood/img/001.png" --checkpoint "$DEMO/brain.safetensors" \
  --heatmap "$DEMO/heatmap.png" --panel "$DEMO/panel.png" --mask "$DEMO/mask.png" \
  --ground-truth "$DEMO/Brain_AD/test/Ungood/anomaly_mask/001.png"
echo "one abnormal test image: heatmap $DEMO/heatmap.png, figure $DEMO/panel.png; report: $DEMO/report"
