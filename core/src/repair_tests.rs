#![allow(clippy::unwrap_used)]
use super::*;
#[cfg(not(target_arch = "wasm32"))]
use proptest::prelude::*;

const N6: [u8; 6] = [0, 1, 2, 3, 4, 5];

fn s(x: u64) -> Duration {
    Duration::from_secs(x)
}

fn holders(v: &[(char, &[u8])]) -> Vec<(char, Vec<u8>)> {
    v.iter().map(|(p, i)| (*p, i.to_vec())).collect()
}

#[test]
fn a_complete_group_needs_nothing() {
    let h = holders(&[('a', &[0]), ('b', &[1]), ('c', &[2]), ('d', &[3]), ('e', &[4]), ('f', &[5])]);
    let p = plan_group(&N6, 4, &['a', 'b', 'c', 'd', 'e', 'f'], &h);
    assert!(p.moves.is_empty() && p.drops.is_empty() && !p.lost);
    assert_eq!((p.live, p.in_group), (6, 6));
    assert!(p.is_complete(6));
}

#[test]
fn a_dead_member_is_rebuilt_by_the_relay_that_joins_the_group() {
    // 'c' (index 2) died; 'g' is now the sixth closest and holds nothing.
    let h = holders(&[('a', &[0]), ('b', &[1]), ('d', &[3]), ('e', &[4]), ('f', &[5])]);
    let p = plan_group(&N6, 4, &['a', 'b', 'd', 'e', 'f', 'g'], &h);
    assert_eq!(p.moves, vec![Move::Rebuild { index: 2, at: 'g', coordinator: 'a' }]);
    assert_eq!((p.live, p.in_group), (5, 5));
    assert!(p.drops.is_empty());
}

#[test]
fn a_closer_relay_gets_the_shard_of_the_member_that_falls_out_which_then_drops_it() {
    // 'z' joined closer than everyone: 'f' (index 5) falls out of the group.
    let group = ['z', 'a', 'b', 'c', 'd', 'e'];
    let h = holders(&[('a', &[0]), ('b', &[1]), ('c', &[2]), ('d', &[3]), ('e', &[4]), ('f', &[5])]);
    let p = plan_group(&N6, 4, &group, &h);
    assert_eq!(p.moves, vec![Move::Handover { index: 5, from: 'f', to: 'z' }]);
    assert!(p.drops.is_empty(), "nothing is dropped before the new member holds it");
    assert_eq!(p.live, 6, "no redundancy lost while moving");
    // Once 'z' holds it, 'f' may drop its copy.
    let mut h2 = h.clone();
    h2.insert(0, ('z', vec![5]));
    let p = plan_group(&N6, 4, &group, &h2);
    assert!(p.moves.is_empty());
    assert_eq!(p.drops, vec![('f', 5)]);
}

#[test]
fn fewer_than_k_live_shards_is_lost_and_nothing_is_attempted() {
    let h = holders(&[('a', &[0]), ('b', &[1]), ('c', &[2])]);
    let p = plan_group(&N6, 4, &['a', 'b', 'c', 'x', 'y', 'z'], &h);
    assert!(p.lost);
    assert!(p.moves.is_empty());
}

#[test]
fn with_fewer_relays_than_shards_no_relay_gets_a_second_shard() {
    let h = holders(&[('a', &[0]), ('b', &[1]), ('c', &[2]), ('d', &[3])]);
    let p = plan_group(&N6, 4, &['a', 'b', 'c', 'd', 'e'], &h);
    assert_eq!(p.moves, vec![Move::Rebuild { index: 4, at: 'e', coordinator: 'a' }]);
}

#[test]
fn a_relay_holding_two_shards_keeps_one_and_hands_the_other_over() {
    let h = holders(&[('a', &[0, 1]), ('c', &[2]), ('d', &[3]), ('e', &[4]), ('f', &[5])]);
    let p = plan_group(&N6, 4, &['a', 'b', 'c', 'd', 'e', 'f'], &h);
    assert_eq!(p.kept[0], ('a', 0));
    assert_eq!(p.moves, vec![Move::Handover { index: 1, from: 'a', to: 'b' }]);
}

