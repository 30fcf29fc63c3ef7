//! A minimal native client of the storage protocol: one libp2p swarm on its own task,
//! requests in over a bounded channel, answers back on oneshots. Tests and benchmarks use
//! it; it can also send raw bytes on `/kura/store/1` to check how a relay treats garbage,
//! and leave streams half written to check how it treats peers that stall.

use crate::outstanding::Outstanding;
use crate::protocol::{read_frame, StoreCodec, PROTOCOL};
use crate::task::{Handle, Task};
use anyhow::{anyhow, Context, Result};
use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use kura_core::wire::{Message, Request, Response};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::Transport as _;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts of [`StoreClient::half_written`] streams.
#[derive(Debug, Default)]
struct HalfCounts {
    /// Streams whose bytes were written (and flushed); they stay open.
    written: AtomicUsize,
    /// Streams that failed before their bytes were written.
    failed: AtomicUsize,
}

/// Writes raw bytes as a request. Plain, it closes the stream and reads a framed response.
/// Holding (`hold` set), it flushes the bytes, counts the stream and then neither writes more
/// nor closes it: the write never finishes, so the stream stays open, half written, until the
/// request times out on this side or the connection closes; it reads nothing.
#[derive(Debug, Clone, Default)]
struct RawCodec {
    hold: Option<Arc<HalfCounts>>,
}

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> io::Result<Vec<u8>> {
        Err(io::Error::other("the raw client serves nothing"))
    }
    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response> {
        if self.hold.is_some() {
            return Err(io::Error::other("a half-written request has no response"));
        }
        read_frame(io)
            .await?
            .and_then(|b| Response::from_body(&b))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        let Some(counts) = &self.hold else {
            crate::protocol::write_pieces(io, &req).await?;
            return io.close().await;
        };
        io.write_all(&req).await?;
        io.flush().await?;
        counts.written.fetch_add(1, Ordering::SeqCst);
        futures::future::pending::<()>().await;
        Ok(())
    }
    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Response,
    ) -> io::Result<()> {
        Err(io::Error::other("the raw client serves nothing"))
    }
}

#[derive(NetworkBehaviour)]
struct ClientBehaviour {
    store: request_response::Behaviour<StoreCodec>,
    raw: request_response::Behaviour<RawCodec>,
    half: request_response::Behaviour<RawCodec>,
}

impl ClientBehaviour {
    fn new(half: &Arc<HalfCounts>) -> Self {
        let cfg = || request_response::Config::default().with_request_timeout(Duration::from_secs(60));
        Self {
            store: request_response::Behaviour::with_codec(
                StoreCodec::default(),
                [(PROTOCOL, ProtocolSupport::Outbound)],
                cfg(),
            ),
            raw: request_response::Behaviour::with_codec(
                RawCodec::default(),
                [(PROTOCOL, ProtocolSupport::Outbound)],
                cfg(),
            ),
            // Half-written streams stay open for as long as a test wants them: hundreds on
            // one connection (yamux takes 512), for up to 10 minutes.
            half: request_response::Behaviour::with_codec(
                RawCodec { hold: Some(half.clone()) },
                [(PROTOCOL, ProtocolSupport::Outbound)],
                cfg().with_request_timeout(Duration::from_secs(600)).with_max_concurrent_streams(2048),
            ),
        }
    }
}

/// TCP dialed from a chosen local address (the kernel would pick 127.0.0.1 for any
/// loopback destination). It only dials.
struct TcpFrom(std::net::IpAddr);

impl libp2p::core::Transport for TcpFrom {
    type Output = tcp::tokio::TcpStream;
    type Error = io::Error;
    type ListenerUpgrade = futures::future::Pending<io::Result<Self::Output>>;
    type Dial = futures::future::BoxFuture<'static, io::Result<Self::Output>>;

    fn listen_on(
        &mut self,
        _: libp2p::core::transport::ListenerId,
        addr: Multiaddr,
    ) -> Result<(), libp2p::TransportError<io::Error>> {
        Err(libp2p::TransportError::MultiaddrNotSupported(addr))
    }

