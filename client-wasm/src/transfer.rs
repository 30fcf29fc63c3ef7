//! Files over the network: a put encodes its input ([`encode_into`]) into a bounded queue
//! that the uploads take stripes from, out to their close groups ([`put`], [`put_stripes`]);
//! a get takes any `k` shards of each stripe back in ([`get`]). Each stripe runs one kura-core placement machine
//! ([`UploadPlan`], [`FetchPlan`]); this module only turns its decisions into requests and the
//! answers back into events.

use crate::net::{NetError, Network};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, Stream, StreamExt};
use kura_core::placement::{
    by_distance, DhtKey, FetchPlan, PlacementError, PutAction, StripePut, CLOSE_GROUP_SLACK, LOOKUP_FINDS,
};
use kura_core::wire::{ErrorCode, Request, Response, MAX_PART_LEN};
use kura_core::{
    Capability, DecodeError, Decoder, EncodeError, Encoder, ErrorDetails, ErrorKind, FileMap, FileMeta,
    Stripe, StripeAssembler, StripeId, UserError,
};
use libp2p::PeerId;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use web_time::Instant;

/// Counters a progress display reads while a transfer runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Plaintext bytes encoded (put) — counted by the caller that drives the encoder.
    pub encoded: AtomicU64,
    /// Shard bytes sent (put), including retries.
    pub sent: AtomicU64,
    /// Shard bytes confirmed stored (put).
    pub confirmed: AtomicU64,
    /// Shard bytes received and verified (get).
    pub received: AtomicU64,
    /// Plaintext bytes delivered (get).
    pub delivered: AtomicU64,
    /// Requests that failed and were retried elsewhere.
    pub retries: AtomicU64,
    /// Of `received`, the bytes donating tabs served (get).
    pub from_tabs: AtomicU64,
}

/// Tunables of a transfer.
#[derive(Debug, Clone)]
pub struct TransferConfig {
    /// Stripes uploaded at the same time (memory: about this many stripes of shards).
    pub stripes_in_flight: usize,
    /// Chunks fetched ahead of the output on a get (memory: about this many chunks).
    pub window: usize,
    /// A store unconfirmed after this long moves to the next relay.
    pub store_timeout: Duration,
    /// A fetch unanswered after this long is hedged with the next relay.
    pub hedge_after: Duration,
    /// What pays for a put's stripes; without it, stores are unpaid (within the relays'
    /// free allowance).
    pub purse: Option<std::sync::Arc<crate::wallet::Purse>>,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            stripes_in_flight: 8,
            window: 16,
            store_timeout: Duration::from_secs(60),
            hedge_after: Duration::from_secs(3),
            purse: None,
        }
    }
}

/// One stripe that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// The stripe.
    pub stripe: StripeId,
    /// Verified distinct shards found.
    pub have: usize,
    /// Shards needed (`k`); 0 when no relay even had its header.
    pub need: usize,
    /// Relays asked.
    pub asked: usize,
    /// Why the relays that gave nothing failed (at most a few).
    pub reasons: Vec<String>,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.need == 0 {
            write!(f, "stripe {}: no relay of {} asked holds it", self.stripe, self.asked)?;
        } else {
            write!(
                f,
                "stripe {}: {} of {} shards needed found on {} relays",
                self.stripe, self.have, self.need, self.asked
            )?;
        }
        if !self.reasons.is_empty() {
            write!(f, " ({})", self.reasons.join("; "))?;
        }
        Ok(())
    }
}

/// Why a put or get failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The network failed as a whole.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A stripe could not be placed on distinct relays.
    #[error("stripe {stripe}")]
    Placement { stripe: StripeId, source: PlacementError },
    /// Stripes could not be read: fewer than `k` shards reachable.
    #[error("file unavailable: {}", list(.0))]
    Unavailable(Vec<Unavailable>),
    /// The data did not decode (a corrupt map, a wrong key).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A broken invariant of this client (a bug).
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// The output could not be written.
    #[error("writing the output: {0}")]
    Output(String),
    /// The upload could not be paid for.
    #[error("paying: {0}")]
    Payment(String),
    /// The input could not be read.
    #[error("reading the input: {0}")]
    Input(String),
    /// The input could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

