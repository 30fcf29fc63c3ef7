//! Swarms connected over libp2p's in-memory transport (noise and yamux on top, as on TCP):
//! real libp2p connections and streams without sockets, for unit tests of code that moves
//! bytes between peers.

use futures::StreamExt;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identity::Keypair, noise, yamux, Multiaddr, Swarm, Transport as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Seeds of ed25519 keys whose peer ids carry the join work
/// ([`kura_core::placement::JOIN_BITS`]), made by `kura-sim join-keys` (two runs of 48, seeds 1 and 2): tests
/// that start many relays take identities from here instead of paying the work each time.
const JOIN_KEYS: &str = include_str!("join_keys.txt");

static NEXT_JOIN_KEY: AtomicUsize = AtomicUsize::new(0);

/// A relay identity that carries the join work, distinct from the others this process took:
/// from the pool while it lasts (a pool made for other bits is skipped), then made anew.
pub fn identity() -> Keypair {
    let seeds: Vec<&str> = JOIN_KEYS.lines().filter(|l| l.len() == 64).collect();
    while let Some(hex) = seeds.get(NEXT_JOIN_KEY.fetch_add(1, Ordering::Relaxed)) {
        let Some(seed) = kura_core::hex::decode_array::<32>(hex) else { continue };
        if let Ok(key) = Keypair::ed25519_from_bytes(seed) {
            if crate::admitted(&key.public().to_peer_id()) {
                return key;
            }
        }
    }
    // Seconds of one core each: a test that gets here wants a bigger pool.
    eprintln!("kura_p2p::testnet: the pool of worked identities is used up; making one");
    crate::relay_identity()
}

static NEXT_ACCOUNT: AtomicUsize = AtomicUsize::new(0);

/// Test wallets handed out by [`account`] start here in kura-core's pool; those below are
/// left to tests that name their wallets by index (`kura_core::testdata::account_key`).
const FIRST_HANDED_ACCOUNT: usize = 64;

/// A wallet carrying the account work, distinct from the others this process took (a test
/// relay's rewards account): from kura-core's pool while it lasts, then made.
pub fn account() -> kura_core::ledger::SigningKey {
    kura_core::testdata::account_key(FIRST_HANDED_ACCOUNT + NEXT_ACCOUNT.fetch_add(1, Ordering::Relaxed))
}

/// An identity without the join work, for tests that check such a relay is kept out.
pub fn identity_without_work() -> Keypair {
    loop {
        let key = Keypair::generate_ed25519();
        if !crate::admitted(&key.public().to_peer_id()) {
            return key;
        }
    }
}

