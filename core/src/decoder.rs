//! The decoder, driven from outside (no IO).
//!
//! ```text
//! loop:
//!   next_output()      -> Some(plaintext)   write it; repeat
//!   is_finished()      -> true              done
//!   wanted()           -> stripe ids needed now (root, data map levels, then file chunks
//!                         in order, at most `window` ahead)
//!   for each id: add_header(id, bytes)      verified against the id
//!                shard_plan(id)             addresses still missing, data shards first
//!                add_shard(id, bytes)       verified against the header; Ok(true) once
//!                                           any k are in and the chunk is decrypted
//!                unavailable(id)            the caller could not find k shards: the error
//! ```
//! Every header is checked against its stripe id, every shard against its address, every
//! chunk against its key (Poly1305) and length, and every data map against its rules, so
//! wrong bytes are never returned. Output is plaintext in file order; a byte range fetches
//! only the chunks it overlaps.

use crate::address::{ShardId, StripeId};
use crate::capability::Capability;
use crate::datamap::{ChunkRef, DataMap, DataMapError, FileMap, MAX_NESTING};
use crate::stripe::{self, HeaderError, StripeAssembler, StripeError};
use std::collections::{BTreeMap, HashMap};

/// How many chunks ahead of the output the decoder asks for by default.
pub const DEFAULT_WINDOW: usize = 8;