fn list(v: &[Unavailable]) -> String {
    v.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// The close group candidates of `stripe`, closest first (`again`: from a real lookup): what
/// one lookup finds, or the nearest `want` when that is more than one lookup returns
/// ([`kura_p2p::wallet::widen`]).
pub(crate) async fn candidates(
    net: &Network,
    stripe: StripeId,
    again: bool,
    want: usize,
) -> Result<Vec<PeerId>, NetError> {
    let point = DhtKey::of_stripe(&stripe);
    let mut peers = if again { net.look_up(stripe).await? } else { net.closest(stripe).await? };
    if want > kura_core::placement::LOOKUP_FINDS {
        peers = kura_p2p::wallet::widen(net, point, want, peers).await;
    }
    Ok(by_distance(&point, peers.into_iter().map(|p| (p, DhtKey::of(&p.to_bytes())))))
}

fn since(start: Instant) -> Duration {
    start.elapsed()
}

/// A relay's refusal in words.
fn refusal(r: &Response) -> String {
    match r {
        Response::Error { code, detail } => format!("{code}: {detail}"),
        _ => "an answer of the wrong kind".into(),
    }
}

impl UserError for NetError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Unreachable
    }
}

impl UserError for TransferError {
    fn kind(&self) -> ErrorKind {
        match self {
            TransferError::Net(e) => e.kind(),
            TransferError::Placement { source, .. } => source.kind(),
            TransferError::Unavailable(_) => ErrorKind::Unavailable,
            TransferError::Decode(e) => e.kind(),
            TransferError::Internal(_) => ErrorKind::Internal,
            TransferError::Output(_) | TransferError::Input(_) => ErrorKind::BadRequest,
            TransferError::Payment(_) => ErrorKind::Unpaid,
            TransferError::Encode(e) => e.kind(),
        }
    }

    fn details(&self) -> ErrorDetails {
        match self {
            TransferError::Placement { stripe, source } => {
                ErrorDetails { stripes: vec![*stripe], ..source.details() }
            }
            TransferError::Unavailable(v) => ErrorDetails {
                // The stripe furthest from readable.
                found: v.iter().filter(|u| u.need > 0).map(|u| u.have).min(),
                needed: v.iter().map(|u| u.need).max(),
                stripes: v.iter().map(|u| u.stripe).collect(),
                relay_code: None,
            },
            TransferError::Decode(e) => e.details(),
            _ => ErrorDetails::default(),
        }
    }
}

/// A timer for a machine's `poll_timeout` (measured from `start`); never fires for `None`.
async fn wake_at(start: Instant, at: Option<Duration>) {
    match at {
        Some(at) => futures_timer::Delay::new(at.saturating_sub(since(start))).await,
        None => futures::future::pending().await,
    }
}

/// Stores one stripe: one distinct shard on each member of its close group. The rules (when
/// to look again, where each shard goes, when a store has failed) are kura-core's
/// [`StripePut`]; this only moves bytes and wakes when the machine says.
pub async fn upload_stripe(
    net: &Network,
    stripe: &Stripe,
    cfg: &TransferConfig,
    progress: &Progress,
) -> Result<Vec<(usize, PeerId)>, TransferError> {
    // One stamp for the stripe, on each of its shards.
    let postage = match &cfg.purse {
        None => None,
        Some(purse) => {
            let bytes = (stripe.shard_count() * stripe.shard(0).len()) as u64;
            let p = purse
                .postage(stripe.id(), bytes)
                .ok_or(TransferError::Internal("the batch has no slot left"))?;
            Some(Box::new(p))
        }
    };
    store_stripe(net, stripe, postage, cfg, progress).await
}