#[test]
fn identical_shards_fill_any_of_their_slots() {
    // Indices 1, 2 and 3 are the same zero-padding shard: it reports as index 1.
    let slots = [0, 1, 1, 1, 4, 5];
    let h = holders(&[('a', &[0]), ('b', &[1]), ('c', &[1]), ('e', &[4]), ('f', &[5])]);
    let p = plan_group(&slots, 4, &['a', 'b', 'c', 'd', 'e', 'f'], &h);
    assert_eq!(p.live, 5);
    assert_eq!(p.moves, vec![Move::Rebuild { index: 1, at: 'd', coordinator: 'a' }]);
    let h =
        holders(&[('a', &[0]), ('b', &[1]), ('c', &[1]), ('d', &[1]), ('e', &[4]), ('f', &[5]), ('g', &[1])]);
    let p = plan_group(&slots, 4, &['a', 'b', 'c', 'd', 'e', 'f'], &h);
    assert!(p.moves.is_empty());
    assert_eq!(p.drops, vec![('g', 1)]);
}

#[test]
fn liveness_waits_a_grace_period_before_declaring_a_relay_dead() {
    let mut l = Liveness::new(s(10));
    l.connected('a', s(0));
    l.connected('b', s(0));
    assert!(l.disconnected(&'a', s(0)), "dial it to check");
    assert!(!l.disconnected(&'a', s(1)), "already suspect");
    assert!(!l.unreachable(&'a', s(2)), "a failed dial within the grace period: still suspect");
    assert!(l.is_live(&'a'), "suspect relays count until the grace period ends");
    assert_eq!(l.suspects(), vec!['a']);
    // It restarts and connects again within the grace period: nothing happened.
    l.connected('a', s(0));
    assert!(l.suspects().is_empty());
    assert_eq!(l.live(), vec!['a', 'b']);
    // This time it stays away.
    assert!(!l.unreachable(&'a', s(20)));
    assert!(l.unreachable(&'a', s(30)), "dead after 10 s unreachable");
    assert_eq!(l.live(), vec!['b']);
    l.disconnected(&'b', s(20));
    assert!(l.expire(s(29)).is_empty());
    assert_eq!(l.expire(s(30)), vec!['b'], "dead after the grace period even with no dial failure");
    assert!(l.live().is_empty());
    assert!(!l.is_live(&'z'));
    let mut now = Liveness::new(Duration::ZERO);
    now.connected('c', s(0));
    assert!(now.unreachable(&'c', s(0)), "no grace period: dead at once");
}

/// A relay known for a week and reachable nine tenths of it is waited for the long grace;
/// one away too often, or new, for the base grace; the record is this relay's own and
/// counts the time each was connected.
#[test]
fn relays_that_keep_coming_back_are_waited_for_longer() {
    let (hour, day) = (s(3600), s(86_400));
    let mut l = Liveness::new(2 * hour).with_long_grace(24 * hour);
    l.connected('a', Duration::ZERO);
    l.connected('b', Duration::ZERO);
    // 'b' is away for a day in its first eight (7 of 8 days up: 87.5%).
    l.disconnected(&'b', day);
    l.connected('b', 2 * day);
    l.connected('c', 7 * day + 12 * hour);
    let now = 8 * day;
    assert_eq!(l.grace_of(&'a', now), 24 * hour, "a week known, always up");
    assert_eq!(l.grace_of(&'b', now), 2 * hour, "away an eighth of the time");
    assert_eq!(l.grace_of(&'c', now), 2 * hour, "known half a day");
    assert_eq!(l.grace_of(&'z', now), 2 * hour, "never seen");
    for p in ['a', 'b', 'c'] {
        assert!(l.disconnected(&p, now));
    }
    assert_eq!(l.expire(now + 2 * hour), vec!['b', 'c'], "the base grace for the unproven");
    assert!(l.is_live(&'a'));
    assert!(!l.unreachable(&'a', now + 20 * hour), "still within its day");
    // Its grace is judged on its record when it went away: the absence does not shorten it
    // (by now its share of time up would be 89%).
    assert_eq!(l.grace_of(&'a', now + 23 * hour), 24 * hour);
    assert!(l.unreachable(&'a', now + 24 * hour), "dead after its day");
    // Without a long grace every relay gets the base one.
    let mut plain = Liveness::new(2 * hour);
    plain.connected('a', Duration::ZERO);
    assert_eq!(plain.grace_of(&'a', 30 * day), 2 * hour);
    // The rule alone.
    assert_eq!(grace_for(2 * hour, 24 * hour, 7 * day, s(7 * 86_400 * 9 / 10)), 24 * hour);
    assert_eq!(grace_for(2 * hour, 24 * hour, 7 * day - s(1), 7 * day), 2 * hour, "known under a week");
    assert_eq!(grace_for(48 * hour, 24 * hour, 30 * day, 30 * day), 48 * hour, "never shorter than the base");
}