    fn remove_listener(&mut self, _: libp2p::core::transport::ListenerId) -> bool {
        false
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _: libp2p::core::transport::DialOpts,
    ) -> Result<Self::Dial, libp2p::TransportError<io::Error>> {
        let mut it = addr.iter();
        let to = match (it.next(), it.next()) {
            (Some(Protocol::Ip4(ip)), Some(Protocol::Tcp(port))) => std::net::SocketAddr::from((ip, port)),
            _ => return Err(libp2p::TransportError::MultiaddrNotSupported(addr)),
        };
        let from = self.0;
        Ok(Box::pin(async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(std::net::SocketAddr::new(from, 0))?;
            let stream = socket.connect(to).await?;
            stream.set_nodelay(true)?;
            Ok(tcp::tokio::TcpStream(stream))
        }))
    }

    fn poll(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<libp2p::core::transport::TransportEvent<Self::ListenerUpgrade, io::Error>> {
        std::task::Poll::Pending
    }
}

type Reply = crate::outstanding::Reply<Response>;

enum Cmd {
    Request(Request, Reply),
    Raw(Vec<u8>, Reply),
    /// Open this many streams, write the bytes on each, leave them open.
    Half(Vec<u8>, usize),
}

/// The client's task: its requests out on the connection to one relay.
struct Driver {
    peer: PeerId,
    half: Arc<HalfCounts>,
    pending: Outstanding<Response>,
}

impl Task for Driver {
    type Behaviour = ClientBehaviour;
    type Command = Cmd;

    fn command(&mut self, swarm: &mut libp2p::Swarm<ClientBehaviour>, cmd: Cmd) {
        let peer = self.peer;
        match cmd {
            Cmd::Request(r, reply) => {
                let id = swarm.behaviour_mut().store.send_request(&peer, Ok(r));
                self.pending.sent(id, peer, reply);
            }
            Cmd::Raw(b, reply) => {
                let id = swarm.behaviour_mut().raw.send_request(&peer, b);
                self.pending.sent(id, peer, reply);
            }
            Cmd::Half(b, count) => {
                for _ in 0..count {
                    swarm.behaviour_mut().half.send_request(&peer, b.clone());
                }
            }
        }
    }

