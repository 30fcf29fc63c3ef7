//! The streaming encoder: bytes in, stripes out, one chunk at a time.
//!
//! ```text
//! write(bytes) -> consumed ──► take_stripe() -> Some(stripe) whenever a chunk is full
//!        ... repeat ...
//! finish(meta) -> Finish: an iterator of the last chunk's stripe and the data map's
//!                 stripes; then Finish::capability()
//! ```
//! Memory stays at one chunk buffer plus one stripe in flight, whatever the file size; the
//! data map grows by one [`ChunkRef`] (about 70 bytes) per chunk.

use crate::capability::Capability;
use crate::crypto::{ChunkKey, Secret};
use crate::datamap::{ChunkRef, DataMap, FileMap, FileMeta, MAX_MEDIA_TYPE_LEN, MAX_NAME_LEN};
use crate::erasure::{Codec, ErasureError, Params};
use crate::stripe::Stripe;
use crate::{CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};

/// How to encode a file.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    pub params: Params,
    pub secret: Secret,
    /// Plaintext chunk size, in `MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE`; [`CHUNK_SIZE`] by default.
    pub chunk_size: usize,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self { params: Params::DEFAULT, secret: Secret::public(), chunk_size: CHUNK_SIZE }
    }
}

/// Encoding cannot start or finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error(transparent)]
    Params(#[from] ErasureError),
    #[error("chunk size {0} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}")]
    ChunkSize(usize),
    #[error("file name is {0} bytes, over {MAX_NAME_LEN}")]
    NameTooLong(usize),
    #[error("media type is {0} bytes, over {MAX_MEDIA_TYPE_LEN}")]
    MediaTypeTooLong(usize),
    #[error("a full chunk is waiting: call take_stripe() before finish()")]
    StripePending,
}

/// Cuts a stream into chunks and encodes each into a stripe.
#[derive(Debug)]
pub struct Encoder {
    codec: Codec,
    secret: Secret,
    chunk_size: usize,
    buf: Vec<u8>,
    chunks: Vec<ChunkRef>,
    size: u64,
}

impl Encoder {
    /// Starts encoding a file.
    pub fn new(opts: EncodeOptions) -> Result<Self, EncodeError> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&opts.chunk_size) {
            return Err(EncodeError::ChunkSize(opts.chunk_size));
        }
        Ok(Self {
            codec: Codec::new(opts.params)?,
            secret: opts.secret,
            chunk_size: opts.chunk_size,
            buf: Vec::with_capacity(opts.chunk_size),
            chunks: Vec::new(),
            size: 0,
        })
    }

    /// Buffers bytes up to the end of the current chunk and returns how many were taken.
    /// Returns 0 while a full chunk waits for [`take_stripe`](Self::take_stripe).
    pub fn write(&mut self, data: &[u8]) -> usize {
        let room = self.chunk_size - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        n
    }

    /// Encodes the buffered chunk if it is full.
    pub fn take_stripe(&mut self) -> Option<Stripe> {
        (self.buf.len() == self.chunk_size).then(|| self.encode_buffered())
    }

    /// Writes all of `data`, handing each completed stripe to `sink`.
    pub fn push<E>(
        &mut self,
        mut data: &[u8],
        mut sink: impl FnMut(Stripe) -> Result<(), E>,
    ) -> Result<(), E> {
        while !data.is_empty() {
            let n = self.write(data);
            data = &data[n..];
            if let Some(s) = self.take_stripe() {
                sink(s)?;
            }
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.size + self.buf.len() as u64
    }

    fn encode_buffered(&mut self) -> Stripe {
        let (stripe, chunk) = encode_chunk(&self.codec, &self.secret, &self.buf);
        self.size += u64::from(chunk.len);
        self.chunks.push(chunk);
        self.buf.clear();
        stripe
    }

    /// Ends the file: encodes the last partial chunk, then the data map.
    pub fn finish(mut self, meta: FileMeta) -> Result<Finish, EncodeError> {
        if meta.name.len() > MAX_NAME_LEN {
            return Err(EncodeError::NameTooLong(meta.name.len()));
        }
        if meta.media_type.len() > MAX_MEDIA_TYPE_LEN {
            return Err(EncodeError::MediaTypeTooLong(meta.media_type.len()));
        }
        if self.buf.len() == self.chunk_size {
            return Err(EncodeError::StripePending);
        }
        let last = (!self.buf.is_empty()).then(|| self.encode_buffered());
        let map = DataMap::File(FileMap {
            meta,
            size: self.size,
            // chunk_size <= MAX_CHUNK_SIZE fits in u32.
            chunk_size: self.chunk_size as u32,
            chunks: core::mem::take(&mut self.chunks),
        });
        Ok(Finish {
            codec: self.codec,
            secret: self.secret,
            chunk_size: self.chunk_size,
            pending: last,
            level: map.to_bytes(),
            offset: 0,
            level_chunks: Vec::new(),
            capability: None,
        })
    }
}

