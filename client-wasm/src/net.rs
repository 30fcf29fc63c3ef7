//! The client's libp2p side: one swarm on its own task (Kademlia in client mode to find close
//! groups, `/kura/store/1` request-response to move shards), driven through a cloneable
//! [`Network`] handle. It moves bytes and answers questions; what to ask whom and when is
//! decided by kura-core's [`placement`](kura_core::placement) machines in
//! [`transfer`](crate::transfer).
//!
//! Everything here is written against `futures` (channels, `select!`), so that the same
//! driver runs on tokio natively and on the browser's event loop in wasm32; only the swarm's
//! transports and the task spawner differ.

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, StreamExt};
use kura_core::ledger::{LedgerRequest, LedgerResponse};
use kura_core::wire::{ErrorCode, Request, Response};
use kura_core::StripeId;
use kura_p2p::audit::{AuditCodec, AUDIT_PROTOCOL};
use kura_p2p::ledger::{LedgerCodec, LEDGER_PROTOCOL};
use kura_p2p::outstanding::{Outstanding, Settled};
use kura_p2p::protocol::{StoreCodec, KAD_PROTOCOL, PROTOCOL};
use kura_p2p::task::{Handle, Task};
use kura_p2p::transport::Framing;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{kad, relay, Multiaddr, PeerId, Swarm};
use std::collections::HashMap;
use std::time::Duration;
use web_time::Instant;

/// Why the network could not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// No bootstrap address was usable, or none answered.
    #[error("no relay reachable: {0}")]
    Unreachable(String),
    /// A bootstrap address or URL is not usable.
    #[error("bad bootstrap address {addr}: {reason}")]
    BadBootstrap { addr: String, reason: String },
    /// A request to one relay failed (dial, stream, timeout).
    #[error("request to {peer} failed: {reason}")]
    Request { peer: PeerId, reason: String },
    /// The swarm task is gone.
    #[error("the network task stopped")]
    Closed,
}

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    kad: kad::Behaviour<kad::store::MemoryStore>,
    store: request_response::Behaviour<StoreCodec>,
    audit: request_response::Behaviour<AuditCodec>,
    ledger: request_response::Behaviour<LedgerCodec>,
    /// Reservations on relays and circuits through them (absent in swarms over the memory
    /// transport of unit tests).
    relay: Toggle<relay::client::Behaviour>,
}

type Reply<T> = oneshot::Sender<Result<T, NetError>>;

enum Cmd {
    /// The stripe, and whether a real lookup is wanted even if the whole network is known.
    Closest(StripeId, bool, Reply<Vec<PeerId>>),
    /// A lookup of the relays closest to the key of these bytes (a wide lookup's later
    /// steps).
    Near(Vec<u8>, Reply<Vec<PeerId>>),
    Request(PeerId, Request, kura_p2p::outstanding::Reply<Response>),
    /// A challenge on `/kura/audit/1`.
    Audit(PeerId, Request, kura_p2p::outstanding::Reply<Response>),
    /// A request on `/kura/ledger/1`.
    Ledger(PeerId, LedgerRequest, kura_p2p::outstanding::Reply<LedgerResponse>),
    /// A request to a peer reachable only through a relay's circuit: (peer, relay).
    Via(PeerId, PeerId, Request, kura_p2p::outstanding::Reply<Response>),
    /// Listen on a circuit of the relay at this address (`…/p2p/RELAY`): a reservation.
    Reserve(Multiaddr, Reply<Multiaddr>),
    /// Hand requests from other peers to this channel (instead of refusing them).
    Serve(mpsc::Sender<Inbound>),
    /// Refuse them again, and drop the reservation.
    Unserve,
    /// The answer to the inbound request with this number.
    Respond(u64, Response),
}

/// What a peer asked of this client (a donating one): answer it with [`Network::respond`].
/// `Unreachable` says the circuit reservation ended (the relay went away or dropped it).
#[derive(Debug)]
pub enum Inbound {
    Request { id: u64, peer: PeerId, request: Request },
    Unreachable,
}

/// Inbound requests handed on at once; more are answered busy.
const MAX_INBOUND: usize = 64;

