#!/usr/bin/env bash
# Builds the browser client (kura-client for wasm32, release) into www/pkg, where the page
# loads it from. Usage: scripts/build-www.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_wasm_tools
profile=release; flag=--release
if [ "${1:-}" = --dev ]; then profile=debug; flag=; fi
log "building the browser client (wasm32, $profile)"
cargo rustc -q -p kura-client --lib $flag --target wasm32-unknown-unknown --crate-type cdylib
wasm-bindgen --target web --out-dir www/pkg \
  "target/wasm32-unknown-unknown/$profile/kura_client.wasm"
