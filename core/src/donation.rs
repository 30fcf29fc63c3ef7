//! Donating tabs: which shards a tab is offered, and what a relay believes of tabs'
//! announcements. Rules only; no IO and no clock (every call takes `now`).
//!
//! Tabs are volatile, so their copies are a tier **on top of** a stripe's close group: never
//! one of the `n` durable shards, never counted by the repair rule. A relay of the group
//! offers copies to tabs ([`offer`]): data shards first, so that `k` tabs can serve a
//! stripe alone (no decoding of parity for a reader of tabs only), each index to one tab
//! before any index to a second, more copies of an index whose relay serves it often
//! ([`Popularity`]), and **never two shards of
//! one stripe to one tab** (a tab that closes must not take two of a stripe's shards with
//! it, and a dishonest tab must not be able to hold enough of a stripe to withhold it).
//!
//! A tab that holds a shard tells the relays of the stripe's group (`Announce`); each keeps
//! the announcement **in memory only**, with an expiry the tab refreshes
//! ([`Announcements`]). The map is bounded three ways, so a stranger's announcements cost
//! it more than the relay: per tab (its quota in stripes), per stripe (copies kept), and in
//! all; and one tab's announcements never displace another's. Readers ask for
//! [`Announcements::holders`] and verify every byte against the shard's address, so a false
//! announcement costs a reader one failed fetch; a tab caught serving bytes that do not
//! verify, or failing a spot-check, loses every announcement and is not heard for a while
//! ([`Announcements::caught`]).
//!
//! Relays do not wait for a reader to find a lie: [`SpotChecks`] has a relay fetch one
//! announced shard, chosen at random, from a tab on the connection its announcement came by,
//! at most once per tab per interval, and judge the answer: bytes that do not verify get the
//! tab caught; a shard it no longer has loses that announcement; a tab that does not answer
//! several times running loses them all.

use crate::StripeId;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::Duration;

/// The index to offer the next donating tab for a stripe of `n` shards with `k` data
/// shards, given the indices tabs already hold (`held`, one entry per copy) and the copies
/// of each index wanted (`copies`, at least 1; more for popular stripes): the least-copied
/// index, data shards before parity, lowest first; `None` when every index has `copies`.
/// `tab_holds` is the index this tab already holds of the stripe, if any: then nothing.
pub fn offer(n: usize, k: usize, held: &[u8], copies: usize, tab_holds: Option<u8>) -> Option<u8> {
    if tab_holds.is_some() || n == 0 {
        return None;
    }
    let mut count = vec![0usize; n];
    for &i in held {
        if let Some(c) = count.get_mut(usize::from(i)) {
            *c += 1;
        }
    }
    let least = *count.iter().min()?;
    if least >= copies.max(1) {
        return None;
    }
    // Among the least-copied, a data shard first, then parity, lowest index first.
    let data = (0..k.min(n)).find(|&i| count[i] == least);
    let any = (0..n).find(|&i| count[i] == least);
    data.or(any).and_then(|i| u8::try_from(i).ok())
}

/// Limits of a relay's map of announcements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long an announcement stands unless refreshed.
    pub ttl: Duration,
    /// Stripes one tab may announce.
    pub per_tab: usize,
    /// Tab copies kept per stripe.
    pub per_stripe: usize,
    /// Announcements kept in all.
    pub total: usize,
    /// How long a tab caught lying is not heard.
    pub ban: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
            per_tab: 4096,
            per_stripe: 12,
            total: 1 << 20,
            ban: Duration::from_secs(3600),
        }
    }
}

/// Why an announcement was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("this tab already announced another shard of the stripe")]
    SecondShard,
    #[error("this tab announced as many stripes as it may")]
    TabFull,
    #[error("the stripe has as many tab copies as are kept")]
    StripeFull,
    #[error("the relay keeps no more announcements")]
    Full,
    #[error("this tab served bytes that did not verify and is not heard for now")]
    Banned,
}

#[derive(Debug, Clone, Copy)]
struct Entry<T> {
    tab: T,
    index: u8,
    until: Duration,
    /// What holding it counts for in the tab's pay ([`Announcements::announce_weighted`]).
    bytes: u64,
}

/// The bytes a tab's kept announcements count for, since when.
#[derive(Debug, Clone, Copy)]
struct Level {
    bytes: u64,
    since: Duration,
}

/// A relay's announcements from tabs: who holds which shard of which stripe, until when.
#[derive(Debug)]
pub struct Announcements<T> {
    limits: Limits,
    by_stripe: HashMap<StripeId, Vec<Entry<T>>>,
    per_tab: HashMap<T, usize>,
    total: usize,
    banned: HashMap<T, Duration>,
    /// Expiries in order, for [`Announcements::expire`]: (until, stripe).
    queue: BTreeMap<(Duration, StripeId), ()>,
    /// Each tab's weighted bytes kept now ([`Announcements::announce_weighted`]).
    levels: HashMap<T, Level>,
    /// Byte-milliseconds each tab held since they were last taken
    /// ([`Announcements::take_accrued`]).
    accrued: HashMap<T, u128>,
}

