#!/usr/bin/env bash
# Kura's main command: `kura devnet`, a local network of kura-relay processes on 127.0.0.1
# that find each other, each serving the web page, its /bootstrap document and /metrics.
# It prints the bootstrap address and the page URL; Ctrl-C stops them all.
# Usage: scripts/run.sh [--relays N] [--dir DIR] [--http ADDR] [--base-port P]
#   N relays (default 6, enough for k=4 m=2 on distinct relays; a new relay first makes its
#   identity, about 16 s of one core); data and logs under DIR
#   (default ./devnet); relay 0's HTTP on ADDR (default 127.0.0.1:8080), relay i on port+i;
#   relay i's libp2p ports from P+10i (default 4100).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

log "building kura and kura-relay (release; the first build takes several minutes)"
cargo build -q --release -p kura-client -p kura-relay --bins
scripts/build-www.sh
exec target/release/kura devnet "$@"
