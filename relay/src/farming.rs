//! What the relay does of farming ([`kura_core::farming`] has the rules): admitting stores,
//! free within the allowance or paid by postage.
//!
//! Time is the wall clock's Unix seconds: epochs are numbered from the Unix epoch in
//! `--epoch` seconds, so every relay and client that agree on the epoch length agree on
//! the epoch's number. An unpaid store's account is the hash of its sender's peer id: peer
//! ids are free to make, so the per-account allowance only slows one peer down; the
//! per-relay allowance is what bounds unpaid storage.
//!
//! The postage of every paid stripe admitted is kept in `DIR/farming.redb` (a stamp per
//! `(batch, slot)`, with its burn): a relay started again takes it back, so it still knows
//! which of its stripes are paid and still refuses a slot stamped twice. Entries of batches
//! that have ended are left out at start and removed.

use crate::unix_now;
use anyhow::{Context, Result};
use kura_core::farming::{Admission, Admitted, Allowance, FarmError, Postage, Prices};
use kura_core::ledger::{Ed25519, Key};
use kura_core::StripeId;
use libp2p::PeerId;
use redb::{Database, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Mutex;

/// Batch id ‖ slot (little-endian) → postage (postcard).
const STAMPS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("stamps");

/// The farming settings in effect.
#[derive(Debug, Clone, Copy)]
pub struct FarmingConfig {
    pub prices: Prices,
    pub allowance: Allowance,
    /// Epoch length, seconds.
    pub epoch_secs: u64,
}

impl Default for FarmingConfig {
    fn default() -> Self {
        Self {
            prices: kura_core::farming::DEFAULT_PRICES,
            allowance: kura_core::farming::DEFAULT_ALLOWANCE,
            epoch_secs: kura_core::farming::DEFAULT_EPOCH_SECS,
        }
    }
}

/// The relay's admission of stores.
#[derive(Debug)]
pub struct Farming {
    cfg: FarmingConfig,
    admission: Mutex<Admission>,
    journal: Option<Database>,
}

/// The account an unpaid store from `peer` counts against.
pub fn account_of(peer: &PeerId) -> Key {
    *blake3::hash(&peer.to_bytes()).as_bytes()
}

impl Farming {
    /// In memory only (tests).
    pub fn new(cfg: FarmingConfig) -> Self {
        Self { cfg, admission: Mutex::new(Admission::new(cfg.prices, cfg.allowance)), journal: None }
    }

    /// With the journal in `dir` (created if needed), whose postage is taken back.
    pub fn open(dir: &Path, cfg: FarmingConfig) -> Result<Self> {
        let path = dir.join("farming.redb");
        let db = Database::create(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut admission = Admission::new(cfg.prices, cfg.allowance);
        let epoch = kura_core::farming::epoch_of(unix_now(), cfg.epoch_secs);
        let w = db.begin_write()?;
        {
            let mut t = w.open_table(STAMPS)?;
            let mut ended = Vec::new();
            for entry in t.iter()? {
                let (k, v) = entry?;
                let taken =
                    postcard::from_bytes::<Postage>(v.value()).is_ok_and(|p| admission.restore(&p, epoch));
                if !taken {
                    ended.push(k.value().to_vec());
                }
            }
            for k in ended {
                t.remove(k.as_slice())?;
            }
        }
        w.commit()?;
        tracing::info!(stamps = admission.stamps(), "farming journal replayed");
        Ok(Self { cfg, admission: Mutex::new(admission), journal: Some(db) })
    }

    /// Keeps `postage` in the journal (admitted as new: the first shard of its stripe here).
    pub fn record(&self, postage: &Postage) -> Result<()> {
        let Some(db) = &self.journal else { return Ok(()) };
        let mut key = postage.stamp.batch.to_vec();
        key.extend_from_slice(&postage.stamp.slot.to_le_bytes());
        let bytes = postcard::to_allocvec(postage)?;
        let w = db.begin_write()?;
        w.open_table(STAMPS)?.insert(key.as_slice(), bytes.as_slice())?;
        w.commit()?;
        Ok(())
    }

    /// Admits a store of a shard of `shard_len` bytes of the stripe `stripe` (`n` shards)
    /// from `peer`; `relays` gives this relay's view of the live relays (itself included), in
    /// which the owner's group of a batch not seen before is found (asked only then).
    pub fn admit(
        &self,
        stripe: &StripeId,
        n: usize,
        shard_len: usize,
        peer: &PeerId,
        postage: Option<&Postage>,
        relays: impl FnOnce() -> Vec<PeerId>,
    ) -> Result<Admitted, FarmError> {
        let now = unix_now();
        let epoch = kura_core::farming::epoch_of(now, self.cfg.epoch_secs);
        let group = |owner: &Key| kura_p2p::ledger::group_of(owner, relays()).map(|(g, _)| g);
        let stripe_bytes = (n * shard_len) as u64;
        self.lock().admit(
            stripe,
            shard_len as u64,
            stripe_bytes,
            &account_of(peer),
            postage,
            group,
            now,
            epoch,
            &Ed25519,
        )
    }

    /// Paid stripes held (stamps kept).
    pub fn stamps(&self) -> usize {
        self.lock().stamps()
    }

    /// What `/status` shows of farming.
    pub fn status(&self) -> serde_json::Value {
        let now = unix_now();
        let a = self.lock();
        serde_json::json!({
            "epoch": kura_core::farming::epoch_of(now, self.cfg.epoch_secs),
            "epoch_secs": self.cfg.epoch_secs,
            "price": self.cfg.prices.price,
            "fee_percent": self.cfg.prices.fee_percent,
            "free_bytes_per_peer": self.cfg.allowance.per_account,
            "free_bytes_total": self.cfg.allowance.per_relay,
            "free_bytes_used": a.free_used(now),
            "batches_known": a.known_batches(),
            "stamps": a.stamps(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Admission> {
        self.admission.lock().unwrap_or_else(|p| p.into_inner())
    }
}
