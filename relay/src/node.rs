//! The libp2p host: transports, behaviours, and the event loop that serves the storage
//! protocol from a [`ShardStore`].
//!
//! Store operations block on disk, so each runs on tokio's blocking pool; its response
//! comes back to the event loop over a bounded channel, and at most `max_inflight` run at
//! once (beyond that a request is answered `Busy` at once). A peer sending garbage only
//! ever costs its own stream.

use crate::metrics::Metrics;
use crate::repair::{Command, Repair};
use crate::store::ShardStore;
use anyhow::{Context, Result};
use futures::StreamExt;
use kura_core::audit::Reported;
use kura_core::budget::PeerBudget;
use kura_core::ledger::{LedgerRequest, LedgerResponse};
use kura_core::placement::{rank, DhtKey};
use kura_core::proof::{challenged_chunk, prove};
use kura_core::wire::{ErrorCode, Request, Response, WireError, MAX_DETAIL_LEN, MAX_SHARDS_PER_RESPONSE};
use kura_core::{StripeHeader, StripeId};
use kura_p2p::audit::{AuditCodec, AUDIT_PROTOCOL};
use kura_p2p::ledger::{LedgerCodec, LEDGER_PROTOCOL};
use kura_p2p::outstanding::{Failure, Outstanding, Settled};
use kura_p2p::protocol::{Answer, RelayCodec, PROTOCOL};
use kura_p2p::transport::{Framing, Transport};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::{ConnectedPoint, Transport as _};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    autonat, connection_limits, identify, identity, kad, memory_connection_limits, noise, ping, relay, yamux,
    Multiaddr, PeerId, Swarm,
};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

pub use kura_p2p::protocol::KAD_PROTOCOL;
/// Storage-protocol streams one connection may have open at once (each a request being read
/// or answered).
pub const MAX_STREAMS_PER_CONNECTION: usize = 256;
/// Audit streams at once on one connection: challenges are small and rate-limited.
const MAX_AUDIT_STREAMS_PER_CONNECTION: usize = 32;
/// How long an audit stream may take, both ways (an auditor judges lateness by its own
/// deadline, shorter).
const AUDIT_STREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of a challenge frame (a `Prove` request: every field has a fixed size), for the
/// audit byte counters.
fn challenge_len() -> usize {
    let req = Request::Prove { stripe: StripeId::from_bytes([0; 32]), index: 0, nonce: [0; 32] };
    kura_core::wire::Message::frame_len(&req)
}

/// Identify's protocol version string.
pub const AGENT_PROTOCOL: &str = "/kura/1.0.0";

/// What a node is told at start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    /// Addresses others can reach this relay at; listen addresses are added as they come.
    pub external: Vec<Multiaddr>,
    pub max_connections: u32,
    /// Incoming connections one IP address may have.
    pub per_ip: crate::ip_limits::PerIp,
    pub max_inflight: usize,
    /// Bytes per second one peer may store, and its burst.
    pub store_rate: u64,
    pub store_burst: u64,
    /// Whether a replica looks up every certificate sender's group, not only where its view
    /// is thin (`--group-lookups always`).
    pub group_lookups_always: bool,
}

/// Peers whose allowances are tracked at once (see [`PeerBudget`]).
const BUDGET_PEERS: usize = 10_000;
/// Proofs one peer may ask for per second, and in a burst: a proof costs the relay a read
/// and a hash of a whole shard, and only relays auditing their groups ask for them.
const PROOF_RATE: u64 = 50;
const PROOF_BURST: u64 = 500;
pub use kura_core::placement::CLOSE_GROUP_SLACK;
/// The largest stripe (shards) a relay takes, and the most shards per shard needed to read
/// it (`n / k`): the network's repair keeps `n` copies of what one peer uploaded `k` of, so
/// these bound how much work one upload can make for everyone.
pub const MAX_STRIPE_SHARDS: usize = 32;
pub const MAX_EXPANSION: usize = 4;

/// A handover is a store from a relay leaving the stripe's group: taken only from a relay,
/// only where a store would be, and only for a stripe another member of its group holds.
/// Without that last check any relay of the network could hand this one made-up stripes,
/// unpaid and outside the free allowance and its room, until its disk is full; a stripe
/// stored in the network the ordinary way (paid, or free within the allowance) is held by
/// the rest of its group. The check costs the receiver a `Holds` query to each of the
/// stripe's other members in its view (at most the stripe's shard count), after the
/// sender's store allowance paid for the shard's bytes.
async fn handover(
    ctx: crate::repair::Ctx,
    peer: PeerId,
    from_relay: bool,
    header: Vec<u8>,
    shard: Vec<u8>,
) -> Response {
    let refused = |r: Response| {
        ctx.shared.metrics.refused("handover");
        r
    };
    if !from_relay {
        return refused(error(ErrorCode::NotInGroup, "handovers are taken from relays of this network only"));
    }
    let (shared, me, h) = (ctx.shared.clone(), ctx.me, header.clone());
    let n = match crate::repair::blocking(move || admit_store(&shared, &me, &h)).await {
        Some(Ok(h)) => h.params().n(),
        Some(Err(refusal)) => return refused(refusal),
        None => return error(ErrorCode::Internal, "the handover's check did not finish"),
    };
    let stripe = StripeId::of(&header);
    let asked = crate::epochs::held_elsewhere(&ctx, stripe, n, peer).await;
    if let Err(asked) = asked {
        return refused(error(
            ErrorCode::Unpaid,
            format!(
                "a handover is taken only for a stripe another member of its group holds; none of the \
                 {asked} asked holds stripe {stripe} (a new stripe is stored as any store is: paid, or \
                 within the free allowance)"
            ),
        ));
    }
    let len = shard.len() as u64;
    let shared = ctx.shared.clone();
    let resp =
        crate::repair::blocking(move || serve(&*shared.store, &me, Request::Handover { header, shard }))
            .await
            .unwrap_or_else(|| error(ErrorCode::Internal, "the handover's write did not finish"));
    if matches!(resp, Response::Stored { .. }) {
        ctx.shared.metrics.repair_bytes_in.inc_by(len);
        tokio::spawn(async move {
            crate::epochs::learn_postage(&ctx, stripe, vec![peer]).await;
        });
    }
    resp
}

/// Whether this relay takes a shard of the stripe with header `header`: a stripe of an
/// accepted shape, for which it is among the closest live relays it knows (its own view).
/// Refusals are answers the sender can act on.
pub fn admit_store(shared: &Shared, me: &PeerId, header: &[u8]) -> Result<StripeHeader, Response> {
    let h = StripeHeader::parse(header)
        .map_err(|e| error(ErrorCode::Malformed, format!("bad stripe header: {e}")))?;
    let (n, k) = (h.params().n(), h.params().k());
    if n > MAX_STRIPE_SHARDS || n > k * MAX_EXPANSION {
        return Err(error(
            ErrorCode::Malformed,
            format!("stripes of k = {k}, n = {n} are not taken (at most {MAX_STRIPE_SHARDS} shards and {MAX_EXPANSION}× k)"),
        ));
    }
    let live = lock_live(shared).live();
    let closer = rank_among(&StripeId::of(header), me, &live);
    if closer >= n + CLOSE_GROUP_SLACK {
        return Err(error(
            ErrorCode::NotInGroup,
            format!(
                "{closer} live relays are closer to this stripe than this one; store it with its close group"
            ),
        ));
    }
    Ok(h)
}

/// Most stripes held here looked at for one offer to a tab (a header read each).
const OFFER_SCAN: usize = 256;

