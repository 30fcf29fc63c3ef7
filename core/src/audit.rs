//! Audits: which claims a relay challenges, what each answer means, and whom it trusts.
//!
//! A relay audits the other holders of stripes it holds: every audit interval it takes the
//! claims its last repair round relied on (peer `p` keeps index `i` of stripe `s`), picks a
//! few per peer ([`Audits::sample`]), and challenges each (a proof of possession,
//! [`crate::proof`]). Each answer is a [`Verdict`], recorded with [`Audits::record`]:
//!
//! - the claim behind a verdict other than [`Verdict::Pass`] is not heard for
//!   [`AuditConfig::forget_after`] ([`Audits::claim_heard`]): the repair planning treats the
//!   index as not held by that peer, so the group rebuilds it (on that same peer if it then
//!   asks for it honestly, otherwise on the next relay);
//! - each verdict moves the peer's **score** (in `[0, 1]`, 1 for a peer never failed): a pass
//!   raises it a little (a tenth of its distance to 1), a shard lost on the holder's disk
//!   takes 30% off, a late answer 10%, a false proof all of it, a claim withdrawn (the
//!   holder says it no longer holds the shard) 5%. Between verdicts the score recovers
//!   toward 1 with a half-life of
//!   [`AuditConfig::recovery`]. A peer whose score is below [`AuditConfig::threshold`] is
//!   **distrusted**: placement, reads and repair treat it as absent until it recovers.
//!
//! Safety: verdicts are local. A relay's scores change only through challenges it sent
//! itself and answers it checked itself against the stripe header it holds; no score is
//! gossiped, and a client's checks feed no score at all. A lying auditor can therefore only
//! make itself ignore an honest peer (its own loss: it rebuilds what it need not); it cannot
//! make anyone else distrust it. A holder cannot pass a challenge without the challenged
//! bytes: the chunk is chosen by the challenger's nonce and bound to the holder's id and the
//! shard's address, and each member of a group holds a different shard, so there is no copy
//! next door to answer from.
//!
//! No IO and no clock: every call takes `now` (a `Duration` from any fixed instant).

use crate::proof::{challenged_chunk, verify, Proof, NONCE_LEN};
use crate::wire::{ErrorCode, Request, Response};
use crate::{ShardId, StripeHeader, StripeId};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

/// What an answer to a challenge showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// The proof verified against the shard's address.
    Pass,
    /// The holder found the shard lost on its disk when asked (its bytes no longer match
    /// the address, or the file is gone), or takes no challenge at all.
    Lost,
    /// The holder answered that it does not hold the shard: it dropped a surplus copy after
    /// it answered `Holds` (common under churn), or it knew of its loss already. The claim
    /// is not heard for a while; the score moves a little (an honest relay does this at
    /// times, a relay claiming what it does not hold does it every time).
    Withdrawn,
    /// No answer by the deadline.
    Timeout,
    /// A proof that does not verify: garbage, another shard's bytes, a lie.
    False,
}

impl Verdict {
    /// The verdict's name in metrics and documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Lost => "fail",
            Verdict::Withdrawn => "withdrawn",
            Verdict::Timeout => "timeout",
            Verdict::False => "false",
        }
    }

    /// Whether the claim behind it is not heard for a while.
    pub fn is_failure(self) -> bool {
        self != Verdict::Pass
    }
}

/// One claim: `peer` keeps index `index` of `stripe`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Claim<P> {
    pub peer: P,
    pub stripe: StripeId,
    pub index: u8,
}

/// One challenge of one claim, as the challenger sees it: the request to send and how to
/// judge the answer. Relays auditing each other and clients checking a file use the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub stripe: StripeId,
    pub index: u8,
    nonce: [u8; NONCE_LEN],
    address: ShardId,
    shard_len: usize,
    chunk: usize,
}