/// [`upload_stripe`] with the postage given (or none: unpaid).
async fn store_stripe(
    net: &Network,
    stripe: &Stripe,
    postage: Option<Box<kura_core::farming::Postage>>,
    cfg: &TransferConfig,
    progress: &Progress,
) -> Result<Vec<(usize, PeerId)>, TransferError> {
    let id = stripe.id();
    let start = Instant::now();
    let placement = |source| TransferError::Placement { stripe: id, source };
    let mut put = StripePut::new(stripe.shard_count(), cfg.store_timeout);
    // The relays that take the stripe's shards: its `n` closest and the slack.
    let want = stripe.shard_count() + CLOSE_GROUP_SLACK;
    let mut lookups = FuturesUnordered::new();
    let mut pending = FuturesUnordered::new();
    loop {
        for action in put.poll(since(start)).map_err(placement)? {
            match action {
                PutAction::LookUp { fresh } => lookups.push(candidates(net, id, fresh, want)),
                PutAction::Store(a) => {
                    let shard = stripe.shard(a.index);
                    progress.sent.fetch_add(shard.len() as u64, Relaxed);
                    let (header, shard) = (stripe.header_bytes().to_vec(), shard.to_vec());
                    let req = match &postage {
                        Some(p) => Request::PaidStore { postage: p.clone(), header, shard },
                        None => Request::Store { header, shard },
                    };
                    pending.push(net.request(a.peer, req).map(move |r| (a, r)));
                }
            }
        }
        if put.is_done() {
            return Ok(put.holders());
        }
        let wake = wake_at(start, put.poll_timeout());
        futures::select! {
            found = lookups.select_next_some() => put.found(since(start), found?).map_err(placement)?,
            done = pending.select_next_some() => {
                let (a, r) = done;
                match r {
                    Ok(Response::Stored { .. }) => {
                        progress.confirmed.fetch_add(stripe.shard(a.index).len() as u64, Relaxed);
                        put.stored(&a.peer, a.index);
                    }
                    Ok(Response::Error { code, detail }) => {
                        progress.retries.fetch_add(1, Relaxed);
                        put.refused(&a.peer, a.index, code, &detail);
                    }
                    Ok(other) => {
                        progress.retries.fetch_add(1, Relaxed);
                        put.failed(&a.peer, a.index, &refusal(&other));
                    }
                    Err(e) => {
                        progress.retries.fetch_add(1, Relaxed);
                        put.failed(&a.peer, a.index, &e.to_string());
                    }
                }
            }
            () = wake.fuse() => {}
        }
    }
}

/// Where a put's plaintext comes from, a piece at a time: a file (the CLI), a `Blob` (the
/// page).
#[allow(async_fn_in_trait)]
pub trait Plaintext {
    /// The next piece, at most `max` bytes; empty at the end.
    async fn read(&mut self, max: usize) -> Result<Vec<u8>, String>;
}

/// A blocking reader as a [`Plaintext`], for an encoder on a thread of its own.
#[derive(Debug)]
pub struct Blocking<R>(pub R);

impl<R: std::io::Read> Plaintext for Blocking<R> {
    async fn read(&mut self, max: usize) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; max];
        let n = loop {
            match self.0.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r.map_err(|e| e.to_string())?,
            }
        };
        buf.truncate(n);
        Ok(buf)
    }
}

/// How often a progress display samples [`Progress`].
pub const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// What a progress display shows, read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub encoded: u64,
    pub sent: u64,
    pub confirmed: u64,
    pub received: u64,
    pub delivered: u64,
    pub retries: u64,
    pub from_tabs: u64,
}

impl Progress {
    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            encoded: self.encoded.load(Relaxed),
            sent: self.sent.load(Relaxed),
            confirmed: self.confirmed.load(Relaxed),
            received: self.received.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            retries: self.retries.load(Relaxed),
            from_tabs: self.from_tabs.load(Relaxed),
        }
    }
}

/// The encoding half of every put: reads `input` to its end through `enc`, sending each
/// stripe into `stripes` (the bounded queue the uploads take from, so encoding runs at most
/// that far ahead and memory stays at a few stripes) and counting the plaintext encoded in
/// `progress`. Returns the capability once the root stripe is queued.
pub async fn encode_into(
    mut enc: Encoder,
    mut input: impl Plaintext,
    meta: FileMeta,
    progress: &Progress,
    mut stripes: futures::channel::mpsc::Sender<Stripe>,
) -> Result<Capability, TransferError> {
    use futures::SinkExt;
    const STOPPED: TransferError = TransferError::Internal("the uploads stopped");
    loop {
        let piece = input.read(kura_core::CHUNK_SIZE).await.map_err(TransferError::Input)?;
        if piece.is_empty() {
            break;
        }
        let mut rest = &piece[..];
        while !rest.is_empty() {
            rest = &rest[enc.write(rest)..];
            if let Some(s) = enc.take_stripe() {
                stripes.send(s).await.map_err(|_| STOPPED)?;
            }
        }
        progress.encoded.store(enc.bytes_written(), Relaxed);
    }
    let mut tail = enc.finish(meta)?;
    for s in tail.by_ref() {
        stripes.send(s).await.map_err(|_| STOPPED)?;
    }
    tail.capability().ok_or(TransferError::Internal("the encoder ended without a capability"))
}

