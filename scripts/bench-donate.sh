#!/usr/bin/env bash
# Donating tabs benchmark: four donating tabs in headless Chromium serving a file of MIB
# (default 48) through relay 0 after five of six relays are killed; the tabs' store (OPFS),
# CPU and memory idle and serving, and relay 0's CPU per MB relayed. Release builds of the
# relays, kura and the wasm client (tests/browser/donate-bench.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
build_release_for_browser
exec node tests/browser/donate-bench.mjs target/release/kura "${1:-48}"
