#!/usr/bin/env bash
# JPEG decoding speed on this machine, in one run: libjpeg-turbo (what
# madclip decodes with, as PIL does) against Go's image/jpeg, for a 512x512
# colour and grey JPEG, both ending in 8-bit RGB. Best of 5 runs each.
# Usage: scripts/bench_jpeg.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
out=$(go test -run '^$' -bench 'DecodeJPEG' -benchtime 1s -count 5 ./imaging)
best() { awk -v n="BenchmarkDecodeJPEG/$1-" 'index($1, n) == 1 { if (min == "" || $3 < min) min = $3 } END { print min }' <<<"$out"; }
printf '%-8s %16s %16s %8s\n' "" "libjpeg-turbo" "image/jpeg" "speed-up"
for kind in colour grey; do
  t=$(best "$kind/libjpeg-turbo"); g=$(best "$kind/image-jpeg")
  awk -v k="$kind" -v t="$t" -v g="$g" 'BEGIN { printf "%-8s %13.2f ms %13.2f ms %7.2fx\n", k, t/1e6, g/1e6, g/t }'
done