/// An offer to a donating tab (blocking): a shard held here that the tab policy gives it
/// ([`crate::donation::Tabs::offer`]), with its header; `NotFound` when there is none. A tab
/// that says it is reachable here must hold a reservation here; one reachable elsewhere
/// must name a live relay.
fn offer_to_tab(shared: &Shared, me: &PeerId, tab: PeerId, via: PeerId, room: u32) -> Response {
    if shared.tabs.unreachable_here(&tab, &via, me) {
        return error(ErrorCode::NotFound, "no circuit reservation of this tab here");
    }
    if via != *me && !lock_live(shared).is_live(&via) {
        return error(ErrorCode::NotFound, format!("{via} is not a live relay of this network"));
    }
    if shared.tabs.is_full(&tab) {
        return error(ErrorCode::NotFound, "this tab may hold nothing more from this relay now");
    }
    // Each offer looks at a window of what is held from a random place (stripe ids are
    // hashes, so a random id is a random place): offers spread over tabs and over every
    // stripe, at a bounded cost per request.
    let start = StripeId::from_bytes(rand::random());
    let held = match shared.store.inventory_from(&start, OFFER_SCAN) {
        Ok(h) => h,
        Err(e) => return error(e.code(), e),
    };
    // Gathered (a header read each) before the announcements are locked.
    let candidates: Vec<_> = held
        .iter()
        .filter_map(|(stripe, idx)| {
            let [mine] = idx.as_slice() else { return None };
            let header = shared.store.header(stripe).ok()??;
            let h = StripeHeader::parse(&header).ok()?;
            (h.shard_len() <= room as usize).then(|| (*stripe, h.params().n(), h.params().k(), *mine))
        })
        .collect();
    let Some((stripe, index)) = shared.tabs.offer(tab, via, &candidates) else {
        return error(ErrorCode::NotFound, "nothing to offer this tab now");
    };
    match shared.store.get(&stripe) {
        Ok(Some(held)) => match held.shards.into_iter().find(|(i, _)| *i == index) {
            Some((_, shard)) => {
                shared.metrics.tab_offers.inc();
                shared.metrics.tab_offer_bytes.inc_by(shard.len() as u64);
                Response::Shards { header: held.header, shards: vec![shard.into()] }
            }
            None => error(ErrorCode::NotFound, format!("shard {index} of {stripe} is gone")),
        },
        Ok(None) => error(ErrorCode::NotFound, format!("stripe {stripe} is gone")),
        Err(e) => error(e.code(), e),
    }
}

/// The ledger group of `owner` (a batch's owner, for its burn certificate): placed in this
/// relay's view with the group looked up ahead of this, if it was
/// ([`crate::ledger::look_up_burn_owner`]).
pub fn owner_group(
    shared: &Shared,
    me: &PeerId,
    owner: &kura_core::ledger::Key,
) -> Option<kura_core::ledger::Group> {
    let relays = shared.ledger.with_looked_up(owner, view(shared, me));
    kura_p2p::ledger::group_of(owner, relays).map(|(g, _)| g)
}

/// The relays this relay knows to be live, itself included: its view, in which groups
/// (close groups, ledger groups, audit groups) are found.
pub fn view(shared: &Shared, me: &PeerId) -> Vec<PeerId> {
    let mut live = lock_live(shared).live();
    live.push(*me);
    live
}

/// This relay's answer to a ledger request from the network (blocking), with `relays` as its
/// view: [`answer_ledger`], and a catch-up started when the answer says this replica lacks
/// the sender's state (`always`: it looks up the sender's group of every certificate it
/// fetches, as `--group-lookups always` does for those sent).
fn answer_ledger_request(
    shared: &Arc<Shared>,
    me: PeerId,
    sender: &crate::repair::Sender,
    runtime: &tokio::runtime::Handle,
    relays: Vec<PeerId>,
    req: Result<LedgerRequest, kura_core::ledger::LedgerError>,
    always: bool,
) -> LedgerResponse {
    // The account whose debits this request is about, should this replica turn out to lack
    // some.
    let sender_account = match &req {
        Ok(LedgerRequest::Acknowledge(s)) => Some(s.transfer.from),
        Ok(LedgerRequest::Apply(c)) => Some(c.signed.transfer.from),
        _ => None,
    };
    let resp = answer_ledger(shared, &me, &relays, req);
    if let (Some(account), true) = (sender_account, crate::ledger::lacks_state(&resp)) {
        if shared.ledger.start_catch_up(account) {
            let (shared, sender) = (shared.clone(), sender.clone());
            runtime.spawn(async move {
                let view = relays.clone();
                let mint =
                    |cert| answer_ledger(&shared, &me, &view, Ok(LedgerRequest::Reward(Box::new(cert))));
                let (outcome, looked) =
                    crate::ledger::catch_up(&shared.ledger, &sender, account, me, relays, always, mint).await;
                shared.metrics.ledger_catch_up(outcome);
                for _ in 0..looked {
                    shared.metrics.group_lookup("catch-up");
                }
            });
        }
    }
    resp
}

/// This relay's answer, as a ledger replica, to `req` (blocking); `relays` is its view.
/// Requests from the network and its own (a relay paying its tabs is its own replica's
/// client too) are answered alike.
pub fn answer_ledger(
    shared: &Shared,
    me: &PeerId,
    relays: &[PeerId],
    req: Result<LedgerRequest, kura_core::ledger::LedgerError>,
) -> LedgerResponse {
    let group_of = |account: &kura_core::ledger::Key| {
        kura_p2p::ledger::group_of(account, relays.iter().copied())
            .map(|(group, members)| (group, members.contains(me)))
    };
    match req {
        Ok(LedgerRequest::Reward(cert)) => {
            // The group the draws in the certificate place, in this replica's view; none
            // (so no quorum) when they do not hold.
            let auditors: Vec<kura_core::ledger::Key> = kura_p2p::ledger::peer_of(&cert.relay)
                .and_then(|p| {
                    let beacon = kura_p2p::ledger::beacon_of(&p, cert.epoch, &cert.draws, relays)
                        .map_err(|e| tracing::info!(relay = %p, epoch = cert.epoch, "reward refused: {e}"))
                        .ok()?;
                    // Only relays met before the epoch began count (the age rule).
                    let aged = shared.farming.aged(relays, cert.epoch);
                    Some(kura_p2p::ledger::audit_group(&p, cert.epoch, &beacon, aged))
                })
                .unwrap_or_default()
                .into_iter()
                .map(|(_, k)| k)
                .collect();
            let serves = group_of(&cert.account).is_some_and(|(_, member)| member);
            shared.ledger.reward(&cert, serves, &auditors, &shared.farming.config().prices)
        }
        req => shared.ledger.handle(req, group_of),
    }
}

/// A renewal's new postage for a stripe held here (blocking): checked as a paid store's is
/// and kept; no shard moves.
/// A slot stamped twice is evidence handed to `found` (to pass on).
pub fn restamp(
    shared: &Shared,
    me: &PeerId,
    postage: &kura_core::farming::Postage,
    found: impl FnOnce(crate::farming::Evidence),
) -> Response {
    let stripe = postage.stamp.stripe;
    let held = match shared.store.holds(&[stripe]) {
        Ok(h) => h,
        Err(e) => return error(e.code(), e),
    };
    let Some(&index) = held.first().and_then(|(_, idx)| idx.first()) else {
        return error(ErrorCode::NotFound, format!("no shard of stripe {stripe} is held here"));
    };
    let header = match shared.store.header(&stripe).map(|h| h.map(|h| StripeHeader::parse(&h))) {
        Ok(Some(Ok(h))) => h,
        Ok(_) => return error(ErrorCode::NotFound, format!("no shard of stripe {stripe} is held here")),
        Err(e) => return error(e.code(), e),
    };
    match shared
        .farming
        .adopt(postage, header.params().n(), header.shard_len(), |o| owner_group(shared, me, o))
    {
        Ok(()) => Response::Stored { index },
        Err(e) => {
            if let Some(kura_core::farming::FarmError::DoubleStamp(ev)) = e.downcast_ref() {
                found(double_stamp_found(shared, me, postage, ev));
            }
            error(ErrorCode::Unpaid, format!("{e:#}"))
        }
    }
}

