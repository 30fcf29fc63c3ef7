//! Where shards go and where they are read from: the decisions of the network client, with no
//! IO. The client feeds these machines events (a store confirmed, a request failed, a
//! response) and the current time; they answer with what to do next. Time is a `Duration`
//! since any fixed instant the caller chooses, so tests drive them with simulated time.
//!
//! A stripe's **close group** is the `n` relays closest to its id in Kademlia's XOR metric
//! (distances between SHA-256 digests, as libp2p-kad computes them): [`DhtKey`],
//! [`by_distance`]. [`UploadPlan`] sends shard `i` to the `i`-th closest relay, so that a reader
//! asking the `k` closest gets the data shards and never has to decode; when a relay fails, its
//! shard moves to the next-closest relay not used yet. [`FetchPlan`] asks the closest relays
//! first, asks one more for every failure or useless answer, and hedges a slow request with
//! the next relay.

use crate::address::StripeId;
use crate::wire::ErrorCode;
use core::time::Duration;
use sha2::{Digest, Sha256};

/// A point in the DHT's key space: the SHA-256 of a key's bytes (a peer id's bytes for a
/// relay, the 32 id bytes for a stripe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DhtKey(pub [u8; 32]);

impl DhtKey {
    /// The key of arbitrary bytes (for a relay: its peer id's binary form).
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The key of a stripe.
    pub fn of_stripe(id: &StripeId) -> Self {
        Self::of(id.as_bytes())
    }

    /// XOR distance, compared as a big-endian number.
    pub fn distance(&self, other: &DhtKey) -> [u8; 32] {
        core::array::from_fn(|i| self.0[i] ^ other.0[i])
    }
}

/// Leading zero bits a relay's identity must show under [`join_work`] before anyone counts
/// it in a close group (a stripe's holders, an account's ledger replicas).
///
/// A relay's point in the key space is the hash of its peer id, a key it makes itself, so
/// without a price it can make keys until one lands next to a chosen stripe or account
/// (`kura-sim capture`: three seats of a chosen 4+2 stripe in about 1.4 s of one core among
/// 100,000 relays). The join work multiplies every key tried by `2^JOIN_BITS`: an honest
/// relay pays it once, when it makes its identity (about fifteen seconds of one core at 20
/// bits), a grinder pays it for every key it throws away (about twenty core-days for those
/// three seats, growing with the network). It prices a choice of place; it does not prevent
/// one. Raised from 16 bits once audit groups were placed by draws: what then priced a
/// captured relay-epoch was auditors ground within the claim window, and sixteen times the
/// work makes that weeks of cores against an honest relay's fifteen seconds once.
pub const JOIN_BITS: u32 = 20;

const JOIN_CONTEXT: &str = "kura 2026 relay join work v1";

/// The join work of a peer id (its binary form): the leading zero bits of a BLAKE3 hash of
/// it, under a context of its own (independent of the SHA-256 that places it).
pub fn join_work(peer_id: &[u8]) -> u32 {
    work_bits(JOIN_CONTEXT, peer_id)
}

/// The leading zero bits of BLAKE3 of `bytes` derived under `context`: the work a key shows
/// for the use `context` names (a relay's join, an account).
pub fn work_bits(context: &str, bytes: &[u8]) -> u32 {
    let mut h = blake3::Hasher::new_derive_key(context);
    h.update(bytes);
    let digest = h.finalize();
    let mut bits = 0;
    for b in digest.as_bytes() {
        bits += b.leading_zeros();
        if *b != 0 {
            break;
        }
    }
    bits
}

/// Whether a peer id carries the join work a close group asks ([`JOIN_BITS`]).
pub fn may_join(peer_id: &[u8]) -> bool {
    join_work(peer_id) >= JOIN_BITS
}

/// How many relays a network has, estimated from one lookup: the keys of the relays it found
/// closest to `target` (in any order), `whole` when the lookup found every relay there is (a
/// complete lookup that found fewer than a Kademlia bucket holds).
///
/// A whole network is counted. Otherwise the `i`-th closest of `N` points spread evenly over
/// the key space lies on average `i / (N + 1)` of it from any target, and the least-squares
/// fit of the distances `dᵢ` (fractions of the key space) to `i / N` gives
/// `N ≈ Σ i² / Σ i·dᵢ`. With the 20 a lookup finds, one estimate is within about half of the
/// truth nine times in ten, the median of three within about a third
/// (`network_size_is_found_from_the_closest_distances`). Points ground near `target` make a
/// network look bigger, never smaller; an eclipsed client sees only what it is shown.
pub fn network_size(target: &DhtKey, found: &[DhtKey], whole: bool) -> f64 {
    if whole || found.is_empty() {
        return found.len() as f64;
    }
    let mut fractions: Vec<f64> = found.iter().map(|k| share_between(target, k)).collect();
    fractions.sort_by(f64::total_cmp);
    let (mut squares, mut weighted) = (0.0, 0.0);
    for (i, d) in fractions.iter().enumerate() {
        let rank = (i + 1) as f64;
        squares += rank * rank;
        weighted += rank * d;
    }
    // Never fewer relays than were found.
    (squares / weighted).max(found.len() as f64)
}

/// The XOR distance between `a` and `b` as a share of the key space (its first 64 bits, and
/// half a unit more, so that equal keys still lie a little apart): the `i`-th closest of `N`
/// relays spread evenly lies about `i / (N + 1)` from any point.
pub fn share_between(a: &DhtKey, b: &DhtKey) -> f64 {
    let d = a.distance(b);
    let top = u64::from_be_bytes(core::array::from_fn(|i| d[i]));
    (top as f64 + 0.5) / 18_446_744_073_709_551_616.0
}

/// Lookups a put sizes the network with ([`width_of_estimates`] takes their median).
pub const SIZE_LOOKUPS: usize = 3;

/// The network's size a put rests on, from its [`SIZE_LOOKUPS`] estimates
/// ([`network_size`]): their median, in whole relays (what `kura put` prints), and the stripe
/// width that size calls for ([`crate::Params::for_network`]). 4+2 with no estimate.
pub fn width_of_estimates(estimates: &mut [f64]) -> (f64, crate::Params) {
    estimates.sort_by(f64::total_cmp);
    let relays = estimates.get(estimates.len() / 2).map_or(0.0, |r| r.round());
    (relays, crate::Params::for_network(relays))
}

/// `peers` ordered closest first to `target`; duplicates (same key) are dropped.
pub fn by_distance<P>(target: &DhtKey, peers: impl IntoIterator<Item = (P, DhtKey)>) -> Vec<P> {
    let mut v: Vec<([u8; 32], P)> = peers.into_iter().map(|(p, k)| (target.distance(&k), p)).collect();
    v.sort_by_key(|a| a.0);
    v.dedup_by(|a, b| a.0 == b.0);
    v.into_iter().map(|(_, p)| p).collect()
}