/// The stripe width for a put on this network (`kura_core::Params::for_network`) and the
/// network's size it rests on: the median of `SIZE_LOOKUPS` estimates
/// (`kura_core::placement::network_size`), from lookups for random keys run at once. On a
/// network small enough to be found whole the relays are counted, and no lookup is sent
/// while that answer stands.
pub async fn stripe_width(net: &Network) -> Result<(kura_core::Params, f64), NetError> {
    let lookups = (0..kura_core::placement::SIZE_LOOKUPS).map(|_| async {
        let mut bytes = [0u8; 32];
        // Any key will do: a failed draw looks up the zero key, whose estimate is as good.
        let _ = getrandom::fill(&mut bytes);
        let target = StripeId::from_bytes(bytes);
        let found = net.closest(target).await?;
        let keys: Vec<DhtKey> = found.iter().map(|p| DhtKey::of(&p.to_bytes())).collect();
        let whole = found.len() < libp2p::kad::K_VALUE.get();
        Ok::<f64, NetError>(kura_core::placement::network_size(&DhtKey::of_stripe(&target), &keys, whole))
    });
    let mut sizes = futures::future::try_join_all(lookups).await?;
    let (relays, params) = kura_core::placement::width_of_estimates(&mut sizes);
    Ok((params, relays))
}

/// A whole put: `encode` (given the sending end of a queue `cfg.stripes_in_flight` stripes
/// deep; normally [`encode_into`], on this task or on a thread of its own) produces the
/// stripes and the capability, and the uploads take stripes as they come. When an upload
/// fails, that failure is the put's (the encoder then only sees the queue closed).
pub async fn put<F>(
    net: &Network,
    cfg: &TransferConfig,
    progress: &Progress,
    encode: impl FnOnce(futures::channel::mpsc::Sender<Stripe>) -> F,
) -> Result<Capability, TransferError>
where
    F: std::future::Future<Output = Result<Capability, TransferError>>,
{
    let (tx, rx) = futures::channel::mpsc::channel(cfg.stripes_in_flight);
    let (cap, uploaded) = futures::future::join(encode(tx), put_stripes(net, rx, cfg, progress)).await;
    uploaded?;
    cap
}

/// The stripes of a file: its root and each chunk's, once each (the intermediate stripes of
/// a nested data map, files of more than about 15,000 chunks, are not listed).
pub fn stripes_of(cap: &Capability, map: &FileMap) -> Vec<StripeId> {
    let mut ids: Vec<StripeId> = vec![cap.root];
    ids.extend(map.chunks.iter().map(|c| c.stripe));
    let mut seen = HashSet::new();
    ids.retain(|id| seen.insert(*id));
    ids
}

/// What a renewal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewed {
    /// Stripes of the file, all stamped with the new batch.
    pub stripes: usize,
    /// Of those, stripes whose close group took the new stamp alone (no shard moved).
    pub by_stamp: usize,
    /// The file's size.
    pub size: u64,
}

/// Relays past the `n` closest asked to take a renewal's stamp (views of the group differ
/// a little, as stores allow).
const RESTAMP_SLACK: usize = 4;

