//! The shard store: immutable, content-addressed shards with their stripe headers.
//!
//! Every shard is checked against an address in its header, and the header against its
//! stripe id, before it is written; shard bytes are checked again when read. A quota (bytes
//! of shards and headers) is enforced before a write starts. Two implementations share one
//! test suite: [`FsStore`] (redb metadata, one file per shard written crash-safely) and
//! [`MemStore`] (for tests and benchmarks of the layers above).

mod fs;
mod group;
mod mem;
#[cfg(test)]
mod suite;

pub use fs::FsStore;
pub use mem::MemStore;

use kura_core::wire::ErrorCode;
use kura_core::{HeaderError, ShardId, StripeHeader, StripeId};

/// What a store refused, or failed at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("bad stripe header: {0}")]
    BadHeader(#[from] HeaderError),
    #[error("shard {found} is not part of stripe {stripe}")]
    NotInStripe { stripe: StripeId, found: ShardId },
    #[error("quota full: {need} more bytes needed, {free} free of {quota}")]
    QuotaFull { need: u64, free: u64, quota: u64 },
    #[error("shard {shard} of stripe {stripe} is corrupt on disk and was dropped")]
    Corrupt { stripe: StripeId, shard: ShardId },
    #[error("disk: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata database: {0}")]
    Db(String),
    #[error("a shard (index {index}) of stripe {stripe} is already held here; a relay keeps one shard of a stripe")]
    AlreadyHeld { stripe: StripeId, index: u8 },
    #[error("shard is {found} bytes; its stripe's header says {expected}")]
    WrongLength { expected: usize, found: usize },
}

impl StoreError {
    /// The wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::BadHeader(_) | StoreError::WrongLength { .. } => ErrorCode::Malformed,
            StoreError::NotInStripe { .. } | StoreError::Corrupt { .. } => ErrorCode::BadHash,
            StoreError::QuotaFull { .. } => ErrorCode::QuotaFull,
            StoreError::Io(_) | StoreError::Db(_) => ErrorCode::Internal,
            StoreError::AlreadyHeld { .. } => ErrorCode::AlreadyHeld,
        }
    }
}

/// A verified write: the header, its id and the index of the shard being stored.
#[derive(Debug, Clone)]
pub struct Verified<'a> {
    pub stripe: StripeId,
    pub header_bytes: &'a [u8],
    pub header: StripeHeader,
    pub index: usize,
    pub shard_id: ShardId,
    pub shard: &'a [u8],
}

/// Checks a store request before anything is written.
pub fn verify<'a>(header_bytes: &'a [u8], shard: &'a [u8]) -> Result<Verified<'a>, StoreError> {
    let stripe = StripeId::of(header_bytes);
    let header = StripeHeader::parse(header_bytes)?;
    if shard.len() != header.shard_len() {
        return Err(StoreError::WrongLength { expected: header.shard_len(), found: shard.len() });
    }
    let shard_id = ShardId::of(shard);
    let index = header.index_of(&shard_id).ok_or(StoreError::NotInStripe { stripe, found: shard_id })?;
    Ok(Verified { stripe, header_bytes, header, index, shard_id, shard })
}

/// A stripe as held: its header and the shard held (a relay keeps one shard of a stripe), by
/// index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub header: Vec<u8>,
    pub shards: Vec<(u8, Vec<u8>)>,
}

/// A piece of a held shard, with its stripe's header and the shard's whole length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub header: Vec<u8>,
    pub total: usize,
    pub bytes: Vec<u8>,
}

/// Space used and allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub shards: u64,
    pub bytes: u64,
    pub quota: u64,
}

/// A place shards are kept. Calls block (run them off the async executor).
pub trait ShardStore: Send + Sync + 'static {
    /// Stores one shard of a stripe with its header. Returns the shard's index; storing a
    /// shard already held succeeds without writing. A relay keeps one shard of a stripe:
    /// another index of a stripe already held is refused ([`StoreError::AlreadyHeld`]), so
    /// nobody can make one machine hold (and read, and hash) many shards of one stripe.
    fn put(&self, header_bytes: &[u8], shard: &[u8]) -> Result<u8, StoreError> {
        self.put_checked(header_bytes, shard, false)
    }
    /// Stores a shard only if no shard of its stripe is held yet (checked and written
    /// atomically): a relay keeps one shard per stripe it receives by repair or handover.
    fn put_sole(&self, header_bytes: &[u8], shard: &[u8]) -> Result<u8, StoreError> {
        self.put_checked(header_bytes, shard, true)
    }
    /// [`put`](Self::put), or with `sole` [`put_sole`](Self::put_sole).
    fn put_checked(&self, header_bytes: &[u8], shard: &[u8], sole: bool) -> Result<u8, StoreError>;
    /// Stops holding index `index` of `stripe` (its slot is filled on another relay);
    /// returns whether it was held. The header goes with the last index.
    fn remove(&self, stripe: &StripeId, index: u8) -> Result<bool, StoreError>;
    /// The header of `stripe`, if any of its shards is held.
    fn header(&self, stripe: &StripeId) -> Result<Option<Vec<u8>>, StoreError>;
    /// The header and the (lowest-index) shard held for `stripe`, verified on read; `None`
    /// if nothing is held. Only that one shard is read. A shard whose bytes, read whole, no
    /// longer match its address (or whose file is gone) is dropped and reported as
    /// [`StoreError::Corrupt`]; any other failure to read it is an error and drops nothing.
    fn get(&self, stripe: &StripeId) -> Result<Option<Held>, StoreError>;
    /// Bytes `offset..offset + len` (cut at the end) of the lowest-index shard held for
    /// `stripe`, with the header and the shard's length; `None` if nothing is held. Reads
    /// only that range (parts are for readers that cannot take a whole shard in one answer;
    /// the reader checks the assembled shard against its address). This default goes through
    /// [`get`](Self::get).
    fn part(&self, stripe: &StripeId, offset: usize, len: usize) -> Result<Option<Part>, StoreError> {
        let Some(held) = self.get(stripe)? else { return Ok(None) };
        let Some((_, shard)) = held.shards.into_iter().next() else { return Ok(None) };
        let start = offset.min(shard.len());
        let end = offset.saturating_add(len).min(shard.len());
        Ok(Some(Part { header: held.header, total: shard.len(), bytes: shard[start..end].to_vec() }))
    }
    /// The shard indices held for each of `stripes` that is held at all.
    fn holds(&self, stripes: &[StripeId]) -> Result<Vec<(StripeId, Vec<u8>)>, StoreError>;
    /// Every stripe held, with its indices.
    fn inventory(&self) -> Result<Vec<(StripeId, Vec<u8>)>, StoreError>;
    /// At most `limit` stripes held, with their indices, in id order from `start` (wrapping
    /// round past the last): a window of the inventory without reading all of it.
    fn inventory_from(&self, start: &StripeId, limit: usize) -> Result<Vec<(StripeId, Vec<u8>)>, StoreError>;
    /// Space used and allowed.
    fn usage(&self) -> Usage;
}

/// Bytes a new stripe entry costs against the quota.
fn cost(v: &Verified<'_>, header_known: bool, shard_known: bool) -> u64 {
    let h = if header_known { 0 } else { v.header_bytes.len() as u64 };
    let s = if shard_known { 0 } else { v.shard.len() as u64 };
    h + s
}

fn check_quota(used: u64, need: u64, quota: u64) -> Result<(), StoreError> {
    if used.saturating_add(need) > quota {
        return Err(StoreError::QuotaFull { need, free: quota.saturating_sub(used), quota });
    }
    Ok(())
}
