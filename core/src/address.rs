//! BLAKE3 addresses of shards and stripes.
//!
//! An address is always recomputed from the bytes it names; one that arrives over the wire
//! is only a claim. Equality is constant time.

use core::fmt;
use serde::{Deserialize, Serialize};

/// Length in bytes of every address.
pub const ADDRESS_LEN: usize = 32;

/// Constant-time equality, word by word, the accumulator passed through `black_box`. The
/// plain byte loop (`diff |= x ^ y`) broke two pipeline tests in optimized wasm32 builds with
/// SIMD128 (dedup of identical chunks, corrupt-shard detection: id lookups went wrong), and
/// passed at opt-level 0, which is why kura-core's wasm suite now runs optimized (the
/// `profile.dev.package.kura-core` override). This version passes everywhere.
fn ct_eq(a: &[u8; ADDRESS_LEN], b: &[u8; ADDRESS_LEN]) -> bool {
    let mut diff = 0u64;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let word = |s: &[u8]| u64::from_le_bytes(core::array::from_fn(|i| s[i]));
        diff = core::hint::black_box(diff | (word(x) ^ word(y)));
    }
    diff == 0
}

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name([u8; ADDRESS_LEN]);

        impl $name {
            /// Wraps raw address bytes (no check: an address is any 32 bytes).
            pub const fn from_bytes(bytes: [u8; ADDRESS_LEN]) -> Self {
                Self(bytes)
            }
            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; ADDRESS_LEN] {
                &self.0
            }
            /// Lowercase hex, 64 characters.
            pub fn to_hex(&self) -> String {
                crate::hex::encode(&self.0)
            }
            /// Parses 64 hex characters.
            pub fn from_hex(s: &str) -> Option<Self> {
                crate::hex::decode_array(s).map(Self)
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                ct_eq(&self.0, &other.0)
            }
        }
        impl Eq for $name {}

        // Consistent with the constant-time `eq`: equal bytes hash equally.
        impl core::hash::Hash for $name {
            fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.to_hex()[..16])
            }
        }
    };
}

address_type!(
    /// BLAKE3 hash of one shard's bytes.
    ShardId
);
address_type!(
    /// BLAKE3 hash of a stripe header's encoded bytes.
    StripeId
);

impl ShardId {
    /// The address of `shard`.
    pub fn of(shard: &[u8]) -> Self {
        Self(*blake3::hash(shard).as_bytes())
    }
}

impl StripeId {
    /// The id of the stripe whose encoded header is `header_bytes`.
    pub fn of(header_bytes: &[u8]) -> Self {
        Self(*blake3::hash(header_bytes).as_bytes())
    }
}
