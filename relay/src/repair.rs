//! Self-repair, executed: the relay's side of [`kura_core::repair`].
//!
//! Every `interval` a **round** runs: the relay lists the stripes it holds, computes each
//! stripe's close group from the relays it knows to be alive, asks the group (and a few
//! relays beyond it) which shard indices they hold, and plans each stripe. It then does its
//! own part, the stripes with the fewest live shards first: hands a shard it no longer
//! keeps to a vacant member, asks a vacant member to rebuild an index nobody holds (when it
//! is the group's coordinator), or drops a surplus copy once its slot is filled elsewhere.
//!
//! A relay asked to rebuild queues the job in a [`RepairQueue`]; the **worker** starts jobs
//! as the queue allows, fetches shards from the holders until `k` verified ones are in,
//! rebuilds the missing index, checks it against the header and stores it as its one
//! shard of the stripe.
//!
//! Requests to other relays go through the node's event loop ([`Command`]).

use crate::node::Shared;
use crate::store::StoreError;
use futures::StreamExt;
use kura_core::audit::{AuditConfig, Audits, Challenge, Claim, Reported, Reports, Verdict};
use kura_core::placement::{by_distance, DhtKey, FetchPlan};
use kura_core::repair::{
    plan_stripe_round, schedule_round, slots_of, HeldStripe, KeptRecord, Liveness, Move, RebuildJob,
    RepairQueue, RoundAction, StripeRound,
};
use kura_core::wire::{ErrorCode, Message, Request, Response, MAX_HOLDS_QUERY, MAX_REPAIR_HOLDERS};
use kura_core::{StripeAssembler, StripeHeader, StripeId};
use kura_p2p::protocol::Answer;
use libp2p::PeerId;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Relays asked about a stripe beyond its close group: those that fell out of it recently.
const BEYOND_GROUP: usize = 4;
/// Most actions (handovers, repair orders, drops) one round starts.
const MAX_ACTIONS_PER_ROUND: usize = 512;
/// Requests in flight at once during a round.
const ROUND_CONCURRENCY: usize = 16;
/// How long a relay-to-relay request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Waiting rebuilds one relay may have ordered here.
const MAX_ORDERS_PER_SENDER: usize = 64;
/// A holder that has not answered a rebuild's fetch by then is hedged with the next one.
const REBUILD_HEDGE_AFTER: Duration = Duration::from_secs(5);
/// Rebuilds of one stripe that could not succeed (`k` verified shards rebuild something its
/// header does not name) after which this relay stops taking orders for it: such a stripe
/// would otherwise fail every round for ever. Failures for want of reachable shards do not
/// count; they pass with churn.
const MAX_REBUILD_TRIES: u32 = 5;
/// Repair rounds during which a claim whose audit failed is not heard.
const FAILED_CLAIM_ROUNDS: u32 = 3;
/// Shortest time between the starts of two scrub passes.
const SCRUB_PASS_AT_MOST_EVERY: Duration = Duration::from_secs(5);
/// Clients' reports waiting for this relay's challenge, at most.
const MAX_REPORTS_WAITING: usize = 256;
/// A claim reported by a client is challenged at most once in this long.
const REPORT_COOLDOWN: Duration = Duration::from_secs(30);
/// Stripes whose failures are counted at once.
const MAX_FAILURES_TRACKED: usize = 100_000;

/// A request the repair tasks ask the event loop to send.
#[derive(Debug)]
pub enum Command {
    Request {
        peer: PeerId,
        req: Request,
        reply: kura_p2p::outstanding::Reply<Answer>,
    },
    /// A challenge on `/kura/audit/1`.
    Audit {
        peer: PeerId,
        req: Request,
        reply: kura_p2p::outstanding::Reply<Response>,
    },
    /// Take a distrusted relay out of the routing table.
    Forget {
        peer: PeerId,
    },
    /// A request on `/kura/ledger/1` (a replica catching itself up).
    Ledger {
        peer: PeerId,
        req: kura_core::ledger::LedgerRequest,
        reply: kura_p2p::outstanding::Reply<kura_core::ledger::LedgerResponse>,
    },
    /// A Kademlia lookup of the relays closest to the key of these bytes: those that
    /// answered, with the join work, not distrusted.
    LookUp {
        bytes: Vec<u8>,
        reply: futures::channel::oneshot::Sender<Vec<PeerId>>,
    },
}

/// Settings of the repair machinery.
#[derive(Debug, Clone, Copy)]
pub struct RepairConfig {
    pub interval: Duration,
    /// Bytes per second rebuilds may fetch.
    pub rate: u64,
    /// Bytes rebuilds may fetch at once before `rate` holds them back.
    pub burst: u64,
    /// Rebuilds at once.
    pub max_running: usize,
    /// A relay unreachable this long is taken as gone.
    pub grace: Duration,
    /// Or this long, for one with a long record of coming back
    /// ([`kura_core::repair::grace_for`]).
    pub long_grace: Duration,
    /// How often the claims the last round relied on are sampled and audited.
    pub audit_interval: Duration,
    /// A challenge not answered by then is a timeout.
    pub audit_deadline: Duration,
    /// Bytes per second of its own shards a relay re-reads and re-hashes.
    pub scrub_rate: u64,
}

impl RepairConfig {
    /// Defaults around a round interval and a byte rate.
    pub fn new(interval: Duration, rate: u64) -> Self {
        Self {
            interval,
            rate,
            burst: rate.max(16 << 20),
            max_running: 4,
            grace: interval.max(Duration::from_secs(5)),
            long_grace: kura_core::repair::LONG_GRACE,
            audit_interval: Duration::from_secs(300),
            audit_deadline: Duration::from_secs(10),
            scrub_rate: 1 << 20,
        }
    }
}

/// One stripe short of a full group, as the last round saw it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnderReplicated {
    pub stripe: String,
    /// Slots held by live relays anywhere.
    pub live: usize,
    /// Slots held inside the close group, one per member.
    pub in_group: usize,
    pub n: usize,
    pub k: usize,
    /// A group member is unreachable but within its grace period: the group waits for it
    /// (unless the stripe is down to `k` live shards).
    pub waiting: bool,
}

/// What the last round saw, for `GET /repair`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub rounds: u64,
    pub stripes: usize,
    /// Stripes by number of live shards.
    pub by_live: BTreeMap<usize, usize>,
    pub under_replicated: Vec<UnderReplicated>,
    pub live_relays: usize,
    pub round_ms: u64,
    pub handovers_sent: u64,
    pub repairs_ordered: u64,
    pub dropped: u64,
}

