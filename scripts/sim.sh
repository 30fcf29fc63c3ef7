#!/usr/bin/env bash
# Kura at scale: runs every scenario of the simulator (sim/, deterministic by seed) and
# writes docs/scale/: Markdown tables, CSV, and PNG plots.
#   scripts/sim.sh            the full run (1,000 to 100,000 relays; about 25 minutes here)
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
if [[ " $* " != *" --quick "* ]]; then
  log "timing whole churn runs at 10,000 and 100,000 relays"
  {
    printf '# The simulator at size\n\n'
    printf 'A whole churn run (relay operators, 4+2, repair at once as the relays repair: every stripe whose relays changed is planned by `plan_group` each 30-minute tick and its lost shards rebuilt together; Kademlia tables and lookups at these sizes are in lookups.md), each size in a process of its own: `kura-sim size --relays N --stripes S --days 30`. Peak memory is the process'"'"'s.\n\n'
    printf '| relays | stripes | days | plans | rebuilds | stripes lost | time | peak memory |\n|---|---|---|---|---|---|---|---|\n'
  } > "$out/size.md"
  target/release/kura-sim size --relays 10000 --stripes 20000 --append "$out/size.md"
  target/release/kura-sim size --relays 100000 --stripes 200000 --append "$out/size.md"
fi
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
