//! Farming: uploads pay for storage by burning credits, relays earn for storage that
//! audits prove, and nothing is minted that was not burnt first.
//!
//! **Paying.** An uploader buys a [`Batch`]: a ledger transfer to [`BURN`] whose memo names
//! its terms ([`BatchTerms`]: `slots` stripes of at most `slot_bytes` shard bytes each, for
//! `epochs` epochs from `first_epoch`) and whose amount covers them at the network's
//! [`Prices`]. Its certificate is the batch's proof; its transfer id is the batch's id. For
//! each stripe it stores, the uploader signs a [`Stamp`] `(batch, stripe, slot, bytes)`;
//! a relay admits a stripe on `Store` only with a stamp its [`StampBook`] accepts (or
//! within the free allowance, [`FreeUse`]) and keeps the stamp with the header. Two stamps
//! for one `(batch, slot)` on different stripes are [`DoubleStamp`] evidence: the batch is
//! revoked. At `first_epoch + epochs` the batch expires and its stripes earn nothing more.
//!
//! **Earning.** Each epoch, a relay `P` is audited by its **audit group**: the
//! [`AUDIT_GROUP`] relays closest to [`audit_point`]`(P, epoch, beacon)`, a point that moves
//! every epoch so that no relay keeps the same auditors, and that nobody knows before the
//! epoch ends: the [`beacon`] is the least of `P`'s neighbours' [`Draw`]s for the epoch. `P` gives each auditor its inventory of
//! stamped shards it holds as a member of their close groups; each auditor checks the
//! stamps and samples [`EPOCH_SAMPLES`] of them with proofs of possession
//! ([`EpochAudit`]). An auditor that saw every sample pass signs a [`RewardShare`] for
//! `reward(bytes)`; [`AUDIT_QUORUM`] shares of one amount form a [`RewardCertificate`]
//! that `P` deposits into its account, minted once per epoch by the account's replicas
//! ([`crate::ledger::Replica::deposit_reward`]). Any failed sample
//! forfeits that auditor's share; a relay missing a share of its shards fails a sample of
//! most auditors, and so the epoch.
//!
//! **Safety (what is minted).** A stamp pays for `slot_bytes` shard bytes for each of the
//! batch's epochs at [`Prices::price`]; an auditor signs for at most the bytes of stamped,
//! unexpired slots the relay holds, at [`Prices::rate`] = `price · (1 − fee)`. A shard is
//! held for reward only by a member of its stripe's close group, which has one member per
//! shard, so a stripe's shards earn at most its slot's bytes per epoch. Hence, for every
//! batch, what its stripes mint is at most `(1 − fee)` of what it burnt, and the fee is
//! burnt for good: storing data one generated oneself loses at least the fee. Exceptions,
//! bounded: the free allowance (bytes per account per window, and per relay, each free
//! stripe kept for [`FreeLife`] epochs), and a
//! captured audit group (more than `AUDIT_GROUP − AUDIT_QUORUM` auditors of one relay's
//! epoch colluding with it), which can mint at most [`Prices::cap`] for that relay and
//! epoch; the point moves each epoch, so it must be captured again every epoch.
//!
//! No IO and no clock: epochs are numbers the caller computes with [`epoch_of`].

use crate::ledger::{Certificate, Group, Key, Sig, Signer, Transfer, TransferId, Verifier, BURN};
use crate::placement::DhtKey;
use crate::StripeId;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Relays in a relay's audit group for one epoch. Thirty-two, not sixteen: chosen when audit
/// points were known for every future epoch, so that an adversary made relay identities
/// until one met an audit group it held a quorum of in some epoch (with a tenth of the
/// relays about 4,200 identities against groups of 16, 5 × 10¹⁰ against 32). Points are now
/// placed by draws shown after the epoch ([`beacon`]); the groups were not shrunk again
/// (`docs/scale/capture.md`).
pub const AUDIT_GROUP: usize = 32;
/// Shares (distinct auditors of the group) a reward certificate needs: two quorums share
/// twelve auditors, and ten auditors that are down do not stop it.
pub const AUDIT_QUORUM: usize = 22;
/// Proofs each auditor asks of a relay per epoch. A relay that lost a share `d` of its
/// shards passes one auditor's samples with probability `(1 − d)^S`: 0.44 at d = 5%,
/// so about 0.4% of its epochs find 22 of 32 auditors with all passes.
pub const EPOCH_SAMPLES: usize = 16;
/// Shares a reward needs from an audit group of `len` relays: `len − ⌊(len − 1)/3⌋`, the
/// ledger's quorum rule ([`AUDIT_QUORUM`] for a full group of [`AUDIT_GROUP`]; a small
/// network's groups are smaller, and any two quorums still share more than a third).
pub const fn audit_quorum(len: usize) -> usize {
    if len == 0 {
        1
    } else {
        len - (len - 1) / 3
    }
}

/// What a batch's memo starts with.
pub const BATCH_MEMO: &[u8] = b"kura batch v1";
/// What a stamp signs first.
pub const STAMP_DOMAIN: &[u8] = b"kura/farming/stamp/v1";
/// What a reward share signs first.
pub const SHARE_DOMAIN: &[u8] = b"kura/farming/share/v1";
const AUDIT_POINT_CONTEXT: &str = "kura 2026 audit group point v2";
/// What a draw's input starts with.
pub const DRAW_DOMAIN: &[u8] = b"kura/farming/draw/v1";
const REWARD_ID_CONTEXT: &str = "kura 2026 reward credit id v1";

/// Prices, in ledger units per GiB of shard bytes per epoch (integers: no rounding in the
/// network's favour or against it, beyond the floor of each reward).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prices {
    /// What an uploader burns per GiB of shard bytes per epoch.
    pub price: u64,
    /// Share of the price that is burnt for good, in percent (the rest can be earned).
    pub fee_percent: u64,
    /// Most one relay earns in one epoch.
    pub cap: u64,
}

const GIB: u128 = 1 << 30;

impl Prices {
    /// What a relay earns per GiB of shard bytes proven per epoch.
    pub fn rate(&self) -> u64 {
        self.price * (100 - self.fee_percent.min(100)) / 100
    }

    /// What a batch of these terms costs: `slots · slot_bytes · epochs` at the price,
    /// rounded up.
    pub fn cost(&self, t: &BatchTerms) -> u64 {
        let bytes = u128::from(t.slots) * u128::from(t.slot_bytes) * u128::from(t.epochs);
        u64::try_from((bytes * u128::from(self.price)).div_ceil(GIB)).unwrap_or(u64::MAX)
    }

    /// What `bytes` of shard bytes proven for one epoch earn, rounded down, within the cap.
    /// What holding `byte_ms` byte-milliseconds earns at the rate, for epochs of `epoch_ms`
    /// milliseconds, times `percent`/100 (not capped: see [`crate::donation::TabPay`]).
    pub fn reward_for_time(&self, byte_ms: u128, epoch_ms: u128, percent: u64) -> u64 {
        let div = GIB * epoch_ms.max(1) * 100;
        let r = byte_ms.saturating_mul(u128::from(self.rate()) * u128::from(percent)) / div;
        u64::try_from(r).unwrap_or(u64::MAX)
    }

