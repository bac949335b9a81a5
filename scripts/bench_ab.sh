#!/usr/bin/env bash
# A/B batch benchmark: the same landing data through two fitlake binaries, alternating, three
# rounds, a fresh lakehouse each run (the machine is noisy: compare runs side by side).
# Usage: scripts/bench_ab.sh OLD_BIN NEW_BIN [USERS] [DAYS] [WORKDIR]
#   (defaults: 500 users x 2 days = 4.97 M bpm envelopes, /tmp/fitlake-ab)
# Prints wall time, peak RSS and the slow steps' seconds per run (docs/BENCHMARKS.md).
set -euo pipefail
# The shipped policy maps every OS user to `developer`, who acts as the pipeline here
# (and as the producer where a command says --principal producer).
export FITLAKE_PRINCIPAL="${FITLAKE_PRINCIPAL:-pipeline}"
old="$1"; new="$2"; users="${3:-500}"; days="${4:-2}"; work="${5:-/tmp/fitlake-ab}"
mkdir -p "$work"
if [ ! -d "$work/landing-$users-$days" ]; then
  "$new" --lakehouse "$work/gen" --principal producer produce --generate --users "$users" --days "$days" --seed 7 --quiet
  mv "$work/gen/unmanaged/data_zone" "$work/landing-$users-$days"; rm -rf "$work/gen"
fi
for round in 1 2 3; do
  for name in old new; do
    if [ "$name" = old ]; then bin="$old"; else bin="$new"; fi
    rm -rf "$work/lh"
    "$bin" --lakehouse "$work/lh" setup --quiet >/dev/null
    rm -rf "$work/lh/unmanaged/data_zone"; cp -a "$work/landing-$users-$days" "$work/lh/unmanaged/data_zone"
    sync; sleep 2
    /usr/bin/time -f "%e %M" -o "$work/time.txt" "$bin" --lakehouse "$work/lh" run --once --as-of 2023-03-15 --json > "$work/$name.json"
    read -r secs kb < "$work/time.txt"
    python3 - "$name" "$round" "$secs" "$kb" "$work/$name.json" <<'PY'
import json, sys
name, rnd, secs, kb, path = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
steps = {s["table"]: s["seconds"] for s in json.load(open(path))["steps"]}
pick = lambda t: next((v for k, v in steps.items() if k.endswith(t)), 0)
print(f"round {rnd} {name}: wall {secs:6.2f} s  peak {kb/1024:6.0f} MiB  kafka_multiplex_bz {pick('kafka_multiplex_bz'):5.2f}  "
      f"heart_rate {pick('.heart_rate'):5.2f}  workout_bpm {pick('.workout_bpm'):5.2f}  workout_bpm_summary {pick('workout_bpm_summary'):5.2f}")
PY
  done
done
