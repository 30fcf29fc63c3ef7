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

/// The widths a stripe takes as the network grows, narrowest first: a width is used once the
/// network has at least [`WIDTH_SPREAD`] times its `n` relays ([`Params::for_network`]).
///
/// Why stripes widen. Relay ids are random (and priced: `placement::JOIN_BITS`), so an
/// adversary running a share `p` of the relays holds each shard of a stripe with chance
/// about `p`, and a stripe of which it holds `m + 1` shards is lost when it drops them. At a
/// tenth of the relays that is 1.6% of 4+2 stripes (a file of sixteen stripes: one in
/// five), 5.0 × 10⁻⁵ of 6+6 and 7.1 × 10⁻⁷ of 10+10; at a fifth 9.9%, 3.9 × 10⁻³ and
/// 5.6 × 10⁻⁴ (the binomial law; `kura-sim capture` plays it, `docs/scale/capture.md`). The
/// price of the wider stripes is a third more bytes stored and sent (2.0 against 1.5 times
/// the data) and `k` shards read to rebuild one; on a few dozen relays, run by people who
/// know each other, 4+2 stays.
pub const WIDTHS: [Params; 3] = [Params { k: 4, m: 2 }, Params { k: 6, m: 6 }, Params { k: 10, m: 10 }];

/// How many times a width's `n` relays a network must have before stripes take that width:
/// a stripe's close group is at most a third of the network, so that its members' failures
/// are not the network's and its repairs find relays outside it.
pub const WIDTH_SPREAD: usize = 3;

impl Params {
    /// The stripe width for a network of about `relays` relays (an estimate:
    /// `placement::network_size`): the widest of [`WIDTHS`] whose close group is at most a
    /// [`WIDTH_SPREAD`]th of the network, 4+2 on the smallest.
    pub fn for_network(relays: f64) -> Params {
        WIDTHS
            .iter()
            .rev()
            .find(|p| (WIDTH_SPREAD * p.n()) as f64 <= relays)
            .copied()
            .unwrap_or(Self::DEFAULT)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The chance that an adversary holding each shard with chance `p` holds `m + 1` of `n`.
    fn exposed(params: Params, p: f64) -> f64 {
        let n = params.n();
        let choose = |n: usize, i: usize| (0..i).fold(1.0, |c, j| c * (n - j) as f64 / (j + 1) as f64);
        (params.m() + 1..=n).map(|i| choose(n, i) * p.powi(i as i32) * (1.0 - p).powi((n - i) as i32)).sum()
    }

    #[test]
    fn stripes_widen_with_the_network_and_each_width_exposes_fewer() {
        let width = |relays: f64| {
            let p = Params::for_network(relays);
            (p.k(), p.m())
        };
        // Small networks, and no estimate at all, keep 4+2.
        for relays in [0.0, 6.0, 10.0, 35.9] {
            assert_eq!(width(relays), (4, 2), "{relays} relays");
        }
        // Each width from three times its n relays.
        assert_eq!(width(36.0), (6, 6));
        assert_eq!(width(59.0), (6, 6));
        assert_eq!(width(60.0), (10, 10));
        assert_eq!(width(1e5), (10, 10));
        // Every width is a valid code, each wider one exposes fewer stripes to a tenth of the
        // relays, and the figures the docs quote hold.
        for w in WIDTHS {
            assert_eq!(Params::new(w.k(), w.m()), Ok(w));
        }
        let at_a_tenth: Vec<f64> = WIDTHS.iter().map(|&w| exposed(w, 0.1)).collect();
        assert!(at_a_tenth.windows(2).all(|w| w[1] < w[0] / 50.0), "{at_a_tenth:?}");
        assert!((at_a_tenth[0] - 0.0159).abs() < 5e-4, "{at_a_tenth:?}");
        assert!((at_a_tenth[2] - 7.1e-7).abs() < 5e-8, "{at_a_tenth:?}");
    }
}
