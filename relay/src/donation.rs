//! What the relay knows of donating tabs ([`kura_core::donation`] has the rules): which tab
//! holds which shard of the stripes this relay holds, and through which relay each tab is
//! reachable. In memory only, never on disk: announcements expire unless the tab refreshes
//! them, and a relay started again knows no tab until each announces again.

use kura_core::donation::{Announcements, Limits};
use kura_core::wire::TabHolder;
use kura_core::StripeId;
use libp2p::PeerId;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The relay's announcements from tabs.
#[derive(Debug)]
pub struct Tabs {
    map: Mutex<Announcements<PeerId>>,
    /// The relay each tab last said it is reachable through.
    via: Mutex<HashMap<PeerId, PeerId>>,
    /// Peers holding a circuit reservation on this relay now.
    reserved: Mutex<HashSet<PeerId>>,
    limits: Limits,
    start: Instant,
}

impl Tabs {
    pub fn new(limits: Limits) -> Self {
        Self {
            map: Mutex::new(Announcements::new(limits)),
            via: Mutex::default(),
            reserved: Mutex::default(),
            limits,
            start: Instant::now(),
        }
    }

    /// How long an announcement stands unless refreshed.
    pub fn ttl(&self) -> Duration {
        self.limits.ttl
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Keeps `tab`'s announcements of `shards` for the stripes `held` says this relay holds
    /// (with their shard count): an index within the stripe, one shard of a stripe per tab.
    /// Returns what was kept.
    pub fn announce(
        &self,
        tab: PeerId,
        via: PeerId,
        shards: &[(StripeId, u8)],
        held: impl Fn(&StripeId) -> Option<usize>,
    ) -> Vec<(StripeId, u8)> {
        let now = self.now();
        let mut kept = Vec::new();
        {
            let mut map = lock(&self.map);
            for &(stripe, index) in shards {
                let fits = held(&stripe).is_some_and(|n| usize::from(index) < n);
                if fits && map.announce(tab, stripe, index, now).is_ok() {
                    kept.push((stripe, index));
                }
            }
        }
        if !kept.is_empty() {
            self.reachable(tab, via);
        }
        kept
    }

    /// Remembers that `tab` is reachable through `via`.
    fn reachable(&self, tab: PeerId, via: PeerId) {
        let mut v = lock(&self.via);
        // As many tabs as the map may keep announcements of, at most.
        if v.len() >= self.limits.total && !v.contains_key(&tab) {
            let live = lock(&self.map).tabs();
            if v.len() > live {
                v.clear();
            }
        }
        v.insert(tab, via);
    }

    /// Whether `tab` may be given nothing more here (banned, or at its quota).
    pub fn is_full(&self, tab: &PeerId) -> bool {
        lock(&self.map).is_full(tab, self.now())
    }

    /// The first of `candidates` (stripe, its `n` and `k`, the index held here) the tab
    /// policy ([`Announcements::offer`], one tab copy of each index) gives `tab`, which is
    /// then taken to hold it. The candidates are gathered before the map is locked.
    pub fn offer(
        &self,
        tab: PeerId,
        via: PeerId,
        candidates: &[(StripeId, usize, usize, u8)],
    ) -> Option<(StripeId, u8)> {
        let now = self.now();
        let chosen = {
            let mut map = lock(&self.map);
            candidates
                .iter()
                .copied()
                .find(|&(stripe, n, k, mine)| map.offer(tab, stripe, n, k, mine, 1, now))
        };
        let (stripe, _, _, index) = chosen?;
        self.reachable(tab, via);
        Some((stripe, index))
    }

    /// Whether the tab's offer must be refused because it says it is reachable through
    /// this relay (`me`) and holds no reservation here.
    pub fn unreachable_here(&self, tab: &PeerId, via: &PeerId, me: &PeerId) -> bool {
        via == me && !lock(&self.reserved).contains(tab)
    }

    /// A reservation was accepted (`true`) or ended (`false`); returns the number held now.
    pub fn reservation(&self, peer: PeerId, held: bool) -> usize {
        let mut r = lock(&self.reserved);
        if held {
            r.insert(peer);
        } else {
            r.remove(&peer);
        }
        r.len()
    }

    /// The tabs that hold shards of `stripe` now, with the relay each is reachable through.
    pub fn holders(&self, stripe: &StripeId) -> Vec<TabHolder> {
        let holders = lock(&self.map).holders(stripe, self.now());
        let via = lock(&self.via);
        holders
            .into_iter()
            .filter_map(|(tab, index)| {
                let through = via.get(&tab)?;
                Some(TabHolder { tab: tab.to_bytes(), via: through.to_bytes(), index })
            })
            .take(kura_core::wire::MAX_TAB_HOLDERS)
            .collect()
    }

    /// Tabs known, announcements kept (expired ones dropped first) and reservations held now.
    pub fn counts(&self) -> (usize, usize, usize) {
        let reserved = lock(&self.reserved).len();
        let mut map = lock(&self.map);
        map.expire(self.now());
        (map.tabs(), map.len(), reserved)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