    pub fn reward(&self, bytes: u64) -> u64 {
        let r = u128::from(bytes) * u128::from(self.rate()) / GIB;
        u64::try_from(r).unwrap_or(u64::MAX).min(self.cap)
    }
}

/// The epoch of second `now` (since the network's start) for epochs of `len` seconds.
pub fn epoch_of(now_secs: u64, len_secs: u64) -> u64 {
    now_secs / len_secs.max(1)
}

/// The point a relay's audit group for `epoch` is closest to: hashed from the relay's peer
/// id bytes, the epoch and the epoch's [`beacon`] for the relay, so that it moves every
/// epoch and is known to nobody before the epoch ends.
pub fn audit_point(relay: &[u8], epoch: u64, beacon: &[u8; 32]) -> DhtKey {
    let mut h = blake3::Hasher::new_derive_key(AUDIT_POINT_CONTEXT);
    h.update(&(relay.len() as u64).to_le_bytes());
    h.update(relay);
    h.update(&epoch.to_le_bytes());
    h.update(beacon);
    DhtKey(*h.finalize().as_bytes())
}

/// Most relays an [`Acquaintances`] keeps: far above any network's relays (each costs its
/// maker the join work), so that the map's memory is bounded whatever connects.
pub const MAX_ACQUAINTANCES: usize = 1 << 20;

/// The age rule of audit groups: whom a relay has known, and since when (seconds since the
/// Unix epoch, by its own clock). In its view a relay counts in the audit group of `epoch`
/// only if it was known *before that epoch began* ([`Acquaintances::aged`]). An audit
/// group's point is placed by draws shown after the epoch ends ([`beacon`]), so ids ground
/// to sit near a point once it is known are met after the epoch began, and count in no
/// view: a captured group must be ground blind, before the point exists, which is no better
/// than random ids (`docs/scale/capture.md`). Every relay keeps its own acquaintances, on
/// disk (a restart forgets nobody); a relay met for the first time counts from the next
/// epoch on, so a new network's first epoch, and a new relay's first epoch, place no
/// audit group in its view (nothing is claimed, nothing is minted).
#[derive(Debug, Clone)]
pub struct Acquaintances<P> {
    since: HashMap<P, u64>,
}

impl<P: Eq + std::hash::Hash + Clone> Default for Acquaintances<P> {
    fn default() -> Self {
        Self { since: HashMap::new() }
    }
}

impl<P: Eq + std::hash::Hash + Clone> Acquaintances<P> {
    /// `peer` was seen as a relay at `now_secs`. True when it was not known before (the
    /// caller keeps it durably); a relay met again keeps its first meeting.
    pub fn met(&mut self, peer: &P, now_secs: u64) -> bool {
        if self.since.contains_key(peer) || self.since.len() >= MAX_ACQUAINTANCES {
            return false;
        }
        self.since.insert(peer.clone(), now_secs);
        true
    }

    /// A meeting kept on disk, taken back at start (the earlier of two wins).
    pub fn restore(&mut self, peer: P, since: u64) {
        let e = self.since.entry(peer).or_insert(since);
        *e = (*e).min(since);
    }

    /// When `peer` was first seen.
    pub fn since(&self, peer: &P) -> Option<u64> {
        self.since.get(peer).copied()
    }

    /// Whether `peer` counts in audit groups of `epoch` (epochs of `epoch_secs` seconds):
    /// known at or before the epoch's first second.
    pub fn aged(&self, peer: &P, epoch: u64, epoch_secs: u64) -> bool {
        self.since(peer).is_some_and(|t| t <= epoch.saturating_mul(epoch_secs))
    }

    /// `relays` (a view), only those that count in audit groups of `epoch`.
    pub fn aged_view(&self, relays: impl IntoIterator<Item = P>, epoch: u64, epoch_secs: u64) -> Vec<P> {
        relays.into_iter().filter(|p| self.aged(p, epoch, epoch_secs)).collect()
    }

    /// Relays known.
    pub fn len(&self) -> usize {
        self.since.len()
    }

    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }
}

/// What a relay's neighbour draws for it, for one epoch ([`crate::vrf`]'s input).
pub fn draw_input(relay: &[u8], epoch: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(DRAW_DOMAIN.len() + 16 + relay.len());
    m.extend_from_slice(DRAW_DOMAIN);
    m.extend_from_slice(&(relay.len() as u64).to_le_bytes());
    m.extend_from_slice(relay);
    m.extend_from_slice(&epoch.to_le_bytes());
    m
}

/// A neighbour's draw for a relay's epoch: its key and its proof of the one value that key
/// can show for that relay and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draw {
    pub drawer: Key,
    pub proof: crate::vrf::VrfProof,
}

impl Draw {
    /// The draw the key of `seed` (its ed25519 secret's 32 bytes) makes for `relay`'s
    /// `epoch`.
    pub fn make(seed: &[u8; 32], relay: &[u8], epoch: u64) -> Self {
        let drawer = ed25519_dalek::SigningKey::from_bytes(seed).verifying_key().to_bytes();
        Self { drawer, proof: crate::vrf::prove(seed, &draw_input(relay, epoch)).1 }
    }
}

/// The beacon of `relay`'s `epoch`: the least value among the `draws` made by members of
/// `committee` (the verifier's own view of the relay's draw group: the [`AUDIT_GROUP`]
/// relays closest to the relay's own id, itself left out), which must be at least
/// [`audit_quorum`] of them, every one proven. Draws by others are left out unread: views
/// differ (a relay one verifier distrusts is another's neighbour), and a draw no member
/// made cannot move the least of the members' draws. At most [`AUDIT_GROUP`] draws are
/// taken, none twice by one key.
///
/// **Why no one picks it.** A draw is the one value its key can prove for the relay and
/// epoch ([`crate::vrf`]), and honest relays show theirs only once the epoch has ended, so
/// before then no one knows the beacon. After, the relay still chooses which draws it
/// shows, but the least of any `q` of `n` values is one of the `n − q + 1` least: with
/// groups of 32 and quorum 22, the relay chooses among at most 11 beacons, however many of
/// its neighbours are its own. A random point's group is captured with probability `π`
/// (the binomial law of the random-id table, `docs/scale/capture.md`), so one epoch of one
/// relay identity is captured with probability at most `11·π`, and no identity can be made
/// for a point known in advance.
pub fn beacon(relay: &[u8], epoch: u64, committee: &[Key], draws: &[Draw]) -> Result<[u8; 32], FarmError> {
    let input = draw_input(relay, epoch);
    least_draw(committee, draws, |_, d| {
        crate::vrf::verify(&d.drawer, &input, &d.proof)
            .map_err(|e| FarmError::BadDraws(format!("a draw does not verify: {e}")))
    })
}

