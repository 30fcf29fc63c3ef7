#!/usr/bin/env bash
# Kura at scale: runs every scenario of the simulator (sim/, deterministic by seed) and
# writes docs/scale/: Markdown tables, CSV, and PNG plots.
#   scripts/sim.sh            the full run (1,000 to 100,000 relays; a few minutes)
#   scripts/sim.sh --quick    small sizes (seconds), as the test suite runs it
# Extra arguments go to `kura-sim all` (for example --seed 2 or --nodes 1000,10000).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
out=${KURA_SIM_OUT:-docs/scale}
log "building the simulator"
cargo build -q --release -p kura-sim
log "running the scenarios into $out"
mkdir -p "$out"
start=$(date +%s)
target/release/kura-sim all --out "$out" "$@"
printf '\nWhole run (every scenario): %s s on this machine.\n' "$(( $(date +%s) - start ))" >> "$out/lookups.md"
apt_install python3 python3
if ! python3 -c "import matplotlib" 2>/dev/null; then
  log "installing matplotlib (pip) for the plots"
  python3 -m pip install -q --user matplotlib 2>/dev/null \
    || python3 -m pip install -q --user --break-system-packages matplotlib 2>/dev/null \
    || log "matplotlib could not be installed: tables only"
fi
if python3 -c "import matplotlib" 2>/dev/null; then
  python3 sim/plot.py "$out"
fi
log "done: $out"