/// A slot stamped twice, found here in `postage` (the second stamp) against `ev.first`:
/// the batch is revoked already ([`kura_core::farming::StampBook::admit`]); the evidence is
/// counted, journalled and returned, for the caller to pass on.
fn double_stamp_found(
    shared: &Shared,
    from: &PeerId,
    postage: &kura_core::farming::Postage,
    ev: &kura_core::farming::DoubleStamp,
) -> crate::farming::Evidence {
    let first = kura_core::farming::Postage { stamp: ev.first.clone(), burn: postage.burn.clone() };
    let evidence = crate::farming::Evidence { postage: first, second: ev.second.clone() };
    shared.metrics.batch_revoked("found");
    tracing::warn!(
        batch = %kura_core::hex::encode(&postage.stamp.batch),
        %from,
        "batch revoked: its owner stamped a slot twice"
    );
    if let Err(e) = shared.farming.record_revoked(&evidence) {
        tracing::error!("farming journal: {e:#}");
    }
    evidence
}

/// Whether a client's store is paid for, or within the sender's free allowance
/// ([`crate::farming`]): `true` when free; the refusal says which and what to do.
fn admit_payment(
    shared: &Shared,
    me: &PeerId,
    peer: &PeerId,
    h: &StripeHeader,
    shard_len: usize,
    postage: Option<&kura_core::farming::Postage>,
    found: impl FnOnce(crate::farming::Evidence),
) -> Result<bool, Response> {
    match shared
        .farming
        .admit(&h.id(), h.params().n(), shard_len, peer, postage, |o| owner_group(shared, me, o))
    {
        Ok(kura_core::farming::Admitted::Free) => {
            shared.metrics.stores_free.inc();
            // Its life counts from now, journalled before the shard is stored but without
            // waiting for the disk: a record a crash loses is counted from the next sweep.
            let epoch = shared.farming.epoch_now();
            match shared.farming.record_free(&h.id(), epoch, false) {
                Ok(()) => Ok(true),
                Err(e) => {
                    shared.farming.release_free(shard_len as u64);
                    Err(error(ErrorCode::Internal, format!("farming journal: {e:#}")))
                }
            }
        }
        Ok(kura_core::farming::Admitted::Paid { new, .. }) => {
            shared.metrics.stores_paid.inc();
            if let (true, Some(p)) = (new, postage) {
                // What pays for the stripe is kept before the shard is: a stamp without its
                // shard is harmless, a shard whose payment is forgotten would earn nothing.
                shared
                    .farming
                    .record(p)
                    .map_err(|e| error(ErrorCode::Internal, format!("farming journal: {e:#}")))?;
            }
            Ok(false)
        }
        Err(e @ kura_core::farming::FarmError::FreeRoomFull { .. }) => Err(error(
            ErrorCode::Unpaid,
            format!("{e}; the rest is kept for paid storage (a wallet: `kura put --key WALLET`)"),
        )),
        Err(e @ kura_core::farming::FarmError::AllowanceUsed { .. }) => Err(error(
            ErrorCode::Unpaid,
            format!("{e}; storing more needs payment (a wallet: `kura put --key WALLET`)"),
        )),
        Err(e @ kura_core::farming::FarmError::DoubleStamp(_)) => {
            if let (Some(p), kura_core::farming::FarmError::DoubleStamp(ev)) = (postage, &e) {
                found(double_stamp_found(shared, peer, p, ev));
            }
            Err(error(ErrorCode::Unpaid, format!("the postage does not pay: {e}")))
        }
        Err(e) => Err(error(ErrorCode::Unpaid, format!("the postage does not pay: {e}"))),
    }
}

/// How many of the relays `live` (other than `peer`) are closer to `stripe` than `peer`:
/// `peer` is in the stripe's close group, with the slack views need, while this is below
/// `n + CLOSE_GROUP_SLACK`.
pub fn rank_among(stripe: &StripeId, peer: &PeerId, live: &[PeerId]) -> usize {
    let others = live.iter().filter(|p| *p != peer).map(|p| DhtKey::of(&p.to_bytes()));
    rank(&DhtKey::of_stripe(stripe), &DhtKey::of(&peer.to_bytes()), others)
}

/// Every protocol a relay speaks (libp2p behaviours have no `Debug`).
#[allow(missing_debug_implementations)]
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    per_ip: crate::ip_limits::Behaviour,
    limits: connection_limits::Behaviour,
    memory: memory_connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    relay: relay::Behaviour,
    autonat: autonat::Behaviour,
    pub store: request_response::Behaviour<RelayCodec>,
    pub audit: request_response::Behaviour<AuditCodec>,
    pub ledger: request_response::Behaviour<LedgerCodec>,
}

/// What the HTTP side can see of the node.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Info {
    pub peer_id: String,
    pub listen: Vec<String>,
    pub routing_table: Vec<String>,
    pub connected: HashMap<String, usize>,
}

/// State shared between the event loop and the HTTP server.
#[derive(Debug)]
pub struct Shared {
    pub info: RwLock<Info>,
    pub metrics: Metrics,
    pub store: Arc<dyn ShardStore>,
    pub repair: Arc<Repair>,
    pub ledger: Arc<crate::ledger::Ledger>,
    pub farming: crate::farming::Farming,
    pub history: crate::operator::History,
    /// Donating tabs' announcements (memory only).
    pub tabs: crate::donation::Tabs,
}

impl std::fmt::Debug for dyn ShardStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardStore").field("usage", &self.usage()).finish()
    }
}

/// Loads the identity key from `dir`, creating it on first start.
pub fn load_identity(dir: &Path) -> Result<identity::Keypair> {
    let path = dir.join("identity.key");
    if path.exists() {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let key = identity::Keypair::from_protobuf_encoding(&bytes)
            .with_context(|| format!("{} is not a valid identity key", path.display()))?;
        if !kura_p2p::admitted(&key.public().to_peer_id()) {
            tracing::warn!(
                "{} carries no join work: other relays will not count this relay in any close \
                 group (move it away to make a new identity; shards held are repaired to others)",
                path.display()
            );
        }
        return Ok(key);
    }
    // Made once: about fifteen seconds of one core for the join work (2^20 keys).
    let key = kura_p2p::relay_identity();
    write_private(&path, &key.to_protobuf_encoding()?)?;
    Ok(key)
}

/// Loads the WebRTC certificate from `dir`, creating it on first start, so the certhash in
/// the relay's addresses survives restarts.
pub fn load_certificate(dir: &Path) -> Result<libp2p_webrtc::tokio::Certificate> {
    let path = dir.join("webrtc.pem");
    if path.exists() {
        let pem = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        return libp2p_webrtc::tokio::Certificate::from_pem(&pem)
            .with_context(|| format!("{} is not a valid certificate", path.display()));
    }
    let cert = libp2p_webrtc::tokio::Certificate::generate(&mut rand::rng())?;
    write_private(&path, cert.serialize_pem().as_bytes())?;
    Ok(cert)
}

