//! Stripes: the `n` shards of one encrypted chunk and the header that describes them.
//!
//! ## Header layout (v1), fixed, little-endian
//! ```text
//! offset size field
//!      0    1 version (1)
//!      1    1 k, data shards (>= 2)
//!      2    1 m, parity shards (>= 1), k + m <= 255
//!      3    1 reserved, 0
//!      4    4 shard_len = ceil(ciphertext_len / k)
//!      8    4 ciphertext_len (plaintext + 16-byte tag)
//!     12 32*n BLAKE3 address of shard 0 .. n-1
//! ```
//! The stripe id is BLAKE3 of these bytes. Shards `0..k` hold the ciphertext (the last one
//! zero-padded), shards `k..n` the Reed-Solomon parity.

use crate::address::{ShardId, StripeId, ADDRESS_LEN};
use crate::crypto::{ChunkKey, TAG_LEN};
use crate::erasure::{Codec, ErasureError, Params};
use crate::MAX_CHUNK_SIZE;

/// Header format version.
pub const HEADER_VERSION: u8 = 1;
/// Length of the fixed part of a header.
pub const HEADER_FIXED_LEN: usize = 12;
/// Largest encoded header (255 shard addresses).
pub const MAX_HEADER_LEN: usize = HEADER_FIXED_LEN + crate::erasure::MAX_SHARDS * ADDRESS_LEN;
/// Largest ciphertext of one chunk.
pub const MAX_CIPHERTEXT_LEN: usize = MAX_CHUNK_SIZE + TAG_LEN;
/// Largest shard (k = 1).
pub const MAX_SHARD_LEN: usize = MAX_CIPHERTEXT_LEN;

/// A header that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("header bytes do not hash to the stripe id {expected}")]
    IdMismatch { expected: StripeId },
    #[error("header is {0} bytes, shorter than the fixed part")]
    Truncated(usize),
    #[error("unsupported header version {0}")]
    Version(u8),
    #[error("invalid erasure parameters: {0}")]
    Params(ErasureError),
    #[error("reserved byte is {0}, not 0")]
    Reserved(u8),
    #[error("ciphertext length {0} is outside 16..={MAX_CIPHERTEXT_LEN}")]
    CiphertextLen(u32),
    #[error("shard length {found} does not match ceil({ciphertext_len} / k) = {expected}")]
    ShardLen { found: u32, expected: usize, ciphertext_len: u32 },
    #[error("header is {found} bytes; {expected} expected for n = {n}")]
    Length { found: usize, expected: usize, n: usize },
}

/// The description of one stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeHeader {
    params: Params,
    shard_len: usize,
    ciphertext_len: usize,
    shards: Vec<ShardId>,
}

impl StripeHeader {
    /// Erasure parameters.
    pub fn params(&self) -> Params {
        self.params
    }
    /// Length of every shard.
    pub fn shard_len(&self) -> usize {
        self.shard_len
    }
    /// Length of the ciphertext (plaintext + tag).
    pub fn ciphertext_len(&self) -> usize {
        self.ciphertext_len
    }
    /// Length of the plaintext.
    pub fn plaintext_len(&self) -> usize {
        self.ciphertext_len - TAG_LEN
    }
    /// Addresses of shards `0..n`.
    pub fn shards(&self) -> &[ShardId] {
        &self.shards
    }
    /// The index of the shard with address `id`, if it belongs to this stripe.
    pub fn index_of(&self, id: &ShardId) -> Option<usize> {
        self.shards.iter().position(|s| s == id)
    }

