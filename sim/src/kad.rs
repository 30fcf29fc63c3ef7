//! Kademlia over a [`Population`]: each relay's routing table (for every prefix length, up
//! to `K` relays sharing exactly that prefix with it, as its k-buckets hold), and iterative
//! lookups run as discrete events: `α` requests in flight, each answered after the link's
//! round trip with the `K` closest the asked relay knows, or timing out when it is down;
//! the lookup ends when the `K` closest it has heard of have all answered (libp2p-kad's
//! rule, which Kura's relays and clients use).

use crate::population::{flip, Population};
use kura_core::placement::{DhtKey, WideLookup};
use kura_core::testdata::XorShift;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Bucket size and replication (libp2p-kad's default `K_VALUE`).
pub const K: usize = 20;
/// Requests in flight per lookup (libp2p-kad's default parallelism).
pub const ALPHA: usize = 3;
/// How long a request to a relay that is down waits, in ms.
pub const TIMEOUT_MS: f64 = 1000.0;

/// Every relay's routing table, flattened: `entries[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone)]
pub struct Tables {
    offsets: Vec<u32>,
    entries: Vec<u32>,
}

impl Tables {
    /// Fills every relay's buckets with up to `K` random relays of each prefix range (all
    /// of them, up or down: a table learns of failures only by asking).
    pub fn build(p: &Population, rng: &mut XorShift) -> Self {
        let mut offsets = Vec::with_capacity(p.len() + 1);
        let mut entries: Vec<u32> = Vec::new();
        for i in 0..p.len() {
            offsets.push(entries.len() as u32);
            let me = &p.keys[i];
            for bit in 0..256 {
                // Relays that share `bit` bits with me and differ in the next one.
                let range = p.prefix_range(&flip(me, bit), bit + 1);
                let len = range.len();
                if len <= K {
                    entries.extend(range.map(|j| j as u32));
                } else {
                    let mut picked: Vec<usize> = Vec::with_capacity(K);
                    while picked.len() < K {
                        let j = range.start + rng.below(len);
                        if !picked.contains(&j) {
                            picked.push(j);
                        }
                    }
                    entries.extend(picked.into_iter().map(|j| j as u32));
                }
                // Deeper buckets are empty once no other relay shares my first bit + 1 bits.
                if p.prefix_range(me, bit + 1).len() <= 1 {
                    break;
                }
            }
        }
        offsets.push(entries.len() as u32);
        Self { offsets, entries }
    }

    /// Relay `i`'s routing table.
    pub fn of(&self, i: usize) -> &[u32] {
        &self.entries[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Entries in all tables (memory: 4 bytes each).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `want` entries of relay `i`'s table closest to `target` (what it answers a lookup
    /// of `want`, at least `K`).
    pub fn closest_known(&self, p: &Population, i: usize, target: &DhtKey, want: usize) -> Vec<u32> {
        let mut v: Vec<([u8; 32], u32)> =
            self.of(i).iter().map(|&j| (target.distance(&p.keys[j as usize]), j)).collect();
        let k = want.max(K).min(v.len());
        if k > 0 {
            v.select_nth_unstable_by_key(k - 1, |e| e.0);
        }
        v.truncate(k);
        v.into_iter().map(|(_, j)| j).collect()
    }
}

/// How one lookup went.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    /// Lookups run (more than one for a group wider than a lookup: [`lookup_group`]).
    pub lookups: usize,
    /// Requests sent (answered or timed out).
    pub messages: usize,
    /// Requests that timed out: to relays that were down, or lost on the way.
    pub timeouts: usize,
    /// Of those, exchanges lost with a relay that was up.
    pub lost: usize,
    /// Hops: on the chain of answers that led to the closest relay found, how many.
    pub hops: usize,
    /// Time from start to end, in ms.
    pub ms: f64,
    /// Of the `K` (or the lookup's `want`) relays truly closest to the target among those
    /// up, how many it found.
    pub found_of_k: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Event {
    at: f64,
    seq: u64,
    peer: u32,
    up: bool,
}

impl Eq for Event {}
impl Ord for Event {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.at.total_cmp(&o.at).then(self.seq.cmp(&o.seq))
    }
}
impl PartialOrd for Event {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Heard,
    Asked,
    Answered,
    Failed,
}

/// An iterative lookup of `target` started by relay `from`, on links that lose no message.
pub fn lookup(p: &Population, t: &Tables, from: usize, target: &DhtKey) -> Lookup {
    lookup_lossy(p, t, from, target, 0.0, &mut XorShift(1))
}

/// An iterative lookup on links that lose each request or its answer with probability
/// `loss` (drawn from `rng`): a lost exchange costs the timeout, as a relay that is down
/// does, and the lookup goes on without that relay's answer (libp2p-kad does not retry).
pub fn lookup_lossy(
    p: &Population,
    t: &Tables,
    from: usize,
    target: &DhtKey,
    loss: f64,
    rng: &mut XorShift,
) -> Lookup {
    lookup_of(p, t, from, target, K, loss, rng).0
}

/// The `want` relays closest to `target` found as Kura's clients find a group wider than a
/// lookup (a ledger group, a wide stripe's candidates): lookups as libp2p-kad runs them (each
/// answer and each result at most `K`), the first of the target and the next of the targets
/// kura-core's [`WideLookup`] names, until it has the nearest: how they went together
/// (messages, timeouts and time summed, the group found counted against the truth), and the
/// relays found, closest first.
pub fn lookup_group(
    p: &Population,
    t: &Tables,
    from: usize,
    target: &DhtKey,
    want: usize,
) -> (Lookup, Vec<u32>) {
    let mut rng = XorShift(1);
    let mut wide = WideLookup::new(*target, want);
    let mut out = Lookup::default();
    let mut at = *target;
    loop {
        let (l, found) = lookup_of(p, t, from, &at, K, 0.0, &mut rng);
        out.lookups += l.lookups;
        out.messages += l.messages;
        out.timeouts += l.timeouts;
        out.lost += l.lost;
        out.ms += l.ms;
        out.hops = out.hops.max(l.hops);
        wide.found(found.into_iter().map(|j| (j, p.keys[j as usize])));
        match wide.next_target() {
            Some(bytes) => at = DhtKey::of(&bytes),
            None => break,
        }
    }
    let found = wide.nearest();
    let truth = p.closest(target, want, |i| p.up[i] && i != from);
    out.found_of_k = truth.iter().filter(|i| found.contains(&(**i as u32))).count();
    (out, found)
}

fn lookup_of(
    p: &Population,
    t: &Tables,
    from: usize,
    target: &DhtKey,
    want: usize,
    loss: f64,
    rng: &mut XorShift,
) -> (Lookup, Vec<u32>) {
    let mut out = Lookup { lookups: 1, ..Lookup::default() };
    // Candidates: distance → (peer, state, hops to learn of it).
    let mut cand: std::collections::BTreeMap<[u8; 32], (u32, State, usize)> =
        std::collections::BTreeMap::new();
    for j in t.closest_known(p, from, target, want) {
        cand.insert(target.distance(&p.keys[j as usize]), (j, State::Heard, 1));
    }
    let mut events: BinaryHeap<Reverse<Event>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut now = 0.0;
    let mut in_flight = 0usize;
    let mut hops_of: HashMap<u32, usize> = HashMap::new();
    loop {
        // Ask the closest not asked yet among the `want` closest heard of, up to α at once.
        while in_flight < ALPHA {
            let next = cand
                .iter_mut()
                .filter(|(_, c)| c.1 != State::Failed)
                .take(want)
                .find(|(_, c)| c.1 == State::Heard);
            let Some((_, c)) = next else { break };
            c.1 = State::Asked;
            let peer = c.0;
            hops_of.insert(peer, c.2);
            // Either the request or its answer may be lost.
            let lost = loss > 0.0 && (rng.chance(loss) || rng.chance(loss));
            let up = p.up[peer as usize] && !lost;
            let at = now
                + if up {
                    p.latency_ms(from, peer as usize) + p.latency_ms(peer as usize, from)
                } else {
                    TIMEOUT_MS
                };
            seq += 1;
            events.push(Reverse(Event { at, seq, peer, up }));
            in_flight += 1;
            out.messages += 1;
        }
        let Some(Reverse(e)) = events.pop() else { break };
        now = e.at;
        in_flight -= 1;
        let d = target.distance(&p.keys[e.peer as usize]);
        if !e.up {
            out.timeouts += 1;
            out.lost += usize::from(p.up[e.peer as usize]);
            if let Some(c) = cand.get_mut(&d) {
                c.1 = State::Failed;
            }
            continue;
        }
        let depth = hops_of.get(&e.peer).copied().unwrap_or(1);
        if let Some(c) = cand.get_mut(&d) {
            c.1 = State::Answered;
        }
        for j in t.closest_known(p, e.peer as usize, target, want) {
            if j as usize == from {
                continue;
            }
            cand.entry(target.distance(&p.keys[j as usize])).or_insert((j, State::Heard, depth + 1));
        }
    }
    out.ms = now;
    let found: Vec<u32> = cand.values().filter(|c| c.1 == State::Answered).take(want).map(|c| c.0).collect();
    out.hops = found.first().and_then(|j| hops_of.get(j)).copied().unwrap_or(0);
    let truth = p.closest(target, want, |i| p.up[i] && i != from);
    out.found_of_k = truth.iter().filter(|i| found.contains(&(**i as u32))).count();
    (out, found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::population::random_key;

    /// All up: every lookup finds all `K` closest, in a few hops (about log2(N)/log2(K)... at
    /// most log2(N)), with messages bounded; with a fifth down, lookups still find nearly
    /// all and pay in timeouts.
    #[test]
    fn lookups_find_the_closest_in_few_hops() {
        let mut rng = XorShift(11);
        let mut p = Population::random(4000, &mut rng);
        let t = Tables::build(&p, &mut rng);
        assert!(t.len() > 4000 * K, "tables too small: {}", t.len());
        let mut all = Vec::new();
        for _ in 0..100 {
            let from = rng.below(p.len());
            all.push(lookup(&p, &t, from, &random_key(&mut rng)));
        }
        assert!(all.iter().all(|l| l.found_of_k == K), "{:?}", all.iter().map(|l| l.found_of_k).min());
        let hops = all.iter().map(|l| l.hops).max().unwrap();
        assert!((1..=6).contains(&hops), "hops {hops}");
        assert!(all.iter().all(|l| l.messages < 100 && l.timeouts == 0));
        p.kill(0.2, &mut rng);
        let mut found = 0;
        let mut timeouts = 0;
        let n = 100;
        for _ in 0..n {
            let from = loop {
                let f = rng.below(p.len());
                if p.up[f] {
                    break f;
                }
            };
            let l = lookup(&p, &t, from, &random_key(&mut rng));
            found += l.found_of_k;
            timeouts += l.timeouts;
        }
        assert!(found as f64 >= 0.95 * (n * K) as f64, "found {found} of {}", n * K);
        assert!(timeouts > 0);
    }

    /// Lost messages cost timeouts and part of the close group: a relay of the group whose
    /// exchange was lost is not asked again (libp2p-kad does not retry within a query), so
    /// about one exchange in ten lost (5% each way) misses about a tenth of the group.
    #[test]
    fn lookups_survive_lost_messages() {
        let mut rng = XorShift(13);
        let p = Population::random(3000, &mut rng);
        let t = Tables::build(&p, &mut rng);
        let (mut found, mut lost, mut clean_ms, mut lossy_ms) = (0, 0, 0.0, 0.0);
        for _ in 0..100 {
            let from = rng.below(p.len());
            let target = random_key(&mut rng);
            clean_ms += lookup(&p, &t, from, &target).ms;
            let l = lookup_lossy(&p, &t, from, &target, 0.05, &mut rng);
            found += l.found_of_k;
            lost += l.lost;
            lossy_ms += l.ms;
        }
        assert!(lost > 0);
        let share = found as f64 / (100 * K) as f64;
        assert!((0.8..0.97).contains(&share), "found {share}");
        assert!(lossy_ms > clean_ms, "timeouts make lookups slower");
    }

    /// Same seed, same result.
    #[test]
    fn lookups_are_deterministic() {
        let run = || {
            let mut rng = XorShift(5);
            let p = Population::random(1000, &mut rng);
            let t = Tables::build(&p, &mut rng);
            let l = lookup(&p, &t, 3, &random_key(&mut rng));
            (l.messages, l.hops, l.ms.to_bits(), l.found_of_k)
        };
        assert_eq!(run(), run());
    }
}
