#!/usr/bin/env bash
# Compiles the bridge (cbridge/*.cpp) against the headers of a PyTorch 2.x
# libtorch, Debian 13's libtorch-dev, without installing it: the GPU machine
# builds the bridge against its own PyTorch 2.x (scripts/gpu_check.sh), and this
# machine's libtorch is 1.13, so the 2.x branches of the bridge (fused
# attention, the per-device autocast calls) would otherwise first compile
# there. A syntax and type check (g++ -fsyntax-only), not a link: Debian 13's
# libraries need a newer glibc than Debian 12's.
#
# The package comes from deb.debian.org (its SHA-256 checked against the
# suite's index) and is kept in build/torch2/. Offline, the check says so and
# passes, unless CI=true or MADCLIP_REQUIRE_TORCH2=1, where it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${TORCH2_SUITE:-trixie}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
dir=build/torch2
mkdir -p "$dir"

offline() {
  echo "check_torch2: $1" >&2
  if [ "${CI:-}" = true ] || [ "${MADCLIP_REQUIRE_TORCH2:-}" = 1 ]; then
    exit 1
  fi
  echo "check_torch2: skipped (offline?); the bridge was not compiled against libtorch 2.x headers" >&2
  exit 0
}

# The package's file and SHA-256 from the suite's index, then the package.
if ! deb=$(/usr/bin/python3 - "$mirror" "$suite" "$dir" <<'EOF'
import hashlib, lzma, os, sys, urllib.request
mirror, suite, out = sys.argv[1:4]
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.read()
    except Exception as e:
        sys.exit(f"{url}: {e}")
index = lzma.decompress(get(f"{mirror}/dists/{suite}/main/binary-amd64/Packages.xz")).decode()
for stanza in index.split("\n\n"):
    fields = dict(l.split(": ", 1) for l in stanza.splitlines() if ": " in l and not l.startswith(" "))
    if fields.get("Package") == "libtorch-dev":
        break
else:
    sys.exit(f"no libtorch-dev in {suite}'s index")
path = os.path.join(out, os.path.basename(fields["Filename"]))
data = open(path, "rb").read() if os.path.exists(path) else b""
if hashlib.sha256(data).hexdigest() != fields["SHA256"]:
    data = get(f"{mirror}/{fields['Filename']}")
    if hashlib.sha256(data).hexdigest() != fields["SHA256"]:
        sys.exit(f"{fields['Filename']}: SHA-256 differs from the index's")
    with open(path + ".part", "wb") as f:
        f.write(data)
    os.rename(path + ".part", path)
print(path)
EOF
); then
  offline "could not fetch libtorch-dev from $mirror ($suite), as said above"
fi
root="$dir/root"
if [ ! -e "$root/.from" ] || [ "$(cat "$root/.from")" != "$deb" ]; then
  rm -rf "$root"
  dpkg-deb -x "$deb" "$root"
  echo "$deb" >"$root/.from"
fi
inc="$root/usr/include"
version=$(awk '/^#define TORCH_VERSION_(MAJOR|MINOR|PATCH) /{v = v (v == "" ? "" : ".") $3} END{print v}' "$inc/torch/csrc/api/include/torch/version.h")
echo "check_torch2: the bridge against libtorch $version's headers ($(basename "$deb"))"
status=0
flags=(-std=gnu++17 -fsyntax-only -D_GLIBCXX_USE_CXX11_ABI=1 -Wall -Wno-unused-function -Werror
  -I cbridge -isystem "$inc" -isystem "$inc/torch/csrc/api/include")
for src in cbridge/*.cpp; do
  # -H lists every header read: none may come from this machine's libtorch.
  if ! log=$(g++ "${flags[@]}" -H "$src" 2>&1); then
    g++ "${flags[@]}" "$src" >&2 || true # the errors alone, without -H's list
    echo "check_torch2: $src does not compile against libtorch $version" >&2
    status=1
    continue
  fi
  if stray=$(echo "$log" | grep -E '^\.+ /usr/include/(ATen|c10|caffe2|torch)/'); then
    echo "check_torch2: $src read this machine's libtorch headers: $(echo "$stray" | head -3)" >&2
    status=1
    continue
  fi
  echo "  $src: ok"
done
exit $status