/// Relays past the `n` closest to a stripe that still take its shards: views of who is alive
/// differ a little from relay to relay and from the client's. A put looks for `n` plus these
/// (wider than one lookup for a stripe of more than 16 shards: [`WideLookup`]).
pub const CLOSE_GROUP_SLACK: usize = 4;

/// Relays one Kademlia lookup returns, and one answer to it holds (libp2p-kad's
/// `K_VALUE`): fewer than a ledger or audit group (32).
pub const LOOKUP_FINDS: usize = 20;
/// Lookups a [`WideLookup`] runs after the lookup of its point, at most.
pub const WIDE_EXTRA: usize = 6;
/// Bits past the flipped one that a [`WideLookup`]'s later targets match the point in (so
/// that a lookup ranks a side holding more than it returns as the point would), and the
/// most bits a target is ground to (2²⁴ hashes at worst).
const WIDE_TARGET_BITS: u32 = 6;
const WIDE_MAX_BITS: u32 = 24;

/// Finds the `want` relays closest to a point when `want` is more than one lookup returns
/// ([`LOOKUP_FINDS`]).
///
/// Under the XOR metric the relays nearest a point `P` are those sharing its longest
/// prefix, then the *side* that shares its first `b` bits and differs in bit `b`, for `b`
/// decreasing; within a side, a relay's distance to `P` ranks as its distance to `P` with
/// bit `b` flipped. So after the lookup of `P` (its nearest 20), each further lookup is of
/// `P` with one bit flipped, from the bit where the farthest found leaves `P`'s prefix
/// towards the first bit, and finds that side's nearest; the search ends when the `want`-th
/// nearest found lies deeper than the next side (nobody there is nearer), when the sides
/// are done, or after [`WIDE_EXTRA`] lookups. A first lookup that returned fewer than a
/// lookup holds saw the whole network, and none follows. Lookups take keys that they hash,
/// so a target is a preimage ground until its hash matches the flipped point in its first
/// bits ([`preimage_near`]). Generic over how the caller names relays; the caller runs the
/// lookups (`kura-sim groups` counts their messages, `docs/scale/groups.md`).
#[derive(Debug, Clone)]
pub struct WideLookup<P> {
    point: DhtKey,
    want: usize,
    found: Vec<(P, DhtKey)>,
    /// The bit whose side is looked up next.
    side: Option<u32>,
    lookups: usize,
    settled: bool,
}

impl<P: Copy> WideLookup<P> {
    pub fn new(point: DhtKey, want: usize) -> Self {
        Self { point, want, found: Vec::new(), side: None, lookups: 0, settled: false }
    }

    /// What one lookup returned: the first of the point, then of each target [`next_target`]
    /// gave, in that order (a lookup that failed returned nobody).
    ///
    /// [`next_target`]: WideLookup::next_target
    pub fn found(&mut self, peers: impl IntoIterator<Item = (P, DhtKey)>) {
        let mut returned = 0;
        for (p, k) in peers {
            returned += 1;
            if !self.found.iter().any(|(_, f)| *f == k) {
                self.found.push((p, k));
            }
        }
        self.lookups += 1;
        let point = self.point;
        self.found.sort_by_key(|(_, k)| point.distance(k));
        if self.lookups == 1 {
            self.settled = returned < LOOKUP_FINDS;
            self.side = self.found.last().map(|(_, k)| common_prefix(&point, k)).filter(|b| *b < 256);
        }
    }

    /// The key to look up next, or `None` when the nearest `want` are found.
    pub fn next_target(&mut self) -> Option<Vec<u8>> {
        if self.settled || self.lookups == 0 || self.lookups > WIDE_EXTRA {
            return None;
        }
        let b = self.side?;
        if let Some((_, last)) = self.found.get(self.want.saturating_sub(1)) {
            if common_prefix(&self.point, last) > b {
                self.settled = true;
                return None;
            }
        }
        self.side = b.checked_sub(1);
        let mut target = self.point;
        target.0[(b / 8) as usize] ^= 0x80 >> (b % 8);
        Some(preimage_near(&target, (b + 1 + WIDE_TARGET_BITS).min(WIDE_MAX_BITS)))
    }

    /// The `want` nearest the point found so far, nearest first.
    pub fn nearest(&self) -> Vec<P> {
        self.found.iter().take(self.want).map(|(p, _)| *p).collect()
    }

    /// Lookups run so far (the first included).
    pub fn lookups(&self) -> usize {
        self.lookups
    }
}

/// How many times farther than expected a view's own group of a point may lie before the
/// view is taken to be thin there ([`view_is_thin`]).
pub const THIN_SLACK: f64 = 1.5;

/// Whether a relay whose view of the live relays is `view` (their keys, itself included;
/// `own` its key) lacks the neighbourhood of `point` for a group of `group`, so that the
/// group must be looked up ([`WideLookup`]) rather than taken from the view. The view holds
/// every relay in a small network and, at scale, a routing table: whole near its owner, a
/// bucket's worth of each farther side. The network's size is estimated from the view
/// nearest its owner ([`network_size`]; a view of at most one lookup's worth is taken as
/// whole), and the view is thin at `point` when its `group`-th nearest there lies more than
/// [`THIN_SLACK`] times farther than that size puts the `group`-th nearest relay (`group /
/// size` of the key space), or when it holds fewer than `group` relays of a network thought
/// larger. Thin where it is not costs a lookup; the rule errs that way (a view holding
/// every relay is thin nowhere unless its estimate is off by the slack).
pub fn view_is_thin(point: &DhtKey, own: &DhtKey, view: &[DhtKey], group: usize) -> bool {
    let size = estimate_from_view(own, view);
    if view.len() < group {
        return size > view.len() as f64 * THIN_SLACK;
    }
    let mut shares: Vec<f64> = view.iter().map(|k| share_between(point, k)).collect();
    let (_, nth, _) = shares.select_nth_unstable_by(group - 1, f64::total_cmp);
    *nth > THIN_SLACK * group as f64 / size
}

/// A relay's estimate of the network's size from its own view: [`network_size`] over the
/// [`LOOKUP_FINDS`] nearest itself (a routing table holds those whole), never fewer than the
/// view holds; a view of at most that many is taken as the whole network.
pub fn estimate_from_view(own: &DhtKey, view: &[DhtKey]) -> f64 {
    let mut near: Vec<DhtKey> = view.iter().copied().filter(|k| k != own).collect();
    if near.len() <= LOOKUP_FINDS {
        return view.len() as f64;
    }
    near.select_nth_unstable_by_key(LOOKUP_FINDS - 1, |k| own.distance(k));
    near.truncate(LOOKUP_FINDS);
    network_size(own, &near, false).max(view.len() as f64)
}