/// Pays again for the file behind `cap` with `cfg.purse` (a renewal: the same stripes, so
/// the same capability, under a new batch). Each stripe's close group is first asked to
/// keep the new stamp for the shards it holds (`Restamp`: a few hundred bytes per relay);
/// a stripe fewer than `n` relays took it for is read back, rebuilt whole and stored again
/// with the same stamp. `size` is called with the file's size and the root stripe's header
/// before any stripe is stamped (to buy the batch: `cfg.purse` is read after it returns).
pub async fn renew<F, Fut>(
    net: &Network,
    cap: Capability,
    cfg: &mut TransferConfig,
    progress: &Progress,
    size: F,
) -> Result<Renewed, TransferError>
where
    F: FnOnce(u64, kura_core::StripeHeader) -> Fut,
    Fut: std::future::Future<Output = Result<std::sync::Arc<crate::wallet::Purse>, TransferError>>,
{
    let map = get(net, cap, Some((0, 0)), cfg, progress, |_| Ok(())).await?;
    let root = fetch_stripe(net, cap.root, cfg, progress).await?;
    let n = root.header().params().n();
    let purse = size(map.size, root.header().clone()).await?;
    cfg.purse = Some(purse.clone());
    let cfg = &*cfg;
    let ids = stripes_of(&cap, &map);
    let count = ids.len();
    let mut root = Some(root);
    let renewed = futures::stream::iter(ids).map(|id| {
        let first = if id == cap.root { root.take() } else { None };
        let purse = purse.clone();
        async move {
            // A full chunk's stripe fits any slot: the stamp is for the slot's bytes.
            let postage = purse
                .postage(id, purse.terms().slot_bytes)
                .ok_or(TransferError::Internal("the batch has no slot left"))?;
            if restamp(net, id, &postage, n).await {
                return Ok(true);
            }
            let asm = match first {
                Some(a) => a,
                None => fetch_stripe(net, id, cfg, progress).await?,
            };
            let stripe = asm.into_stripe().map_err(|e| TransferError::Decode(e.into()))?;
            store_stripe(net, &stripe, Some(Box::new(postage)), cfg, progress).await.map(|_| false)
        }
    });
    let mut results = std::pin::pin!(renewed.buffer_unordered(cfg.stripes_in_flight.max(1)));
    let mut by_stamp = 0;
    while let Some(r) = results.next().await {
        by_stamp += usize::from(r?);
    }
    Ok(Renewed { stripes: count, by_stamp, size: map.size })
}

/// Asks the relays closest to `stripe` to keep `postage` for the shard each holds; whether
/// at least `n` did (no bytes of shards move).
async fn restamp(net: &Network, stripe: StripeId, postage: &kura_core::farming::Postage, n: usize) -> bool {
    let Ok(peers) = candidates(net, stripe, false, n + RESTAMP_SLACK).await else { return false };
    let asked = peers.into_iter().take(n + RESTAMP_SLACK).map(|p| {
        let req = Request::Restamp { postage: Box::new(postage.clone()) };
        net.request(p, req)
    });
    let answers = futures::future::join_all(asked).await;
    answers.iter().filter(|a| matches!(a, Ok(Response::Stored { .. }))).count() >= n
}

/// Stores every stripe of `stripes` (in any order, `cfg.stripes_in_flight` at a time) and
/// returns how many there were. Stops at the first stripe that cannot be placed.
pub async fn put_stripes(
    net: &Network,
    stripes: impl Stream<Item = Stripe>,
    cfg: &TransferConfig,
    progress: &Progress,
) -> Result<u64, TransferError> {
    let mut results = std::pin::pin!(stripes
        .map(|s| async move { upload_stripe(net, &s, cfg, progress).await })
        .buffer_unordered(cfg.stripes_in_flight.max(1)));
    let mut count = 0u64;
    while let Some(r) = results.next().await {
        r?;
        count += 1;
    }
    Ok(count)
}