/// Encodes `plaintext` (at most [`MAX_CHUNK_SIZE`] bytes) as one stripe on its own, outside
/// any file: for small records, and for tests that need a stripe with chosen contents.
pub fn encode_single_chunk(
    opts: &EncodeOptions,
    plaintext: &[u8],
) -> Result<(Stripe, ChunkRef), EncodeError> {
    if plaintext.len() > MAX_CHUNK_SIZE {
        return Err(EncodeError::ChunkSize(plaintext.len()));
    }
    Ok(encode_chunk(&Codec::new(opts.params)?, &opts.secret, plaintext))
}

/// Encrypts and erasure-codes one chunk.
pub(crate) fn encode_chunk(codec: &Codec, secret: &Secret, plaintext: &[u8]) -> (Stripe, ChunkRef) {
    let key = ChunkKey::derive(secret, plaintext);
    let stripe = Stripe::encode(codec, &key, plaintext);
    // A chunk is at most MAX_CHUNK_SIZE bytes.
    let chunk = ChunkRef { stripe: stripe.id(), key, len: plaintext.len() as u32 };
    (stripe, chunk)
}

/// The tail of an encoding: yields the remaining stripes (last chunk, then data map levels,
/// root last); once exhausted, [`capability`](Self::capability) is set.
#[derive(Debug)]
pub struct Finish {
    codec: Codec,
    secret: Secret,
    chunk_size: usize,
    pending: Option<Stripe>,
    /// Encoded data map of the current level.
    level: Vec<u8>,
    /// How much of `level` has been cut into chunks.
    offset: usize,
    level_chunks: Vec<ChunkRef>,
    capability: Option<Capability>,
}

impl Finish {
    /// The capability, once every stripe has been taken.
    pub fn capability(&self) -> Option<Capability> {
        self.capability
    }

    /// Takes every remaining stripe and returns the capability.
    pub fn drain<E>(mut self, mut sink: impl FnMut(Stripe) -> Result<(), E>) -> Result<Capability, E> {
        for s in self.by_ref() {
            sink(s)?;
        }
        // The iterator sets the capability before it returns None.
        #[allow(clippy::expect_used)]
        Ok(self.capability.expect("capability is set when the iterator ends"))
    }
}

impl Iterator for Finish {
    type Item = Stripe;

    fn next(&mut self) -> Option<Stripe> {
        if let Some(s) = self.pending.take() {
            return Some(s);
        }
        if self.capability.is_some() {
            return None;
        }
        if self.offset == 0 && self.level.len() <= self.chunk_size {
            // The map fits in one chunk: it is the root.
            let (stripe, chunk) = encode_chunk(&self.codec, &self.secret, &self.level);
            self.capability = Some(Capability { root: chunk.stripe, key: chunk.key });
            return Some(stripe);
        }
        if self.offset < self.level.len() {
            let end = (self.offset + self.chunk_size).min(self.level.len());
            let (stripe, chunk) = encode_chunk(&self.codec, &self.secret, &self.level[self.offset..end]);
            self.offset = end;
            self.level_chunks.push(chunk);
            return Some(stripe);
        }
        // The whole level is stored: the next level up lists its chunks.
        let nested = DataMap::Nested {
            size: self.level.len() as u64,
            chunk_size: self.chunk_size as u32,
            chunks: core::mem::take(&mut self.level_chunks),
        };
        self.level = nested.to_bytes();
        self.offset = 0;
        self.next()
    }
}