impl Challenge {
    /// A challenge of `holder` (its peer id's bytes) on shard `index` of the stripe whose
    /// header is `header`, with a fresh `nonce`; `None` if the stripe has no such index.
    pub fn new(
        header: &StripeHeader,
        stripe: StripeId,
        index: u8,
        holder: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Option<Self> {
        let address = *header.shards().get(usize::from(index))?;
        let shard_len = header.shard_len();
        let chunk = challenged_chunk(&nonce, holder, &address, shard_len);
        Some(Self { stripe, index, nonce, address, shard_len, chunk })
    }

    /// What to send on `/kura/audit/1`.
    pub fn request(&self) -> Request {
        Request::Prove { stripe: self.stripe, index: self.index, nonce: self.nonce }
    }

    /// The verdict an answer earns, or `None` for an answer that judges nothing (the holder
    /// is busy: ask again later). A proof must verify against the address in the header; a
    /// holder saying it does not hold the shard withdraws its claim; any other answer (the
    /// shard is corrupt on its disk, a refusal, a message of the wrong kind) cannot back the
    /// claim. Lateness and silence are the caller's to judge.
    pub fn judge(&self, answer: Response) -> Result<Verdict, Response> {
        match answer {
            Response::Proof { chunk, siblings } => {
                match verify(&self.address, self.shard_len, self.chunk, &Proof { chunk, siblings }) {
                    Ok(()) => Ok(Verdict::Pass),
                    Err(_) => Ok(Verdict::False),
                }
            }
            busy @ Response::Error { code: ErrorCode::Busy, .. } => Err(busy),
            Response::Error { code: ErrorCode::NotFound, .. } => Ok(Verdict::Withdrawn),
            _ => Ok(Verdict::Lost),
        }
    }
}

/// A verdict, when it was given, on which claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<P> {
    pub at: Duration,
    pub claim: Claim<P>,
    pub verdict: Verdict,
}

/// Tunables of [`Audits`].
#[derive(Debug, Clone, Copy)]
pub struct AuditConfig {
    /// Claims challenged per peer per audit interval.
    pub per_peer: usize,
    /// Below this score a peer is distrusted.
    pub threshold: f64,
    /// Half-life of a score's distance from 1 (how fast a peer that stopped failing is
    /// trusted again).
    pub recovery: Duration,
    /// How long the claim behind a failed verdict is not heard (unless a pass comes first).
    pub forget_after: Duration,
    /// Verdicts kept for [`Audits::recent`].
    pub recent: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            per_peer: 4,
            threshold: 0.3,
            recovery: Duration::from_secs(3600),
            forget_after: Duration::from_secs(3600),
            recent: 256,
        }
    }
}

/// Scores move by these on each verdict. Four losses in a row (a wiped disk, one interval
/// of four challenges) take a peer from 1 to 0.24, below the default threshold; a peer that
/// lost a tenth of its shards loses about one challenge in ten and stays trusted, while each
/// lost claim it is challenged on stops being heard.
///
/// A withdrawal costs a little: an honest relay withdraws a claim when it dropped a surplus
/// copy after answering `Holds` (churn does this), a relay that claims what it does not hold
/// withdraws every claim it is challenged on. With a pass adding a tenth of the distance to 1
/// and a withdrawal taking 5%, a peer whose challenges are a fraction `w` withdrawals settles
/// at `(1-w)·0.1 / ((1-w)·0.1 + w·0.05)`: 0.67 at one in two, the threshold 0.3 only past
/// `w` = 0.82; one that withdraws every claim is distrusted after 32 challenges in a row
/// (eight intervals of four at the default interval, the score recovering in between).
const PASS_GAIN: f64 = 0.1;
const LOST_FACTOR: f64 = 0.7;
const TIMEOUT_FACTOR: f64 = 0.9;
const WITHDRAWN_FACTOR: f64 = 0.95;

/// Timeouts of one peer within this window are one outage, not independent failures: at
/// most [`TIMEOUTS_PER_WINDOW`] of them lower its score. A relay killed and started again
/// leaves every challenge sent to it meanwhile unanswered (a relay's repair rounds, every
/// second in tests, challenge its claims each round), and counting each would distrust an
/// honest relay for one restart; a relay that never answers still loses the four of every
/// audit interval, as before.
pub const TIMEOUT_WINDOW: Duration = Duration::from_secs(60);
pub const TIMEOUTS_PER_WINDOW: u32 = 4;

#[derive(Debug, Clone, Copy)]
struct Standing {
    score: f64,
    /// When `score` was last set.
    at: Duration,
}

