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
//! that have ended are left out at start and removed. Beside it, the epoch from which each
//! stripe stored free is kept ([`FreeLife`]): free stripes end too.

use crate::unix_now;
use anyhow::{Context, Result};
use kura_core::farming::{
    Acquaintances, Admission, Admitted, Allowance, ClaimPage, FarmError, FreeLife, Postage, Prices,
};
use kura_core::ledger::{Ed25519, Group, Key};
use kura_core::StripeId;
use libp2p::PeerId;
use redb::{Database, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Batch id ‖ slot (little-endian) → postage (postcard).
const STAMPS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("stamps");
/// Stripe id → its key in [`STAMPS`].
const BY_STRIPE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("stamps_by_stripe");
/// Batch id → the evidence that revoked it ([`Evidence`], postcard).
const REVOKED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("revoked");
/// Stripe id → the epoch (little-endian) from which a stripe stored free is kept here
/// ([`FreeLife`]).
const FREE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("free_since");
/// Relays met, by peer id bytes: the second (Unix time) this relay first saw each as a relay
/// ([`kura_core::farming::Acquaintances`], the age rule of audit groups).
const ACQUAINTED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("acquainted");

/// Evidence that a batch's owner stamped one slot twice, as relays pass it on
/// ([`kura_core::wire::Request::Revoke`]): the first stamp with the batch's burn, and the
/// second stamp.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Evidence {
    pub postage: Postage,
    pub second: kura_core::farming::Stamp,
}

/// The farming settings in effect.
#[derive(Debug, Clone, Copy)]
pub struct FarmingConfig {
    pub prices: Prices,
    pub allowance: Allowance,
    /// Epoch length, seconds.
    pub epoch_secs: u64,
    /// Epochs a paid stripe is kept after its batch ended (the owner's time to renew).
    pub expiry_grace: u64,
    /// How long a stripe stored free is kept.
    pub free_life: FreeLife,
    /// Most free shard bytes held at once (a share of the quota: the rest stays for paid
    /// stores).
    pub free_room: u64,
    /// Paid shards to list in one page of an epoch claim
    /// ([`kura_core::farming::ClaimPage::level_for_target`]).
    pub page_target: usize,
}

impl Default for FarmingConfig {
    fn default() -> Self {
        Self {
            prices: kura_core::farming::DEFAULT_PRICES,
            allowance: kura_core::farming::DEFAULT_ALLOWANCE,
            epoch_secs: kura_core::farming::DEFAULT_EPOCH_SECS,
            expiry_grace: DEFAULT_EXPIRY_GRACE,
            free_life: kura_core::farming::DEFAULT_FREE_LIFE,
            free_room: u64::MAX,
            page_target: kura_core::farming::PAGE_TARGET,
        }
    }
}

/// What this relay's epochs earned, as claimant and as auditor (for `/status` and the
/// operator's page; the counters are in the metrics too).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Earnings {
    /// Credits deposited into the rewards account.
    pub earned: u64,
    pub epochs_rewarded: u64,
    pub epochs_forfeited: u64,
    /// The last epoch claimed.
    pub last: Option<Claimed>,
    /// Other relays' claims judged here: signed, and refused or failed.
    pub shares_signed: u64,
    pub claims_refused: u64,
}

/// One epoch's claim, as it went.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Claimed {
    pub epoch: u64,
    /// Pages the claim was made in ([`ClaimPage`]).
    pub pages: usize,
    /// Paid shards listed, and their bytes.
    pub shards: usize,
    pub bytes: u64,
    /// Credits deposited (0: forfeited).
    pub credits: u64,
}

/// Claims judged here, kept to answer a repeated claim alike (at most this many).
const MAX_JUDGED: usize = 65_536;

/// Epochs a paid stripe is kept after its batch ended, by default: a day of hour-long epochs.
pub const DEFAULT_EXPIRY_GRACE: u64 = 24;

/// Epochs the postage of a dropped stripe is still kept, so that a copy a stray repair
/// brought back meanwhile is known as ended and dropped again.
const JOURNAL_KEEP: u64 = 2;

/// The relay's admission of stores, and its epochs' rewards.
#[derive(Debug)]
pub struct Farming {
    cfg: FarmingConfig,
    admission: Mutex<Admission>,
    journal: Option<Database>,
    /// The account rewards are paid into.
    rewards: Option<Key>,
    payer: Option<Payer>,
    earnings: Mutex<Earnings>,
    /// Answers given to epoch claims, by relay and epoch: one judgement each.
    judged: Mutex<std::collections::HashMap<(Key, u64, ClaimPage), kura_core::wire::Response>>,
    /// Claims being judged now.
    judging: Mutex<std::collections::HashSet<(Key, u64, ClaimPage)>>,
    /// The page level of each relay's claims for an epoch, as first judged here: one level
    /// per relay and epoch, so that no shard is claimed in two overlapping pages.
    levels: Mutex<std::collections::HashMap<(Key, u64), u8>>,
    /// Claimants told the evidence against a batch their claim named ([`Self::first_told`]).
    told: Mutex<std::collections::HashSet<(Key, kura_core::ledger::TransferId)>>,
    /// The relays met and since when: who counts in audit groups of which epochs.
    acquainted: Mutex<Acquaintances<PeerId>>,
}

