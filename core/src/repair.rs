//! Self-repair: the decisions a relay makes to keep every stripe it holds at `n` distinct
//! shards on the `n` live relays of the stripe's close group. No IO: the relay feeds these
//! machines what it observed (who is alive, who holds which shard indices) and the current
//! time, and executes what they answer. Time is a `Duration` since any fixed instant, so
//! tests drive everything with simulated time.
//!
//! - [`Liveness`] tracks which relays are alive: a relay whose last connection closed is
//!   *suspect* and is dialled again; one that cannot be dialled, or stays unreachable past a
//!   grace period, is *dead*. This bounds the time to notice a lost member.
//! - [`plan_group`] compares one stripe's close group with who holds what, and says which
//!   index each member keeps, which shards a relay that fell out of the group hands over to a
//!   vacant member, which indices must be rebuilt from `k` others (and where), and which
//!   copies are surplus and may be dropped. Lost shards wait until [`rebuild_after`] of
//!   them are lost, then one member rebuilds them all from one read of `k` shards. Every
//!   relay computes the same plan from the same view; each executes only its own part, so
//!   no coordinator needs to be elected.
//! - [`RepairQueue`] orders the rebuilds a relay was asked to do: fewest live shards first,
//!   a bounded number at once, and a byte budget per second.
//!
//! Identical shards (a very short chunk pads trailing data shards with zeros, and they share
//! one address) are interchangeable: the plan works on *slots*, where `slots[i]` names the
//! first index whose shard is identical to index `i`'s. A relay holding that shard fills any
//! of those slots.

use core::time::Duration;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use crate::address::StripeId;
use crate::stripe::StripeHeader;

/// The slot classes of a stripe: `slots[i]` is the first index whose shard address equals
/// index `i`'s (so usually `slots[i] == i`).
pub fn slots_of(header: &StripeHeader) -> Vec<u8> {
    let shards = header.shards();
    (0..shards.len()).map(|i| header.index_of(&shards[i]).unwrap_or(i) as u8).collect()
}

/// A shard that moves to a vacant member of the close group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move<P> {
    /// `from` holds shard `index` but does not keep it in the group: it sends it to `to`.
    Handover { index: u8, from: P, to: P },
    /// No live relay holds `index`: `at` rebuilds it from `k` others. `coordinator` (the
    /// closest member keeping a shard) is the one that asks `at` to do it.
    Rebuild { index: u8, at: P, coordinator: P },
}

/// What one stripe's close group needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPlan<P> {
    /// Slots (out of `n`) filled by live relays anywhere, in or out of the group.
    pub live: usize,
    /// Slots filled by group members, one shard per member.
    pub in_group: usize,
    /// Each member that keeps a shard, and its index.
    pub kept: Vec<(P, u8)>,
    /// Shards to hand over or rebuild.
    pub moves: Vec<Move<P>>,
    /// Copies that are surplus (their slot is filled inside the group): the holder may drop
    /// them.
    pub drops: Vec<(P, u8)>,
    /// Fewer than `k` slots are live: nothing can be rebuilt.
    pub lost: bool,
}

impl<P> GroupPlan<P> {
    /// Whether the group holds all `n` slots, one per member.
    pub fn is_complete(&self, n: usize) -> bool {
        self.in_group == n
    }

    /// Whether the stripe's rebuilds are due: as many of its `n` slots lost (held by no live
    /// relay) as [`rebuild_after`] waits for.
    pub fn rebuilds_due(&self, k: usize, n: usize) -> bool {
        n.saturating_sub(self.live) >= rebuild_after(k, n)
    }
}

