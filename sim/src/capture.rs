//! Close groups under an adversary. A stripe's shards go to the `n` relays closest to its
//! key and an account's ledger replicas are the 16 closest to it; an adversary holding
//! enough of one group can lose a stripe (more than `m` of its `n` shards, dropped) or break
//! the ledger's safety for an account (more than `f = 5` of 16 replicas). With ids that are
//! random (the SHA-256 of a fresh key) the adversary's share of any group follows the
//! binomial law of its share of relays; with ids it **grinds** (makes keys until one lands
//! near a chosen target) it needs only as many relays as the group has seats, and the work
//! to grind them is measured here with real ed25519 keys.

use crate::population::{key_of_public, peer_id_of_public, random_key, Population};
use kura_core::placement::DhtKey;
use kura_core::testdata::XorShift;

/// A group an adversary may try to capture: its size, and how many seats capture it.
#[derive(Debug, Clone, Copy)]
pub struct Group {
    pub name: &'static str,
    pub size: usize,
    pub seats: usize,
}

/// The groups Kura has: a stripe of `k = 4, m = 2` (three shards dropped lose it; all six
/// held is the whole group), an account's ledger replicas (six of sixteen break safety);
/// and wider stripes for comparison (`m + 1` of `k + m` lose them).
pub const GROUPS: [Group; 6] = [
    Group { name: "stripe 4+2: 3 of 6 shards (lost if dropped)", size: 6, seats: 3 },
    Group { name: "stripe 4+2: all 6 shards", size: 6, seats: 6 },
    Group { name: "ledger: 12 of 32 replicas (> f)", size: 32, seats: 12 },
    Group { name: "stripe 8+4: 5 of 12 shards", size: 12, seats: 5 },
    Group { name: "stripe 10+10: 11 of 20 shards", size: 20, seats: 11 },
    Group { name: "stripe 6+6: 7 of 12 shards", size: 12, seats: 7 },
];

/// Relays a Kademlia lookup finds: a bucket's worth.
pub const LOOKUP_FINDS: usize = 20;

/// The stripe width a put on `p` takes, as `kura put` and the page choose it
/// (`kura_client::transfer::stripe_width`): the median of three estimates of the network's
/// size (`kura_core::placement::network_size`), each from the relays a lookup for a random
/// key finds (the closest [`LOOKUP_FINDS`], all of them on a smaller network). Returns the
/// estimate (rounded, as the client rounds it) and the width.
pub fn width_chosen(p: &Population, rng: &mut XorShift) -> (f64, kura_core::Params) {
    let mut sizes: Vec<f64> = (0..kura_core::placement::SIZE_LOOKUPS)
        .map(|_| {
            let target = random_key(rng);
            let found: Vec<DhtKey> =
                p.closest(&target, LOOKUP_FINDS, |_| true).into_iter().map(|i| p.keys[i]).collect();
            kura_core::placement::network_size(&target, &found, found.len() < LOOKUP_FINDS)
        })
        .collect();
    kura_core::placement::width_of_estimates(&mut sizes)
}

/// `P(X ≥ seats)` for `X ~ Binomial(size, p)`.
pub fn binomial_tail(size: usize, seats: usize, p: f64) -> f64 {
    let mut total = 0.0;
    for x in seats..=size {
        let mut c = 1.0;
        for i in 0..x {
            c = c * (size - i) as f64 / (i + 1) as f64;
        }
        total += c * p.powi(x as i32) * (1.0 - p).powi((size - x) as i32);
    }
    total
}

/// With a random `fraction` of `p`'s relays the adversary's (random ids), the share of
/// `targets` random keys whose group it captures.
pub fn random_ids(p: &mut Population, fraction: f64, g: Group, targets: usize, rng: &mut XorShift) -> f64 {
    for a in &mut p.adversary {
        *a = rng.chance(fraction);
    }
    let mut captured = 0;
    for _ in 0..targets {
        let t = random_key(rng);
        let group = p.closest(&t, g.size, |_| true);
        if group.iter().filter(|&&i| p.adversary[i]).count() >= g.seats {
            captured += 1;
        }
    }
    captured as f64 / targets as f64
}