/// One relay's audits of its peers: verdicts, scores, claims not heard.
#[derive(Debug, Clone)]
pub struct Audits<P> {
    cfg: AuditConfig,
    standing: HashMap<P, Standing>,
    /// Claims behind a failed verdict, until when they are not heard.
    failed: HashMap<(P, StripeId), Duration>,
    recent: VecDeque<Record<P>>,
    /// Verdicts given, by kind.
    counts: HashMap<Verdict, u64>,
    /// Each peer's current window of timeouts: when it began, and how many fell in it.
    timeouts: HashMap<P, (Duration, u32)>,
}

impl<P: Clone + Eq + Hash + Ord> Audits<P> {
    pub fn new(cfg: AuditConfig) -> Self {
        Self {
            cfg,
            standing: HashMap::new(),
            failed: HashMap::new(),
            recent: VecDeque::new(),
            counts: HashMap::new(),
            timeouts: HashMap::new(),
        }
    }

    pub fn config(&self) -> &AuditConfig {
        &self.cfg
    }

    /// Picks the claims to challenge this interval: at most `per_peer` of each peer's, chosen
    /// by `pick(len)` (an index below `len`; the relay passes a random one). Duplicates
    /// count once. The result is grouped by peer.
    pub fn sample(&self, candidates: Vec<Claim<P>>, mut pick: impl FnMut(usize) -> usize) -> Vec<Claim<P>> {
        let mut by_peer: std::collections::BTreeMap<P, Vec<Claim<P>>> = Default::default();
        for c in candidates {
            let v = by_peer.entry(c.peer.clone()).or_default();
            if !v.contains(&c) {
                v.push(c);
            }
        }
        let mut out = Vec::new();
        for (_, mut claims) in by_peer {
            for _ in 0..self.cfg.per_peer.min(claims.len()) {
                let i = pick(claims.len()).min(claims.len() - 1);
                out.push(claims.swap_remove(i));
            }
        }
        out
    }

    /// Records the verdict on `claim` given at `now`.
    pub fn record(&mut self, now: Duration, claim: Claim<P>, verdict: Verdict) {
        let score = self.score(&claim.peer, now);
        let score = match verdict {
            Verdict::Pass => score + (1.0 - score) * PASS_GAIN,
            Verdict::Lost => score * LOST_FACTOR,
            Verdict::Withdrawn => score * WITHDRAWN_FACTOR,
            Verdict::Timeout => {
                let w = self.timeouts.entry(claim.peer.clone()).or_insert((now, 0));
                if now.saturating_sub(w.0) >= TIMEOUT_WINDOW {
                    *w = (now, 0);
                }
                w.1 += 1;
                if w.1 <= TIMEOUTS_PER_WINDOW {
                    score * TIMEOUT_FACTOR
                } else {
                    score
                }
            }
            Verdict::False => 0.0,
        };
        self.standing.insert(claim.peer.clone(), Standing { score, at: now });
        let key = (claim.peer.clone(), claim.stripe);
        if verdict.is_failure() {
            self.failed.insert(key, now + self.cfg.forget_after);
        } else {
            self.failed.remove(&key);
        }
        *self.counts.entry(verdict).or_default() += 1;
        self.recent.push_back(Record { at: now, claim, verdict });
        while self.recent.len() > self.cfg.recent {
            self.recent.pop_front();
        }
    }

    /// `peer`'s score at `now` (1 for a peer with no verdict against it).
    pub fn score(&self, peer: &P, now: Duration) -> f64 {
        let Some(s) = self.standing.get(peer) else { return 1.0 };
        let half_lives = now.saturating_sub(s.at).as_secs_f64() / self.cfg.recovery.as_secs_f64().max(1e-9);
        1.0 - (1.0 - s.score) * 0.5f64.powf(half_lives)
    }

    /// Whether `peer` is trusted at `now`: its score is at least the threshold.
    pub fn is_trusted(&self, peer: &P, now: Duration) -> bool {
        self.score(peer, now) >= self.cfg.threshold
    }

    /// Until when `peer` stays distrusted, if it is at `now`: when its score, recovering,
    /// reaches the threshold again (unless another verdict comes first).
    pub fn distrusted_until(&self, peer: &P, now: Duration) -> Option<Duration> {
        let score = self.score(peer, now);
        if score >= self.cfg.threshold {
            return None;
        }
        // 1 - (1 - score) * 0.5^h = threshold
        let half_lives = ((1.0 - score) / (1.0 - self.cfg.threshold)).log2();
        Some(now + self.cfg.recovery.mul_f64(half_lives.max(0.0)) + Duration::from_millis(1))
    }