/// Collects `k` verified shards of one stripe from its close group.
pub async fn fetch_stripe(
    net: &Network,
    id: StripeId,
    cfg: &TransferConfig,
    progress: &Progress,
) -> Result<StripeAssembler, TransferError> {
    let start = Instant::now();
    let cands = candidates(net, id, false, LOOKUP_FINDS).await?;
    let mut asked = cands.len();
    // Relays of the group that answered at all (they are asked for tab holders first).
    let mut answered: Vec<PeerId> = Vec::new();
    let mut plan = FetchPlan::before_header(cands, cfg.hedge_after);
    let mut asm: Option<StripeAssembler> = None;
    // How many relays had answered when tabs were last asked.
    let mut tabs_asked: Option<usize> = None;
    let mut reasons: Vec<String> = Vec::new();
    let mut note = |r: String| {
        if reasons.len() < 4 {
            reasons.push(r);
        }
    };
    let mut pending = FuturesUnordered::new();
    loop {
        for peer in plan.poll(since(start)) {
            pending.push(fetch_held(net, peer, id).map(move |r| (peer, r)));
        }
        if plan.is_done() {
            if let Some(a) = asm {
                return Ok(a);
            }
        }
        let now = since(start);
        if let Some(want) = plan.wants_wider(now) {
            // Relays past what one lookup found may hold shards (a 10+10 stripe's last four):
            // found and asked before tabs are.
            let found = plan.candidates().to_vec();
            plan.widen(kura_p2p::wallet::widen(net, DhtKey::of_stripe(&id), want, found).await);
            asked = plan.candidates().len();
            continue;
        }
        if plan.is_short(now) && tabs_asked != Some(answered.len()) {
            // The close group is short (nobody left to ask, and what is still out, slow
            // relays aside, cannot make k): donating tabs' copies, through their relays, at
            // once; a slow relay that answers meanwhile still counts. Asked again only if more
            // relays have answered since (they may name other tabs).
            tabs_asked = Some(answered.len());
            let mut extra = Vec::new();
            let group = plan.candidates().to_vec();
            from_tabs(net, id, &answered, &group, &mut asm, progress, &mut extra).await;
            for r in extra {
                note(r);
            }
            if let Some(a) = asm.take_if(|a| a.is_ready()) {
                return Ok(a);
            }
        }
        if plan.is_exhausted() {
            let (have, need) = asm.as_ref().map_or((0, 0), |a| (a.present(), a.header().params().k()));
            return Err(TransferError::Unavailable(vec![Unavailable {
                stripe: id,
                have,
                need,
                asked,
                reasons,
            }]));
        }
        let next = [plan.poll_timeout(), plan.short_at(now)].into_iter().flatten().min();
        let wake = wake_at(start, next);
        futures::select! {
            done = pending.select_next_some() => {
                let (peer, r) = done;
                if r.is_ok() {
                    answered.push(peer);
                }
                match r {
                    Ok(Response::Shards { header, shards }) => {
                        let fresh = asm.is_none();
                        let who = peer.to_string();
                        // A header that does not hash to the id is that relay's fault only.
                        let Some(a) = add_answer(id, &mut asm, &header, shards.into_iter().map(|s| s.into_vec()), progress, false, &who, &mut note) else {
                            plan.failed(&peer);
                            continue;
                        };
                        if fresh {
                            plan.set_header(a.header().params().k(), a.header().params().n());
                        }
                        plan.answered(&peer, a.present());
                    }
                    Ok(Response::Error { code: ErrorCode::NotFound, .. }) => {
                        note(format!("{peer}: not found"));
                        plan.failed(&peer);
                    }
                    Ok(other) => {
                        note(format!("{peer}: {}", refusal(&other)));
                        progress.retries.fetch_add(1, Relaxed);
                        plan.failed(&peer);
                    }
                    Err(e) => {
                        note(e.to_string());
                        progress.retries.fetch_add(1, Relaxed);
                        plan.failed(&peer);
                    }
                }
            }
            () = wake.fuse() => {}
        }
    }
}

/// Adds a `Shards` answer from `who` to the stripe's assembler, made from the answer's
/// header if there is none yet; the bytes that verify count as received (and as from tabs
/// when `tab`), each shard that does not is a note. `None` when the header is not the
/// stripe's (the answer is that holder's fault alone).
#[allow(clippy::too_many_arguments)]
fn add_answer<'a>(
    id: StripeId,
    asm: &'a mut Option<StripeAssembler>,
    header: &[u8],
    shards: impl IntoIterator<Item = Vec<u8>>,
    progress: &Progress,
    tab: bool,
    who: &str,
    note: &mut impl FnMut(String),
) -> Option<&'a mut StripeAssembler> {
    if asm.is_none() {
        match StripeAssembler::new(id, header) {
            Ok(a) => *asm = Some(a),
            Err(e) => {
                note(format!("{who}: bad header: {e}"));
                return None;
            }
        }
    }
    let a = asm.as_mut()?;
    for shard in shards {
        let len = shard.len() as u64;
        match a.add_shard(shard) {
            Ok(_) => {
                progress.received.fetch_add(len, Relaxed);
                if tab {
                    progress.from_tabs.fetch_add(len, Relaxed);
                }
            }
            Err(e) => note(format!("{who}: corrupt shard: {e}")),
        }
    }
    Some(a)
}

