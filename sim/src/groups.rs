//! Close groups at scale, as relays that know only their routing tables see them.
//!
//! Kura's audit groups (the [`AUDIT_GROUP`] relays nearest a point drawn each epoch) and
//! ledger groups are computed today from each relay's view of the live relays, which in the
//! networks tested holds every relay. At scale a relay knows its routing table: every relay
//! near itself, and a bucket's worth of each distance further away. This study asks, on
//! simulated Kademlia tables ([`crate::kad`]), what each party can then tell:
//!
//! - the claimant, by a lookup of the point for a group of [`AUDIT_GROUP`] (larger than a
//!   bucket): how much of the group it finds, and at what cost;
//! - an auditor, from its own table: whether it is a member (it knows fewer than
//!   [`AUDIT_GROUP`] relays closer to the point than itself), for members and for the
//!   relays just outside;
//! - a replica of the claimant's account, which lies anywhere: whether its own table places
//!   the group (its [`AUDIT_GROUP`] closest to the point hold a quorum of the real group),
//!   and, if not, what a *reach* rule would let through (signers taken as members when
//!   within the distance where some multiple of a group of relays are expected, in the
//!   network the replica estimates from its own neighbourhood): how often an honest group
//!   has a quorum within reach, and how often an adversary holding a share of the relays
//!   does.

use crate::capture::binomial_tail;
use crate::kad::{lookup_group, Tables};
use crate::population::{random_key, Population};
use kura_core::farming::{AUDIT_GROUP, AUDIT_QUORUM};
use kura_core::placement::{estimate_from_view, share_between, view_is_thin, DhtKey};
use kura_core::testdata::XorShift;

/// The reaches studied, as multiples of a group ([`within_reach`]).
pub const REACHES: [f64; 3] = [1.0, 1.5, 2.0];

/// How far from a point a viewer estimating the network at `n` relays takes a member of its
/// group to lie when `times` × [`AUDIT_GROUP`] relays are expected within that distance, as
/// a share of the key space (the `i`-th closest relay lies about `i / n` from a point).
pub fn reach(n: f64, times: f64) -> f64 {
    (times * AUDIT_GROUP as f64 / n.max(1.0)).min(1.0)
}

/// Whether `member` lies within [`reach`] of `point`.
pub fn within_reach(point: &DhtKey, member: &DhtKey, n: f64, times: f64) -> bool {
    share_between(point, member) <= reach(n, times)
}

/// One reach: how often a quorum of the group lies within it, and how often an adversary's
/// relays do.
#[derive(Debug, Clone)]
pub struct Reach {
    pub times: f64,
    /// Share of points where a quorum ([`AUDIT_QUORUM`]) of the group's members lie within
    /// reach by the replica's estimate (an honest claim that every member signed passes).
    pub honest: f64,
    /// Relays within reach of a point, mean.
    pub within_mean: f64,
    /// For each adversary: share of points where a quorum of its relays lie within reach.
    pub held: Vec<f64>,
}

/// An adversary's share of the relays, and how often it holds a quorum of the group itself:
/// simulated, and the binomial law.
#[derive(Debug, Clone)]
pub struct Held {
    pub fraction: f64,
    pub of_group: f64,
    pub of_group_law: f64,
}

/// What one network of `nodes` relays showed over `points` random points.
#[derive(Debug, Clone)]
pub struct Groups {
    pub nodes: usize,
    pub points: usize,
    /// Entries in a routing table, mean.
    pub table_mean: f64,
    /// Share of the group a wide lookup for it found ([`crate::kad::lookup_group`]), its
    /// messages and its lookups, mean.
    pub lookup_found: f64,
    pub lookup_messages: f64,
    pub lookups: f64,
    /// Of the group's members, the share whose own table says they are members.
    pub members_sure: f64,
    /// Of the [`AUDIT_GROUP`] relays next after the group, the share whose own table says
    /// they are members.
    pub outsiders_sure: f64,
    /// Of random relays (replicas), the share whose own table places the group (a quorum of
    /// its closest [`AUDIT_GROUP`] to the point are members).
    pub replicas_place: f64,
    /// Of random replicas, the share whose view is thin at the point
    /// ([`kura_core::placement::view_is_thin`]), the share that places a quorum of the group
    /// by the relays' rule (its table where not thin, a wide lookup where thin or where the
    /// table's group fails to verify), and the messages that cost per deposit, mean.
    pub replicas_thin: f64,
    pub rule_places: f64,
    pub rule_messages: f64,
    /// Replicas' estimates of the network over its size: 5%, median, 95%.
    pub estimate: [f64; 3],
    /// Each of [`REACHES`].
    pub reaches: Vec<Reach>,
    pub held: Vec<Held>,
}

