#!/usr/bin/env bash
# Batch benchmark: generate synthetic landing data, then time `fitlake run --once` per layer
# and end to end on a fresh lakehouse, with peak memory. Numbers go to docs/BENCHMARKS.md.
# Usage: scripts/bench.sh [USERS] [DAYS] [WORKDIR]   (defaults: 1100 users, 2 days = 10.9M BPM readings)
set -euo pipefail
# The shipped policy maps every OS user to `developer`, who acts as the pipeline here
# (and as the producer where a command says --principal producer).
export FITLAKE_PRINCIPAL="${FITLAKE_PRINCIPAL:-pipeline}"
cd "$(dirname "$0")/.."
users="${1:-1100}"; days="${2:-2}"; work="${3:-/tmp/fitlake-bench}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked -p fitlake
bin="$target/release/fitlake"
mkdir -p "$work"
if [ ! -d "$work/landing-$users-$days" ]; then
  "$bin" --lakehouse "$work/gen" --principal producer produce --generate --users "$users" --days "$days" --seed 7 --quiet
  mv "$work/gen/unmanaged/data_zone" "$work/landing-$users-$days"; rm -rf "$work/gen"
fi
bpm=$(cat "$work/landing-$users-$days"/raw/kafka_multiplex_bz/*bpm* | wc -l)
echo "BPM records: $bpm"
fresh() { rm -rf "$work/lh"; "$bin" --lakehouse "$work/lh" setup --quiet >/dev/null; rm -rf "$work/lh/unmanaged/data_zone"; cp -r "$work/landing-$users-$days" "$work/lh/unmanaged/data_zone"; }
measure() { # label, args...
  local label="$1"; shift
  sync; sleep 2
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$bin" --lakehouse "$work/lh" run --once --as-of 2023-03-15 --json "$@" > "$work/$label.json"
  read -r secs kb < "$work/time.txt"
  python3 - "$label" "$secs" "$kb" "$bpm" "$work/$label.json" <<'PY'
import json, sys
label, secs, kb, bpm, path = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
report = json.load(open(path))
steps = {s["table"]: s for s in report["steps"]}
slow = max(report["steps"], key=lambda s: s["seconds"])
print(f"{label:<12} wall {secs:7.2f} s  {bpm/secs:12,.0f} BPM records/s  peak RSS {kb/1024:7.0f} MiB  slowest step {slow['table']} {slow['seconds']:.2f} s")
for s in report["steps"]:
    if s["seconds"] > 0.05:
        print(f"    {s['table']:<28} {s['seconds']:7.2f} s  read {s['rows_read']:>10}  written {s['rows_written']:>10}")
PY
}
fresh
measure bronze --layer bronze
measure silver --layer silver
measure gold --layer gold
for run in 1 2 3; do
  fresh
  measure "end-to-end-$run"
done
