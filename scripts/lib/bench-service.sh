# Shared by the benchmarks that run against a server on a loopback port (source it).
# bench_prepare WORKDIR: installs the services (scripts/install-services.sh), builds the release
#   binaries, empties WORKDIR; sets release_dir (the binaries) and port (free on 127.0.0.1).
# start_service NAME COMMAND…: starts COMMAND in WORKDIR with its output in WORKDIR/NAME.log,
#   stops it when the script exits, and waits until it listens on $port.
bench_prepare() {
  work="$1"
  eval "$(scripts/install-services.sh)"
  cargo build --release --locked -p fitlake
  release_dir="${CARGO_TARGET_DIR:-target}/release"
  rm -rf "$work"; mkdir -p "$work"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
}

start_service() {
  local name="$1"; shift
  (cd "$work" && exec "$@" > "$work/$name.log" 2>&1) &
  service_pid=$!
  trap 'kill $service_pid 2>/dev/null || true' EXIT
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0; sleep 0.1; done
  echo "$name did not listen on $port; see $work/$name.log" >&2
  return 1
}
