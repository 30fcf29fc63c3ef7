#![allow(clippy::unwrap_used)]
use super::*;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn claim(peer: char, n: u8) -> Claim<char> {
    Claim { peer, stripe: StripeId::of(&[n]), index: n % 6 }
}

use crate::testdata::XorShift as Rng;

#[test]
fn a_sample_takes_at_most_per_peer_claims_of_each_peer_once_each() {
    let a: Audits<char> = Audits::new(AuditConfig { per_peer: 2, ..AuditConfig::default() });
    let mut candidates: Vec<Claim<char>> = (0..10).map(|n| claim('p', n)).collect();
    candidates.push(claim('q', 1));
    candidates.push(claim('q', 1));
    let mut rng = Rng(7);
    let picked = a.sample(candidates, |len| rng.below(len));
    assert_eq!(picked.iter().filter(|c| c.peer == 'p').count(), 2);
    assert_eq!(picked.iter().filter(|c| c.peer == 'q').count(), 1, "a duplicate counts once");
    let mut distinct = picked.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), picked.len());
}

#[test]
fn a_lost_shard_is_not_heard_until_forgotten_or_proven_again() {
    let mut a: Audits<char> = Audits::new(AuditConfig::default());
    let c = claim('p', 1);
    assert!(a.claim_heard(&'p', &c.stripe, s(0)));
    a.record(s(10), c.clone(), Verdict::Lost);
    assert!(!a.claim_heard(&'p', &c.stripe, s(11)), "the group rebuilds it");
    assert!(a.claim_heard(&'p', &claim('p', 2).stripe, s(11)), "its other claims stand");
    assert!(a.is_trusted(&'p', s(11)), "one loss is not distrust");
    let forget = a.config().forget_after;
    assert!(a.claim_heard(&'p', &c.stripe, s(10) + forget), "heard again once forgotten");
    a.record(s(20), c.clone(), Verdict::Lost);
    a.record(s(30), c.clone(), Verdict::Pass);
    assert!(a.claim_heard(&'p', &c.stripe, s(31)), "a pass clears it");
}

#[test]
fn repeated_losses_distrust_a_peer_and_time_restores_it() {
    let mut a: Audits<char> = Audits::new(AuditConfig::default());
    for n in 1..=3 {
        a.record(s(0), claim('p', n), Verdict::Lost);
        assert!(a.is_trusted(&'p', s(0)), "{n} losses");
    }
    a.record(s(0), claim('p', 4), Verdict::Lost);
    assert!(!a.is_trusted(&'p', s(0)), "four in a row: a wiped disk");
    assert_eq!(a.distrusted(s(0)).len(), 1);
    assert!(!a.claim_heard(&'p', &claim('p', 3).stripe, s(0)), "a distrusted peer's claims are not heard");
    let until = a.distrusted_until(&'p', s(0)).unwrap();
    assert!(!a.is_trusted(&'p', until - s(1)) && a.is_trusted(&'p', until), "trusted again at {until:?}");
    assert_eq!(a.distrusted_until(&'p', until), None);
    // Half-life of an hour: 0.24 -> above 0.3 within the hour, near 1 after a day.
    assert!(a.is_trusted(&'p', s(3600)));
    assert!(a.score(&'p', s(86_400)) > 0.99);
}

#[test]
fn a_false_proof_distrusts_at_once_and_a_timeout_only_lowers() {
    let mut a: Audits<char> = Audits::new(AuditConfig::default());
    a.record(s(0), claim('p', 1), Verdict::False);
    assert!(!a.is_trusted(&'p', s(0)));
    a.record(s(0), claim('q', 1), Verdict::Timeout);
    assert!(a.is_trusted(&'q', s(0)));
    assert!(a.score(&'q', s(0)) < 1.0);
    assert_eq!(a.count(Verdict::False), 1);
    assert_eq!(a.count(Verdict::Timeout), 1);
    assert_eq!(a.recent().count(), 2);
}

/// Under churn an honest relay often drops a surplus copy after answering `Holds`: each such
/// claim, withdrawn when challenged, is not heard for a while, and a relay that withdraws
/// one claim in two (passing the others) stays trusted however long it goes on.
#[test]
fn withdrawn_claims_are_not_heard_and_cost_little_trust() {
    let mut a: Audits<char> = Audits::new(AuditConfig::default());
    for n in 0..200u8 {
        let v = if n % 2 == 0 { Verdict::Withdrawn } else { Verdict::Pass };
        a.record(s(u64::from(n)), claim('p', n), v);
        if v == Verdict::Withdrawn {
            assert!(!a.claim_heard(&'p', &claim('p', n).stripe, s(u64::from(n) + 1)));
        }
        assert!(a.is_trusted(&'p', s(u64::from(n) + 1)), "distrusted after {n} challenges");
    }
    assert!(a.score(&'p', s(200)) > 0.6, "{}", a.score(&'p', s(200)));
}

