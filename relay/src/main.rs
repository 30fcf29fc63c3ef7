//! `kura-relay`: the relay node operators run.
//!
//! Not built yet: the libp2p host, shard store and HTTP endpoints are tracked in the
//! kura-relay issue. Today the binary only reports the protocol it will speak, so that the
//! workspace builds and packaging can be set up.

fn main() {
    eprintln!(
        "kura-relay {}: the relay is not implemented yet (storage protocol {})",
        env!("CARGO_PKG_VERSION"),
        kura_core::wire::STORE_PROTOCOL
    );
    std::process::exit(2);
}
