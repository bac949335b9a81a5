#!/usr/bin/env bash
# The main job on the bundled data, on local storage: setup, seed sets 1 and 2, one batch
# run, then a look at the gold tables. Usage: scripts/demo.sh [LAKEHOUSE_DIR] (default ./lakehouse)
#
# It builds with the test command's own build (`cargo test --workspace --no-run`), so that
# `scripts/test.sh` afterwards compiles nothing again: Polars, arrow and deltalake are built
# once, with one feature set. A cold build takes 11 to 27 minutes on 2 cores (docs/BENCHMARKS.md);
# cargo prints each crate as it compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/toolchain.sh
lakehouse="${1:-./lakehouse}"
target="${CARGO_TARGET_DIR:-target}"
echo "demo: building fitlake and its tests (cold: 11 to 27 minutes on 2 cores; warm: seconds)" >&2
cargo test --workspace --locked --no-run
fitlake() { "$target/debug/fitlake" --lakehouse "$lakehouse" "$@"; }
# fitlake runs as the principal the policy maps this OS user to; the shipped development policy
# maps every local user to `developer`, who may act as the pipeline or the producer.
export FITLAKE_PRINCIPAL=pipeline
fitlake setup
fitlake --principal producer produce --set 1
fitlake --principal producer produce --set 2
fitlake run --once
fitlake show workout_bpm_summary
fitlake show gym_summary
fitlake status