/// Leading bits `a` and `b` share (256 when equal).
pub fn common_prefix(a: &DhtKey, b: &DhtKey) -> u32 {
    let d = a.distance(b);
    let mut bits = 0;
    for x in d {
        bits += x.leading_zeros();
        if x != 0 {
            break;
        }
    }
    bits
}

/// Bytes whose key ([`DhtKey::of`]) shares its first `bits` bits with `point`: a lookup
/// key that lands there (about `2^bits` hashes; the first that does, so the same each time).
pub fn preimage_near(point: &DhtKey, bits: u32) -> Vec<u8> {
    let mut n: u64 = 0;
    loop {
        let bytes = [b"kura near ".as_slice(), &n.to_be_bytes()].concat();
        if common_prefix(&DhtKey::of(&bytes), point) >= bits {
            return bytes;
        }
        n += 1;
    }
}

/// How many of `others` are strictly closer to `target` than `key`: its rank among them, 0
/// for the closest. A relay is in a stripe's close group (with `slack` to spare for views
/// that differ) when its rank among the live relays is below `n + slack`.
pub fn rank(target: &DhtKey, key: &DhtKey, others: impl IntoIterator<Item = DhtKey>) -> usize {
    let mine = target.distance(key);
    others.into_iter().filter(|k| target.distance(k) < mine).count()
}

/// Why a stripe cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// Fewer live relays than shards: they cannot go to distinct machines.
    #[error("only {live} relay(s) reachable, but a stripe of {n} shards needs {n} distinct relays")]
    TooFewRelays { live: usize, n: usize },
    /// Every candidate relay failed for some shard.
    #[error(
        "shard {index} could not be stored: all {tried} candidate relays refused or failed \
         (last: {last})"
    )]
    Exhausted { index: usize, tried: usize, last: String, last_code: Option<ErrorCode> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot<P> {
    Waiting,
    InFlight { peer: P, since: Duration },
    Stored { peer: P },
}

/// Spreads the `n` shards of one stripe over distinct relays.
#[derive(Debug, Clone)]
pub struct UploadPlan<P> {
    candidates: Vec<P>,
    next: usize,
    slots: Vec<Slot<P>>,
    timeout: Duration,
    failures: usize,
    last_error: String,
    /// The code of the last refusal, if the last failure was one.
    last_code: Option<ErrorCode>,
}

/// What the client must do for an [`UploadPlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreAction<P> {
    /// Shard index to send.
    pub index: usize,
    /// Relay to send it to.
    pub peer: P,
}

impl<P: Clone + PartialEq> UploadPlan<P> {
    /// `candidates` are live relays, closest to the stripe first. A store not confirmed within
    /// `timeout` counts as failed and its shard moves on.
    pub fn new(n: usize, candidates: Vec<P>, timeout: Duration) -> Result<Self, PlacementError> {
        if candidates.len() < n {
            return Err(PlacementError::TooFewRelays { live: candidates.len(), n });
        }
        Ok(Self {
            candidates,
            next: 0,
            slots: vec![Slot::Waiting; n],
            timeout,
            failures: 0,
            last_error: String::new(),
            last_code: None,
        })
    }

    /// The stores to start now. Call after creating the plan, after every event, and from
    /// time to time (for timeouts).
    pub fn poll(&mut self, now: Duration) -> Result<Vec<StoreAction<P>>, PlacementError> {
        for slot in &mut self.slots {
            if let Slot::InFlight { since, .. } = slot {
                if now.saturating_sub(*since) >= self.timeout {
                    *slot = Slot::Waiting;
                    self.failures += 1;
                    self.last_error = "timed out".into();
                    self.last_code = None;
                }
            }
        }
        let mut out = Vec::new();
        for index in 0..self.slots.len() {
            if self.slots[index] != Slot::Waiting {
                continue;
            }
            let Some(peer) = self.candidates.get(self.next).cloned() else {
                return Err(PlacementError::Exhausted {
                    index,
                    tried: self.candidates.len(),
                    last: self.last_error.clone(),
                    last_code: self.last_code,
                });
            };
            self.next += 1;
            self.slots[index] = Slot::InFlight { peer: peer.clone(), since: now };
            out.push(StoreAction { index, peer });
        }
        Ok(out)
    }

    fn slot_of(&self, peer: &P, index: usize) -> Option<usize> {
        match self.slots.get(index) {
            Some(Slot::InFlight { peer: p, .. }) if p == peer => Some(index),
            _ => None,
        }
    }

    /// `peer` confirmed shard `index`. Confirmations of stores that already timed out are
    /// ignored (the shard was sent elsewhere).
    pub fn stored(&mut self, peer: &P, index: usize) {
        if let Some(i) = self.slot_of(peer, index) {
            self.slots[i] = Slot::Stored { peer: peer.clone() };
        }
    }

    /// Storing shard `index` on `peer` failed; the shard goes to the next candidate.
    pub fn failed(&mut self, peer: &P, index: usize, reason: &str) {
        if let Some(i) = self.slot_of(peer, index) {
            self.slots[i] = Slot::Waiting;
            self.failures += 1;
            self.last_error = reason.into();
            self.last_code = None;
        }
    }

    /// `peer` refused shard `index` with `code`; the shard goes to the next candidate.
    pub fn refused(&mut self, peer: &P, index: usize, code: ErrorCode, detail: &str) {
        if let Some(i) = self.slot_of(peer, index) {
            self.slots[i] = Slot::Waiting;
            self.failures += 1;
            self.last_error = format!("{code}: {detail}");
            self.last_code = Some(code);
        }
    }

    /// Whether every shard is confirmed.
    pub fn is_done(&self) -> bool {
        self.slots.iter().all(|s| matches!(s, Slot::Stored { .. }))
    }

    /// When [`UploadPlan::poll`] must run again if nothing else happens: the first deadline
    /// of a store in flight. `None` when no store is in flight.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.slots
            .iter()
            .filter_map(|s| match s {
                Slot::InFlight { since, .. } => Some(*since + self.timeout),
                _ => None,
            })
            .min()
    }

    /// Stores that failed or timed out so far.
    pub fn failures(&self) -> usize {
        self.failures
    }

    /// Who holds each shard index (confirmed ones only).
    pub fn holders(&self) -> Vec<(usize, P)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Stored { peer } => Some((i, peer.clone())),
                _ => None,
            })
            .collect()
    }
}

/// How many relays nearest a stripe of `n` shards its reader should know when a lookup
/// found `found`: the stripe's group, its `n` nearest and the [`CLOSE_GROUP_SLACK`] after
/// them, where that is more than was found and the lookup may have been cut at what one
/// returns ([`LOOKUP_FINDS`]; fewer: it found the whole network). `None`: what was found
/// holds the group. A 10+10 stripe (the width from 60 relays on) needs 24.
pub fn group_past_lookup(n: usize, found: usize) -> Option<usize> {
    let want = n + CLOSE_GROUP_SLACK;
    (found >= LOOKUP_FINDS && want > found).then_some(want)
}