/// The rewards account's key and its key file, whose [`kura_p2p::wallet::SpendLock`] a
/// payment holds (the operator spends from the same file with `kura wallet`).
pub struct Payer {
    pub key: kura_core::ledger::SigningKey,
    pub file: PathBuf,
}

impl std::fmt::Debug for Payer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payer").field("file", &self.file).finish_non_exhaustive()
    }
}

/// The account an unpaid store from `peer` counts against.
pub fn account_of(peer: &PeerId) -> Key {
    *blake3::hash(&peer.to_bytes()).as_bytes()
}

impl Farming {
    /// In memory only (tests).
    pub fn new(cfg: FarmingConfig) -> Self {
        Self {
            cfg,
            admission: Mutex::new(free_room(Admission::new(cfg.prices, cfg.allowance), cfg.free_room)),
            journal: None,
            rewards: None,
            payer: None,
            earnings: Mutex::default(),
            judged: Mutex::default(),
            judging: Mutex::default(),
            levels: Mutex::default(),
            told: Mutex::default(),
            acquainted: Mutex::default(),
        }
    }

    /// With the journal in `dir` (created if needed), whose postage is taken back.
    pub fn open(dir: &Path, cfg: FarmingConfig) -> Result<Self> {
        let path = dir.join("farming.redb");
        let db = Database::create(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut admission = free_room(Admission::new(cfg.prices, cfg.allowance), cfg.free_room);
        let epoch = kura_core::farming::epoch_of(unix_now(), cfg.epoch_secs);
        let w = db.begin_write()?;
        {
            let mut t = w.open_table(STAMPS)?;
            let mut ended = Vec::new();
            for entry in t.iter()? {
                let (k, v) = entry?;
                let postage = postcard::from_bytes::<Postage>(v.value()).ok();
                let taken = postage.as_ref().is_some_and(|p| admission.restore(p, epoch));
                // An ended batch's postage stays until the sweep forgets it
                // ([`Farming::expired`]): its stripes are dropped by then.
                let forgotten = postage.as_ref().is_none_or(|p| {
                    ended_for_good(p, &cfg.prices, epoch, cfg.expiry_grace.saturating_add(JOURNAL_KEEP))
                });
                if !taken && forgotten {
                    ended.push(k.value().to_vec());
                }
            }
            for k in ended {
                t.remove(k.as_slice())?;
            }
            // Revocations stay until their batch has ended for good.
            let mut revoked = w.open_table(REVOKED)?;
            let mut ended = Vec::new();
            for entry in revoked.iter()? {
                let (k, v) = entry?;
                match postcard::from_bytes::<Evidence>(v.value()) {
                    Ok(e) if !ended_for_good(&e.postage, &cfg.prices, epoch, cfg.expiry_grace) => {
                        admission.restore_revoked(e.postage.stamp.batch);
                    }
                    _ => ended.push(k.value().to_vec()),
                }
            }
            for k in ended {
                revoked.remove(k.as_slice())?;
            }
        }
        w.commit()?;
        let mut acquainted = Acquaintances::default();
        if let Some(t) = open_if_made(&db.begin_read()?, ACQUAINTED)? {
            for entry in t.iter()? {
                let (k, v) = entry?;
                if let (Ok(peer), Some(since)) = (PeerId::from_bytes(k.value()), epoch_in(v.value())) {
                    acquainted.restore(peer, since);
                }
            }
        }
        tracing::info!(
            stamps = admission.stamps(),
            relays_met = acquainted.len(),
            "farming journal replayed"
        );
        Ok(Self {
            cfg,
            admission: Mutex::new(admission),
            journal: Some(db),
            rewards: None,
            payer: None,
            earnings: Mutex::default(),
            judged: Mutex::default(),
            judging: Mutex::default(),
            levels: Mutex::default(),
            told: Mutex::default(),
            acquainted: Mutex::new(acquainted),
        })
    }

    /// `peer` was seen as a relay now (this relay itself at start): kept, with the time,
    /// the first time only. Not synced on its own: a meeting a crash loses is made again
    /// later, and only delays when that relay counts in audit groups here.
    pub fn met(&self, peer: &PeerId) -> Result<()> {
        let now = unix_now();
        if !lock(&self.acquainted).met(peer, now) {
            return Ok(());
        }
        let Some(db) = &self.journal else { return Ok(()) };
        let mut w = db.begin_write()?;
        w.set_durability(redb::Durability::Eventual);
        {
            let mut t = w.open_table(ACQUAINTED)?;
            t.insert(peer.to_bytes().as_slice(), now.to_le_bytes().as_slice())?;
        }
        w.commit()?;
        Ok(())
    }

    /// Of `relays` (a view), those that count in audit groups of `epoch` here: met before
    /// it began ([`Acquaintances::aged`]).
    pub fn aged(&self, relays: &[PeerId], epoch: u64) -> Vec<PeerId> {
        lock(&self.acquainted).aged_view(relays.iter().copied(), epoch, self.cfg.epoch_secs)
    }

    /// Relays met so far.
    pub fn relays_met(&self) -> usize {
        lock(&self.acquainted).len()
    }

    /// Pays this relay's rewards into the account of `key` (read from the key file `file`),
    /// which also pays its tabs.
    pub fn with_rewards(mut self, key: kura_core::ledger::SigningKey, file: &Path) -> Self {
        use kura_core::ledger::Signer;
        self.rewards = Some(key.key());
        self.payer = Some(Payer { key, file: file.to_owned() });
        self
    }

    /// The rewards account's key, which pays the tabs ([`crate::epochs::pay_tabs`]).
    pub fn payer(&self) -> Option<&Payer> {
        self.payer.as_ref()
    }

    /// The account rewards are paid into, if any.
    pub fn rewards(&self) -> Option<Key> {
        self.rewards
    }

    pub fn config(&self) -> &FarmingConfig {
        &self.cfg
    }

    /// The postage of every paid stripe admitted and not ended by `epoch` (from the
    /// journal): what an epoch claim lists, for the stripes still held.
    pub fn postage(&self, epoch: u64) -> Result<Vec<Postage>> {
        let Some(db) = &self.journal else { return Ok(Vec::new()) };
        let r = db.begin_read()?;
        let t = r.open_table(STAMPS)?;
        let mut out = Vec::new();
        for entry in t.iter()? {
            let (_, v) = entry?;
            if let Ok(p) = postcard::from_bytes::<Postage>(v.value()) {
                let alive = kura_core::farming::Batch::of_burn(&p.burn.signed.transfer, &self.cfg.prices)
                    .is_ok_and(|b| b.terms.covers(epoch));
                if alive {
                    out.push(p);
                }
            }
        }
        Ok(out)
    }

    /// What this relay's epochs earned.
    pub fn earnings(&self) -> Earnings {
        lock(&self.earnings).clone()
    }

    /// Records the outcome of this relay's claim (credits 0: forfeited).
    pub fn claimed(&self, claim: Claimed) {
        let mut e = lock(&self.earnings);
        if claim.credits > 0 {
            e.earned += claim.credits;
            e.epochs_rewarded += 1;
        } else {
            e.epochs_forfeited += 1;
        }
        e.last = Some(claim);
    }

    /// Paid shards to list in one page of this relay's claims.
    pub fn page_target(&self) -> usize {
        self.cfg.page_target
    }

    /// The answer given already to this relay's claim of `page` for `epoch`, if any: a claim
    /// sent again is answered from it before anything is checked (its draws' proofs cost
    /// the auditor some 6 ms; the answer costs a lookup).
    pub fn judged_before(
        &self,
        relay: Key,
        epoch: u64,
        page: ClaimPage,
    ) -> Option<kura_core::wire::Response> {
        lock(&self.judged).get(&(relay, epoch, page)).cloned()
    }

    /// Starts judging `relay`'s claim for page `page` of `epoch`: `Ok` when no answer was
    /// given and none is being worked out; otherwise the answer already given (`Some`), or
    /// `None` while another copy of the claim is being judged (one judgement each, however
    /// often asked). A page of another level than the relay's first claim of the epoch here
    /// is refused: pages of two levels overlap, and a shard would be rewarded twice.
    pub fn start_judging(
        &self,
        relay: Key,
        epoch: u64,
        page: ClaimPage,
    ) -> Result<(), Option<kura_core::wire::Response>> {
        let j = lock(&self.judged);
        if let Some(answer) = j.get(&(relay, epoch, page)) {
            return Err(Some(answer.clone()));
        }
        {
            let mut levels = lock(&self.levels);
            if levels.len() >= MAX_JUDGED {
                levels.retain(|(_, e), _| *e + 2 >= epoch);
            }
            let level = *levels.entry((relay, epoch)).or_insert(page.level);
            if level != page.level {
                return Err(Some(crate::node::error(
                    kura_core::wire::ErrorCode::Unpaid,
                    format!(
                        "this relay's claims for epoch {epoch} are in pages of level {level}, not {}",
                        page.level
                    ),
                )));
            }
        }
        if !lock(&self.judging).insert((relay, epoch, page)) {
            return Err(None);
        }
        Ok(())
    }

    /// Whether `relay` is to be told the evidence against `batch` now: the first time a
    /// claim of it names the batch here (a claimant that claims it again after being told
    /// is not sent the evidence again).
    pub fn first_told(&self, relay: Key, batch: kura_core::ledger::TransferId) -> bool {
        let mut told = lock(&self.told);
        if told.len() >= MAX_JUDGED {
            told.clear();
        }
        told.insert((relay, batch))
    }

    /// Gives up judging a claim without an answer to keep (this relay failed, not the claim).
    pub fn stop_judging(&self, relay: Key, epoch: u64, page: ClaimPage) {
        lock(&self.judging).remove(&(relay, epoch, page));
    }

    /// Keeps the answer to `relay`'s claim for page `page` of `epoch` (answers of epochs
    /// before `epoch - 2` are dropped first when the table is full).
    pub fn judge(&self, relay: Key, epoch: u64, page: ClaimPage, answer: &kura_core::wire::Response) {
        self.stop_judging(relay, epoch, page);
        let signed = matches!(answer, kura_core::wire::Response::Share(_));
        {
            let mut e = lock(&self.earnings);
            if signed {
                e.shares_signed += 1;
            } else {
                e.claims_refused += 1;
            }
        }
        let mut j = lock(&self.judged);
        if j.len() >= MAX_JUDGED {
            j.retain(|(_, e, _), _| *e + 2 >= epoch);
        }
        if j.len() < MAX_JUDGED {
            j.insert((relay, epoch, page), answer.clone());
        }
    }

    /// Evidence told by another relay: the batch revoked here if it proves a double stamp
    /// (a batch revoked already costs no signature check). `Ok(true)` when this revoked it
    /// (journalled before the answer); `group` places the owner's group
    /// ([`crate::node::owner_group`]).
    pub fn revoke(&self, evidence: &Evidence, group: impl FnOnce(&Key) -> Option<Group>) -> Result<bool> {
        let epoch = kura_core::farming::epoch_of(unix_now(), self.cfg.epoch_secs);
        let new = self
            .lock()
            .revoke(&evidence.postage, &evidence.second, group, epoch, &Ed25519)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if new {
            self.record_revoked(evidence)?;
        }
        Ok(new)
    }

    /// Whether `batch` was admitted here (its burn certificate checked already).
    pub fn knows_batch(&self, batch: &kura_core::ledger::TransferId) -> bool {
        self.lock().knows(batch)
    }

    /// Whether `batch` is revoked here.
    pub fn is_revoked(&self, batch: &kura_core::ledger::TransferId) -> bool {
        self.lock().is_revoked(batch)
    }

    /// The evidence that revoked `batch`, from the journal.
    pub fn evidence(&self, batch: &kura_core::ledger::TransferId) -> Result<Option<Evidence>> {
        let Some(db) = &self.journal else { return Ok(None) };
        let r = db.begin_read()?;
        let Some(t) = open_if_made(&r, REVOKED)? else { return Ok(None) };
        Ok(t.get(batch.as_slice())?.and_then(|v| postcard::from_bytes(v.value()).ok()))
    }

    /// Journals a revocation (found here, or told and proven).
    pub fn record_revoked(&self, evidence: &Evidence) -> Result<()> {
        let Some(db) = &self.journal else { return Ok(()) };
        let bytes = postcard::to_allocvec(evidence)?;
        let w = db.begin_write()?;
        w.open_table(REVOKED)?.insert(evidence.postage.stamp.batch.as_slice(), bytes.as_slice())?;
        w.commit()?;
        Ok(())
    }

    /// Keeps `postage` in the journal (admitted as new: the first shard of its stripe here).
    pub fn record(&self, postage: &Postage) -> Result<()> {
        let Some(db) = &self.journal else { return Ok(()) };
        let mut key = postage.stamp.batch.to_vec();
        key.extend_from_slice(&postage.stamp.slot.to_le_bytes());
        let bytes = postcard::to_allocvec(postage)?;
        let w = db.begin_write()?;
        w.open_table(STAMPS)?.insert(key.as_slice(), bytes.as_slice())?;
        w.open_table(BY_STRIPE)?.insert(postage.stamp.stripe.as_bytes().as_slice(), key.as_slice())?;
        w.commit()?;
        Ok(())
    }

    /// The sweep at `epoch`: the paid stripes whose newest postage is of a batch that ended
    /// [`FarmingConfig::expiry_grace`] epochs ago or more, and the free stripes whose life
    /// ([`FarmingConfig::free_life`]) is over, for the caller to drop; and the journal's
    /// entries of batches ended (and free lives over) [`JOURNAL_KEEP`] epochs before that,
    /// forgotten now. A stripe whose newest postage is missing is not dropped as paid.
    pub fn expired(&self, epoch: u64) -> Result<Vec<StripeId>> {
        let Some(db) = &self.journal else { return Ok(Vec::new()) };
        let (prices, grace) = (self.cfg.prices, self.cfg.expiry_grace);
        let forget_after = grace.saturating_add(JOURNAL_KEEP);
        let mut drop = Vec::new();
        let w = db.begin_write()?;
        {
            let mut stamps = w.open_table(STAMPS)?;
            let mut by_stripe = w.open_table(BY_STRIPE)?;
            let (mut forget_keys, mut forget_stripes) = (Vec::new(), Vec::new());
            for entry in by_stripe.iter()? {
                let (s, key) = entry?;
                let Ok(id) = <[u8; 32]>::try_from(s.value()) else { continue };
                let postage =
                    stamps.get(key.value())?.and_then(|v| postcard::from_bytes::<Postage>(v.value()).ok());
                let Some(p) = postage else {
                    forget_stripes.push(s.value().to_vec());
                    continue;
                };
                if ended_for_good(&p, &prices, epoch, grace) {
                    drop.push(StripeId::from_bytes(id));
                    if ended_for_good(&p, &prices, epoch, forget_after) {
                        forget_stripes.push(s.value().to_vec());
                    }
                }
            }
            // Every entry of a batch ended long ago, the newest of a stripe or one a renewal
            // replaced.
            for entry in stamps.iter()? {
                let (k, v) = entry?;
                let p = postcard::from_bytes::<Postage>(v.value()).ok();
                if p.is_none_or(|p| ended_for_good(&p, &prices, epoch, forget_after)) {
                    forget_keys.push(k.value().to_vec());
                }
            }
            for k in forget_keys {
                stamps.remove(k.as_slice())?;
            }
            for s in forget_stripes {
                by_stripe.remove(s.as_slice())?;
            }
            // Free stripes whose life is over; an entry of a stripe paid since (a renewal's
            // postage) is forgotten: the paid rules keep it now.
            let life = self.cfg.free_life;
            let mut free = w.open_table(FREE)?;
            let mut forget = Vec::new();
            for entry in free.iter()? {
                let (s, v) = entry?;
                let (Ok(id), Some(since)) = (<[u8; 32]>::try_from(s.value()), epoch_in(v.value())) else {
                    forget.push(s.value().to_vec());
                    continue;
                };
                if by_stripe.get(s.value())?.is_some() {
                    forget.push(s.value().to_vec());
                } else if life.droppable_at(since, epoch) {
                    drop.push(StripeId::from_bytes(id));
                    if life.droppable_at(since.saturating_add(JOURNAL_KEEP), epoch) {
                        forget.push(s.value().to_vec());
                    }
                }
            }
            for s in forget {
                free.remove(s.as_slice())?;
            }
        }
        w.commit()?;
        Ok(drop)
    }

    /// Keeps `since` as the epoch from which `stripe`, stored free, is kept here, unless an
    /// epoch is kept already (the first store's stands). `learnt`: the epoch the stripe's
    /// other holders agreed on after a repair or a handover brought it here, which replaces
    /// what was kept (a sweep may have counted the shard as new meanwhile).
    pub fn record_free(&self, stripe: &StripeId, since: u64, learnt: bool) -> Result<()> {
        let Some(db) = &self.journal else { return Ok(()) };
        if !learnt && self.free_since(stripe)?.is_some() {
            return Ok(());
        }
        let mut w = db.begin_write()?;
        // Not synced on its own (a free store or a repair must not wait for the disk): a
        // record a crash loses is counted again by the next sweep, from a later epoch.
        w.set_durability(redb::Durability::Eventual);
        {
            let mut t = w.open_table(FREE)?;
            if learnt || t.get(stripe.as_bytes().as_slice())?.is_none() {
                t.insert(stripe.as_bytes().as_slice(), since.to_le_bytes().as_slice())?;
            }
        }
        w.commit()?;
        Ok(())
    }

    /// The epoch from which `stripe`, stored free, is kept here, if it is kept as free.
    pub fn free_since(&self, stripe: &StripeId) -> Result<Option<u64>> {
        let Some(db) = &self.journal else { return Ok(None) };
        let r = db.begin_read()?;
        let Some(free) = open_if_made(&r, FREE)? else { return Ok(None) };
        Ok(free.get(stripe.as_bytes().as_slice())?.and_then(|v| epoch_in(v.value())))
    }

    /// Of the stripes `held` here, those with neither postage nor a free epoch kept (held
    /// before free stripes had a life, or whose record a crash lost) are counted as free
    /// from `epoch`: every stripe held ends some day unless it is paid for.
    pub fn count_unrecorded(&self, held: impl IntoIterator<Item = StripeId>, epoch: u64) -> Result<usize> {
        let Some(db) = &self.journal else { return Ok(0) };
        let mut counted = 0;
        let mut w = db.begin_write()?;
        w.set_durability(redb::Durability::Eventual);
        {
            let by_stripe = w.open_table(BY_STRIPE)?;
            let mut free = w.open_table(FREE)?;
            for stripe in held {
                let key = stripe.as_bytes().as_slice();
                if by_stripe.get(key)?.is_none() && free.get(key)?.is_none() {
                    free.insert(key, epoch.to_le_bytes().as_slice())?;
                    counted += 1;
                }
            }
        }
        w.commit()?;
        Ok(counted)
    }

    /// Of the stripes `held` here, the shard bytes (`len_of`, asked only of these) of those
    /// stored free (a free epoch kept, no postage): counted at each sweep as what the free
    /// room holds.
    pub fn count_free_held(
        &self,
        held: impl IntoIterator<Item = StripeId>,
        len_of: impl Fn(&StripeId) -> u64,
    ) -> Result<u64> {
        let Some(db) = &self.journal else { return Ok(0) };
        let r = db.begin_read()?;
        let (Some(free), by_stripe) = (open_if_made(&r, FREE)?, open_if_made(&r, BY_STRIPE)?) else {
            return Ok(0);
        };
        let mut bytes = 0u64;
        for stripe in held {
            let key = stripe.as_bytes().as_slice();
            let paid = match &by_stripe {
                Some(t) => t.get(key)?.is_some(),
                None => false,
            };
            if !paid && free.get(key)?.is_some() {
                bytes = bytes.saturating_add(len_of(&stripe));
            }
        }
        self.lock().free_mut().set_held(bytes);
        Ok(bytes)
    }

    /// Gives back to the free room the `bytes` of a free store that failed once admitted.
    pub fn release_free(&self, bytes: u64) {
        self.lock().free_mut().release(bytes);
    }

    /// The epoch now, by this relay's clock.
    pub fn epoch_now(&self) -> u64 {
        kura_core::farming::epoch_of(unix_now(), self.cfg.epoch_secs)
    }

    /// The postage kept for `stripe`, if any.
    pub fn postage_of(&self, stripe: &StripeId) -> Result<Option<Postage>> {
        let Some(db) = &self.journal else { return Ok(None) };
        let r = db.begin_read()?;
        let Some(by_stripe) = open_if_made(&r, BY_STRIPE)? else { return Ok(None) };
        let Some(key) = by_stripe.get(stripe.as_bytes().as_slice())? else { return Ok(None) };
        let stamps = r.open_table(STAMPS)?;
        let Some(bytes) = stamps.get(key.value())? else { return Ok(None) };
        Ok(postcard::from_bytes::<Postage>(bytes.value()).ok().filter(|p| p.stamp.stripe == *stripe))
    }

    /// Whether `stripe` is a paid stripe whose batch ended the grace ago or more, or a free
    /// stripe whose life is over, now: one the next sweep drops, so repair neither rebuilds nor hands it over (a copy made between
    /// two relays' sweeps would only be dropped again).
    pub fn ended(&self, stripe: &StripeId) -> bool {
        let epoch = self.epoch_now();
        match self.postage_of(stripe).ok().flatten() {
            Some(p) => ended_for_good(&p, &self.cfg.prices, epoch, self.cfg.expiry_grace),
            None => self
                .free_since(stripe)
                .ok()
                .flatten()
                .is_some_and(|since| self.cfg.free_life.droppable_at(since, epoch)),
        }
    }

    /// Takes `postage` for a stripe this relay came to hold by a repair or a handover (shards
    /// of `shard_len` bytes, `n` of them), checked as a paid store's is and kept: its shard
    /// then earns like one stored paid. `group` places the batch owner's group
    /// ([`crate::node::owner_group`]).
    pub fn adopt(
        &self,
        postage: &Postage,
        n: usize,
        shard_len: usize,
        group: impl FnOnce(&Key) -> Option<Group>,
    ) -> Result<()> {
        let now = unix_now();
        let epoch = kura_core::farming::epoch_of(now, self.cfg.epoch_secs);
        let stripe = postage.stamp.stripe;
        self.lock()
            .admit(
                &stripe,
                shard_len as u64,
                (n * shard_len) as u64,
                &[0; 32],
                Some(postage),
                group,
                now,
                epoch,
                &Ed25519,
            )
            .map_err(|e| anyhow::Error::new(e).context("the postage does not pay"))?;
        self.record(postage)
    }

    /// Admits a store of a shard of `shard_len` bytes of the stripe `stripe` (`n` shards)
    /// from `peer`; `group` places the owner's group of a batch not seen before (asked only
    /// then; [`crate::node::owner_group`]).
    pub fn admit(
        &self,
        stripe: &StripeId,
        n: usize,
        shard_len: usize,
        peer: &PeerId,
        postage: Option<&Postage>,
        group: impl FnOnce(&Key) -> Option<Group>,
    ) -> Result<Admitted, FarmError> {
        let now = unix_now();
        let epoch = kura_core::farming::epoch_of(now, self.cfg.epoch_secs);
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
            "free_epochs": self.cfg.free_life.epochs,
            "free_bytes_held": a.free_held().0,
            "free_room": a.free_held().1,
            "batches_known": a.known_batches(),
            "stamps": a.stamps(),
            "rewards_account": self.rewards.map(|k| kura_core::hex::encode(&k)),
            "relays_met": self.relays_met(),
            "earnings": self.earnings(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Admission> {
        lock(&self.admission)
    }
}

/// A journal table for reading; `None` when nothing was ever written to it.
fn open_if_made(
    r: &redb::ReadTransaction,
    table: TableDefinition<'static, &'static [u8], &'static [u8]>,
) -> Result<Option<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>> {
    match r.open_table(table) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn free_room(mut a: Admission, room: u64) -> Admission {
    a.free_mut().set_room(room);
    a
}

/// An epoch as the journal keeps it (8 bytes, little-endian).
fn epoch_in(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The rewards account's key in `path` (64 hex digits, the format of `kura wallet`'s key
/// files), made there (mode 0600) on first start, with the account work (about a second):
/// the operator spends what the relay earns with `kura wallet --key PATH`. A key without
/// the work is refused in words: replicas would credit nothing to it.
pub fn rewards_key(path: &Path) -> Result<kura_core::ledger::SigningKey> {
    use kura_core::ledger::{account_work, make_account, SigningKey, ACCOUNT_BITS};
    if !path.exists() {
        let key = make_account(ACCOUNT_BITS, |seed| {
            *seed = rand::random();
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap_or_else(|e| match e {});
        kura_p2p::docs::write_private(
            path,
            format!("{}\n", kura_core::hex::encode(&key.to_bytes())).as_bytes(),
        )?;
        tracing::info!(path = %path.display(), "rewards account made");
        return Ok(key);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let seed: [u8; 32] = kura_core::hex::decode_array(text.trim())
        .with_context(|| format!("{} is not a key file (64 hex digits)", path.display()))?;
    let key = SigningKey::from_bytes(&seed);
    let bits = account_work(&key.verifying_key().to_bytes());
    if bits < ACCOUNT_BITS {
        anyhow::bail!(
            "the rewards key {} carries {bits} bits of account work, {ACCOUNT_BITS} needed: the ledger credits \
             nothing to it; make a key with `kura wallet new --key FILE` and set `rewards_key` to it \
             (or remove this file and a new one is made)",
            path.display()
        );
    }
    Ok(key)
}

/// Whether `postage`'s batch ended `grace` epochs or more before `epoch` (a burn that is no
/// batch at these prices counts as ended).
fn ended_for_good(postage: &Postage, prices: &Prices, epoch: u64, grace: u64) -> bool {
    kura_core::farming::Batch::of_burn(&postage.burn.signed.transfer, prices)
        .map_or(true, |b| b.terms.droppable_at(epoch, grace))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kura_core::wire::{ErrorCode, Response};

    /// A rewards key is made with the account work on first start and read back after; an
    /// operator's key without the work is refused in words (the ledger credits nothing to
    /// it), and one that is no key is refused too.
    #[test]
    fn a_rewards_key_carries_the_account_work() {
        use kura_core::ledger::{account_work, Signer, ACCOUNT_BITS};
        let dir = kura_tests::Scratch::new("rewards-key").unwrap();
        let path = dir.path().join("rewards.key");
        let made = rewards_key(&path).unwrap();
        assert!(account_work(&made.key()) >= ACCOUNT_BITS);
        assert_eq!(rewards_key(&path).unwrap().key(), made.key(), "read back, not made again");
        let seed = (0u8..)
            .map(|b| [b; 32])
            .find(|s| account_work(&kura_core::ledger::SigningKey::from_bytes(s).key()) < ACCOUNT_BITS)
            .unwrap();
        std::fs::write(&path, format!("{}\n", kura_core::hex::encode(&seed))).unwrap();
        let refused = format!("{:#}", rewards_key(&path).unwrap_err());
        assert!(refused.contains("bits of account work, 16 needed"), "{refused}");
        std::fs::write(&path, "not a key\n").unwrap();
        assert!(format!("{:#}", rewards_key(&path).unwrap_err()).contains("not a key file"));
    }

    #[test]
    fn a_claim_is_judged_once_however_often_it_is_sent() {
        let f = Farming::new(FarmingConfig::default());
        let (relay, other) = ([1u8; 32], [2u8; 32]);
        let p = ClaimPage::default();
        assert_eq!(f.judged_before(relay, 7, p), None);
        assert_eq!(f.start_judging(relay, 7, p), Ok(()));
        // A copy sent while the first is judged waits; another relay or epoch does not.
        assert_eq!(f.start_judging(relay, 7, p), Err(None));
        assert_eq!(f.start_judging(other, 7, p), Ok(()));
        assert_eq!(f.start_judging(relay, 8, p), Ok(()));
        let refused = Response::Error { code: ErrorCode::Unpaid, detail: "2 of 16 samples failed".into() };
        f.judge(relay, 7, p, &refused);
        // Sent again, it is answered before its draws are proven again.
        assert_eq!(f.judged_before(relay, 7, p), Some(refused.clone()));
        assert_eq!(f.start_judging(relay, 7, p), Err(Some(refused)));
        // Given up (this relay's own failure): the claim may be judged again.
        f.stop_judging(other, 7, p);
        assert_eq!(f.start_judging(other, 7, p), Ok(()));
        assert_eq!((f.earnings().claims_refused, f.earnings().shares_signed), (1, 0));
    }

    /// Pages of one level are judged apart; a page of another level for the same relay and
    /// epoch (it would overlap them, rewarding shards twice) is refused.
    #[test]
    fn a_relay_claims_an_epoch_in_pages_of_one_level() {
        let f = Farming::new(FarmingConfig::default());
        let relay = [1u8; 32];
        let half = |prefix| ClaimPage { level: 1, prefix };
        assert_eq!(f.start_judging(relay, 7, half(0)), Ok(()));
        assert_eq!(f.start_judging(relay, 7, half(1)), Ok(()));
        let Err(Some(Response::Error { code: ErrorCode::Unpaid, detail })) =
            f.start_judging(relay, 7, ClaimPage::default())
        else {
            panic!("a whole-space page after halves is taken");
        };
        assert!(detail.contains("level 1"), "{detail}");
        assert!(f.start_judging(relay, 7, ClaimPage { level: 2, prefix: 3 }).is_err());
        // Another epoch may use another level.
        assert_eq!(f.start_judging(relay, 8, ClaimPage::default()), Ok(()));
    }

    /// Free stripes end: each is kept for its life from the epoch first recorded (a second
    /// store does not make it young again; what holders agreed after a repair replaces it),
    /// then dropped, and its entry is forgotten two epochs later; a stripe paid since follows
    /// the paid rules; one held with no record is counted from the sweep that finds it; the
    /// journal keeps it all across a restart.
    #[test]
    fn free_stripes_end_when_their_life_is_over() {
        let dir = kura_tests::Scratch::new("free-life").unwrap();
        let cfg = FarmingConfig { free_life: FreeLife { epochs: 10 }, ..FarmingConfig::default() };
        let id = |n: u8| StripeId::from_bytes([n; 32]);
        let f = Farming::open(dir.path(), cfg).unwrap();
        f.record_free(&id(1), 100, false).unwrap();
        f.record_free(&id(1), 105, false).unwrap();
        assert_eq!(f.free_since(&id(1)).unwrap(), Some(100), "the first store's epoch stands");
        f.record_free(&id(2), 100, false).unwrap();
        f.record_free(&id(2), 104, true).unwrap();
        assert_eq!(f.free_since(&id(2)).unwrap(), Some(104), "what holders agreed replaces it");
        assert_eq!(f.count_unrecorded([id(1), id(3)], 102).unwrap(), 1);
        assert_eq!(f.free_since(&id(3)).unwrap(), Some(102));
        assert_eq!(f.free_since(&id(4)).unwrap(), None);
        drop(f);
        let f = Farming::open(dir.path(), cfg).unwrap();
        assert!(f.expired(109).unwrap().is_empty());
        assert_eq!(f.expired(110).unwrap(), vec![id(1)]);
        let mut at_112 = f.expired(112).unwrap();
        at_112.sort_by_key(|s| *s.as_bytes());
        assert_eq!(at_112, vec![id(1), id(3)]);
        // Forgotten two epochs after its end (returned once more then): a copy a stray
        // repair brings back later is counted afresh.
        assert_eq!(f.free_since(&id(1)).unwrap(), None);
        assert_eq!(f.free_since(&id(3)).unwrap(), Some(102));
        assert_eq!(f.expired(114).unwrap().len(), 2, "3 a last time, and 2, ended now");
        assert_eq!(f.free_since(&id(3)).unwrap(), None);
        assert_eq!(f.expired(116).unwrap(), vec![id(2)]);
        assert!(f.expired(117).unwrap().is_empty());
        assert_eq!(f.free_since(&id(2)).unwrap(), None);
    }

    /// Free stores take at most the room the relay gives them (a share of its quota), however
    /// many accounts and windows they come from; a sweep's count of the free stripes still
    /// held makes room again.
    #[test]
    fn free_stores_fill_only_their_room() {
        let dir = kura_tests::Scratch::new("free-room").unwrap();
        const KIB: u64 = 1024;
        let cfg = FarmingConfig { free_room: 1024 * KIB, ..FarmingConfig::default() };
        let f = Farming::open(dir.path(), cfg).unwrap();
        let id = |n: u8| StripeId::from_bytes([n; 32]);
        let peer = || PeerId::random();
        let half = 512 * KIB as usize;
        assert_eq!(f.admit(&id(1), 6, half, &peer(), None, |_: &Key| None), Ok(Admitted::Free));
        assert_eq!(f.admit(&id(2), 6, half, &peer(), None, |_: &Key| None), Ok(Admitted::Free));
        assert_eq!(
            f.admit(&id(3), 6, half, &peer(), None, |_: &Key| None),
            Err(FarmError::FreeRoomFull { held: 1024 * KIB, room: 1024 * KIB })
        );
        // Stripe 2 is gone (its life over, or never stored): the sweep counts stripe 1 only.
        f.record_free(&id(1), 7, false).unwrap();
        let counted = f.count_free_held([id(1), id(9)], |_| 512 * KIB).unwrap();
        assert_eq!(counted, 512 * KIB);
        assert_eq!(f.admit(&id(3), 6, half, &peer(), None, |_: &Key| None), Ok(Admitted::Free));
        assert_eq!(f.status()["free_bytes_held"], 1024 * KIB);
    }
}
