//! What the relay knows of donating tabs ([`kura_core::donation`] has the rules): which tab
//! holds which shard of the stripes this relay holds, and through which relay each tab is
//! reachable. In memory only, never on disk: announcements expire unless the tab refreshes
//! them, and a relay started again knows no tab until each announces again.

use kura_core::donation::{Announcements, Limits};
use kura_core::wire::TabHolder;
use kura_core::StripeId;
use libp2p::PeerId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The relay's announcements from tabs.
#[derive(Debug)]
pub struct Tabs {
    map: Mutex<Announcements<PeerId>>,
    /// The relay each tab last said it is reachable through.
    via: Mutex<HashMap<PeerId, PeerId>>,
    limits: Limits,
    start: Instant,
}

impl Tabs {
    pub fn new(limits: Limits) -> Self {
        Self {
            map: Mutex::new(Announcements::new(limits)),
            via: Mutex::default(),
            limits,
            start: Instant::now(),
        }
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
        kept
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

    /// Tabs known and announcements kept now (expired ones dropped first).
    pub fn counts(&self) -> (usize, usize) {
        let mut map = lock(&self.map);
        map.expire(self.now());
        (map.tabs(), map.len())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