impl<P: Clone + PartialEq> GroupPlan<P> {
    /// The shards a member ordered to rebuild `index` hands over once it has rebuilt them:
    /// every other rebuild of the plan, as (index, member), none of the ordered index's slot
    /// class (the member keeps that one). A rebuild decodes the whole stripe from `k`
    /// shards, so the stripe's other lost shards cost one transfer each instead of `k`
    /// reads each at their own members ([`rebuild_after`]).
    pub fn rebuilt_with(&self, slots: &[u8], me: &P, index: u8) -> Vec<(u8, P)> {
        let class = |i: u8| slots.get(usize::from(i)).copied();
        self.moves
            .iter()
            .filter_map(|m| match m {
                Move::Rebuild { index: i, at, .. } if at != me && class(*i) != class(index) => {
                    Some((*i, at.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

/// Lost slots a stripe of `k` data shards among `n` waits for before they are rebuilt: a
/// third of its parity shards, at least one. A 4+2 stripe is rebuilt at its first loss (as
/// every stripe was before), 6+6 at its second, 10+10 at its third. Then one member
/// rebuilds them all: it reads `k` shards once, decodes the stripe, keeps its shard and
/// hands each other one to its member ([`GroupPlan::rebuilt_with`]), so a wide stripe's
/// repair reads `k + r - 1` shards for `r` lost, not `r·k`. Waiting keeps two thirds of
/// the parity in hand while it waits; the simulator's `kura-sim rebuilds` table prices the
/// trade (docs/scale/rebuilds.md).
pub fn rebuild_after(k: usize, n: usize) -> usize {
    (n.saturating_sub(k) / 3).max(1)
}

/// Plans one stripe.
///
/// - `slots`: from [`slots_of`] (its length is `n`);
/// - `k`: shards needed to rebuild;
/// - `group`: the live close group, closest first (shorter than `n` when fewer relays are
///   alive: then the stripe stays short of `n`, never doubled up on one relay);
/// - `holders`: live relays and the indices they hold, closest first; may include relays
///   outside the group (those that fell out of it).
pub fn plan_group<P: Clone + PartialEq>(
    slots: &[u8],
    k: usize,
    group: &[P],
    holders: &[(P, Vec<u8>)],
) -> GroupPlan<P> {
    let class = |i: u8| slots.get(usize::from(i)).copied();
    // How many slots of each class are still to fill.
    let mut need: BTreeMap<u8, usize> = BTreeMap::new();
    for &c in slots {
        *need.entry(c).or_default() += 1;
    }
    let total = need.clone();
    let held_by = |p: &P| -> Vec<u8> {
        let mut v: Vec<u8> = holders
            .iter()
            .filter(|(h, _)| h == p)
            .flat_map(|(_, idx)| idx.iter().copied())
            .filter(|&i| class(i).is_some())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };

    // Live slots: each physical copy counts once, capped by the class's slot count.
    let mut copies: BTreeMap<u8, usize> = BTreeMap::new();
    for (_, idx) in holders {
        let mut idx: Vec<u8> = idx.clone();
        idx.sort_unstable();
        idx.dedup();
        for i in idx {
            if let Some(c) = class(i) {
                *copies.entry(c).or_default() += 1;
            }
        }
    }
    let live = total.iter().map(|(c, n)| (*n).min(copies.get(c).copied().unwrap_or(0))).sum();

    // Each member keeps one shard whose class still needs a slot.
    let mut kept: Vec<(P, u8)> = Vec::new();
    let mut vacant: Vec<P> = Vec::new();
    for member in group {
        let choice = held_by(member).into_iter().find(|&i| class(i).is_some_and(|c| need[&c] > 0));
        match choice {
            Some(i) => {
                if let Some(c) = class(i) {
                    *need.entry(c).or_default() -= 1;
                }
                kept.push((member.clone(), i));
            }
            None => vacant.push(member.clone()),
        }
    }
    let in_group = kept.len();

    // Copies not kept, closest holder first: sources for handovers, else surplus.
    let mut spare: Vec<(P, u8)> = Vec::new();
    let mut seen: Vec<&P> = Vec::new();
    for (p, _) in holders {
        if seen.contains(&p) {
            continue;
        }
        seen.push(p);
        for i in held_by(p) {
            if !kept.iter().any(|(q, j)| q == p && *j == i) {
                spare.push((p.clone(), i));
            }
        }
    }

    let coordinator =
        kept.first().map(|(p, _)| p.clone()).or_else(|| holders.first().map(|(p, _)| p.clone()));
    let lost = live < k;
    let mut moves = Vec::new();
    let mut vacant = vacant.into_iter();
    let unplaced: Vec<u8> = need.iter().flat_map(|(&c, &n)| core::iter::repeat_n(c, n)).collect();
    for c in unplaced {
        let Some(to) = vacant.next() else { break };
        if let Some(pos) = spare.iter().position(|(_, i)| class(*i) == Some(c)) {
            let (from, index) = spare.remove(pos);
            moves.push(Move::Handover { index, from, to });
        } else if !lost {
            if let Some(coordinator) = coordinator.clone() {
                moves.push(Move::Rebuild { index: c, at: to, coordinator });
            }
        }
    }
    // A spare copy whose class is fully kept inside the group is surplus.
    let drops =
        spare.into_iter().filter(|(_, i)| class(*i).is_some_and(|c| need.get(&c) == Some(&0))).collect();
    GroupPlan { live, in_group, kept, moves, drops, lost }
}

/// Who must prove possession before `me` drops its copy of index `dropping`: one holder per
/// slot class of the stripe that anyone holds, so that after the drop every class that was
/// held is still held by someone who just proved it, and the drop never lowers the number
/// of distinct slots proven held. Group members keeping a class are preferred, then any
/// other holder; `me` stands for a class only if it holds it as another index than the one
/// dropped (its own bytes need no proof to itself). `None` when the dropped class has no
/// other holder: then the copy is not surplus. A class nobody holds needs no witness: it is
/// rebuilt, and requiring one deadlocked a group whose only vacancy was a member holding a
/// duplicate (it could neither drop the duplicate nor take the missing shard, one shard of
/// a stripe per relay; found by the simulation with imperfect views). `slots` from
/// [`slots_of`]; `kept` and `holders` as in [`GroupPlan`] and [`plan_group`].
pub fn drop_witnesses<P: Clone + PartialEq>(
    slots: &[u8],
    me: &P,
    dropping: u8,
    kept: &[(P, u8)],
    holders: &[(P, Vec<u8>)],
) -> Option<Vec<(P, u8)>> {
    let class = |i: u8| slots.get(usize::from(i)).copied();
    let mut classes: Vec<u8> = slots.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let mut out = Vec::with_capacity(classes.len());
    for c in classes {
        let kept_by_other = kept.iter().find(|(p, i)| p != me && class(*i) == Some(c)).cloned();
        let held_by_other = || {
            holders
                .iter()
                .filter(|(p, _)| p != me)
                .find_map(|(p, idx)| idx.iter().find(|&&i| class(i) == Some(c)).map(|&i| (p.clone(), i)))
        };
        let held_by_me = || {
            holders.iter().filter(|(p, _)| p == me).find_map(|(p, idx)| {
                idx.iter().find(|&&i| i != dropping && class(i) == Some(c)).map(|&i| (p.clone(), i))
            })
        };
        match kept_by_other.or_else(held_by_other).or_else(held_by_me) {
            Some(w) => out.push(w),
            None if Some(c) == class(dropping) => return None,
            None => {}
        }
    }
    Some(out)
}

/// The grace a relay with a long record of coming back is waited for by default
/// ([`grace_for`]; relays: `--repair-grace-long`): a day.
pub const LONG_GRACE: Duration = Duration::from_secs(24 * 3600);
/// How long a relay must have been known to earn the long grace.
pub const LONG_GRACE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// The share of the time since it was first known that a relay must have been reachable to
/// earn the long grace.
pub const LONG_GRACE_UP: f64 = 0.9;

/// How long an unreachable relay is waited for before its shards are rebuilt elsewhere:
/// `base`, or `long` when that is longer and the relay, `known` for at least
/// [`LONG_GRACE_AFTER`], was reachable (`up`) for at least [`LONG_GRACE_UP`] of it. Relays
/// that have kept coming back are waited for longer, so their absences cost no repair;
/// relays new or often away are rebuilt around after `base`, where a long wait leaves
/// their stripes short (`docs/scale/grace.md`, 4+2: relay operators read 6.4 shards per
/// shard stored a year against 14.0 with two hours, a mixed population 32 against 171, and
/// volatile relays what two hours read, where a day's grace for all loses more).
pub fn grace_for(base: Duration, long: Duration, known: Duration, up: Duration) -> Duration {
    let proven = known >= LONG_GRACE_AFTER && up.as_secs_f64() >= LONG_GRACE_UP * known.as_secs_f64();
    if proven {
        base.max(long)
    } else {
        base
    }
}

/// How long a relay has been known to [`Liveness`], and reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    /// Known since (in this run), and for how long before (kept from earlier runs).
    first: Duration,
    carried: Duration,
    /// Time reachable before `up_since`.
    up: Duration,
    /// Reachable since (connected).
    up_since: Option<Duration>,
}

impl Record {
    fn known_at(&self, now: Duration) -> Duration {
        self.carried + now.saturating_sub(self.first)
    }

    fn up_at(&self, now: Duration) -> Duration {
        self.up + self.up_since.map_or(Duration::ZERO, |t| now.saturating_sub(t))
    }

    fn went_down(&mut self, at: Duration) {
        if let Some(t) = self.up_since.take() {
            self.up += at.saturating_sub(t);
        }
    }
}

/// A relay's record as kept across restarts ([`Liveness::kept`]): seconds known, and
/// seconds reachable, by the relay that kept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeptRecord {
    pub known: u64,
    pub up: u64,
}

/// What [`Liveness`] knows of one relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerState {
    Connected,
    /// Unreachable since `since` (its last connection closed, or a dial failed), for less
    /// than the grace period so far.
    Suspect {
        since: Duration,
    },
    Dead,
    /// Failed a proof of possession: not taken as a relay until `until`, whatever its
    /// connections say.
    Banned {
        until: Duration,
    },
}

/// Which relays are alive, from connection events. A relay that becomes unreachable is
/// *suspect* for a grace period, during which the network waits for it (a restart costs no
/// repair); after that it is *dead* and its shards are rebuilt elsewhere. The grace is a
/// relay's own ([`grace_for`]): the base grace, or the long one for a relay known here for
/// a week and reachable nine tenths of it. The record starts when this relay first sees it
/// connected; a relay keeps its records across restarts ([`Liveness::kept`],
/// [`Liveness::restore`]), its own time down counting neither for nor against anyone.
#[derive(Debug, Clone)]
pub struct Liveness<P> {
    peers: HashMap<P, PeerState>,
    records: HashMap<P, Record>,
    grace: Duration,
    long_grace: Duration,
}

impl<P: Clone + Eq + Hash + Ord> Liveness<P> {
    /// A relay unreachable for `grace` is dead (whatever its record: no long grace).
    pub fn new(grace: Duration) -> Self {
        Self { peers: HashMap::new(), records: HashMap::new(), grace, long_grace: Duration::ZERO }
    }

    /// Relays with a long record of coming back are waited for `long` ([`grace_for`]).
    pub fn with_long_grace(mut self, long: Duration) -> Self {
        self.long_grace = long;
        self
    }

    /// How long `peer` is waited for when unreachable: judged on its record as it stood when
    /// it went away (its absence does not shorten its own grace), or as of `now`.
    pub fn grace_of(&self, peer: &P, now: Duration) -> Duration {
        let at = match self.peers.get(peer) {
            Some(PeerState::Suspect { since }) => *since,
            _ => now,
        };
        Self::grace_in(&self.records, (self.grace, self.long_grace), peer, at)
    }

    /// `peer`'s grace by its record as of `at`.
    fn grace_in(
        records: &HashMap<P, Record>,
        (base, long): (Duration, Duration),
        peer: &P,
        at: Duration,
    ) -> Duration {
        match records.get(peer) {
            Some(r) => grace_for(base, long, r.known_at(at), r.up_at(at)),
            None => base,
        }
    }

    /// A connection to `peer` is open, or it answered, at `now`. A banned peer stays banned.
    pub fn connected(&mut self, peer: P, now: Duration) {
        let r = self.records.entry(peer.clone()).or_insert(Record {
            first: now,
            carried: Duration::ZERO,
            up: Duration::ZERO,
            up_since: None,
        });
        r.up_since.get_or_insert(now);
        let s = self.peers.entry(peer).or_insert(PeerState::Connected);
        if !matches!(s, PeerState::Banned { .. }) {
            *s = PeerState::Connected;
        }
    }

    /// `peer` stopped being reachable at `at`: its record's time up ends there.
    fn went_down(&mut self, peer: &P, at: Duration) {
        if let Some(r) = self.records.get_mut(peer) {
            r.went_down(at);
        }
    }

    /// How many relays this holds a record of.
    pub fn records(&self) -> usize {
        self.records.len()
    }

    /// The records to keep across a restart, as of `now`: each relay's time known and time
    /// reachable, the longest known first, at most `max`.
    pub fn kept(&self, now: Duration, max: usize) -> Vec<(P, KeptRecord)> {
        let mut out: Vec<(P, KeptRecord)> = self
            .records
            .iter()
            .map(|(p, r)| {
                (p.clone(), KeptRecord { known: r.known_at(now).as_secs(), up: r.up_at(now).as_secs() })
            })
            .collect();
        out.sort_by(|(a, x), (b, y)| y.known.cmp(&x.known).then_with(|| a.cmp(b)));
        out.truncate(max);
        out
    }

    /// Takes back records kept by an earlier run ([`Liveness::kept`]) at `now`: each relay's
    /// record goes on from where it stood (the time between, this relay's own time down, is
    /// not counted). A record this run already holds stays; a kept one claiming more time up
    /// than known is cut to it.
    pub fn restore(&mut self, kept: impl IntoIterator<Item = (P, KeptRecord)>, now: Duration) {
        for (p, k) in kept {
            let known = Duration::from_secs(k.known);
            self.records.entry(p).or_insert(Record {
                first: now,
                carried: known,
                up: Duration::from_secs(k.up).min(known),
                up_since: None,
            });
        }
    }

    /// `peer` is distrusted (its audits failed, see [`crate::audit`]): it is not taken as a
    /// relay (its claims are not heard, nothing is planned around it) until `until`.
    pub fn distrust(&mut self, peer: P, until: Duration) {
        self.peers.insert(peer, PeerState::Banned { until });
    }

    /// Whether `peer` is distrusted (see [`distrust`](Self::distrust)).
    pub fn is_banned(&self, peer: &P) -> bool {
        matches!(self.peers.get(peer), Some(PeerState::Banned { .. }))
    }

    /// The last connection to `peer` closed. Returns whether the caller should dial it
    /// again to find out whether it is gone.
    pub fn disconnected(&mut self, peer: &P, now: Duration) -> bool {
        match self.peers.get_mut(peer) {
            Some(s @ PeerState::Connected) => {
                *s = PeerState::Suspect { since: now };
                self.went_down(peer, now);
                true
            }
            _ => false,
        }
    }

    /// Dialling `peer` (or a request to it) failed. It is suspect, and dead once it has been
    /// unreachable for the grace period; returns whether it became dead now.
    pub fn unreachable(&mut self, peer: &P, now: Duration) -> bool {
        let grace = self.grace_of(peer, now);
        let Some(s) = self.peers.get_mut(peer) else { return false };
        match *s {
            PeerState::Connected => {
                *s = if grace.is_zero() { PeerState::Dead } else { PeerState::Suspect { since: now } };
                self.went_down(peer, now);
                grace.is_zero()
            }
            PeerState::Suspect { since } if now.saturating_sub(since) >= grace => {
                *s = PeerState::Dead;
                true
            }
            _ => false,
        }
    }

    /// Relays unreachable but within their grace period.
    pub fn suspects(&self) -> Vec<P> {
        let mut v: Vec<P> = self
            .peers
            .iter()
            .filter(|(_, s)| matches!(s, PeerState::Suspect { .. }))
            .map(|(p, _)| p.clone())
            .collect();
        v.sort();
        v
    }

    /// Relays suspect for longer than the grace period become dead; returns them. Bans that
    /// ran out are lifted (the peer counts again once it is connected).
    pub fn expire(&mut self, now: Duration) -> Vec<P> {
        let mut out = Vec::new();
        let graces = (self.grace, self.long_grace);
        for (p, s) in &mut self.peers {
            match *s {
                PeerState::Suspect { since }
                    if now.saturating_sub(since) >= Self::grace_in(&self.records, graces, p, since) =>
                {
                    *s = PeerState::Dead;
                    out.push(p.clone());
                }
                PeerState::Banned { until } if now >= until => *s = PeerState::Dead,
                _ => {}
            }
        }
        out.sort();
        out
    }

    /// Relays taken as alive: connected, or suspect within the grace period.
    pub fn live(&self) -> Vec<P> {
        let mut v: Vec<P> = self
            .peers
            .iter()
            .filter(|(_, s)| matches!(s, PeerState::Connected | PeerState::Suspect { .. }))
            .map(|(p, _)| p.clone())
            .collect();
        v.sort();
        v
    }

    /// Whether `peer` is taken as alive.
    pub fn is_live(&self, peer: &P) -> bool {
        matches!(self.peers.get(peer), Some(PeerState::Connected | PeerState::Suspect { .. }))
    }
}

/// A rebuild this relay was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildJob<P> {
    pub stripe: StripeId,
    pub header: Vec<u8>,
    pub index: u8,
    /// Relays holding shards of the stripe, closest first.
    pub holders: Vec<P>,
    /// Live slots when the job was ordered: fewer means closer to loss, so sooner.
    pub live: usize,
    /// Bytes the rebuild will fetch (about `k` shards).
    pub cost: u64,
    /// The relay that ordered it.
    pub by: P,
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the repair queue is full ({0} jobs)")]
    Full(usize),
    #[error("{0} jobs ordered by this relay are waiting already, the most one relay may have")]
    SenderFull(usize),
}

#[derive(Debug, Clone)]
struct Queued<P> {
    job: RebuildJob<P>,
    since: Duration,
    seq: u64,
}

/// Rebuilds waiting and running at one relay, rate-limited.
#[derive(Debug, Clone)]
pub struct RepairQueue<P> {
    waiting: Vec<Queued<P>>,
    running: Vec<StripeId>,
    max_running: usize,
    max_waiting: usize,
    /// Most waiting jobs ordered by one relay.
    max_per_sender: usize,
    /// Byte budget: refilled at `rate` bytes per second, up to `burst`.
    rate: u64,
    burst: u64,
    tokens: f64,
    refilled: Duration,
    seq: u64,
}

impl<P: Clone + PartialEq> RepairQueue<P> {
    /// At most `max_running` rebuilds at once and `max_waiting` queued; rebuilds start while
    /// the byte budget (`rate` bytes per second, bursts up to `burst`) allows.
    pub fn new(max_running: usize, max_waiting: usize, rate: u64, burst: u64) -> Self {
        Self {
            waiting: Vec::new(),
            running: Vec::new(),
            max_running: max_running.max(1),
            max_waiting,
            max_per_sender: max_waiting,
            rate,
            burst: burst.max(1),
            tokens: burst as f64,
            refilled: Duration::ZERO,
            seq: 0,
        }
    }

    /// At most `max` waiting jobs ordered by any one relay: one relay's orders, true or
    /// false, cannot fill the queue and hold back everyone else's.
    pub fn with_max_per_sender(mut self, max: usize) -> Self {
        self.max_per_sender = max.max(1);
        self
    }

    /// Queues a job. A stripe already queued or running is not queued twice (the newer
    /// order replaces a waiting one: its holders are fresher).
    pub fn push(&mut self, job: RebuildJob<P>, now: Duration) -> Result<(), QueueError> {
        if self.running.contains(&job.stripe) {
            return Ok(());
        }
        if let Some(q) = self.waiting.iter_mut().find(|q| q.job.stripe == job.stripe) {
            q.job = job;
            return Ok(());
        }
        if self.waiting.len() >= self.max_waiting {
            return Err(QueueError::Full(self.waiting.len()));
        }
        let mine = self.waiting.iter().filter(|q| q.job.by == job.by).count();
        if mine >= self.max_per_sender {
            return Err(QueueError::SenderFull(mine));
        }
        self.seq += 1;
        self.waiting.push(Queued { job, since: now, seq: self.seq });
        Ok(())
    }

    fn refill(&mut self, now: Duration) {
        let dt = now.saturating_sub(self.refilled).as_secs_f64();
        self.refilled = self.refilled.max(now);
        self.tokens = (self.tokens + dt * self.rate as f64).min(self.burst as f64);
    }

    /// The jobs to start now: fewest live shards first, then oldest.
    pub fn poll(&mut self, now: Duration) -> Vec<RebuildJob<P>> {
        self.refill(now);
        self.waiting.sort_by_key(|q| (q.job.live, q.seq));
        let mut out = Vec::new();
        while self.running.len() < self.max_running && !self.waiting.is_empty() && self.tokens > 0.0 {
            let q = self.waiting.remove(0);
            // A job larger than the burst still runs once the budget is full, and leaves it
            // in debt: the long-run rate holds.
            self.tokens -= q.job.cost as f64;
            self.running.push(q.job.stripe);
            out.push(q.job);
        }
        out
    }

    /// A started job ended (rebuilt or failed; a failed one is ordered again by a later
    /// round if still needed).
    pub fn finished(&mut self, stripe: &StripeId) {
        self.running.retain(|s| s != stripe);
    }

    /// Jobs waiting (not started).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Jobs running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// How long the oldest waiting job has waited.
    pub fn oldest_wait(&self, now: Duration) -> Duration {
        self.waiting.iter().map(|q| now.saturating_sub(q.since)).max().unwrap_or_default()
    }

    /// When a job held back by the byte budget can start (None if none is held back).
    pub fn next_start(&self) -> Option<Duration> {
        if self.waiting.is_empty() || self.running.len() >= self.max_running || self.tokens > 0.0 {
            return None;
        }
        let secs = (-self.tokens + 1.0) / self.rate.max(1) as f64;
        Some(self.refilled + Duration::from_secs_f64(secs))
    }
}

/// One stripe a relay holds, as its repair round sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldStripe {
    pub id: StripeId,
    /// The indices this relay holds.
    pub mine: Vec<u8>,
    /// From [`slots_of`].
    pub slots: Vec<u8>,
    /// Shards needed to rebuild.
    pub k: usize,
    /// This relay's own audits failed a claim on the stripe lately. It then orders a rebuild
    /// its plan calls for even when another member is the coordinator: views differ (the
    /// coordinator may still hear the claim, when a client's report reached only some of
    /// the group), and the member ordered challenges the claim itself before it obeys.
    pub doubted: bool,
}

/// One thing a relay does for a stripe in a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundAction<P> {
    /// Send shard `index`, which this relay holds but does not keep, to vacant member `to`.
    Handover { stripe: StripeId, index: u8, to: P },
    /// Ask `at` to rebuild `index` from `holders`, and with it the stripe's other lost
    /// shards, which it hands to their members (this relay coordinates the stripe). One per
    /// stripe and round, once [`rebuild_after`] slots are lost. `instead`: the stripe's
    /// other rebuilds (index, member), asked in turn when `at` refuses (its repair queue
    /// is full), so that one busy member does not hold the whole stripe's repair back.
    Order { stripe: StripeId, index: u8, at: P, holders: Vec<P>, live: usize, instead: Vec<(u8, P)> },
    /// Drop this relay's surplus copy of `index`, once each of `witnesses` has proven it
    /// holds its shard.
    Drop { stripe: StripeId, index: u8, witnesses: Vec<(P, u8)> },
}

/// One stripe planned from one relay's view, and that relay's part of the plan.
#[derive(Debug, Clone)]
pub struct StripeRound<P> {
    pub plan: GroupPlan<P>,
    /// The holders the plan rests on, with the indices each holds.
    pub holders: Vec<(P, Vec<u8>)>,
    /// A suspect member (unreachable lately) is being waited for.
    pub waiting: bool,
    /// This relay's moves (handovers, orders, drops), each with its priority: the stripe's
    /// live slots (fewest first).
    pub actions: Vec<(usize, RoundAction<P>)>,
    /// The claims of the other members keeping a shard, which this relay may audit.
    pub audits: Vec<crate::audit::Claim<P>>,
}

/// Plans `stripe` from relay `me`'s view and keeps `me`'s part.
///
/// `ordered` is every relay `me` counts as alive (itself included) by distance to the
/// stripe; `silent` those that did not answer this round; `suspects` those unreachable
/// lately; `claims(p)` what relay `p` says it holds of the stripe (claims it could not prove
/// already left out). A suspect member is waited for: while it is, and more than `k` slots
/// are live, nothing moves (it may come back). One that is reachable but did not answer is
/// left out of this round's plan. At most `max_holders` holders are named in an order.
#[allow(clippy::too_many_arguments)]
pub fn plan_stripe_round<P: Clone + PartialEq>(
    me: &P,
    stripe: &HeldStripe,
    ordered: Vec<P>,
    silent: &[P],
    suspects: &[P],
    claims: impl Fn(&P) -> Option<Vec<u8>>,
    max_holders: usize,
) -> StripeRound<P> {
    let n = stripe.slots.len();
    let waiting = ordered.iter().filter(|p| !silent.contains(p)).take(n).any(|p| suspects.contains(p));
    let alive: Vec<P> =
        ordered.into_iter().filter(|p| !silent.contains(p) && !suspects.contains(p)).collect();
    let group: Vec<P> = alive.iter().take(n).cloned().collect();
    let holders: Vec<(P, Vec<u8>)> = alive
        .iter()
        .filter_map(|p| {
            if p == me {
                Some((p.clone(), stripe.mine.clone()))
            } else {
                claims(p).map(|idx| (p.clone(), idx))
            }
        })
        .collect();
    let plan = plan_group(&stripe.slots, stripe.k, &group, &holders);
    let mut actions = Vec::new();
    let mut audits = Vec::new();
    if !(waiting && plan.live > stripe.k) {
        let id = stripe.id;
        // One order per stripe, to the first member to rebuild, once enough slots are lost:
        // that member rebuilds the rest with it and hands them over.
        let mut ordered = !plan.rebuilds_due(stripe.k, n);
        for m in &plan.moves {
            match m {
                Move::Handover { index, from, to } if from == me => {
                    actions.push((
                        plan.live,
                        RoundAction::Handover { stripe: id, index: *index, to: to.clone() },
                    ));
                }
                Move::Rebuild { index, at, coordinator }
                    if !ordered && (coordinator == me || stripe.doubted) =>
                {
                    ordered = true;
                    let named = holders.iter().map(|(p, _)| p.clone()).take(max_holders).collect();
                    let order = RoundAction::Order {
                        stripe: id,
                        index: *index,
                        at: at.clone(),
                        holders: named,
                        live: plan.live,
                        instead: plan.rebuilt_with(&stripe.slots, at, *index),
                    };
                    actions.push((plan.live, order));
                }
                _ => {}
            }
        }
        for (p, index) in &plan.drops {
            if p != me {
                continue;
            }
            if let Some(witnesses) = drop_witnesses(&stripe.slots, me, *index, &plan.kept, &holders) {
                actions.push((plan.live, RoundAction::Drop { stripe: id, index: *index, witnesses }));
            }
        }
        for (p, index) in &plan.kept {
            if p != me {
                audits.push(crate::audit::Claim { peer: p.clone(), stripe: id, index: *index });
            }
        }
    }
    StripeRound { plan, holders, waiting, actions, audits }
}

/// A round's schedule: this relay's moves closest to loss first, at most `max_actions` of
/// them. (The claims a round relies on are audited apart, on their own interval: see
/// [`crate::audit`].)
pub fn schedule_round<P>(
    mut actions: Vec<(usize, RoundAction<P>)>,
    max_actions: usize,
) -> Vec<RoundAction<P>> {
    actions.sort_by_key(|(live, _)| *live);
    actions.truncate(max_actions);
    actions.into_iter().map(|(_, a)| a).collect()
}

#[cfg(test)]
#[path = "repair_tests.rs"]
mod tests;
