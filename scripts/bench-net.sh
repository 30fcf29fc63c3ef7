#!/usr/bin/env bash
# Network benchmark: kura put / get through a local network of kura-relay processes, next to
# the pipeline benchmark run in the same process. See client-wasm/examples/net_bench.rs for the
# environment variables (file size, relays, k, m).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p kura-client -p kura-relay --bins --examples
exec target/release/examples/net_bench
