# madclip build. The two commands of the README:
#   make run    set up everything, then run the main job
#   make test   set up everything, then run every test
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
JOBS ?= $(shell nproc)

.PHONY: all deps bridge build run test check-torch2 test-torch2 fuzz bench gpu-bin clean

all: build

deps:
	@scripts/deps.sh

build/libmadclip_bridge.so build/libmadclip_codecs.a &: CMakeLists.txt $(wildcard cbridge/*.cpp cbridge/*.h imaging/codecs/*)
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
	cmake --build build -j $(JOBS)

bridge: deps build/libmadclip_bridge.so build/libmadclip_codecs.a

# Go does not notice a change in a static C library it links: when the
# codecs archive is newer than the binary, the binary goes, so Go links anew.
build: bridge
	@if [ bin/madclip -ot build/libmadclip_codecs.a ]; then rm -f bin/madclip; fi
	$(GO) build -o bin/madclip ./cmd/madclip

# The main job on the built-in default: synthetic data, training (real CLIP
# weights when present, else the tiny random CLIP), evaluation with a report,
# and the heatmap of one test image in build/demo/heatmap.png.
run: build
	scripts/demo.sh

test: build
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count 1 ./...
	scripts/check_torch2.sh
	$(MAKE) --no-print-directory fuzz FUZZTIME=8s

# The bridge compiled against libtorch 2.x's headers (Debian 13's
# libtorch-dev, fetched into build/torch2/), as the GPU machine builds it.
check-torch2:
	scripts/check_torch2.sh

# Every test on libtorch 2.x (CPU) in a Debian 13 root under build/_trixie
# (root needed; about 2.6 GB; not part of make test).
test-torch2:
	scripts/test_torch2.sh

# Minimising each new interesting input may take up to a minute by default,
# during which no new input runs: it ate most of a short budget. The script
# tells Go 1.26's deadline race (go.dev/issue/75804) from a finding.
FUZZTIME ?= 60s
FUZZMINTIME ?= 2s
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZMINTIME=$(FUZZMINTIME) scripts/fuzz.sh

bench: build
	scripts/bench_bridge.sh
	scripts/bench_jpeg.sh
	scripts/bench_prepare.sh
	scripts/bench_peer.sh

# Go binaries for scripts/gpu_check.sh on the GPU machine (which has no Go),
# without symbols so that they travel within the device tool's 64 MiB.
gpu-bin: build
	rm -rf gpu-bin && mkdir -p gpu-bin
	$(GO) test -c -ldflags='-s -w' -o gpu-bin/torch.test ./torch
	$(GO) test -c -ldflags='-s -w' -o gpu-bin/clip.test ./model/clip
	$(GO) test -c -ldflags='-s -w' -o gpu-bin/train.test ./train
	$(GO) build -ldflags='-s -w' -o gpu-bin/madclip ./cmd/madclip
	@du -sh gpu-bin

clean:
	rm -rf build bin gpu-bin build-cuda build-cuda.log
