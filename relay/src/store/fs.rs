//! The disk store: shard bytes in files, metadata in redb.
//!
//! ```text
//! DIR/meta.redb            headers, which indices are held, shard sizes and reference
//!                          counts, bytes used: one transaction per write
//! DIR/shards/ab/abcd…      shard bytes, named by BLAKE3 address
//! ```
//! A write goes: verify, check quota and reserve the room, write the shard to a temporary
//! file, fsync, rename, then commit the metadata; answer once that commit is durable. Only
//! the quota check and the commit hold the writers' lock: concurrent writes overlap their
//! file writes and fsyncs, and one sync makes a batch of their commits durable
//! ([`GroupSync`]). A crash before the commit leaves at most a file that no
//! metadata names; [`FsStore::open`] deletes those and any temporary files, so nothing
//! half-written survives a restart. Reads check the shard against its address; a shard whose
//! bytes, read whole, no longer match (or whose file is gone) is dropped from the index and its
//! file deleted. A read that fails for any other reason (no file descriptors left, an IO
//! error) is an error and drops nothing.

use super::group::GroupSync;
use super::{check_quota, cost, verify, Held, Part, ShardStore, StoreError, Usage};
use kura_core::{ShardId, StripeId};
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};

/// Stripe id -> header bytes.
const HEADERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("headers");
/// Stripe id || index -> shard id.
const HELD: TableDefinition<&[u8], &[u8]> = TableDefinition::new("held");
/// Shard id -> (length, references).
const SHARDS: TableDefinition<&[u8], (u64, u32)> = TableDefinition::new("shards");
/// "bytes" -> bytes counted against the quota.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

fn dberr<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

/// Appends the stripes of `entries` (keys of the held table, in order) to `out`, with their
/// indices, until `out` has `limit` stripes (the last one whole).
fn gather<'a, V: redb::Value + 'static>(
    entries: impl Iterator<
        Item = Result<(redb::AccessGuard<'a, &'static [u8]>, redb::AccessGuard<'a, V>), redb::StorageError>,
    >,
    out: &mut Vec<(StripeId, Vec<u8>)>,
    limit: usize,
) -> Result<(), StoreError> {
    for e in entries {
        let (k, _) = e.map_err(dberr)?;
        let k = k.value();
        let mut id = [0u8; 32];
        id.copy_from_slice(&k[..32]);
        let id = StripeId::from_bytes(id);
        let full = out.len() >= limit;
        match out.last_mut() {
            Some((last, idx)) if *last == id => idx.push(k[32]),
            _ if full => break,
            _ => out.push((id, vec![k[32]])),
        }
    }
    Ok(())
}

fn held_key(stripe: &StripeId, index: u8) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[..32].copy_from_slice(stripe.as_bytes());
    k[32] = index;
    k
}

/// Shards on disk.
#[derive(Debug)]
pub struct FsStore {
    dir: PathBuf,
    db: Database,
    quota: u64,
    bytes: AtomicU64,
    shards: AtomicU64,
    /// Serializes the metadata steps of writers (quota check, commit), so they see the same
    /// usage; holds the bytes reserved by writes whose files are being written.
    write: Mutex<u64>,
    /// Numbers temporary files, so concurrent writes of one shard do not share one.
    temp: AtomicU64,
    /// Makes writes' metadata commits durable in batches.
    group: GroupSync,
}