/// **Choosing** instead of grinding relays: an account key is free to make, so an adversary
/// whose relays (random ids, with the join work) are a share `fraction` of the network makes
/// account keys until one's ledger group holds `seats` of its relays, and uses that account.
/// Keys made until the first such account, on average: `1 / P(X ≥ seats)`.
pub fn keys_to_choose(g: Group, fraction: f64) -> f64 {
    1.0 / binomial_tail(g.size, g.seats, fraction)
}

/// Relay identities (each with the join work) an adversary with a share `fraction` of the
/// relays makes until one's audit group ([`kura_core::farming::audit_point`], a point every
/// relay can compute for every future epoch) holds a quorum of its relays in one of the
/// next `epochs` epochs: it then runs that identity for that epoch, and its auditors sign
/// what it likes.
pub fn identities_for_audit_quorum(fraction: f64, epochs: f64) -> f64 {
    let q = binomial_tail(kura_core::farming::AUDIT_GROUP, kura_core::farming::AUDIT_QUORUM, fraction);
    // 1 − (1 − q)^epochs without losing q to rounding.
    1.0 / -(epochs * (-q).ln_1p()).exp_m1()
}

/// Beacons a relay chooses among once its audit group is placed by draws
/// ([`kura_core::farming::beacon`]): the least of any quorum of its neighbours' draws is one
/// of the `group − quorum + 1` least.
pub const BEACON_CHOICES: usize = kura_core::farming::AUDIT_GROUP - kura_core::farming::AUDIT_QUORUM + 1;

/// With audit groups placed by draws, the chance that one epoch of one relay identity of an
/// adversary holding `fraction` of the relays meets an audit group it holds a quorum of: it
/// chooses among [`BEACON_CHOICES`] points, each a random point (no identity can be made for
/// a point known only after the epoch), so at most that many times the random-id law.
pub fn capture_per_epoch_with_draws(fraction: f64) -> f64 {
    let q = binomial_tail(kura_core::farming::AUDIT_GROUP, kura_core::farming::AUDIT_QUORUM, fraction);
    (BEACON_CHOICES as f64 * q).min(1.0)
}

/// Played on `p` with a random `fraction` of it the adversary's: over `trials` epochs of one
/// of its relays, each with [`BEACON_CHOICES`] candidate beacons (stand-ins for the least
/// draws: random points), the share of epochs in which some candidate's audit group holds a
/// quorum of its relays.
pub fn draws_played(p: &mut Population, fraction: f64, trials: usize, rng: &mut XorShift) -> f64 {
    for a in &mut p.adversary {
        *a = rng.chance(fraction);
    }
    let (size, seats) = (kura_core::farming::AUDIT_GROUP, kura_core::farming::AUDIT_QUORUM);
    let mut captured = 0;
    for _ in 0..trials {
        let hit = (0..BEACON_CHOICES).any(|_| {
            let group = p.closest(&random_key(rng), size, |_| true);
            group.iter().filter(|&&i| p.adversary[i]).count() >= seats
        });
        captured += usize::from(hit);
    }
    captured as f64 / trials.max(1) as f64
}

/// Keys made, and seconds, until an account key lands where the adversary's relays hold
/// `g.seats` of its group (what [`keys_to_choose`] predicts, played on `p`).
pub fn choose_account(p: &Population, g: Group, rng: &mut XorShift) -> Grind {
    let start = std::time::Instant::now();
    let mut made = 0;
    loop {
        let (_, public) = new_key(rng);
        made += 1;
        // An account's group sits at its key ([`kura_p2p::ledger::group_of`]).
        let group = p.closest(&DhtKey::of(&public), g.size, |_| true);
        if group.iter().filter(|&&i| p.adversary[i]).count() >= g.seats {
            return Grind { keys_made: made, seconds: start.elapsed().as_secs_f64() };
        }
    }
}