/// Tunables of the network driver.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// How long one request may take before it fails (a 256 KiB shard on a slow link).
    pub request_timeout: Duration,
    /// How long connecting to the bootstrap relays may take.
    pub connect_timeout: Duration,
    /// This client's key (a donating client keeps one, so that a restart keeps its peer
    /// id and the relays' announcements of it); a fresh one when `None`.
    pub identity: Option<libp2p::identity::Keypair>,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(20),
            identity: None,
        }
    }
}

/// A handle on the client's swarm. Cheap to clone; the swarm stops when the last handle is
/// dropped.
#[derive(Debug, Clone)]
pub struct Network {
    task: Handle<Cmd>,
    local: PeerId,
    webrtc_only: bool,
    lookups: std::sync::Arc<LookupCount>,
}

/// Kademlia lookups this client finished and the requests they sent, for figures.
#[derive(Debug, Default)]
struct LookupCount {
    lookups: std::sync::atomic::AtomicU64,
    requests: std::sync::atomic::AtomicU64,
}

/// Whether this build's transports can dial `addr` (in the browser: WebSocket and
/// WebRTC-direct with a certhash).
#[cfg(target_arch = "wasm32")]
pub fn dialable(addr: &Multiaddr) -> bool {
    let (mut ws, mut webrtc, mut certhash) = (false, false, false);
    for p in addr.iter() {
        match p {
            Protocol::Ws(_) | Protocol::Wss(_) => ws = true,
            Protocol::WebRTCDirect => webrtc = has_webrtc(),
            Protocol::Certhash(_) => certhash = true,
            Protocol::P2pCircuit => return false,
            _ => {}
        }
    }
    ws || (webrtc && certhash)
}

/// Whether this build's transports can dial `addr` (natively: TCP, not WebSocket; and
/// libp2p's memory transport, which only tests' swarms have).
#[cfg(not(target_arch = "wasm32"))]
pub fn dialable(addr: &Multiaddr) -> bool {
    let mut tcp = false;
    for p in addr.iter() {
        match p {
            Protocol::Tcp(_) | Protocol::Memory(_) => tcp = true,
            Protocol::Ws(_) | Protocol::Wss(_) | Protocol::P2pCircuit | Protocol::WebRTCDirect => {
                return false
            }
            _ => {}
        }
    }
    tcp
}

/// The addresses of one peer this client should dial: the dialable ones, and where the
/// peer has a WebSocket address, not its WebRTC-direct ones — unless this client is
/// `webrtc_only` (its caller gave only WebRTC-direct bootstrap addresses), then only those.
/// A browser reading over WebRTC-direct buffers at most 16 KiB per stream
/// (libp2p-webrtc-websys' `MAX_MSG_LEN`) and fails a stream when a relay's answer arrives
/// faster than the page's event loop drains it ("remote overloaded us with messages"); shard
/// answers are ~256 KiB. So WebSocket is preferred wherever a relay offers it; uploads (small
/// answers) work over either.
pub fn preferred<'a>(
    addrs: impl Iterator<Item = &'a Multiaddr> + Clone,
    webrtc_only: bool,
) -> Vec<Multiaddr> {
    if webrtc_only {
        return addrs.filter(|a| dialable(a) && !is_ws(a)).cloned().collect();
    }
    let has_ws = addrs.clone().any(|a| dialable(a) && is_ws(a));
    addrs.filter(|a| dialable(a) && (!has_ws || is_ws(a))).cloned().collect()
}

fn is_ws(a: &Multiaddr) -> bool {
    a.iter().any(|p| matches!(p, Protocol::Ws(_) | Protocol::Wss(_)))
}

/// Splits `/…/p2p/PEER` into the peer id and the address without it.
pub fn split_peer(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut a = addr.clone();
    match a.pop() {
        Some(Protocol::P2p(peer)) => Some((peer, a)),
        _ => None,
    }
}

impl Network {
    /// Starts the swarm and connects to at least one of `bootstrap` (each must end in
    /// `/p2p/PEER`). Fails when none answers within the connect timeout.
    pub async fn connect(bootstrap: &[Multiaddr], cfg: NetConfig) -> Result<Self, NetError> {
        // In a browser, WebRTC-direct (and then only it) when no bootstrap address is a
        // WebSocket one (see `preferred`): libp2p dials every address it knows of a peer,
        // Kademlia's included, so the transports built decide what is used.
        let webrtc_only = cfg!(target_arch = "wasm32") && !bootstrap.iter().any(is_ws);
        let swarm = build_swarm(&cfg, webrtc_only)?;
        Self::start(swarm, bootstrap, cfg, webrtc_only).await
    }

