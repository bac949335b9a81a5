#!/usr/bin/env bash
# The test command: every crate's unit, snapshot and integration tests, with the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --workspace --locked "$@"