/// [`beacon`] for draws the caller verified itself as each arrived (`outputs[i]` is
/// `draws[i]`'s VRF output for this relay and epoch): the same rules, without proving
/// each draw a second time. A claimant that dropped the draws that did not verify uses it.
pub fn beacon_of_verified(
    committee: &[Key],
    draws: &[Draw],
    outputs: &[[u8; 32]],
) -> Result<[u8; 32], FarmError> {
    if outputs.len() != draws.len() {
        return Err(FarmError::BadDraws("an output for each draw is needed".into()));
    }
    least_draw(committee, draws, |i, _| Ok(outputs[i]))
}

/// The rules of [`beacon`], with `output(i, draw)` giving (or proving) the output of
/// `draws[i]`, a member's.
fn least_draw(
    committee: &[Key],
    draws: &[Draw],
    output: impl Fn(usize, &Draw) -> Result<[u8; 32], FarmError>,
) -> Result<[u8; 32], FarmError> {
    let bad = |why: String| Err(FarmError::BadDraws(why));
    if draws.len() > AUDIT_GROUP {
        return bad(format!("{} draws, at most {AUDIT_GROUP} are taken", draws.len()));
    }
    let mut seen = HashSet::new();
    if !draws.iter().all(|d| seen.insert(d.drawer)) {
        return bad("two draws by one relay".into());
    }
    let members: Vec<(usize, &Draw)> =
        draws.iter().enumerate().filter(|(_, d)| committee.contains(&d.drawer)).collect();
    let need = audit_quorum(committee.len().min(AUDIT_GROUP));
    if members.len() < need {
        return bad(format!("{} draws by the relay's draw group, {need} needed", members.len()));
    }
    let mut least: Option<[u8; 32]> = None;
    for (i, d) in members {
        let out = output(i, d)?;
        least = Some(least.map_or(out, |l| l.min(out)));
    }
    least.ok_or_else(|| FarmError::BadDraws("no draws".into()))
}

/// The id of the credit a reward for page `page` of `relay`'s `epoch` becomes in its
/// account (what a transfer names to spend it): one per relay, epoch and page, whatever the
/// amount or account.
pub fn reward_id(epoch: u64, relay: &Key, page: &ClaimPage) -> TransferId {
    let mut h = blake3::Hasher::new_derive_key(REWARD_ID_CONTEXT);
    h.update(&epoch.to_le_bytes());
    h.update(relay);
    h.update(&[page.level]);
    h.update(&page.prefix.to_le_bytes());
    *h.finalize().as_bytes()
}

/// Deepest page level: a relay's paid shards are claimed in at most 2¹⁶ pages an epoch.
pub const MAX_PAGE_LEVEL: u8 = 16;
/// Paid shards a relay aims to list in one page: half of [`MAX_CLAIM_ENTRIES`], so that a
/// page whose share of stripe ids came out large still fits.
pub const PAGE_TARGET: usize = MAX_CLAIM_ENTRIES / 2;

/// The part of the stripe id space one claim covers: the stripes whose ids begin with the
/// `level` bits `prefix`. A relay claims an epoch in the `2^level` pages of one level (as
/// many as its paid shards need, [`ClaimPage::level_for`]); pages of one level never
/// overlap, so no shard is rewarded twice, and each page earns at most the cap shifted
/// right by its level, so that all pages of a level together earn at most the cap.
/// Auditors take one level per relay and epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClaimPage {
    pub level: u8,
    pub prefix: u32,
}

impl ClaimPage {
    /// The page of level `level` that `stripe` falls in.
    pub fn of(stripe: &StripeId, level: u8) -> Self {
        let level = level.min(MAX_PAGE_LEVEL);
        let top = u32::from_be_bytes(stripe.as_bytes()[..4].try_into().unwrap_or([0; 4]));
        let prefix = if level == 0 { 0 } else { top >> (32 - u32::from(level)) };
        Self { level, prefix }
    }

    /// The level whose pages hold about [`PAGE_TARGET`] of `shards` paid shards each.
    pub fn level_for(shards: usize) -> u8 {
        Self::level_for_target(shards, PAGE_TARGET)
    }

    /// The shallowest level whose pages hold at most `target` of `shards` paid shards each
    /// on average (stripe ids are hashes: a page's share is close to the average).
    pub fn level_for_target(shards: usize, target: usize) -> u8 {
        let mut level = 0u8;
        while level < MAX_PAGE_LEVEL && shards.div_ceil(1 << level) > target.max(1) {
            level += 1;
        }
        level
    }

    /// Whether `stripe` is in this page.
    pub fn contains(&self, stripe: &StripeId) -> bool {
        Self::of(stripe, self.level) == *self
    }

    /// A level within [`MAX_PAGE_LEVEL`] and a prefix of that many bits.
    pub fn is_valid(&self) -> bool {
        self.level <= MAX_PAGE_LEVEL && u64::from(self.prefix) < 1u64 << self.level
    }

    /// The most one page of this level earns: the cap over the number of pages.
    pub fn cap(&self, prices: &Prices) -> u64 {
        prices.cap >> self.level.min(63)
    }

    /// What `bytes` proven in this page earn for one epoch, within the page's cap.
    pub fn reward(&self, prices: &Prices, bytes: u64) -> u64 {
        prices.reward(bytes).min(self.cap(prices))
    }
}

/// What a batch buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchTerms {
    /// Stripes it may stamp.
    pub slots: u32,
    /// Most shard bytes (all `k + m` shards) of one stripe.
    pub slot_bytes: u64,
    pub first_epoch: u64,
    pub epochs: u64,
}

impl BatchTerms {
    /// The memo of the burn that buys these terms.
    pub fn memo(&self) -> Vec<u8> {
        let mut m = BATCH_MEMO.to_vec();
        // Four integers always encode.
        m.extend(postcard::to_allocvec(self).unwrap_or_default());
        m
    }

    /// The first epoch after the batch's life.
    pub fn end_epoch(&self) -> u64 {
        self.first_epoch.saturating_add(self.epochs)
    }

    /// Whether `epoch` is within the batch's life.
    pub fn covers(&self, epoch: u64) -> bool {
        epoch >= self.first_epoch && epoch - self.first_epoch < self.epochs
    }

    /// Whether a relay may drop, at `epoch`, a stripe whose newest stamp is of this batch:
    /// its life ended `grace` epochs ago or more (the grace is the owner's time to renew).
    pub fn droppable_at(&self, epoch: u64, grace: u64) -> bool {
        epoch >= self.end_epoch().saturating_add(grace)
    }
}

/// A batch: terms paid for by a burn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// The burn transfer's id.
    pub id: TransferId,
    pub owner: Key,
    pub terms: BatchTerms,
}

