#!/usr/bin/env bash
# Repair benchmark: one relay holding about KURA_BENCH_HELD_MIB MiB (default 1024) is killed;
# prints the time until every stripe is back to n shards on n live relays, and the bytes
# moved per byte lost. See client-wasm/examples/repair_bench.rs for the environment variables.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p kura-client -p kura-relay --bins --examples
exec target/release/examples/repair_bench
