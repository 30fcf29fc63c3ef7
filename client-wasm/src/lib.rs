//! The Kura client.
//!
//! Today it holds what the offline `kura encode` / `kura decode` commands use besides
//! kura-core: the directory shard store and media-type guessing. The network driver and the
//! browser API (later issues) build on kura-core's encoder and decoder the same way.

#[cfg(not(target_arch = "wasm32"))]
pub mod dirstore;
#[cfg(not(target_arch = "wasm32"))]
pub mod media;