/// A swarm of `behaviour` on the memory transport, with a new identity carrying the join
/// work ([`identity`]), listening on a
/// fresh `/memory/N` address (returned).
pub async fn swarm<B: NetworkBehaviour>(
    behaviour: impl FnOnce(&Keypair) -> B,
) -> Result<(Swarm<B>, Multiaddr), Box<dyn std::error::Error + Send + Sync>> {
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity())
        .with_tokio()
        .with_other_transport(|key| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                MemoryTransport::default()
                    .upgrade(Version::V1)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default()),
            )
        })?
        .with_behaviour(|key| behaviour(key))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm.listen_on("/memory/0".parse()?)?;
    let addr = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    })
    .await?;
    Ok((swarm, addr))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn pooled_identities_carry_the_join_work_and_differ() {
        let a = identity().public().to_peer_id();
        let b = identity().public().to_peer_id();
        assert_ne!(a, b);
        assert!(crate::admitted(&a) && crate::admitted(&b));
        assert!(JOIN_KEYS.lines().count() >= 64, "the pool is made by kura-sim join-keys");
    }
    use crate::protocol::{Answer, RelayCodec, StoreCodec, PROTOCOL};
    use crate::transport::{Framing, Transport};
    use kura_core::wire::{Request, Response};
    use libp2p::request_response::{self, Message, ProtocolSupport};

    type Rr<C> = request_response::Behaviour<C>;

    /// A relay's storage behaviour and a client's, each on its own swarm; the client knows
    /// the relay's address.
    async fn relay_and_client() -> (Swarm<Rr<RelayCodec>>, Swarm<Rr<StoreCodec>>) {
        let cfg = request_response::Config::default();
        let (relay, addr) = swarm(|_| {
            Rr::with_codec(RelayCodec::default(), [(PROTOCOL, ProtocolSupport::Inbound)], cfg.clone())
        })
        .await
        .unwrap();
        let (mut client, _) = swarm(|_| {
            Rr::with_codec(
                StoreCodec::new(Framing::CLIENT),
                [(PROTOCOL, ProtocolSupport::Outbound)],
                cfg.clone(),
            )
        })
        .await
        .unwrap();
        client.add_peer_address(*relay.local_peer_id(), addr);
        (relay, client)
    }

    /// A store crosses a real (in-memory) libp2p connection between the client's codec and
    /// the relay's, and its answer comes back framed as the connection's transport says.
    #[tokio::test]
    async fn a_store_crosses_the_memory_network_between_client_and_relay_codecs() {
        let (mut relay, mut client) = relay_and_client().await;
        let relay_id = *relay.local_peer_id();
        let shard = vec![7u8; 300_000];
        let req = Request::Store { header: vec![1; 40], shard: shard.clone() };
        let _ = client.behaviour_mut().send_request(&relay_id, Ok(req));
        let mut framing = None;
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                tokio::select! {
                    ev = relay.select_next_some() => match ev {
                        SwarmEvent::ConnectionEstablished { endpoint, .. } => {
                            framing = Some(Transport::of(endpoint.get_remote_address()).framing());
                        }
                        SwarmEvent::Behaviour(request_response::Event::Message {
                            message: Message::Request { request, channel, .. }, ..
                        }) => {
                            let ok = matches!(&request, Ok(Request::Store { shard: s, .. }) if *s == shard);
                            let response = if ok { Response::Stored { index: 0 } } else { Response::Accepted };
                            let answer = Answer { response, framing: framing.expect("connected first") };
                            relay.behaviour_mut().send_response(channel, answer).unwrap();
                        }
                        _ => {}
                    },
                    ev = client.select_next_some() => if let SwarmEvent::Behaviour(request_response::Event::Message {
                        message: Message::Response { response, .. }, ..
                    }) = ev {
                        return response;
                    },
                }
            }
        })
        .await
        .expect("an answer within 10 s");
        assert_eq!(got, Response::Stored { index: 0 });
        assert_eq!(framing, Some(Framing::Whole));
    }

    /// Outstanding requests are settled by their answers and failures over a real (in-memory)
    /// connection: the asker of an answered request gets the answer, the asker of a request
    /// to a peer that cannot be dialled gets a failure marked unreachable.
    #[tokio::test]
    async fn outstanding_requests_get_their_answers_and_failures() {
        use crate::outstanding::{Outstanding, Settled};
        let (mut relay, mut client) = relay_and_client().await;
        let relay_id = *relay.local_peer_id();
        let nobody = libp2p::PeerId::random();
        client.add_peer_address(nobody, "/memory/1".parse().unwrap());
        let mut outstanding: Outstanding<Response> = Outstanding::default();
        let (to_relay, answer) = futures::channel::oneshot::channel();
        let id = client
            .behaviour_mut()
            .send_request(&relay_id, Ok(Request::Fetch { stripe: kura_core::StripeId::of(b"x") }));
        outstanding.sent(id, relay_id, to_relay);
        let (to_nobody, failure) = futures::channel::oneshot::channel();
        let id = client
            .behaviour_mut()
            .send_request(&nobody, Ok(Request::Fetch { stripe: kura_core::StripeId::of(b"y") }));
        outstanding.sent(id, nobody, to_nobody);
        let mut failed = None;
        tokio::time::timeout(Duration::from_secs(10), async {
            while !outstanding.is_empty() {
                tokio::select! {
                    ev = relay.select_next_some() => if let SwarmEvent::Behaviour(request_response::Event::Message {
                        message: Message::Request { channel, .. }, ..
                    }) = ev {
                        let answer = Answer { response: Response::Accepted, framing: Framing::Whole };
                        relay.behaviour_mut().send_response(channel, answer).unwrap();
                    },
                    ev = client.select_next_some() => if let SwarmEvent::Behaviour(e) = ev {
                        if let Settled::Failed(f) = outstanding.settle(e) {
                            failed = Some(f);
                        }
                    },
                }
            }
        })
        .await
        .expect("both settled within 10 s");
        assert_eq!(answer.await.unwrap(), Ok(Response::Accepted));
        let told = failure.await.unwrap().unwrap_err();
        assert_eq!(told.peer, nobody);
        assert!(told.unreachable, "{told}");
        assert_eq!(failed, Some(told));
    }
}
