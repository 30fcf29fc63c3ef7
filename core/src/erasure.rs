//! Reed-Solomon erasure coding of ciphertext chunks (GF(2^8), systematic).

use reed_solomon_erasure::galois_8::ReedSolomon;

/// Most shards one stripe may have (the GF(2^8) code allows 256; one is kept in reserve so
/// `n` fits in a `u8`).
pub const MAX_SHARDS: usize = 255;

/// Erasure-code parameters: `k` data shards and `m` parity shards; any `k` of the `n = k + m`
/// rebuild the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Params {
    k: u8,
    m: u8,
}

/// Parameters that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErasureError {
    #[error("k (data shards) must be at least 2 (with k = 1 every shard would be the same bytes)")]
    NoDataShards,
    #[error("m (parity shards) must be at least 1")]
    NoParityShards,
    #[error("k + m = {0} exceeds the maximum of {MAX_SHARDS} shards per stripe")]
    TooManyShards(usize),
    #[error("only {have} of the {need} shards needed to rebuild the chunk are present")]
    TooFewShards { have: usize, need: usize },
    #[error("erasure coding failed: {0}")]
    Codec(String),
}

impl Params {
    /// The design's default for small networks: k = 4, m = 2.
    pub const DEFAULT: Params = Params { k: 4, m: 2 };

    /// Checks and builds parameters.
    pub fn new(k: usize, m: usize) -> Result<Self, ErasureError> {
        // With k = 1, Reed-Solomon parity is a copy of the data: all n shards would have one
        // address, and a close group could not hold n distinct shards.
        if k < 2 {
            return Err(ErasureError::NoDataShards);
        }
        if m == 0 {
            return Err(ErasureError::NoParityShards);
        }
        if k + m > MAX_SHARDS {
            return Err(ErasureError::TooManyShards(k + m));
        }
        // Both fit in u8 because k + m <= 255.
        Ok(Self {
            k: k as u8,
            m: m as u8,
        })
    }
    /// Data shards.
    pub const fn k(&self) -> usize {
        self.k as usize
    }
    /// Parity shards.
    pub const fn m(&self) -> usize {
        self.m as usize
    }
    /// All shards.
    pub const fn n(&self) -> usize {
        self.k as usize + self.m as usize
    }
    /// Length of each shard for a ciphertext of `ciphertext_len` bytes: `ceil(len / k)`.
    pub const fn shard_len(&self, ciphertext_len: usize) -> usize {
        ciphertext_len.div_ceil(self.k as usize)
    }
}

impl Default for Params {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A Reed-Solomon codec for one parameter set (its matrices are built once and reused).
pub(crate) struct Codec {
    params: Params,
    rs: ReedSolomon,
}

impl core::fmt::Debug for Codec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Codec")
            .field("params", &self.params)
            .finish()
    }
}

impl Codec {
    pub(crate) fn new(params: Params) -> Result<Self, ErasureError> {
        let rs = ReedSolomon::new(params.k(), params.m())
            .map_err(|e| ErasureError::Codec(format!("{e:?}")))?;
        Ok(Self { params, rs })
    }

    pub(crate) fn params(&self) -> Params {
        self.params
    }

    /// Computes the parity shards from the data shards.
    pub(crate) fn encode_sep(
        &self,
        data: &[&[u8]],
        parity: &mut [&mut [u8]],
    ) -> Result<(), ErasureError> {
        self.rs
            .encode_sep(data, parity)
            .map_err(|e| ErasureError::Codec(format!("{e:?}")))
    }

    /// Rebuilds the missing data shards in place (parity shards are not rebuilt).
    pub(crate) fn reconstruct_data(
        &self,
        shards: &mut [Option<Vec<u8>>],
    ) -> Result<(), ErasureError> {
        let have = shards.iter().filter(|s| s.is_some()).count();
        if have < self.params.k() {
            return Err(ErasureError::TooFewShards {
                have,
                need: self.params.k(),
            });
        }
        self.rs
            .reconstruct_data(shards)
            .map_err(|e| ErasureError::Codec(format!("{e:?}")))
    }

    /// Rebuilds every missing shard, data and parity, in place.
    pub(crate) fn reconstruct(&self, shards: &mut [Option<Vec<u8>>]) -> Result<(), ErasureError> {
        let have = shards.iter().filter(|s| s.is_some()).count();
        if have < self.params.k() {
            return Err(ErasureError::TooFewShards {
                have,
                need: self.params.k(),
            });
        }
        self.rs
            .reconstruct(shards)
            .map_err(|e| ErasureError::Codec(format!("{e:?}")))
    }
}
