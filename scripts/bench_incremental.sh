#!/usr/bin/env bash
# The incremental cost, side by side: per round and binary, a full run of LANDING on a fresh
# lakehouse, then a run bringing one more landing file NEW (e.g. 1 % new readings, made with
# scripts/gen_landing.py and scripts/later_day.py as docs/BENCHMARKS.md shows) on a copy of
# that lakehouse; prints both wall times, peak RSS and the share of the full run.
# Usage: scripts/bench_incremental.sh LANDING NEW ROUNDS BIN [BIN...]
#   LANDING: a data_zone folder (raw/...); NEW: a multiplex file; several BINs alternate.
set -euo pipefail
export FITLAKE_PRINCIPAL="${FITLAKE_PRINCIPAL:-pipeline}"
landing="$1"; new="$2"; rounds="$3"; shift 3
work="${WORK:-/tmp/fitlake-bench-incremental}"
mkdir -p "$work"
for round in $(seq "$rounds"); do
  for bin in "$@"; do
    rm -rf "$work/full" "$work/inc"
    "$bin" --lakehouse "$work/full" setup --quiet >/dev/null
    rm -rf "$work/full/unmanaged/data_zone"; cp -a "$landing" "$work/full/unmanaged/data_zone"
    sync; sleep 1
    /usr/bin/time -f "%e %M" -o "$work/full.time" "$bin" --lakehouse "$work/full" run --once --as-of 2023-03-15 --quiet --json >/dev/null
    cp -a "$work/full" "$work/inc"; cp "$new" "$work/inc/unmanaged/data_zone/raw/kafka_multiplex_bz/"
    sync; sleep 1
    /usr/bin/time -f "%e %M" -o "$work/inc.time" "$bin" --lakehouse "$work/inc" run --once --as-of 2023-03-15 --quiet --json >/dev/null
    read -r full full_kb < "$work/full.time"; read -r inc inc_kb < "$work/inc.time"
    python3 -c "import sys; f,fk,i,ik=float(sys.argv[2]),int(sys.argv[3]),float(sys.argv[4]),int(sys.argv[5]); print(f'round {sys.argv[6]} {sys.argv[1]}: full {f:.2f} s {fk//1024} MiB, new file {i:.2f} s {ik//1024} MiB, {100*i/f:.1f} % of the full run')" "$bin" "$full" "$full_kb" "$inc" "$inc_kb" "$round"
  done
done