/// Reads `k` shards of one stripe from its close group.
#[derive(Debug, Clone)]
pub struct FetchPlan<P> {
    candidates: Vec<P>,
    next: usize,
    k: usize,
    have: usize,
    in_flight: Vec<(P, Duration, bool)>,
    hedge_after: Duration,
    /// `k` is [`K_GUESS`], not yet the header's.
    guessed: bool,
    /// Shards the stripe has, once a header said it (0 before).
    n: usize,
    /// Whether the candidates were widened past what one lookup found.
    widened: bool,
}

impl<P: Clone + PartialEq> FetchPlan<P> {
    /// `candidates` closest first; a request unanswered after `hedge_after` makes the plan
    /// ask the next relay as well. `k` is the number of shards needed (before the header is
    /// known, use the largest plausible k; [`FetchPlan::set_k`] corrects it).
    pub fn new(k: usize, candidates: Vec<P>, hedge_after: Duration) -> Self {
        Self {
            candidates,
            next: 0,
            k,
            have: 0,
            in_flight: Vec::new(),
            hedge_after,
            guessed: false,
            n: 0,
            widened: false,
        }
    }

    /// Sets the number of shards needed once the header says it.
    pub fn set_k(&mut self, k: usize) {
        self.k = k;
        self.guessed = false;
    }

    /// Sets what the header says: `k` shards needed of `n`.
    pub fn set_header(&mut self, k: usize, n: usize) {
        self.set_k(k);
        self.n = n;
    }

    /// How many relays nearest the stripe to find when its close group is short at `now`
    /// and relays past what one lookup found may hold shards: a stripe's shards go to its
    /// `n` nearest or the [`CLOSE_GROUP_SLACK`] after them, and one lookup finds at most
    /// [`LOOKUP_FINDS`] (a 10+10 stripe's shards at ranks 21 to 24, where relays nearer
    /// refused them or joined since, are past it). `Some` once per plan, only when the
    /// candidates are as many as a lookup returns (fewer: the lookup found the whole
    /// network) and fewer than wanted; before a header says `n`, the slack past what was
    /// found.
    /// The reader finds them ([`WideLookup`]) and hands them to [`FetchPlan::widen`].
    pub fn wants_wider(&self, now: Duration) -> Option<usize> {
        let found = self.candidates.len();
        if self.widened || !self.is_short(now) {
            return None;
        }
        group_past_lookup(if self.n > 0 { self.n } else { found }, found)
    }

    /// Adds the relays of a wider lookup (`nearest`, closest first) that are not candidates
    /// yet, to be asked after the others; the plan widens once.
    pub fn widen(&mut self, nearest: impl IntoIterator<Item = P>) {
        self.widened = true;
        for p in nearest {
            if !self.candidates.contains(&p) {
                self.candidates.push(p);
            }
        }
    }

    /// Relays the plan may ask, closest first.
    pub fn candidates(&self) -> &[P] {
        &self.candidates
    }

    /// The relays to ask now.
    pub fn poll(&mut self, now: Duration) -> Vec<P> {
        let mut out = Vec::new();
        if self.is_done() {
            return out;
        }
        // Each outstanding request is expected to bring one shard.
        let pending = self.in_flight.iter().filter(|(_, _, hedged)| !hedged).count();
        let mut short = self.k.saturating_sub(self.have + pending);
        // A slow request is hedged once with the next relay.
        for entry in &mut self.in_flight {
            if !entry.2 && now.saturating_sub(entry.1) >= self.hedge_after {
                entry.2 = true;
                short += 1;
            }
        }
        while short > 0 {
            let Some(peer) = self.candidates.get(self.next).cloned() else { break };
            self.next += 1;
            self.in_flight.push((peer.clone(), now, false));
            out.push(peer);
            short -= 1;
        }
        out
    }

    fn finish(&mut self, peer: &P) {
        if let Some(i) = self.in_flight.iter().position(|(p, _, _)| p == peer) {
            self.in_flight.swap_remove(i);
        }
    }

    /// `peer` answered, and `have` verified distinct shards are now held in total.
    pub fn answered(&mut self, peer: &P, have: usize) {
        self.finish(peer);
        self.have = have;
    }

    /// Asking `peer` failed (unreachable, not found, corrupt).
    pub fn failed(&mut self, peer: &P) {
        self.finish(peer);
    }

    /// Whether `k` shards are held.
    pub fn is_done(&self) -> bool {
        self.have >= self.k
    }

    /// Whether nothing more can be done: not enough shards, nothing in flight, nobody left.
    pub fn is_exhausted(&self) -> bool {
        !self.is_done() && self.in_flight.is_empty() && self.next >= self.candidates.len()
    }

    /// Whether the close group is short at `now`: nobody is left to ask, and the requests
    /// still out that are not slow (unanswered for less than `hedge_after`) cannot bring
    /// the shards still needed. A reader then turns to other holders (donating tabs) at once,
    /// while the slow requests may still answer. True when exhausted as well. Before the
    /// header tells `k`, a guess does not make the group short: it is short only when no
    /// request is left that may answer promptly (a stripe of `k` = 2 on three relays is read
    /// from them, not from tabs because `k` might have been four).
    pub fn is_short(&self, now: Duration) -> bool {
        if self.is_done() || self.next < self.candidates.len() {
            return false;
        }
        let prompt =
            self.in_flight.iter().filter(|(_, since, _)| now.saturating_sub(*since) < self.hedge_after);
        let need = if self.guessed { 1 } else { self.k };
        self.have + prompt.count() < need
    }

    /// When [`FetchPlan::is_short`] may turn true with time alone: the next moment an
    /// outstanding request becomes slow, once nobody is left to ask. `None` otherwise.
    pub fn short_at(&self, now: Duration) -> Option<Duration> {
        if self.is_done() || self.next < self.candidates.len() {
            return None;
        }
        self.in_flight.iter().map(|(_, since, _)| *since + self.hedge_after).filter(|t| *t > now).min()
    }

    /// Requests outstanding.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// When [`FetchPlan::poll`] must run again if nothing else happens: when the first
    /// outstanding request is to be hedged. `None` when nothing can be hedged (no request
    /// waiting, or nobody left to ask).
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.is_done() || self.next >= self.candidates.len() {
            return None;
        }
        self.in_flight
            .iter()
            .filter(|(_, _, hedged)| !hedged)
            .map(|(_, since, _)| *since + self.hedge_after)
            .min()
    }
}

/// The most shards of one stripe a reader asks for before the header tells it `k`.
pub const K_GUESS: usize = 4;

