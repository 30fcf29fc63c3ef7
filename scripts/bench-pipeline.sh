#!/usr/bin/env bash
# Pipeline benchmark, native and in headless Chromium (wasm32), with the wasm/native ratio.
# Usage: scripts/bench-pipeline.sh   (set KURA_BENCH_MIB to change the 64 MiB input)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_wasm_tools
echo "== native =="
native=$(cargo run --release -q -p kura-core --example pipeline_bench | tee /dev/stderr | tail -n 1)
echo "== wasm32 in headless Chromium (simd128) =="
# simd128 comes from .cargo/config.toml, as for every wasm build.
wasm=$(
  KURA_BENCH_MIB="${KURA_BENCH_MIB:-64}" \
  cargo test --release -p kura-core --target wasm32-unknown-unknown --features bench \
  --test wasm_bench -- --nocapture 2>&1 | tee /dev/stderr | sed -n 's/.*WASM_BENCH_JSON //p' | tail -n 1)
python3 - "$native" "$wasm" <<'PY'
import json, sys
n, w = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("\nwasm / native, same machine, same input:")
for k in [k for k in w if k in n]:
    print(f"  {k:>22}: wasm {w[k]:8.1f}  native {n[k]:8.1f}  ratio {w[k]/n[k]:.2}")
print(json.dumps({"wasm": w, "native": n, "wasm_encode_over_native": round(w["kura_encode"] / n["kura_encode"], 3)}))
PY