impl Batch {
    /// The batch a burn buys, if it is one: a transfer to [`BURN`] whose memo holds terms
    /// its amount covers at `prices`. (The caller checks the transfer's certificate with
    /// [`crate::ledger::Certificate::verify`] against the owner's group.)
    pub fn of_burn(t: &Transfer, prices: &Prices) -> Result<Self, FarmError> {
        if t.to != BURN {
            return Err(FarmError::NotABatch);
        }
        let terms: BatchTerms = t
            .memo
            .strip_prefix(BATCH_MEMO)
            .and_then(|rest| postcard::from_bytes(rest).ok())
            .ok_or(FarmError::NotABatch)?;
        if terms.slots == 0 || terms.epochs == 0 || terms.slot_bytes == 0 {
            return Err(FarmError::NotABatch);
        }
        let cost = prices.cost(&terms);
        if t.amount < cost {
            return Err(FarmError::Underpaid { paid: t.amount, cost });
        }
        // A burn from an account without the work was certified, if at all, by a group its
        // owner could pick for free: no replica debits it, and no relay takes it as paid.
        let bits = crate::ledger::account_work(&t.from);
        if bits < crate::ledger::ACCOUNT_BITS {
            return Err(FarmError::NoAccountWork { bits, need: crate::ledger::ACCOUNT_BITS });
        }
        Ok(Self { id: t.id(), owner: t.from, terms })
    }
}

/// An uploader's permission for one stripe to use one slot of its batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub batch: TransferId,
    pub stripe: StripeId,
    pub slot: u32,
    /// The stripe's shard bytes (all its shards).
    pub bytes: u64,
    #[serde(with = "serde_bytes")]
    pub sig: Sig,
}

/// What a stamp's owner signs.
pub fn stamp_message(batch: &TransferId, stripe: &StripeId, slot: u32, bytes: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(STAMP_DOMAIN.len() + 76);
    m.extend_from_slice(STAMP_DOMAIN);
    m.extend_from_slice(batch);
    m.extend_from_slice(stripe.as_bytes());
    m.extend_from_slice(&slot.to_le_bytes());
    m.extend_from_slice(&bytes.to_le_bytes());
    m
}

impl Stamp {
    /// The batch owner's stamp.
    pub fn sign(owner: &impl Signer, batch: &TransferId, stripe: StripeId, slot: u32, bytes: u64) -> Self {
        let sig = owner.sign(&stamp_message(batch, &stripe, slot, bytes));
        Self { batch: *batch, stripe, slot, bytes, sig }
    }

    /// Whether it is valid for `batch` at `epoch`: its slot and size within the terms, the
    /// batch alive, the owner's signature good.
    pub fn check(&self, batch: &Batch, epoch: u64, v: &impl Verifier) -> Result<(), FarmError> {
        if self.batch != batch.id {
            return Err(FarmError::NotABatch);
        }
        if !batch.terms.covers(epoch) {
            return Err(FarmError::Expired);
        }
        if self.slot >= batch.terms.slots || self.bytes > batch.terms.slot_bytes {
            return Err(FarmError::OutsideBatch);
        }
        if !v.verify(
            &batch.owner,
            &stamp_message(&self.batch, &self.stripe, self.slot, self.bytes),
            &self.sig,
        ) {
            return Err(FarmError::BadSignature);
        }
        Ok(())
    }
}

/// Two stamps of one batch owner for one slot and different stripes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoubleStamp {
    pub first: Stamp,
    pub second: Stamp,
}

impl DoubleStamp {
    /// Whether it proves that `batch`'s owner stamped one slot twice.
    pub fn proves(&self, batch: &Batch, v: &impl Verifier) -> bool {
        let (a, b) = (&self.first, &self.second);
        let signed =
            |s: &Stamp| v.verify(&batch.owner, &stamp_message(&s.batch, &s.stripe, s.slot, s.bytes), &s.sig);
        a.batch == batch.id
            && b.batch == batch.id
            && a.slot == b.slot
            && a.stripe != b.stripe
            && signed(a)
            && signed(b)
    }
}

/// A relay's stamps: which stripe holds each `(batch, slot)`, and the batches revoked.
#[derive(Debug, Default)]
pub struct StampBook {
    slots: HashMap<(TransferId, u32), Stamp>,
    revoked: HashSet<TransferId>,
}

impl StampBook {
    /// Admits `stamp` for a stripe stored at `epoch`: checked ([`Stamp::check`]), its batch
    /// not revoked, and its slot not holding another stripe. A second stripe on a slot
    /// revokes the batch and returns the evidence (the stripes it stamped earn nothing).
    /// Returns whether the stamp is new here (not a second shard of a stripe admitted).
    pub fn admit(
        &mut self,
        stamp: Stamp,
        batch: &Batch,
        epoch: u64,
        v: &impl Verifier,
    ) -> Result<bool, FarmError> {
        if self.revoked.contains(&batch.id) {
            return Err(FarmError::Revoked);
        }
        stamp.check(batch, epoch, v)?;
        match self.slots.get(&(stamp.batch, stamp.slot)) {
            Some(held) if held.stripe == stamp.stripe => Ok(false),
            Some(held) => {
                let evidence = DoubleStamp { first: held.clone(), second: stamp };
                self.revoked.insert(batch.id);
                Err(FarmError::DoubleStamp(Box::new(evidence)))
            }
            None => {
                self.slots.insert((stamp.batch, stamp.slot), stamp);
                Ok(true)
            }
        }
    }

    /// Takes back a stamp this relay admitted before it restarted (from its own journal:
    /// checked when it was admitted, so not again).
    pub fn restore(&mut self, stamp: Stamp) {
        self.slots.insert((stamp.batch, stamp.slot), stamp);
    }

    /// Takes back a revocation journalled before a restart (proven when it was taken).
    pub fn restore_revoked(&mut self, batch: TransferId) {
        self.revoked.insert(batch);
    }

    /// Slots that hold a stripe.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Takes evidence found elsewhere: revokes the batch if it proves a double stamp.
    pub fn revoke(&mut self, evidence: &DoubleStamp, batch: &Batch, v: &impl Verifier) -> bool {
        let proven = evidence.proves(batch, v);
        if proven {
            self.revoked.insert(batch.id);
        }
        proven
    }

    /// Whether `stamp` still pays at `epoch`: admitted here, batch not revoked, alive.
    pub fn pays(&self, stamp: &Stamp, batch: &Batch, epoch: u64) -> bool {
        !self.revoked.contains(&stamp.batch)
            && batch.terms.covers(epoch)
            && self.slots.get(&(stamp.batch, stamp.slot)).is_some_and(|s| s == stamp)
    }

    pub fn is_revoked(&self, batch: &TransferId) -> bool {
        self.revoked.contains(batch)
    }
}

/// Unpaid storage a relay takes: at most `per_account` shard bytes per account and
/// `per_relay` in all, per window of `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub per_account: u64,
    pub per_relay: u64,
    pub window_secs: u64,
}

/// How long a stripe stored within the free allowance is kept: `epochs` epochs from the one
/// in which a relay of its group first took it (and then dropped, like a paid stripe whose
/// batch ended). With the allowance's rate, this bounds the free storage a relay holds at
/// once: at most `per_relay` bytes a window for `epochs` epochs' worth of windows. A free
/// file is kept longer only by paying for it (a renewal's postage makes a stripe paid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeLife {
    pub epochs: u64,
}

impl FreeLife {
    /// Whether a relay may drop, at `epoch`, a free stripe first taken at `since`.
    pub fn droppable_at(&self, since: u64, epoch: u64) -> bool {
        epoch >= since.saturating_add(self.epochs)
    }

