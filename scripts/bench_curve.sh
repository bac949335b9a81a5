#!/usr/bin/env bash
# Time and peak memory of `fitlake run --once` against the size of the batch: one fresh
# lakehouse per landing folder, e.g. the 1, 5, 10 and 20 M reading sets of scripts/gen_landing.py.
# Usage: scripts/bench_curve.sh FITLAKE_BIN LANDING... [-- extra run flags]
# Prints readings, wall, peak RSS (/usr/bin/time) and the slow steps per run (docs/BENCHMARKS.md).
set -euo pipefail
# The shipped policy maps every OS user to `developer`, who acts as the pipeline here
# (and as the producer where a command says --principal producer).
export FITLAKE_PRINCIPAL="${FITLAKE_PRINCIPAL:-pipeline}"
bin="$1"; shift
landings=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do landings+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
work="${WORK:-/tmp/fitlake-curve}"; mkdir -p "$work"
for landing in "${landings[@]}"; do
  bpm=$(cat "$landing"/raw/kafka_multiplex_bz/* | grep -c '"bpm"' || true)
  rm -rf "$work/lh"; "$bin" --lakehouse "$work/lh" setup --quiet >/dev/null
  rm -rf "$work/lh/unmanaged/data_zone"; cp -a "$landing" "$work/lh/unmanaged/data_zone"
  sync; sleep 2
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$bin" --lakehouse "$work/lh" run --once --as-of 2023-03-15 --json "$@" > "$work/run.json"
  read -r secs kb < "$work/time.txt"
  python3 - "$bpm" "$secs" "$kb" "$work/run.json" <<'PY'
import json, sys
bpm, secs, kb, path = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
steps = {s["table"]: s["seconds"] for s in json.load(open(path))["steps"]}
slow = "  ".join(f"{t.split('.')[-1]} {v:.1f}" for t, v in steps.items() if v >= 0.5)
print(f"{bpm:>11,} readings  wall {secs:7.2f} s  {bpm/secs:10,.0f}/s  peak RSS {kb/1024:6.0f} MiB  | {slow}")
PY
done