impl FsStore {
    /// Opens (creating if needed) the store in `dir`, cleaning up after any crash.
    pub fn open(dir: impl AsRef<Path>, quota: u64) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        // Every shard directory exists from the start, so a write never asks for one.
        for b in 0..=255u8 {
            fs::create_dir_all(dir.join("shards").join(format!("{b:02x}")))?;
        }
        let db = Database::create(dir.join("meta.redb")).map_err(dberr)?;
        let txn = db.begin_write().map_err(dberr)?;
        {
            txn.open_table(HEADERS).map_err(dberr)?;
            txn.open_table(HELD).map_err(dberr)?;
            txn.open_table(SHARDS).map_err(dberr)?;
            txn.open_table(META).map_err(dberr)?;
        }
        txn.commit().map_err(dberr)?;
        let store = Self {
            dir,
            db,
            quota,
            bytes: AtomicU64::new(0),
            shards: AtomicU64::new(0),
            write: Mutex::new(0),
            temp: AtomicU64::new(0),
            group: GroupSync::default(),
        };
        store.recover()?;
        Ok(store)
    }

    fn shard_path(&self, id: &ShardId) -> PathBuf {
        let hex = id.to_hex();
        self.dir.join("shards").join(&hex[..2]).join(hex)
    }

    /// Deletes temporary files and shard files no metadata names; loads the counters.
    fn recover(&self) -> Result<(), StoreError> {
        let r = self.db.begin_read().map_err(dberr)?;
        let shards = r.open_table(SHARDS).map_err(dberr)?;
        for sub in fs::read_dir(self.dir.join("shards"))? {
            let sub = sub?.path();
            if !sub.is_dir() {
                continue;
            }
            for f in fs::read_dir(&sub)? {
                let path = f?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let known = ShardId::from_hex(name)
                    .map(|id| shards.get(id.as_bytes().as_slice()).map(|v| v.is_some()))
                    .transpose()
                    .map_err(dberr)?
                    .unwrap_or(false);
                if !known {
                    tracing::info!(path = %path.display(), "removing a shard file no metadata names");
                    fs::remove_file(&path)?;
                }
            }
        }
        self.shards.store(shards.len().map_err(dberr)?, Relaxed);
        let meta = r.open_table(META).map_err(dberr)?;
        self.bytes.store(meta.get("bytes").map_err(dberr)?.map(|v| v.value()).unwrap_or(0), Relaxed);
        Ok(())
    }

    fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = path.with_extension(format!("tmp{}", self.temp.fetch_add(1, Relaxed)));
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        Ok(result?)
    }

    /// Drops index `index` of `stripe` (its shard was found corrupt).
    fn drop_index(&self, stripe: &StripeId, index: u8, id: &ShardId) -> Result<(), StoreError> {
        let _w = self.writers();
        let txn = self.db.begin_write().map_err(dberr)?;
        let mut freed = 0u64;
        let mut delete_file = false;
        {
            let mut held = txn.open_table(HELD).map_err(dberr)?;
            let named = held
                .remove(held_key(stripe, index).as_slice())
                .map_err(dberr)?
                .is_some_and(|v| v.value() == id.as_bytes().as_slice());
            if !named {
                // Dropped already (by a concurrent read or a removal): nothing more to do (the
                // transaction is abandoned).
                return Ok(());
            }
            let lo = held_key(stripe, 0);
            let hi = held_key(stripe, 255);
            let others = held.range(lo.as_slice()..=hi.as_slice()).map_err(dberr)?.count();
            if others == 0 {
                let mut headers = txn.open_table(HEADERS).map_err(dberr)?;
                let removed =
                    headers.remove(stripe.as_bytes().as_slice()).map_err(dberr)?.map(|h| h.value().len());
                freed += removed.unwrap_or(0) as u64;
            }
            let mut shards = txn.open_table(SHARDS).map_err(dberr)?;
            let entry = shards.get(id.as_bytes().as_slice()).map_err(dberr)?.map(|v| v.value());
            if let Some((len, refs)) = entry {
                if refs <= 1 {
                    shards.remove(id.as_bytes().as_slice()).map_err(dberr)?;
                    freed += len;
                    delete_file = true;
                } else {
                    shards.insert(id.as_bytes().as_slice(), (len, refs - 1)).map_err(dberr)?;
                }
            }
            let mut meta = txn.open_table(META).map_err(dberr)?;
            let used = self.bytes.load(Relaxed).saturating_sub(freed);
            meta.insert("bytes", used).map_err(dberr)?;
        }
        txn.commit().map_err(dberr)?;
        self.bytes.fetch_sub(freed.min(self.bytes.load(Relaxed)), Relaxed);
        if delete_file {
            self.shards.fetch_sub(1, Relaxed);
            let _ = fs::remove_file(self.shard_path(id));
        }
        Ok(())
    }

    /// The header of `stripe` and its lowest index held, with that index's shard address.
    fn first_held(&self, stripe: &StripeId) -> Result<Option<(Vec<u8>, u8, ShardId)>, StoreError> {
        let r = self.db.begin_read().map_err(dberr)?;
        let headers = r.open_table(HEADERS).map_err(dberr)?;
        let Some(header) =
            headers.get(stripe.as_bytes().as_slice()).map_err(dberr)?.map(|h| h.value().to_vec())
        else {
            return Ok(None);
        };
        let held = r.open_table(HELD).map_err(dberr)?;
        let (lo, hi) = (held_key(stripe, 0), held_key(stripe, 255));
        let Some(e) = held.range(lo.as_slice()..=hi.as_slice()).map_err(dberr)?.next() else {
            return Ok(None);
        };
        let (k, v) = e.map_err(dberr)?;
        let mut id = [0u8; 32];
        id.copy_from_slice(v.value());
        Ok(Some((header, k.value()[32], ShardId::from_bytes(id))))
    }

    /// Returns once metadata commit `seq` is on disk (see [`GroupSync`]).
    fn durable(&self, seq: u64) -> Result<(), StoreError> {
        self.group.wait(seq, || {
            let mut txn = self.db.begin_write().map_err(dberr)?;
            txn.set_durability(Durability::Immediate);
            txn.commit().map_err(dberr)
        })
    }

    /// Answers a write whose index is already held, once the holder's commit (which may
    /// not be synced yet) is durable.
    fn already_held(&self, writers: MutexGuard<'_, u64>, index: u8) -> Result<u8, StoreError> {
        let last = self.group.last();
        drop(writers);
        self.durable(last).map(|()| index)
    }

    /// The writers' lock, which guards the bytes reserved by writes in progress.
    fn writers(&self) -> MutexGuard<'_, u64> {
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes a shard file this write made if no metadata names its shard (a sole write
    /// that lost to another index of its stripe). If the metadata cannot be read, the file
    /// stays until the next open removes it.
    fn remove_unless_named(&self, id: &ShardId, path: &Path) {
        let named = (|| -> Result<bool, StoreError> {
            let r = self.db.begin_read().map_err(dberr)?;
            let shards = r.open_table(SHARDS).map_err(dberr)?;
            Ok(shards.get(id.as_bytes().as_slice()).map_err(dberr)?.is_some())
        })()
        .unwrap_or(true);
        if !named {
            let _ = fs::remove_file(path);
        }
    }

    /// What the metadata knows of a write: whether its index is held, the header, the shard.
    /// A sole write fails if any index of its stripe is held.
    fn known(&self, v: &super::Verified<'_>, sole: bool) -> Result<Known, StoreError> {
        let r = self.db.begin_read().map_err(dberr)?;
        let held = r.open_table(HELD).map_err(dberr)?;
        // One shard of a stripe per relay: another index is refused; the same one (not by a
        // sole write) is already there.
        let (lo, hi) = (held_key(&v.stripe, 0), held_key(&v.stripe, 255));
        if let Some(e) = held.range(lo.as_slice()..=hi.as_slice()).map_err(dberr)?.next() {
            let index = e.map_err(dberr)?.0.value()[32];
            if sole || usize::from(index) != v.index {
                return Err(StoreError::AlreadyHeld { stripe: v.stripe, index });
            }
            return Ok(Known { held: true, header: true, shard: None });
        }
        let headers = r.open_table(HEADERS).map_err(dberr)?;
        let shards = r.open_table(SHARDS).map_err(dberr)?;
        Ok(Known {
            held: false,
            header: headers.get(v.stripe.as_bytes().as_slice()).map_err(dberr)?.is_some(),
            shard: shards.get(v.shard_id.as_bytes().as_slice()).map_err(dberr)?.map(|x| x.value()),
        })
    }
}

