#!/usr/bin/env bash
# Browser benchmark: the page uploading/downloading MIB (default 512) through six relays over
# WebSocket, with the tab's memory. Release builds of the relays, kura and the wasm client.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_wasm_tools
cargo build -q --release -p kura-client -p kura-relay --bins
scripts/build-www.sh
[ -d tests/browser/node_modules/playwright-core ] || (cd tests/browser && npm install --no-audit --no-fund --silent)
exec node tests/browser/bench.mjs target/release/kura "${1:-512}"