    /// Encodes the header (see the module docs for the layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_FIXED_LEN + ADDRESS_LEN * self.shards.len());
        b.push(HEADER_VERSION);
        b.push(self.params.k() as u8);
        b.push(self.params.m() as u8);
        b.push(0);
        // Both lengths are bounded by MAX_CIPHERTEXT_LEN, far below u32::MAX.
        b.extend_from_slice(&(self.shard_len as u32).to_le_bytes());
        b.extend_from_slice(&(self.ciphertext_len as u32).to_le_bytes());
        for s in &self.shards {
            b.extend_from_slice(s.as_bytes());
        }
        b
    }

    /// The stripe id: BLAKE3 of the encoded header.
    pub fn id(&self) -> StripeId {
        StripeId::of(&self.to_bytes())
    }

    /// Parses header bytes that arrived from anywhere, checking that they hash to `id`
    /// before looking at them.
    pub fn parse_verified(id: &StripeId, bytes: &[u8]) -> Result<Self, HeaderError> {
        if StripeId::of(bytes) != *id {
            return Err(HeaderError::IdMismatch { expected: *id });
        }
        Self::parse(bytes)
    }

    /// Checks shard `index` of stripe `id` that arrived from anywhere with the stripe's
    /// header: the header hashes to `id` and the shard's address is the header's `index`th
    /// (padding shards share an address, so the index is checked, not looked up).
    pub fn check_shard(id: &StripeId, header: &[u8], index: u8, shard: &[u8]) -> Result<(), StripeError> {
        let h =
            Self::parse_verified(id, header).map_err(|source| StripeError::Header { stripe: *id, source })?;
        let found = ShardId::of(shard);
        match h.shards().get(usize::from(index)) {
            Some(want) if *want == found => Ok(()),
            _ => Err(StripeError::UnknownShard { stripe: *id, found }),
        }
    }

    /// Parses and validates header bytes (without an expected id).
    pub fn parse(bytes: &[u8]) -> Result<Self, HeaderError> {
        if bytes.len() < HEADER_FIXED_LEN {
            return Err(HeaderError::Truncated(bytes.len()));
        }
        if bytes[0] != HEADER_VERSION {
            return Err(HeaderError::Version(bytes[0]));
        }
        let params =
            Params::new(usize::from(bytes[1]), usize::from(bytes[2])).map_err(HeaderError::Params)?;
        if bytes[3] != 0 {
            return Err(HeaderError::Reserved(bytes[3]));
        }
        let le = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let (shard_len, ciphertext_len) = (le(4), le(8));
        let ct = ciphertext_len as usize;
        if !(TAG_LEN..=MAX_CIPHERTEXT_LEN).contains(&ct) {
            return Err(HeaderError::CiphertextLen(ciphertext_len));
        }
        let expected = params.shard_len(ct);
        if shard_len as usize != expected {
            return Err(HeaderError::ShardLen { found: shard_len, expected, ciphertext_len });
        }
        let n = params.n();
        let want_len = HEADER_FIXED_LEN + n * ADDRESS_LEN;
        if bytes.len() != want_len {
            return Err(HeaderError::Length { found: bytes.len(), expected: want_len, n });
        }
        let shards = bytes[HEADER_FIXED_LEN..]
            .chunks_exact(ADDRESS_LEN)
            .map(|c| {
                let mut a = [0u8; ADDRESS_LEN];
                a.copy_from_slice(c);
                ShardId::from_bytes(a)
            })
            .collect();
        Ok(Self { params, shard_len: expected, ciphertext_len: ct, shards })
    }
}

/// One encoded chunk: its header and all `n` shards, laid end to end in one buffer.
#[derive(Clone)]
pub struct Stripe {
    id: StripeId,
    header: StripeHeader,
    header_bytes: Vec<u8>,
    buf: Vec<u8>,
}

impl core::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stripe").field("id", &self.id).field("header", &self.header).finish()
    }
}

