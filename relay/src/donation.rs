//! What the relay knows of donating tabs ([`kura_core::donation`] has the rules): which tab
//! holds which shard of the stripes this relay holds, and through which relay each tab is
//! reachable. In memory only, never on disk: announcements expire unless the tab refreshes
//! them, and a relay started again knows no tab until each announces again.

use crate::metrics::Kind;
use kura_core::donation::{
    Announcements, CheckLimits, Limits, Outcome, PopularLimits, Popularity, SpotChecks, TabPay, TabPayment,
    Verdict,
};
use kura_core::stripe::StripeHeader;
use kura_core::wire::{ErrorCode, Request, Response, TabHolder};
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
    checks: Mutex<SpotChecks<PeerId>>,
    /// What each tab is owed for ([`TabPay`]).
    pay: Mutex<TabPay<PeerId>>,
    /// Reads this relay served of each stripe: how many tab copies of its shard to offer.
    popular: Mutex<Popularity>,
    limits: Limits,
    start: Instant,
}

impl Tabs {
    pub fn new(limits: Limits, checks: CheckLimits, popular: PopularLimits) -> Self {
        Self {
            popular: Mutex::new(Popularity::new(popular)),
            map: Mutex::new(Announcements::new(limits)),
            via: Mutex::default(),
            reserved: Mutex::default(),
            checks: Mutex::new(SpotChecks::new(checks)),
            pay: Mutex::new(TabPay::new(checks.tabs)),
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
    /// (with their shard count and shard length): an index within the stripe, one shard of
    /// a stripe per tab, each counting this relay's share of the copy (length over count) in
    /// the tab's pay into `payee`. Returns what was kept.
    pub fn announce(
        &self,
        tab: PeerId,
        via: PeerId,
        shards: &[(StripeId, u8)],
        payee: Option<kura_core::ledger::Key>,
        held: impl Fn(&StripeId) -> Option<(usize, usize)>,
    ) -> Vec<(StripeId, u8)> {
        let now = self.now();
        let mut kept = Vec::new();
        {
            let mut map = lock(&self.map);
            for &(stripe, index) in shards {
                let Some((n, len)) = held(&stripe).filter(|&(n, _)| usize::from(index) < n) else { continue };
                let share = (len / n.max(1)) as u64;
                if map.announce_weighted(tab, stripe, index, share, now).is_ok() {
                    kept.push((stripe, index));
                }
            }
        }
        if !kept.is_empty() {
            self.reachable(tab, via);
            // An account without the account work is paid nothing: the ledger would refuse
            // the transfer each epoch.
            let worked = |a: &kura_core::ledger::Key| {
                kura_core::ledger::account_work(a) >= kura_core::ledger::ACCOUNT_BITS
            };
            if let Some(account) = payee.filter(worked) {
                lock(&self.pay).payee(&tab, account);
            }
        }
        kept
    }

    /// The epoch of `epoch_secs` is over and this relay earned `earned` for it: what it owes
    /// its tabs ([`TabPay::settle`]).
    pub fn settle(
        &self,
        prices: &kura_core::farming::Prices,
        epoch_secs: u64,
        earned: u64,
    ) -> Vec<TabPayment<PeerId>> {
        let accrued = lock(&self.map).take_accrued(self.now());
        lock(&self.pay).settle(accrued, prices, epoch_secs, earned)
    }

    /// After `tab`'s announcements `kept` were kept: the shard to fetch from it now for a
    /// spot-check, if one is due ([`SpotChecks::due`], chosen at random).
    pub fn check_due(&self, tab: &PeerId, kept: &[(StripeId, u8)]) -> Option<(StripeId, u8)> {
        lock(&self.checks).due(tab, kept, rand::random(), self.now())
    }

    /// A spot-check of `tab`'s shard of `stripe` ended with `outcome`: its announcements are
    /// kept, or that one dropped, or all of them (and it is banned for a lie).
    pub fn checked(&self, tab: &PeerId, stripe: &StripeId, outcome: Outcome) -> Verdict {
        let now = self.now();
        let verdict = lock(&self.checks).done(tab, outcome, now);
        lock(&self.pay).checked(tab, outcome);
        let mut map = lock(&self.map);
        match verdict {
            Verdict::Keep => {}
            Verdict::DropStripe => map.forget_stripe(tab, stripe, now),
            Verdict::Caught => map.caught(tab, now),
            Verdict::Forget => map.forget(tab, now),
        }
        verdict
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
            let popular = lock(&self.popular);
            let mut map = lock(&self.map);
            candidates.iter().copied().find(|&(stripe, n, k, mine)| {
                map.offer(tab, stripe, n, k, mine, popular.copies(&stripe, now), now)
            })
        };
        let (stripe, _, _, index) = chosen?;
        self.reachable(tab, via);
        Some((stripe, index))
    }

    /// A reader (not a relay) was served this relay's shard of `stripe`.
    pub fn read(&self, stripe: StripeId) {
        lock(&self.popular).read(stripe, self.now());
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

/// Fetches shard `index` of `stripe` from `tab`, on the connection its announcement came by,
/// verifies it against the stripe's address and applies the verdict ([`Tabs::checked`]).
/// One shard's bytes at most: the answer is bounded by the protocol's frame limit, and a
/// relay runs a few checks at once and checks a tab at most once per interval.
pub async fn spot_check(ctx: crate::repair::Ctx, tab: PeerId, (stripe, index): (StripeId, u8)) {
    let answer = ctx.net.request(tab, Request::Fetch { stripe }).await;
    let shared = &ctx.shared;
    let outcome = match answer {
        Ok(Response::Shards { header, shards }) => {
            let bytes = header.len() + shards.iter().map(|s| s.len()).sum::<usize>();
            shared.metrics.tab_check_bytes.inc_by(bytes as u64);
            match shards.as_slice() {
                [shard] if StripeHeader::check_shard(&stripe, &header, index, shard).is_ok() => {
                    Outcome::Verified
                }
                _ => Outcome::Wrong,
            }
        }
        Ok(Response::Error { code: ErrorCode::NotFound, .. }) => Outcome::NotHeld,
        Ok(_) | Err(_) => Outcome::Unreachable,
    };
    let verdict = shared.tabs.checked(&tab, &stripe, outcome);
    shared.metrics.tab_checks.get_or_create(&Kind { kind: outcome.label().into() }).inc();
    tracing::debug!(%tab, %stripe, index, ?outcome, ?verdict, "spot-checked a donating tab");
}