/// Writes a file only its owner may read, crash-safely.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    kura_p2p::docs::write_private(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Every behaviour of a relay, for its key and configuration (tests put it on other
/// transports).
pub fn behaviour(key: &identity::Keypair, cfg: &NodeConfig) -> Behaviour {
    let peer = key.public().to_peer_id();
    let mut kad_cfg = kad::Config::new(KAD_PROTOCOL);
    kad_cfg.set_query_timeout(Duration::from_secs(30));
    let mut kad = kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), kad_cfg);
    kad.set_mode(Some(kad::Mode::Server));
    let relay_cfg = relay::Config {
        max_reservations: 1024,
        max_reservations_per_peer: 4,
        max_circuits: 1024,
        max_circuits_per_peer: 16,
        max_circuit_duration: Duration::from_secs(30 * 60),
        // Shards are hundreds of KiB; a circuit must carry many of them.
        max_circuit_bytes: 1 << 30,
        ..relay::Config::default()
    };
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(cfg.max_connections))
        .with_max_established_per_peer(Some(8))
        .with_max_pending_incoming(Some(256));
    Behaviour {
        per_ip: crate::ip_limits::Behaviour::new(cfg.per_ip),
        limits: connection_limits::Behaviour::new(limits),
        memory: memory_connection_limits::Behaviour::with_max_percentage(0.9),
        identify: identify::Behaviour::new(
            identify::Config::new(AGENT_PROTOCOL.into(), key.public())
                .with_agent_version(format!("kura-relay/{}", env!("CARGO_PKG_VERSION")))
                // The bootstrap dial starts with the listeners; a peer that asked
                // before they were all up learns the rest when they are.
                .with_push_listen_addr_updates(true),
        ),
        ping: ping::Behaviour::default(),
        kad,
        relay: relay::Behaviour::new(peer, relay_cfg),
        autonat: autonat::Behaviour::new(peer, autonat::Config::default()),
        store: request_response::Behaviour::with_codec(
            RelayCodec::default(),
            [(PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default()
                // Also the time an inbound stream has to deliver its whole request:
                // a stream that stalls is dropped with what it sent.
                .with_request_timeout(Duration::from_secs(60))
                .with_max_concurrent_streams(MAX_STREAMS_PER_CONNECTION),
        ),
        audit: request_response::Behaviour::with_codec(
            AuditCodec,
            [(AUDIT_PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(AUDIT_STREAM_TIMEOUT)
                .with_max_concurrent_streams(MAX_AUDIT_STREAMS_PER_CONNECTION),
        ),
        ledger: request_response::Behaviour::with_codec(
            LedgerCodec,
            [(LEDGER_PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(AUDIT_STREAM_TIMEOUT)
                .with_max_concurrent_streams(MAX_AUDIT_STREAMS_PER_CONNECTION),
        ),
    }
}

/// Builds the swarm: TCP, QUIC, WebSocket and WebRTC-direct; noise and yamux. Every
/// connection's streams to circuits' destinations are counted in `circuits`.
pub async fn build_swarm(
    key: identity::Keypair,
    cert: libp2p_webrtc::tokio::Certificate,
    cfg: &NodeConfig,
    registry: &mut prometheus_client::registry::Registry,
    circuits: &crate::circuit_bytes::Tally,
) -> Result<Swarm<Behaviour>> {
    use crate::circuit_bytes::count;
    let (quic_tally, tcp_tally, webrtc_tally, ws_tally) =
        (circuits.clone(), circuits.clone(), circuits.clone(), circuits.clone());
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(move |key| {
            libp2p::quic::tokio::Transport::new(libp2p::quic::Config::new(key))
                .map(move |(peer, conn), _| (peer, count(StreamMuxerBox::new(conn), &quic_tally)))
        })?
        .with_other_transport(move |key| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(libp2p::Transport::map(
                kura_p2p::transport::tcp(key)?,
                move |(peer, muxer), _| (peer, count(muxer, &tcp_tally)),
            ))
        })?
        .with_other_transport(move |key| {
            libp2p_webrtc::tokio::Transport::new(key.clone(), cert)
                .map(move |(peer, conn), _| (peer, count(StreamMuxerBox::new(conn), &webrtc_tally)))
        })?
        .with_other_transport(move |key| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                libp2p::websocket::Config::new(libp2p::tcp::tokio::Transport::new(
                    libp2p::tcp::Config::default(),
                ))
                .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                .authenticate(noise::Config::new(key)?)
                .multiplex(yamux::Config::default())
                .map(move |(peer, muxer), _| (peer, count(StreamMuxerBox::new(muxer), &ws_tally))),
            )
        })?
        .with_dns()?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key| behaviour(key, cfg))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}

/// Where an answer goes: a storage request's channel, with whether its connection's
/// streams take a frame in one write, or an audit's.
enum Asker {
    Store { ch: ResponseChannel<Answer>, framing: Framing },
    Audit(ResponseChannel<Response>),
}

fn request_kind(r: &Result<Request, WireError>) -> &'static str {
    match r {
        Ok(Request::Store { .. }) => "store",
        Ok(Request::Fetch { .. }) => "fetch",
        Ok(Request::Holds { .. }) => "holds",
        Ok(Request::Repair { .. }) => "repair",
        Ok(Request::Handover { .. }) => "handover",
        Ok(Request::FetchPart { .. }) => "fetch_part",
        Ok(Request::Prove { .. }) => "prove",
        Ok(Request::Report { .. }) => "report",
        Ok(Request::PaidStore { .. }) => "paid_store",
        Ok(Request::EpochClaim(_)) => "epoch_claim",
        Ok(Request::Postage { .. }) => "postage",
        Ok(Request::Restamp { .. }) => "restamp",
        Ok(Request::Announce { .. }) => "announce",
        Ok(Request::Holders { .. }) => "holders",
        Ok(Request::Offer { .. }) => "offer",
        Ok(Request::Revoke { .. }) => "revoke",
        Ok(Request::Draw { .. }) => "draw",
        Ok(_) => "unknown",
        Err(_) => "invalid",
    }
}

/// An error response, its detail cut to the wire limit.
pub fn error(code: ErrorCode, detail: impl ToString) -> Response {
    kura_core::wire::error_within(code, detail, MAX_DETAIL_LEN)
}

/// Answers one request from the store (blocking); `me` is this relay's peer id (a proof of
/// possession is bound to it).
pub fn serve(store: &dyn ShardStore, me: &PeerId, req: Request) -> Response {
    let result = match req {
        Request::Store { header, shard } => {
            store.put(&header, &shard).map(|index| Response::Stored { index })
        }
        Request::Fetch { stripe } => store.get(&stripe).map(|held| match held {
            Some(h) => Response::Shards {
                header: h.header,
                shards: h.shards.into_iter().take(MAX_SHARDS_PER_RESPONSE).map(|(_, b)| b.into()).collect(),
            },
            None => error(ErrorCode::NotFound, format!("no shard of stripe {stripe} is held here")),
        }),
        Request::Holds { stripes } => store
            .holds(&stripes)
            .map(|held| Response::Held { held: held.into_iter().map(|(s, i)| (s, i.into())).collect() }),
        Request::Handover { header, shard } => {
            store.put_sole(&header, &shard).map(|index| Response::Stored { index })
        }
        Request::FetchPart { stripe, offset, len } => {
            store.part(&stripe, offset as usize, len as usize).map(|part| match part {
                Some(p) => Response::Part {
                    header: if offset == 0 { p.header } else { Vec::new() },
                    total: p.total as u32,
                    bytes: p.bytes,
                },
                None => error(ErrorCode::NotFound, format!("no shard of stripe {stripe} is held here")),
            })
        }
        Request::Prove { stripe, index, nonce } => store.get(&stripe).map(|held| {
            let held = held.and_then(|h| {
                let address =
                    StripeHeader::parse(&h.header).ok()?.shards().get(usize::from(index)).copied()?;
                h.shards.into_iter().find(|(i, _)| *i == index).map(|(_, shard)| (address, shard))
            });
            match held {
                // The store checked the shard against this address as it read it.
                Some((address, shard)) => {
                    let chunk = challenged_chunk(&nonce, &me.to_bytes(), &address, shard.len());
                    let p = prove(&shard, chunk);
                    Response::Proof { chunk: p.chunk, siblings: p.siblings }
                }
                None => {
                    error(ErrorCode::NotFound, format!("index {index} of stripe {stripe} is not held here"))
                }
            }
        }),
        other => return error(ErrorCode::UnsupportedVersion, format!("unsupported request {other:?}")),
    };
    result.unwrap_or_else(|e| error(e.code(), e))
}

