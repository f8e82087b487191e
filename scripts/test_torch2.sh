#!/usr/bin/env bash
# Runs madclip's tests on libtorch 2.x on the CPU: builds a Debian 13 root
# (libtorch and python3-torch 2.6, Pillow 11) in build/_trixie with
# debootstrap, copies the working tree into it, builds the bridge there and
# runs `go test` with CI=true, so the 2.x code paths (the fused attention,
# the per-device autocast calls) run against the PyTorch references before
# a GPU machine sees them. Go and its module cache are this machine's,
# mounted read-only; every mount lives in a private mount namespace and goes
# with it.
#
# Needs root (debootstrap, chroot, mounts) and about 3 GB of disk; the first
# run fetches about 700 MB of packages (minutes). Usage:
#   scripts/test_torch2.sh                      every package
#   scripts/test_torch2.sh ./model/... ./torch  some
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "test_torch2: needs root (debootstrap, chroot and mounts)" >&2
  exit 1
fi
# Under build/, named with "_" so that the go tool's ./... passes over the
# Go files inside (a copy of madclip among them).
root=${TORCH2_ROOT:-build/_trixie}
[[ $root = /* ]] || root=$PWD/$root
suite=${TORCH2_SUITE:-trixie}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
pkgs=libtorch-dev,python3-torch,g++,cmake,make,libjpeg62-turbo-dev,zlib1g-dev,libopenblas0-pthread,python3-pil,python3-numpy,python3-sklearn,python3-matplotlib
goroot=$(go env GOROOT)
modcache=$(go env GOMODCACHE)

if [ ! -e "$root/.complete" ]; then
  if ! command -v debootstrap >/dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
  fi
  echo "test_torch2: building a Debian $suite root with libtorch 2.x in $root (minutes)"
  rm -rf "$root"
  debootstrap --variant=minbase --include="$pkgs" "$suite" "$root" "$mirror" >"$root.log" 2>&1 ||
    { echo "test_torch2: debootstrap failed; see $root.log" >&2; exit 1; }
  touch "$root/.complete"
fi

# The working tree as git sees it (tracked and untracked files, not the
# ignored builds), fresh at every run.
rm -rf "$root/src"
mkdir -p "$root/src/madclip"
git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$root/src/madclip"
mkdir -p "$root/usr/local/go" "$root/root/go/pkg/mod"

args=("$@")
[ ${#args[@]} -gt 0 ] || args=(./...)
exec unshare --mount --propagation private bash -s -- "$root" "$goroot" "$modcache" "${args[@]}" <<'EOF'
set -euo pipefail
root=$1 goroot=$2 modcache=$3
shift 3
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
for m in "$goroot:/usr/local/go" "$modcache:/root/go/pkg/mod"; do
  mount --bind "${m%%:*}" "$root${m#*:}"
  mount -o remount,bind,ro "$root${m#*:}"
done
chroot "$root" /usr/bin/env -i PATH=/usr/local/go/bin:/usr/bin:/bin HOME=/root CI=true \
  GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local bash -c '
  set -euo pipefail
  cd /src/madclip
  echo "test_torch2: libtorch $(dpkg-query -W -f="\${Version}" libtorch-dev), Pillow $(python3 -c "import PIL; print(PIL.__version__)"), $(go version)"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >build.log 2>&1 || { cat build.log; exit 1; }
  cmake --build build -j "$(nproc)" >>build.log 2>&1 || { cat build.log; exit 1; }
  go test -count 1 -timeout 60m -p 1 "$@"' test_torch2 "$@"
EOF
