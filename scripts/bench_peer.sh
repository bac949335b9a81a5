#!/usr/bin/env bash
# fitlake against its peer (scripts/peer_pipeline.py: the same pipeline in Python Polars +
# deltalake) on the same landing data, back to back, three rounds, a fresh lakehouse each run;
# then the two lakehouses' silver and gold tables are compared row for row.
# Usage: scripts/bench_peer.sh FITLAKE_BIN LANDING [WORKDIR] [PYTHON]
#   LANDING: a data_zone folder (raw/...), from `fitlake produce --generate` or scripts/gen_landing.py
#   PYTHON: a Python with polars==1.35.2 deltalake==1.6.6 pyarrow==21.0.0 (default /var/tmp/fitlake-peer/bin/python)
# Prints wall time and peak RSS (/usr/bin/time) per run, for docs/BENCHMARKS.md.
set -euo pipefail
# The shipped policy maps every OS user to `developer`, who acts as the pipeline here
# (and as the producer where a command says --principal producer).
export FITLAKE_PRINCIPAL="${FITLAKE_PRINCIPAL:-pipeline}"
here="$(cd "$(dirname "$0")" && pwd)"
bin="$1"; landing="$2"; work="${3:-/tmp/fitlake-peer-bench}"; py="${4:-/var/tmp/fitlake-peer/bin/python}"
mkdir -p "$work"
bpm=$(cat "$landing"/raw/kafka_multiplex_bz/* | grep -c '"bpm"' || true)
echo "landing: $landing, $bpm bpm envelopes, $(du -sh "$landing" | cut -f1)"
report() { # name round
  read -r secs kb < "$work/time.txt"
  python3 -c "import sys; s=float(sys.argv[3]); print(f'round {sys.argv[2]} {sys.argv[1]:<7} wall {s:7.2f} s  peak RSS {int(sys.argv[4])/1024:6.0f} MiB  {int(sys.argv[5])/s:11,.0f} bpm records/s')" "$1" "$2" "$secs" "$kb" "$bpm"
}
for round in 1 2 3; do
  rm -rf "$work/fitlake"
  "$bin" --lakehouse "$work/fitlake" setup --quiet >/dev/null
  rm -rf "$work/fitlake/unmanaged/data_zone"; cp -a "$landing" "$work/fitlake/unmanaged/data_zone"
  sync; sleep 2
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$bin" --lakehouse "$work/fitlake" run --once --as-of 2023-03-15 --json > "$work/fitlake.json"
  report fitlake "$round"
  rm -rf "$work/peer"; sync; sleep 2
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$py" "$here/peer_pipeline.py" "$landing" "$work/peer" --as-of 2023-03-15 > "$work/peer.txt"
  report peer "$round"
  echo "    $(cat "$work/peer.txt")"
done
"$py" "$here/compare_lakehouses.py" "$work/fitlake" "$work/peer" --layers silver,gold
