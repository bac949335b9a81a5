#!/usr/bin/env bash
# Kafka ingestion benchmark: publish generated data to a tansu broker on a loopback port, then
# time `fitlake-bronze --once --source kafka` into fresh lakehouses (3 runs). Numbers go to
# docs/BENCHMARKS.md.
# Usage: scripts/bench_kafka.sh [USERS] [DAYS] [PARTITIONS] [WORKDIR]
#        (defaults: 200 users, 1 day, 3 partitions per topic)
set -euo pipefail
# The shipped policy maps every OS user to `developer`, who acts as the pipeline here
# (and as the producer where a command says --principal producer).
export FITLAKE_PRINCIPAL="${FITLAKE_PRINCIPAL:-pipeline}"
cd "$(dirname "$0")/.."
users="${1:-200}"; days="${2:-1}"; partitions="${3:-3}"; work="${4:-/tmp/fitlake-bench-kafka}"
source scripts/lib/bench-service.sh
bench_prepare "$work"
bin="$release_dir"
brokers="127.0.0.1:$port"
start_service tansu "$FITLAKE_TANSU" broker --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
  --storage-engine memory://tansu/

"$bin/fitlake" --lakehouse "$work/producer" setup --quiet > /dev/null
start=$(date +%s.%N)
"$bin/fitlake" --lakehouse "$work/producer" --principal producer --quiet produce --generate --users "$users" \
  --days "$days" --seed 7 --to kafka --brokers "$brokers" --partitions "$partitions" > /dev/null
publish=$(python3 -c "import time; print(time.time() - $start)")
echo "published (generation included) in $publish s"

for run in 1 2 3; do
  rm -rf "$work/lh"
  "$bin/fitlake" --lakehouse "$work/lh" setup --quiet > /dev/null
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$bin/fitlake-bronze" --lakehouse "$work/lh" --once \
    --as-of 2023-03-15 --source kafka --brokers "$brokers" --json > "$work/run-$run.json"
  read -r secs kb < "$work/time.txt"
  python3 - "$run" "$secs" "$kb" "$work/run-$run.json" <<'PY'
import json, sys
run, secs, kb, path = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
steps = {s["table"]: s for s in json.load(open(path))["steps"]}
kafka = next(s for t, s in steps.items() if "(kafka)" in t)
print(f"run {run}: {kafka['rows_read']:,} records in {kafka['seconds']:.2f} s (step) = "
      f"{kafka['rows_read'] / kafka['seconds']:,.0f} records/s into bronze; process wall {secs:.2f} s, "
      f"peak RSS {kb / 1024:.0f} MiB")
PY
done
