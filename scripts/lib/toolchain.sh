# Sourced by the scripts that build: makes the toolchain rust-toolchain.toml pins available.
# On a machine whose rustup has the pinned version only as `stable` and cannot download it
# (like this project's CI, which reaches no toolchain server), stable is made to answer to the
# pinned name when it is that version; elsewhere rustup installs the pinned toolchain on first
# use, as usual.
fitlake_pin_toolchain() {
  local pinned host home stable
  pinned=$(sed -n 's/^channel = "\(.*\)"/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../../rust-toolchain.toml")
  command -v rustup >/dev/null 2>&1 || return 0
  rustup toolchain list | grep -q "^$pinned" && return 0
  home="${RUSTUP_HOME:-$HOME/.rustup}"
  stable="$home/toolchains/$(rustup toolchain list | sed -n 's/^\(stable-[^ ]*\).*/\1/p' | head -n 1)"
  [ -x "$stable/bin/rustc" ] || return 0
  "$stable/bin/rustc" --version | grep -q "^rustc $pinned " || return 0
  host=$("$stable/bin/rustc" -vV | sed -n 's/^host: //p')
  ln -sfn "$stable" "$home/toolchains/$pinned-$host"
}
fitlake_pin_toolchain
