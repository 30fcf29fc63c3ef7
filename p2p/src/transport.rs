//! Transports: which one a connection runs over, how messages are written on it, and the
//! native TCP transport relays and the native client share.

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

/// What a connection runs over, read from its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Quic,
    WebSocket,
    WebRtcDirect,
    /// Through a circuit relay (it may end on WebRTC).
    Relayed,
    /// libp2p's in-memory transport (tests).
    Memory,
}

/// How a message goes onto a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Framing {
    /// In flushed pieces of at most [`crate::protocol::MAX_WRITE`] bytes, which every
    /// transport takes. A WebRTC stream sends what was written by a flush as one data-channel
    /// message, which may not pass 16 KiB.
    #[default]
    Pieces,
    /// At once, flushed by closing the stream: for streams multiplexed by the connection
    /// itself (yamux, QUIC), where each flushed piece would be its own encrypted message and
    /// socket write.
    Whole,
}

impl Transport {
    /// The transport of a connection with this remote (or local) address.
    pub fn of(addr: &Multiaddr) -> Self {
        let mut kind = Transport::Tcp;
        for p in addr.iter() {
            kind = match p {
                Protocol::P2pCircuit => return Transport::Relayed,
                Protocol::WebRTCDirect => return Transport::WebRtcDirect,
                Protocol::Ws(_) | Protocol::Wss(_) => return Transport::WebSocket,
                Protocol::Memory(_) => return Transport::Memory,
                Protocol::QuicV1 => Transport::Quic,
                _ => kind,
            };
        }
        kind
    }

    /// How answers are written on its streams.
    pub fn framing(self) -> Framing {
        match self {
            Transport::Tcp | Transport::Quic | Transport::WebSocket | Transport::Memory => Framing::Whole,
            Transport::WebRtcDirect | Transport::Relayed => Framing::Pieces,
        }
    }

    /// Its name in metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Quic => "quic",
            Transport::WebSocket => "websocket",
            Transport::WebRtcDirect => "webrtc-direct",
            Transport::Relayed => "relayed",
            Transport::Memory => "memory",
        }
    }
}

impl Framing {
    /// How a client of this build writes its requests: the native client dials only TCP;
    /// a browser may be on WebRTC.
    pub const CLIENT: Framing = if cfg!(target_arch = "wasm32") { Framing::Pieces } else { Framing::Whole };
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::*;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    /// Bytes a TCP connection reads from its socket at once (see [`tcp`]): eight of
    /// noise's reads. Every connection holds one such buffer (a relay allows 4,096 connections:
    /// 256 MiB at most).
    pub const TCP_READ_BUFFER: usize = 64 << 10;

    /// The longest a TCP connection's handshake (multistream, noise, yamux) may take.
    pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

    /// TCP with noise and yamux, as libp2p's `SwarmBuilder::with_tcp` puts them together
    /// (`nodelay`, lazy protocol negotiation), except that each connection reads its socket
    /// through a [`TCP_READ_BUFFER`] buffer. Noise reads its frames in 8 KiB reads; unbuffered,
    /// each is a `recvfrom` (a 256 MiB get made 34,000 of them in the client, a put ~8,500 per
    /// relay); buffered, one `recvfrom` takes whatever the socket holds and noise's reads are
    /// served from memory. The native client and the relays both use it. A handshake must be
    /// done within [`HANDSHAKE_TIMEOUT`].
    pub fn tcp(
        key: &libp2p::identity::Keypair,
    ) -> Result<
        libp2p::core::transport::Boxed<(libp2p::PeerId, libp2p::core::muxing::StreamMuxerBox)>,
        Box<dyn std::error::Error + Send + Sync>,
    > {
        use libp2p::core::{muxing::StreamMuxerBox, upgrade::Version};
        use libp2p::{noise, tcp, yamux, Transport};
        Ok(tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .map(|socket, _| futures::io::BufReader::with_capacity(TCP_READ_BUFFER, socket))
            .upgrade(Version::V1Lazy)
            .authenticate(noise::Config::new(key)?)
            .multiplex(yamux::Config::default())
            // A connection that has not finished its handshake by then is dropped: sockets that
            // connect and say nothing must not hold a slot for ever.
            .timeout(HANDSHAKE_TIMEOUT)
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_transport_is_read_from_its_address_and_framed() {
        let peer = "/p2p/12D3KooWP6mSwV2CZrfW7uoGzVQYGseYn4YmBan2H9Tmdpo7hSbq";
        let cases = [
            ("/ip4/127.0.0.1/tcp/4001", Transport::Tcp, Framing::Whole),
            ("/ip6/::1/tcp/4001", Transport::Tcp, Framing::Whole),
            (
                "/ip4/127.0.0.1/udp/4003/webrtc-direct/certhash/uEiBGCsXUeK5ZNnLh3Kcj5TUBFJTv1NEPg3_2cORqpAJ9fA",
                Transport::WebRtcDirect,
                Framing::Pieces,
            ),
            ("/ip4/127.0.0.1/udp/4001/quic-v1", Transport::Quic, Framing::Whole),
            ("/ip4/127.0.0.1/tcp/4002/ws", Transport::WebSocket, Framing::Whole),
            ("/ip4/127.0.0.1/udp/4003/webrtc-direct", Transport::WebRtcDirect, Framing::Pieces),
            ("/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWP6mSwV2CZrfW7uoGzVQYGseYn4YmBan2H9Tmdpo7hSbq/p2p-circuit", Transport::Relayed, Framing::Pieces),
            ("/memory/7", Transport::Memory, Framing::Whole),
        ];
        for (addr, transport, framing) in cases {
            let suffix = if addr.contains("circuit") { "" } else { peer };
            let t = Transport::of(&format!("{addr}{suffix}").parse().unwrap());
            assert_eq!((t, t.framing()), (transport, framing), "{addr}");
        }
    }
}