/// A relay that claims shards it does not hold, and withdraws each claim it is challenged
/// on, is distrusted after 32 challenges: eight audit intervals of four, 40 minutes at the
/// default interval (the score recovers a little between intervals).
#[test]
fn a_relay_withdrawing_every_claim_is_distrusted() {
    let mut a: Audits<char> = Audits::new(AuditConfig::default());
    let mut at = None;
    for n in 0..40u8 {
        let now = s(300 * u64::from(n / 4));
        a.record(now, claim('p', n), Verdict::Withdrawn);
        if at.is_none() && !a.is_trusted(&'p', now) {
            at = Some(n + 1);
        }
    }
    assert!(matches!(at, Some(28..=36)), "distrusted after {at:?} withdrawals");
}

/// One challenge judged the way relays and clients judge it: the holder's proof of the
/// chunk its nonce picks passes; garbage, another shard's proof, a proof replayed from an
/// earlier challenge (another nonce) are false; "not found" withdraws; "busy" judges nothing.
#[test]
fn a_challenge_judges_answers_and_refuses_a_replayed_proof() {
    use crate::encoder::encode_single_chunk;
    use crate::proof::prove;
    use crate::testdata::pseudo_random;
    use crate::{EncodeOptions, Params};
    let opts = EncodeOptions { params: Params::new(4, 2).unwrap(), ..EncodeOptions::default() };
    let (stripe, _) = encode_single_chunk(&opts, &pseudo_random(1 << 20, 3)).unwrap();
    let holder = b"holder";
    let answer = |index: usize, chunk: usize| {
        let p = prove(stripe.shard(index), chunk);
        Response::Proof { chunk: p.chunk, siblings: p.siblings }
    };
    let first = Challenge::new(stripe.header(), stripe.id(), 2, holder, [1; 32]).unwrap();
    assert_eq!(first.judge(answer(2, first.chunk)), Ok(Verdict::Pass));
    assert_eq!(first.judge(answer(3, first.chunk)), Ok(Verdict::False), "another shard");
    let garbage = Response::Proof { chunk: vec![0; 1024], siblings: vec![[0; 32]; 8] };
    assert_eq!(first.judge(garbage), Ok(Verdict::False));
    // A later challenge whose nonce picks another chunk: the old proof does not pass.
    let later = (2u8..)
        .map(|b| Challenge::new(stripe.header(), stripe.id(), 2, holder, [b; 32]).unwrap())
        .find(|c| c.chunk != first.chunk)
        .unwrap();
    assert_eq!(later.judge(answer(2, first.chunk)), Ok(Verdict::False), "a replayed proof");
    assert_eq!(later.judge(answer(2, later.chunk)), Ok(Verdict::Pass));
    let err = |code| Response::Error { code, detail: String::new() };
    assert_eq!(first.judge(err(ErrorCode::NotFound)), Ok(Verdict::Withdrawn));
    assert_eq!(first.judge(err(ErrorCode::BadHash)), Ok(Verdict::Lost));
    assert_eq!(first.judge(Response::Accepted), Ok(Verdict::Lost));
    assert!(first.judge(err(ErrorCode::Busy)).is_err());
    assert!(Challenge::new(stripe.header(), stripe.id(), 6, holder, [1; 32]).is_none(), "no index 6");
}

#[test]
fn the_record_of_verdicts_is_bounded() {
    let mut a: Audits<char> = Audits::new(AuditConfig { recent: 8, ..AuditConfig::default() });
    for n in 0..100u8 {
        a.record(s(u64::from(n)), claim('p', n), Verdict::Pass);
    }
    assert_eq!(a.recent().count(), 8);
    assert_eq!(a.recent().next().unwrap().claim, claim('p', 92));
}