impl Stripe {
    /// Encrypts `plaintext` under `key` and erasure-codes it.
    pub(crate) fn encode(codec: &Codec, key: &ChunkKey, plaintext: &[u8]) -> Self {
        let params = codec.params();
        let ct_len = plaintext.len() + TAG_LEN;
        let shard_len = params.shard_len(ct_len);
        // Copy the plaintext and zero only what follows it (tag, padding, parity): zeroing
        // the whole stripe first costs a measurable share of encode time.
        let mut buf = Vec::with_capacity(shard_len * params.n());
        buf.extend_from_slice(plaintext);
        buf.resize(shard_len * params.n(), 0);
        let tag = key.seal_in_place(&mut buf[..plaintext.len()]);
        buf[plaintext.len()..ct_len].copy_from_slice(&tag);
        let (data, parity) = buf.split_at_mut(shard_len * params.k());
        let data: Vec<&[u8]> = data.chunks_exact(shard_len).collect();
        let mut parity: Vec<&mut [u8]> = parity.chunks_exact_mut(shard_len).collect();
        // Encoding only fails for shard-count or length mismatches, which the layout rules out.
        #[allow(clippy::expect_used)]
        codec.encode_sep(&data, &mut parity).expect("shards are laid out for this codec");
        let shards =
            data.iter().map(|s| ShardId::of(s)).chain(parity.iter().map(|s| ShardId::of(s))).collect();
        let header = StripeHeader { params, shard_len, ciphertext_len: ct_len, shards };
        let header_bytes = header.to_bytes();
        Self { id: StripeId::of(&header_bytes), header, header_bytes, buf }
    }

    /// The stripe id.
    pub fn id(&self) -> StripeId {
        self.id
    }
    /// The parsed header.
    pub fn header(&self) -> &StripeHeader {
        &self.header
    }
    /// The encoded header, which hashes to [`Stripe::id`].
    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }
    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.header.params.n()
    }
    /// The bytes of shard `index`. Panics if `index >= n`.
    pub fn shard(&self, index: usize) -> &[u8] {
        let l = self.header.shard_len;
        &self.buf[index * l..(index + 1) * l]
    }
    /// Iterates over `(address, bytes)` of every shard in index order.
    pub fn shards(&self) -> impl Iterator<Item = (ShardId, &[u8])> {
        self.header.shards.iter().copied().zip(self.buf.chunks_exact(self.header.shard_len))
    }
}

/// A shard or stripe that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StripeError {
    #[error("stripe {stripe}: {source}")]
    Header { stripe: StripeId, source: HeaderError },
    #[error("shard with address {found} is not part of stripe {stripe}")]
    UnknownShard { stripe: StripeId, found: ShardId },
    #[error("stripe {stripe}: {source}")]
    Erasure { stripe: StripeId, source: ErasureError },
    #[error("stripe {stripe}: ciphertext failed authentication (tampered data or wrong key)")]
    Decrypt { stripe: StripeId },
}

/// Collects verified shards of one stripe until any `k` rebuild it.
#[derive(Debug)]
pub struct StripeAssembler {
    id: StripeId,
    header: StripeHeader,
    shards: Vec<Option<Vec<u8>>>,
    present: usize,
}

impl StripeAssembler {
    /// Starts from header bytes that must hash to `id`.
    pub fn new(id: StripeId, header_bytes: &[u8]) -> Result<Self, HeaderError> {
        let header = StripeHeader::parse_verified(&id, header_bytes)?;
        let n = header.params.n();
        Ok(Self { id, header, shards: vec![None; n], present: 0 })
    }
    /// The stripe id.
    pub fn id(&self) -> StripeId {
        self.id
    }
    /// The verified header.
    pub fn header(&self) -> &StripeHeader {
        &self.header
    }
    /// Offers a shard; its index is found from its recomputed address. Returns the index.
    /// A shard already held is accepted again without effect. When a chunk is much shorter
    /// than `k` shards, trailing data shards are pure zero padding and share one address;
    /// such a shard fills every index it matches.
    pub fn add_shard(&mut self, bytes: Vec<u8>) -> Result<usize, StripeError> {
        let found = ShardId::of(&bytes);
        let index =
            self.header.index_of(&found).ok_or(StripeError::UnknownShard { stripe: self.id, found })?;
        // Identical shards share an address: fill every empty index that has it, moving
        // the bytes into the last.
        let empty: Vec<usize> = (index..self.shards.len())
            .filter(|&i| self.header.shards[i] == found && self.shards[i].is_none())
            .collect();
        if let Some((&last, rest)) = empty.split_last() {
            for &i in rest {
                self.shards[i] = Some(bytes.clone());
            }
            self.shards[last] = Some(bytes);
            self.present += empty.len();
        }
        Ok(index)
    }
    /// Whether enough shards are present to rebuild the chunk.
    pub fn is_ready(&self) -> bool {
        self.present >= self.header.params.k()
    }
    /// Number of verified shards held.
    pub fn present(&self) -> usize {
        self.present
    }
    /// Indices of the shards not yet held, data shards first.
    pub fn missing(&self) -> Vec<usize> {
        (0..self.shards.len()).filter(|&i| self.shards[i].is_none()).collect()
    }