/// Shards fetched from tabs at once.
const TAB_FETCHES: usize = 4;

/// Fills `asm` from donating tabs' copies: the tabs that the relays which answered (or, if
/// none did, every candidate) name as holders of the stripe are asked, through their
/// relays' circuits, for the indices still missing, until `k` shards are present. Every
/// shard is checked against its address like a relay's; a tab whose bytes do not verify
/// is noted and skipped.
/// How long a reader waits for a relay to name a stripe's tab holders.
const HOLDERS_WAIT: Duration = Duration::from_secs(5);

/// `relay`'s answer to `Holders` for a stripe, or `None` if it has none within
/// [`HOLDERS_WAIT`].
async fn holders_of(net: &Network, relay: PeerId, id: StripeId) -> Option<Response> {
    let asked = net.request(relay, Request::Holders { stripe: id }).fuse();
    let late = futures_timer::Delay::new(HOLDERS_WAIT).fuse();
    futures::pin_mut!(asked, late);
    futures::select! {
        r = asked => r.ok(),
        () = late => None,
    }
}

async fn from_tabs(
    net: &Network,
    id: StripeId,
    answered: &[PeerId],
    cands: &[PeerId],
    asm: &mut Option<StripeAssembler>,
    progress: &Progress,
    notes: &mut Vec<String>,
) {
    let ask = if answered.is_empty() { cands } else { answered };
    // A relay that does not answer within HOLDERS_WAIT (a dead one being dialed) is skipped.
    let named = futures::future::join_all(ask.iter().map(|r| holders_of(net, *r, id))).await;
    // Index → the tabs that hold it (a tab gone since it announced may still be named).
    let mut by_index: BTreeMap<u8, Vec<(PeerId, PeerId)>> = BTreeMap::new();
    for h in named.into_iter().flatten() {
        let Response::Holders { holders: list } = h else { continue };
        for t in list {
            let (Ok(tab), Ok(via)) = (PeerId::from_bytes(&t.tab), PeerId::from_bytes(&t.via)) else {
                continue;
            };
            let tabs = by_index.entry(t.index).or_default();
            if !tabs.contains(&(tab, via)) {
                tabs.push((tab, via));
            }
        }
    }
    if let Some(a) = asm.as_ref() {
        let missing = a.missing();
        by_index.retain(|i, _| missing.contains(&usize::from(*i)));
    }
    // Data shards first (with them no decoding is needed); each index from its first tab
    // that answers.
    let mut fetches = futures::stream::iter(by_index.into_values())
        .map(|tabs| async move {
            let mut failures = Vec::new();
            for (tab, via) in tabs {
                match net.request_via(tab, via, Request::Fetch { stripe: id }).await {
                    Ok(Response::Shards { header, shards }) => {
                        return (Some((tab, header, shards)), failures)
                    }
                    Ok(other) => failures.push(format!("tab {tab}: {}", refusal(&other))),
                    Err(e) => failures.push(format!("tab {tab}: {e}")),
                }
            }
            (None, failures)
        })
        .buffer_unordered(TAB_FETCHES);
    while let Some((got, failures)) = fetches.next().await {
        notes.extend(failures);
        let Some((tab, header, shards)) = got else { continue };
        let who = format!("tab {tab}");
        let added = add_answer(
            id,
            asm,
            &header,
            shards.into_iter().map(|s| s.into_vec()),
            progress,
            true,
            &who,
            &mut |n| notes.push(n),
        );
        if added.is_some_and(|a| a.is_ready()) {
            return;
        }
    }
}

/// The first piece of a part-wise read is short, so that its answer fits one WebRTC message
/// with any header (up to 255 shards: 8,172 bytes).
const FIRST_PART: usize = 4096;
/// Pieces asked of one relay at a time in a part-wise read, per stripe. With the read
/// window of [`PART_WINDOW`] stripes a relay sees at most 64 such streams at once; 32 per
/// stripe (256 at once) went past what relays take and timed out.
const PARTS_IN_FLIGHT: usize = 8;
/// The read window (stripes ahead) of a client that reads part-wise, whatever it is
/// configured with.
const PART_WINDOW: usize = 8;