/// Why decoding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("stripe {stripe}: bad header: {source}")]
    Header { stripe: StripeId, source: HeaderError },
    #[error(transparent)]
    Stripe(#[from] StripeError),
    #[error("stripe {stripe} is unavailable: {have} valid shards of the {need} needed (missing indices {missing:?})")]
    Unavailable { stripe: StripeId, have: usize, need: usize, missing: Vec<usize> },
    #[error("stripe {stripe} is unavailable: no copy of its header was found")]
    NoHeader { stripe: StripeId },
    #[error("bad data map: {0}")]
    DataMap(#[from] DataMapError),
    #[error("stripe {stripe} holds {found} bytes of plaintext; the data map says {expected}")]
    ChunkLength { stripe: StripeId, expected: usize, found: usize },
    #[error("range starts at byte {offset}, past the end of the {size}-byte file")]
    RangeOutOfBounds { offset: u64, size: u64 },
}

/// Chunks fetched in order through a bounded window.
#[derive(Debug)]
struct Sequence {
    refs: Vec<ChunkRef>,
    /// The root chunk's length is not known in advance (the capability does not carry it).
    check_len: bool,
    next_out: usize,
    end: usize,
    window: usize,
    headers: HashMap<StripeId, StripeAssembler>,
    ready: BTreeMap<usize, Vec<u8>>,
}

impl Sequence {
    fn new(refs: Vec<ChunkRef>, range: core::ops::Range<usize>, window: usize, check_len: bool) -> Self {
        Self {
            refs,
            check_len,
            next_out: range.start,
            end: range.end,
            window: window.max(1),
            headers: HashMap::new(),
            ready: BTreeMap::new(),
        }
    }

    fn window_range(&self) -> core::ops::Range<usize> {
        self.next_out..self.end.min(self.next_out + self.window)
    }

    fn wanted(&self) -> Vec<StripeId> {
        let mut out: Vec<StripeId> = Vec::new();
        for i in self.window_range() {
            let id = self.refs[i].stripe;
            if !self.ready.contains_key(&i) && !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }

    fn is_wanted(&self, id: &StripeId) -> bool {
        self.window_range().any(|i| self.refs[i].stripe == *id && !self.ready.contains_key(&i))
    }

    fn add_header(&mut self, id: StripeId, bytes: &[u8]) -> Result<(), DecodeError> {
        if self.headers.contains_key(&id) || !self.is_wanted(&id) {
            return Ok(());
        }
        let asm =
            StripeAssembler::new(id, bytes).map_err(|source| DecodeError::Header { stripe: id, source })?;
        self.headers.insert(id, asm);
        Ok(())
    }

    fn add_shard(&mut self, id: StripeId, bytes: Vec<u8>) -> Result<bool, DecodeError> {
        let Some(asm) = self.headers.get_mut(&id) else {
            return Ok(false);
        };
        asm.add_shard(bytes)?;
        self.try_complete(id)
    }

    fn add_assembled(&mut self, asm: StripeAssembler) -> Result<bool, DecodeError> {
        let id = asm.id();
        if !self.is_wanted(&id) {
            return Ok(false);
        }
        self.headers.insert(id, asm);
        self.try_complete(id)
    }

    fn try_complete(&mut self, id: StripeId) -> Result<bool, DecodeError> {
        if !self.headers.get(&id).is_some_and(StripeAssembler::is_ready) {
            return Ok(false);
        }
        let Some(asm) = self.headers.remove(&id) else {
            return Ok(false);
        };
        let mut ct = asm.ciphertext()?;
        // Positions in the window this stripe fills (more than one when a file repeats a
        // chunk); the last takes the ciphertext itself, the others a copy.
        let at: Vec<usize> = self
            .window_range()
            .filter(|&i| self.refs[i].stripe == id && !self.ready.contains_key(&i))
            .collect();
        for (n, &i) in at.iter().enumerate() {
            let r = self.refs[i];
            let bytes = if n + 1 == at.len() { core::mem::take(&mut ct) } else { ct.clone() };
            let pt = stripe::open(id, bytes, &r.key)?;
            if self.check_len && pt.len() != r.len as usize {
                return Err(DecodeError::ChunkLength {
                    stripe: id,
                    expected: r.len as usize,
                    found: pt.len(),
                });
            }
            self.ready.insert(i, pt);
        }
        Ok(true)
    }

    fn pop(&mut self) -> Option<(usize, Vec<u8>)> {
        let i = self.next_out;
        let pt = self.ready.remove(&i)?;
        self.next_out += 1;
        Some((i, pt))
    }

    fn is_done(&self) -> bool {
        self.next_out >= self.end
    }
}

#[derive(Debug)]
enum Phase {
    /// Resolving the root or a nested data map level.
    Map {
        depth: usize,
        seq: Sequence,
        bytes: Vec<u8>,
        size: Option<u64>,
    },
    /// Streaming the file's chunks.
    Data {
        seq: Sequence,
        skip: usize,
        remaining: u64,
    },
    Done,
}

/// Reads one file (or a byte range of it) from a capability.
#[derive(Debug)]
pub struct Decoder {
    range: Option<(u64, u64)>,
    window: usize,
    file: Option<FileMap>,
    phase: Phase,
}

impl Decoder {
    /// Decodes the whole file.
    pub fn new(cap: Capability) -> Self {
        Self::build(cap, None)
    }

    /// Decodes `len` bytes from `offset` (clamped to the end of the file).
    pub fn with_range(cap: Capability, offset: u64, len: u64) -> Self {
        Self::build(cap, Some((offset, len)))
    }

    fn build(cap: Capability, range: Option<(u64, u64)>) -> Self {
        let root = ChunkRef { stripe: cap.root, key: cap.key, len: 0 };
        let seq = Sequence::new(vec![root], 0..1, 1, false);
        Self {
            range,
            window: DEFAULT_WINDOW,
            file: None,
            phase: Phase::Map { depth: 0, seq, bytes: Vec::new(), size: None },
        }
    }

    /// Sets how many chunks ahead of the output are asked for (at least 1). Memory held is
    /// about `window` decrypted chunks.
    pub fn set_window(&mut self, window: usize) {
        self.window = window.max(1);
        if let Phase::Data { seq, .. } = &mut self.phase {
            seq.window = self.window;
        }
    }

    /// The file's map, once resolved.
    pub fn file(&self) -> Option<&FileMap> {
        self.file.as_ref()
    }

    /// Whether all output has been produced.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    fn seq(&self) -> Option<&Sequence> {
        match &self.phase {
            Phase::Map { seq, .. } | Phase::Data { seq, .. } => Some(seq),
            Phase::Done => None,
        }
    }

    fn seq_mut(&mut self) -> Option<&mut Sequence> {
        match &mut self.phase {
            Phase::Map { seq, .. } | Phase::Data { seq, .. } => Some(seq),
            Phase::Done => None,
        }
    }

    /// Stripes needed now, in the order they will be output.
    pub fn wanted(&self) -> Vec<StripeId> {
        self.seq().map(Sequence::wanted).unwrap_or_default()
    }

    /// Whether the header of `id` is already held.
    pub fn has_header(&self, id: &StripeId) -> bool {
        self.seq().is_some_and(|s| s.headers.contains_key(id))
    }

    /// Offers a stripe header; it must hash to `id`. Headers of stripes not wanted now are
    /// ignored.
    pub fn add_header(&mut self, id: StripeId, bytes: &[u8]) -> Result<(), DecodeError> {
        match self.seq_mut() {
            Some(seq) => seq.add_header(id, bytes),
            None => Ok(()),
        }
    }

    /// Addresses of the shards of `id` still missing, data shards first; `None` until the
    /// header is held.
    pub fn shard_plan(&self, id: &StripeId) -> Option<Vec<ShardId>> {
        let asm = self.seq()?.headers.get(id)?;
        Some(asm.missing().into_iter().map(|i| asm.header().shards()[i]).collect())
    }

    /// Offers a shard of `id`. Returns `Ok(true)` when the stripe became complete. A shard
    /// that does not match any address in the header is an error and changes nothing.
    pub fn add_shard(&mut self, id: StripeId, bytes: Vec<u8>) -> Result<bool, DecodeError> {
        match self.seq_mut() {
            Some(seq) => seq.add_shard(id, bytes),
            None => Ok(false),
        }
    }

    /// Offers a stripe whose header and shards the caller already verified (a network
    /// client collects shards from several relays into a [`StripeAssembler`] to know when it
    /// has `k`). Returns `Ok(true)` when it completed a wanted stripe; a stripe not wanted now
    /// is ignored.
    pub fn add_assembled(&mut self, asm: StripeAssembler) -> Result<bool, DecodeError> {
        match self.seq_mut() {
            Some(seq) => seq.add_assembled(asm),
            None => Ok(false),
        }
    }

    /// The error to report when the caller cannot find enough shards of `id`.
    pub fn unavailable(&self, id: &StripeId) -> DecodeError {
        match self.seq().and_then(|s| s.headers.get(id)) {
            Some(asm) => DecodeError::Unavailable {
                stripe: *id,
                have: asm.present(),
                need: asm.header().params().k(),
                missing: asm.missing(),
            },
            None => DecodeError::NoHeader { stripe: *id },
        }
    }

    /// The next piece of plaintext, in file order, when it is ready.
    pub fn next_output(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        loop {
            match &mut self.phase {
                Phase::Done => return Ok(None),
                Phase::Data { seq, skip, remaining } => {
                    if *remaining == 0 || seq.is_done() {
                        self.phase = Phase::Done;
                        return Ok(None);
                    }
                    let Some((_, mut pt)) = seq.pop() else {
                        return Ok(None);
                    };
                    if *skip > 0 {
                        pt.drain(..(*skip).min(pt.len()));
                        *skip = 0;
                    }
                    if pt.len() as u64 > *remaining {
                        // `remaining` is below pt.len(), a usize.
                        pt.truncate(*remaining as usize);
                    }
                    *remaining -= pt.len() as u64;
                    return Ok(Some(pt));
                }
                Phase::Map { depth, seq, bytes, size } => {
                    while let Some((_, pt)) = seq.pop() {
                        bytes.extend_from_slice(&pt);
                    }
                    if !seq.is_done() {
                        return Ok(None);
                    }
                    if let Some(size) = size {
                        if bytes.len() as u64 != *size {
                            return Err(
                                DataMapError::SizeMismatch { sum: bytes.len() as u64, size: *size }.into()
                            );
                        }
                    }
                    let map = DataMap::from_bytes(bytes)?;
                    let depth = *depth;
                    self.phase = self.enter(map, depth)?;
                }
            }
        }
    }

    fn enter(&mut self, map: DataMap, depth: usize) -> Result<Phase, DecodeError> {
        match map {
            DataMap::Nested { size, chunks, .. } => {
                if depth >= MAX_NESTING {
                    return Err(DataMapError::TooDeep.into());
                }
                let n = chunks.len();
                let seq = Sequence::new(chunks, 0..n, self.window, true);
                // size <= MAX_DATA_MAP_LEN was checked by validation.
                Ok(Phase::Map {
                    depth: depth + 1,
                    seq,
                    bytes: Vec::with_capacity(size as usize),
                    size: Some(size),
                })
            }
            DataMap::File(file) => {
                let (offset, len) = self.range.unwrap_or((0, file.size));
                if offset > file.size {
                    return Err(DecodeError::RangeOutOfBounds { offset, size: file.size });
                }
                let len = len.min(file.size - offset);
                let (chunks, skip) = file.chunks_for_range(offset, len);
                let seq = Sequence::new(file.chunks.clone(), chunks, self.window, true);
                self.file = Some(file);
                Ok(Phase::Data { seq, skip, remaining: len })
            }
        }
    }
}
