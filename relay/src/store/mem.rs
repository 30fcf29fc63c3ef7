//! An in-memory shard store.

use super::{check_quota, cost, verify, Held, ShardStore, StoreError, Usage};
use kura_core::{ShardId, StripeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Inner {
    headers: HashMap<StripeId, Vec<u8>>,
    held: BTreeMap<StripeId, BTreeMap<u8, ShardId>>,
    /// Bytes, references from held indices, and the length counted against the quota.
    shards: HashMap<ShardId, (Vec<u8>, u32, u64)>,
    bytes: u64,
}

/// Shards in memory, with the same rules as the disk store.
#[derive(Debug)]
pub struct MemStore {
    quota: u64,
    inner: Mutex<Inner>,
}

impl MemStore {
    /// An empty store holding at most `quota` bytes.
    pub fn new(quota: u64) -> Self {
        Self { quota, inner: Mutex::new(Inner::default()) }
    }

    /// Overwrites the bytes kept for `shard` (to test corruption handling).
    pub fn tamper(&self, shard: &ShardId, f: impl FnOnce(&mut Vec<u8>)) {
        if let Some((b, _, _)) = self.lock().shards.get_mut(shard) {
            f(b)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ShardStore for MemStore {
    fn put_checked(&self, header_bytes: &[u8], shard: &[u8], sole: bool) -> Result<u8, StoreError> {
        let v = verify(header_bytes, shard)?;
        let mut g = self.lock();
        let index = v.index as u8;
        if let Some(&held) = g.held.get(&v.stripe).and_then(|h| h.keys().next()) {
            if sole || held != index {
                return Err(StoreError::AlreadyHeld { stripe: v.stripe, index: held });
            }
        }
        if g.held.get(&v.stripe).is_some_and(|h| h.contains_key(&index)) {
            return Ok(index);
        }
        let need = cost(&v, g.headers.contains_key(&v.stripe), g.shards.contains_key(&v.shard_id));
        check_quota(g.bytes, need, self.quota)?;
        g.bytes += need;
        g.headers.entry(v.stripe).or_insert_with(|| header_bytes.to_vec());
        g.shards.entry(v.shard_id).or_insert_with(|| (shard.to_vec(), 0, shard.len() as u64)).1 += 1;
        g.held.entry(v.stripe).or_default().insert(index, v.shard_id);
        Ok(index)
    }

    fn remove(&self, stripe: &StripeId, index: u8) -> Result<bool, StoreError> {
        let mut g = self.lock();
        let Some(id) = g.held.get(stripe).and_then(|h| h.get(&index)).copied() else { return Ok(false) };
        drop_index(&mut g, stripe, index, &id);
        Ok(true)
    }

    fn header(&self, stripe: &StripeId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().headers.get(stripe).cloned())
    }

    fn get(&self, stripe: &StripeId) -> Result<Option<Held>, StoreError> {
        let mut g = self.lock();
        let Some(idx) = g.held.get(stripe).cloned() else { return Ok(None) };
        let mut shards = Vec::new();
        for (i, id) in idx.into_iter().take(1) {
            let bytes = g.shards.get(&id).map(|(b, _, _)| b.clone()).unwrap_or_default();
            if ShardId::of(&bytes) != id {
                drop_index(&mut g, stripe, i, &id);
                return Err(StoreError::Corrupt { stripe: *stripe, shard: id });
            }
            shards.push((i, bytes));
        }
        let header = g.headers.get(stripe).cloned().unwrap_or_default();
        Ok(Some(Held { header, shards }))
    }

    fn holds(&self, stripes: &[StripeId]) -> Result<Vec<(StripeId, Vec<u8>)>, StoreError> {
        let g = self.lock();
        Ok(stripes.iter().filter_map(|s| g.held.get(s).map(|h| (*s, h.keys().copied().collect()))).collect())
    }

    fn inventory(&self) -> Result<Vec<(StripeId, Vec<u8>)>, StoreError> {
        let g = self.lock();
        Ok(g.held.iter().map(|(s, h)| (*s, h.keys().copied().collect())).collect())
    }

    fn inventory_from(&self, start: &StripeId, limit: usize) -> Result<Vec<(StripeId, Vec<u8>)>, StoreError> {
        let g = self.lock();
        let entry = |(s, h): (&StripeId, &BTreeMap<u8, ShardId>)| (*s, h.keys().copied().collect());
        let after = g.held.range(*start..).map(entry);
        let before = g.held.range(..*start).map(entry);
        Ok(after.chain(before).take(limit).collect())
    }

    fn usage(&self) -> Usage {
        let g = self.lock();
        Usage { shards: g.shards.len() as u64, bytes: g.bytes, quota: self.quota }
    }
}

fn drop_index(g: &mut Inner, stripe: &StripeId, index: u8, id: &ShardId) {
    if let Some(h) = g.held.get_mut(stripe) {
        h.remove(&index);
        if h.is_empty() {
            g.held.remove(stripe);
            if let Some(hb) = g.headers.remove(stripe) {
                g.bytes -= hb.len() as u64;
            }
        }
    }
    if let Some((_, refs, len)) = g.shards.get_mut(id) {
        *refs -= 1;
        if *refs == 0 {
            let len = *len;
            g.shards.remove(id);
            g.bytes -= len;
        }
    }
}