impl<P: Clone + PartialEq> FetchPlan<P> {
    /// A plan for a stripe whose header is not known yet: it asks for [`K_GUESS`] shards
    /// until [`FetchPlan::set_k`] says how many are needed.
    pub fn before_header(candidates: Vec<P>, hedge_after: Duration) -> Self {
        Self { guessed: true, ..Self::new(K_GUESS, candidates, hedge_after) }
    }
}

/// Lookups a put makes when one finds fewer relays than a stripe has shards (a relay that
/// is restarting, a handshake lost a moment ago) before it refuses.
pub const LOOKUP_RETRIES: usize = 2;
/// The wait before such a repeat.
pub const LOOKUP_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a put of one stripe needs done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutAction<P> {
    /// Find the stripe's closest relays (`fresh`: by a real lookup, not from what is known),
    /// then call [`StripePut::found`].
    LookUp { fresh: bool },
    /// Send a shard.
    Store(StoreAction<P>),
}

/// The put of one stripe: finding its close group (looking again, after a wait, when too
/// few relays are found), then an [`UploadPlan`]. Takes events and `now`; says when it must
/// be polled again ([`StripePut::poll_timeout`]).
#[derive(Debug, Clone)]
pub struct StripePut<P> {
    n: usize,
    timeout: Duration,
    state: PutState<P>,
}

#[derive(Debug, Clone)]
enum PutState<P> {
    Looking {
        /// Lookups answered so far.
        tries: usize,
        /// A lookup is asked and not answered.
        asked: bool,
        /// When to look again (`None`: now).
        again_at: Option<Duration>,
        /// The most relays any lookup found.
        best: Vec<P>,
    },
    Placing(UploadPlan<P>),
}

impl<P: Clone + PartialEq> StripePut<P> {
    /// A put of a stripe of `n` shards; a store not confirmed within `timeout` moves on.
    pub fn new(n: usize, timeout: Duration) -> Self {
        Self {
            n,
            timeout,
            state: PutState::Looking { tries: 0, asked: false, again_at: None, best: Vec::new() },
        }
    }

    /// What to do now.
    pub fn poll(&mut self, now: Duration) -> Result<Vec<PutAction<P>>, PlacementError> {
        match &mut self.state {
            PutState::Looking { tries, asked, again_at, .. } => {
                if *asked || again_at.is_some_and(|t| now < t) {
                    return Ok(Vec::new());
                }
                *asked = true;
                Ok(vec![PutAction::LookUp { fresh: *tries > 0 }])
            }
            PutState::Placing(plan) => Ok(plan.poll(now)?.into_iter().map(PutAction::Store).collect()),
        }
    }

    /// A lookup found `candidates` (closest first). Fails when, after the retries, fewer
    /// relays than shards were ever found.
    pub fn found(&mut self, now: Duration, candidates: Vec<P>) -> Result<(), PlacementError> {
        let PutState::Looking { tries, asked, again_at, best } = &mut self.state else { return Ok(()) };
        *tries += 1;
        *asked = false;
        if candidates.len() > best.len() {
            *best = candidates;
        }
        if best.len() >= self.n || *tries > LOOKUP_RETRIES {
            let plan = UploadPlan::new(self.n, std::mem::take(best), self.timeout)?;
            self.state = PutState::Placing(plan);
        } else {
            *again_at = Some(now + LOOKUP_RETRY_AFTER);
        }
        Ok(())
    }

    /// See [`UploadPlan::stored`].
    pub fn stored(&mut self, peer: &P, index: usize) {
        if let PutState::Placing(plan) = &mut self.state {
            plan.stored(peer, index);
        }
    }

    /// See [`UploadPlan::failed`].
    pub fn failed(&mut self, peer: &P, index: usize, reason: &str) {
        if let PutState::Placing(plan) = &mut self.state {
            plan.failed(peer, index, reason);
        }
    }

    /// See [`UploadPlan::refused`].
    pub fn refused(&mut self, peer: &P, index: usize, code: ErrorCode, detail: &str) {
        if let PutState::Placing(plan) = &mut self.state {
            plan.refused(peer, index, code, detail);
        }
    }

    /// Whether every shard is confirmed.
    pub fn is_done(&self) -> bool {
        matches!(&self.state, PutState::Placing(plan) if plan.is_done())
    }

    /// Each shard index and the relay holding it, once done.
    pub fn holders(&self) -> Vec<(usize, P)> {
        match &self.state {
            PutState::Placing(plan) => plan.holders(),
            PutState::Looking { .. } => Vec::new(),
        }
    }

