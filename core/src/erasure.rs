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
        Ok(Self { k: k as u8, m: m as u8 })
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
    /// Parity rows of the encoding matrix (`m` rows of `k`), for the wasm SIMD encoder.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    parity_rows: Vec<u8>,
}

impl core::fmt::Debug for Codec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Codec").field("params", &self.params).finish()
    }
}

impl Codec {
    pub(crate) fn new(params: Params) -> Result<Self, ErasureError> {
        let rs =
            ReedSolomon::new(params.k(), params.m()).map_err(|e| ErasureError::Codec(format!("{e:?}")))?;
        Ok(Self {
            params,
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            parity_rows: gf::parity_rows(&rs, params)?,
            rs,
        })
    }

    pub(crate) fn params(&self) -> Params {
        self.params
    }

    /// Computes the parity shards from the data shards.
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    pub(crate) fn encode_sep(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), ErasureError> {
        self.rs.encode_sep(data, parity).map_err(|e| ErasureError::Codec(format!("{e:?}")))
    }

    /// Computes the parity shards from the data shards (wasm SIMD kernel).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    pub(crate) fn encode_sep(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), ErasureError> {
        gf::encode(&self.parity_rows, data, parity);
        Ok(())
    }

    /// Rebuilds the missing data shards in place (parity shards are not rebuilt).
    pub(crate) fn reconstruct_data(&self, shards: &mut [Option<Vec<u8>>]) -> Result<(), ErasureError> {
        let have = shards.iter().filter(|s| s.is_some()).count();
        if have < self.params.k() {
            return Err(ErasureError::TooFewShards { have, need: self.params.k() });
        }
        self.rs.reconstruct_data(shards).map_err(|e| ErasureError::Codec(format!("{e:?}")))
    }

    /// Rebuilds every missing shard, data and parity, in place.
    pub(crate) fn reconstruct(&self, shards: &mut [Option<Vec<u8>>]) -> Result<(), ErasureError> {
        let have = shards.iter().filter(|s| s.is_some()).count();
        if have < self.params.k() {
            return Err(ErasureError::TooFewShards { have, need: self.params.k() });
        }
        self.rs.reconstruct(shards).map_err(|e| ErasureError::Codec(format!("{e:?}")))
    }
}

/// Reed-Solomon parity in GF(2^8) with wasm SIMD128 (`u8x16_swizzle` nibble tables), several
/// times faster in the browser than the crate's table-driven loop. It uses the crate's own
/// encoding matrix, read back by encoding unit vectors, so parity is byte-identical (checked
/// by the known-answer vectors, which run in Chromium). Decoding still uses the crate.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod gf {
    use super::{ErasureError, Params, ReedSolomon};
    use core::arch::wasm32::{u8x16_shr, u8x16_splat, u8x16_swizzle, v128, v128_and, v128_xor};

    /// The field of `reed-solomon-erasure`'s `galois_8`: x^8 + x^4 + x^3 + x^2 + 1.
    const POLY: u16 = 0x11d;

    pub(super) fn mul(a: u8, b: u8) -> u8 {
        let (mut a, mut b, mut p) = (u16::from(a), b, 0u16);
        while b != 0 {
            if b & 1 != 0 {
                p ^= a;
            }
            a <<= 1;
            if a & 0x100 != 0 {
                a ^= POLY;
            }
            b >>= 1;
        }
        p as u8
    }

    /// Row `r`, column `j` of the parity part of the encoding matrix is the parity byte `r`
    /// produced from the unit vector `e_j`.
    pub(super) fn parity_rows(rs: &ReedSolomon, params: Params) -> Result<Vec<u8>, ErasureError> {
        let (k, m) = (params.k(), params.m());
        let mut rows = vec![0u8; m * k];
        for j in 0..k {
            let data: Vec<[u8; 1]> = (0..k).map(|i| [u8::from(i == j)]).collect();
            let mut parity = vec![[0u8; 1]; m];
            rs.encode_sep(&data, &mut parity).map_err(|e| ErasureError::Codec(format!("{e:?}")))?;
            for r in 0..m {
                rows[r * k + j] = parity[r][0];
            }
        }
        Ok(rows)
    }

    fn v(bytes: [u8; 16]) -> v128 {
        core::arch::wasm32::u8x16(
            bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8],
            bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15],
        )
    }

    fn load(s: &[u8]) -> v128 {
        assert!(s.len() >= 16);
        // SAFETY: 16 readable bytes were just checked; v128_load has no alignment requirement.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::wasm32::v128_load(s.as_ptr().cast::<v128>())
        }
    }

    fn store(d: &mut [u8], x: v128) {
        assert!(d.len() >= 16);
        // SAFETY: 16 writable bytes were just checked; v128_store has no alignment requirement.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::wasm32::v128_store(d.as_mut_ptr().cast::<v128>(), x)
        }
    }

    pub(super) fn encode(rows: &[u8], data: &[&[u8]], parity: &mut [&mut [u8]]) {
        let k = data.len();
        let len = data.first().map_or(0, |d| d.len());
        let tables: Vec<(v128, v128)> = rows
            .iter()
            .map(|&c| {
                (
                    v(core::array::from_fn(|i| mul(c, i as u8))),
                    v(core::array::from_fn(|i| mul(c, (i as u8) << 4))),
                )
            })
            .collect();
        let mask = u8x16_splat(0x0f);
        let body = len - len % 16;
        for (r, out) in parity.iter_mut().enumerate() {
            let t = &tables[r * k..(r + 1) * k];
            let mut i = 0;
            while i < body {
                let mut acc = u8x16_splat(0);
                for (src, (lo, hi)) in data.iter().zip(t) {
                    let x = load(&src[i..i + 16]);
                    let l = u8x16_swizzle(*lo, v128_and(x, mask));
                    let h = u8x16_swizzle(*hi, u8x16_shr(x, 4));
                    acc = v128_xor(acc, v128_xor(l, h));
                }
                store(&mut out[i..i + 16], acc);
                i += 16;
            }
            for p in body..len {
                out[p] =
                    data.iter().zip(&rows[r * k..(r + 1) * k]).fold(0, |a, (src, &c)| a ^ mul(c, src[p]));
            }
        }
    }
}
