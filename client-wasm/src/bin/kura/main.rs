//! `kura`: Kura's command-line client (native only; see `cli.rs`). On wasm32 the crate is the
//! browser library and this binary is empty, so that `cargo test --target wasm32` builds.

#[cfg(not(target_arch = "wasm32"))]
#[path = "cli.rs"]
mod cli;

fn main() {
    #[cfg(not(target_arch = "wasm32"))]
    cli::main();
}