/// Where a relay keeps its liveness records of other relays across restarts (in its data
/// directory), the most it keeps (the longest known), and the largest such file it reads.
pub const RECORDS_FILE: &str = "liveness.json";
pub const KEPT_RECORDS: usize = 100_000;
const MAX_RECORDS_FILE: u64 = 16 << 20;

/// Keeps the liveness records in `dir` every ten rounds (at most every ten minutes), so a
/// relay killed loses at most that much of them; a clean stop keeps them once more.
pub async fn run_keep_records(repair: std::sync::Arc<Repair>, dir: std::path::PathBuf) {
    let every = (repair.cfg.interval * 10).min(Duration::from_secs(600));
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let r = repair.clone();
        let d = dir.clone();
        match tokio::task::spawn_blocking(move || r.keep_records(&d)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("keeping liveness records: {e:#}"),
            Err(e) => tracing::warn!("keeping liveness records: {e}"),
        }
    }
}

/// State shared by the event loop, the round task, the worker and the HTTP side.
#[derive(Debug)]
pub struct Repair {
    pub cfg: RepairConfig,
    pub liveness: Mutex<Liveness<PeerId>>,
    pub queue: Mutex<RepairQueue<PeerId>>,
    pub report: RwLock<Report>,
    /// Failed rebuilds by stripe (see [`MAX_REBUILD_TRIES`]).
    failures: Mutex<HashMap<StripeId, u32>>,
    /// Verdicts and scores of the peers this relay audits.
    pub audits: Mutex<Audits<PeerId>>,
    /// The claims the last round relied on: what the next audits sample from.
    candidates: Mutex<HashSet<Claim<PeerId>>>,
    /// The relays that did not answer the last round's `Holds`.
    last_silent: Mutex<Vec<PeerId>>,
    /// Clients' reports of claims they could not prove.
    reports: Mutex<Reports<PeerId>>,
    reported: Notify,
    start: Instant,
    wake: Notify,
    /// Records of other relays taken back from the last run ([`Repair::restore_records`]).
    pub records_restored: std::sync::atomic::AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Repair {
    pub fn new(cfg: RepairConfig) -> Self {
        Self {
            cfg,
            liveness: Mutex::new(Liveness::new(cfg.grace).with_long_grace(cfg.long_grace)),
            queue: Mutex::new(
                RepairQueue::new(cfg.max_running, 100_000, cfg.rate, cfg.burst)
                    .with_max_per_sender(MAX_ORDERS_PER_SENDER),
            ),
            report: RwLock::new(Report::default()),
            failures: Mutex::new(HashMap::new()),
            // A claim that failed is not heard for a few rounds: long enough for the group to
            // rebuild the slot (on that relay, which dropped what it could not read, or on the
            // next), short enough that a relay given the shard back is heard again soon.
            audits: Mutex::new(Audits::new(AuditConfig {
                forget_after: cfg.interval * FAILED_CLAIM_ROUNDS,
                ..AuditConfig::default()
            })),
            candidates: Mutex::new(HashSet::new()),
            last_silent: Mutex::new(Vec::new()),
            reports: Mutex::new(Reports::new(MAX_REPORTS_WAITING, REPORT_COOLDOWN)),
            reported: Notify::new(),
            start: Instant::now(),
            wake: Notify::new(),
            records_restored: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Takes back the liveness records an earlier run kept in `dir` ([`RECORDS_FILE`]), so
    /// that a relay restarting still waits a day for the relays with a long record of coming
    /// back; how many. No file: none. The file is this relay's own, but it is read within
    /// bounds all the same.
    pub fn restore_records(&self, dir: &std::path::Path) -> anyhow::Result<usize> {
        use anyhow::Context;
        use std::io::Read;
        let path = dir.join(RECORDS_FILE);
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut bytes = Vec::new();
        f.take(MAX_RECORDS_FILE + 1).read_to_end(&mut bytes)?;
        anyhow::ensure!(
            bytes.len() as u64 <= MAX_RECORDS_FILE,
            "{} is over {MAX_RECORDS_FILE} bytes",
            path.display()
        );
        let kept: Vec<(String, KeptRecord)> =
            serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
        let kept: Vec<(PeerId, KeptRecord)> =
            kept.into_iter().take(KEPT_RECORDS).filter_map(|(p, k)| Some((p.parse().ok()?, k))).collect();
        let n = kept.len();
        lock(&self.liveness).restore(kept, self.now());
        self.records_restored.store(n, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }

    /// Writes this run's liveness records to `dir` ([`RECORDS_FILE`], replaced whole: a
    /// crash mid-write leaves the last one); how many.
    pub fn keep_records(&self, dir: &std::path::Path) -> anyhow::Result<usize> {
        let kept: Vec<(String, KeptRecord)> = lock(&self.liveness)
            .kept(self.now(), KEPT_RECORDS)
            .into_iter()
            .map(|(p, k)| (p.to_string(), k))
            .collect();
        let tmp = dir.join(format!("{RECORDS_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(&kept)?)?;
        std::fs::rename(&tmp, dir.join(RECORDS_FILE))?;
        Ok(kept.len())
    }

    /// Time since start, the clock of the core state machines.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// A client's report that `claim` could not be proven: the claim is challenged soon,
    /// by this relay, if its last round relied on it (see [`Reports`]).
    pub fn report(&self, claim: Claim<PeerId>) -> Reported {
        let relied_on = lock(&self.candidates).contains(&claim);
        let outcome = lock(&self.reports).offer(claim, relied_on, self.now());
        if outcome == Reported::Accepted {
            self.reported.notify_one();
        }
        outcome
    }

    /// Records the verdict on `claim`: in the audits (its claim on the stripe is then heard
    /// or not, its score moves), in the metrics, and in liveness when the peer is now
    /// distrusted (placement, reads and repair then leave it out until it recovers).
    /// Returns whether the peer is distrusted.
    fn judge(&self, claim: Claim<PeerId>, verdict: Verdict, metrics: &crate::metrics::Metrics) -> bool {
        let now = self.now();
        let peer = claim.peer;
        let (score, until) = {
            let mut a = lock(&self.audits);
            a.record(now, claim, verdict);
            (a.score(&peer, now), a.distrusted_until(&peer, now))
        };
        metrics.reputation.get_or_create(&crate::metrics::Peer { peer: peer.to_string() }).set(score);
        if let Some(until) = until {
            tracing::warn!(%peer, score, verdict = verdict.as_str(), "relay distrusted after its audits");
            lock(&self.liveness).distrust(peer, until);
        }
        until.is_some()
    }

    /// Records the outcome of a rebuild of `stripe`; returns whether it is now given up.
    fn rebuilt(&self, stripe: StripeId, ok: bool, metrics: &crate::metrics::Metrics) -> bool {
        let mut f = lock(&self.failures);
        let given_up = if ok {
            f.remove(&stripe);
            false
        } else if let Some(n) = f.get_mut(&stripe) {
            *n += 1;
            *n >= MAX_REBUILD_TRIES
        } else {
            if f.len() < MAX_FAILURES_TRACKED {
                f.insert(stripe, 1);
            }
            false
        };
        metrics.given_up.set(f.values().filter(|&&n| n >= MAX_REBUILD_TRIES).count() as i64);
        given_up
    }

    /// Handles a `Repair` order from relay `from` to this relay `me` (blocking: reads the
    /// store). The order is checked against this relay's own view: the sender must be a
    /// relay it counts as alive (not one that failed a proof), both must be among the
    /// stripe's closest relays, the holders named are kept only if alive in that view, and
    /// one sender's orders waiting here are bounded.
    pub fn order(&self, shared: &Shared, me: &PeerId, from: &PeerId, req: Request) -> Response {
        let store = &*shared.store;
        let Request::Repair { header, index, holders, live } = req else {
            return error(ErrorCode::Malformed, "not a repair order");
        };
        let alive = {
            let l = lock(&self.liveness);
            if !l.is_live(from) {
                return error(
                    ErrorCode::Malformed,
                    "repair orders are taken from relays of this network only",
                );
            }
            l.live()
        };
        let stripe = StripeId::of(&header);
        let parsed = match StripeHeader::parse(&header) {
            Ok(h) => h,
            Err(e) => return error(ErrorCode::Malformed, format!("bad stripe header: {e}")),
        };
        let n = parsed.params().n();
        if usize::from(index) >= n {
            return error(ErrorCode::Malformed, format!("index {index} is out of the stripe's range"));
        }
        let mut relays: Vec<PeerId> = alive.clone();
        relays.push(*me);
        let near =
            |p: &PeerId| crate::node::rank_among(&stripe, p, &relays) < n + crate::node::CLOSE_GROUP_SLACK;
        if !near(me) || !near(from) {
            return error(
                ErrorCode::NotInGroup,
                "by this relay's view, it or the sender is not in the stripe's close group",
            );
        }
        if lock(&self.failures).get(&stripe).is_some_and(|&n| n >= MAX_REBUILD_TRIES) {
            return error(
                ErrorCode::Busy,
                format!("stripe {stripe}: its rebuild failed {MAX_REBUILD_TRIES} times here; given up"),
            );
        }
        if shared.farming.ended(&stripe) {
            return error(ErrorCode::Unpaid, format!("stripe {stripe}: its batch has ended"));
        }
        match store.holds(&[stripe]) {
            Ok(h) if !h.is_empty() => {
                return error(
                    ErrorCode::AlreadyHeld,
                    format!("stripe {stripe}: index {:?} held here", h[0].1),
                );
            }
            Ok(_) => {}
            Err(e) => return error(e.code(), e),
        }
        let holders: Vec<PeerId> =
            holders.iter().filter_map(|b| PeerId::from_bytes(b).ok()).filter(|p| alive.contains(p)).collect();
        let cost = (parsed.shard_len() * parsed.params().k()) as u64;
        let job = RebuildJob { stripe, header, index, holders, live: usize::from(live), cost, by: *from };
        match lock(&self.queue).push(job, self.now()) {
            Ok(()) => {
                self.wake.notify_one();
                Response::Accepted
            }
            Err(e) => error(ErrorCode::Busy, e),
        }
    }
}

fn action_stripe(a: &RoundAction<PeerId>) -> StripeId {
    match a {
        RoundAction::Handover { stripe, .. }
        | RoundAction::Order { stripe, .. }
        | RoundAction::Drop { stripe, .. } => *stripe,
    }
}

fn error(code: ErrorCode, detail: impl ToString) -> Response {
    crate::node::error(code, detail)
}

/// Sends requests to other relays through the event loop.
#[derive(Debug, Clone)]
pub struct Sender {
    task: kura_p2p::task::Handle<Command>,
    audit_deadline: Duration,
}

/// Why a challenge got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditError {
    /// Not by the deadline.
    Late,
    /// The peer does not take challenges at all: it cannot back the claims it made.
    Refused,
    /// The peer could not be reached, or the relay is stopping.
    Unanswered(String),
}

impl Sender {
    pub fn new(task: kura_p2p::task::Handle<Command>, audit_deadline: Duration) -> Self {
        Self { task, audit_deadline }
    }

    /// Sends a challenge on `/kura/audit/1`; no answer within `deadline` is [`AuditError::Late`].
    pub async fn audit(&self, peer: PeerId, req: Request) -> Result<Response, AuditError> {
        let asked = self.task.call(|reply| Command::Audit { peer, req, reply });
        match tokio::time::timeout(self.audit_deadline, asked).await {
            Ok(Ok(Ok(answer))) => Ok(answer),
            Ok(Ok(Err(failure))) if failure.timed_out => Err(AuditError::Late),
            Ok(Ok(Err(failure))) if failure.unsupported => Err(AuditError::Refused),
            Ok(Ok(Err(failure))) => Err(AuditError::Unanswered(failure.reason)),
            Ok(Err(_)) => Err(AuditError::Unanswered("relay stopping".into())),
            Err(_) => Err(AuditError::Late),
        }
    }

    /// Takes `peer` out of the routing table (it is distrusted).
    pub async fn forget(&self, peer: PeerId) {
        let _ = self.task.send(Command::Forget { peer }).await;
    }

    /// Asks another replica on `/kura/ledger/1`.
    pub async fn ledger(
        &self,
        peer: PeerId,
        req: kura_core::ledger::LedgerRequest,
    ) -> Result<kura_core::ledger::LedgerResponse, String> {
        let asked = self.task.call(|reply| Command::Ledger { peer, req, reply });
        match tokio::time::timeout(REQUEST_TIMEOUT, asked).await {
            Ok(Ok(Ok(answer))) => Ok(answer),
            Ok(Ok(Err(failure))) => Err(failure.reason),
            Ok(Err(_)) => Err("relay stopping".into()),
            Err(_) => Err("timed out".into()),
        }
    }

    /// One Kademlia lookup of the key of `bytes` (nobody when it fails or the relay stops).
    pub async fn look_up(&self, bytes: Vec<u8>) -> Vec<PeerId> {
        let asked = self.task.call(|reply| Command::LookUp { bytes, reply });
        match tokio::time::timeout(LOOKUP_TIMEOUT, asked).await {
            Ok(Ok(found)) => found,
            _ => Vec::new(),
        }
    }

    pub async fn request(&self, peer: PeerId, req: Request) -> Result<Response, String> {
        let asked = self.task.call(|reply| Command::Request { peer, req, reply });
        match tokio::time::timeout(REQUEST_TIMEOUT, asked).await {
            Ok(Ok(Ok(answer))) => Ok(answer.response),
            Ok(Ok(Err(failure))) => Err(failure.reason),
            Ok(Err(_)) => Err("relay stopping".into()),
            Err(_) => Err("timed out".into()),
        }
    }
}

/// What the round and the worker need.
#[derive(Clone)]
pub struct Ctx {
    pub me: PeerId,
    pub shared: Arc<Shared>,
    pub net: Sender,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("me", &self.me).finish()
    }
}

/// Sleeps for `d`, or for ever when there is nothing to wake for.
async fn sleep_or_never(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => futures::future::pending().await,
    }
}

pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// A stripe as the round sees it: kura-core's view of it, and its header bytes.
struct Held {
    stripe: HeldStripe,
    header: Vec<u8>,
}

/// Runs rounds forever (spawn it).
pub async fn run_rounds(ctx: Ctx) {
    let mut headers: HashMap<StripeId, (Vec<u8>, Vec<u8>, usize)> = HashMap::new();
    let mut tick = tokio::time::interval(ctx.shared.repair.cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = Instant::now();
        if let Err(e) = round(&ctx, &mut headers).await {
            tracing::warn!("repair round failed: {e}");
        }
        tracing::debug!(ms = started.elapsed().as_millis() as u64, "repair round done");
    }
}

/// What relays answered `Holds`: each one's claims by stripe (claims it could not prove
/// left out), and those that did not answer.
struct Holdings {
    claims: HashMap<PeerId, HashMap<StripeId, Vec<u8>>>,
    silent: Vec<PeerId>,
}

/// Asks each relay of `ask` which indices it holds of its stripes (in queries of at most
/// `MAX_HOLDS_QUERY`, `ROUND_CONCURRENCY` at once): for a round and for checking an order.
async fn ask_holds(ctx: &Ctx, ask: HashMap<PeerId, Vec<StripeId>>) -> Holdings {
    let queries = ask.into_iter().flat_map(|(p, stripes)| {
        stripes.chunks(MAX_HOLDS_QUERY).map(|c| (p, c.to_vec())).collect::<Vec<_>>()
    });
    let answers: Vec<(PeerId, Result<Response, String>)> = futures::stream::iter(queries)
        .map(|(p, stripes)| {
            let net = ctx.net.clone();
            async move { (p, net.request(p, Request::Holds { stripes }).await) }
        })
        .buffer_unordered(ROUND_CONCURRENCY)
        .collect()
        .await;
    let mut out = Holdings { claims: HashMap::new(), silent: Vec::new() };
    let now = ctx.shared.repair.now();
    let audits = lock(&ctx.shared.repair.audits);
    for (p, r) in answers {
        match r {
            Ok(Response::Held { held }) => {
                let e = out.claims.entry(p).or_default();
                for (s, idx) in held {
                    if audits.claim_heard(&p, &s, now) {
                        e.insert(s, idx.into_vec());
                    }
                }
            }
            other => {
                tracing::debug!(peer = %p, "holdings query failed: {other:?}");
                out.silent.push(p);
            }
        }
    }
    out
}

async fn round(ctx: &Ctx, headers: &mut HashMap<StripeId, (Vec<u8>, Vec<u8>, usize)>) -> Result<(), String> {
    let started = Instant::now();
    let store = ctx.shared.store.clone();
    let inventory = blocking(move || store.inventory())
        .await
        .ok_or("inventory task failed")?
        .map_err(|e| e.to_string())?;
    headers.retain(|id, _| inventory.binary_search_by_key(id, |(s, _)| *s).is_ok());
    let mut held = Vec::with_capacity(inventory.len());
    let doubted = lock(&ctx.shared.repair.audits).doubted(ctx.shared.repair.now());
    for (id, indices) in inventory {
        let (header, slots, k) = match headers.get(&id) {
            Some(known) => known.clone(),
            None => {
                let store = ctx.shared.store.clone();
                let Some(Ok(Some(bytes))) = blocking(move || store.header(&id)).await else { continue };
                let Ok(h) = StripeHeader::parse_verified(&id, &bytes) else { continue };
                let entry = (bytes, slots_of(&h), h.params().k());
                headers.insert(id, entry.clone());
                entry
            }
        };
        let doubted = doubted.contains(&id);
        held.push(Held { stripe: HeldStripe { id, mine: indices, slots, k, doubted }, header });
    }

    let (live, suspects_before) = {
        let mut l = lock(&ctx.shared.repair.liveness);
        for gone in l.expire(ctx.shared.repair.now()) {
            tracing::info!(peer = %gone, "relay unreachable past the grace period: taken as gone");
        }
        (l.live(), l.suspects())
    };
    let mut relays: Vec<PeerId> = live;
    relays.push(ctx.me);
    let keys: Vec<(PeerId, DhtKey)> = relays.iter().map(|p| (*p, DhtKey::of(&p.to_bytes()))).collect();

    // Ask the group and a few beyond which indices they hold.
    let mut ask: HashMap<PeerId, Vec<StripeId>> = HashMap::new();
    let mut order: Vec<Vec<PeerId>> = Vec::with_capacity(held.len());
    for s in &held {
        let s = &s.stripe;
        let ordered = by_distance(&DhtKey::of_stripe(&s.id), keys.iter().copied());
        for p in ordered.iter().take(s.slots.len() + BEYOND_GROUP) {
            if *p != ctx.me && !suspects_before.contains(p) {
                ask.entry(*p).or_default().push(s.id);
            }
        }
        order.push(ordered);
    }
    let Holdings { claims: holdings, silent } = ask_holds(ctx, ask).await;
    // A member that did not answer is waited for this round, as if suspect: its connection
    // may have dropped a moment before (this relay learns it just after its request fails),
    // and by the next round it is suspect, waited for the grace, or back. One that stays
    // connected and silent two rounds in a row is left out of the plan, as a relay that
    // answers nothing deserves.
    let (silent, suspects) = {
        let mut suspects = lock(&ctx.shared.repair.liveness).suspects();
        let mut last = lock(&ctx.shared.repair.last_silent);
        let (fresh, stale): (Vec<PeerId>, Vec<PeerId>) =
            silent.iter().copied().filter(|p| !suspects.contains(p)).partition(|p| !last.contains(p));
        *last = silent;
        suspects.extend(fresh);
        // Counted (`kura_repair_events_total{kind="left_out_silent"}`): a live relay left
        // out may leave stripes at `k` in this view, which are then rebuilt at once.
        for _ in &stale {
            ctx.shared.metrics.repair_event("left_out_silent");
        }
        (stale, suspects)
    };

    // Plan every stripe; keep this relay's part (kura-core's round rules).
    let mut report = Report { stripes: held.len(), live_relays: relays.len(), ..Report::default() };
    let mut moves: Vec<(usize, RoundAction<PeerId>)> = Vec::new();
    let mut audits: HashSet<Claim<PeerId>> = HashSet::new();
    for (h, ordered) in held.iter().zip(order) {
        let s = &h.stripe;
        let n = s.slots.len();
        let claims = |p: &PeerId| holdings.get(p).and_then(|c| c.get(&s.id)).cloned();
        let r = plan_stripe_round(&ctx.me, s, ordered, &silent, &suspects, claims, MAX_REPAIR_HOLDERS);
        *report.by_live.entry(r.plan.live).or_default() += 1;
        if !r.plan.is_complete(n) || r.plan.live < n {
            report.under_replicated.push(UnderReplicated {
                stripe: s.id.to_string(),
                live: r.plan.live,
                in_group: r.plan.in_group,
                n,
                k: s.k,
                waiting: r.waiting,
            });
        }
        moves.extend(r.actions);
        audits.extend(r.audits);
    }
    report.under_replicated.sort_by_key(|u| (u.live, u.in_group));
    ctx.shared.metrics.set_stripes_by_live(&report.by_live);
    ctx.shared.metrics.under_replicated.set(report.under_replicated.len() as i64);

    // The members' claims this round relied on are what the next audits sample from.
    *lock(&ctx.shared.repair.candidates) = audits;
    // Closest to loss first.
    let headers_by_id: HashMap<StripeId, &Vec<u8>> = held.iter().map(|h| (h.stripe.id, &h.header)).collect();
    let actions: Vec<(RoundAction<PeerId>, Vec<u8>)> = schedule_round(moves, MAX_ACTIONS_PER_ROUND)
        .into_iter()
        .filter_map(|a| {
            let id = action_stripe(&a);
            headers_by_id.get(&id).map(|h| (a, (*h).clone()))
        })
        .collect();
    // A stripe whose batch ended is the sweep's to drop: no copy of it is made or moved.
    let shared = ctx.shared.clone();
    let actions = blocking(move || {
        actions
            .into_iter()
            .filter(|(a, _)| {
                matches!(a, RoundAction::Drop { .. }) || !shared.farming.ended(&action_stripe(a))
            })
            .collect::<Vec<_>>()
    })
    .await
    .ok_or("farming check task failed")?;
    let outcomes: Vec<&'static str> = futures::stream::iter(actions)
        .map(|(a, header)| act(ctx, a, header))
        .buffer_unordered(ROUND_CONCURRENCY)
        .collect()
        .await;
    for o in outcomes {
        match o {
            "handed_over" => report.handovers_sent += 1,
            "ordered" => report.repairs_ordered += 1,
            "dropped" => report.dropped += 1,
            _ => {}
        }
        ctx.shared.metrics.repair_event(o);
    }
    report.round_ms = started.elapsed().as_millis() as u64;
    let mut r = ctx.shared.repair.report.write().unwrap_or_else(|p| p.into_inner());
    report.rounds = r.rounds + 1;
    report.under_replicated.truncate(1000);
    *r = report;
    Ok(())
}

/// Checks a repair order against this relay's own plan before anything is fetched: asks the
/// stripe's close group by its own view (and a few beyond) what they hold now, plans the
/// stripe, and goes on only if that plan has this relay rebuild a shard of the ordered
/// index's slot class. Returns the holders it found, to fetch from first, and the stripe's
/// other rebuilds by that plan (index, member), which this relay makes with its own and
/// hands over. An order for a stripe that is whole, or that this relay would not rebuild,
/// costs one small query per member and is refused.
async fn confirm_order(ctx: &Ctx, job: &RebuildJob<PeerId>) -> Result<Confirmed, String> {
    let h = StripeHeader::parse_verified(&job.stripe, &job.header).map_err(|e| e.to_string())?;
    let s = HeldStripe {
        id: job.stripe,
        mine: Vec::new(),
        slots: slots_of(&h),
        k: h.params().k(),
        doubted: false,
    };
    let (live, suspects) = {
        let l = lock(&ctx.shared.repair.liveness);
        (l.live(), l.suspects())
    };
    let mut relays = live;
    relays.push(ctx.me);
    let ordered =
        by_distance(&DhtKey::of_stripe(&s.id), relays.iter().map(|p| (*p, DhtKey::of(&p.to_bytes()))));
    let ask: Vec<PeerId> = ordered
        .iter()
        .take(s.slots.len() + BEYOND_GROUP)
        .filter(|p| **p != ctx.me && !suspects.contains(p))
        .copied()
        .collect();
    let Holdings { claims, silent } =
        ask_holds(ctx, ask.into_iter().map(|p| (p, vec![job.stripe])).collect()).await;
    let class = s.slots.get(usize::from(job.index)).copied();
    let of_class = |i: &u8| s.slots.get(usize::from(*i)).copied() == class;
    let in_group =
        crate::node::rank_among(&s.id, &ctx.me, &relays) < s.slots.len() + crate::node::CLOSE_GROUP_SLACK;
    let store = ctx.shared.store.clone();
    let id = job.stripe;
    let holds_one = matches!(blocking(move || store.holds(&[id])).await, Some(Ok(h)) if h.iter().any(|(_, i)| !i.is_empty()));
    // Claims this relay challenged for this order and found unproven.
    let mut unproven: Vec<PeerId> = Vec::new();
    loop {
        let heard = |p: &PeerId| {
            if unproven.contains(p) {
                return None;
            }
            claims.get(p).and_then(|c| c.get(&s.id)).cloned()
        };
        let StripeRound { plan, holders, .. } =
            plan_stripe_round(&ctx.me, &s, ordered.clone(), &silent, &suspects, heard, MAX_REPAIR_HOLDERS);
        let planned_here = plan
            .moves
            .iter()
            .any(|m| matches!(m, Move::Rebuild { index, at, .. } if *at == ctx.me && of_class(index)));
        // Views differ (a relay distrusted by the sender and not here, say): an order for a
        // class nobody holds (or nobody proves to hold), of a stripe that can be rebuilt, to a
        // relay of the group, is taken even when this relay's own plan would have another
        // member rebuild it. An order for a class proven held, or for a stripe nobody can
        // rebuild, is not.
        let missing = plan.live >= s.k && !holders.iter().any(|(_, held)| held.iter().any(of_class));
        if planned_here || (missing && in_group) {
            let with = plan.rebuilt_with(&s.slots, &ctx.me, job.index);
            let holders = holders.into_iter().map(|(p, _)| p).filter(|p| *p != ctx.me).collect();
            return Ok(Confirmed { holders, with });
        }
        if unproven.is_empty() && in_group && plan.live >= s.k && !holds_one {
            // The sender may have failed a claim this relay still hears (a client reported
            // it there, say). Not taken on its word: the claims on the class are challenged
            // here, and the stripe planned again without those not proven. (A relay holding
            // a shard of the stripe takes no other.)
            let claimed: Vec<(PeerId, u8)> = holders
                .iter()
                .filter(|(p, _)| *p != ctx.me)
                .flat_map(|(p, held)| held.iter().filter(|i| of_class(i)).map(move |i| (*p, *i)))
                .collect();
            let mut proven = false;
            for (p, i) in claimed {
                if challenge(ctx, job.stripe, &job.header, p, i).await == Some(Verdict::Pass) {
                    proven = true;
                    break;
                }
                unproven.push(p);
            }
            if !proven && !unproven.is_empty() {
                continue;
            }
        }
        return Err(format!(
            "this relay's own plan has it rebuild no shard like index {} ({} of {} slots live)",
            job.index,
            plan.live,
            s.slots.len()
        ));
    }
}

/// Sends shard `index` of `stripe` to `to` as a handover; whether it was stored there
/// (counted in the repair bytes out).
async fn hand_over(
    ctx: &Ctx,
    stripe: StripeId,
    index: u8,
    to: PeerId,
    header: Vec<u8>,
    shard: Vec<u8>,
) -> bool {
    let len = shard.len() as u64;
    match ctx.net.request(to, Request::Handover { header, shard }).await {
        Ok(Response::Stored { .. }) => {
            ctx.shared.metrics.repair_bytes_out.inc_by(len);
            tracing::info!(%stripe, index, to = %to, "handed shard over");
            true
        }
        other => {
            tracing::debug!(%stripe, index, to = %to, "handover refused: {other:?}");
            false
        }
    }
}

/// What [`confirm_order`] found: holders to fetch from, and the stripe's other rebuilds.
struct Confirmed {
    holders: Vec<PeerId>,
    with: Vec<(u8, PeerId)>,
}

async fn act(ctx: &Ctx, a: RoundAction<PeerId>, header: Vec<u8>) -> &'static str {
    match a {
        RoundAction::Handover { stripe, index, to } => {
            let store = ctx.shared.store.clone();
            let Some(Ok(Some(held))) = blocking(move || store.get(&stripe)).await else {
                return "handover_failed";
            };
            let Some((_, shard)) = held.shards.into_iter().find(|(i, _)| *i == index) else {
                return "handover_failed";
            };
            if hand_over(ctx, stripe, index, to, held.header, shard).await {
                "handed_over"
            } else {
                "handover_failed"
            }
        }
        RoundAction::Order { stripe, index, at, holders, live, instead } => {
            let holders: Vec<_> = holders.iter().map(|p| p.to_bytes().into()).collect();
            // The member planned first; while one refuses as busy, the next to rebuild.
            for (index, at) in std::iter::once((index, at)).chain(instead) {
                let req = Request::Repair {
                    header: header.clone(),
                    index,
                    holders: holders.clone(),
                    live: live.min(255) as u8,
                };
                match ctx.net.request(at, req).await {
                    Ok(Response::Accepted) => {
                        tracing::info!(%stripe, index, at = %at, live, "ordered a rebuild");
                        return "ordered";
                    }
                    Ok(Response::Error { code: ErrorCode::Busy, detail }) => {
                        tracing::debug!(%stripe, index, at = %at, "repair order refused as busy: {detail}");
                    }
                    other => {
                        tracing::debug!(%stripe, index, at = %at, "repair order refused: {other:?}");
                        return "order_failed";
                    }
                }
            }
            "order_failed"
        }
        RoundAction::Drop { stripe, index, witnesses } => {
            // Nothing is dropped on another relay's word: a holder of every slot class
            // proves it holds its shard, so the stripe is whole without this copy.
            let (mut verified, classes) = (0, witnesses.len());
            for (peer, i) in witnesses {
                // This relay's own other shard needs no proof to itself.
                if peer == ctx.me || challenge(ctx, stripe, &header, peer, i).await == Some(Verdict::Pass) {
                    verified += 1;
                }
            }
            if verified < classes {
                tracing::info!(%stripe, index, verified, classes, "surplus copy kept: the stripe is not proven whole without it");
                return "drop_unproven";
            }
            let store = ctx.shared.store.clone();
            match blocking(move || store.remove(&stripe, index)).await {
                Some(Ok(true)) => {
                    tracing::info!(%stripe, index, "dropped a surplus shard (its slot is filled in the group)");
                    "dropped"
                }
                _ => "drop_failed",
            }
        }
    }
}

/// Challenges `peer` on its claim to index `index` of `stripe` (with header `header`) over
/// `/kura/audit/1` and judges the answer ([`Repair::judge`]): a proof that verifies passes;
/// one that does not is false; an answer that the shard is corrupt or gone on its disk is a
/// loss; "not found" (it no longer holds it) withdraws the claim; no answer by the audit
/// deadline is a timeout. `None`: no
/// verdict (the peer could not be reached, which liveness deals with, or it was busy).
pub(crate) async fn challenge(
    ctx: &Ctx,
    stripe: StripeId,
    header: &[u8],
    peer: PeerId,
    index: u8,
) -> Option<Verdict> {
    let h = StripeHeader::parse(header).ok()?;
    let c = Challenge::new(&h, stripe, index, &peer.to_bytes(), rand::random())?;
    let req = c.request();
    let sent = req.frame_len();
    let (verdict, received) = match ctx.net.audit(peer, req).await {
        Ok(answer) => {
            let received = answer.frame_len();
            let detail = match &answer {
                Response::Error { code, detail } => format!("{code}: {detail}"),
                _ => String::new(),
            };
            let verdict = c.judge(answer).ok()?;
            match verdict {
                Verdict::False => tracing::warn!(%peer, %stripe, index, "a relay answered a false proof"),
                Verdict::Withdrawn => {
                    tracing::debug!(%peer, %stripe, index, "a relay no longer holds a shard it claimed")
                }
                Verdict::Lost => {
                    tracing::info!(%peer, %stripe, index, "a relay cannot prove a shard it claimed: {detail}")
                }
                Verdict::Pass | Verdict::Timeout => {}
            }
            (verdict, received)
        }
        Err(AuditError::Late) => (Verdict::Timeout, 0),
        Err(AuditError::Refused) => {
            tracing::info!(%peer, %stripe, index, "a relay that claims shards takes no challenge");
            (Verdict::Lost, 0)
        }
        Err(AuditError::Unanswered(e)) => {
            tracing::debug!(%peer, %stripe, index, "audit unanswered: {e}");
            return None;
        }
    };
    ctx.shared.metrics.audit("auditor", verdict.as_str(), received, sent);
    if ctx.shared.repair.judge(Claim { peer, stripe, index }, verdict, &ctx.shared.metrics) {
        // Out of this relay's routing table too, so that lookups through it (a client's
        // placement and reads) no longer find it.
        ctx.net.forget(peer).await;
    }
    Some(verdict)
}

/// Audits the claims the last round relied on, a sample every audit interval, and the
/// claims clients reported as soon as they are reported (spawn it).
pub async fn run_audits(ctx: Ctx) {
    let repair = &ctx.shared.repair;
    let mut tick = tokio::time::interval(repair.cfg.audit_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (claims, why) = tokio::select! {
            _ = tick.tick() => {
                let candidates: Vec<Claim<PeerId>> = lock(&repair.candidates).iter().cloned().collect();
                (lock(&repair.audits).sample(candidates, |len| rand::random_range(0..len)), "sampled")
            }
            _ = repair.reported.notified() => (lock(&repair.reports).take(repair.now()), "reported"),
        };
        let verdicts: Vec<Option<Verdict>> = futures::stream::iter(claims)
            .map(|c| {
                let ctx = ctx.clone();
                async move {
                    let store = ctx.shared.store.clone();
                    let header = blocking(move || store.header(&c.stripe)).await?.ok()??;
                    challenge(&ctx, c.stripe, &header, c.peer, c.index).await
                }
            })
            .buffer_unordered(ROUND_CONCURRENCY)
            .collect()
            .await;
        let now = repair.now();
        lock(&repair.audits).expire(now);
        let failed = verdicts.iter().flatten().filter(|v| v.is_failure()).count();
        tracing::debug!(audited = verdicts.len(), failed, why, "audits done");
    }
}

/// Re-reads and re-hashes this relay's own shards, one after the other at the scrub rate,
/// so that honest disk loss is found without waiting for neighbours to ask: a shard that no
/// longer matches its address is dropped by the store (it stops being claimed, and the
/// group rebuilds it). Spawn it.
pub async fn run_scrub(ctx: Ctx) {
    let rate = ctx.shared.repair.cfg.scrub_rate.max(1);
    loop {
        let store = ctx.shared.store.clone();
        let inventory = match blocking(move || store.inventory()).await {
            Some(Ok(inv)) => inv,
            _ => Vec::new(),
        };
        let started = Instant::now();
        for (stripe, _) in inventory {
            let store = ctx.shared.store.clone();
            let (result, len) = match blocking(move || store.get(&stripe)).await {
                Some(Ok(Some(held))) => ("ok", held.shards.iter().map(|(_, b)| b.len()).sum::<usize>()),
                Some(Ok(None)) => continue,
                Some(Err(crate::store::StoreError::Corrupt { .. })) => {
                    tracing::warn!(%stripe, "scrub: a shard was lost on disk and is dropped");
                    ("lost", 0)
                }
                _ => ("error", 0),
            };
            ctx.shared.metrics.scrubbed.get_or_create(&crate::metrics::Kind { kind: result.into() }).inc();
            tokio::time::sleep(Duration::from_secs_f64(len.max(4096) as f64 / rate as f64)).await;
        }
        // A small store is not re-read more than every few seconds.
        tokio::time::sleep(SCRUB_PASS_AT_MOST_EVERY.saturating_sub(started.elapsed())).await;
    }
}

/// Starts queued rebuilds as the queue allows (spawn it).
pub async fn run_worker(ctx: Ctx) {
    loop {
        let (jobs, next) = {
            let mut q = lock(&ctx.shared.repair.queue);
            let now = ctx.shared.repair.now();
            let jobs = q.poll(now);
            ctx.shared.metrics.repair_queue_length.set(q.waiting() as i64);
            ctx.shared.metrics.repair_queue_oldest_seconds.set(q.oldest_wait(now).as_secs() as i64);
            (jobs, q.next_start().map(|t| t.saturating_sub(now)))
        };
        for job in jobs {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let stripe = job.stripe;
                let outcome = match rebuild(&ctx, job).await {
                    Ok(fetched) => {
                        ctx.shared.metrics.repair_bytes_in.inc_by(fetched);
                        ctx.shared.repair.rebuilt(stripe, true, &ctx.shared.metrics);
                        "rebuilt"
                    }
                    Err(RebuildError::NotNeeded(e)) => {
                        tracing::debug!(%stripe, "repair order not followed: {e}");
                        "order_unneeded"
                    }
                    Err(e) => {
                        tracing::warn!(%stripe, "rebuild failed: {e}");
                        let never = matches!(e, RebuildError::Never(_));
                        if never && ctx.shared.repair.rebuilt(stripe, false, &ctx.shared.metrics) {
                            tracing::warn!(%stripe, "rebuild given up after {MAX_REBUILD_TRIES} failures");
                        }
                        "rebuild_failed"
                    }
                };
                ctx.shared.metrics.repair_event(outcome);
                lock(&ctx.shared.repair.queue).finished(&stripe);
                ctx.shared.repair.wake.notify_one();
            });
        }
        let wait = next.unwrap_or(Duration::from_secs(1)).max(Duration::from_millis(10));
        let _ = tokio::time::timeout(wait, ctx.shared.repair.wake.notified()).await;
    }
}