    /// [`Network::connect`] with a swarm built by the caller (tests build one over libp2p's
    /// memory transport).
    pub(crate) async fn start(
        mut swarm: Swarm<Behaviour>,
        bootstrap: &[Multiaddr],
        cfg: NetConfig,
        webrtc_only: bool,
    ) -> Result<Self, NetError> {
        let local = *swarm.local_peer_id();
        let mut dialing = 0usize;
        let mut errors = Vec::new();
        let mut split = Vec::with_capacity(bootstrap.len());
        for addr in bootstrap {
            let Some((peer, bare)) = split_peer(addr) else {
                return Err(NetError::BadBootstrap {
                    addr: addr.to_string(),
                    reason: "no /p2p/ peer id at the end".into(),
                });
            };
            split.push((peer, bare, addr));
        }
        for (peer, bare, addr) in &split {
            let (peer, bare) = (*peer, bare.clone());
            let others = split.iter().filter(|(p, ..)| *p == peer).map(|(_, a, _)| a);
            if !preferred(others, webrtc_only).contains(&bare) {
                continue;
            }
            swarm.behaviour_mut().kad.add_address(&peer, bare.clone());
            swarm.add_peer_address(peer, bare.clone());
            match swarm.dial((*addr).clone()) {
                Ok(()) => dialing += 1,
                Err(e) => errors.push(format!("{addr}: {e}")),
            }
        }
        if dialing == 0 {
            return Err(NetError::Unreachable(if errors.is_empty() {
                "no bootstrap address this client can dial (natively TCP; in a browser WebSocket or \
                 WebRTC-direct)"
                    .into()
            } else {
                errors.join("; ")
            }));
        }
        let connected = async {
            while dialing > 0 {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { .. } => return true,
                    SwarmEvent::OutgoingConnectionError { error, peer_id, .. } => {
                        errors
                            .push(format!("{}: {error}", peer_id.map(|p| p.to_string()).unwrap_or_default()));
                        dialing -= 1;
                    }
                    _ => {}
                }
            }
            false
        };
        let timeout = futures_timer::Delay::new(cfg.connect_timeout);
        let ok = futures::select! {
            ok = connected.fuse() => ok,
            () = timeout.fuse() => {
                errors.push(format!("no answer within {:?}", cfg.connect_timeout));
                false
            }
        };
        if !ok {
            return Err(NetError::Unreachable(errors.join("; ")));
        }
        let (task, commands) = kura_p2p::task::channel(256);
        // Where each bootstrap relay is (circuits to tabs go through them).
        let dialed = split.iter().map(|(peer, bare, _)| (*peer, bare.clone())).collect();
        let lookups = std::sync::Arc::new(LookupCount::default());
        let driver = Driver { webrtc_only, dialed, counted: lookups.clone(), ..Driver::default() };
        spawn(kura_p2p::task::run(swarm, commands, driver));
        Ok(Self { task, local, webrtc_only, lookups })
    }

    /// Kademlia lookups finished so far, and the requests they sent in all (answered or not).
    pub fn lookup_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.lookups.lookups.load(Relaxed), self.lookups.requests.load(Relaxed))
    }

    /// This client's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    /// Whether answers must stay small: a browser over WebRTC-direct takes at most one
    /// 16 KiB message per stream at a time (see [`preferred`]), so shards are read in
    /// [`Request::FetchPart`] pieces.
    pub fn small_answers(&self) -> bool {
        self.webrtc_only
    }

    async fn call<T>(&self, cmd: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, NetError> {
        self.task.call(cmd).await.map_err(|_| NetError::Closed)?
    }

    /// The live relays closest to `stripe` that one Kademlia lookup finds (up to 20), in
    /// no particular order; order them with [`kura_core::placement::by_distance`].
    /// On a network small enough to be known whole (see `WholeNetwork`), answered from that.
    pub async fn closest(&self, stripe: StripeId) -> Result<Vec<PeerId>, NetError> {
        self.call(|r| Cmd::Closest(stripe, false, r)).await
    }

    /// Like [`Network::closest`], but always a real lookup: for a caller that found too few
    /// relays and asks again (a relay may have joined or come back since).
    pub async fn look_up(&self, stripe: StripeId) -> Result<Vec<PeerId>, NetError> {
        self.call(|r| Cmd::Closest(stripe, true, r)).await
    }

    /// The live relays closest to the key of `bytes` (`DhtKey::of`) that one lookup finds
    /// (up to 20): what a lookup for a group wider than that asks next
    /// ([`kura_core::placement::WideLookup`]).
    pub async fn look_up_bytes(&self, bytes: Vec<u8>) -> Result<Vec<PeerId>, NetError> {
        self.call(|r| Cmd::Near(bytes, r)).await
    }

    /// Sends `req` to `peer` (dialing it if needed) and waits for the answer.
    pub async fn request(&self, peer: PeerId, req: Request) -> Result<Response, NetError> {
        self.task
            .call(|reply| Cmd::Request(peer, req, reply))
            .await
            .map_err(|_| NetError::Closed)?
            .map_err(|f| NetError::Request { peer: f.peer, reason: f.reason })
    }

    /// Sends a challenge (a `Prove` request) to `peer` on `/kura/audit/1` and waits for
    /// the answer: a proof or an error.
    pub async fn audit(&self, peer: PeerId, challenge: Request) -> Result<Response, NetError> {
        self.task
            .call(|reply| Cmd::Audit(peer, challenge, reply))
            .await
            .map_err(|_| NetError::Closed)?
            .map_err(|f| NetError::Request { peer: f.peer, reason: f.reason })
    }

    /// Sends `req` to `peer`, a tab reachable through a circuit of the relay `via`, and
    /// waits for the answer.
    pub async fn request_via(&self, peer: PeerId, via: PeerId, req: Request) -> Result<Response, NetError> {
        self.task
            .call(|reply| Cmd::Via(peer, via, req, reply))
            .await
            .map_err(|_| NetError::Closed)?
            .map_err(|f| NetError::Request { peer: f.peer, reason: f.reason })
    }

    /// Takes a reservation on the relay at `relay` (`…/p2p/RELAY`), so that others reach
    /// this client through it; returns the circuit address once the relay accepted.
    pub async fn reserve(&self, relay: Multiaddr) -> Result<Multiaddr, NetError> {
        self.call(|r| Cmd::Reserve(relay, r)).await
    }

    /// From now on, requests from other peers arrive on the returned channel (bounded;
    /// more than it holds are answered busy), each to be answered with
    /// [`Network::respond`]; the end of a reservation arrives as [`Inbound::Unreachable`].
    pub async fn serve(&self) -> Result<mpsc::Receiver<Inbound>, NetError> {
        let (tx, rx) = mpsc::channel(MAX_INBOUND);
        self.task.send(Cmd::Serve(tx)).await.map_err(|_| NetError::Closed)?;
        Ok(rx)
    }

    /// Stops serving: requests from other peers are refused again and the reservation is
    /// dropped.
    pub async fn stop_serving(&self) -> Result<(), NetError> {
        self.task.send(Cmd::Unserve).await.map_err(|_| NetError::Closed)
    }

    /// Answers inbound request `id`.
    pub async fn respond(&self, id: u64, response: Response) -> Result<(), NetError> {
        self.task.send(Cmd::Respond(id, response)).await.map_err(|_| NetError::Closed)
    }

    /// Sends `req` to `peer` on `/kura/ledger/1` and waits for the answer.
    pub async fn ledger(&self, peer: PeerId, req: LedgerRequest) -> Result<LedgerResponse, NetError> {
        self.task
            .call(|reply| Cmd::Ledger(peer, req, reply))
            .await
            .map_err(|_| NetError::Closed)?
            .map_err(|f| NetError::Request { peer: f.peer, reason: f.reason })
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn spawn(f: impl std::future::Future<Output = ()> + Send + 'static) {
    tokio::spawn(f);
}

#[cfg(target_arch = "wasm32")]
fn spawn(f: impl std::future::Future<Output = ()> + 'static) {
    wasm_bindgen_futures::spawn_local(f);
}

/// Whether this JavaScript context can make WebRTC connections: a page can, a Web Worker
/// cannot (no `window`, no `RTCPeerConnection`).
#[cfg(target_arch = "wasm32")]
pub fn has_webrtc() -> bool {
    let g = js_sys::global();
    ["window", "RTCPeerConnection"].iter().all(|k| js_sys::Reflect::has(&g, &(*k).into()).unwrap_or(false))
}

/// The browser's swarm: WebSocket (noise + yamux on top), or WebRTC-direct (its own
/// encryption and multiplexing) when `webrtc_only` and the context has WebRTC.
#[cfg(target_arch = "wasm32")]
fn build_swarm(cfg: &NetConfig, webrtc_only: bool) -> Result<Swarm<Behaviour>, NetError> {
    use libp2p::core::muxing::StreamMuxerBox;
    use libp2p::core::upgrade::Version;
    use libp2p::core::Transport as _;
    use libp2p::{noise, webrtc_websys, yamux};
    let fail = |e: &dyn std::fmt::Display| NetError::Unreachable(format!("cannot start libp2p: {e}"));
    let key = cfg.identity.clone().unwrap_or_else(libp2p::identity::Keypair::generate_ed25519);
    Ok(libp2p::SwarmBuilder::with_existing_identity(key)
        .with_wasm_bindgen()
        .with_other_transport(|key| {
            let transport = if webrtc_only && has_webrtc() {
                webrtc_websys::Transport::new(webrtc_websys::Config::new(key))
                    .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)))
                    .boxed()
            } else {
                crate::ws::Transport
                    .upgrade(Version::V1)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default())
                    .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)))
                    .boxed()
            };
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(transport)
        })
        .map_err(|e| fail(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| fail(&e))?
        .with_behaviour(|key, relay| with_relay(behaviour(key.public().to_peer_id(), cfg), relay))
        .map_err(|e| fail(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build())
}

#[cfg(not(target_arch = "wasm32"))]
fn build_swarm(cfg: &NetConfig, _webrtc: bool) -> Result<Swarm<Behaviour>, NetError> {
    let fail = |e: &dyn std::fmt::Display| NetError::Unreachable(format!("cannot start libp2p: {e}"));
    let key = cfg.identity.clone().unwrap_or_else(libp2p::identity::Keypair::generate_ed25519);
    Ok(libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(kura_p2p::transport::tcp)
        .map_err(|e| fail(&e))?
        .with_dns()
        .map_err(|e| fail(&e))?
        .with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)
        .map_err(|e| fail(&e))?
        .with_behaviour(|key, relay| with_relay(behaviour(key.public().to_peer_id(), cfg), relay))
        .map_err(|e| fail(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build())
}

fn with_relay(mut b: Behaviour, relay: relay::client::Behaviour) -> Behaviour {
    b.relay = Toggle::from(Some(relay));
    b
}

pub(crate) fn behaviour(me: PeerId, cfg: &NetConfig) -> Behaviour {
    let mut kad_cfg = kad::Config::new(KAD_PROTOCOL);
    kad_cfg.set_query_timeout(Duration::from_secs(30));
    let mut kad = kad::Behaviour::with_config(me, kad::store::MemoryStore::new(me), kad_cfg);
    kad.set_mode(Some(kad::Mode::Client));
    let rr = request_response::Config::default()
        .with_request_timeout(cfg.request_timeout)
        .with_max_concurrent_streams(1024);
    Behaviour {
        kad,
        store: request_response::Behaviour::with_codec(
            StoreCodec::new(Framing::CLIENT),
            // Inbound: a donating client serves the shards it holds (others refuse).
            [(PROTOCOL, ProtocolSupport::Full)],
            rr,
        ),
        audit: request_response::Behaviour::with_codec(
            AuditCodec,
            [(AUDIT_PROTOCOL, ProtocolSupport::Outbound)],
            request_response::Config::default().with_request_timeout(AUDIT_TIMEOUT),
        ),
        ledger: request_response::Behaviour::with_codec(
            LedgerCodec,
            [(LEDGER_PROTOCOL, ProtocolSupport::Outbound)],
            request_response::Config::default().with_request_timeout(AUDIT_TIMEOUT),
        ),
        relay: Toggle::from(None),
    }
}

/// How long a challenge may wait for its proof.
const AUDIT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the answer of a lookup that found the whole network stands in for new lookups.
const WHOLE_NETWORK_FOR: Duration = Duration::from_secs(10);

/// The whole network, when the last lookup found it.
///
/// A lookup that ends without error having found fewer relays than a Kademlia bucket holds
/// has found every relay there is: the close group of any stripe is then the closest of
/// those, so for a little while stripes need no lookup of their own (on a small network a
/// lookup per stripe cost more than placing it). The set stands in only while this client is
/// connected to every relay in it, and any failed request forgets it: a relay that went away
/// (or every relay, as after an outage) sends the next stripe to a real lookup, which finds
/// only the live ones.
#[derive(Debug, Default)]
struct WholeNetwork {
    known: Option<(Instant, Vec<PeerId>)>,
}

impl WholeNetwork {
    /// The relays to use instead of a lookup, if the set still stands at `now`.
    fn answer(&self, now: Instant, connected: impl Fn(&PeerId) -> bool) -> Option<Vec<PeerId>> {
        let (at, peers) = self.known.as_ref()?;
        let fresh = now.saturating_duration_since(*at) < WHOLE_NETWORK_FOR;
        (fresh && peers.iter().all(connected)).then(|| peers.clone())
    }

    /// A lookup ended at `now` with `found` (`complete`: without timing out).
    fn looked_up(&mut self, now: Instant, found: &[PeerId], complete: bool) {
        self.known = (complete && !found.is_empty() && found.len() < kad::K_VALUE.get())
            .then(|| (now, found.to_vec()));
    }

    /// A request failed: a relay of the set may be gone.
    fn forget(&mut self) {
        self.known = None;
    }
}

/// The swarm's task: lookups and requests in, their answers out.
#[derive(Default)]
struct Driver {
    webrtc_only: bool,
    /// Lookups in flight, and whether each is of a key (whose answer may show the whole
    /// network) rather than near a relay.
    lookups: HashMap<kad::QueryId, (Reply<Vec<PeerId>>, bool)>,
    whole: WholeNetwork,
    requests: Outstanding<Response>,
    audits: Outstanding<Response>,
    ledger: Outstanding<LedgerResponse>,
    /// Where each relay this client dialed was reached (for circuit addresses through it).
    dialed: HashMap<PeerId, Multiaddr>,
    /// Reservations asked for and not yet confirmed, and the one held.
    reserving: HashMap<ListenerId, Reply<Multiaddr>>,
    reserved: Option<ListenerId>,
    server: Option<mpsc::Sender<Inbound>>,
    inbound: HashMap<u64, ResponseChannel<Response>>,
    next_inbound: u64,
    counted: std::sync::Arc<LookupCount>,
}

impl Driver {
    fn inbound(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peer: PeerId,
        request: Result<Request, kura_core::wire::WireError>,
        channel: ResponseChannel<Response>,
    ) {
        let refuse = |code, detail: &str| kura_core::wire::error_within(code, detail, 200);
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                let _ = swarm.behaviour_mut().store.send_response(channel, refuse(e.code(), &e.to_string()));
                return;
            }
        };
        let Some(server) = self.server.as_mut() else {
            let r = refuse(ErrorCode::NotFound, "this client holds no shards for others");
            let _ = swarm.behaviour_mut().store.send_response(channel, r);
            return;
        };
        let id = self.next_inbound;
        if self.inbound.len() >= MAX_INBOUND
            || server.try_send(Inbound::Request { id, peer, request }).is_err()
        {
            let _ =
                swarm.behaviour_mut().store.send_response(channel, refuse(ErrorCode::Busy, "busy; retry"));
            return;
        }
        self.next_inbound += 1;
        self.inbound.insert(id, channel);
    }
}

