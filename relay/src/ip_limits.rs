//! Connection limits per remote IP address, so that one machine cannot take every connection
//! slot of a relay: libp2p's own limits count connections in total and per peer id, and a
//! stranger can open sockets that never finish a handshake (pending) or mint peer ids for
//! free (established).
//!
//! Incoming connections only: a relay's own dials are its business. Connections through a
//! circuit (`/p2p-circuit`) carry the relaying node's address, not the remote's, and are
//! bounded by the circuit limits instead.

use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

/// Incoming connections one IP may have at once: `pending` still in their handshake,
/// `established` past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerIp {
    pub pending: usize,
    pub established: usize,
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
#[error("{ip} has {count} {kind} connections, the most one address may have")]
pub struct TooMany {
    ip: IpAddr,
    count: usize,
    kind: &'static str,
}

/// The behaviour that enforces [`PerIp`].
#[derive(Debug)]
pub struct Behaviour {
    limits: PerIp,
    pending: HashMap<ConnectionId, IpAddr>,
    established: HashMap<ConnectionId, IpAddr>,
    counts: HashMap<IpAddr, (usize, usize)>,
}

/// The IP address of a remote address, unless it came through a circuit.
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    if addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        return None;
    }
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl Behaviour {
    pub fn new(limits: PerIp) -> Self {
        Self { limits, pending: HashMap::new(), established: HashMap::new(), counts: HashMap::new() }
    }

    fn count(&mut self, ip: IpAddr) -> &mut (usize, usize) {
        self.counts.entry(ip).or_default()
    }

    fn forget(&mut self, id: &ConnectionId) {
        if let Some(ip) = self.pending.remove(id) {
            self.count(ip).0 -= 1;
        }
        if let Some(ip) = self.established.remove(id) {
            self.count(ip).1 -= 1;
        }
        self.counts.retain(|_, c| *c != (0, 0));
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_of(remote) else { return Ok(()) };
        let limit = self.limits.pending;
        let (pending, _) = *self.count(ip);
        if pending >= limit {
            return Err(ConnectionDenied::new(TooMany { ip, count: pending, kind: "pending" }));
        }
        self.count(ip).0 += 1;
        self.pending.insert(id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.forget(&id);
        let Some(ip) = ip_of(remote) else { return Ok(dummy::ConnectionHandler) };
        let limit = self.limits.established;
        let (_, established) = *self.count(ip);
        if established >= limit {
            return Err(ConnectionDenied::new(TooMany { ip, count: established, kind: "established" }));
        }
        self.count(ip).1 += 1;
        self.established.insert(id, ip);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, endpoint, .. }) => {
                if matches!(endpoint, ConnectedPoint::Listener { .. }) {
                    self.forget(&connection_id);
                }
            }
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => self.forget(&connection_id),
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_address_has_its_own_allowance() {
        let mut b = Behaviour::new(PerIp { pending: 2, established: 1 });
        let local = addr("/ip4/127.0.0.1/tcp/4001");
        let (a, other) = (addr("/ip4/127.0.0.2/tcp/5000"), addr("/ip4/127.0.0.3/tcp/5000"));
        let ids: Vec<ConnectionId> = (0..5).map(|i| ConnectionId::new_unchecked(1000 + i)).collect();
        assert!(b.handle_pending_inbound_connection(ids[0], &local, &a).is_ok());
        assert!(b.handle_pending_inbound_connection(ids[1], &local, &a).is_ok());
        assert!(b.handle_pending_inbound_connection(ids[2], &local, &a).is_err(), "a third pending one");
        assert!(b.handle_pending_inbound_connection(ids[3], &local, &other).is_ok(), "another address");
        let peer = PeerId::random();
        assert!(b.handle_established_inbound_connection(ids[0], peer, &local, &a).is_ok());
        assert!(b.handle_pending_inbound_connection(ids[4], &local, &a).is_ok(), "its pending slot is free");
        assert!(
            b.handle_established_inbound_connection(ids[1], peer, &local, &a).is_err(),
            "one established"
        );
        // A circuit is not counted against the relaying node's address.
        let circuit = addr(
            "/ip4/127.0.0.2/tcp/5000/p2p/12D3KooWP6mSwV2CZrfW7uoGzVQYGseYn4YmBan2H9Tmdpo7hSbq/p2p-circuit",
        );
        assert!(b
            .handle_pending_inbound_connection(ConnectionId::new_unchecked(99), &local, &circuit)
            .is_ok());
    }
}