/// Why a rebuild failed.
#[derive(Debug)]
enum RebuildError {
    /// Not now: too few shards reachable, the store refused, the task failed. A later round
    /// may succeed.
    Later(String),
    /// Never: `k` verified shards were in and what they rebuild is not the stripe's shard (a
    /// header that names shards that never existed).
    Never(String),
    /// Not asked for by this relay's own plan of the stripe (checked before anything is
    /// fetched): the order was stale, or false.
    NotNeeded(String),
}

impl std::fmt::Display for RebuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RebuildError::Later(e) => write!(f, "{e}"),
            RebuildError::Never(e) => write!(f, "{e} (it cannot succeed)"),
            RebuildError::NotNeeded(e) => write!(f, "order not followed: {e}"),
        }
    }
}

/// Fetches `k` verified shards, rebuilds index `job.index`, stores it. Returns bytes fetched.
async fn rebuild(ctx: &Ctx, job: RebuildJob<PeerId>) -> Result<u64, RebuildError> {
    use RebuildError::{Later, Never};
    let mut asm = StripeAssembler::new(job.stripe, &job.header).map_err(|e| Never(e.to_string()))?;
    let k = asm.header().params().k();
    // The holders this relay found itself first, then those the order named.
    let Confirmed { mut holders, with } = confirm_order(ctx, &job).await.map_err(RebuildError::NotNeeded)?;
    for p in &job.holders {
        if *p != ctx.me && !holders.contains(p) {
            holders.push(*p);
        }
    }
    // kura-core's FetchPlan decides whom to ask and when to hedge a slow holder.
    let start = Instant::now();
    let mut plan = FetchPlan::new(k, holders, REBUILD_HEDGE_AFTER);
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut fetched = 0u64;
    let mut failures = Vec::new();
    // Who gave shards: they hold the stripe, and so its postage if it is paid.
    let mut gave = Vec::new();
    loop {
        for p in plan.poll(start.elapsed()) {
            let net = ctx.net.clone();
            pending.push(async move { (p, net.request(p, Request::Fetch { stripe: job.stripe }).await) });
        }
        if plan.is_done() || plan.is_exhausted() {
            break;
        }
        let wake = plan.poll_timeout().map(|t| t.saturating_sub(start.elapsed()));
        let (p, r) = tokio::select! {
            Some(answer) = pending.next() => answer,
            () = sleep_or_never(wake) => continue,
            else => break,
        };
        match r {
            Ok(Response::Shards { shards, .. }) => {
                gave.push(p);
                for s in shards {
                    fetched += s.len() as u64;
                    if let Err(e) = asm.add_shard(s.into_vec()) {
                        failures.push(format!("{p}: {e}"));
                    }
                }
                plan.answered(&p, asm.present());
            }
            Ok(Response::Error { code, detail }) => {
                failures.push(format!("{p}: {code}: {detail}"));
                plan.failed(&p);
            }
            Ok(_) => {
                failures.push(format!("{p}: an answer of the wrong kind"));
                plan.failed(&p);
            }
            Err(e) => {
                failures.push(format!("{p}: {e}"));
                plan.failed(&p);
            }
        }
    }
    if !asm.is_ready() {
        return Err(Later(format!(
            "only {} of {k} shards found ({})",
            asm.present(),
            if failures.is_empty() { "no holders left".into() } else { failures.join("; ") }
        )));
    }
    let index = usize::from(job.index);
    let header = job.header;
    let store = ctx.shared.store.clone();
    /// The index stored, every shard of the stripe, and its header.
    type Rebuilt = (u8, Vec<Vec<u8>>, Vec<u8>);
    let (stored, shards, header) = blocking(move || -> Result<Rebuilt, RebuildError> {
        let shards = asm.rebuild_all().map_err(|e| Never(e.to_string()))?;
        let shard = shards.get(index).ok_or_else(|| Never("index out of range".into()))?;
        let stored = store.put_sole(&header, shard).map_err(|e| match e {
            StoreError::NotInStripe { .. } | StoreError::BadHeader(_) | StoreError::WrongLength { .. } => {
                Never(e.to_string())
            }
            e => Later(e.to_string()),
        })?;
        Ok((stored, shards, header))
    })
    .await
    .ok_or_else(|| Later("rebuild task failed".into()))??;
    tracing::info!(stripe = %job.stripe, index = stored, fetched, "rebuilt a lost shard");
    // The stripe's other lost shards were decoded with this one: each goes to its member as
    // a handover (one transfer, where a rebuild there would read `k` shards again). One that
    // does not land is planned again by a later round.
    for (i, to) in with {
        let Some(shard) = shards.get(usize::from(i)) else { continue };
        let handed = hand_over(ctx, job.stripe, i, to, header.clone(), shard.clone()).await;
        ctx.shared.metrics.repair_event(if handed { "rebuilt_handed_over" } else { "handover_failed" });
    }
    // Learnt beside the queue, not in it: asking four holders must not hold a rebuild's slot.
    let (ctx, stripe) = (ctx.clone(), job.stripe);
    tokio::spawn(async move { crate::epochs::learn_postage(&ctx, stripe, gave).await });
    Ok(fetched)
}

/// A lookup ends within the Kademlia query timeout (30 s); this bounds the wait for it.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(35);

/// A relay's lookups and ledger requests, as a wallet's network: what
/// [`kura_p2p::wallet::widen`] runs its lookups through.
impl kura_p2p::wallet::LedgerNet for Sender {
    type Error = String;

    async fn look_up(&self, key: kura_core::ledger::Key) -> Result<Vec<PeerId>, String> {
        Ok(Sender::look_up(self, key.to_vec()).await)
    }

    async fn look_up_bytes(&self, bytes: Vec<u8>) -> Result<Vec<PeerId>, String> {
        Ok(Sender::look_up(self, bytes).await)
    }

    async fn ledger(
        &self,
        peer: PeerId,
        req: kura_core::ledger::LedgerRequest,
    ) -> Result<kura_core::ledger::LedgerResponse, String> {
        Sender::ledger(self, peer, req).await
    }

    async fn pause(&self, d: Duration) {
        tokio::time::sleep(d).await
    }
}