/// What `peer` holds of `stripe`: one `Fetch`, or, when this client's answers must stay
/// small (a browser over WebRTC-direct), `FetchPart` pieces of its shard put back together
/// and returned as the `Shards` answer a `Fetch` would give. The assembled shard is checked
/// against its address like any other; an answer that does not add up is that relay's
/// failure.
async fn fetch_held(net: &Network, peer: PeerId, stripe: StripeId) -> Result<Response, NetError> {
    if !net.small_answers() {
        return net.request(peer, Request::Fetch { stripe }).await;
    }
    let bad = |reason: String| NetError::Request { peer, reason };
    let first = FIRST_PART as u32;
    let (header, total, mut shard) =
        match net.request(peer, Request::FetchPart { stripe, offset: 0, len: first }).await? {
            Response::Part { header, total, bytes } if bytes.len() == (total.min(first) as usize) => {
                (header, total as usize, bytes)
            }
            Response::Part { .. } => return Err(bad("a part of the wrong length".into())),
            other => return Ok(other),
        };
    shard.reserve(total.saturating_sub(shard.len()));
    let offsets = (shard.len()..total).step_by(MAX_PART_LEN);
    let mut parts = futures::stream::iter(offsets)
        .map(|offset| {
            let len = MAX_PART_LEN.min(total - offset);
            let req = Request::FetchPart { stripe, offset: offset as u32, len: len as u32 };
            net.request(peer, req).map(move |r| (len, r))
        })
        .buffered(PARTS_IN_FLIGHT);
    while let Some((len, r)) = parts.next().await {
        match r? {
            Response::Part { total: t, bytes, .. } if t as usize == total && bytes.len() == len => {
                shard.extend_from_slice(&bytes);
            }
            Response::Part { .. } => return Err(bad("a part that does not fit the others".into())),
            other => return Ok(other),
        }
    }
    Ok(Response::Shards { header, shards: vec![shard.into()] })
}

/// Reads the file behind `cap` (or `range` = (offset, length) of it), handing plaintext to
/// `out` in order. Returns the file's map. On unavailable stripes, waits for the fetches in
/// flight and names every stripe that failed.
pub async fn get(
    net: &Network,
    cap: Capability,
    range: Option<(u64, u64)>,
    cfg: &TransferConfig,
    progress: &Progress,
    mut out: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<FileMap, TransferError> {
    let mut decoder = match range {
        Some((off, len)) => Decoder::with_range(cap, off, len),
        None => Decoder::new(cap),
    };
    let window = if net.small_answers() { cfg.window.min(PART_WINDOW) } else { cfg.window };
    decoder.set_window(window.max(1));
    let mut in_flight: HashSet<StripeId> = HashSet::new();
    let mut fetches = FuturesUnordered::new();
    loop {
        while let Some(pt) = decoder.next_output()? {
            out(&pt).map_err(TransferError::Output)?;
            progress.delivered.fetch_add(pt.len() as u64, Relaxed);
        }
        if decoder.is_finished() {
            return decoder.file().cloned().ok_or(TransferError::Internal("finished without a file map"));
        }
        for id in decoder.wanted() {
            if in_flight.insert(id) {
                fetches.push(async move { (id, fetch_stripe(net, id, cfg, progress).await) });
            }
        }
        let Some((id, r)) = fetches.next().await else {
            return Err(TransferError::Internal("the decoder wants nothing but has not finished"));
        };
        in_flight.remove(&id);
        match r {
            Ok(asm) => {
                decoder.add_assembled(asm)?;
            }
            Err(TransferError::Unavailable(mut missing)) => {
                // Let the others finish, to name every stripe that is gone.
                while let Some((_, r)) = fetches.next().await {
                    if let Err(TransferError::Unavailable(more)) = r {
                        missing.extend(more);
                    }
                }
                return Err(TransferError::Unavailable(missing));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[path = "transfer_tests.rs"]
mod tests;
