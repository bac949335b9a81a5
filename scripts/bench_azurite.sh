#!/usr/bin/env bash
# Storage benchmark: the batch pipeline (`fitlake run --once`) on generated data with the
# lakehouse on local disk and on Azurite (the Azure Storage emulator, in memory, on a loopback
# port), 3 fresh runs each. Numbers go to docs/BENCHMARKS.md.
# Usage: scripts/bench_azurite.sh [USERS] [DAYS] [WORKDIR]   (defaults: 100 users, 2 days)
set -euo pipefail
# The shipped policy maps every OS user to `developer`, who acts as the pipeline here
# (and as the producer where a command says --principal producer).
export FITLAKE_PRINCIPAL="${FITLAKE_PRINCIPAL:-pipeline}"
cd "$(dirname "$0")/.."
users="${1:-100}"; days="${2:-2}"; work="${3:-/tmp/fitlake-bench-azurite}"
source scripts/lib/bench-service.sh
bench_prepare "$work"
bin="$release_dir/fitlake"
start_service azurite "$FITLAKE_AZURITE" --blobHost 127.0.0.1 --blobPort "$port" --inMemoryPersistence \
  --disableTelemetry --skipApiVersionCheck
export AZURE_STORAGE_USE_EMULATOR=true AZURITE_BLOB_STORAGE_URL="http://127.0.0.1:$port"

for run in 1 2 3; do
  for where in local azurite; do
    case $where in
      local) lake="$work/lh" ; rm -rf "$lake" ;;
      azurite) lake="abfss://run$run@devstoreaccount1.dfs.core.windows.net/fitlake" ;;
    esac
    "$bin" --lakehouse "$lake" setup --quiet > /dev/null
    "$bin" --lakehouse "$lake" --principal producer --quiet produce --generate --users "$users" --days "$days" \
      --seed 7 > /dev/null
    /usr/bin/time -f "%e %M" -o "$work/time.txt" "$bin" --lakehouse "$lake" run --once --as-of 2023-03-15 --json \
      > "$work/$where-$run.json"
    read -r secs kb < "$work/time.txt"
    python3 - "$where" "$run" "$secs" "$kb" "$work/$where-$run.json" <<'PY'
import json, sys
where, run, secs, kb, path = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
steps = json.load(open(path))["steps"]
bpm = next(s for s in steps if s["table"] == "silver.heart_rate")["rows_read"]
slow = max(steps, key=lambda s: s["seconds"])
print(f"run {run} {where:<8} wall {secs:6.2f} s  {bpm:,} BPM records  {bpm / secs:,.0f}/s  peak RSS {kb / 1024:.0f} MiB  "
      f"slowest step {slow['table']} {slow['seconds']:.2f} s")
PY
  done
done