    /// When [`StripePut::poll`] must run again if nothing else happens.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match &self.state {
            PutState::Looking { asked: false, again_at, .. } => *again_at,
            PutState::Looking { .. } => None,
            PutState::Placing(plan) => plan.poll_timeout(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// What a perfect lookup of `target` returns among `keys`: its nearest [`LOOKUP_FINDS`].
    fn lookup(keys: &[DhtKey], target: &DhtKey) -> Vec<(usize, DhtKey)> {
        let mut v: Vec<(usize, DhtKey)> = keys.iter().copied().enumerate().collect();
        v.sort_by_key(|(_, k)| target.distance(k));
        v.truncate(LOOKUP_FINDS);
        v
    }

    /// On networks from one smaller than a lookup to ten thousand relays, a wide lookup
    /// with lookups that return the true nearest 20 finds exactly the nearest 32, with one
    /// lookup where one sees the whole network and a few more elsewhere.
    #[test]
    fn a_wide_lookup_finds_a_group_wider_than_a_lookup() {
        let mut rng = crate::testdata::XorShift(41);
        for n in [12usize, 21, 40, 100, 1000, 10_000] {
            let keys: Vec<DhtKey> =
                (0..n).map(|i| DhtKey::of(&(i as u64 ^ rng.next_u64()).to_be_bytes())).collect();
            let mut most = 0;
            for _ in 0..20 {
                let point = DhtKey::of(&rng.next_u64().to_be_bytes());
                let mut wide = WideLookup::new(point, 32);
                wide.found(lookup(&keys, &point));
                while let Some(bytes) = wide.next_target() {
                    wide.found(lookup(&keys, &DhtKey::of(&bytes)));
                }
                let mut truth: Vec<usize> = (0..n).collect();
                truth.sort_by_key(|&i| point.distance(&keys[i]));
                truth.truncate(32);
                assert_eq!(wide.nearest(), truth, "{n} relays");
                if n < LOOKUP_FINDS {
                    assert_eq!(wide.lookups(), 1);
                }
                most = most.max(wide.lookups());
            }
            assert!(most <= 1 + WIDE_EXTRA, "{n} relays: {most} lookups");
        }
    }

    /// A view of every relay is thin nowhere; a routing table (whole near its owner, 20 of
    /// each farther side) of a network of 20,000 is thin at nearly every point far from its
    /// owner and not at its owner's own neighbourhood; an estimate from a whole view of a
    /// small network is its size.
    #[test]
    fn a_view_is_thin_where_it_lacks_the_neighbourhood() {
        let mut rng = crate::testdata::XorShift(47);
        let key = |rng: &mut crate::testdata::XorShift| DhtKey::of(&rng.next_u64().to_be_bytes());
        for n in [12usize, 40, 300, 3000] {
            let all: Vec<DhtKey> = (0..n).map(|_| key(&mut rng)).collect();
            let thin = (0..50).filter(|_| view_is_thin(&key(&mut rng), &all[0], &all, 32)).count();
            assert!(thin <= 1, "{n} relays, view whole: thin at {thin} of 50 points");
        }
        let all: Vec<DhtKey> = (0..12).map(|_| key(&mut rng)).collect();
        assert_eq!(estimate_from_view(&all[0], &all), 12.0);
        let n = 20_000;
        let all: Vec<DhtKey> = (0..n).map(|_| key(&mut rng)).collect();
        let own = all[0];
        let mut buckets: std::collections::BTreeMap<u32, usize> = Default::default();
        let table: Vec<DhtKey> = all
            .iter()
            .copied()
            .filter(|k| {
                let b = buckets.entry(common_prefix(&own, k)).or_default();
                *b += 1;
                *b <= LOOKUP_FINDS
            })
            .collect();
        assert!(table.len() < 400, "a table of {}", table.len());
        let size = estimate_from_view(&own, &table);
        assert!((0.4 * n as f64..2.5 * n as f64).contains(&size), "estimated {size}");
        let far = (0..200).filter(|_| view_is_thin(&key(&mut rng), &own, &table, 32)).count();
        assert!(far >= 190, "thin at {far} of 200 random points");
        assert!(!view_is_thin(&own, &own, &table, 32), "its own neighbourhood is held whole");
    }

    /// A wide lookup's later lookup that fails (returns nobody) costs it that side only,
    /// and a target lands where it is meant to.
    #[test]
    fn a_wide_lookup_survives_a_failed_lookup_and_targets_land() {
        let mut rng = crate::testdata::XorShift(43);
        let keys: Vec<DhtKey> =
            (0..500u64).map(|i| DhtKey::of(&(i ^ rng.next_u64()).to_be_bytes())).collect();
        let point = DhtKey::of(b"an account");
        let mut wide = WideLookup::new(point, 32);
        wide.found(lookup(&keys, &point));
        let first = wide.nearest();
        assert_eq!(first.len(), LOOKUP_FINDS);
        let bytes = wide.next_target().unwrap();
        assert!(common_prefix(&DhtKey::of(&bytes), &point) < 256);
        wide.found(Vec::new());
        assert_eq!(wide.nearest(), first, "a failed lookup adds nobody");
        let target = DhtKey::of(b"somewhere");
        assert!(common_prefix(&DhtKey::of(&preimage_near(&target, 12)), &target) >= 12);
        assert_eq!(preimage_near(&target, 12), preimage_near(&target, 12));
    }

    const T: Duration = Duration::from_secs(10);
    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    #[test]
    fn distance_orders_like_kademlia() {
        let target = DhtKey([0; 32]);
        let mut far = [0; 32];
        far[0] = 0x80;
        let mut near = [0; 32];
        near[31] = 1;
        let order = by_distance(&target, [("far", DhtKey(far)), ("near", DhtKey(near)), ("me", target)]);
        assert_eq!(order, ["me", "near", "far"]);
        assert_eq!(DhtKey::of(b"abc").0[..4], [0xba, 0x78, 0x16, 0xbf], "SHA-256");
        // Rank: how many others are closer, the same order by_distance gives.
        let (far, near) = (DhtKey(far), DhtKey(near));
        assert_eq!(rank(&target, &far, [near, target]), 2);
        assert_eq!(rank(&target, &near, [far, target]), 1);
        assert_eq!(rank(&target, &target, [far, near]), 0);
    }

    #[test]
    fn network_size_is_found_from_the_closest_distances() {
        let key = |tag: &str, i: usize| DhtKey::of(format!("{tag} {i}").as_bytes());
        let estimate = |n: usize, target: usize| {
            let target = key("target", target);
            let mut all: Vec<DhtKey> = (0..n).map(|i| key("relay", i)).collect();
            all.sort_by_key(|k| target.distance(k));
            network_size(&target, &all[..20], false)
        };
        for n in [100, 1_000, 10_000] {
            // Over 60 targets: the median of three estimates, as a client takes it.
            let mut ratios: Vec<f64> = (0..60)
                .map(|t| {
                    let mut three = [estimate(n, 3 * t), estimate(n, 3 * t + 1), estimate(n, 3 * t + 2)];
                    three.sort_by(f64::total_cmp);
                    three[1] / n as f64
                })
                .collect();
            ratios.sort_by(f64::total_cmp);
            let (low, mid, high) = (ratios[3], ratios[30], ratios[56]);
            assert!(0.8 < mid && mid < 1.25, "{n} relays: the median estimate is {mid} of the truth");
            assert!(0.6 < low && high < 1.6, "{n} relays: nine in ten within {low}..{high} of the truth");
        }
        // A whole network is counted, and an estimate is never below what was found.
        let found: Vec<DhtKey> = (0..7).map(|i| key("relay", i)).collect();
        assert_eq!(network_size(&key("target", 0), &found, true), 7.0);
        assert!(network_size(&found[0], &found, false) >= 7.0);
        assert_eq!(network_size(&key("target", 0), &[], false), 0.0);
    }

    #[test]
    fn join_work_counts_leading_zero_bits_and_halves_per_bit() {
        // Leading zeros run across bytes: count, over many ids, how many show at least b bits.
        let mut at_least = [0u32; 9];
        let tries = 1u32 << 14;
        for i in 0..tries {
            let w = join_work(&i.to_le_bytes());
            for (b, c) in at_least.iter_mut().enumerate() {
                if w >= b as u32 {
                    *c += 1;
                }
            }
        }
        assert_eq!(at_least[0], tries);
        for (b, &count) in at_least.iter().enumerate().skip(1) {
            let want = f64::from(tries) / f64::from(1u32 << b);
            let got = f64::from(count);
            assert!((got - want).abs() < 5.0 * want.sqrt() + 1.0, "{b} bits: {got} of {tries}, about {want}");
        }
        // The count agrees with the first 128 bits read as one number, and the bar is
        // JOIN_BITS: the first id over it is admitted, every one before it is not.
        let digest = |i: u32| {
            let mut h = blake3::Hasher::new_derive_key(JOIN_CONTEXT);
            h.update(&i.to_le_bytes());
            u128::from_be_bytes(h.finalize().as_bytes()[..16].try_into().unwrap())
        };
        for i in 0u32..1000 {
            assert_eq!(join_work(&i.to_le_bytes()), digest(i).leading_zeros());
        }
        let first = (0u32..).find(|i| may_join(&i.to_le_bytes())).unwrap();
        assert!(digest(first).leading_zeros() >= JOIN_BITS);
        assert!((0..first).all(|i| digest(i).leading_zeros() < JOIN_BITS));
    }

    #[test]
    fn upload_refuses_fewer_relays_than_shards() {
        let e = UploadPlan::new(6, vec![1, 2, 3, 4, 5], T).unwrap_err();
        assert_eq!(e, PlacementError::TooFewRelays { live: 5, n: 6 });
        assert!(e.to_string().contains("only 5 relay(s) reachable"), "{e}");
    }

    #[test]
    fn upload_sends_shard_i_to_ith_closest_and_retries_on_the_next() {
        let mut p = UploadPlan::new(3, vec!['a', 'b', 'c', 'd', 'e'], T).unwrap();
        let first = p.poll(s(0)).unwrap();
        assert_eq!(
            first,
            vec![
                StoreAction { index: 0, peer: 'a' },
                StoreAction { index: 1, peer: 'b' },
                StoreAction { index: 2, peer: 'c' }
            ]
        );
        assert!(p.poll(s(1)).unwrap().is_empty(), "nothing new while stores are in flight");
        p.stored(&'a', 0);
        p.failed(&'b', 1, "quota full");
        assert_eq!(p.poll(s(2)).unwrap(), vec![StoreAction { index: 1, peer: 'd' }]);
        p.stored(&'d', 1);
        // 'c' never answers: after the timeout its shard moves to 'e'.
        assert!(p.poll(s(9)).unwrap().is_empty());
        assert_eq!(p.poll(s(10)).unwrap(), vec![StoreAction { index: 2, peer: 'e' }]);
        p.stored(&'c', 2); // late answer, ignored: the shard went to 'e'
        assert!(!p.is_done());
        p.stored(&'e', 2);
        assert!(p.is_done());
        assert_eq!(p.holders(), vec![(0, 'a'), (1, 'd'), (2, 'e')]);
        assert_eq!(p.failures(), 2);
    }

    #[test]
    fn upload_names_the_shard_when_every_candidate_failed() {
        let mut p = UploadPlan::new(2, vec![1, 2, 3], T).unwrap();
        p.poll(s(0)).unwrap();
        p.failed(&1, 0, "busy");
        assert_eq!(p.poll(s(0)).unwrap(), vec![StoreAction { index: 0, peer: 3 }]);
        p.failed(&3, 0, "disk full");
        let e = p.poll(s(0)).unwrap_err();
        assert_eq!(
            e,
            PlacementError::Exhausted { index: 0, tried: 3, last: "disk full".into(), last_code: None }
        );
    }

    #[test]
    fn no_relay_ever_gets_two_shards() {
        let mut p = UploadPlan::new(4, (0..8).collect(), T).unwrap();
        let mut sent = Vec::new();
        for round in 0..6 {
            for a in p.poll(s(round)).unwrap() {
                sent.push(a.peer);
                if (a.peer + round as usize).is_multiple_of(3) {
                    p.failed(&a.peer, a.index, "x");
                } else {
                    p.stored(&a.peer, a.index);
                }
            }
        }
        let mut dedup = sent.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(dedup.len(), sent.len(), "{sent:?}");
        let holders: Vec<usize> = p.holders().into_iter().map(|(_, peer)| peer).collect();
        assert!(holders.iter().all(|h| sent.contains(h)));
    }

    #[test]
    fn fetch_asks_k_closest_then_one_more_per_failure() {
        let mut f = FetchPlan::new(2, vec!['a', 'b', 'c', 'd'], s(5));
        assert_eq!(f.poll(s(0)), vec!['a', 'b']);
        assert!(f.poll(s(1)).is_empty());
        f.answered(&'a', 1);
        f.failed(&'b');
        assert_eq!(f.poll(s(1)), vec!['c']);
        f.answered(&'c', 1); // a duplicate shard: still one distinct
        assert_eq!(f.poll(s(1)), vec!['d']);
        f.answered(&'d', 2);
        assert!(f.is_done());
        assert!(f.poll(s(2)).is_empty());
        assert!(!f.is_exhausted());
    }

    #[test]
    fn fetch_hedges_a_slow_relay_and_reports_exhaustion() {
        let mut f = FetchPlan::new(1, vec![1, 2], s(5));
        assert_eq!(f.poll(s(0)), vec![1]);
        assert!(f.poll(s(4)).is_empty());
        assert_eq!(f.poll(s(5)), vec![2], "hedged after 5 s");
        assert!(f.poll(s(20)).is_empty(), "each request is hedged once");
        f.failed(&2);
        assert!(!f.is_exhausted(), "1 is still in flight");
        f.failed(&1);
        assert!(f.is_exhausted());
        f.set_k(3);
        assert!(f.poll(s(21)).is_empty());
    }

    /// A group with fewer live relays than `k`: short once nobody is left to ask and the
    /// requests still out that are not slow cannot bring the shards needed — before every
    /// slow request has failed, so a reader turns to tabs without waiting for them.
    #[test]
    fn fetch_knows_when_the_group_is_short() {
        let mut f = FetchPlan::new(3, vec![1, 2, 3, 4], s(5));
        assert_eq!(f.poll(s(0)), vec![1, 2, 3]);
        assert!(!f.is_short(s(0)), "relay 4 is left to ask");
        f.failed(&1);
        assert_eq!(f.poll(s(1)), vec![4]);
        assert!(!f.is_short(s(1)), "three prompt requests out for three shards");
        f.answered(&2, 1);
        assert!(!f.is_short(s(2)), "one held, two prompt requests out");
        assert_eq!(f.short_at(s(2)), Some(s(5)), "relay 3 turns slow at 5 s");
        // Relay 3 is slow (a dead relay's dial): short, though it has not failed yet.
        assert!(f.is_short(s(5)));
        assert!(!f.is_exhausted());
        assert_eq!(f.short_at(s(5)), Some(s(6)), "relay 4 turns slow at 6 s");
        // A slow relay that answers after all still counts.
        f.answered(&3, 2);
        f.answered(&4, 3);
        assert!(f.is_done() && !f.is_short(s(7)));
        // Before the header, three relays asked for a guessed four shards: not short while
        // any of them may answer promptly (k may be two), short once none can.
        let mut h = FetchPlan::before_header(vec![1, 2, 3], s(5));
        assert_eq!(h.poll(s(0)), vec![1, 2, 3]);
        assert!(!h.is_short(s(0)), "three prompt requests out, k not known");
        h.failed(&1);
        h.failed(&2);
        assert!(!h.is_short(s(1)), "relay 3 may still answer");
        assert!(h.is_short(s(5)), "relay 3 is slow: nobody may answer promptly");
        h.answered(&3, 1);
        h.set_k(2);
        assert!(h.is_short(s(6)) && h.is_exhausted(), "k = 2 known, one shard held, nobody left");
        // Exhausted is short too.
        let mut g = FetchPlan::new(2, vec![1], s(5));
        g.poll(s(0));
        g.failed(&1);
        assert!(g.is_exhausted() && g.is_short(s(0)));
        assert_eq!(g.short_at(s(0)), None);
    }

    /// A 10+10 stripe whose shards lie past the 20 relays a lookup found (nearer relays
    /// refused them, or joined since): once the 20 cannot give `k`, the plan asks for the
    /// stripe's 24 nearest, once, and reads on from the new ones; a lookup that found fewer
    /// than 20 found the whole network, and a group that can still give `k` is not widened.
    #[test]
    fn a_short_fetch_widens_past_one_lookup_once() {
        let mut f = FetchPlan::before_header((0..20).collect::<Vec<u32>>(), s(5));
        assert_eq!(f.poll(s(0)), vec![0, 1, 2, 3]);
        f.answered(&0, 1);
        f.set_header(10, 20);
        assert_eq!(f.wants_wider(s(0)), None, "relays are left to ask");
        // Relays 0 to 8 hold a shard each; the other eleven of the twenty hold none.
        let mut have = 1;
        let mut answer = |f: &mut FetchPlan<u32>, p: u32| {
            if p <= 8 {
                have += 1;
                f.answered(&p, have);
            } else {
                f.failed(&p);
            }
        };
        for p in 1..4 {
            answer(&mut f, p);
        }
        loop {
            let asked = f.poll(s(1));
            if asked.is_empty() {
                break;
            }
            for p in asked {
                answer(&mut f, p);
            }
        }
        assert!(f.is_exhausted(), "nine shards of ten, nobody left");
        assert_eq!(f.wants_wider(s(1)), Some(24), "n + the slack");
        f.widen((0..24).collect::<Vec<u32>>());
        assert_eq!(f.candidates().len(), 24, "only the new ones are added");
        assert!(!f.is_short(s(1)) && !f.is_exhausted(), "relays 20 to 23 are left to ask");
        assert_eq!(f.wants_wider(s(1)), None, "once");
        assert_eq!(f.poll(s(1)), vec![20], "the next new one, for the one shard still needed");
        f.failed(&20);
        assert_eq!(f.poll(s(1)), vec![21]);
        f.answered(&21, 10);
        assert!(f.is_done());

        // Before a header: the slack past what was found.
        let mut h = FetchPlan::before_header((0..20).collect::<Vec<u32>>(), s(5));
        while !h.is_exhausted() {
            for p in h.poll(s(0)) {
                h.failed(&p);
            }
        }
        assert_eq!(h.wants_wider(s(0)), Some(24));
        // Fewer than a lookup returns: the whole network was found.
        let mut small = FetchPlan::new(10, (0..19).collect::<Vec<u32>>(), s(5));
        while !small.is_exhausted() {
            for p in small.poll(s(0)) {
                small.failed(&p);
            }
        }
        assert_eq!(small.wants_wider(s(0)), None);
        // A 4+2 stripe: its group (6 + 4) is within one lookup.
        let mut narrow = FetchPlan::new(4, (0..20).collect::<Vec<u32>>(), s(5));
        narrow.set_header(4, 6);
        while !narrow.is_exhausted() {
            for p in narrow.poll(s(0)) {
                narrow.failed(&p);
            }
        }
        assert_eq!(narrow.wants_wider(s(0)), None, "its group, 6 + 4, is within one lookup");
    }

    /// Each machine says when it must be polled again, and polling then does what was due.
    #[test]
    fn plans_say_when_to_poll_again() {
        let mut u = UploadPlan::new(2, vec!['a', 'b', 'c'], T).unwrap();
        assert_eq!(u.poll_timeout(), None, "nothing in flight");
        assert_eq!(u.poll(s(1)).unwrap().len(), 2);
        assert_eq!(u.poll_timeout(), Some(s(11)));
        u.stored(&'a', 0);
        assert_eq!(u.poll_timeout(), Some(s(11)));
        assert!(u.poll(s(10)).unwrap().is_empty(), "not yet");
        assert_eq!(u.poll(s(11)).unwrap(), vec![StoreAction { index: 1, peer: 'c' }], "due at the timeout");
        assert_eq!(u.poll_timeout(), Some(s(21)));

        let mut f = FetchPlan::before_header(vec![1, 2, 3, 4, 5, 6], s(3));
        assert_eq!(f.poll(s(0)).len(), K_GUESS);
        assert_eq!(f.poll_timeout(), Some(s(3)), "the first hedge");
        f.set_k(2);
        f.answered(&1, 1);
        f.answered(&2, 2);
        assert!(f.is_done());
        assert_eq!(f.poll_timeout(), None, "done: nothing to wake for");
        let mut last = FetchPlan::new(1, vec![1], s(3));
        assert_eq!(last.poll(s(0)), vec![1]);
        assert_eq!(last.poll_timeout(), None, "nobody left to hedge with");
    }

    /// A put looks up its group, looks again after a wait while too few relays are found,
    /// and gives up with the best it found after the retries.
    #[test]
    fn a_put_looks_again_when_too_few_relays_are_found() {
        let mut p = StripePut::new(3, T);
        assert_eq!(p.poll(s(0)).unwrap(), vec![PutAction::LookUp { fresh: false }]);
        assert!(p.poll(s(0)).unwrap().is_empty(), "one lookup at a time");
        p.found(s(0), vec!['a']).unwrap();
        assert_eq!(p.poll_timeout(), Some(LOOKUP_RETRY_AFTER));
        assert!(p.poll(s(0)).unwrap().is_empty(), "waits before looking again");
        assert_eq!(p.poll(LOOKUP_RETRY_AFTER).unwrap(), vec![PutAction::LookUp { fresh: true }]);
        p.found(s(1), vec!['a', 'b', 'c']).unwrap();
        let stores = p.poll(s(1)).unwrap();
        assert_eq!(stores.len(), 3);
        for a in stores {
            let PutAction::Store(a) = a else { panic!("a lookup while placing") };
            p.stored(&a.peer, a.index);
        }
        assert!(p.is_done());
        assert_eq!(p.holders().len(), 3);

        let mut q: StripePut<char> = StripePut::new(3, T);
        let mut now = s(0);
        let mut err = None;
        for _ in 0..=LOOKUP_RETRIES {
            assert!(matches!(q.poll(now).unwrap()[..], [PutAction::LookUp { .. }]));
            match q.found(now, vec!['a', 'b']) {
                Ok(()) => now = q.poll_timeout().unwrap(),
                Err(e) => err = Some(e),
            }
        }
        assert_eq!(err, Some(PlacementError::TooFewRelays { live: 2, n: 3 }));
        assert_eq!(now, LOOKUP_RETRY_AFTER * LOOKUP_RETRIES as u32);
    }
}
