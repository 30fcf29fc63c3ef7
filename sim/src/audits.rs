//! Silent loss and dishonest holders, found by kura-core's audits
//! ([`kura_core::audit::Audits`], what every relay runs on the other holders of the stripes
//! it holds) and by a relay's scrub of its own disk.
//!
//! Relays sit at random points; each stripe of `k + m` shards sits on its close group. Some
//! relays (the targets) behave as [`Holder`] says: an honest relay whose disk lost a share
//! of its shards without its knowing, or a dishonest one that keeps none (or only some) of
//! what it claims and answers challenges with forged proofs, with "not found", or not at
//! all. Every member of a group audits the other members as a relay does: every audit
//! interval (at a phase of its own) it picks `per_peer` of each peer's claims it relied on,
//! uniformly and without repeats (the rule of [`Audits::sample`]), and records the verdict
//! the holder's answer earns with [`Audits::record`]. A lost shard counts as **found** when
//! one of its auditors stops hearing the claim ([`Audits::claim_heard`]: a failed verdict on
//! it, or its holder distrusted): from then on that auditor's repair rounds rebuild it. An
//! honest relay also re-reads its own shards (the scrub, `--scrub-rate`, 1 MiB/s by
//! default), finding a rotten one at a uniform point of its pass and withdrawing it; the
//! combined time is the earlier of the two.
//!
//! Only the pairs (auditor, target) are simulated: an auditor samples each peer's claims
//! apart from every other peer's, so the others' verdicts change nothing here.

use crate::population::{random_key, Population};
use kura_core::audit::{AuditConfig, Audits, Claim, Verdict};
use kura_core::placement::DhtKey;
use kura_core::testdata::XorShift;
use kura_core::wire::{Message, Request, Response};
use kura_core::StripeId;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// How the target relays behave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Holder {
    /// Honest: lost this share of its shards on disk without knowing (answers a challenge
    /// on one with "lost", the verdict [`Verdict::Lost`], and then knows).
    Rot(f64),
    /// Dishonest: dropped this share of its shards and still claims them, answering
    /// challenges on them with made-up proofs ([`Verdict::False`]).
    Drop(f64),
    /// Dishonest: holds nothing, claims everything in `Holds`, and answers a challenge with
    /// "not found" ([`Verdict::Withdrawn`]).
    Withdraws,
    /// Dishonest: holds nothing, claims everything, answers no challenge
    /// ([`Verdict::Timeout`]).
    Silent,
}

impl Holder {
    pub fn label(&self) -> String {
        match self {
            Holder::Rot(s) => format!("honest, {:.0}% rotten", s * 100.0),
            Holder::Drop(s) => format!("drops {:.0}%, forges proofs", s * 100.0),
            Holder::Withdraws => "holds nothing, says \"not found\"".into(),
            Holder::Silent => "holds nothing, answers nothing".into(),
        }
    }

    fn lost_share(&self) -> f64 {
        match *self {
            Holder::Rot(s) | Holder::Drop(s) => s,
            Holder::Withdraws | Holder::Silent => 1.0,
        }
    }

    fn verdict_on_lost(&self) -> Verdict {
        match self {
            Holder::Rot(_) => Verdict::Lost,
            Holder::Drop(_) => Verdict::False,
            Holder::Withdraws => Verdict::Withdrawn,
            Holder::Silent => Verdict::Timeout,
        }
    }
}

/// One run.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub relays: usize,
    /// Shards each relay holds on average (the stripes are `relays * this / (k + m)`).
    pub shards_per_relay: usize,
    pub k: usize,
    pub m: usize,
    /// Relays that behave as `holder`.
    pub targets: usize,
    pub holder: Holder,
    pub shard_len: usize,
    /// The relays' audit interval (`--audit-interval`, 300 s by default).
    pub interval_s: f64,
    /// Bytes per second an honest relay re-reads of its own shards (`--scrub-rate`); 0 for
    /// no scrub (audits alone).
    pub scrub_rate: f64,
    /// Simulated time at most.
    pub days: f64,
    pub seed: u64,
}