/// What the metadata knows of a write (see [`FsStore::known`]).
struct Known {
    /// The stripe's index is held: nothing to write.
    held: bool,
    /// The stripe's header is stored.
    header: bool,
    /// The shard is stored (for another stripe): its length and references.
    shard: Option<(u64, u32)>,
}

/// Quota room reserved for a write in progress; given back when dropped.
struct Reservation<'a> {
    writers: &'a Mutex<u64>,
    bytes: u64,
}

impl Reservation<'_> {
    /// Gives the room back while the writers' lock is held.
    fn release(mut self, reserved: &mut u64) {
        *reserved -= self.bytes;
        self.bytes = 0;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            *self.writers.lock().unwrap_or_else(|p| p.into_inner()) -= self.bytes;
        }
    }
}

impl ShardStore for FsStore {
    fn put_checked(&self, header_bytes: &[u8], shard: &[u8], sole: bool) -> Result<u8, StoreError> {
        let v = verify(header_bytes, shard)?;
        let index = v.index as u8;
        let path = self.shard_path(&v.shard_id);
        // Under the writers' lock: is it held already, and is there room?
        let mut reserved = self.writers();
        let mut k = self.known(&v, sole)?;
        if k.held {
            return self.already_held(reserved, index);
        }
        let need = cost(&v, k.header, k.shard.is_some());
        check_quota(self.bytes.load(Relaxed) + *reserved, need, self.quota)?;
        if k.shard.is_none() {
            // The room is reserved, so writes in progress cannot together overrun the quota.
            *reserved += need;
            let room = Reservation { writers: &self.write, bytes: need };
            drop(reserved);
            // Without the lock: the shard's bytes to disk. Concurrent writes overlap here,
            // so their fsyncs share the filesystem's journal commits instead of queueing.
            self.write_file(&path, shard)?;
            // Under the lock again: another write may have stored this index or this shard
            // meanwhile, or a removal may have taken the file; look again.
            reserved = self.writers();
            room.release(&mut reserved);
            k = match self.known(&v, sole) {
                Ok(k) => k,
                Err(e) => {
                    self.remove_unless_named(&v.shard_id, &path);
                    return Err(e);
                }
            };
            if k.held {
                return self.already_held(reserved, index);
            }
            if k.shard.is_none() && !path.exists() {
                self.write_file(&path, shard)?;
            }
        }
        // A file that no metadata names must not stay behind when this write fails.
        let unnamed = |e: StoreError| {
            if k.shard.is_none() {
                let _ = fs::remove_file(&path);
            }
            e
        };
        let need = cost(&v, k.header, k.shard.is_some());
        let used = self.bytes.load(Relaxed);
        check_quota(used + *reserved, need, self.quota).map_err(unnamed)?;
        let commit = (|| -> Result<(), StoreError> {
            let mut txn = self.db.begin_write().map_err(dberr)?;
            // Made durable below, together with the commits of other writes.
            txn.set_durability(Durability::None);
            {
                if !k.header {
                    let mut headers = txn.open_table(HEADERS).map_err(dberr)?;
                    headers.insert(v.stripe.as_bytes().as_slice(), header_bytes).map_err(dberr)?;
                }
                let mut held = txn.open_table(HELD).map_err(dberr)?;
                held.insert(held_key(&v.stripe, index).as_slice(), v.shard_id.as_bytes().as_slice())
                    .map_err(dberr)?;
                let mut shards = txn.open_table(SHARDS).map_err(dberr)?;
                let (len, refs) = k.shard.unwrap_or((shard.len() as u64, 0));
                shards.insert(v.shard_id.as_bytes().as_slice(), (len, refs + 1)).map_err(dberr)?;
                let mut meta = txn.open_table(META).map_err(dberr)?;
                meta.insert("bytes", used + need).map_err(dberr)?;
            }
            txn.commit().map_err(dberr)
        })();
        commit.map_err(unnamed)?;
        let seq = self.group.committed();
        self.bytes.store(used + need, Relaxed);
        if k.shard.is_none() {
            self.shards.fetch_add(1, Relaxed);
        }
        drop(reserved);
        self.durable(seq).map(|()| index)
    }

