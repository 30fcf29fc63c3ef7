//! The pipeline benchmark built for wasm32 and run in headless Chromium:
//! `scripts/bench-pipeline.sh` runs it beside the native one and prints the ratio.
//! Needs `--features bench`; self_encryption does not build for wasm32, so its figures are
//! only in the native run.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/bench/common.rs"]
mod common;

use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn pipeline_bench_in_browser() {
    let mib: usize = option_env!("KURA_BENCH_MIB").and_then(|v| v.parse().ok()).unwrap_or(64);
    let figures = common::run(&|| js_sys::Date::now() / 1000.0, mib << 20, 3);
    for (k, v) in &figures {
        console_log!("{k:>26}: {v:9.1} MB/s");
    }
    assert!(figures.iter().all(|(_, v)| *v > 0.0));
    console_log!("WASM_BENCH_JSON {}", common::json(&figures));
}