/// The running node: the swarm plus what the event loop tracks.
pub struct Node {
    pub swarm: Swarm<Behaviour>,
    shared: Arc<Shared>,
    cfg: NodeConfig,
    listeners: HashSet<libp2p::core::transport::ListenerId>,
    listening: HashSet<libp2p::core::transport::ListenerId>,
    connections: HashMap<ConnectionId, Transport>,
    inflight: usize,
    done_tx: mpsc::Sender<(Asker, Response, &'static str)>,
    done_rx: mpsc::Receiver<(Asker, Response, &'static str)>,
    ledger_tx: mpsc::Sender<(ResponseChannel<LedgerResponse>, LedgerResponse)>,
    ledger_rx: mpsc::Receiver<(ResponseChannel<LedgerResponse>, LedgerResponse)>,
    cmd_tx: kura_p2p::task::Handle<Command>,
    cmd_rx: futures::channel::mpsc::Receiver<Command>,
    pending: Outstanding<Answer>,
    /// Challenges sent, waiting for their answers.
    audits_pending: Outstanding<Response>,
    /// Ledger requests sent (a replica catching itself up), waiting for their answers.
    ledger_pending: Outstanding<LedgerResponse>,
    /// Kademlia lookups asked for ([`Command::LookUp`]), by query.
    lookups: HashMap<kad::QueryId, futures::channel::oneshot::Sender<Vec<PeerId>>>,
    /// Bytes each peer may store.
    stores: PeerBudget<PeerId>,
    /// Proofs each peer may ask for.
    proofs: PeerBudget<PeerId>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer", self.swarm.local_peer_id())
            .field("inflight", &self.inflight)
            .finish()
    }
}

impl Node {
    /// Starts listening and dialing the bootstrap peers.
    pub fn start(mut swarm: Swarm<Behaviour>, shared: Arc<Shared>, cfg: NodeConfig) -> Result<Self> {
        let mut listeners = HashSet::new();
        for addr in &cfg.listen {
            let id = swarm.listen_on(addr.clone()).with_context(|| format!("cannot listen on {addr}"))?;
            listeners.insert(id);
        }
        for addr in &cfg.external {
            swarm.add_external_address(addr.clone());
        }
        for addr in &cfg.bootstrap {
            if let Some(Protocol::P2p(peer)) = addr.iter().last() {
                swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            }
            if let Err(e) = swarm.dial(addr.clone()) {
                tracing::warn!(%addr, "cannot dial bootstrap address: {e}");
            }
        }
        let (done_tx, done_rx) = mpsc::channel(cfg.max_inflight.max(1));
        let (ledger_tx, ledger_rx) = mpsc::channel(cfg.max_inflight.max(1));
        let (cmd_tx, cmd_rx) = kura_p2p::task::channel(256);
        shared.info.write().unwrap_or_else(|p| p.into_inner()).peer_id = swarm.local_peer_id().to_string();
        Ok(Self {
            swarm,
            shared,
            listeners,
            listening: HashSet::new(),
            connections: HashMap::new(),
            inflight: 0,
            done_tx,
            done_rx,
            ledger_tx,
            ledger_rx,
            cmd_tx,
            cmd_rx,
            pending: Outstanding::default(),
            audits_pending: Outstanding::default(),
            ledger_pending: Outstanding::default(),
            lookups: HashMap::new(),
            stores: PeerBudget::new(cfg.store_rate, cfg.store_burst, BUDGET_PEERS),
            proofs: PeerBudget::new(PROOF_RATE, PROOF_BURST, BUDGET_PEERS),
            cfg,
        })
    }

    /// Sends requests to other relays through this node (for the repair tasks).
    pub fn sender(&self) -> crate::repair::Sender {
        crate::repair::Sender::new(self.cmd_tx.clone(), self.shared.repair.cfg.audit_deadline)
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Request { peer, req, reply } => {
                let id = self.swarm.behaviour_mut().store.send_request(&peer, Ok(req));
                self.pending.sent(id, peer, reply);
            }
            Command::Audit { peer, req, reply } => {
                let id = self.swarm.behaviour_mut().audit.send_request(&peer, Ok(req));
                self.audits_pending.sent(id, peer, reply);
            }
            Command::Ledger { peer, req, reply } => {
                let id = self.swarm.behaviour_mut().ledger.send_request(&peer, Ok(req));
                self.ledger_pending.sent(id, peer, reply);
            }
            Command::LookUp { bytes, reply } => {
                let id = self.swarm.behaviour_mut().kad.get_closest_peers(bytes);
                self.lookups.insert(id, reply);
            }
            Command::Forget { peer } => {
                tracing::info!(%peer, "distrusted relay taken out of the routing table");
                self.swarm.behaviour_mut().kad.remove_peer(&peer);
                self.update_info();
            }
        }
    }

    /// Whether every listener has reported an address.
    pub fn is_listening(&self) -> bool {
        self.listening.len() == self.listeners.len()
    }

