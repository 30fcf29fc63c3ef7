#!/usr/bin/env bash
# Browser benchmark: the page uploading/downloading MIB (default 512) through six relays over
# WebSocket, with the tab's memory; then uploads from a page's main thread over WebRTC-direct
# and over WebSocket (KURA_BENCH_RTC_MIB, default min(MIB, 128)). Release builds of the relays,
# kura and the wasm client; Chromium driven over a DevTools pipe (tests/browser/cdp.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
build_release_for_browser
exec node tests/browser/bench.mjs target/release/kura "${1:-512}"
