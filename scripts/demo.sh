#!/usr/bin/env bash
# The main job on the bundled data, on local storage: setup, seed sets 1 and 2, one batch
# run, then a look at the gold tables. Usage: scripts/demo.sh [LAKEHOUSE_DIR] (default ./lakehouse)
set -euo pipefail
cd "$(dirname "$0")/.."
lakehouse="${1:-./lakehouse}"
fitlake() { cargo run --quiet --locked -p fitlake --bin fitlake -- --lakehouse "$lakehouse" "$@"; }
fitlake setup
fitlake --principal producer produce --set 1
fitlake --principal producer produce --set 2
fitlake run --once
fitlake show workout_bpm_summary
fitlake show gym_summary
fitlake status