impl Config {
    /// The relays' defaults: 256 KiB shards, 4 + 2, audits every 300 s, scrub at 1 MiB/s.
    pub fn new(relays: usize, shards_per_relay: usize, targets: usize, holder: Holder, seed: u64) -> Self {
        Self {
            relays,
            shards_per_relay,
            k: 4,
            m: 2,
            targets,
            holder,
            shard_len: 256 * 1024,
            interval_s: 300.0,
            scrub_rate: (1 << 20) as f64,
            days: 30.0,
            seed,
        }
    }

    /// One full scrub pass over a relay's shards, in seconds (infinite without a scrub).
    pub fn scrub_pass_s(&self) -> f64 {
        if self.scrub_rate > 0.0 {
            (self.shards_per_relay * self.shard_len) as f64 / self.scrub_rate
        } else {
            f64::INFINITY
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Shards of the targets that are lost (rotten, dropped, never held).
    pub lost: usize,
    /// Seconds from the start until each lost shard was found (those found within the run):
    /// an auditor stopped hearing its claim, or (honest holders) the scrub reached it.
    pub found: Vec<f64>,
    /// Of those, found by audits first.
    pub by_audits: usize,
    /// Lost shards not found within the run.
    pub unfound: usize,
    /// Pairs (auditor, target), and how many of them ended with the auditor distrusting
    /// the target at some point; the seconds until each did.
    pub pairs: usize,
    pub distrusted: Vec<f64>,
    /// Targets' peers (the relays that audit them), mean.
    pub auditors_per_target: f64,
    /// Challenges a relay sends (and answers) per hour, and the bytes of one challenge and
    /// its answer on the wire.
    pub challenges_per_hour: f64,
    pub bytes_per_challenge: usize,
    /// Verdicts recorded.
    pub verdicts: u64,
}

/// A target's shard.
struct Shard {
    stripe: StripeId,
    index: u8,
    lost: bool,
    /// When its holder's scrub reaches it (honest holders).
    scrub_at: f64,
    found_at: Option<f64>,
}

/// An auditor's view of one target: the target, the target's shards it relies on, and
/// when it first distrusted the target.
type Peer = (u32, Vec<u32>, Option<f64>);

/// Wire size of one challenge and its answer for a shard of `shard_len` bytes.
pub fn challenge_bytes(shard_len: usize) -> usize {
    let shard: Vec<u8> = (0..shard_len).map(|i| (i % 251) as u8).collect();
    let proof = kura_core::proof::prove(&shard, 0);
    let req = Request::Prove { stripe: StripeId::from_bytes([0; 32]), index: 0, nonce: [0; 32] };
    let ans = Response::Proof { chunk: proof.chunk, siblings: proof.siblings };
    req.frame_len() + ans.frame_len()
}

/// Runs `c`.
pub fn run(c: &Config) -> Outcome {
    let mut rng = XorShift(c.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 3);
    let n = c.k + c.m;
    let pop = Population::random(c.relays, &mut rng);
    let mut target = vec![false; pop.len()];
    let mut chosen = 0;
    while chosen < c.targets.min(pop.len()) {
        let i = rng.below(pop.len());
        if !target[i] {
            target[i] = true;
            chosen += 1;
        }
    }
    let stripes = pop.len() * c.shards_per_relay / n;
    let mut shards: Vec<Shard> = Vec::new();
    // auditor -> target -> the target's shards the auditor relies on (in order: the same
    // seed gives the same run).
    let mut pairs: BTreeMap<u32, BTreeMap<u32, Vec<u32>>> = BTreeMap::new();
    let pass_s = c.scrub_pass_s();
    for _ in 0..stripes {
        let key = random_key(&mut rng);
        let stripe = StripeId::from_bytes(key.0);
        let group = pop.closest(&DhtKey::of_stripe(&stripe), n, |_| true);
        for (index, &h) in group.iter().enumerate() {
            if !target[h] {
                continue;
            }
            let id = shards.len() as u32;
            shards.push(Shard {
                stripe,
                index: index as u8,
                lost: rng.chance(c.holder.lost_share()),
                scrub_at: rng.below(1 << 30) as f64 / (1u64 << 30) as f64 * pass_s,
                found_at: None,
            });
            for &a in &group {
                if a != h {
                    pairs.entry(a as u32).or_default().entry(h as u32).or_default().push(id);
                }
            }
        }
    }
    let mut out = Outcome {
        lost: shards.iter().filter(|s| s.lost).count(),
        pairs: pairs.values().map(BTreeMap::len).sum(),
        bytes_per_challenge: challenge_bytes(c.shard_len),
        ..Outcome::default()
    };
    let mut auditors_of: HashMap<u32, usize> = HashMap::new();
    for &h in pairs.values().flat_map(BTreeMap::keys) {
        *auditors_of.entry(h).or_default() += 1;
    }
    out.auditors_per_target = auditors_of.values().sum::<usize>() as f64 / auditors_of.len().max(1) as f64;
    // Each relay challenges `per_peer` claims of each of its peers per interval; its peers
    // are as many as a target's (the placement treats every relay alike).
    let cfg = AuditConfig::default();
    out.challenges_per_hour = out.auditors_per_target * cfg.per_peer as f64 * 3600.0 / c.interval_s;

    // One Audits per auditor, its pairs in a fixed order, a phase of its own.
    let mut auditors: Vec<(f64, Audits<u32>, Vec<Peer>)> = pairs
        .into_values()
        .map(|peers| {
            let phase = rng.below(1 << 20) as f64 / (1u64 << 20) as f64 * c.interval_s;
            (phase, Audits::new(cfg), peers.into_iter().map(|(h, l)| (h, l, None)).collect())
        })
        .collect();
    let honest = matches!(c.holder, Holder::Rot(_));
    // A shard found is rebuilt by the next repair round (or, found by the scrub, withdrawn
    // and rebuilt): challenges on it pass again after this long.
    const REBUILT_AFTER_S: f64 = 120.0;
    let end_s = c.days * 86_400.0;
    let honest_scrub = |s: &Shard| if honest { s.scrub_at } else { f64::INFINITY };
    let mut picked: Vec<usize> = Vec::with_capacity(cfg.per_peer);
    let mut round = 0u64;
    // Lost shards not yet found by audits, and when the scrub has found all the others.
    let mut waiting = out.lost;
    let scrubbed_all = shards.iter().filter(|s| s.lost).map(honest_scrub).fold(0.0, f64::max);
    loop {
        let base = round as f64 * c.interval_s;
        if base >= end_s || waiting == 0 || base > scrubbed_all {
            break;
        }
        for (phase, audits, peers) in auditors.iter_mut() {
            let now_s = base + *phase;
            let now = Duration::from_secs_f64(now_s);
            for (h, list, distrusted_at) in peers.iter_mut() {
                picked.clear();
                let want = cfg.per_peer.min(list.len());
                while picked.len() < want {
                    let i = rng.below(list.len());
                    if !picked.contains(&i) {
                        picked.push(i);
                    }
                }
                for &i in &picked {
                    let s = &shards[list[i] as usize];
                    let rebuilt = |t: f64| now_s >= t + REBUILT_AFTER_S;
                    let found = s.found_at.map_or(honest_scrub(s), |a| a.min(honest_scrub(s)));
                    if s.lost && !honest && rebuilt(found) {
                        // Rebuilt on another relay: no auditor relies on this claim now.
                        continue;
                    }
                    let bad = s.lost && !rebuilt(found);
                    let verdict = if bad { c.holder.verdict_on_lost() } else { Verdict::Pass };
                    let claim = Claim { peer: *h, stripe: s.stripe, index: s.index };
                    audits.record(now, claim, verdict);
                    out.verdicts += 1;
                }
                // Every lost shard of this peer whose claim this auditor no longer hears
                // is found: its repair round rebuilds it. A claim stops being heard by a
                // verdict on it (one of those just picked) or when its holder is distrusted
                // (all of them; no shard is lost later, so once is enough).
                let newly_distrusted = distrusted_at.is_none() && !audits.is_trusted(h, now);
                if newly_distrusted {
                    *distrusted_at = Some(now_s);
                }
                let check: Vec<u32> =
                    if newly_distrusted { list.clone() } else { picked.iter().map(|&i| list[i]).collect() };
                for id in check {
                    let s = &mut shards[id as usize];
                    if s.lost
                        && s.found_at.is_none()
                        && honest_scrub(s) > now_s
                        && !audits.claim_heard(h, &s.stripe, now)
                    {
                        s.found_at = Some(now_s);
                        waiting -= 1;
                    }
                }
            }
        }
        round += 1;
    }
    for (_, _, peers) in &auditors {
        out.distrusted.extend(peers.iter().filter_map(|p| p.2));
    }
    for s in shards.iter().filter(|s| s.lost) {
        let t = s.found_at.unwrap_or(f64::INFINITY).min(honest_scrub(s));
        if t <= end_s {
            out.found.push(t);
            out.by_audits += usize::from(s.found_at.is_some());
        } else {
            out.unfound += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_scrub(mut c: Config) -> Config {
        c.scrub_rate = 0.0;
        c
    }

    #[test]
    fn a_liar_is_distrusted_by_every_auditor_in_its_first_interval() {
        let c = Config::new(60, 100, 3, Holder::Drop(1.0), 7);
        let o = run(&c);
        assert!(o.lost > 200, "{} lost", o.lost);
        assert_eq!(o.unfound, 0);
        assert_eq!(o.by_audits, o.lost);
        // A forged proof costs all trust at once.
        assert_eq!(o.distrusted.len(), o.pairs);
        assert!(o.distrusted.iter().all(|&t| t < c.interval_s), "{:?}", o.distrusted);
        assert!(o.found.iter().all(|&t| t < c.interval_s));
    }

    #[test]
    fn a_few_rotten_shards_are_found_without_distrusting_their_honest_holder() {
        let c = no_scrub(Config::new(60, 200, 3, Holder::Rot(0.02), 11));
        let o = run(&c);
        assert!(o.lost > 0);
        assert_eq!(o.unfound, 0);
        assert_eq!(o.by_audits, o.lost);
        assert!(o.distrusted.is_empty(), "{} pairs distrusted", o.distrusted.len());
        // With about 200 claims shared among a few peers and sampled four at a time by each
        // of a shard's five auditors, a lost shard waits some intervals, not one.
        let median = crate::quantile(&mut o.found.clone(), 0.5);
        assert!(median > c.interval_s, "{median}");
        // With the scrub (a pass of 200 shards at 1 MiB/s: 50 s), all are found within a
        // pass, nearly all by it (an audit may come first).
        let c = Config { scrub_rate: (1 << 20) as f64, ..c };
        let o = run(&c);
        assert_eq!(o.unfound, 0);
        assert!(o.by_audits * 5 < o.lost, "{} of {}", o.by_audits, o.lost);
        assert!(o.found.iter().all(|&t| t <= c.scrub_pass_s()));
    }

    #[test]
    fn one_that_withdraws_everything_is_found_shard_by_shard_and_then_distrusted() {
        let c = Config::new(60, 100, 3, Holder::Withdraws, 5);
        let o = run(&c);
        assert_eq!((o.unfound, o.by_audits), (0, o.lost));
        // Each withdrawal takes only 5% of the score: no auditor distrusts the holder in its
        // first interval, yet every challenge finds the shard it names.
        assert!(o.distrusted.iter().all(|&t| t > c.interval_s), "{:?}", o.distrusted);
        let median = crate::quantile(&mut o.found.clone(), 0.5);
        assert!(median > c.interval_s, "{median}");
    }

    #[test]
    fn same_seed_same_result() {
        let c = Config::new(40, 50, 2, Holder::Silent, 3);
        let (a, b) = (run(&c), run(&c));
        assert_eq!(a.found, b.found);
        assert_eq!(a.distrusted, b.distrusted);
        assert!(a.verdicts > 0);
    }
}