    /// The first epoch a relay records for a free stripe it came to hold by a repair or a
    /// handover, from the epochs the stripe's other holders answered: their lower median,
    /// so that a minority of holders lying either way (to keep the stripe forever, or to
    /// have it dropped at once) moves nothing beyond what honest holders said; never later
    /// than `now`. With no answer (no holder kept a record), `now`: a fresh life, bounded
    /// like any free store's.
    pub fn agreed_since(answers: &mut [u64], now: u64) -> u64 {
        if answers.is_empty() {
            return now;
        }
        answers.sort_unstable();
        answers[(answers.len() - 1) / 2].min(now)
    }
}

/// Default life of a free stripe: a week of hour-long epochs.
pub const DEFAULT_FREE_LIFE: FreeLife = FreeLife { epochs: 168 };

/// What the free allowance has given in the current window.
#[derive(Debug)]
pub struct FreeUse {
    allowance: Allowance,
    window: u64,
    by_account: HashMap<Key, u64>,
    total: u64,
    /// Free shard bytes held here (as last counted, plus what was taken since), and the most
    /// the relay gives free storage of its disk: the rest stays for paid stores, so a flood
    /// of free stores within the allowance's rate cannot fill the disk and lock them out.
    held: u64,
    room: u64,
}

impl FreeUse {
    pub fn new(allowance: Allowance) -> Self {
        Self { allowance, window: 0, by_account: HashMap::new(), total: 0, held: 0, room: u64::MAX }
    }

    /// The most free shard bytes this relay holds at once.
    pub fn set_room(&mut self, room: u64) {
        self.room = room;
    }

    /// The free shard bytes held, as counted (a sweep counts them after dropping the free
    /// stripes whose life is over).
    pub fn set_held(&mut self, held: u64) {
        self.held = held;
    }

    /// Gives back `bytes` taken for a store that then failed (the window's use stays taken).
    pub fn release(&mut self, bytes: u64) {
        self.held = self.held.saturating_sub(bytes);
    }

    /// Free shard bytes held, and the room for them.
    pub fn held(&self) -> (u64, u64) {
        (self.held, self.room)
    }

    /// Takes `bytes` of `account`'s allowance at second `now`, or says why not (and takes
    /// nothing).
    pub fn take(&mut self, account: &Key, bytes: u64, now_secs: u64) -> Result<(), FarmError> {
        let window = now_secs / self.allowance.window_secs.max(1);
        if window != self.window {
            self.window = window;
            self.by_account.clear();
            self.total = 0;
        }
        let used = self.by_account.get(account).copied().unwrap_or(0);
        if used.saturating_add(bytes) > self.allowance.per_account {
            return Err(FarmError::AllowanceUsed { used, allowance: self.allowance.per_account });
        }
        if self.total.saturating_add(bytes) > self.allowance.per_relay {
            return Err(FarmError::AllowanceUsed { used: self.total, allowance: self.allowance.per_relay });
        }
        if self.held.saturating_add(bytes) > self.room {
            return Err(FarmError::FreeRoomFull { held: self.held, room: self.room });
        }
        self.by_account.insert(*account, used + bytes);
        self.total += bytes;
        self.held += bytes;
        Ok(())
    }

    /// What every account together has stored unpaid in this window at second `now`.
    pub fn used_total(&self, now_secs: u64) -> u64 {
        if now_secs / self.allowance.window_secs.max(1) == self.window {
            self.total
        } else {
            0
        }
    }

    /// What `account` may still store unpaid in this window at second `now`.
    pub fn left(&self, account: &Key, now_secs: u64) -> u64 {
        if now_secs / self.allowance.window_secs.max(1) != self.window {
            return self.allowance.per_account.min(self.allowance.per_relay);
        }
        let used = self.by_account.get(account).copied().unwrap_or(0);
        self.allowance
            .per_account
            .saturating_sub(used)
            .min(self.allowance.per_relay.saturating_sub(self.total))
    }
}

/// One auditor's audit of one relay for one epoch.
#[derive(Debug, Clone)]
pub struct EpochAudit {
    pub epoch: u64,
    pub relay: Key,
    /// Shard bytes of the stamped, paying shards the relay listed.
    pub bytes: u64,
    samples: usize,
    passed: usize,
    failed: bool,
}

impl EpochAudit {
    /// An audit of an inventory of `bytes` stamped shard bytes (the auditor checked each
    /// entry's stamp with [`StampBook::pays`] or [`Stamp::check`], and that the relay is a
    /// member of each stripe's close group in its own view) holding `entries` shards.
    pub fn new(epoch: u64, relay: Key, bytes: u64, entries: usize) -> Self {
        Self { epoch, relay, bytes, samples: EPOCH_SAMPLES.min(entries), passed: 0, failed: false }
    }

    /// Samples still to ask.
    pub fn wanted(&self) -> usize {
        if self.failed {
            0
        } else {
            self.samples - self.passed
        }
    }

    /// Records one sample's verdict: any failure forfeits the epoch.
    pub fn record(&mut self, verdict: crate::audit::Verdict) {
        if verdict == crate::audit::Verdict::Pass {
            self.passed = (self.passed + 1).min(self.samples);
        } else {
            self.failed = true;
        }
    }

    /// The amount to sign for at epoch end: every sample asked and passed, and something
    /// held; `None` otherwise.
    pub fn amount(&self, prices: &Prices, page: &ClaimPage) -> Option<u64> {
        let done = !self.failed && self.samples > 0 && self.passed == self.samples;
        done.then(|| page.reward(prices, self.bytes)).filter(|a| *a > 0)
    }
}

/// What an auditor signs: `relay` earned `amount` for page `page` of `epoch`, paid into
/// `account`.
pub fn share_message(epoch: u64, relay: &Key, account: &Key, amount: u64, page: &ClaimPage) -> Vec<u8> {
    let mut m = Vec::with_capacity(SHARE_DOMAIN.len() + 85);
    m.extend_from_slice(SHARE_DOMAIN);
    m.extend_from_slice(&epoch.to_le_bytes());
    m.extend_from_slice(relay);
    m.extend_from_slice(account);
    m.extend_from_slice(&amount.to_le_bytes());
    m.push(page.level);
    m.extend_from_slice(&page.prefix.to_le_bytes());
    m
}

/// One auditor's signature on a reward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardShare {
    pub auditor: Key,
    #[serde(with = "serde_bytes")]
    pub sig: Sig,
}

impl RewardShare {
    /// `auditor`'s signature on `relay` earning `amount` for page `page` of `epoch`, paid
    /// into `account`.
    pub fn sign(
        auditor: &impl Signer,
        epoch: u64,
        relay: &Key,
        account: &Key,
        amount: u64,
        page: &ClaimPage,
    ) -> Self {
        Self {
            auditor: auditor.key(),
            sig: auditor.sign(&share_message(epoch, relay, account, amount, page)),
        }
    }
}

