# Shared set-up for Kura's scripts: installs what is missing, skips what is there.
# Sourced, not run. Needs the Rust toolchain (rustup), apt (as root or with sudo), node/npm.

log() { printf '\033[1m[kura]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1; fi
}

apt_install() {
  # apt_install BINARY PACKAGE...: installs PACKAGEs unless BINARY is already on PATH.
  local bin=$1; shift
  command -v "$bin" >/dev/null 2>&1 && return 0
  log "installing $* (apt)"
  if [ -z "${KURA_APT_UPDATED:-}" ]; then
    as_root apt-get update -qq && export KURA_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# The wasm-bindgen version pinned in Cargo.lock (the CLI must match it exactly).
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

need_wasm_tools() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  local want; want=$(wasm_bindgen_version)
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
    log "installing wasm-bindgen-cli $want (about 3 minutes)"
    # No --locked: the CLI's own lock file pins crates the registry may not have.
    cargo install -q wasm-bindgen-cli --version "$want"
  fi
  apt_install chromium chromium
  apt_install chromedriver chromium-driver
  apt_install wasm-objdump wabt
  export CHROMEDRIVER=${CHROMEDRIVER:-$(command -v chromedriver)}
}

need_cargo_fuzz() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install -q cargo-fuzz
  fi
}

# Release builds of the relays, kura and the wasm client (into www/pkg), for the browser
# benchmarks.
build_release_for_browser() {
  need_wasm_tools
  cargo build -q --release -p kura-client -p kura-relay --bins
  scripts/build-www.sh
}