impl<T: Clone + Eq + Hash> Announcements<T> {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            by_stripe: HashMap::new(),
            per_tab: HashMap::new(),
            total: 0,
            banned: HashMap::new(),
            queue: BTreeMap::new(),
            levels: HashMap::new(),
            accrued: HashMap::new(),
        }
    }

    /// Keeps (or refreshes) `tab`'s announcement that it holds shard `index` of `stripe`,
    /// counting for nothing in its pay.
    pub fn announce(&mut self, tab: T, stripe: StripeId, index: u8, now: Duration) -> Result<(), Refused> {
        self.announce_weighted(tab, stripe, index, 0, now)
    }

    /// Keeps (or refreshes) `tab`'s announcement that it holds shard `index` of `stripe`;
    /// while it is kept it counts `bytes` (the relay's share of paying for the copy) in the
    /// tab's byte-time ([`Announcements::take_accrued`]), from `now` until it expires or is
    /// dropped.
    pub fn announce_weighted(
        &mut self,
        tab: T,
        stripe: StripeId,
        index: u8,
        bytes: u64,
        now: Duration,
    ) -> Result<(), Refused> {
        if self.banned.get(&tab).is_some_and(|until| now < *until) {
            return Err(Refused::Banned);
        }
        self.expire(now);
        let until = now + self.limits.ttl;
        let entries = self.by_stripe.entry(stripe).or_default();
        if let Some(e) = entries.iter_mut().find(|e| e.tab == tab) {
            if e.index != index {
                return Err(Refused::SecondShard);
            }
            e.until = until;
            self.queue.insert((until, stripe), ());
            return Ok(());
        }
        if entries.len() >= self.limits.per_stripe {
            return Err(Refused::StripeFull);
        }
        let mine = self.per_tab.get(&tab).copied().unwrap_or(0);
        if mine >= self.limits.per_tab {
            return Err(Refused::TabFull);
        }
        if self.total >= self.limits.total {
            return Err(Refused::Full);
        }
        entries.push(Entry { tab: tab.clone(), index, until, bytes });
        self.touch(&tab, now);
        self.levels.entry(tab.clone()).or_insert(Level { bytes: 0, since: now }).bytes += bytes;
        *self.per_tab.entry(tab).or_default() += 1;
        self.total += 1;
        self.queue.insert((until, stripe), ());
        Ok(())
    }

    /// The tabs that hold shards of `stripe` at `now`, with their index.
    pub fn holders(&self, stripe: &StripeId, now: Duration) -> Vec<(T, u8)> {
        let Some(entries) = self.by_stripe.get(stripe) else { return Vec::new() };
        entries.iter().filter(|e| now < e.until).map(|e| (e.tab.clone(), e.index)).collect()
    }

    /// The indices tabs hold of `stripe` at `now` (for [`offer`]).
    pub fn held(&self, stripe: &StripeId, now: Duration) -> Vec<u8> {
        self.holders(stripe, now).into_iter().map(|(_, i)| i).collect()
    }

    /// The index `tab` holds of `stripe` at `now`, if any.
    pub fn index_of(&self, tab: &T, stripe: &StripeId, now: Duration) -> Option<u8> {
        self.by_stripe.get(stripe)?.iter().find(|e| &e.tab == tab && now < e.until).map(|e| e.index)
    }

    /// Whether to offer `tab` this relay's shard `mine` of `stripe` (`n` shards, `k` of
    /// data), with `copies` tab copies of `mine` wanted ([`Popularity::copies`]): yes when
    /// the tab holds nothing of the stripe, is not banned, and either [`offer`] names `mine`
    /// for a first copy of each index (data shards first, so the group agrees on the order
    /// with no coordinator), or every index has its first copy and `mine` has fewer than
    /// `copies` (each relay judges its own index's popularity, so one relay that thinks
    /// little of a stripe never holds back another's extra copies). The tab is then taken to
    /// hold it (an announcement it refreshes once it keeps the shard, or that expires), so
    /// that two tabs asking at once are not offered the same index, and the tab's quota of
    /// announcements here bounds what it can be given.
    #[allow(clippy::too_many_arguments)]
    pub fn offer(
        &mut self,
        tab: T,
        stripe: StripeId,
        n: usize,
        k: usize,
        mine: u8,
        copies: usize,
        now: Duration,
    ) -> bool {
        self.expire(now);
        let tab_holds = self.index_of(&tab, &stripe, now);
        let held = self.held(&stripe, now);
        let wanted = match offer(n, k, &held, 1, tab_holds) {
            Some(first) => first == mine,
            None => {
                tab_holds.is_none()
                    && usize::from(mine) < n
                    && held.iter().filter(|&&i| i == mine).count() < copies
            }
        };
        wanted && self.announce(tab, stripe, mine, now).is_ok()
    }

    /// Drops every announcement whose time is over.
    pub fn expire(&mut self, now: Duration) {
        while let Some((&(until, stripe), ())) = self.queue.first_key_value() {
            if until > now {
                break;
            }
            self.queue.pop_first();
            // Every entry's expiry has its own key, so each is dropped at its time, in order:
            // its tab's byte-time stops counting exactly then.
            self.drop_where(&stripe, |e| e.until <= until, now);
        }
    }

    /// Drops the entries of `stripe` that are `gone`, each at its expiry or `now`, whichever
    /// is first.
    fn drop_where(&mut self, stripe: &StripeId, gone: impl Fn(&Entry<T>) -> bool, now: Duration) {
        let Some(mut entries) = self.by_stripe.remove(stripe) else { return };
        let mut kept = Vec::with_capacity(entries.len());
        for e in entries.drain(..) {
            if gone(&e) {
                self.touch(&e.tab, e.until.min(now));
                if let Some(c) = self.per_tab.get_mut(&e.tab) {
                    *c -= 1;
                    if *c == 0 {
                        self.per_tab.remove(&e.tab);
                        self.levels.remove(&e.tab);
                    } else if let Some(l) = self.levels.get_mut(&e.tab) {
                        l.bytes -= e.bytes;
                    }
                }
                self.total -= 1;
            } else {
                kept.push(e);
            }
        }
        if !kept.is_empty() {
            self.by_stripe.insert(*stripe, kept);
        }
    }

    /// Adds `tab`'s byte-time up to `at` to what it accrued.
    fn touch(&mut self, tab: &T, at: Duration) {
        let Some(l) = self.levels.get_mut(tab) else { return };
        let ms = at.saturating_sub(l.since).as_millis();
        if l.bytes > 0 && ms > 0 {
            *self.accrued.entry(tab.clone()).or_default() += u128::from(l.bytes) * ms;
        }
        l.since = l.since.max(at);
    }

    /// The byte-milliseconds each tab's kept announcements counted for since the last call
    /// (weights as given to [`Announcements::announce_weighted`]), up to `now`; a tab caught
    /// since has none.
    pub fn take_accrued(&mut self, now: Duration) -> Vec<(T, u128)> {
        self.expire(now);
        let tabs: Vec<T> = self.levels.keys().cloned().collect();
        for tab in tabs {
            self.touch(&tab, now);
        }
        self.accrued.drain().collect()
    }

    /// `tab` served bytes that did not verify, or failed a spot-check: every announcement
    /// of it is dropped and it is not heard until the ban is over.
    pub fn caught(&mut self, tab: &T, now: Duration) {
        self.banned.insert(tab.clone(), now + self.limits.ban);
        self.forget(tab, now);
        self.accrued.remove(tab);
        self.banned.retain(|_, until| now < *until);
    }

    /// Drops every announcement of `tab` (no ban: it may announce again).
    pub fn forget(&mut self, tab: &T, now: Duration) {
        let stripes: Vec<StripeId> = self
            .by_stripe
            .iter()
            .filter(|(_, es)| es.iter().any(|e| &e.tab == tab))
            .map(|(s, _)| *s)
            .collect();
        for s in stripes {
            self.drop_where(&s, |e| &e.tab == tab, now);
        }
    }

    /// Drops `tab`'s announcement of `stripe`.
    pub fn forget_stripe(&mut self, tab: &T, stripe: &StripeId, now: Duration) {
        self.drop_where(stripe, |e| &e.tab == tab, now);
    }

    /// Whether `tab` may be given no more here at `now`: banned, or at its quota of
    /// announcements (a relay refuses its offers before looking at what it holds).
    pub fn is_full(&mut self, tab: &T, now: Duration) -> bool {
        self.expire(now);
        self.banned.get(tab).is_some_and(|until| now < *until)
            || self.per_tab.get(tab).is_some_and(|&c| c >= self.limits.per_tab)
            || self.total >= self.limits.total
    }

    /// Tabs with at least one announcement, and announcements, kept now.
    pub fn tabs(&self) -> usize {
        self.per_tab.len()
    }

    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// What a relay learned from fetching an announced shard from a tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The shard and header verified against the stripe's address.
    Verified,
    /// The tab says it does not hold the shard (it may have dropped a damaged copy).
    NotHeld,
    /// Bytes that do not verify, another stripe's header or another index.
    Wrong,
    /// No answer, an error, or the tab busy.
    Unreachable,
}