    fn event(&mut self, _: &mut libp2p::Swarm<ClientBehaviour>, event: SwarmEvent<ClientBehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(ClientBehaviourEvent::Store(e)) => {
                self.pending.settle(e);
            }
            SwarmEvent::Behaviour(ClientBehaviourEvent::Raw(e)) => {
                self.pending.settle(e);
            }
            SwarmEvent::Behaviour(ClientBehaviourEvent::Half(request_response::Event::OutboundFailure {
                ..
            })) => {
                self.half.failed.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
}

/// A connection to one relay.
#[derive(Debug, Clone)]
pub struct StoreClient {
    task: Handle<Cmd>,
    /// The relay's peer id.
    pub peer: PeerId,
    /// This client's own peer id.
    pub local: PeerId,
    half: Arc<HalfCounts>,
}

impl StoreClient {
    /// Connects to the relay at `addr`, which must end in `/p2p/PEER`. TCP, QUIC, WebSocket
    /// and WebRTC-direct addresses work.
    pub async fn connect(addr: Multiaddr) -> Result<Self> {
        let half = Arc::new(HalfCounts::default());
        let behaviour = ClientBehaviour::new(&half);
        let swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)?
            .with_quic()
            .with_other_transport(|key| {
                let cert = libp2p_webrtc::tokio::Certificate::generate(&mut rand::rng())?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    libp2p_webrtc::tokio::Transport::new(key.clone(), cert)
                        .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn))),
                )
            })?
            .with_dns()?
            .with_websocket(noise::Config::new, yamux::Config::default)
            .await?
            .with_behaviour(|_| behaviour)?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        Self::start(swarm, addr, half).await
    }

    /// Connects over TCP from the local address `from` (another address of 127.0.0.0/8, to
    /// play a peer on another host) to the relay at `addr` (`/ip4/…/tcp/…/p2p/PEER`).
    pub async fn connect_from(from: std::net::IpAddr, addr: Multiaddr) -> Result<Self> {
        let half = Arc::new(HalfCounts::default());
        let behaviour = ClientBehaviour::new(&half);
        let swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_other_transport(|key| {
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    TcpFrom(from)
                        .upgrade(libp2p::core::upgrade::Version::V1)
                        .authenticate(noise::Config::new(key)?)
                        .multiplex(yamux::Config::default()),
                )
            })?
            .with_behaviour(|_| behaviour)?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        Self::start(swarm, addr, half).await
    }

    /// Dials `addr` and starts the client's task.
    async fn start(
        mut swarm: libp2p::Swarm<ClientBehaviour>,
        addr: Multiaddr,
        half: Arc<HalfCounts>,
    ) -> Result<Self> {
        let Some(Protocol::P2p(peer)) = addr.iter().last() else {
            return Err(anyhow!("{addr} has no /p2p/ peer id"));
        };
        let webrtc = addr.iter().any(|p| matches!(p, Protocol::WebRTCDirect));
        if webrtc {
            // A WebRTC-direct node dials from its own UDP socket, so it must listen first, and
            // the socket must be bound before the dial starts.
            swarm.listen_on("/ip4/127.0.0.1/udp/0/webrtc-direct".parse()?)?;
            tokio::time::timeout(Duration::from_secs(20), async {
                while !matches!(swarm.select_next_some().await, SwarmEvent::NewListenAddr { .. }) {}
            })
            .await
            .map_err(|_| anyhow!("the WebRTC listener did not start"))?;
        }
        // A WebRTC handshake (ICE, DTLS) on a loaded machine can time out; try it again, after
        // a pause that grows (the relay may be starved of CPU for a while).
        let attempts = if webrtc { 5 } else { 1 };
        let mut failure = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
            swarm.dial(addr.clone()).with_context(|| format!("dialing {addr}"))?;
            // Wait for the connection before handing the client out.
            let connected = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    match swarm.select_next_some().await {
                        SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer => return Ok(()),
                        SwarmEvent::OutgoingConnectionError { error, .. } => return Err(anyhow!("{error}")),
                        _ => {}
                    }
                }
            })
            .await;
            match connected {
                Ok(Ok(())) => {
                    failure = None;
                    break;
                }
                Ok(Err(e)) => failure = Some(e),
                Err(_) => failure = Some(anyhow!("timed out connecting to {addr}")),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let (task, commands) = crate::task::channel(64);
        let driver = Driver { peer, half: half.clone(), pending: Outstanding::default() };
        let local = *swarm.local_peer_id();
        tokio::spawn(crate::task::run(swarm, commands, driver));
        Ok(Self { task, peer, local, half })
    }

    async fn call(&self, cmd: impl FnOnce(Reply) -> Cmd) -> Result<Response> {
        self.task.call(cmd).await?.map_err(|e| anyhow!(e.reason))
    }

    /// Sends a request and waits for its response.
    pub async fn request(&self, req: Request) -> Result<Response> {
        self.call(|r| Cmd::Request(req, r)).await
    }

    /// Sends `bytes` as they are on a new `/kura/store/1` stream and reads the answer.
    pub async fn raw(&self, bytes: Vec<u8>) -> Result<Response> {
        self.call(|r| Cmd::Raw(bytes, r)).await
    }

    /// Opens `count` new `/kura/store/1` streams and writes `bytes` on each, then neither
    /// writes more nor closes them: a peer that announces a message and stalls. Returns how
    /// many streams were written, once each of them was written or failed (or after 30 s).
    /// The streams stay open on this side until the client is dropped (or for 10 minutes),
    /// whatever the relay does with them. One call at a time per connection: the counts are
    /// the connection's.
    pub async fn half_written(&self, bytes: Vec<u8>, count: usize) -> Result<usize> {
        let (written, failed) = (&self.half.written, &self.half.failed);
        let (w0, f0) = (written.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
        self.task.send(Cmd::Half(bytes, count)).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let w = written.load(Ordering::SeqCst) - w0;
            if w + (failed.load(Ordering::SeqCst) - f0) >= count || Instant::now() > deadline {
                return Ok(w);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
