#!/usr/bin/env bash
# Installs what the tests need besides Rust, when it is missing: the PostgreSQL server (Debian's
# package; the tests start and stop throwaway clusters themselves, on loopback ports).
# Needs root (apt-get) only when something is missing.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "install-services: installing PostgreSQL (Debian package postgresql)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  # The tests run their own clusters; the distribution's default one is not needed.
  (service postgresql stop || true) >/dev/null 2>&1
fi
command -v runuser >/dev/null || { echo "install-services: runuser (util-linux) is missing" >&2; exit 1; }
echo "install-services: PostgreSQL $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