/// A reward a quorum of a relay's audit group signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardCertificate {
    pub epoch: u64,
    pub relay: Key,
    pub account: Key,
    pub amount: u64,
    /// The page of the relay's claims this rewards.
    pub page: ClaimPage,
    pub shares: Vec<RewardShare>,
    /// The draws that placed the audit group ([`beacon`]).
    pub draws: Vec<Draw>,
}

impl RewardCertificate {
    /// Checks it against the audit group `group` (the verifier's own view of the relays
    /// closest to [`audit_point`] for this relay and epoch, at most [`AUDIT_GROUP`]): at least
    /// [`audit_quorum`] of its size (22 of 32) distinct members signed this very reward, and
    /// it is within the cap.
    pub fn verify(&self, group: &[Key], prices: &Prices, v: &impl Verifier) -> Result<(), FarmError> {
        if !self.page.is_valid() {
            return Err(FarmError::BadClaim(format!("no page {:?}", self.page)));
        }
        let cap = self.page.cap(prices);
        if self.amount == 0 || self.amount > cap {
            return Err(FarmError::OverCap { amount: self.amount, cap });
        }
        let msg = share_message(self.epoch, &self.relay, &self.account, self.amount, &self.page);
        let mut signers: HashSet<Key> = HashSet::new();
        for s in self.shares.iter().take(AUDIT_GROUP * 2) {
            if group.contains(&s.auditor)
                && !signers.contains(&s.auditor)
                && v.verify(&s.auditor, &msg, &s.sig)
            {
                signers.insert(s.auditor);
            }
        }
        let need = audit_quorum(group.len().min(AUDIT_GROUP));
        if signers.len() < need {
            return Err(FarmError::NoQuorum { have: signers.len(), need });
        }
        Ok(())
    }
}

/// Most verified batches an [`Admission`] remembers (about 200 bytes each); beyond it the
/// expired ones are dropped, then all (they are verified again when next seen).
pub const MAX_KNOWN_BATCHES: usize = 65_536;

/// Default prices: 1,000 units per GiB of shard bytes per epoch, 10% burnt for good, at
/// most 10⁹ units to one relay per epoch.
pub const DEFAULT_PRICES: Prices = Prices { price: 1000, fee_percent: 10, cap: 1_000_000_000 };

/// Default epoch length: an hour.
pub const DEFAULT_EPOCH_SECS: u64 = 3600;

/// Default free allowance: 256 MiB of shard bytes per account and 4 GiB per relay per hour.
pub const DEFAULT_ALLOWANCE: Allowance =
    Allowance { per_account: 256 << 20, per_relay: 4 << 30, window_secs: 3600 };

/// What a paid store carries: the uploader's stamp for the stripe and the certificate of
/// the burn that bought its batch (which proves the batch to a relay that has not seen it:
/// certificates verify by themselves against the owner's group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Postage {
    pub stamp: Stamp,
    pub burn: Certificate,
}

impl Postage {
    /// Limits the types do not express (what a frame's reader checks before anything else).
    pub fn check(&self) -> Result<(), crate::wire::WireError> {
        check_burn(&self.burn)
    }
}

/// A burn certificate's limits (what a frame's reader checks before anything else).
fn check_burn(burn: &Certificate) -> Result<(), crate::wire::WireError> {
    use crate::wire::limit;
    let t = &burn.signed.transfer;
    limit("acknowledgements", burn.acks.len(), crate::ledger::MAX_ACKS)?;
    limit("memo bytes", t.memo.len(), crate::ledger::MAX_MEMO)?;
    limit("dependencies", t.deps.len(), crate::ledger::MAX_DEPS)
}

/// Terms that cover a file of `len` bytes cut in chunks of `chunk_size` and encoded with
/// `params`: a slot for each chunk's stripe and for each stripe of its data map (bounded
/// from above: a chunk's entry in the map is under 128 bytes, the rest under 4 KiB), each
/// slot big enough for a full chunk's stripe.
pub fn terms_for(
    len: u64,
    chunk_size: usize,
    params: crate::Params,
    first_epoch: u64,
    epochs: u64,
) -> BatchTerms {
    let chunk = chunk_size.max(1) as u64;
    let mut stripes = len.div_ceil(chunk);
    let mut level = stripes;
    // The data map and the maps of maps above it, down to one stripe.
    loop {
        let map = level * 128 + 4096;
        level = map.div_ceil(chunk);
        stripes += level;
        if level <= 1 {
            break;
        }
    }
    let (k, n) = (params.k() as u64, params.n() as u64);
    let shard = (chunk + crate::crypto::TAG_LEN as u64).div_ceil(k.max(1));
    BatchTerms {
        slots: u32::try_from(stripes).unwrap_or(u32::MAX),
        slot_bytes: n * shard,
        first_epoch,
        epochs,
    }
}

/// How a store was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Within the payer's free allowance.
    Free,
    /// Paid by a stamp of this batch; `new` when the stamp was not admitted before (the
    /// first shard of its stripe here): the one to keep.
    Paid { batch: TransferId, new: bool },
}

/// A relay's admission of stores: free ones within the [`Allowance`], paid ones by a
/// stamp its [`StampBook`] takes, of a batch whose burn certificate verified (kept, so
/// that each batch is verified once). Events in, verdicts out; time is the caller's.
#[derive(Debug)]
pub struct Admission {
    prices: Prices,
    free: FreeUse,
    book: StampBook,
    batches: HashMap<TransferId, Batch>,
}

impl Admission {
    pub fn new(prices: Prices, allowance: Allowance) -> Self {
        Self { prices, free: FreeUse::new(allowance), book: StampBook::default(), batches: HashMap::new() }
    }

    /// Whether the batch `batch` was admitted here (its burn checked once already).
    pub fn knows(&self, batch: &TransferId) -> bool {
        self.batches.contains_key(batch)
    }

    /// What `account` may still store unpaid at second `now`.
    pub fn free_left(&self, account: &Key, now_secs: u64) -> u64 {
        self.free.left(account, now_secs)
    }

