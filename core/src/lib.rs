//! `kura-core`: the objects every part of Kura moves, with no IO.
//!
//! A file becomes a sequence of fixed-size plaintext **chunks**. Each chunk is encrypted
//! with a convergent key ([`crypto`]), split into `k` data and `m` parity shards with
//! Reed-Solomon ([`erasure`]), and described by a self-verifying **stripe header**
//! ([`stripe`]). The list of chunks is a **data map** ([`datamap`]), itself stored as stripes
//! (recursively when large); its root stripe id and key form the **capability**
//! ([`capability`]). [`Encoder`] and [`Decoder`] drive the whole pipeline without doing any
//! IO: callers feed bytes and shards in, and take stripes and plaintext out. The storage
//! protocol's messages and their codec live in [`wire`]; where shards go and which relays
//! to read from is decided by the machines in [`placement`].
//!
//! Everything builds for `wasm32-unknown-unknown` as well as natively, and produces
//! byte-identical output on both (checked by `tests/vectors`).

pub mod address;
pub mod audit;
pub mod budget;
pub mod capability;
pub mod crypto;
pub mod datamap;
pub mod decoder;
pub mod donation;
pub mod encoder;
pub mod erasure;
pub mod error;
pub mod farming;
pub mod hex;
pub mod ledger;
pub mod placement;
pub mod proof;
pub mod repair;
pub mod source;
pub mod stripe;
pub mod testdata;
pub mod vrf;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm_aead;
pub mod wire;

pub use address::{ShardId, StripeId};
pub use capability::{Capability, CapabilityError};
pub use crypto::{ChunkKey, Secret};
pub use datamap::{ChunkRef, DataMap, DataMapError, FileMap, FileMeta};
pub use decoder::{DecodeError, Decoder};
pub use encoder::{EncodeError, EncodeOptions, Encoder, Finish};
pub use erasure::{ErasureError, Params};
pub use error::{ErrorDetails, ErrorKind, UserError};
pub use source::{decode_from, ShardSource};
pub use stripe::{HeaderError, Stripe, StripeAssembler, StripeError, StripeHeader};

/// Plaintext chunk size used for files (1 MiB). The last chunk of a file is shorter.
pub const CHUNK_SIZE: usize = 1 << 20;
/// Largest chunk size a data map may declare.
pub const MAX_CHUNK_SIZE: usize = CHUNK_SIZE;
/// Smallest chunk size a data map may declare. Below this a nested data map would not
/// shrink from one level to the next (a chunk reference is about 70 bytes).
pub const MIN_CHUNK_SIZE: usize = 4096;