    /// The peers distrusted at `now`, with their scores, in order.
    pub fn distrusted(&self, now: Duration) -> Vec<(P, f64)> {
        let mut v: Vec<(P, f64)> = self
            .standing
            .keys()
            .map(|p| (p.clone(), self.score(p, now)))
            .filter(|(_, s)| *s < self.cfg.threshold)
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Every peer with a verdict, with its score at `now`, in order.
    pub fn scores(&self, now: Duration) -> Vec<(P, f64)> {
        let mut v: Vec<(P, f64)> = self.standing.keys().map(|p| (p.clone(), self.score(p, now))).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Whether `peer`'s claims on `stripe` are heard at `now`: not while a failed verdict on
    /// them stands (see [`AuditConfig::forget_after`]), nor while the peer is distrusted.
    pub fn claim_heard(&self, peer: &P, stripe: &StripeId, now: Duration) -> bool {
        let failed = self.failed.get(&(peer.clone(), *stripe)).is_some_and(|until| now < *until);
        !failed && self.is_trusted(peer, now)
    }

    /// The stripes on which a claim failed and is still not heard at `now`.
    pub fn doubted(&self, now: Duration) -> std::collections::HashSet<StripeId> {
        self.failed.iter().filter(|(_, until)| now < **until).map(|((_, s), _)| *s).collect()
    }

    /// Forgets failed claims whose time is over.
    pub fn expire(&mut self, now: Duration) {
        self.failed.retain(|_, until| now < *until);
        self.timeouts.retain(|_, (start, _)| now.saturating_sub(*start) < TIMEOUT_WINDOW);
    }

    /// The latest verdicts, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Record<P>> {
        self.recent.iter()
    }

    /// Verdicts of one kind given so far.
    pub fn count(&self, verdict: Verdict) -> u64 {
        self.counts.get(&verdict).copied().unwrap_or(0)
    }
}

/// What became of a client's report of a claim it could not prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// The claim will be challenged soon.
    Accepted,
    /// This relay does not rely on such a claim (it holds no such stripe, or never heard the
    /// holder claim that index): nothing to check.
    NotReliedOn,
    /// The claim was reported moments ago; the report is not taken again.
    TooSoon,
    /// Too many reports wait already.
    Full,
}

/// Clients' reports of claims they could not prove, waiting for the relay's own challenge.
///
/// A report only makes the relay challenge a claim it relies on sooner than its sampling
/// would; the verdict is the relay's own, from its own challenge, so a report cannot lower
/// an honest holder's standing. It costs the reporter a message and the relay one
/// challenge, at most once per claim per `cooldown`, at most `max_waiting` at a time (and
/// the relay limits reports per reporter like challenges).
#[derive(Debug, Clone)]
pub struct Reports<P> {
    waiting: VecDeque<Claim<P>>,
    /// When each claim was last taken.
    taken: HashMap<Claim<P>, Duration>,
    max_waiting: usize,
    cooldown: Duration,
}

impl<P: Clone + Eq + Hash> Reports<P> {
    pub fn new(max_waiting: usize, cooldown: Duration) -> Self {
        Self { waiting: VecDeque::new(), taken: HashMap::new(), max_waiting, cooldown }
    }

    /// A report of `claim` at `now`; `relied_on` is whether the relay's last repair round
    /// relied on that claim.
    pub fn offer(&mut self, claim: Claim<P>, relied_on: bool, now: Duration) -> Reported {
        if !relied_on {
            return Reported::NotReliedOn;
        }
        if self.taken.get(&claim).is_some_and(|at| now < *at + self.cooldown) {
            return Reported::TooSoon;
        }
        if self.waiting.len() >= self.max_waiting {
            return Reported::Full;
        }
        self.taken.insert(claim.clone(), now);
        self.waiting.push_back(claim);
        Reported::Accepted
    }

    /// The claims to challenge now, oldest report first.
    pub fn take(&mut self, now: Duration) -> Vec<Claim<P>> {
        let cooldown = self.cooldown;
        self.taken.retain(|_, at| now < *at + cooldown);
        self.waiting.drain(..).collect()
    }
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