/// A relay's records survive its restart: kept, then restored in a new run whose clock
/// starts again at zero, they go on from where they stood, and the time the relay itself was
/// down counts for nobody.
#[test]
fn records_are_kept_across_a_restart() {
    let (hour, day) = (s(3600), s(86_400));
    let mut l = Liveness::new(2 * hour).with_long_grace(24 * hour);
    l.connected('a', Duration::ZERO);
    l.connected('b', 6 * day);
    let kept = l.kept(8 * day, 10);
    assert_eq!(kept[0], ('a', KeptRecord { known: 8 * 86_400, up: 8 * 86_400 }), "longest known first");
    assert_eq!(kept.len(), 2);
    assert_eq!(l.kept(8 * day, 1).len(), 1, "at most max");
    // The next run, after a day down: 'a' is still a week known and always up.
    let mut next = Liveness::new(2 * hour).with_long_grace(24 * hour);
    next.restore(kept.clone(), Duration::ZERO);
    next.connected('a', s(60));
    next.connected('b', s(60));
    assert_eq!(next.grace_of(&'a', hour), 24 * hour);
    assert_eq!(next.grace_of(&'b', hour), 2 * hour, "known two days");
    assert!(next.disconnected(&'a', hour));
    assert!(next.expire(hour + 20 * hour).is_empty(), "'a' is waited for its day");
    // Without the kept records, the same run would give 'a' the base grace.
    let mut fresh = Liveness::new(2 * hour).with_long_grace(24 * hour);
    fresh.connected('a', s(60));
    assert_eq!(fresh.grace_of(&'a', hour), 2 * hour);
    // A kept record claiming more time up than known is cut; one this run holds stays.
    let mut odd = Liveness::new(2 * hour).with_long_grace(24 * hour);
    odd.connected('a', Duration::ZERO);
    odd.restore([('a', KeptRecord { known: 30 * 86_400, up: 30 * 86_400 })], Duration::ZERO);
    odd.restore([('c', KeptRecord { known: 8 * 86_400, up: 80 * 86_400 })], Duration::ZERO);
    assert_eq!(odd.grace_of(&'a', hour), 2 * hour, "this run's record stays");
    assert_eq!(odd.kept(Duration::ZERO, 10)[0], ('c', KeptRecord { known: 8 * 86_400, up: 8 * 86_400 }));
}

fn job(stripe: u8, live: usize, cost: u64) -> RebuildJob<char> {
    RebuildJob {
        stripe: StripeId::from_bytes([stripe; 32]),
        header: Vec::new(),
        index: 0,
        holders: vec![],
        live,
        cost,
        by: 'x',
    }
}

#[test]
fn a_distrusted_relay_is_not_taken_as_a_relay_for_a_while() {
    let mut l = Liveness::new(s(10));
    l.connected('a', s(0));
    l.connected('b', s(0));
    l.distrust('a', s(65));
    assert!(l.is_banned(&'a') && !l.is_live(&'a'));
    assert_eq!(l.live(), vec!['b']);
    l.connected('a', s(0));
    assert!(!l.is_live(&'a'), "connecting again does not lift a ban");
    assert!(l.expire(s(64)).is_empty());
    assert!(l.is_banned(&'a'));
    l.expire(s(65));
    assert!(!l.is_banned(&'a'), "the ban runs out");
    l.connected('a', s(0));
    assert!(l.is_live(&'a'), "and then it counts once connected");
}

#[test]
fn one_relay_cannot_fill_the_repair_queue() {
    let mut q = RepairQueue::new(1, 100, 1000, 1000).with_max_per_sender(2);
    let by = |stripe: u8, by: char| RebuildJob { by, ..job(stripe, 3, 10) };
    q.push(by(1, 'm'), s(0)).unwrap();
    q.push(by(2, 'm'), s(0)).unwrap();
    assert_eq!(q.push(by(3, 'm'), s(0)), Err(QueueError::SenderFull(2)));
    q.push(by(2, 'm'), s(1)).unwrap(); // the same stripe again replaces its order
    q.push(by(3, 'h'), s(1)).unwrap();
    assert_eq!(q.waiting(), 3, "another relay's orders still get in");
}

