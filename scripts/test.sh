#!/usr/bin/env bash
# The test command: every crate's unit, snapshot and integration tests, with the lock file.
# The PostgreSQL source tests need the PostgreSQL server binaries: installed here when missing
# (scripts/install-services.sh); the tests start and stop their own throwaway clusters.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-services.sh
exec cargo test --workspace --locked "$@"