impl Outcome {
    /// Its name in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Verified => "verified",
            Outcome::NotHeld => "not_held",
            Outcome::Wrong => "wrong",
            Outcome::Unreachable => "unreachable",
        }
    }
}

/// What the relay does to a tab's announcements after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing.
    Keep,
    /// Drop the announcement of the checked stripe.
    DropStripe,
    /// Drop every announcement of the tab and do not hear it for a while
    /// ([`Announcements::caught`]).
    Caught,
    /// Drop every announcement of the tab (it went away; it may announce again).
    Forget,
}

/// Limits of a relay's spot-checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckLimits {
    /// The least time between two checks of one tab.
    pub every: Duration,
    /// Checks running at once (each fetches one shard).
    pub running: usize,
    /// Unanswered checks in a row after which a tab's announcements are dropped.
    pub misses: u32,
    /// Tabs remembered (when was each checked); the oldest are forgotten past it.
    pub tabs: usize,
}

impl Default for CheckLimits {
    fn default() -> Self {
        Self { every: Duration::from_secs(300), running: 4, misses: 3, tabs: 1 << 16 }
    }
}

#[derive(Debug, Clone, Copy)]
struct Checked {
    at: Duration,
    misses: u32,
}

/// A relay's spot-checks of tabs: whom to check after an announcement, and what to do with
/// the answer. Rules only: the relay fetches and verifies, and tells [`SpotChecks::done`].
#[derive(Debug)]
pub struct SpotChecks<T> {
    limits: CheckLimits,
    checked: HashMap<T, Checked>,
    running: HashMap<T, (StripeId, u8)>,
}

impl<T: Clone + Eq + Hash> SpotChecks<T> {
    pub fn new(limits: CheckLimits) -> Self {
        Self { limits, checked: HashMap::new(), running: HashMap::new() }
    }

    /// `tab` just had `kept` announcements kept: the one to fetch from it now, if its check
    /// is due (never checked, or not within [`CheckLimits::every`]) and a check may start.
    /// `pick` is a random number (a tab must not know which shard will be asked for).
    pub fn due(
        &mut self,
        tab: &T,
        kept: &[(StripeId, u8)],
        pick: u64,
        now: Duration,
    ) -> Option<(StripeId, u8)> {
        if kept.is_empty() || self.running.len() >= self.limits.running || self.running.contains_key(tab) {
            return None;
        }
        if self.checked.get(tab).is_some_and(|c| now < c.at + self.limits.every) {
            return None;
        }
        if self.checked.len() >= self.limits.tabs && !self.checked.contains_key(tab) {
            // Forget tabs not checked for several intervals; if none, check nobody new.
            let old = self.limits.every * 4;
            self.checked.retain(|_, c| now < c.at + old);
            if self.checked.len() >= self.limits.tabs {
                return None;
            }
        }
        let chosen = kept[(pick % kept.len() as u64) as usize];
        self.running.insert(tab.clone(), chosen);
        Some(chosen)
    }

    /// The check of `tab` ended with `outcome`: what to do with its announcements.
    pub fn done(&mut self, tab: &T, outcome: Outcome, now: Duration) -> Verdict {
        if self.running.remove(tab).is_none() {
            return Verdict::Keep;
        }
        let misses = self.checked.get(tab).map_or(0, |c| c.misses);
        let (misses, verdict) = match outcome {
            Outcome::Verified => (0, Verdict::Keep),
            Outcome::NotHeld => (0, Verdict::DropStripe),
            Outcome::Wrong => (0, Verdict::Caught),
            Outcome::Unreachable if misses + 1 >= self.limits.misses => (0, Verdict::Forget),
            Outcome::Unreachable => (misses + 1, Verdict::Keep),
        };
        self.checked.insert(tab.clone(), Checked { at: now, misses });
        verdict
    }

    /// Checks running now.
    pub fn running(&self) -> usize {
        self.running.len()
    }
}

/// How a relay judges a stripe popular, and what that earns it in tab copies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PopularLimits {
    /// A read counts half as much after this long, a quarter after twice as long.
    pub half_life: Duration,
    /// Reads (as they stand after decay) that earn a stripe one more tab copy of each index.
    pub reads_per_copy: f64,
    /// Tab copies of one index at most (the first one is every stripe's).
    pub max_copies: usize,
    /// Stripes whose reads are remembered; a new one past it is not counted until old
    /// counts fade.
    pub stripes: usize,
}

