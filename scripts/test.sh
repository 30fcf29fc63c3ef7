#!/usr/bin/env bash
# Kura's whole test suite, from a fresh clone: installs what it needs, then runs
#   1. lints (rustfmt, clippy with warnings as errors)
#   2. every native test (unit, property, known-answer, end-to-end with the real binaries)
#   3. kura-core's test suite compiled to wasm32 and run in headless Chromium
#   4. a check that the wasm build imports nothing from `env`
#   5. the page driven in headless Chromium (tests/browser/page.test.mjs, Playwright), donating
#      tabs (tests/browser/donate.test.mjs), a donating tab earning and paying
#      (tests/browser/earn.test.mjs), and the browser client's API (wasm-bindgen-test)
#      against a local network of relays
#   6. the known-answer vectors checked by an independent Python implementation
#   7. a short run of every fuzz target (KURA_FUZZ_SECONDS each, default 20; 0 skips)
#   and, after the native tests, the simulator's scenarios at small sizes
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# A run from a fresh clone gains nothing from incremental files and they double the target
# directory; say how much disk there is, since a full run needs several GiB.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
log "disk: $(df -h --output=avail . | tail -n 1 | tr -d ' ') free here"
need_wasm_tools
apt_install python3 python3

log "lints"
cargo fmt --all -- --check
cargo clippy -q --workspace --all-targets -- -D warnings
cargo clippy -q -p kura-core --target wasm32-unknown-unknown --lib --tests -- -D warnings
cargo clippy -q -p kura-client --target wasm32-unknown-unknown --lib --test browser -- -D warnings

log "native tests (with a churn soak of KURA_SOAK_SECONDS, default 120)"
KURA_SOAK_SECONDS=${KURA_SOAK_SECONDS:-120} cargo test -q --workspace

log "the simulator's small version (scripts/sim.sh runs the full one into docs/scale)"
simdir=$(mktemp -d)
cargo run -q -p kura-sim -- all --quick --out "$simdir"
for t in lookups capture durability audits economy; do
  [ -s "$simdir/$t.md" ] && [ -s "$simdir/$t.csv" ] || { echo "kura-sim wrote no $t table" >&2; exit 1; }
done
for t in ledger load bandwidth loss rebuilds groups; do
  [ -s "$simdir/$t.md" ] || { echo "kura-sim wrote no $t table" >&2; exit 1; }
done
rm -rf "$simdir"

log "kura-core tests in headless Chromium (wasm32)"
# No -q here: cargo would pass --quiet on to wasm-bindgen-test-runner, which refuses it.
cargo test -p kura-core --target wasm32-unknown-unknown --tests

log "wasm imports"
bad=0
for w in target/wasm32-unknown-unknown/debug/deps/pipeline-*.wasm; do
  if wasm-objdump -x -j Import "$w" | grep -- '<- env\.'; then
    log "$w imports from env (it would not load in a browser)"; bad=1
  fi
done
[ "$bad" = 0 ]

log "the page in headless Chromium (upload, share link, download, 2 of 6 relays killed, damaged link)"
scripts/build-www.sh --dev
if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -x tests/browser/node_modules/.bin/tsc ]; then
  log "installing playwright-core and typescript (npm)"
  (cd tests/browser && npm install --no-audit --no-fund --silent)
fi
log "the page, the service worker, the client's worker and the message module type-checked (the wasm-bindgen .d.ts, the DOM's types)"
(cd tests/browser && node_modules/.bin/tsc -p tsconfig.json && node_modules/.bin/tsc -p tsconfig.page.json)
cargo build -q --workspace --all-targets   # a no-op after the tests above: same features
node tests/browser/page.test.mjs target/debug/kura target/browser-artifacts

log "donating tabs in headless Chromium (four tabs hold a file's data shards; five of six relays killed)"
node tests/browser/donate.test.mjs target/debug/kura target/browser-artifacts

log "a donating tab in headless Chromium earns from the relays and pays for an upload with it"
node tests/browser/earn.test.mjs target/debug/kura target/browser-artifacts

log "the browser client's API in headless Chromium against a local network (WebSocket, WebRTC-direct)"
netdir=$(mktemp -d)
target/debug/kura devnet --relays 6 --dir "$netdir" --http 127.0.0.1:0 --base-port 0 \
  --identities p2p/src/join_keys.txt > "$netdir/out" &
devnet=$!
stop_devnet() { kill -TERM "$devnet" 2>/dev/null || true; wait "$devnet" 2>/dev/null || true; rm -rf "$netdir"; }
trap stop_devnet EXIT
for _ in $(seq 1200); do grep -q '^page:' "$netdir/out" 2>/dev/null && break; sleep 0.1; done
page=$(awk '/^page:/ { print $2 }' "$netdir/out")
[ -n "$page" ] || { log "kura devnet did not start"; cat "$netdir/out"; exit 1; }
KURA_TEST_BOOTSTRAP=$(python3 -c 'import json, sys, urllib.request
print(",".join(json.load(urllib.request.urlopen(sys.argv[1] + "bootstrap"))["addrs"]))' "$page")
export KURA_TEST_BOOTSTRAP
cargo test -p kura-client --target wasm32-unknown-unknown --test browser
stop_devnet
trap - EXIT

log "known-answer vectors against the independent Python implementation"
apt_install python3 python3
if ! python3 -c "import blake3, cryptography" 2>/dev/null; then
  python3 -m pip --version >/dev/null 2>&1 || apt_install pip3 python3-pip
  python3 -m pip install -q blake3 cryptography 2>/dev/null \
    || python3 -m pip install -q --break-system-packages blake3 cryptography
fi
python3 scripts/check_vectors.py

secs=${KURA_FUZZ_SECONDS:-20}
if [ "$secs" != 0 ]; then
  need_cargo_fuzz
  log "fuzz targets, ${secs}s each"
  for t in $(cd fuzz && cargo fuzz list); do
    mkdir -p "fuzz/corpus/$t"
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 | tail -n 2)
  done
fi
log "all tests passed"
