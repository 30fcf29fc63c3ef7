//! Kura's peer-to-peer layer, shared by relays, the native client and the browser.
//!
//! - [`protocol`]: the storage protocol (`/kura/store/1`) on libp2p request-response: its
//!   ids, the codecs (the client's and the relay's), the bounded piecewise reader that faces
//!   the network;
//! - [`audit`]: the audit protocol (`/kura/audit/1`): a challenge, a proof of possession or
//!   an error, in frames of a few KiB at most;
//! - [`transport`]: which transport a connection is and how messages are written on it
//!   (decided here, once), and the native TCP transport;
//! - [`docs`]: the ready line and `/bootstrap` documents, typed;
//! - [`outstanding`]: requests sent and waiting for their answers, matched once;
//! - [`task`]: a swarm on a task of its own, driven through cloneable handles;
//! - native only: [`process`] (starting a relay process and reading its ready line),
//!   [`alloc`] (the native processes' allocator settings);
//! - feature `store-client`: [`client`], a native storage client over every transport;
//! - feature `test-util`: [`testnet`], swarms connected over libp2p's memory transport.
//!
//! The protocols of the next issues (donation, the credits ledger) live here too.

pub mod audit;
pub mod docs;
pub mod ledger;
pub mod outstanding;
pub mod protocol;
pub mod task;
pub mod transport;

#[cfg(not(target_arch = "wasm32"))]
pub mod alloc;
#[cfg(all(feature = "store-client", not(target_arch = "wasm32")))]
pub mod client;
#[cfg(not(target_arch = "wasm32"))]
pub mod process;
#[cfg(all(feature = "test-util", not(target_arch = "wasm32")))]
pub mod testnet;