impl Default for PopularLimits {
    fn default() -> Self {
        Self { half_life: Duration::from_secs(600), reads_per_copy: 16.0, max_copies: 3, stripes: 1 << 16 }
    }
}

/// `reads` counted at `since`, as they stand at `now`: halved every `half_life` (none left
/// with no half-life).
fn fade(reads: f64, since: Duration, now: Duration, half_life: Duration) -> f64 {
    let half = half_life.as_secs_f64();
    if half <= 0.0 {
        return 0.0;
    }
    reads * (-now.saturating_sub(since).as_secs_f64() / half).exp2()
}

/// Reads of the stripes a relay holds, fading with time: how many tab copies of its shard a
/// relay offers ([`Announcements::offer`]'s `copies`). Every stripe gets one tab copy of
/// each index; one read often enough earns more, up to [`PopularLimits::max_copies`]. A
/// relay counts the reads it serves itself, so the group needs no agreement: the relays a
/// stripe's readers ask (those of its data shards first) offer their indices to more tabs.
///
/// Counted by whoever reads, so a stranger can make a stripe look popular: each read costs it
/// a whole shard sent to it and a request of its allowance, and what it buys is bounded — at
/// most `max_copies` tab copies of each index, within the per-stripe cap of announcements,
/// given only to tabs that ask and pass spot-checks; no relay stores or sends more for it.
#[derive(Debug)]
pub struct Popularity {
    limits: PopularLimits,
    /// stripe → (reads as they stood at, at).
    reads: HashMap<StripeId, (f64, Duration)>,
}

impl Popularity {
    pub fn new(limits: PopularLimits) -> Self {
        Self { limits, reads: HashMap::new() }
    }

    fn faded(&self, reads: f64, since: Duration, now: Duration) -> f64 {
        fade(reads, since, now, self.limits.half_life)
    }

    /// A reader was served a shard of `stripe`.
    pub fn read(&mut self, stripe: StripeId, now: Duration) {
        if !self.reads.contains_key(&stripe) && self.reads.len() >= self.limits.stripes {
            // Forget the stripes whose reads faded below one; if none, count nothing new.
            let half = self.limits.half_life;
            self.reads.retain(|_, &mut (r, at)| fade(r, at, now, half) >= 1.0);
            if self.reads.len() >= self.limits.stripes {
                return;
            }
        }
        let before = self.reads.get(&stripe).map_or(0.0, |&(r, at)| self.faded(r, at, now));
        self.reads.insert(stripe, (before + 1.0, now));
    }

    /// Reads of `stripe` as they stand `now`.
    pub fn reads(&self, stripe: &StripeId, now: Duration) -> f64 {
        self.reads.get(stripe).map_or(0.0, |&(r, at)| self.faded(r, at, now))
    }

    /// Tab copies of each index of `stripe` to keep: one, and one more per
    /// [`PopularLimits::reads_per_copy`] reads, at most [`PopularLimits::max_copies`].
    pub fn copies(&self, stripe: &StripeId, now: Duration) -> usize {
        let per = self.limits.reads_per_copy;
        let extra = if per > 0.0 { (self.reads(stripe, now) / per).floor() } else { 0.0 };
        // `as` saturates: a huge count is the cap.
        (1 + extra as usize).min(self.limits.max_copies.max(1))
    }

    /// Stripes whose reads are remembered.
    pub fn len(&self) -> usize {
        self.reads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }
}

/// What a donating tab earns, in percent of the relays' rate for the same bytes held for the
/// same time: tabs are volatile copies on top of the close group.
pub const TAB_DISCOUNT_PERCENT: u64 = 50;
/// Most of a relay's reward for an epoch that it pays its tabs, in percent.
pub const TAB_SHARE_PERCENT: u64 = 50;

/// How a relay's payment to a tab begins its memo: `tab reward, epoch N`. A wallet counts
/// what its tab earned by the credits whose transfers say so ([`is_tab_reward`]).
pub const TAB_REWARD_MEMO: &str = "tab reward, epoch ";

/// The memo of a relay's payment to a tab for `epoch`.
pub fn tab_reward_memo(epoch: u64) -> Vec<u8> {
    format!("{TAB_REWARD_MEMO}{epoch}").into_bytes()
}

/// Whether `memo` is a relay's payment to a tab ([`tab_reward_memo`]).
pub fn is_tab_reward(memo: &[u8]) -> bool {
    memo.strip_prefix(TAB_REWARD_MEMO.as_bytes())
        .is_some_and(|n| !n.is_empty() && n.len() <= 20 && n.iter().all(u8::is_ascii_digit))
}
/// Most tabs one relay pays in one epoch (one ledger transfer each; the largest amounts).
pub const MAX_TAB_PAYMENTS: usize = 64;

/// How a relay pays the tabs that hold copies of its stripes: every relay of a stripe's
/// close group keeps the tab's announcement, weighted by its share of the copy (the shard's
/// bytes over the stripe's `n`), so a tab that announces to the whole group is paid about
/// once for the copy. At each epoch's end the relay pays each tab for the byte-time its
/// announcements counted for ([`Announcements::take_accrued`]) at [`TAB_DISCOUNT_PERCENT`]
/// of the relays' rate, **out of its own reward for that epoch** (at most
/// [`TAB_SHARE_PERCENT`] of it, every amount scaled down alike when they come to more), by
/// an ordinary ledger transfer from its rewards account: nothing is minted for tabs, so the
/// network's supply rule is untouched. A tab is paid only when it named an account, passed at
/// least one spot-check in the epoch and failed none (a wrong or missing shard, or no answer,
/// forfeits its epoch here).
#[derive(Debug)]
pub struct TabPay<T> {
    standing: HashMap<T, Standing>,
    max: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct Standing {
    payee: Option<crate::ledger::Key>,
    verified: bool,
    failed: bool,
}

/// One payment to a tab: who, to which account, how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TabPayment<T> {
    pub tab: T,
    pub account: crate::ledger::Key,
    pub amount: u64,
}

