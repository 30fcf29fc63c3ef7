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
//! Relays' identities carry join work ([`admitted`], [`relay_identity`]): a peer id without
//! it is never counted in a close group.
//!
//! The protocols of the next issues (donation, the credits ledger) live here too.

pub mod audit;
pub mod docs;
pub mod ledger;
pub mod outstanding;
pub mod protocol;
pub mod task;
pub mod transport;
pub mod wallet;

#[cfg(not(target_arch = "wasm32"))]
pub mod alloc;
#[cfg(all(feature = "store-client", not(target_arch = "wasm32")))]
pub mod client;
#[cfg(not(target_arch = "wasm32"))]
pub mod process;
#[cfg(all(feature = "test-util", not(target_arch = "wasm32")))]
pub mod testnet;

/// Whether `peer` carries the join work that close groups ask
/// ([`kura_core::placement::JOIN_BITS`]). Relays count only such peers alive and in their
/// routing tables; clients keep only such peers from lookups.
pub fn admitted(peer: &libp2p::PeerId) -> bool {
    kura_core::placement::may_join(&peer.to_bytes())
}

/// A new relay identity: ed25519 keys are made until one's peer id carries the join work
/// (`2^JOIN_BITS` keys on average, about fifteen seconds of one core at 20 bits).
#[cfg(not(target_arch = "wasm32"))]
pub fn relay_identity() -> libp2p::identity::Keypair {
    loop {
        let key = libp2p::identity::Keypair::generate_ed25519();
        if admitted(&key.public().to_peer_id()) {
            return key;
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    #[test]
    fn a_new_relay_identity_carries_the_join_work() {
        let key = super::relay_identity();
        let id = key.public().to_peer_id();
        assert!(super::admitted(&id));
        assert!(kura_core::placement::join_work(&id.to_bytes()) >= kura_core::placement::JOIN_BITS);
        // Keys made without the work almost never pass (one in 2^JOIN_BITS).
        let passed = (0..256)
            .filter(|_| super::admitted(&libp2p::identity::Keypair::generate_ed25519().public().to_peer_id()))
            .count();
        assert!(passed < 2, "{passed} of 256 plain keys passed");
    }
}