    fn remove(&self, stripe: &StripeId, index: u8) -> Result<bool, StoreError> {
        let id = {
            let r = self.db.begin_read().map_err(dberr)?;
            let held = r.open_table(HELD).map_err(dberr)?;
            let Some(v) = held.get(held_key(stripe, index).as_slice()).map_err(dberr)? else {
                return Ok(false);
            };
            let mut id = [0u8; 32];
            id.copy_from_slice(v.value());
            ShardId::from_bytes(id)
        };
        self.drop_index(stripe, index, &id)?;
        Ok(true)
    }

    fn header(&self, stripe: &StripeId) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.db.begin_read().map_err(dberr)?;
        let headers = r.open_table(HEADERS).map_err(dberr)?;
        Ok(headers.get(stripe.as_bytes().as_slice()).map_err(dberr)?.map(|h| h.value().to_vec()))
    }

    fn get(&self, stripe: &StripeId) -> Result<Option<Held>, StoreError> {
        let Some((header, i, id)) = self.first_held(stripe)? else { return Ok(None) };
        let bytes = match fs::read(self.shard_path(&id)) {
            Ok(bytes) => bytes,
            // The file is gone: the shard is lost, as surely as if its bytes had changed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            // Anything else (no file descriptors left, an IO error) says nothing about the
            // shard: an error, and nothing is dropped.
            Err(e) => return Err(StoreError::Io(e)),
        };
        if ShardId::of(&bytes) != id {
            tracing::warn!(%stripe, shard = %id, index = i, "shard corrupt or missing on disk; dropping it");
            self.drop_index(stripe, i, &id)?;
            return Err(StoreError::Corrupt { stripe: *stripe, shard: id });
        }
        Ok(Some(Held { header, shards: vec![(i, bytes)] }))
    }

    fn part(&self, stripe: &StripeId, offset: usize, len: usize) -> Result<Option<Part>, StoreError> {
        use std::os::unix::fs::FileExt;
        let Some((header, _, id)) = self.first_held(stripe)? else { return Ok(None) };
        let file = fs::File::open(self.shard_path(&id))?;
        let total = file.metadata()?.len() as usize;
        let start = offset.min(total);
        let end = offset.saturating_add(len).min(total);
        let mut bytes = vec![0u8; end - start];
        file.read_exact_at(&mut bytes, start as u64)?;
        Ok(Some(Part { header, total, bytes }))
    }

    fn holds(&self, stripes: &[StripeId]) -> Result<Vec<(StripeId, Vec<u8>)>, StoreError> {
        let r = self.db.begin_read().map_err(dberr)?;
        let held = r.open_table(HELD).map_err(dberr)?;
        let mut out = Vec::new();
        for s in stripes {
            let (lo, hi) = (held_key(s, 0), held_key(s, 255));
            let mut idx = Vec::new();
            for e in held.range(lo.as_slice()..=hi.as_slice()).map_err(dberr)? {
                idx.push(e.map_err(dberr)?.0.value()[32]);
            }
            if !idx.is_empty() {
                out.push((*s, idx));
            }
        }
        Ok(out)
    }

    fn inventory(&self) -> Result<Vec<(StripeId, Vec<u8>)>, StoreError> {
        let r = self.db.begin_read().map_err(dberr)?;
        let held = r.open_table(HELD).map_err(dberr)?;
        let mut out = Vec::new();
        gather(held.iter().map_err(dberr)?, &mut out, usize::MAX)?;
        Ok(out)
    }

    fn inventory_from(&self, start: &StripeId, limit: usize) -> Result<Vec<(StripeId, Vec<u8>)>, StoreError> {
        let r = self.db.begin_read().map_err(dberr)?;
        let held = r.open_table(HELD).map_err(dberr)?;
        let from = held_key(start, 0);
        let mut out = Vec::new();
        gather(held.range(from.as_slice()..).map_err(dberr)?, &mut out, limit)?;
        if out.len() < limit {
            gather(held.range(..from.as_slice()).map_err(dberr)?, &mut out, limit)?;
        }
        Ok(out)
    }

    fn usage(&self) -> Usage {
        Usage { shards: self.shards.load(Relaxed), bytes: self.bytes.load(Relaxed), quota: self.quota }
    }
}