impl Task for Driver {
    type Behaviour = Behaviour;
    type Command = Cmd;

    fn command(&mut self, swarm: &mut Swarm<Behaviour>, cmd: Cmd) {
        match cmd {
            Cmd::Closest(stripe, again, reply) => {
                let known =
                    if again { None } else { self.whole.answer(Instant::now(), |p| swarm.is_connected(p)) };
                if let Some(peers) = known {
                    let _ = reply.send(Ok(peers));
                } else {
                    let id = swarm.behaviour_mut().kad.get_closest_peers(stripe.as_bytes().to_vec());
                    self.lookups.insert(id, (reply, true));
                }
            }
            Cmd::Near(bytes, reply) => {
                let id = swarm.behaviour_mut().kad.get_closest_peers(bytes);
                self.lookups.insert(id, (reply, false));
            }
            Cmd::Request(peer, req, reply) => {
                let id = swarm.behaviour_mut().store.send_request(&peer, Ok(req));
                self.requests.sent(id, peer, reply);
            }
            Cmd::Audit(peer, req, reply) => {
                let id = swarm.behaviour_mut().audit.send_request(&peer, Ok(req));
                self.audits.sent(id, peer, reply);
            }
            Cmd::Ledger(peer, req, reply) => {
                let id = swarm.behaviour_mut().ledger.send_request(&peer, Ok(req));
                self.ledger.sent(id, peer, reply);
            }
            Cmd::Via(peer, via, req, reply) => {
                let base = self.dialed.get(&via).cloned().unwrap_or_else(Multiaddr::empty);
                let circuit =
                    base.with(Protocol::P2p(via)).with(Protocol::P2pCircuit).with(Protocol::P2p(peer));
                swarm.add_peer_address(peer, circuit);
                let id = swarm.behaviour_mut().store.send_request(&peer, Ok(req));
                self.requests.sent(id, peer, reply);
            }
            Cmd::Reserve(relay, reply) => match swarm.listen_on(relay.with(Protocol::P2pCircuit)) {
                Ok(id) => {
                    self.reserving.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(NetError::Unreachable(format!("cannot reserve: {e}"))));
                }
            },
            Cmd::Serve(tx) => self.server = Some(tx),
            Cmd::Unserve => {
                self.server = None;
                // Requests the stopped donor will never answer: dropped, so their askers
                // hear at once and the slots are free for the next one.
                self.inbound.clear();
                if let Some(id) = self.reserved.take() {
                    swarm.remove_listener(id);
                }
            }
            Cmd::Respond(id, response) => {
                if let Some(channel) = self.inbound.remove(&id) {
                    let _ = swarm.behaviour_mut().store.send_response(channel, response);
                }
            }
        }
    }

    fn event(&mut self, swarm: &mut Swarm<Behaviour>, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetClosestPeers(result),
                step,
                stats,
            })) => {
                let (peers, complete) = match result {
                    Ok(ok) => (ok.peers, true),
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => (peers, false),
                };
                let mut found = Vec::with_capacity(peers.len());
                // A peer without join work is no member of any close group, whoever named it.
                for info in peers.into_iter().filter(|i| kura_p2p::admitted(&i.peer_id)) {
                    for a in preferred(info.addrs.iter(), self.webrtc_only) {
                        self.dialed.entry(info.peer_id).or_insert_with(|| a.clone());
                        swarm.add_peer_address(info.peer_id, a);
                    }
                    found.push(info.peer_id);
                }
                if step.last {
                    use std::sync::atomic::Ordering::Relaxed;
                    self.counted.lookups.fetch_add(1, Relaxed);
                    self.counted.requests.fetch_add(u64::from(stats.num_requests()), Relaxed);
                    let asked = self.lookups.remove(&id);
                    if asked.as_ref().is_none_or(|(_, of_key)| *of_key) {
                        self.whole.looked_up(Instant::now(), &found, complete);
                    }
                    if let Some((reply, _)) = asked {
                        let _ = reply.send(Ok(found));
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Audit(e)) => {
                self.audits.settle(e);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ledger(e)) => {
                self.ledger.settle(e);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Store(request_response::Event::Message {
                peer,
                message: request_response::Message::Request { request, channel, .. },
                ..
            })) => self.inbound(swarm, peer, request, channel),
            SwarmEvent::Behaviour(BehaviourEvent::Store(e)) => {
                if let Settled::Failed(_) = self.requests.settle(e) {
                    self.whole.forget();
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } if endpoint.is_dialer() => {
                let addr = endpoint.get_remote_address();
                if !addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
                    let bare: Multiaddr = addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect();
                    self.dialed.insert(peer_id, bare);
                }
            }
            SwarmEvent::NewListenAddr { listener_id, address } => {
                if let Some(reply) = self.reserving.remove(&listener_id) {
                    if let Some(old) = self.reserved.replace(listener_id) {
                        swarm.remove_listener(old);
                    }
                    let _ = reply.send(Ok(address));
                }
            }
            SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                if let Some(reply) = self.reserving.remove(&listener_id) {
                    let why = match reason {
                        Ok(()) => "closed".to_string(),
                        Err(e) => e.to_string(),
                    };
                    let _ = reply.send(Err(NetError::Unreachable(format!("reservation refused: {why}"))));
                } else if self.reserved == Some(listener_id) {
                    self.reserved = None;
                    if let Some(server) = self.server.as_mut() {
                        let _ = server.try_send(Inbound::Unreachable);
                    }
                }
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                if let Some(reply) = self.reserving.remove(&listener_id) {
                    let _ = reply.send(Err(NetError::Unreachable(format!("reservation failed: {error}"))));
                    swarm.remove_listener(listener_id);
                }
            }
            _ => {}
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kura_core::placement::{by_distance, DhtKey};
    use libp2p::kad::KBucketKey;

    /// kura-core's distances must order peers exactly as libp2p-kad does, or the client and
    /// the relays would disagree on close groups.
    #[test]
    fn core_distance_matches_libp2p_kad() {
        let stripe = StripeId::from_bytes([7; 32]);
        let peers: Vec<PeerId> = (0..50).map(|_| PeerId::random()).collect();
        let target = KBucketKey::new(stripe.as_bytes().to_vec());
        let mut theirs = peers.clone();
        theirs.sort_by_key(|p| target.distance(&KBucketKey::from(*p)));
        let ours =
            by_distance(&DhtKey::of_stripe(&stripe), peers.iter().map(|p| (*p, DhtKey::of(&p.to_bytes()))));
        assert_eq!(ours, theirs);
    }

    #[test]
    fn whole_network_stands_in_only_while_complete_fresh_and_connected() {
        let t0 = Instant::now();
        let six: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        let all = |_: &PeerId| true;
        let mut w = WholeNetwork::default();
        assert_eq!(w.answer(t0, all), None, "nothing known before a lookup");

        w.looked_up(t0, &six, true);
        assert_eq!(w.answer(t0 + Duration::from_secs(9), all), Some(six.clone()));
        assert_eq!(w.answer(t0 + WHOLE_NETWORK_FOR, all), None, "stale after 10 s");
        let gone = six[3];
        assert_eq!(w.answer(t0, |p| *p != gone), None, "a relay of the set is not connected");
        assert_eq!(w.answer(t0, |_| false), None, "every relay down");
        w.forget();
        assert_eq!(w.answer(t0, all), None, "a failed request forgets the set");

        w.looked_up(t0, &six, false);
        assert_eq!(w.answer(t0, all), None, "a lookup that timed out may have missed relays");
        w.looked_up(t0, &[], true);
        assert_eq!(w.answer(t0, all), None, "an empty answer is no network");
        let bucket: Vec<PeerId> = (0..kad::K_VALUE.get()).map(|_| PeerId::random()).collect();
        w.looked_up(t0, &bucket, true);
        assert_eq!(w.answer(t0, all), None, "a full bucket may be part of a larger network");
        w.looked_up(t0, &bucket[..19], true);
        assert_eq!(w.answer(t0, all).map(|p| p.len()), Some(19));
    }

    #[test]
    fn native_dials_tcp_only() {
        let ok: Multiaddr = "/ip4/127.0.0.1/tcp/4100".parse().unwrap();
        assert!(dialable(&ok));
        for a in [
            "/ip4/127.0.0.1/tcp/4101/ws",
            "/ip4/127.0.0.1/udp/4102/quic-v1",
            "/ip4/127.0.0.1/udp/1/webrtc-direct",
        ] {
            assert!(!dialable(&a.parse().unwrap()), "{a}");
        }
    }
}
