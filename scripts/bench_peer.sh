#!/usr/bin/env bash
# madclip beside the same work in PyTorch (bench/peer/peer.py), the two
# processes taking turns on this machine: training steps (tiny and ViT-L/14
# shapes), the image tower's forward, feature caching and prediction over a
# folder, with time (min and median) and peak memory ratios.
# Usage: scripts/bench_peer.sh [--tasks a,b] [--rounds N] [--images N]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
PY=${PYTHON:-/usr/bin/python3}
go build -o bin/madclip-peer ./bench/peer
exec "$PY" bench/peer/peer.py --go bin/madclip-peer "$@"