    /// Rebuilds the ciphertext from any `k` shards. Needs [`is_ready`](Self::is_ready); when
    /// every data shard is present no decoding is done.
    pub fn ciphertext(mut self) -> Result<Vec<u8>, StripeError> {
        let k = self.header.params.k();
        if self.shards[..k].iter().any(Option::is_none) {
            let codec = Codec::new(self.header.params)
                .map_err(|source| StripeError::Erasure { stripe: self.id, source })?;
            codec
                .reconstruct_data(&mut self.shards)
                .map_err(|source| StripeError::Erasure { stripe: self.id, source })?;
        }
        let mut ct = Vec::with_capacity(self.header.shard_len * k);
        for s in self.shards[..k].iter().flatten() {
            ct.extend_from_slice(s);
        }
        ct.truncate(self.header.ciphertext_len);
        Ok(ct)
    }

    /// Rebuilds and decrypts the chunk.
    pub fn decrypt(self, key: &ChunkKey) -> Result<Vec<u8>, StripeError> {
        let id = self.id;
        open(id, self.ciphertext()?, key)
    }

    /// The whole stripe again, every missing shard rebuilt and checked (what a client that
    /// stores a stripe anew, to renew it, sends).
    pub fn into_stripe(self) -> Result<Stripe, StripeError> {
        let (id, header) = (self.id, self.header.clone());
        let header_bytes = header.to_bytes();
        if StripeId::of(&header_bytes) != id {
            // The header parsed from bytes that hash to `id` encodes to them again.
            return Err(StripeError::Erasure {
                stripe: id,
                source: ErasureError::Codec("the header does not encode to its id".into()),
            });
        }
        let buf = self.rebuild_all()?.concat();
        Ok(Stripe { id, header, header_bytes, buf })
    }

    /// Rebuilds every missing shard (data and parity) and returns all `n`, each checked
    /// against its address. This is what a repairing relay needs.
    pub fn rebuild_all(mut self) -> Result<Vec<Vec<u8>>, StripeError> {
        let codec = Codec::new(self.header.params)
            .map_err(|source| StripeError::Erasure { stripe: self.id, source })?;
        codec
            .reconstruct(&mut self.shards)
            .map_err(|source| StripeError::Erasure { stripe: self.id, source })?;
        let mut out = Vec::with_capacity(self.shards.len());
        for (i, s) in self.shards.into_iter().enumerate() {
            let s = s.unwrap_or_default();
            if ShardId::of(&s) != self.header.shards[i] {
                // Only possible if the header itself lists inconsistent parity.
                return Err(StripeError::UnknownShard { stripe: self.id, found: ShardId::of(&s) });
            }
            out.push(s);
        }
        Ok(out)
    }
}

/// Decrypts the ciphertext of stripe `id` (plaintext followed by the tag).
pub fn open(id: StripeId, mut ct: Vec<u8>, key: &ChunkKey) -> Result<Vec<u8>, StripeError> {
    let pt_len = ct.len().checked_sub(TAG_LEN).ok_or(StripeError::Decrypt { stripe: id })?;
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&ct[pt_len..]);
    ct.truncate(pt_len);
    key.open_in_place(&mut ct, &tag).map_err(|_| StripeError::Decrypt { stripe: id })?;
    Ok(ct)
}
