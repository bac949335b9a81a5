#!/usr/bin/env bash
# Installs the servers the tests run against, when missing; the tests start and stop their own
# throwaway instances on loopback ports:
# - PostgreSQL (Debian's package `postgresql`);
# - Azurite, the Azure Storage emulator (npm package `azurite`, pinned, under $FITLAKE_SERVICES);
# - tansu, a Kafka-protocol broker (crate `tansu`, pinned; a long build, so only when missing);
# - Chromium (Debian's package `chromium`), the headless browser the report test opens the
#   dashboard in;
# - librdkafka (PyPI's `confluent-kafka`), a standard Kafka producer for the compression tests.
# Needs root (apt-get) only when PostgreSQL or Chromium is missing. Prints the variables the tests read.
set -euo pipefail
services="${FITLAKE_SERVICES:-/var/tmp/fitlake-services}"
azurite_version=3.35.0
mkdir -p "$services"

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "install-services: installing PostgreSQL (Debian package postgresql)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  # The tests run their own clusters; the distribution's default one is not needed.
  (service postgresql stop || true) >/dev/null 2>&1
fi
command -v runuser >/dev/null || { echo "install-services: runuser (util-linux) is missing" >&2; exit 1; }
echo "install-services: PostgreSQL $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)" >&2

azurite="$services/azurite-$azurite_version/node_modules/.bin/azurite-blob"
if [ ! -x "$azurite" ]; then
  command -v npm >/dev/null || { echo "install-services: npm (Node.js) is needed for Azurite" >&2; exit 1; }
  echo "install-services: installing azurite@$azurite_version (npm)" >&2
  npm install --silent --no-audit --no-fund --prefix "$services/azurite-$azurite_version" "azurite@$azurite_version" >&2
fi
echo "install-services: Azurite $azurite_version" >&2
echo "export FITLAKE_AZURITE=$azurite"

tansu_version=0.6.0
tansu="$services/tansu-$tansu_version/bin/tansu"
if [ ! -x "$tansu" ]; then
  if command -v tansu >/dev/null && tansu --version 2>/dev/null | grep -q " $tansu_version"; then
    tansu="$(command -v tansu)"
  else
    echo "install-services: building tansu $tansu_version (cargo install; several minutes)" >&2
    cargo install --quiet --locked tansu --version "$tansu_version" --features dynostore \
      --root "$services/tansu-$tansu_version" >&2
  fi
fi
echo "install-services: $("$tansu" --version 2>/dev/null | head -1) ($tansu)" >&2
echo "export FITLAKE_TANSU=$tansu"

if ! command -v chromium >/dev/null; then
  echo "install-services: installing Chromium (Debian package chromium)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
echo "install-services: $(chromium --version 2>/dev/null | head -1)" >&2
echo "export FITLAKE_CHROMIUM=$(command -v chromium)"

# A standard Kafka client (librdkafka, through the `confluent-kafka` package from PyPI, pinned)
# publishing compressed batches, for the Kafka tests (scripts/kafka_publish.py).
kafka_client_version=2.16.1
kafka_client="$services/python-kafka-$kafka_client_version/bin/python"
if [ ! -x "$kafka_client" ] || ! "$kafka_client" -c "import confluent_kafka" 2>/dev/null; then
  echo "install-services: installing confluent-kafka==$kafka_client_version (PyPI)" >&2
  python3 -m venv "$services/python-kafka-$kafka_client_version" >&2
  "$kafka_client" -m pip install --quiet --disable-pip-version-check "confluent-kafka==$kafka_client_version" >&2
fi
echo "install-services: confluent-kafka $kafka_client_version ($kafka_client)" >&2
echo "export FITLAKE_KAFKA_CLIENT=$kafka_client"

# The independent reader the tests open every table with: the Python `deltalake` package (PyPI,
# pinned) in a virtual environment of its own.
deltalake_version=1.6.6
reader="$services/python-deltalake-$deltalake_version/bin/python"
if [ ! -x "$reader" ] || ! "$reader" -c "import deltalake" 2>/dev/null; then
  echo "install-services: installing deltalake==$deltalake_version (PyPI) for the independent reader" >&2
  python3 -m venv "$services/python-deltalake-$deltalake_version" >&2
  "$reader" -m pip install --quiet --disable-pip-version-check "deltalake==$deltalake_version" "pyarrow==21.0.0" >&2
fi
echo "install-services: Python deltalake $deltalake_version ($reader)" >&2
echo "export FITLAKE_DELTA_READER=$reader"
