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

# apt_install PACKAGE [OPTIONS…]: installs a Debian package quietly.
apt_install() {
  echo "install-services: installing $1 (Debian package $1)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${@:2}" "$1" >/dev/null
}

# python_venv NAME MODULE REQUIREMENT…: a virtual environment $services/python-NAME holding the
# pinned requirements (made when missing or when MODULE does not import); prints its python.
python_venv() {
  local python="$services/python-$1/bin/python"
  if [ ! -x "$python" ] || ! "$python" -c "import $2" 2>/dev/null; then
    echo "install-services: installing ${*:3} (PyPI)" >&2
    python3 -m venv "$services/python-$1" >&2
    "$python" -m pip install --quiet --disable-pip-version-check "${@:3}" >&2
  fi
  echo "$python"
}

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt_install postgresql
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
  apt_install chromium --no-install-recommends
fi
echo "install-services: $(chromium --version 2>/dev/null | head -1)" >&2
echo "export FITLAKE_CHROMIUM=$(command -v chromium)"

# A standard Kafka client (librdkafka, through the `confluent-kafka` package from PyPI, pinned)
# publishing compressed batches, for the Kafka tests (scripts/kafka_publish.py).
kafka_client_version=2.16.1
kafka_client="$(python_venv "kafka-$kafka_client_version" confluent_kafka "confluent-kafka==$kafka_client_version")"
echo "install-services: confluent-kafka $kafka_client_version ($kafka_client)" >&2
echo "export FITLAKE_KAFKA_CLIENT=$kafka_client"

# The independent reader the tests open every table with: the Python `deltalake` package (PyPI,
# pinned) in a virtual environment of its own.
deltalake_version=1.6.6
reader="$(python_venv "deltalake-$deltalake_version" deltalake "deltalake==$deltalake_version" "pyarrow==21.0.0")"
echo "install-services: Python deltalake $deltalake_version ($reader)" >&2
echo "export FITLAKE_DELTA_READER=$reader"
