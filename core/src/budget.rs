//! Allowances per peer: a token bucket for each peer (bytes stored, proofs asked for), so that
//! no one peer takes more than its share of a relay however fast it asks. No IO; time comes
//! in as `now`.
//!
//! The table of peers is bounded: a peer whose bucket has refilled is the same as a peer never
//! seen, so it is forgotten when room is needed; if every entry is still in debt, a new peer
//! is refused until one refills (minting identities buys no allowance beyond the table).

use core::time::Duration;
use std::collections::HashMap;
use std::hash::Hash;

/// Why a peer's request was not allowed.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum OverBudget {
    /// The peer has used its allowance; it refills enough for this request after `retry`.
    #[error("this peer's allowance is used up; enough returns in {:.1} s", retry.as_secs_f64())]
    Spent { retry: Duration },
    /// Every place in the table is taken by peers still in debt.
    #[error("too many peers are using their allowance at once")]
    Crowded,
}

/// Token buckets per peer: `rate` units per second, up to `burst`.
#[derive(Debug, Clone)]
pub struct PeerBudget<P> {
    rate: f64,
    burst: f64,
    max_peers: usize,
    /// Tokens left and when they were last counted.
    peers: HashMap<P, (f64, Duration)>,
}

impl<P: Clone + Eq + Hash> PeerBudget<P> {
    /// `rate` units per second, bursts up to `burst`, at most `max_peers` peers tracked.
    pub fn new(rate: u64, burst: u64, max_peers: usize) -> Self {
        Self {
            rate: rate.max(1) as f64,
            burst: burst.max(1) as f64,
            max_peers: max_peers.max(1),
            peers: HashMap::new(),
        }
    }

    fn tokens(&self, entry: (f64, Duration), now: Duration) -> f64 {
        let (tokens, at) = entry;
        (tokens + now.saturating_sub(at).as_secs_f64() * self.rate).min(self.burst)
    }

    /// Takes `cost` units from `peer`'s allowance, or says why not. A request larger than the
    /// burst is allowed once the bucket is full, and leaves it in debt.
    pub fn take(&mut self, peer: &P, cost: u64, now: Duration) -> Result<(), OverBudget> {
        let cost = cost as f64;
        let have = match self.peers.get(peer) {
            Some(e) => self.tokens(*e, now),
            None => {
                if self.peers.len() >= self.max_peers {
                    let (burst, rate) = (self.burst, self.rate);
                    self.peers
                        .retain(|_, (t, at)| (*t + now.saturating_sub(*at).as_secs_f64() * rate) < burst);
                    if self.peers.len() >= self.max_peers {
                        return Err(OverBudget::Crowded);
                    }
                }
                self.burst
            }
        };
        if have < cost.min(self.burst) {
            let retry = Duration::from_secs_f64((cost.min(self.burst) - have) / self.rate);
            return Err(OverBudget::Spent { retry });
        }
        self.peers.insert(peer.clone(), (have - cost, now));
        Ok(())
    }

    /// Peers tracked now.
    pub fn tracked(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    #[test]
    fn a_peer_gets_its_burst_then_its_rate_and_others_are_untouched() {
        let mut b = PeerBudget::new(100, 1000, 10);
        b.take(&'a', 600, s(0.0)).unwrap();
        b.take(&'a', 400, s(0.0)).unwrap();
        let e = b.take(&'a', 100, s(0.0)).unwrap_err();
        assert_eq!(e, OverBudget::Spent { retry: s(1.0) });
        b.take(&'b', 1000, s(0.0)).unwrap();
        b.take(&'a', 100, s(1.0)).unwrap();
        assert!(b.take(&'a', 100, s(1.5)).is_err(), "half a second buys 50");
        b.take(&'a', 50, s(1.5)).unwrap();
        // Larger than the burst: once full, allowed, and it leaves the bucket in debt.
        b.take(&'c', 5000, s(0.0)).unwrap();
        assert!(b.take(&'c', 1, s(10.0)).is_err(), "4000 in debt: 40 s to come back");
        b.take(&'c', 1, s(41.0)).unwrap();
    }

    #[test]
    fn the_table_is_bounded_and_forgets_only_peers_that_refilled() {
        let mut b = PeerBudget::new(10, 100, 2);
        b.take(&1, 100, s(0.0)).unwrap();
        b.take(&2, 100, s(0.0)).unwrap();
        assert_eq!(b.take(&3, 1, s(1.0)), Err(OverBudget::Crowded), "both still in debt");
        assert_eq!(b.take(&1, 50, s(1.0)), Err(OverBudget::Spent { retry: s(4.0) }));
        b.take(&3, 1, s(10.0)).unwrap();
        assert_eq!(b.tracked(), 1, "refilled peers were forgotten");
    }
}
