#!/usr/bin/env bash
# The test command: every crate's unit, snapshot and integration tests, with the lock file.
# The servers the source and storage tests run against (PostgreSQL, Azurite) are installed here
# when missing (scripts/install-services.sh); the tests start and stop their own instances.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/toolchain.sh
# Snapshots are found from this checkout, not from the folder a test binary was compiled in:
# clones share one target folder, and cargo may reuse a test binary built in another clone.
export INSTA_WORKSPACE_ROOT="$PWD"
eval "$(scripts/install-services.sh)"
exec cargo test --workspace --locked "$@"