/// What grinding cost: ed25519 keys made until `seats` of them sat closer to `target` than
/// the honest relay that would otherwise hold seat `size − seats` (so the group of `size`
/// then holds them all).
#[derive(Debug, Clone, Copy)]
pub struct Grind {
    pub keys_made: u64,
    pub seconds: f64,
}

/// Grinds `g.seats` ids into the group of `target` among the honest relays `p`; each id
/// must also carry `join_bits` of join work ([`kura_core::placement::join_work`]), as close
/// groups ask of relays (0: none, as before the join work).
pub fn grind(p: &Population, target: &DhtKey, g: Group, join_bits: u32, rng: &mut XorShift) -> Grind {
    let honest = p.closest(target, g.size, |_| true);
    let bar = target.distance(&p.keys[honest[g.size - g.seats]]);
    let start = std::time::Instant::now();
    let (mut made, mut placed) = (0u64, 0);
    while placed < g.seats {
        let (_, public) = new_key(rng);
        made += 1;
        if target.distance(&key_of_public(&public)) < bar && join_work(&public) >= join_bits {
            placed += 1;
        }
    }
    Grind { keys_made: made, seconds: start.elapsed().as_secs_f64() }
}

/// A new ed25519 key: its seed and public key.
fn new_key(rng: &mut XorShift) -> ([u8; 32], [u8; 32]) {
    let mut seed = [0u8; 32];
    for c in seed.chunks_mut(8) {
        c.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    (seed, kura_core::ledger::SigningKey::from_bytes(&seed).verifying_key().to_bytes())
}

/// The join work of the relay whose ed25519 public key is `public` (its peer id's bytes).
pub fn join_work(public: &[u8; 32]) -> u32 {
    kura_core::placement::join_work(&peer_id_of_public(public))
}

/// What one identity with join work costs an honest relay: keys made and time.
pub fn join_key(join_bits: u32, rng: &mut XorShift) -> ([u8; 32], Grind) {
    let start = std::time::Instant::now();
    let mut made = 0;
    loop {
        let (seed, public) = new_key(rng);
        made += 1;
        if join_work(&public) >= join_bits {
            return (seed, Grind { keys_made: made, seconds: start.elapsed().as_secs_f64() });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn puts_take_the_width_their_networks_size_calls_for() {
        let mut rng = XorShift(7);
        for (n, width, most) in [(10, (4, 2), 1.0), (200, (10, 10), 0.95), (20_000, (10, 10), 0.95)] {
            let p = Population::random(n, &mut rng);
            let puts = 100;
            let mut took = 0;
            for _ in 0..puts {
                let (relays, w) = width_chosen(&p, &mut rng);
                assert!(relays >= (n as f64 / 2.0).min(LOOKUP_FINDS as f64) && relays <= 2.0 * n as f64);
                took += usize::from((w.k(), w.m()) == width);
            }
            assert!(took as f64 >= most * puts as f64, "{n} relays: {took} of {puts} puts took {width:?}");
        }
    }

    #[test]
    fn random_ids_capture_groups_as_the_binomial_law_says() {
        let mut rng = XorShift(3);
        let mut p = Population::random(20_000, &mut rng);
        for (fraction, g) in [(0.2, GROUPS[0]), (0.3, GROUPS[2])] {
            let got = random_ids(&mut p, fraction, g, 4000, &mut rng);
            let want = binomial_tail(g.size, g.seats, fraction);
            // Four thousand targets: a few standard errors.
            let se = (want * (1.0 - want) / 4000.0).sqrt();
            assert!((got - want).abs() < 4.0 * se + 0.002, "{}: {got} vs {want}", g.name);
        }
        assert!((binomial_tail(6, 6, 0.5) - 1.0 / 64.0).abs() < 1e-12);
        assert!((binomial_tail(16, 0, 0.3) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn an_adversary_chooses_an_account_in_its_groups_as_the_law_says() {
        let mut rng = XorShift(5);
        let mut p = Population::random(5_000, &mut rng);
        let fraction = 0.2;
        for a in &mut p.adversary {
            *a = rng.chance(fraction);
        }
        let g = GROUPS[2];
        let trials = 200;
        let made: u64 = (0..trials).map(|_| choose_account(&p, g, &mut rng).keys_made).sum();
        let mean = made as f64 / trials as f64;
        let want = keys_to_choose(g, fraction);
        // Geometric: the mean of 200 is within a few standard errors (sd ≈ the mean).
        assert!((mean - want).abs() < 4.0 * want / (trials as f64).sqrt(), "{mean} vs {want}");
        // An audit quorum is rarer per epoch, but an identity has every future epoch to try.
        let per_epoch = binomial_tail(32, 22, 0.1);
        let year = identities_for_audit_quorum(0.1, 8760.0);
        assert!((year - 1.0 / (8760.0 * per_epoch)).abs() / year < 0.01, "{year}");
        assert!((identities_for_audit_quorum(0.5, 1.0) - 1.0 / binomial_tail(32, 22, 0.5)).abs() < 1e-9);
        // With draws: eleven random points an epoch, not every future epoch's known point.
        assert_eq!(BEACON_CHOICES, 11);
        let with_draws = capture_per_epoch_with_draws(0.1);
        assert!((with_draws / binomial_tail(32, 22, 0.1) - 11.0).abs() < 1e-9);
        assert!(with_draws < 1e-13, "{with_draws}");
    }

    #[test]
    fn join_work_multiplies_the_keys_a_grinder_makes_by_two_to_the_bits() {
        // The two hashes are independent: a key must land near the target and carry the work,
        // so grinding with b bits makes about 2^b times the keys it makes with none.
        let mut rng = XorShift(11);
        let p = Population::random(500, &mut rng);
        let g = GROUPS[0];
        let targets: Vec<DhtKey> = (0..20).map(|_| random_key(&mut rng)).collect();
        let keys = |bits: u32, rng: &mut XorShift| -> f64 {
            targets.iter().map(|t| grind(&p, t, g, bits, rng).keys_made as f64).sum()
        };
        let (none, four) = (keys(0, &mut rng), keys(4, &mut rng));
        let ratio = four / none;
        assert!(
            ratio > 16.0 / 1.6 && ratio < 16.0 * 1.6,
            "{ratio:.1}× the keys with 4 bits, about 16 expected"
        );
        // An honest relay's one identity: about 2^b keys, and it carries the work.
        let made: u64 = (0..200).map(|_| join_key(6, &mut rng).1.keys_made).sum();
        let per = made as f64 / 200.0;
        assert!(per > 64.0 / 1.4 && per < 64.0 * 1.4, "{per:.0} keys per identity, about 64 expected");
        let (seed, _) = join_key(8, &mut rng);
        let public = kura_core::ledger::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        assert!(join_work(&public) >= 8);
    }

    #[test]
    fn ground_ids_take_a_group_for_about_n_over_seats_keys_each() {
        let mut rng = XorShift(9);
        let p = Population::random(2000, &mut rng);
        let g = GROUPS[0];
        let mut made = 0;
        let runs = 10;
        for _ in 0..runs {
            let t = random_key(&mut rng);
            let r = grind(&p, &t, g, 0, &mut rng);
            made += r.keys_made;
            // The ground keys land in the group: check with the population grown by them is
            // what `grind` promises, by its bar.
            assert!(r.keys_made >= g.seats as u64);
        }
        // Each seat needs about N / (size − seats + 1) keys.
        let per_seat = made as f64 / (runs * g.seats) as f64;
        let expect = 2000.0 / (g.size - g.seats + 1) as f64;
        assert!(
            per_seat > expect / 3.0 && per_seat < expect * 3.0,
            "{per_seat} keys per seat, about {expect} expected"
        );
    }
}