    /// Admits a store of `shard_bytes` (this relay's shard) of `stripe`, whose shards are
    /// `stripe_bytes` in all, from `payer` (an unpaid store's account: a hash of the peer),
    /// at second `now_secs` of `epoch`. With postage, it is checked in order of cost: the
    /// stamp names this stripe and at least its bytes; the burn is a batch that covers its
    /// terms (known, or its certificate verified against `group` of its owner, the relays'
    /// own view); then the stamp's signature and slot ([`StampBook::admit`]). Without, it
    /// takes from the free allowance. Refusals take nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn admit(
        &mut self,
        stripe: &StripeId,
        shard_bytes: u64,
        stripe_bytes: u64,
        payer: &Key,
        postage: Option<&Postage>,
        group: impl FnOnce(&Key) -> Option<Group>,
        now_secs: u64,
        epoch: u64,
        v: &impl Verifier,
    ) -> Result<Admitted, FarmError> {
        let Some(postage) = postage else {
            self.free.take(payer, shard_bytes, now_secs)?;
            return Ok(Admitted::Free);
        };
        let stamp = &postage.stamp;
        if stamp.stripe != *stripe {
            return Err(FarmError::WrongStripe);
        }
        if stamp.bytes < stripe_bytes {
            return Err(FarmError::OutsideBatch);
        }
        let batch = self.batch_of(postage, group, epoch, v)?;
        let new = self.book.admit(stamp.clone(), &batch, epoch, v)?;
        Ok(Admitted::Paid { batch: batch.id, new })
    }

    /// The batch `postage` is of: known, or its burn certificate verified against `group`
    /// of its owner (then kept). A batch must cover `epoch`.
    fn batch_of(
        &mut self,
        postage: &Postage,
        group: impl FnOnce(&Key) -> Option<Group>,
        epoch: u64,
        v: &impl Verifier,
    ) -> Result<Batch, FarmError> {
        if let Some(b) = self.batches.get(&postage.stamp.batch) {
            return Ok(*b);
        }
        let batch = Batch::of_burn(&postage.burn.signed.transfer, &self.prices)?;
        if batch.id != postage.stamp.batch {
            return Err(FarmError::NotABatch);
        }
        if !batch.terms.covers(epoch) {
            return Err(FarmError::Expired);
        }
        let group = group(&batch.owner).ok_or(FarmError::NoGroup)?;
        postage.burn.verify(&group, v).map_err(|e| FarmError::Burn(e.to_string()))?;
        self.remember(batch, epoch);
        Ok(batch)
    }

    /// Takes evidence found elsewhere that a batch's owner stamped one slot twice: the first
    /// stamp with the batch's burn (`postage`), and `second`. A batch already revoked here
    /// costs nothing more (no signature is checked: evidence passed on again is cheap to
    /// answer); otherwise the batch is verified as a store's would be and the evidence
    /// checked ([`DoubleStamp::proves`]). `Ok(true)` when this revoked the batch.
    pub fn revoke(
        &mut self,
        postage: &Postage,
        second: &Stamp,
        group: impl FnOnce(&Key) -> Option<Group>,
        epoch: u64,
        v: &impl Verifier,
    ) -> Result<bool, FarmError> {
        if self.book.is_revoked(&postage.stamp.batch) {
            return Ok(false);
        }
        let batch = self.batch_of(postage, group, epoch, v)?;
        let evidence = DoubleStamp { first: postage.stamp.clone(), second: second.clone() };
        if self.book.revoke(&evidence, &batch, v) {
            Ok(true)
        } else {
            Err(FarmError::NoEvidence)
        }
    }

    /// Takes back a revocation this relay journalled before it restarted.
    pub fn restore_revoked(&mut self, batch: TransferId) {
        self.book.restore_revoked(batch);
    }

    /// Whether `batch` is revoked here.
    pub fn is_revoked(&self, batch: &TransferId) -> bool {
        self.book.is_revoked(batch)
    }

    /// Takes back postage this relay admitted before it restarted (from its own journal);
    /// postage of a batch that has ended by `epoch`, or that no longer parses as a batch at
    /// these prices, is left out. Returns whether it was taken.
    pub fn restore(&mut self, postage: &Postage, epoch: u64) -> bool {
        let Ok(batch) = Batch::of_burn(&postage.burn.signed.transfer, &self.prices) else { return false };
        if batch.id != postage.stamp.batch || batch.terms.end_epoch() <= epoch {
            return false;
        }
        self.remember(batch, epoch);
        self.book.restore(postage.stamp.clone());
        true
    }

    /// Stamps held (one per paid stripe admitted).
    pub fn stamps(&self) -> usize {
        self.book.len()
    }

    fn remember(&mut self, batch: Batch, epoch: u64) {
        if self.batches.len() >= MAX_KNOWN_BATCHES {
            self.batches.retain(|_, b| b.terms.covers(epoch));
        }
        if self.batches.len() >= MAX_KNOWN_BATCHES {
            self.batches.clear();
        }
        self.batches.insert(batch.id, batch);
    }

    /// What every account together has stored unpaid in this window at second `now`.
    pub fn free_used(&self, now_secs: u64) -> u64 {
        self.free.used_total(now_secs)
    }

    /// The free allowance's use, to set its room and count what it holds ([`FreeUse`]).
    pub fn free_mut(&mut self) -> &mut FreeUse {
        &mut self.free
    }

    /// Free shard bytes held, and the room for them.
    pub fn free_held(&self) -> (u64, u64) {
        self.free.held()
    }

    /// The batches known, verified (for tests and status pages).
    pub fn known_batches(&self) -> usize {
        self.batches.len()
    }
}

/// Most shards one epoch claim lists (one [`ClaimPage`]; a relay claims an epoch in as
/// many pages as its paid shards need, up to 2¹⁶, so about 33 million shards); bounded so
/// that a claim costs its auditor at most this many stamp checks.
pub const MAX_CLAIM_ENTRIES: usize = 1024;
/// Most batches one claim carries the burns of.
pub const MAX_CLAIM_BATCHES: usize = 64;
/// Most header bytes one claim carries in all.
pub const MAX_CLAIM_HEADER_BYTES: usize = 1 << 20;

/// One paid shard a relay holds: its stripe's header, its index, the stripe's stamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimEntry {
    #[serde(with = "serde_bytes")]
    pub header: Vec<u8>,
    pub index: u8,
    pub stamp: Stamp,
}

/// What a relay asks each member of its audit group for, at the end of `epoch`: a share of
/// the reward for the paid shards it lists, paid into `account`. The relay is the sender
/// (a claim names no relay: one cannot claim for another).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochClaim {
    pub epoch: u64,
    /// The part of the stripe id space this claim covers: every entry's stripe is in it.
    pub page: ClaimPage,
    pub account: Key,
    /// The burn of every batch a stamp below names, once each.
    pub burns: Vec<Certificate>,
    pub entries: Vec<ClaimEntry>,
    /// The draws of the claimant's neighbours for the epoch, which place its audit group
    /// ([`beacon`]).
    pub draws: Vec<Draw>,
}

/// A claim as its auditor checked it: the shards to sample from (stripe header and index)
/// and their bytes in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub bytes: u64,
    pub shards: Vec<(crate::stripe::StripeHeader, u8)>,
}

impl EpochClaim {
    /// Limits the types do not express (checked before anything else).
    pub fn check(&self) -> Result<(), crate::wire::WireError> {
        use crate::wire::limit;
        limit("claim page level", self.page.level.into(), MAX_PAGE_LEVEL.into())?;
        if !self.page.is_valid() {
            return Err(crate::wire::WireError::Malformed(format!("no claim page {:?}", self.page)));
        }
        limit("claim entries", self.entries.len(), MAX_CLAIM_ENTRIES)?;
        limit("claim batches", self.burns.len(), MAX_CLAIM_BATCHES)?;
        limit("claim draws", self.draws.len(), AUDIT_GROUP)?;
        let headers = self.entries.iter().map(|e| e.header.len()).sum();
        limit("claim header bytes", headers, MAX_CLAIM_HEADER_BYTES)?;
        self.burns.iter().try_for_each(check_burn)
    }