#[test]
fn queue_starts_stripes_closest_to_loss_first_within_limits() {
    let mut q = RepairQueue::new(2, 3, 1000, 1000);
    q.push(job(1, 5, 100), s(0)).unwrap();
    q.push(job(2, 4, 100), s(1)).unwrap();
    q.push(job(3, 5, 100), s(2)).unwrap();
    q.push(job(2, 4, 100), s(2)).unwrap(); // same stripe: not queued twice
    assert_eq!(q.push(job(4, 5, 100), s(3)), Err(QueueError::Full(3)));
    assert_eq!(q.oldest_wait(s(10)), s(10));
    let started: Vec<u8> = q.poll(s(3)).iter().map(|j| j.stripe.as_bytes()[0]).collect();
    assert_eq!(started, vec![2, 1], "fewest live first, then oldest");
    assert_eq!((q.running(), q.waiting()), (2, 1));
    assert!(q.poll(s(3)).is_empty(), "two at once");
    q.push(job(1, 5, 100), s(3)).unwrap(); // running: ignored
    assert_eq!(q.waiting(), 1);
    q.finished(&StripeId::from_bytes([1; 32]));
    assert_eq!(q.poll(s(3)).len(), 1);
}

#[test]
fn queue_keeps_to_its_byte_rate() {
    // 1000 bytes per second, each job 600: over 10 simulated seconds about 17 jobs start.
    let mut q = RepairQueue::new(100, 1000, 1000, 1000);
    for i in 0..100 {
        q.push(job(i, 5, 600), s(0)).unwrap();
    }
    let mut started = 0;
    let mut t = Duration::ZERO;
    while t <= s(10) {
        for j in q.poll(t) {
            started += 1;
            q.finished(&j.stripe);
        }
        t += Duration::from_millis(100);
    }
    assert!((16..=19).contains(&started), "{started} jobs in 10 s at 1000 B/s of 600 B jobs");
    let next = q.next_start().unwrap();
    assert!(next > s(10) && next < s(11), "{next:?}");
}

// proptest is a native-only dev-dependency; the simulation runs natively.
/// A whole network in simulated time: relays with positions on a line (distance = |a-b|),
/// stripes at positions, each live holder running the plan from the true view and executing
/// its own part each round.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone)]
struct Sim {
    /// Relay id -> alive.
    alive: Vec<bool>,
    /// (relay, stripe) -> indices held.
    held: BTreeMap<(usize, usize), Vec<u8>>,
    stripes: Vec<u64>,
    pos: Vec<u64>,
}

#[cfg(not(target_arch = "wasm32"))]
impl Sim {
    /// Ten of the relays at `pos` alive (the rest join later), each stripe's shards on its
    /// six closest.
    fn new(pos: Vec<u64>, stripes: Vec<u64>) -> Self {
        let mut alive = vec![true; 10];
        alive.resize(pos.len(), false);
        let mut sim = Sim { alive, held: BTreeMap::new(), stripes, pos };
        for st in 0..sim.stripes.len() {
            for (i, r) in sim.group(st, 6).into_iter().enumerate() {
                sim.held.insert((r, st), vec![i as u8]);
            }
        }
        sim
    }

    /// Relay `r` joins, or leaves if more than six stay alive.
    fn churn(&mut self, join: bool, r: usize) {
        if join {
            self.alive[r] = true;
        } else if self.alive.iter().filter(|a| **a).count() > 6 {
            self.alive[r] = false;
        }
    }

    fn group(&self, stripe: usize, n: usize) -> Vec<usize> {
        let mut live: Vec<usize> = (0..self.alive.len()).filter(|&r| self.alive[r]).collect();
        live.sort_by_key(|&r| (self.pos[r].abs_diff(self.stripes[stripe]), r));
        live.truncate(n);
        live
    }

