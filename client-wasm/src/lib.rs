//! The Kura client.
//!
//! Today it holds the directory shard store used by the offline `kura encode` / `kura decode`
//! commands and the file encoding driver they share. The network driver and the browser API
//! are built on the same pieces.

#[cfg(not(target_arch = "wasm32"))]
pub mod dirstore;
#[cfg(not(target_arch = "wasm32"))]
pub mod media;