/// One auditor, audit interval of five minutes, four claims of each peer per interval, a
/// week of simulated time. Honest peers time out on 2% of challenges (busy, slow disks)
/// and are never distrusted; a peer whose disk is wiped is distrusted within two intervals;
/// a peer that silently lost a tenth of its shards is not distrusted (it holds the rest),
/// but each lost claim it is challenged on is unheard at once (and rebuilt; the peer, which
/// found the shard unreadable when asked, stops claiming it, as a relay's store does); a
/// peer that answers garbage is distrusted on its first answer.
#[test]
fn simulated_week_no_false_distrust_and_quick_detection() {
    const CLAIMS: u8 = 200;
    let interval = s(300);
    let mut a: Audits<char> = Audits::new(AuditConfig::default());
    let mut rng = Rng(0x5eed);
    // Which claims each peer lost at `LOSS_AT`.
    let loss_at = s(86_400);
    let lost = |peer: char, n: u8, now: Duration| -> bool {
        now >= loss_at
            && match peer {
                'w' => true,
                't' => n.is_multiple_of(10),
                _ => false,
            }
    };
    let (mut wiped_distrusted, mut lying_distrusted) = (None, None);
    let mut tenth_lost_unheard = 0;
    // Claims a peer stopped making: it found the shard unreadable when challenged.
    let mut dropped: std::collections::HashSet<Claim<char>> = Default::default();
    let mut now = Duration::ZERO;
    while now < s(7 * 86_400) {
        let candidates: Vec<Claim<char>> =
            ['h', 'i', 'j', 'w', 't', 'g'].iter().flat_map(|p| (0..CLAIMS).map(|n| claim(*p, n))).collect();
        let heard: Vec<Claim<char>> = candidates
            .into_iter()
            .filter(|c| !dropped.contains(c) && a.claim_heard(&c.peer, &c.stripe, now))
            .collect();
        for c in a.sample(heard, |len| rng.below(len)) {
            let n = c.stripe.as_bytes()[0];
            let n = (0..CLAIMS).find(|m| StripeId::of(&[*m]).as_bytes()[0] == n).unwrap();
            let verdict = if c.peer == 'g' && now >= loss_at {
                Verdict::False
            } else if lost(c.peer, n, now) {
                Verdict::Lost
            } else if rng.chance(0.02) {
                Verdict::Timeout
            } else {
                Verdict::Pass
            };
            if verdict == Verdict::Lost {
                dropped.insert(c.clone());
            }
            if c.peer == 't' && verdict == Verdict::Lost {
                tenth_lost_unheard += 1;
                a.record(now, c.clone(), verdict);
                assert!(!a.claim_heard(&'t', &c.stripe, now + s(1)));
                continue;
            }
            a.record(now, c, verdict);
        }
        for p in ['h', 'i', 'j', 't'] {
            assert!(a.is_trusted(&p, now), "{p} distrusted at {now:?} (score {})", a.score(&p, now));
        }
        if wiped_distrusted.is_none() && !a.is_trusted(&'w', now) {
            wiped_distrusted = Some(now);
        }
        if lying_distrusted.is_none() && !a.is_trusted(&'g', now) {
            lying_distrusted = Some(now);
        }
        a.expire(now);
        now += interval;
    }
    let wiped = wiped_distrusted.unwrap() - loss_at;
    assert!(wiped <= interval * 2, "the wiped peer was distrusted {wiped:?} after the loss");
    assert_eq!(lying_distrusted, Some(loss_at), "garbage is distrusted at its first answer");
    assert!(tenth_lost_unheard > 0, "lost claims of the partly lossy peer were found");
    assert!(a.count(Verdict::False) > 0);
}

/// A report is taken only for a claim the relay relies on, once per claim per cool-down,
/// and never more than the queue holds; taken reports are handed out once.
#[test]
fn reports_are_bounded_and_taken_once_per_cooldown() {
    let mut r: Reports<char> = Reports::new(2, s(60));
    assert_eq!(r.offer(claim('p', 1), false, s(0)), Reported::NotReliedOn);
    assert_eq!(r.offer(claim('p', 1), true, s(0)), Reported::Accepted);
    assert_eq!(r.offer(claim('p', 1), true, s(1)), Reported::TooSoon);
    assert_eq!(r.offer(claim('p', 2), true, s(1)), Reported::Accepted);
    assert_eq!(r.offer(claim('p', 3), true, s(1)), Reported::Full);
    assert_eq!(r.take(s(2)), vec![claim('p', 1), claim('p', 2)]);
    assert!(r.take(s(2)).is_empty());
    assert_eq!(r.offer(claim('p', 1), true, s(30)), Reported::TooSoon);
    assert_eq!(r.offer(claim('p', 1), true, s(61)), Reported::Accepted);
    r.take(s(200));
    assert!(r.taken.is_empty(), "old entries are forgotten");
}

#[test]
fn a_burst_of_timeouts_is_one_outage_and_steady_silence_still_distrusts() {
    let mut a: Audits<char> = Audits::new(AuditConfig::default());
    // A relay restarted: forty challenges in half a minute go unanswered. Four count.
    for i in 0..40u64 {
        a.record(Duration::from_millis(750 * i), claim('r', (i % 8) as u8), Verdict::Timeout);
    }
    let after = a.score(&'r', s(30));
    assert!((after - 0.9f64.powi(4)).abs() < 0.01, "{after}");
    assert!(a.is_trusted(&'r', s(30)));
    assert_eq!(a.count(Verdict::Timeout), 40);
    // A relay that never answers: four challenges every minute, each window counting in full,
    // is distrusted within a few minutes despite the score's recovery.
    let mut t = s(0);
    while a.is_trusted(&'q', t) {
        for c in 0..4u8 {
            a.record(t, claim('q', c), Verdict::Timeout);
        }
        t += TIMEOUT_WINDOW;
        assert!(t < s(1200), "a silent relay stays trusted");
    }
    a.expire(t + TIMEOUT_WINDOW);
}