    fn holders(&self, stripe: usize) -> Vec<(usize, Vec<u8>)> {
        let mut v: Vec<(usize, Vec<u8>)> = self
            .held
            .iter()
            .filter(|((r, st), idx)| *st == stripe && self.alive[*r] && !idx.is_empty())
            .map(|((r, _), idx)| (*r, idx.clone()))
            .collect();
        v.sort_by_key(|(r, _)| (self.pos[*r].abs_diff(self.stripes[stripe]), *r));
        v
    }

    fn round(&mut self) {
        for st in 0..self.stripes.len() {
            let group = self.group(st, 6);
            let holders = self.holders(st);
            let plan = plan_group(&N6, 4, &group, &holders);
            for m in plan.moves {
                let (index, to) = match m {
                    Move::Handover { index, to, .. } | Move::Rebuild { index, at: to, .. } => (index, to),
                };
                let e = self.held.entry((to, st)).or_default();
                if e.is_empty() {
                    e.push(index);
                }
            }
            for (r, i) in plan.drops {
                if let Some(v) = self.held.get_mut(&(r, st)) {
                    v.retain(|&x| x != i);
                }
            }
        }
    }

    fn converged(&self, st: usize) -> bool {
        let group = self.group(st, 6);
        let mut idx: Vec<u8> = Vec::new();
        for r in &group {
            match self.held.get(&(*r, st)).map(Vec::as_slice) {
                Some([i]) => idx.push(*i),
                _ => return false,
            }
        }
        idx.sort_unstable();
        idx == N6 && self.holders(st).len() == 6
    }
}

#[cfg(not(target_arch = "wasm32"))]
proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever relays die or join (at most m = 2 of a group at once between rounds), every
    /// stripe converges to 6 distinct shards on its 6 closest live relays, never two shards
    /// on one relay, and never fewer than 4 live slots.
    #[test]
    fn groups_converge_under_churn(
        pos in proptest::collection::vec(0u64..1000, 14),
        stripes in proptest::collection::vec(0u64..1000, 1..8),
        events in proptest::collection::vec((any::<bool>(), 0usize..14), 1..12),
    ) {
        let mut sim = Sim::new(pos, stripes);
        for (join, r) in events {
            sim.churn(join, r);
            // Two rounds between events: one to move, one to drop surplus.
            for _ in 0..3 {
                sim.round();
                for st in 0..sim.stripes.len() {
                    let p = plan_group(&N6, 4, &sim.group(st, 6), &sim.holders(st));
                    prop_assert!(p.live >= 4, "stripe {} fell to {} live", st, p.live);
                }
            }
            for ((_, _), idx) in &sim.held {
                prop_assert!(idx.len() <= 1, "a relay holds two shards of one stripe");
            }
            for st in 0..sim.stripes.len() {
                prop_assert!(sim.converged(st), "stripe {} not converged: {:?}", st, sim.holders(st));
            }
        }
    }
}

#[test]
fn a_drop_needs_a_witness_for_every_class_not_only_the_group() {
    // The churn case: 'c' is in the group but holds the same index as 'g' (closer), so the
    // group keeps five classes and class 2 sits with 'e' outside it. 'c' may drop its 3 once
    // every class, 2 included, is proven by someone else.
    let slots: Vec<u8> = (0..6).collect();
    let kept = vec![('a', 0), ('b', 1), ('g', 3), ('d', 4), ('f', 5)];
    let holders = vec![
        ('a', vec![0]),
        ('b', vec![1]),
        ('g', vec![3]),
        ('c', vec![3]),
        ('d', vec![4]),
        ('f', vec![5]),
        ('e', vec![2]),
    ];
    let w = drop_witnesses(&slots, &'c', 3, &kept, &holders).unwrap();
    assert_eq!(w, vec![('a', 0), ('b', 1), ('e', 2), ('g', 3), ('d', 4), ('f', 5)]);
    // Nobody holds class 2: it needs no witness (it is rebuilt once 'c' has room for it),
    // every class that is held does.
    let alone: Vec<(char, Vec<u8>)> = holders.iter().filter(|(p, _)| *p != 'e').cloned().collect();
    assert_eq!(
        drop_witnesses(&slots, &'c', 3, &kept, &alone),
        Some(vec![('a', 0), ('b', 1), ('g', 3), ('d', 4), ('f', 5)])
    );
    // Nobody else holds the class dropped: the copy is not surplus.
    let sole: Vec<(char, Vec<u8>)> = alone.iter().filter(|(p, _)| *p != 'g').cloned().collect();
    assert_eq!(drop_witnesses(&slots, &'c', 3, &[], &sole), None);
    // Its own other index stands for its class; the one dropped never does.
    let own = vec![('a', vec![0, 1]), ('b', vec![1])];
    assert_eq!(drop_witnesses(&[0, 1], &'a', 1, &[], &own), Some(vec![('a', 0), ('b', 1)]));
    assert_eq!(drop_witnesses(&[0, 1], &'a', 0, &[], &own), None, "class 0 only by the copy dropped");
}

