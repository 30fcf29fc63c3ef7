#!/usr/bin/env bash
# Relay benchmark: one real kura-relay on 127.0.0.1 driven by 100 native clients.
# Usage: scripts/bench-relay.sh   (KURA_BENCH_CLIENTS, KURA_BENCH_SECONDS, KURA_BENCH_RATE)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p kura-relay --bins --examples
exec target/release/examples/relay_bench
