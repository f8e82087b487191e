#!/usr/bin/env bash
# Installs the Debian packages madclip needs, only those that are missing.
# libopenblas0-pthread matters: without it Debian's libtorch falls back to the
# reference BLAS and CPU matmul is ~30x slower.
set -euo pipefail
pkgs=(g++ make cmake libtorch-dev libopenblas0-pthread libjpeg62-turbo-dev zlib1g-dev python3-torch python3-sklearn python3-pil python3-numpy python3-matplotlib)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  echo "madclip needs Go 1.26 or newer (https://go.dev/dl/) on PATH" >&2
  exit 1
fi
