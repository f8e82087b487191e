#!/usr/bin/env bash
# Runs each fuzz target for FUZZTIME (default 60s). Go 1.26's fuzzing
# coordinator can end a run that found nothing with a bare "context deadline
# exceeded" when -fuzztime expires while a worker is mid-input
# (go.dev/issue/75804, fixed in Go 1.27). Such a run wrote no failing input:
# it is run once more, and a second bare deadline is reported and passed.
# Anything else that fails (a failing input, a panic, a test error) fails.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
FUZZMINTIME=${FUZZMINTIME:-2s}
targets=(
  "FuzzParse ./torch/safetensors"
  "FuzzEncode ./model/clip/bpe"
  "FuzzUnpickle ./torch/torchsave"
  "FuzzDecode ./imaging"
  "FuzzResize ./imaging"
  "FuzzPNG ./imaging"
)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# bare_deadline: the run's only complaint is the coordinator's deadline.
bare_deadline() {
  grep -q 'context deadline exceeded' "$log" &&
    ! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$log"
}
for t in "${targets[@]}"; do
  set -- $t
  for attempt in 1 2; do
    echo "$GO test -run '^\$' -fuzz $1 -fuzztime $FUZZTIME -fuzzminimizetime $FUZZMINTIME $2"
    "$GO" test -run '^$' -fuzz "$1" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINTIME" "$2" 2>&1 | tee "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] && break
    if ! bare_deadline; then
      exit 1
    fi
    if [ "$attempt" -eq 1 ]; then
      echo "fuzz: $1 ended on the coordinator's deadline without a failing input (go.dev/issue/75804); running it again"
    else
      echo "fuzz: $1 ended on the coordinator's deadline again, without a failing input: not a finding"
    fi
  done
done