    /// Runs until `shutdown` resolves, then finishes the requests in flight.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
        mut on_ready: impl FnMut(&Self),
    ) {
        tokio::pin!(shutdown);
        let mut bootstrap = tokio::time::interval(Duration::from_secs(30));
        let mut announced = false;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some((to, resp, kind)) = self.done_rx.recv() => self.respond(to, resp, kind),
                Some((ch, resp)) = self.ledger_rx.recv() => self.respond_ledger(ch, resp),
                Some(cmd) = self.cmd_rx.next() => self.on_command(cmd),
                _ = bootstrap.tick() => self.bootstrap(),
                ev = self.swarm.select_next_some() => {
                    self.on_event(ev);
                    if !announced && self.is_listening() {
                        announced = true;
                        on_ready(&self);
                    }
                }
            }
        }
        tracing::info!(inflight = self.inflight, "shutting down: finishing requests in flight");
        while self.inflight > 0 {
            tokio::select! {
                Some((to, resp, kind)) = self.done_rx.recv() => self.respond(to, resp, kind),
                Some((ch, resp)) = self.ledger_rx.recv() => self.respond_ledger(ch, resp),
                ev = self.swarm.select_next_some() => self.on_event(ev),
            }
        }
        // Let the connections flush the last responses.
        let flush = async {
            loop {
                let ev = self.swarm.select_next_some().await;
                self.on_event(ev);
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(300), flush).await;
    }

    fn bootstrap(&mut self) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        if kad.kbuckets().map(|b| b.num_entries()).sum::<usize>() > 0 {
            let _ = kad.bootstrap();
        }
    }

    fn respond_ledger(&mut self, ch: ResponseChannel<LedgerResponse>, resp: LedgerResponse) {
        self.inflight -= 1;
        let outcome = match &resp {
            LedgerResponse::Acked(_) => "acked",
            LedgerResponse::Applied { .. } => "applied",
            LedgerResponse::Account(_) => "account",
            LedgerResponse::Certificate(_) | LedgerResponse::Reward(_) => "certificate",
            LedgerResponse::State(_) => "state",
            LedgerResponse::Refused { .. } => "refused",
        };
        self.shared.metrics.ledger(outcome);
        if self.swarm.behaviour_mut().ledger.send_response(ch, resp).is_err() {
            tracing::debug!("peer went away before its ledger answer");
        }
    }

    /// A request on `/kura/ledger/1`: answered on the blocking pool (an acknowledgement
    /// is committed to the journal before it leaves).
    fn on_ledger(
        &mut self,
        peer: PeerId,
        req: Result<LedgerRequest, kura_core::ledger::LedgerError>,
        ch: ResponseChannel<LedgerResponse>,
    ) {
        self.inflight += 1;
        let now = self.now();
        if let Err(e) = self.proofs.take(&peer, 1, now) {
            self.shared.metrics.refused("ledger");
            let resp = LedgerResponse::Refused { code: 0, detail: format!("busy: {e}") };
            return self.respond_ledger(ch, resp);
        }
        let shared = self.shared.clone();
        let tx = self.ledger_tx.clone();
        let me = *self.swarm.local_peer_id();
        let sender = self.sender();
        let runtime = tokio::runtime::Handle::current();
        let always = self.cfg.group_lookups_always;
        runtime.clone().spawn(async move {
            let relays = view(&shared, &me);
            let ask = |relays: Vec<PeerId>, req| {
                let (shared, sender, runtime) = (shared.clone(), sender.clone(), runtime.clone());
                tokio::task::spawn_blocking(move || {
                    answer_ledger_request(&shared, me, &sender, &runtime, relays, req, always)
                })
            };
            // A certificate's quorum is checked against its sender's group: placed from the
            // view where the view holds it, looked up where it does not.
            let (resp, looked) = match &req {
                Ok(LedgerRequest::Apply(c)) => {
                    let apply = |relays| {
                        let answered = ask(relays, Ok(LedgerRequest::Apply(c.clone())));
                        async move { answered.await.ok() }
                    };
                    crate::ledger::answer_certificate(&shared.ledger, &sender, &me, relays, c, always, apply)
                        .await
                }
                _ => (ask(relays, req).await.ok(), false),
            };
            if looked {
                shared.metrics.group_lookup("certificate");
            }
            let Some(resp) = resp else { return };
            let _ = tx.send((ch, resp)).await;
        });
    }

    fn respond(&mut self, to: Asker, resp: Response, kind: &'static str) {
        self.inflight -= 1;
        let m = &self.shared.metrics;
        if let Response::Error { code, .. } = &resp {
            m.error(kind, *code);
        }
        if let Response::Shards { shards, header } = &resp {
            m.response_bytes_out
                .inc_by((header.len() + shards.iter().map(|s| s.len()).sum::<usize>()) as u64);
        }
        let sent = match to {
            Asker::Store { ch, framing } => {
                let answer = Answer { response: resp, framing };
                self.swarm.behaviour_mut().store.send_response(ch, answer).is_ok()
            }
            Asker::Audit(ch) => {
                if kind == "prove" {
                    let proven = matches!(resp, Response::Proof { .. });
                    let out = kura_core::wire::Message::frame_len(&resp);
                    m.audit("auditee", if proven { "pass" } else { "fail" }, challenge_len(), out);
                }
                self.swarm.behaviour_mut().audit.send_response(ch, resp).is_ok()
            }
        };
        if !sent {
            tracing::debug!("peer went away before its response");
        }
        let u = self.shared.store.usage();
        m.shards_held.set(u.shards as i64);
        m.bytes_held.set(u.bytes as i64);
    }

    fn on_request(&mut self, peer: PeerId, req: Result<Request, WireError>, to: Asker) {
        let kind = request_kind(&req);
        self.shared.metrics.request(kind);
        let req = match req {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%peer, "invalid request: {e}");
                if e == WireError::Overloaded {
                    // Its connection's (or the process's) allowance of bytes being read.
                    self.shared.metrics.refused("reading");
                }
                self.inflight += 1;
                return self.respond(to, error(e.code(), e), kind);
            }
        };
        if let Request::Store { shard, header } | Request::PaidStore { shard, header, .. } = &req {
            self.shared.metrics.request_bytes_in.inc_by((shard.len() + header.len()) as u64);
        }
        self.inflight += 1;
        if self.inflight > self.cfg.max_inflight {
            return self.respond(to, error(ErrorCode::Busy, "too many requests in flight; retry"), kind);
        }
        let now = self.now();
        let allowed = match &req {
            Request::Store { shard, header }
            | Request::Handover { shard, header }
            | Request::PaidStore { shard, header, .. } => {
                self.stores.take(&peer, (shard.len() + header.len()) as u64, now)
            }
            Request::Prove { .. } | Request::Report { .. } => self.proofs.take(&peer, 1, now),
            // A claim costs its judge up to a thousand signature checks and sixteen
            // challenges: as much of the sender's allowance as fifty proofs.
            Request::EpochClaim(_) => self.proofs.take(&peer, 50, now),
            Request::Postage { .. } | Request::Restamp { .. } | Request::Holders { .. } => {
                self.proofs.take(&peer, 1, now)
            }
            // An index lookup per shard announced.
            Request::Announce { shards, .. } => self.proofs.take(&peer, 1 + shards.len() as u64 / 16, now),
            // A scan of what is held and a shard sent: as much as sixteen proofs (the tab's
            // quota of announcements here bounds the shards it can be given).
            Request::Offer { .. } => self.proofs.take(&peer, 16, now),
            // Evidence costs up to a burn certificate's and two stamps' signature checks.
            Request::Revoke { .. } => self.proofs.take(&peer, 16, now),
            // A draw is a hash to the curve and three scalar multiplications.
            Request::Draw { .. } => self.proofs.take(&peer, 2, now),
            _ => Ok(()),
        };
        if let Err(e) = allowed {
            self.shared.metrics.refused(kind);
            return self.respond(to, error(ErrorCode::Busy, e), kind);
        }
        if let Request::Report { stripe, index, holder } = &req {
            let resp = self.on_report(*stripe, *index, holder);
            return self.respond(to, resp, kind);
        }
        let shared = self.shared.clone();
        let tx = self.done_tx.clone();
        let from_relay = lock_live(&shared).is_live(&peer);
        let me = *self.swarm.local_peer_id();
        // A tab's announcement may be spot-checked. Evidence of a double stamp, found in a
        // paid store or told, is passed on.
        let later = matches!(
            req,
            Request::Announce { .. }
                | Request::PaidStore { .. }
                | Request::Restamp { .. }
                | Request::Revoke { .. }
        )
        .then(|| {
            (
                crate::repair::Ctx { me, shared: shared.clone(), net: self.sender() },
                tokio::runtime::Handle::current(),
            )
        });
        if let Request::EpochClaim(claim) = req {
            // Judged as one of the sender's auditors: its samples are challenged over the
            // network, so the answer comes later.
            let ctx = crate::repair::Ctx { me, shared, net: self.sender() };
            tokio::spawn(async move {
                let resp = crate::epochs::judge(&ctx, peer, *claim).await;
                let _ = tx.send((to, resp, kind)).await;
            });
            return;
        }
        if let Request::Handover { header, shard } = req {
            // Checked with the stripe's group over the network first: answered later.
            let ctx = crate::repair::Ctx { me, shared, net: self.sender() };
            tokio::spawn(async move {
                let resp = handover(ctx, peer, from_relay, header, shard).await;
                let _ = tx.send((to, resp, kind)).await;
            });
            return;
        }
        // A batch's burn certificate is checked against its owner's group: looked up first
        // where this relay's view is thin there, for a batch not admitted here yet (a paid
        // store of a known batch, the common case, takes no detour).
        let burn = match &req {
            Request::PaidStore { postage, .. }
            | Request::Restamp { postage }
            | Request::Revoke { postage, .. } => Some(&postage.burn),
            _ => None,
        };
        let burn = burn.filter(|b| !shared.farming.knows_batch(&b.signed.transfer.id())).cloned();
        let ahead = burn.map(|b| (b, self.sender(), self.cfg.group_lookups_always, shared.clone()));
        let work = move || {
            let resp = match req {
                r @ Request::Repair { .. } => shared.repair.order(&shared, &me, &peer, r),
                // A client's store, unpaid (within the free allowance) or paid.
                r @ (Request::Store { .. } | Request::PaidStore { .. }) => {
                    let (header, shard, postage, kind) = match r {
                        Request::PaidStore { postage, header, shard } => {
                            (header, shard, Some(postage), "paid_store")
                        }
                        Request::Store { header, shard } => (header, shard, None, "store"),
                        _ => unreachable!("matched above"),
                    };
                    let found = |evidence: crate::farming::Evidence| {
                        if let Some((ctx, rt)) = later {
                            let peers = crate::epochs::others(&ctx, None);
                            rt.spawn(crate::epochs::spread_revocation(ctx, evidence, peers));
                        }
                    };
                    let admitted = admit_store(&shared, &me, &header).and_then(|h| {
                        admit_payment(&shared, &me, &peer, &h, shard.len(), postage.as_deref(), found)
                    });
                    match admitted {
                        Err(refusal) => {
                            shared.metrics.refused(kind);
                            refusal
                        }
                        Ok(free) => {
                            let len = shard.len() as u64;
                            let resp = serve(&*shared.store, &me, Request::Store { header, shard });
                            if free && !matches!(resp, Response::Stored { .. }) {
                                shared.farming.release_free(len);
                            }
                            resp
                        }
                    }
                }
                Request::Restamp { postage } => restamp(&shared, &me, &postage, |evidence| {
                    if let Some((ctx, rt)) = later {
                        let peers = crate::epochs::others(&ctx, None);
                        rt.spawn(crate::epochs::spread_revocation(ctx, evidence, peers));
                    }
                }),
                Request::Revoke { postage, second } => {
                    let evidence = crate::farming::Evidence { postage: *postage, second: *second };
                    match shared.farming.revoke(&evidence, |o| owner_group(&shared, &me, o)) {
                        Ok(new) => {
                            if new {
                                shared.metrics.batch_revoked("told");
                                tracing::warn!(
                                    batch = %kura_core::hex::encode(&evidence.postage.stamp.batch),
                                    %peer,
                                    "batch revoked: its owner stamped a slot twice (evidence told by a peer)"
                                );
                                if let Some((ctx, rt)) = later {
                                    let peers = crate::epochs::others(&ctx, Some(peer));
                                    rt.spawn(crate::epochs::spread_revocation(ctx, evidence, peers));
                                }
                            }
                            Response::Accepted
                        }
                        Err(e) => error(ErrorCode::Unpaid, format!("{e:#}")),
                    }
                }
                Request::Announce { via, shards, payee } => match PeerId::from_bytes(&via) {
                    Ok(via) => {
                        let held = |stripe: &StripeId| {
                            let idx = shared.store.holds(&[*stripe]).ok()?;
                            idx.first()?;
                            let header = shared.store.header(stripe).ok()??;
                            let h = StripeHeader::parse(&header).ok()?;
                            Some((h.params().n(), h.shard_len()))
                        };
                        let kept = shared.tabs.announce(peer, via, &shards, payee, held);
                        if let (Some(chosen), Some((ctx, rt))) = (shared.tabs.check_due(&peer, &kept), later)
                        {
                            rt.spawn(crate::donation::spot_check(ctx, peer, chosen));
                        }
                        Response::Held { held: kept.into_iter().map(|(s, i)| (s, vec![i].into())).collect() }
                    }
                    Err(_) => error(ErrorCode::Malformed, "`via` is not a peer id"),
                },
                Request::Holders { stripe } => Response::Holders { holders: shared.tabs.holders(&stripe) },
                Request::Draw { epoch } => crate::epochs::answer_draw(&shared, &me, peer, epoch, from_relay),
                Request::Offer { via, room } => match PeerId::from_bytes(&via) {
                    Ok(_) if from_relay => {
                        error(ErrorCode::NotInGroup, "relays are not offered shards as tabs")
                    }
                    Ok(via) => offer_to_tab(&shared, &me, peer, via, room),
                    Err(_) => error(ErrorCode::Malformed, "`via` is not a peer id"),
                },
                Request::Postage { stripe } => {
                    let free = || shared.farming.free_since(&stripe);
                    match shared.farming.postage_of(&stripe) {
                        Ok(Some(p)) => Response::Postage(Box::new(p)),
                        Ok(None) => match free() {
                            Ok(Some(epoch)) => Response::FreeSince { epoch },
                            Ok(None) => error(
                                ErrorCode::NotFound,
                                format!("no postage is kept here for stripe {stripe}"),
                            ),
                            Err(e) => error(ErrorCode::Internal, format!("farming journal: {e:#}")),
                        },
                        Err(e) => error(ErrorCode::Internal, format!("farming journal: {e:#}")),
                    }
                }
                r => {
                    // A reader's whole fetch, or the first part of a streamed one (a part of
                    // no bytes is a header asked for by a check, not a read).
                    let read = match &r {
                        Request::Fetch { stripe } => Some(*stripe),
                        Request::FetchPart { stripe, offset: 0, len } if *len > 0 => Some(*stripe),
                        _ => None,
                    };
                    let resp = serve(&*shared.store, &me, r);
                    match (&resp, read) {
                        (Response::Shards { shards, .. }, _) if from_relay => {
                            let out = shards.iter().map(|s| s.len() as u64).sum();
                            shared.metrics.repair_bytes_out.inc_by(out);
                        }
                        (Response::Shards { .. } | Response::Part { .. }, Some(stripe)) => {
                            shared.tabs.read(stripe)
                        }
                        _ => {}
                    }
                    resp
                }
            };
            // The channel has room for every request in flight; the loop outlives the tasks.
            let _ = tx.blocking_send((to, resp, kind));
        };
        match ahead {
            Some((burn, net, always, shared)) => {
                tokio::spawn(async move {
                    let view = view(&shared, &me);
                    if crate::ledger::look_up_burn_owner(&shared, &net, &me, view, &burn, always).await {
                        shared.metrics.group_lookup("burn");
                    }
                    let _ = tokio::task::spawn_blocking(work).await;
                });
            }
            None => {
                tokio::task::spawn_blocking(work);
            }
        }
    }

    /// A client could not prove `holder`'s claim to index `index` of `stripe`: challenged
    /// soon by this relay if it relies on that claim. Advice only: the verdict is the
    /// relay's own.
    fn on_report(&mut self, stripe: StripeId, index: u8, holder: &[u8]) -> Response {
        let Ok(peer) = PeerId::from_bytes(holder) else {
            return error(ErrorCode::Malformed, "the reported holder is not a peer id");
        };
        let outcome = self.shared.repair.report(kura_core::audit::Claim { peer, stripe, index });
        self.shared.metrics.report(outcome);
        match outcome {
            Reported::Accepted => Response::Accepted,
            Reported::NotReliedOn => {
                error(ErrorCode::NotFound, "this relay relies on no such claim (it may not hold the stripe)")
            }
            Reported::TooSoon => error(ErrorCode::Busy, "that claim was reported moments ago"),
            Reported::Full => error(ErrorCode::Busy, "too many reports wait; retry later"),
        }
    }

    fn now(&self) -> Duration {
        self.shared.repair.now()
    }

    /// A relay of the network (it speaks Kademlia as a server) is reachable.
    fn relay_alive(&mut self, peer: PeerId) {
        let now = self.now();
        lock_live(&self.shared).connected(peer, now);
        if let Err(e) = self.shared.farming.met(&peer) {
            tracing::warn!(%peer, "keeping when this relay was met: {e:#}");
        }
    }

    fn update_info(&mut self) {
        let mut table = Vec::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for e in bucket.iter() {
                table.push(e.node.key.preimage().to_string());
            }
        }
        self.shared.metrics.routing_table_peers.set(table.len() as i64);
        let mut connected: HashMap<String, usize> = HashMap::new();
        for t in self.connections.values() {
            *connected.entry(t.label().to_owned()).or_default() += 1;
        }
        let mut info = self.shared.info.write().unwrap_or_else(|p| p.into_inner());
        info.routing_table = table;
        info.connected = connected;
    }

    fn on_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { listener_id, address } => {
                tracing::info!(%address, "listening");
                self.listening.insert(listener_id);
                let full = address.clone().with_p2p(*self.swarm.local_peer_id()).unwrap_or(address.clone());
                self.swarm.add_external_address(address);
                self.shared.info.write().unwrap_or_else(|p| p.into_inner()).listen.push(full.to_string());
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                tracing::info!(%address, "no longer listening");
                self.swarm.remove_external_address(&address);
                let full =
                    address.with_p2p(*self.swarm.local_peer_id()).map(|a| a.to_string()).unwrap_or_default();
                self.shared.info.write().unwrap_or_else(|p| p.into_inner()).listen.retain(|a| *a != full);
            }
            SwarmEvent::ConnectionEstablished { connection_id, endpoint, peer_id, .. } => {
                let addr = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => address,
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
                };
                let t = Transport::of(addr);
                tracing::debug!(%peer_id, transport = t.label(), "connected");
                self.connections.insert(connection_id, t);
                self.shared
                    .metrics
                    .peers
                    .get_or_create(&crate::metrics::Transport { transport: t.label().into() })
                    .inc();
                self.update_info();
            }
            SwarmEvent::ConnectionClosed { connection_id, peer_id, num_established: 0, .. } => {
                self.closed(connection_id);
                let now = self.now();
                if lock_live(&self.shared).disconnected(&peer_id, now) {
                    // Find out at once whether it is gone or the connection just idled out.
                    tracing::debug!(%peer_id, "last connection to a relay closed; dialling it again");
                    if let Err(e) = self.swarm.dial(peer_id) {
                        tracing::debug!(%peer_id, "cannot dial: {e}");
                        self.relay_gone(peer_id);
                    }
                }
            }
            SwarmEvent::ConnectionClosed { connection_id, .. } => self.closed(connection_id),
            SwarmEvent::Behaviour(BehaviourEvent::Store(
                e @ (request_response::Event::Message {
                    message: request_response::Message::Response { .. },
                    ..
                }
                | request_response::Event::OutboundFailure { .. }),
            )) => {
                if let Settled::Failed(Failure { peer, unreachable: true, .. }) = self.pending.settle(e) {
                    self.relay_gone(peer);
                }
            }
            _ => self.on_other_event(ev),
        }
    }

    /// `peer` could not be reached: suspect, then (after the grace period) gone.
    fn relay_gone(&mut self, peer: PeerId) {
        let now = self.now();
        if lock_live(&self.shared).unreachable(&peer, now) {
            tracing::info!(%peer, "relay unreachable past the grace period: taken as gone");
            self.swarm.behaviour_mut().kad.remove_peer(&peer);
            self.update_info();
        }
    }

    fn closed(&mut self, connection_id: ConnectionId) {
        if let Some(t) = self.connections.remove(&connection_id) {
            let label = crate::metrics::Transport { transport: t.label().into() };
            self.shared.metrics.peers.get_or_create(&label).dec();
        }
        self.update_info();
    }

    fn on_other_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) if info.protocols.contains(&KAD_PROTOCOL) => {
                // A relay without join work is never counted, alive or in the table.
                if !kura_p2p::admitted(&peer_id) {
                    return;
                }
                self.relay_alive(peer_id);
                if lock_live(&self.shared).is_banned(&peer_id) {
                    return;
                }
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Relay(e)) => match e {
                relay::Event::ReservationReqAccepted { src_peer_id, .. } => {
                    let n = self.shared.tabs.reservation(src_peer_id, true);
                    self.shared.metrics.reservations.set(n as i64);
                }
                relay::Event::ReservationClosed { src_peer_id }
                | relay::Event::ReservationTimedOut { src_peer_id } => {
                    let n = self.shared.tabs.reservation(src_peer_id, false);
                    self.shared.metrics.reservations.set(n as i64);
                }
                relay::Event::CircuitReqAccepted { .. } => {
                    self.shared.metrics.circuits.inc();
                }
                _ => {}
            },
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::InboundRequest { .. })) => {
                self.shared.metrics.kad_requests.inc();
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetClosestPeers(result),
                step,
                ..
            })) => {
                if !step.last {
                    return;
                }
                if let Some(reply) = self.lookups.remove(&id) {
                    let peers = match result {
                        Ok(ok) => ok.peers,
                        Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                    };
                    let live = lock_live(&self.shared);
                    let found = peers
                        .into_iter()
                        .map(|info| info.peer_id)
                        .filter(|p| kura_p2p::admitted(p) && !live.is_banned(p))
                        .collect();
                    let _ = reply.send(found);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer,
                is_new_peer,
                ..
            })) => {
                if !kura_p2p::admitted(&peer) {
                    // No join work: not a member of any close group, not handed out.
                    self.swarm.behaviour_mut().kad.remove_peer(&peer);
                    return;
                }
                self.relay_alive(peer);
                if lock_live(&self.shared).is_banned(&peer) {
                    // Distrusted after its audits: not handed out to anyone's lookups.
                    self.swarm.behaviour_mut().kad.remove_peer(&peer);
                    return;
                }
                if is_new_peer {
                    tracing::info!(%peer, "routing table: new peer");
                    if self.swarm.behaviour_mut().kad.kbuckets().map(|b| b.num_entries()).sum::<usize>() == 1
                    {
                        let _ = self.swarm.behaviour_mut().kad.bootstrap();
                    }
                }
                self.update_info();
            }
            SwarmEvent::Behaviour(BehaviourEvent::Store(request_response::Event::Message {
                peer,
                connection_id,
                message: request_response::Message::Request { request, channel, .. },
            })) => {
                // A connection not seen established (it cannot happen) is answered in pieces,
                // which every transport takes.
                let framing = self.connections.get(&connection_id).map_or(Framing::Pieces, |t| t.framing());
                // A proof is asked (and a failed one reported) on the audit protocol only.
                let request = match request {
                    Ok(Request::Prove { .. } | Request::Report { .. }) => {
                        Err(WireError::Malformed("proofs of possession are asked on /kura/audit/1".into()))
                    }
                    other => other,
                };
                self.on_request(peer, request, Asker::Store { ch: channel, framing })
            }
            SwarmEvent::Behaviour(BehaviourEvent::Store(request_response::Event::InboundFailure {
                peer,
                error,
                ..
            })) => {
                tracing::debug!(%peer, "inbound storage request failed: {error}");
                self.shared.metrics.error("inbound", ErrorCode::Malformed);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ledger(request_response::Event::Message {
                peer,
                message: request_response::Message::Request { request, channel, .. },
                ..
            })) => self.on_ledger(peer, request, channel),
            SwarmEvent::Behaviour(BehaviourEvent::Ledger(
                e @ (request_response::Event::Message {
                    message: request_response::Message::Response { .. },
                    ..
                }
                | request_response::Event::OutboundFailure { .. }),
            )) => {
                self.ledger_pending.settle(e);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Audit(request_response::Event::Message {
                peer,
                message: request_response::Message::Request { request, channel, .. },
                ..
            })) => self.on_request(peer, request, Asker::Audit(channel)),
            SwarmEvent::Behaviour(BehaviourEvent::Audit(
                e @ (request_response::Event::Message {
                    message: request_response::Message::Response { .. },
                    ..
                }
                | request_response::Event::OutboundFailure { .. }),
            )) => {
                self.audits_pending.settle(e);
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                tracing::debug!("incoming connection failed: {error}")
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, "outgoing connection failed: {error}");
                if let Some(p) = peer_id {
                    if !self.swarm.is_connected(&p) {
                        self.relay_gone(p);
                    }
                }
            }
            _ => {}
        }
    }
}

fn lock_live(shared: &Shared) -> std::sync::MutexGuard<'_, kura_core::repair::Liveness<PeerId>> {
    shared.repair.liveness.lock().unwrap_or_else(|p| p.into_inner())
}