impl<T: Clone + Eq + Hash + Ord> TabPay<T> {
    /// Remembering at most `max` tabs in an epoch (the announcements' total bounds it too).
    pub fn new(max: usize) -> Self {
        Self { standing: HashMap::new(), max }
    }

    fn entry(&mut self, tab: &T) -> Option<&mut Standing> {
        if self.standing.len() >= self.max && !self.standing.contains_key(tab) {
            return None;
        }
        Some(self.standing.entry(tab.clone()).or_default())
    }

    /// `tab` asks to be paid into `account` (its latest word stands).
    pub fn payee(&mut self, tab: &T, account: crate::ledger::Key) {
        if let Some(s) = self.entry(tab) {
            s.payee = Some(account);
        }
    }

    /// A spot-check of `tab` ended with `outcome`.
    pub fn checked(&mut self, tab: &T, outcome: Outcome) {
        if let Some(s) = self.entry(tab) {
            match outcome {
                Outcome::Verified => s.verified = true,
                Outcome::NotHeld | Outcome::Wrong | Outcome::Unreachable => s.failed = true,
            }
        }
    }

    /// The epoch is over: the payments for the byte-time `accrued` (byte-milliseconds per
    /// tab) in an epoch of `epoch_secs` at `prices`, out of `earned` (the relay's reward for
    /// the epoch). Every tab's standing starts afresh.
    pub fn settle(
        &mut self,
        accrued: impl IntoIterator<Item = (T, u128)>,
        prices: &crate::farming::Prices,
        epoch_secs: u64,
        earned: u64,
    ) -> Vec<TabPayment<T>> {
        let standing = std::mem::take(&mut self.standing);
        let epoch_ms = u128::from(epoch_secs) * 1000;
        let mut due: Vec<TabPayment<T>> = accrued
            .into_iter()
            .filter_map(|(tab, byte_ms)| {
                let s = standing.get(&tab)?;
                let account = s.payee.filter(|_| s.verified && !s.failed)?;
                let amount = prices.reward_for_time(byte_ms, epoch_ms, TAB_DISCOUNT_PERCENT);
                (amount > 0).then_some(TabPayment { tab, account, amount })
            })
            .collect();
        let budget = u128::from(earned) * u128::from(TAB_SHARE_PERCENT) / 100;
        let total: u128 = due.iter().map(|p| u128::from(p.amount)).sum();
        if total > budget {
            for p in &mut due {
                p.amount = u64::try_from(u128::from(p.amount) * budget / total).unwrap_or(0);
            }
            due.retain(|p| p.amount > 0);
        }
        due.sort_by(|a, b| b.amount.cmp(&a.amount).then_with(|| a.tab.cmp(&b.tab)));
        due.truncate(MAX_TAB_PAYMENTS);
        due
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn s(n: u8) -> StripeId {
        StripeId::from_bytes([n; 32])
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn offers_go_data_shards_first_one_copy_each_before_a_second() {
        let (n, k) = (6, 4);
        let mut held = Vec::new();
        let mut order = Vec::new();
        while let Some(i) = offer(n, k, &held, 2, None) {
            order.push(i);
            held.push(i);
        }
        assert_eq!(order, vec![0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]);
        // k tabs hold the data shards: a reader of tabs alone needs no parity.
        assert_eq!(&order[..k], &[0, 1, 2, 3]);
        // A tab that holds a shard of the stripe is offered nothing more of it.
        assert_eq!(offer(n, k, &[0], 2, Some(0)), None);
        // One copy each wanted: none once all six are out.
        assert_eq!(offer(n, k, &[0, 1, 2, 3, 4, 5], 1, None), None);
        // A gap is filled first.
        assert_eq!(offer(n, k, &[0, 1, 3, 4, 5], 1, None), Some(2));
        assert_eq!(offer(n, k, &[0, 0, 1, 2, 3], 2, None), Some(4));
    }

    /// Six relays of a stripe's group each hold one index and offer only theirs; tabs
    /// announce to all six. Four tabs asking every relay in turn (each in its own order)
    /// end with the four data shards, one each; a fifth gets a parity shard; a tab is never
    /// offered a second shard of the stripe; an offer not refreshed lapses and is offered
    /// again.
    #[test]
    fn relays_offering_their_own_index_give_k_tabs_the_data_shards() {
        let (n, k) = (6usize, 4usize);
        let limits = Limits { ttl: 10 * SEC, ..Limits::default() };
        // Every relay's map, fed the same announcements (each tab announces to the group).
        let mut maps: Vec<Announcements<u32>> = (0..n).map(|_| Announcements::new(limits)).collect();
        let mut got: Vec<Option<u8>> = Vec::new();
        for tab in 0..4u32 {
            let mut mine = None;
            for r in (0..n).map(|j| (j + 2 * tab as usize) % n) {
                if maps[r].offer(tab, s(1), n, k, r as u8, 1, SEC) {
                    assert!(mine.is_none(), "tab {tab} offered a second shard");
                    mine = Some(r as u8);
                    for (j, m) in maps.iter_mut().enumerate() {
                        if j != r {
                            m.announce(tab, s(1), r as u8, SEC).unwrap();
                        }
                    }
                }
            }
            got.push(mine);
        }
        assert_eq!(got, vec![Some(0), Some(1), Some(2), Some(3)]);
        // A tab at its quota of announcements, or banned, is full.
        let mut small: Announcements<u32> = Announcements::new(Limits { per_tab: 1, ..limits });
        assert!(!small.is_full(&5, SEC));
        assert!(small.offer(5, s(2), n, k, 0, 1, SEC));
        assert!(small.is_full(&5, SEC) && !small.offer(5, s(3), n, k, 0, 1, SEC));
        small.caught(&6, SEC);
        assert!(small.is_full(&6, SEC));
        assert!(!small.is_full(&5, 11 * SEC), "its announcement expired");
        // A fifth tab: parity.
        assert!((0..4).all(|r| !maps[r].offer(9, s(1), n, k, r as u8, 1, SEC)));
        assert!(maps[4].offer(9, s(1), n, k, 4, 1, SEC));
        // Tab 0 never refreshed at relay 0 after 10 s: index 0 is offered again there.
        assert!(maps[0].offer(10, s(1), n, k, 0, 1, 12 * SEC));
    }

    #[test]
    fn tab_reward_memos_are_told_apart() {
        assert!(is_tab_reward(&tab_reward_memo(0)) && is_tab_reward(&tab_reward_memo(u64::MAX)));
        for other in [&b"tab reward, epoch "[..], b"tab reward, epoch 1x", b"batch 4", b"", b"tab reward"] {
            assert!(!is_tab_reward(other), "{other:?}");
        }
    }

    /// Reads fade by half each half-life; every `reads_per_copy` of them standing earn one
    /// more tab copy, up to the cap; the map of counted stripes is bounded, and stripes
    /// whose reads faded make room.
    #[test]
    fn reads_earn_popular_stripes_more_copies_and_fade() {
        let limits = PopularLimits { half_life: 100 * SEC, reads_per_copy: 4.0, max_copies: 3, stripes: 2 };
        let mut p = Popularity::new(limits);
        assert_eq!(p.copies(&s(1), SEC), 1, "every stripe gets one tab copy of each index");
        for _ in 0..3 {
            p.read(s(1), SEC);
        }
        assert_eq!(p.copies(&s(1), SEC), 1);
        p.read(s(1), SEC);
        assert_eq!(p.copies(&s(1), SEC), 2, "four reads standing: a second copy");
        for _ in 0..100 {
            p.read(s(1), SEC);
        }
        assert_eq!(p.copies(&s(1), SEC), 3, "never over the cap");
        // 104 reads fade to 13 after three half-lives, to 3.25 after five.
        assert!((p.reads(&s(1), 301 * SEC) - 13.0).abs() < 1e-9);
        assert_eq!(p.copies(&s(1), 301 * SEC), 3);
        assert_eq!(p.copies(&s(1), 501 * SEC), 1);
        // Two stripes counted at most: a third is not counted while both stand...
        p.read(s(2), 501 * SEC);
        p.read(s(3), 501 * SEC);
        assert_eq!((p.len(), p.reads(&s(3), 501 * SEC)), (2, 0.0));
        // ... and is once one of them faded below one read (stripe 1: 0.4 reads by then;
        // stripe 2, read again, stands at two and is kept).
        for _ in 0..4 {
            p.read(s(2), 700 * SEC);
        }
        p.read(s(3), 800 * SEC);
        assert_eq!(p.len(), 2);
        assert_eq!(p.reads(&s(3), 800 * SEC), 1.0);
        assert_eq!(p.reads(&s(1), 800 * SEC), 0.0, "forgotten");
        assert!(p.reads(&s(2), 800 * SEC) > 2.0);
    }

    /// Each relay of a group offers its own index and judges its popularity alone: once every
    /// index has its first tab copy, relays whose index is read often offer more copies of it
    /// (up to what they want), and one that thinks nothing of the stripe holds nobody back.
    #[test]
    fn relays_whose_index_is_read_offer_it_to_more_tabs() {
        let (n, k) = (6usize, 4usize);
        let mut maps: Vec<Announcements<u32>> =
            (0..n).map(|_| Announcements::new(Limits::default())).collect();
        // Relays 0 and 2 want three copies, relay 1 two, the rest one (their shards not read).
        let copies = [3usize, 2, 3, 1, 1, 1];
        let mut got: Vec<Option<u8>> = Vec::new();
        for tab in 0..12u32 {
            let mut mine = None;
            for r in (0..n).map(|j| (j + tab as usize) % n) {
                if maps[r].offer(tab, s(1), n, k, r as u8, copies[r], SEC) {
                    assert!(mine.is_none(), "tab {tab} offered a second shard");
                    mine = Some(r as u8);
                    for (j, m) in maps.iter_mut().enumerate() {
                        if j != r {
                            m.announce(tab, s(1), r as u8, SEC).unwrap();
                        }
                    }
                }
            }
            got.push(mine);
        }
        // The first six tabs take one copy of each index, in the group's order.
        assert_eq!(&got[..6], &[Some(0), Some(1), Some(2), Some(3), Some(4), Some(5)]);
        let mut count = [0usize; 6];
        for i in got.iter().flatten() {
            count[usize::from(*i)] += 1;
        }
        assert_eq!(count, copies, "each index has the copies its relay wants: {got:?}");
        assert_eq!(got.iter().filter(|g| g.is_none()).count(), 12 - copies.iter().sum::<usize>());
        // A tab that holds a shard is offered no other, however popular.
        assert!(!maps[0].offer(3, s(1), n, k, 0, 5, SEC));
    }

    #[test]
    fn announcements_expire_unless_refreshed_and_live_only_in_this_map() {
        let mut a: Announcements<u32> = Announcements::new(Limits { ttl: 10 * SEC, ..Limits::default() });
        a.announce(1, s(1), 0, SEC).unwrap();
        a.announce(2, s(1), 1, 2 * SEC).unwrap();
        assert_eq!(a.holders(&s(1), 3 * SEC), vec![(1, 0), (2, 1)]);
        // Tab 1 refreshes, tab 2 does not.
        a.announce(1, s(1), 0, 9 * SEC).unwrap();
        assert_eq!(a.holders(&s(1), 12 * SEC), vec![(1, 0)]);
        a.expire(12 * SEC);
        assert_eq!((a.len(), a.tabs()), (1, 1));
        a.expire(19 * SEC);
        assert!(a.is_empty());
        assert_eq!(a.tabs(), 0);
        assert!(a.holders(&s(1), 19 * SEC).is_empty());
    }

    #[test]
    fn a_tab_never_holds_two_shards_of_a_stripe_and_the_bounds_hold() {
        let limits = Limits { ttl: 100 * SEC, per_tab: 3, per_stripe: 2, total: 5, ban: 50 * SEC };
        let mut a: Announcements<u32> = Announcements::new(limits);
        a.announce(1, s(1), 0, SEC).unwrap();
        assert_eq!(a.announce(1, s(1), 1, SEC), Err(Refused::SecondShard));
        a.announce(2, s(1), 1, SEC).unwrap();
        assert_eq!(a.announce(3, s(1), 2, SEC), Err(Refused::StripeFull));
        a.announce(1, s(2), 0, SEC).unwrap();
        a.announce(1, s(3), 0, SEC).unwrap();
        assert_eq!(a.announce(1, s(4), 0, SEC), Err(Refused::TabFull));
        a.announce(2, s(4), 0, SEC).unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(a.announce(3, s(5), 0, SEC), Err(Refused::Full));
        // A full map does not stop a refresh, and one tab never displaces another.
        a.announce(2, s(1), 1, 2 * SEC).unwrap();
        assert_eq!(a.holders(&s(1), 3 * SEC).len(), 2);
    }

    #[test]
    fn a_tab_caught_serving_bad_bytes_loses_every_announcement_for_a_while() {
        let mut a: Announcements<u32> = Announcements::new(Limits { ban: 50 * SEC, ..Limits::default() });
        for stripe in 1..=3 {
            a.announce(7, s(stripe), stripe, SEC).unwrap();
        }
        a.announce(8, s(1), 4, SEC).unwrap();
        a.caught(&7, 2 * SEC);
        assert_eq!(a.holders(&s(1), 3 * SEC), vec![(8, 4)]);
        assert!(a.holders(&s(2), 3 * SEC).is_empty());
        assert_eq!((a.len(), a.tabs()), (1, 1));
        assert_eq!(a.announce(7, s(2), 2, 10 * SEC), Err(Refused::Banned));
        a.announce(7, s(2), 2, 52 * SEC).unwrap();
        assert_eq!(a.index_of(&7, &s(2), 53 * SEC), Some(2));
    }

    /// Many tabs announcing at random over simulated time: the counts always agree with
    /// the map, and nothing outlives its expiry.
    #[test]
    fn counts_agree_with_the_map_under_random_use() {
        let mut rng = crate::testdata::XorShift(17);
        let limits = Limits { ttl: 30 * SEC, per_tab: 20, per_stripe: 4, total: 200, ban: 40 * SEC };
        let mut a: Announcements<u32> = Announcements::new(limits);
        for step in 0..5000u64 {
            let now = Duration::from_millis(step * 100);
            let tab = rng.below(40) as u32;
            let stripe = s(rng.below(60) as u8);
            match rng.below(20) {
                0 => a.caught(&tab, now),
                1 => a.expire(now),
                2 => a.forget(&tab, now),
                3 => a.forget_stripe(&tab, &stripe, now),
                _ => {
                    let _ = a.announce(tab, stripe, rng.below(6) as u8, now);
                }
            }
            let counted: usize = a.by_stripe.values().map(Vec::len).sum();
            assert_eq!(counted, a.len());
            assert!(a.len() <= limits.total);
            assert!(a.per_tab.values().all(|&c| c > 0 && c <= limits.per_tab));
            assert!(a.levels.keys().all(|t| a.per_tab.contains_key(t)) && a.levels.len() == a.per_tab.len());
            assert!(a.by_stripe.values().all(|es| es.len() <= limits.per_stripe));
            for es in a.by_stripe.values() {
                let mut tabs: Vec<u32> = es.iter().map(|e| e.tab).collect();
                tabs.sort_unstable();
                tabs.dedup();
                assert_eq!(tabs.len(), es.len(), "a tab with two shards of one stripe");
            }
        }
        a.expire(Duration::from_secs(10_000));
        assert!(a.is_empty());
    }

    #[test]
    fn a_tab_is_checked_at_once_then_once_per_interval() {
        let limits = CheckLimits { every: 100 * SEC, running: 2, misses: 3, tabs: 10 };
        let mut c: SpotChecks<u32> = SpotChecks::new(limits);
        let kept = [(s(1), 1), (s(2), 4), (s(3), 0)];
        // Nothing kept, nothing to check.
        assert_eq!(c.due(&7, &[], 0, SEC), None);
        // The pick chooses among what was kept.
        assert_eq!(c.due(&7, &kept, 4, SEC), Some((s(2), 4)));
        // Not twice at once.
        assert_eq!(c.due(&7, &kept, 0, SEC), None);
        assert_eq!(c.done(&7, Outcome::Verified, 2 * SEC), Verdict::Keep);
        // Not again within the interval, and again after it.
        assert_eq!(c.due(&7, &kept, 0, 101 * SEC), None);
        assert_eq!(c.due(&7, &kept, 0, 102 * SEC), Some((s(1), 1)));
        // A result nobody asked for changes nothing.
        assert_eq!(c.done(&8, Outcome::Wrong, 103 * SEC), Verdict::Keep);
        assert_eq!(c.running(), 1);
        // At most `running` checks at once.
        assert!(c.due(&8, &kept, 0, 103 * SEC).is_some());
        assert_eq!(c.due(&9, &kept, 0, 103 * SEC), None);
        assert_eq!(c.done(&8, Outcome::Wrong, 104 * SEC), Verdict::Caught);
        assert_eq!(c.done(&7, Outcome::NotHeld, 104 * SEC), Verdict::DropStripe);
        assert_eq!(c.running(), 0);
    }

    #[test]
    fn a_tab_that_does_not_answer_several_times_running_is_forgotten() {
        let limits = CheckLimits { every: 10 * SEC, running: 4, misses: 3, tabs: 10 };
        let mut c: SpotChecks<u32> = SpotChecks::new(limits);
        let kept = [(s(1), 1)];
        let mut verdicts = Vec::new();
        for round in 0..7u64 {
            let now = SEC * (round as u32 * 20);
            c.due(&7, &kept, round, now).unwrap();
            // An answer in round 3 starts the count again.
            let outcome = if round == 3 { Outcome::Verified } else { Outcome::Unreachable };
            verdicts.push(c.done(&7, outcome, now + SEC));
        }
        use Verdict::{Forget as F, Keep as K};
        assert_eq!(verdicts, vec![K, K, F, K, K, K, F]);
    }

    #[test]
    fn what_is_remembered_of_checked_tabs_is_bounded() {
        let limits = CheckLimits { every: 10 * SEC, running: 100, misses: 3, tabs: 5 };
        let mut c: SpotChecks<u32> = SpotChecks::new(limits);
        let kept = [(s(1), 1)];
        for tab in 0..5 {
            c.due(&tab, &kept, 0, SEC).unwrap();
            c.done(&tab, Outcome::Verified, SEC);
        }
        // Full of recent checks: a new tab waits.
        assert_eq!(c.due(&5, &kept, 0, 2 * SEC), None);
        // Once they are several intervals old they are forgotten and the new tab is checked.
        assert!(c.due(&5, &kept, 0, 60 * SEC).is_some());
        assert!(c.checked.len() <= limits.tabs);
    }

    #[test]
    fn forgetting_a_tab_drops_its_announcements_without_a_ban() {
        let mut a: Announcements<u32> = Announcements::new(Limits::default());
        a.announce(7, s(1), 1, SEC).unwrap();
        a.announce(7, s(2), 2, SEC).unwrap();
        a.announce(8, s(1), 3, SEC).unwrap();
        a.forget_stripe(&7, &s(1), SEC);
        assert_eq!(a.holders(&s(1), SEC), vec![(8, 3)]);
        a.forget(&7, SEC);
        assert_eq!((a.len(), a.tabs()), (1, 1));
        a.announce(7, s(2), 2, 2 * SEC).unwrap();
        assert_eq!(a.index_of(&7, &s(2), 2 * SEC), Some(2));
    }
    #[test]
    fn a_tab_accrues_byte_time_while_its_announcements_stand() {
        let limits = Limits { ttl: 10 * SEC, ..Limits::default() };
        let mut a: Announcements<u32> = Announcements::new(limits);
        a.announce_weighted(1, s(1), 0, 100, SEC).unwrap();
        a.announce_weighted(1, s(2), 0, 50, 3 * SEC).unwrap();
        // Refreshed at 5 s: s(1) stands until 15 s; s(2) expires at 13 s.
        a.announce_weighted(1, s(1), 0, 100, 5 * SEC).unwrap();
        let got = a.take_accrued(20 * SEC);
        // s(1): 1 s..15 s at 100; s(2): 3 s..13 s at 50.
        assert_eq!(got, vec![(1, 100 * 14_000 + 50 * 10_000)]);
        assert!(a.take_accrued(30 * SEC).is_empty(), "nothing held since");

        a.announce_weighted(2, s(3), 1, 10, 30 * SEC).unwrap();
        a.announce_weighted(3, s(3), 2, 10, 30 * SEC).unwrap();
        a.forget_stripe(&2, &s(3), 32 * SEC);
        a.caught(&3, 34 * SEC);
        let got = a.take_accrued(35 * SEC);
        assert_eq!(got, vec![(2, 10 * 2_000)], "a caught tab forfeits what it accrued");
    }

    #[test]
    fn tabs_are_paid_for_checked_byte_time_out_of_the_relays_reward() {
        use crate::farming::Prices;
        const GIB: u128 = 1 << 30;
        let prices = Prices { price: 1000, fee_percent: 10, cap: u64::MAX };
        let epoch = 100u64;
        let whole = GIB * u128::from(epoch) * 1000; // a GiB for a whole epoch
        let mut pay: TabPay<u32> = TabPay::new(16);
        for tab in [1, 2, 3, 4] {
            pay.payee(&tab, [tab as u8; 32]);
        }
        pay.checked(&1, Outcome::Verified);
        pay.checked(&2, Outcome::Verified);
        pay.checked(&2, Outcome::NotHeld);
        pay.checked(&3, Outcome::Unreachable);
        pay.checked(&5, Outcome::Verified); // no account named
        let accrued = vec![(1, whole), (2, whole), (3, whole), (4, whole), (5, whole)];
        // The rate is 900 per GiB-epoch; a tab earns half of it.
        let got = pay.settle(accrued.clone(), &prices, epoch, 10_000);
        assert_eq!(got, vec![TabPayment { tab: 1, account: [1; 32], amount: 450 }]);
        assert!(pay.settle(accrued, &prices, epoch, 10_000).is_empty(), "standing starts afresh");

        // More due than half the relay's reward: every amount scaled alike.
        for tab in [1, 2] {
            pay.payee(&tab, [tab as u8; 32]);
            pay.checked(&tab, Outcome::Verified);
        }
        let got = pay.settle(vec![(1, 3 * whole), (2, whole)], &prices, epoch, 1000);
        assert_eq!(got.iter().map(|p| (p.tab, p.amount)).collect::<Vec<_>>(), vec![(1, 375), (2, 125)]);
        assert!(got.iter().map(|p| p.amount).sum::<u64>() <= 500);
    }

    /// Whatever tabs do, a relay never pays them more than its share of its own reward, and
    /// a tab that failed a check gets nothing.
    #[test]
    fn tab_pay_stays_within_the_relays_share_under_random_use() {
        use crate::farming::Prices;
        let prices = Prices { price: 7_000, fee_percent: 20, cap: u64::MAX };
        let mut rng = crate::testdata::XorShift(5);
        let mut pay: TabPay<u32> = TabPay::new(100);
        for epoch in 0..200u64 {
            let mut failed = std::collections::HashSet::new();
            for _ in 0..rng.below(300) {
                let tab = rng.below(120) as u32;
                match rng.below(5) {
                    0 => pay.payee(&tab, [1; 32]),
                    1 => {
                        pay.checked(&tab, Outcome::Wrong);
                        failed.insert(tab);
                    }
                    _ => pay.checked(&tab, Outcome::Verified),
                }
            }
            let accrued: Vec<(u32, u128)> =
                (0..120).map(|t| (t, (rng.below(1 << 20) as u128) << 30)).collect();
            let earned = rng.below(1 << 20) as u64;
            let got = pay.settle(accrued, &prices, 60, earned);
            assert!(
                got.iter().map(|p| p.amount).sum::<u64>() <= earned * TAB_SHARE_PERCENT / 100,
                "epoch {epoch}"
            );
            assert!(got.len() <= MAX_TAB_PAYMENTS);
            assert!(got.iter().all(|p| !failed.contains(&p.tab) && p.amount > 0));
        }
    }
}