/// Runs the study on a random network of `nodes` relays (all up) at `points` random points,
/// with adversaries holding each of `fractions` of the relays (random ids).
pub fn study(nodes: usize, points: usize, fractions: &[f64], rng: &mut XorShift) -> Groups {
    let p = Population::random(nodes, rng);
    let t = Tables::build(&p, rng);
    let n = p.len();
    let adversaries: Vec<Vec<bool>> =
        fractions.iter().map(|&f| (0..n).map(|_| rng.chance(f)).collect()).collect();
    let (mut found, mut messages, mut members_sure, mut outsiders_sure, mut place) = (0, 0, 0, 0, 0);
    let mut lookups = 0;
    // A replica following the relays' rule: its table where it is not thin, else lookups.
    let (mut thin, mut rule_places, mut rule_messages) = (0, 0, 0);
    let mut ratios = Vec::with_capacity(points);
    // Per reach: honest quorums within it, relays within it, and each adversary's quorums.
    let mut reaches: Vec<(usize, usize, Vec<usize>)> =
        REACHES.iter().map(|_| (0, 0, vec![0; fractions.len()])).collect();
    let mut held = vec![0usize; fractions.len()];
    for _ in 0..points {
        let point = random_key(rng);
        let ranked = p.closest(&point, 2 * AUDIT_GROUP, |_| true);
        let (group, outside) = ranked.split_at(AUDIT_GROUP.min(ranked.len()));
        let (lookup, got) = lookup_group(&p, &t, rng.below(n), &point, AUDIT_GROUP);
        found += got.iter().filter(|j| group.contains(&(**j as usize))).count();
        messages += lookup.messages;
        lookups += lookup.lookups;
        let sure = |i: usize| sure_of_membership(&p, &t, i, &point);
        members_sure += group.iter().filter(|&&i| sure(i)).count();
        outsiders_sure += outside.iter().filter(|&&i| sure(i)).count();
        // A replica of the claimant's account: anywhere in the key space.
        let replica = rng.below(n);
        let placed = t.closest_known(&p, replica, &point, AUDIT_GROUP);
        let placed = placed.iter().take(AUDIT_GROUP).filter(|j| group.contains(&(**j as usize))).count();
        place += usize::from(placed >= AUDIT_QUORUM);
        let mut view: Vec<DhtKey> = t.of(replica).iter().map(|&j| p.keys[j as usize]).collect();
        view.push(p.keys[replica]);
        let is_thin = view_is_thin(&point, &p.keys[replica], &view, AUDIT_GROUP);
        thin += usize::from(is_thin);
        // Thin, or the table's group does not verify (the relays look up then too).
        if is_thin || placed < AUDIT_QUORUM {
            let (l, got) = lookup_group(&p, &t, replica, &point, AUDIT_GROUP);
            rule_messages += l.messages;
            let members = got.iter().filter(|j| group.contains(&(**j as usize))).count();
            rule_places += usize::from(members >= AUDIT_QUORUM);
        } else {
            rule_places += usize::from(placed >= AUDIT_QUORUM);
        }
        // The relays' own estimate, from the same view.
        let estimate = estimate_from_view(&p.keys[replica], &view);
        ratios.push(estimate / n as f64);
        for (&times, r) in REACHES.iter().zip(&mut reaches) {
            let members =
                group.iter().filter(|&&i| within_reach(&point, &p.keys[i], estimate, times)).count();
            r.0 += usize::from(members >= AUDIT_QUORUM);
            let within = within_reach_of(&p, &point, estimate, times);
            r.1 += within.len();
            for (a, h) in adversaries.iter().zip(&mut r.2) {
                *h += usize::from(within.iter().filter(|&&i| a[i]).count() >= AUDIT_QUORUM);
            }
        }
        for (a, h) in adversaries.iter().zip(&mut held) {
            *h += usize::from(group.iter().filter(|&&i| a[i]).count() >= AUDIT_QUORUM);
        }
    }
    let share = |x: usize, of: usize| x as f64 / of.max(1) as f64;
    Groups {
        nodes: n,
        points,
        table_mean: t.len() as f64 / n as f64,
        lookup_found: share(found, points * AUDIT_GROUP),
        lookup_messages: share(messages, points),
        lookups: share(lookups, points),
        members_sure: share(members_sure, points * AUDIT_GROUP),
        outsiders_sure: share(outsiders_sure, points * AUDIT_GROUP),
        replicas_place: share(place, points),
        replicas_thin: share(thin, points),
        rule_places: share(rule_places, points),
        rule_messages: share(rule_messages, points),
        estimate: [
            crate::quantile(&mut ratios, 0.05),
            crate::quantile(&mut ratios, 0.5),
            crate::quantile(&mut ratios, 0.95),
        ],
        reaches: REACHES
            .iter()
            .zip(reaches)
            .map(|(&times, (honest, within, held))| Reach {
                times,
                honest: share(honest, points),
                within_mean: share(within, points),
                held: held.into_iter().map(|h| share(h, points)).collect(),
            })
            .collect(),
        held: fractions
            .iter()
            .zip(held)
            .map(|(&fraction, g)| Held {
                fraction,
                of_group: share(g, points),
                of_group_law: binomial_tail(AUDIT_GROUP, AUDIT_QUORUM, fraction),
            })
            .collect(),
    }
}