/// What one relay sees in a round of [`Sim::round_by_views`]: whom it takes for alive, and
/// whose answers it got.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone, Copy)]
struct Imperfect {
    /// Out of 256: the chance that a relay's `Holds` answer to another is lost this round.
    lost: u8,
    /// Out of 256: the chance that a live relay is missing from another's view, or a dead
    /// one still in it (stale liveness; a dead relay never answers).
    unseen: u8,
    seed: u64,
}

#[cfg(not(target_arch = "wasm32"))]
impl Imperfect {
    const PERFECT: Imperfect = Imperfect { lost: 0, unseen: 0, seed: 0 };

    fn roll(&self, salt: u64, a: usize, b: usize, st: usize) -> u8 {
        let mut x = self.seed ^ salt ^ ((a as u64) << 40) ^ ((b as u64) << 20) ^ st as u64;
        x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^= x >> 29;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        (x >> 56) as u8
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Sim {
    /// `viewer`'s view of stripe `st`: every relay it takes for alive (itself included) by
    /// distance, and the ones whose answers it did not get.
    fn view(&self, viewer: usize, st: usize, how: &Imperfect, round: u64) -> (Vec<usize>, Vec<usize>) {
        let stale = |r: usize| how.roll(round, viewer, r, usize::MAX) < how.unseen;
        let mut seen: Vec<usize> =
            (0..self.alive.len()).filter(|&r| r == viewer || self.alive[r] != stale(r)).collect();
        seen.sort_by_key(|&r| (self.pos[r].abs_diff(self.stripes[st]), r));
        let silent = seen
            .iter()
            .copied()
            .filter(|&r| r != viewer && (!self.alive[r] || how.roll(round ^ 1, viewer, r, st) < how.lost))
            .collect();
        (seen, silent)
    }

    fn stripe_of(&self, r: usize, st: usize) -> HeldStripe {
        HeldStripe {
            id: StripeId::of(&(st as u64).to_le_bytes()),
            mine: self.held.get(&(r, st)).cloned().unwrap_or_default(),
            slots: N6.to_vec(),
            k: 4,
            doubted: false,
        }
    }

    /// `r`'s own round for stripe `st`, from its own view.
    fn plan_by(&self, r: usize, st: usize, how: &Imperfect, round: u64) -> StripeRound<usize> {
        let (seen, silent) = self.view(r, st, how, round);
        let claims = |p: &usize| self.held.get(&(*p, st)).filter(|v| !v.is_empty()).cloned();
        plan_stripe_round(&r, &self.stripe_of(r, st), seen, &silent, &[], claims, 64)
    }

    /// A round in which every live relay plans each stripe from its own (imperfect) view and
    /// executes its part: handovers land, orders are followed only if the receiver's own
    /// plan agrees, drops happen only if every witness really holds what it claims (a
    /// proof of possession).
    fn round_by_views(&mut self, how: &Imperfect, round: u64) {
        for st in 0..self.stripes.len() {
            for r in 0..self.alive.len() {
                if !self.alive[r] {
                    continue;
                }
                for a in self.plan_by(r, st, how, round).actions.into_iter().map(|(_, a)| a) {
                    match a {
                        RoundAction::Handover { index, to, .. } => {
                            let e = self.held.entry((to, st)).or_default();
                            if self.alive[to] && e.is_empty() {
                                e.push(index);
                            }
                        }
                        RoundAction::Order { index, at, .. } => {
                            let theirs = self.plan_by(at, st, how, round).plan;
                            let agrees = self.alive[at]
                                && self.held.get(&(at, st)).is_none_or(Vec::is_empty)
                                && theirs.moves.iter().any(
                                    |m| matches!(m, Move::Rebuild { index: i, at: a, .. } if *i == index && *a == at),
                                );
                            if agrees {
                                self.held.insert((at, st), vec![index]);
                                // The rest of the stripe's lost shards, rebuilt with it.
                                for (i, to) in theirs.rebuilt_with(&N6, &at, index) {
                                    let e = self.held.entry((to, st)).or_default();
                                    if self.alive[to] && e.is_empty() {
                                        e.push(i);
                                    }
                                }
                            }
                        }
                        RoundAction::Drop { index, witnesses, .. } => {
                            let proven = witnesses.iter().all(|(w, i)| {
                                *w == r
                                    || (self.alive[*w]
                                        && self.held.get(&(*w, st)).is_some_and(|v| v.contains(i)))
                            });
                            if proven {
                                if let Some(v) = self.held.get_mut(&(r, st)) {
                                    v.retain(|&x| x != index);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Distinct slots held by live relays.
    fn live_slots(&self, st: usize) -> usize {
        let mut idx: Vec<u8> = self.holders(st).into_iter().flat_map(|(_, v)| v).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.len()
    }
}

#[cfg(not(target_arch = "wasm32"))]
proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Every relay runs kura-core's round rules from its own view, and the views are wrong:
    /// `Holds` answers lost, live relays missing from views and dead ones still in them
    /// (stale liveness), so relays disagree on who is in a group. No stripe ever falls below
    /// k = 4 live slots, no relay ever holds two shards of a stripe, and once the views are
    /// right again every stripe converges to 6 distinct shards on its 6 closest live relays.
    #[test]
    fn rounds_from_imperfect_views_lose_nothing_and_converge_once_views_agree(
        pos in proptest::collection::vec(0u64..1000, 14),
        stripes in proptest::collection::vec(0u64..1000, 1..6),
        events in proptest::collection::vec((any::<bool>(), 0usize..14), 1..8),
        lost in 0u8..100,
        unseen in 0u8..60,
        seed in any::<u64>(),
    ) {
        let mut sim = Sim::new(pos, stripes);
        let how = Imperfect { lost, unseen, seed };
        let mut round = 0u64;
        for (join, r) in events {
            sim.churn(join, r);
            for _ in 0..3 {
                round += 1;
                sim.round_by_views(&how, round);
                for st in 0..sim.stripes.len() {
                    prop_assert!(sim.live_slots(st) >= 4, "stripe {} fell to {} live slots", st, sim.live_slots(st));
                }
                for ((_, _), idx) in &sim.held {
                    prop_assert!(idx.len() <= 1, "a relay holds two shards of one stripe");
                }
            }
            // Views agree again: the network settles.
            for _ in 0..4 {
                round += 1;
                sim.round_by_views(&Imperfect::PERFECT, round);
            }
            for st in 0..sim.stripes.len() {
                prop_assert!(sim.converged(st), "stripe {} not converged: {:?}", st, sim.holders(st));
            }
        }
    }
}

/// The round's rules: only this relay's part, nothing moves while a suspect member is
/// waited for (more than k live), closest to loss first, at most the cap, audits sampled.
#[test]
fn a_round_keeps_its_part_waits_for_suspects_and_puts_loss_first() {
    let stripe = |mine: &[u8]| HeldStripe {
        id: StripeId::of(b"s"),
        mine: mine.to_vec(),
        slots: N6.to_vec(),
        k: 4,
        doubted: false,
    };
    let claims = |p: &char| match p {
        'a' => Some(vec![0]),
        'b' => Some(vec![1]),
        'c' => Some(vec![2]),
        'd' => Some(vec![3]),
        'e' => Some(vec![4]),
        _ => None,
    };
    // 'f' lost its shard 5; 'a' (closest keeper) coordinates its rebuild at 'f'.
    let order: Vec<char> = "abcdef".chars().collect();
    let r = plan_stripe_round(&'a', &stripe(&[0]), order.clone(), &[], &[], claims, 64);
    assert!(matches!(&r.actions[..], [(5, RoundAction::Order { index: 5, at: 'f', .. })]), "{:?}", r.actions);
    assert_eq!(r.audits.len(), 4, "the other keepers' claims may be audited");
    // 'b' sees the same plan and does nothing: not its part.
    let r = plan_stripe_round(&'b', &stripe(&[1]), order.clone(), &[], &[], claims, 64);
    assert!(r.actions.is_empty());
    // Unless its own audits failed a claim on the stripe lately: then it orders too (the
    // coordinator may still hear the claim).
    let doubted = HeldStripe { doubted: true, ..stripe(&[1]) };
    let r = plan_stripe_round(&'b', &doubted, order.clone(), &[], &[], claims, 64);
    assert!(matches!(&r.actions[..], [(5, RoundAction::Order { index: 5, at: 'f', .. })]), "{:?}", r.actions);
    // 'f' is suspect (unreachable lately): with 5 live slots > k, nothing moves yet.
    let r = plan_stripe_round(&'a', &stripe(&[0]), order, &[], &['f'], claims, 64);
    assert!(r.waiting && r.actions.is_empty());

    let id = StripeId::of(b"t");
    let moves = vec![
        (6, RoundAction::Handover { stripe: id, index: 1, to: 'x' }),
        (4, RoundAction::Handover { stripe: id, index: 2, to: 'y' }),
        (5, RoundAction::Handover { stripe: id, index: 3, to: 'z' }),
    ];
    let out = schedule_round(moves, 2);
    assert_eq!(
        out,
        vec![
            RoundAction::Handover { stripe: id, index: 2, to: 'y' },
            RoundAction::Handover { stripe: id, index: 3, to: 'z' },
        ]
    );
}

/// Lost shards wait for a third of the parity (at least one), then one member rebuilds
/// them all: a single order per stripe, and the member ordered hands the others over.
#[test]
fn wide_stripes_wait_for_losses_and_rebuild_them_together() {
    assert_eq!(
        [(4, 6), (6, 12), (10, 20), (16, 32), (1, 2)].map(|(k, n)| rebuild_after(k, n)),
        [1, 2, 3, 5, 1]
    );
    // A 6+6 stripe on members 'a'..='l' (index i at the i-th); 'm', 'n', 'o' beyond.
    let slots: Vec<u8> = (0..12).collect();
    let members: Vec<char> = "abcdefghijklmno".chars().collect();
    let stripe =
        HeldStripe { id: StripeId::of(b"w"), mine: vec![0], slots: slots.clone(), k: 6, doubted: false };
    let lost_at = |gone: &[char]| {
        let order: Vec<char> = members.iter().copied().filter(|p| !gone.contains(p)).collect();
        let members = &members;
        let claims = move |p: &char| {
            let i = members.iter().position(|q| q == p)?;
            (i < 12 && !gone.contains(p)).then(|| vec![i as u8])
        };
        plan_stripe_round(&'a', &stripe, order, &[], &[], claims, 64)
    };
    // One lost: planned, but not yet ordered.
    let r = lost_at(&['c']);
    assert_eq!(r.plan.moves, vec![Move::Rebuild { index: 2, at: 'm', coordinator: 'a' }]);
    assert!(!r.plan.rebuilds_due(6, 12) && r.actions.is_empty(), "{:?}", r.actions);
    // Two lost: one order, to the first member to rebuild; it rebuilds the other too.
    let r = lost_at(&['c', 'f']);
    assert!(r.plan.rebuilds_due(6, 12));
    assert_eq!(r.actions.len(), 1, "{:?}", r.actions);
    assert!(
        matches!(&r.actions[0], (10, RoundAction::Order { index: 2, at: 'm', live: 10, .. })),
        "{:?}",
        r.actions
    );
    assert_eq!(r.plan.rebuilt_with(&slots, &'m', 2), vec![(5, 'n')]);
    // Should 'm' refuse as busy, the order goes to the next member to rebuild.
    assert!(matches!(&r.actions[0].1, RoundAction::Order { instead, .. } if instead == &vec![(5, 'n')]));
    // Another member asked (views differ) hands over all but its own.
    assert_eq!(r.plan.rebuilt_with(&slots, &'n', 5), vec![(2, 'm')]);
    // A 4+2 stripe is rebuilt at its first loss, as before.
    let small = HeldStripe { slots: N6.to_vec(), k: 4, ..stripe.clone() };
    let claims = |p: &char| "abdef".find(*p).map(|_| vec![(*p as u8 - b'a')]);
    let r = plan_stripe_round(&'a', &small, "abdefg".chars().collect(), &[], &[], claims, 64);
    assert!(matches!(&r.actions[..], [(5, RoundAction::Order { index: 2, at: 'g', .. })]), "{:?}", r.actions);
}
