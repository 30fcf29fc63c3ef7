//! Data maps: the list of chunks of a file, with its name, size and media type.
//!
//! Encoding (v1): one version byte (`1`) followed by the postcard encoding of [`DataMap`],
//! with no trailing bytes. A map larger than one chunk is itself stored as chunks and
//! replaced by a [`DataMap::Nested`] that lists them, until the map fits in one chunk; that
//! last map is the root named by the capability.

use crate::address::StripeId;
use crate::crypto::ChunkKey;
use crate::{MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use serde::{Deserialize, Serialize};

/// Data map format version.
pub const DATA_MAP_VERSION: u8 = 1;
/// Longest file name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 1024;
/// Longest media type.
pub const MAX_MEDIA_TYPE_LEN: usize = 255;
/// Largest encoded data map at any nesting level (about 4 TiB of file at 1 MiB chunks).
pub const MAX_DATA_MAP_LEN: u64 = 256 << 20;
/// Most nesting levels above the file map.
pub const MAX_NESTING: usize = 4;

/// One chunk: the stripe that holds it, the key that opens it and its plaintext length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub stripe: StripeId,
    pub key: ChunkKey,
    pub len: u32,
}

/// What a file says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// File name (no path), informational.
    pub name: String,
    /// Media type, e.g. `image/png`; empty when unknown.
    pub media_type: String,
}

/// The map of a file's chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMap {
    pub meta: FileMeta,
    pub size: u64,
    pub chunk_size: u32,
    pub chunks: Vec<ChunkRef>,
}

/// A data map, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataMap {
    /// The file itself.
    File(FileMap),
    /// The encoded bytes of a larger map, stored as chunks.
    Nested { size: u64, chunk_size: u32, chunks: Vec<ChunkRef> },
}

/// A data map that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataMapError {
    #[error("data map is empty")]
    Empty,
    #[error("unsupported data map version {0}")]
    Version(u8),
    #[error("data map does not decode: {0}")]
    Malformed(String),
    #[error("data map has {0} trailing bytes")]
    TrailingBytes(usize),
    #[error("chunk size {0} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}")]
    ChunkSize(u32),
    #[error("chunk {index} is {len} bytes; chunks before the last must be {chunk_size} and the last 1..={chunk_size}")]
    ChunkLen { index: usize, len: u32, chunk_size: u32 },
    #[error("chunk lengths add up to {sum}, but the map says {size}")]
    SizeMismatch { sum: u64, size: u64 },
    #[error("file name is {0} bytes, over {MAX_NAME_LEN}")]
    NameTooLong(usize),
    #[error("media type is {0} bytes, over {MAX_MEDIA_TYPE_LEN}")]
    MediaTypeTooLong(usize),
    #[error("nested data map of {0} bytes is over the limit of {MAX_DATA_MAP_LEN}")]
    TooLarge(u64),
    #[error("nested data map is empty")]
    EmptyNested,
    #[error("data map nesting is deeper than {MAX_NESTING} levels")]
    TooDeep,
}

fn check_chunks(chunks: &[ChunkRef], chunk_size: u32, size: u64) -> Result<(), DataMapError> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&(chunk_size as usize)) {
        return Err(DataMapError::ChunkSize(chunk_size));
    }
    let last = chunks.len().saturating_sub(1);
    let mut sum = 0u64;
    for (index, c) in chunks.iter().enumerate() {
        let ok = if index == last { (1..=chunk_size).contains(&c.len) } else { c.len == chunk_size };
        if !ok {
            return Err(DataMapError::ChunkLen { index, len: c.len, chunk_size });
        }
        sum += u64::from(c.len);
    }
    if sum != size {
        return Err(DataMapError::SizeMismatch { sum, size });
    }
    Ok(())
}

impl DataMap {
    /// Encodes the map: version byte, then postcard.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![DATA_MAP_VERSION];
        // Serializing plain data into a Vec cannot fail.
        #[allow(clippy::expect_used)]
        let body = postcard::to_allocvec(self).expect("data map serializes");
        out.extend_from_slice(&body);
        out
    }

    /// Decodes and validates a map from untrusted bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DataMapError> {
        let (&version, body) = bytes.split_first().ok_or(DataMapError::Empty)?;
        if version != DATA_MAP_VERSION {
            return Err(DataMapError::Version(version));
        }
        let (map, rest) =
            postcard::take_from_bytes::<DataMap>(body).map_err(|e| DataMapError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(DataMapError::TrailingBytes(rest.len()));
        }
        map.validate()?;
        Ok(map)
    }

    /// Checks the map's internal consistency.
    pub fn validate(&self) -> Result<(), DataMapError> {
        match self {
            DataMap::File(f) => {
                if f.meta.name.len() > MAX_NAME_LEN {
                    return Err(DataMapError::NameTooLong(f.meta.name.len()));
                }
                if f.meta.media_type.len() > MAX_MEDIA_TYPE_LEN {
                    return Err(DataMapError::MediaTypeTooLong(f.meta.media_type.len()));
                }
                check_chunks(&f.chunks, f.chunk_size, f.size)
            }
            DataMap::Nested { size, chunk_size, chunks } => {
                if *size > MAX_DATA_MAP_LEN {
                    return Err(DataMapError::TooLarge(*size));
                }
                if *size == 0 {
                    return Err(DataMapError::EmptyNested);
                }
                check_chunks(chunks, *chunk_size, *size)
            }
        }
    }
}

impl FileMap {
    /// Indices of the chunks that overlap bytes `offset .. offset + len`, with the offset of
    /// the range inside the first of them. The range must lie within the file.
    pub fn chunks_for_range(&self, offset: u64, len: u64) -> (core::ops::Range<usize>, usize) {
        if len == 0 || self.chunks.is_empty() {
            return (0..0, 0);
        }
        let cs = u64::from(self.chunk_size);
        let first = offset / cs;
        let last = (offset + len - 1) / cs;
        // Both indices are below chunks.len(), which is a usize.
        (first as usize..last as usize + 1, (offset % cs) as usize)
    }
}