/// Whether relay `i` takes itself for a member of `point`'s group by its own table: it
/// knows fewer than [`AUDIT_GROUP`] relays closer to the point than itself.
pub fn sure_of_membership(p: &Population, t: &Tables, i: usize, point: &DhtKey) -> bool {
    let mine = point.distance(&p.keys[i]);
    t.of(i).iter().filter(|&&j| point.distance(&p.keys[j as usize]) < mine).count() < AUDIT_GROUP
}

/// Every relay within `times` reach of `point` for a viewer estimating the network at
/// `estimate`.
fn within_reach_of(p: &Population, point: &DhtKey, estimate: f64, times: f64) -> Vec<usize> {
    let mut r = 4 * AUDIT_GROUP;
    loop {
        let near = p.closest(point, r, |_| true);
        let within: Vec<usize> =
            near.iter().copied().filter(|&i| within_reach(point, &p.keys[i], estimate, times)).collect();
        if within.len() < near.len() || near.len() >= p.len() {
            return within;
        }
        r *= 2;
    }
}

/// Identities with the join work an adversary makes, on average, until `AUDIT_QUORUM` of
/// them lie within `times` reach of a point shown a moment ago, in a network of `nodes`
/// (each lands there with probability `times × AUDIT_GROUP / nodes`): what a replica that
/// cannot check when a signer joined lets through.
pub fn identities_into_reach(nodes: usize, times: f64) -> f64 {
    AUDIT_QUORUM as f64 * nodes as f64 / (times * AUDIT_GROUP as f64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// In a network far larger than a routing table, a lookup finds the group, members know
    /// they are members, random replicas cannot place the group from their tables, and a
    /// reach lets honest quorums through more often the wider it is, and an adversary's too.
    #[test]
    fn at_scale_members_know_their_group_and_replicas_cannot_place_it() {
        let mut rng = XorShift(23);
        let g = study(5000, 60, &[0.33], &mut rng);
        assert!(g.table_mean < 0.1 * g.nodes as f64, "tables hold {} of {}", g.table_mean, g.nodes);
        assert!(g.lookup_found > 0.95, "a lookup found {}", g.lookup_found);
        assert!(g.members_sure > 0.99, "members sure: {}", g.members_sure);
        assert!(g.outsiders_sure < 0.6, "outsiders sure: {}", g.outsiders_sure);
        assert!(g.replicas_place < 0.1, "replicas placing the group: {}", g.replicas_place);
        // By the relays' rule a replica sees its table is thin there and looks the group up.
        assert!(g.replicas_thin > 0.9, "thin at {}", g.replicas_thin);
        assert!(g.rule_places > 0.95, "placed by the rule: {}", g.rule_places);
        assert!(g.rule_messages > 20.0, "{}", g.rule_messages);
        assert!((0.6..1.6).contains(&g.estimate[1]), "median estimate {:?}", g.estimate);
        let [narrow, _, wide] = &g.reaches[..] else { panic!("{:?}", g.reaches) };
        assert!(wide.honest > 0.95 && wide.honest >= narrow.honest, "{:?}", g.reaches);
        let expected = wide.times * AUDIT_GROUP as f64;
        assert!((0.6 * expected..1.6 * expected).contains(&wide.within_mean), "{}", wide.within_mean);
        assert!(
            wide.held[0] >= narrow.held[0] && wide.held[0] >= g.held[0].of_group,
            "{:?} {:?}",
            g.reaches,
            g.held
        );
        assert!(
            wide.held[0] > 0.1,
            "a third of the relays often holds a quorum within twice a group's reach"
        );
    }

    /// In a network a table nearly holds whole, most replicas place the group themselves.
    #[test]
    fn in_a_small_network_replicas_place_the_group() {
        let mut rng = XorShift(29);
        let g = study(40, 30, &[], &mut rng);
        assert!(g.replicas_place > 0.5, "{}", g.replicas_place);
        assert!(g.rule_places > 0.95, "placed by the rule: {}", g.rule_places);
        assert_eq!(g.members_sure, 1.0);
    }
}
