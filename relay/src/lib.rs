//! `kura-relay`: the relay node operators run, as a library so that tests and benchmarks can
//! drive its parts. The binary (`src/main.rs`) wires them together:
//!
//! - [`store`]: shards on disk (redb metadata + crash-safe files), verified in and out;
//! - [`node`]: the libp2p host (TCP, QUIC, WebSocket, WebRTC-direct; Kademlia server,
//!   identify, ping, circuit relay v2, AutoNAT, connection and memory limits) and its loop;
//! - [`http`]: the page, `/bootstrap`, `/metrics`, `/health`, `/status`;
//! - [`config`]: flags and the TOML file;
//! - [`repair`]: repair rounds and rebuilds; [`ip_limits`]: connections per address;
//! - [`ledger`]: the relay as a replica of the credits ledger, its journal in redb.
//!
//! The storage protocol's codecs, the transports and the documents a relay writes are in
//! `kura-p2p`, shared with the client.

pub mod circuit_bytes;
pub mod config;
pub mod donation;
pub mod epochs;
pub mod farming;
pub mod http;
pub mod ip_limits;
pub mod ledger;
pub mod metrics;
pub mod node;
pub mod operator;
pub mod repair;
pub mod status;
pub mod store;

/// Seconds since the Unix epoch (the ledger's spending windows, farming's epochs and free
/// allowance windows, the operator's samples).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