    /// The first batch the claim lists that `revoked` (the auditor's book) says its owner
    /// stamped a slot twice: such a claim is refused whole (a revoked batch's stripes earn
    /// nothing), before anything costly is checked.
    pub fn revoked_batch(&self, revoked: impl Fn(&TransferId) -> bool) -> Option<TransferId> {
        self.burns.iter().map(|b| b.signed.transfer.id()).find(|id| revoked(id))
    }

    /// The detail of an auditor's [`crate::wire::ErrorCode::Revoked`] refusal naming `batch`.
    pub fn revoked_detail(batch: &TransferId) -> String {
        format!("batch {} is revoked (its owner stamped a slot twice)", crate::hex::encode(batch))
    }

    /// The batch a [`crate::wire::ErrorCode::Revoked`] refusal's detail names, if it names one
    /// this claim lists (an auditor's word only ever drops a batch of the claimant's own
    /// claim, never adds one).
    pub fn revoked_in(&self, detail: &str) -> Option<TransferId> {
        let id: TransferId = crate::hex::decode_array(detail.strip_prefix("batch ")?.get(..64)?)?;
        self.burns.iter().any(|b| b.signed.transfer.id() == id).then_some(id)
    }

    /// This claim without the batches in `drop` (their burns and every entry they stamp),
    /// and the shard bytes it still lists; `None` when it lists none of them. A claimant
    /// told by its auditors that a batch is revoked claims the page again without it.
    pub fn without_batches(&self, drop: &[TransferId]) -> Option<(EpochClaim, u64)> {
        let dropped = |id: &TransferId| drop.contains(id);
        if !self.burns.iter().any(|b| dropped(&b.signed.transfer.id())) {
            return None;
        }
        let mut c = self.clone();
        c.burns.retain(|b| !dropped(&b.signed.transfer.id()));
        c.entries.retain(|e| !dropped(&e.stamp.batch));
        let bytes = c
            .entries
            .iter()
            .filter_map(|e| crate::stripe::StripeHeader::parse(&e.header).ok())
            .map(|h| h.shard_len() as u64)
            .sum();
        Some((c, bytes))
    }

    /// The auditor's check of the whole claim, in order of cost: every burn is a batch alive
    /// at the claim's epoch whose certificate verifies against its owner's `group` (the
    /// auditor's own view); every entry's header parses, its stamp names that stripe and a
    /// listed batch, its slot and bytes are within the terms and cover the stripe's shards,
    /// and the owner signed it; no stripe and no `(batch, slot)` is listed twice; and the
    /// claimant is a member of each stripe's close group (`member`, the auditor's view).
    /// Any failure refuses the claim whole, so that every honest auditor that accepts it
    /// signs for the same bytes. Checks no proof: the caller samples
    /// [`Inventory::shards`] with [`EpochAudit`].
    pub fn inventory(
        &self,
        prices: &Prices,
        group: impl Fn(&Key) -> Option<Group>,
        member: impl Fn(&StripeId, usize) -> bool,
        v: &impl Verifier,
    ) -> Result<Inventory, FarmError> {
        let mut batches: HashMap<TransferId, Batch> = HashMap::new();
        for burn in &self.burns {
            let batch = Batch::of_burn(&burn.signed.transfer, prices)?;
            if !batch.terms.covers(self.epoch) {
                return Err(FarmError::Expired);
            }
            if batches.contains_key(&batch.id) {
                return Err(FarmError::BadClaim("a batch is listed twice".into()));
            }
            let group = group(&batch.owner).ok_or(FarmError::NoGroup)?;
            burn.verify(&group, v).map_err(|e| FarmError::Burn(e.to_string()))?;
            batches.insert(batch.id, batch);
        }
        let mut stripes = HashSet::new();
        let mut slots = HashSet::new();
        let mut inv = Inventory { bytes: 0, shards: Vec::with_capacity(self.entries.len()) };
        for e in &self.entries {
            let header = crate::stripe::StripeHeader::parse(&e.header)
                .map_err(|err| FarmError::BadClaim(format!("a header does not parse: {err}")))?;
            let stripe = header.id();
            let n = header.params().n();
            if e.stamp.stripe != stripe {
                return Err(FarmError::WrongStripe);
            }
            if !self.page.contains(&stripe) {
                return Err(FarmError::BadClaim(format!(
                    "a stripe outside the claim's page {:?}",
                    self.page
                )));
            }
            if usize::from(e.index) >= n {
                return Err(FarmError::BadClaim(format!("index {} of a stripe of {n} shards", e.index)));
            }
            let batch = batches.get(&e.stamp.batch).ok_or(FarmError::NotABatch)?;
            if e.stamp.bytes < (n * header.shard_len()) as u64 {
                return Err(FarmError::OutsideBatch);
            }
            if !stripes.insert(stripe) || !slots.insert((e.stamp.batch, e.stamp.slot)) {
                return Err(FarmError::BadClaim("a stripe or a slot is listed twice".into()));
            }
            if !member(&stripe, n) {
                return Err(FarmError::NotInGroup);
            }
            e.stamp.check(batch, self.epoch, v)?;
            inv.bytes += header.shard_len() as u64;
            inv.shards.push((header, e.index));
        }
        Ok(inv)
    }
}

/// Why a stamp, a batch or a reward was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FarmError {
    #[error("the transfer is not a batch (a burn whose memo names its terms)")]
    NotABatch,
    #[error("the batch paid {paid}, its terms cost {cost}")]
    Underpaid { paid: u64, cost: u64 },
    #[error("the batch has expired or has not begun")]
    Expired,
    #[error("the stamp's slot or size is outside its batch")]
    OutsideBatch,
    #[error("a signature does not verify")]
    BadSignature,
    #[error("the batch is revoked: its owner stamped a slot twice")]
    Revoked,
    #[error(
        "not evidence of a double stamp: two stamps of the batch's owner for one slot and different stripes"
    )]
    NoEvidence,
    #[error("this slot holds another stripe: the batch is revoked")]
    DoubleStamp(Box<DoubleStamp>),
    #[error("the free allowance is used: {used} of {allowance} bytes in this window")]
    AllowanceUsed { used: u64, allowance: u64 },
    #[error("this relay's room for free storage is full: {held} of {room} bytes held")]
    FreeRoomFull { held: u64, room: u64 },
    #[error("the draws that place the audit group do not hold: {0}")]
    BadDraws(String),
    #[error("{have} shares of the audit group, {need} needed")]
    NoQuorum { have: usize, need: usize },
    #[error("the reward {amount} is over the cap {cap}")]
    OverCap { amount: u64, cap: u64 },
    #[error("the stamp is for another stripe")]
    WrongStripe,
    #[error("no group is known for the batch owner's account")]
    NoGroup,
    #[error("the batch's burn is not certified: {0}")]
    Burn(String),
    #[error("the claim breaks a rule: {0}")]
    BadClaim(String),
    #[error("the claimant is not in the close group of a stripe it lists")]
    NotInGroup,
    #[error("the account carries {bits} bits of account work, {need} needed")]
    NoAccountWork { bits: u32, need: u32 },
}

#[cfg(test)]
#[path = "farming_tests.rs"]
mod tests;
