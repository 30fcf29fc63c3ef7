//! The Kura client, one codebase for the native `kura` command and the browser.
//!
//! - [`donor`]: a donating client, holding and serving shards for others through a relay;
//! - [`net`]: the libp2p swarm (Kademlia client, `/kura/store/1`) behind a cloneable handle;
//! - [`transfer`]: put and get of whole files over it, each stripe run by a kura-core
//!   placement machine;
//! - [`ws`]: the browser's WebSocket transport (its address parsing builds everywhere);
//! - wasm32 only: `web`, the Promise-based JavaScript API (wasm-bindgen), and `opfs`, a
//!   donating tab's shards in the Origin Private File System;
//! - native only: [`dirstore`] (the offline `kura encode`/`decode` store), [`media`] (media
//!   types from file names), [`bootstrap`] (relay addresses from a `/bootstrap` URL),
//!   [`devnet`] (a local network of relay processes).

pub mod check;
pub mod donor;
pub mod net;
#[cfg(target_arch = "wasm32")]
pub mod opfs;
pub mod transfer;
pub mod wallet;
#[cfg(target_arch = "wasm32")]
pub mod web;
pub mod ws;

#[cfg(not(target_arch = "wasm32"))]
pub mod bootstrap;
#[cfg(not(target_arch = "wasm32"))]
pub mod devnet;
#[cfg(not(target_arch = "wasm32"))]
pub mod dirstore;
#[cfg(not(target_arch = "wasm32"))]
pub mod media;
