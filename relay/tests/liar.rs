//! End-to-end test with a lying relay: an in-process libp2p peer that speaks Kura's
//! Kademlia (server mode) and identify like a relay, so real relays take it for one, and
//! then lies. Asked `Holds`, it claims every index of every stripe; it answers every store
//! and handover `Stored` and keeps nothing; it has nothing to fetch; it answers proofs of
//! possession with zeros; and it orders every relay it meets to rebuild shards from it (210
//! orders for stripes nobody holds, and orders for a whole stripe naming its real holders);
//! asked when a free stripe was first stored, it says at the start of time.
//! Relays that trusted its claims used to drop their own copies as "surplus" of a close
//! group the liar sat in: honest data destroyed by one peer's words; and relays that
//! followed its orders fetched `k` shards each to make surplus copies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use kura_core::encoder::encode_single_chunk;
use kura_core::placement::{by_distance, DhtKey};
use kura_core::proof::{challenged_chunk, prove};
use kura_core::wire::{ErrorCode, Request, Response, WireError};
use kura_core::StripeId;
use kura_core::{EncodeOptions, Params, ShardId, Stripe, StripeHeader};
use kura_p2p::audit::{AuditCodec, AUDIT_PROTOCOL};
use kura_p2p::client::StoreClient;
use kura_p2p::protocol::{Answer, RelayCodec, KAD_PROTOCOL, PROTOCOL};
use kura_p2p::transport::Framing;
use kura_relay::node::AGENT_PROTOCOL;
use kura_tests::relay::{wait_for, RelayProc};
use kura_tests::{pseudo_random, Scratch};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, kad, noise, tcp, yamux, Multiaddr, PeerId, Swarm};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The relay binary cargo built for these tests.
const RELAY: &str = env!("CARGO_BIN_EXE_kura-relay");
/// Honest relays; also the shards of a stripe (k = 4, m = 2), one per relay.
const N: usize = 6;
/// Stripes stored.
const STRIPES: usize = 12;
/// Orders for stripes nobody holds that the liar sends each relay.
const FAKE_ORDERS: u64 = 210;
/// Repair rounds every relay must run with the liar among its peers.
const ROUNDS: u64 = 8;

fn spawn(dir: &Path, extra: &[&str]) -> RelayProc {
    RelayProc::spawn_bin(Path::new(RELAY), dir, extra).unwrap()
}

fn stripe(len: usize, seed: u64) -> Stripe {
    let opts = EncodeOptions { params: Params::new(4, 2).unwrap(), ..EncodeOptions::default() };
    encode_single_chunk(&opts, &pseudo_random(len, seed)).unwrap().0
}

/// The peer id at the end of an address.
fn peer_of(addr: &Multiaddr) -> PeerId {
    match addr.iter().last() {
        Some(Protocol::P2p(p)) => p,
        _ => panic!("{addr} has no /p2p/ peer id"),
    }
}

fn routing_table(r: &RelayProc) -> Option<Vec<String>> {
    let s = r.json("/status").ok()?;
    Some(s["routing_table"].as_array()?.iter().filter_map(|v| v.as_str().map(String::from)).collect())
}

fn rounds(r: &RelayProc) -> Option<u64> {
    r.json("/repair").ok()?["report"]["rounds"].as_u64()
}

/// What the liar saw and was told.
#[derive(Debug, Default)]
struct Seen {
    /// Requests received, by kind.
    requests: BTreeMap<&'static str, usize>,
    /// Answers to its repair orders, by kind.
    orders: BTreeMap<String, usize>,
    /// The draws relays answered it, by relay.
    draws: Vec<(PeerId, kura_core::vrf::VrfProof)>,
}

/// Everything a relay must speak for other relays to take it for one.
#[derive(NetworkBehaviour)]
struct LiarBehaviour {
    identify: identify::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    store: request_response::Behaviour<RelayCodec>,
    audit: request_response::Behaviour<AuditCodec>,
}

/// How the liar answers challenges on `/kura/audit/1`.
#[derive(Debug, Clone)]
enum Prover {
    /// A chunk of zeros and zero hashes, every time.
    Zeros,
    /// In turn: zeros; a true proof, but of the next index's shard (whose bytes it was
    /// given); no answer at all (the stream is held open until the liar stops).
    Rotate(Arc<BTreeMap<StripeId, Vec<Vec<u8>>>>),
}

/// The liar's answer to challenge number `n` (`None`: it does not answer).
fn prove_falsely(
    prover: &Prover,
    me: &PeerId,
    n: usize,
    req: Result<Request, WireError>,
) -> Option<Response> {
    let zeros = Response::Proof { chunk: vec![0; 1024], siblings: vec![[0u8; 32]; 8] };
    let Ok(Request::Prove { stripe, index, nonce }) = req else { return Some(zeros) };
    match prover {
        Prover::Zeros => Some(zeros),
        Prover::Rotate(shards) => match n % 3 {
            0 => Some(zeros),
            1 => {
                let all = shards.get(&stripe)?;
                let other = &all[(usize::from(index) + 1) % all.len()];
                let chunk = challenged_chunk(&nonce, &me.to_bytes(), &ShardId::of(other), other.len());
                let p = prove(other, chunk);
                Some(Response::Proof { chunk: p.chunk, siblings: p.siblings })
            }
            _ => None,
        },
    }
}

/// The liar's answer to a request, and the request's kind.
fn lie(req: Result<Request, WireError>) -> (&'static str, Response) {
    let error = |code, detail: &str| Response::Error { code, detail: detail.to_owned() };
    match req {
        Err(e) => ("invalid", Response::Error { code: e.code(), detail: e.to_string() }),
        // Every index of every stripe asked about.
        Ok(Request::Holds { stripes }) => (
            "holds",
            Response::Held {
                held: stripes.into_iter().map(|s| (s, (0..N as u8).collect::<Vec<u8>>().into())).collect(),
            },
        ),
        Ok(Request::Store { header, shard }) => ("store", stored(&header, &shard)),
        Ok(Request::Handover { header, shard }) => ("handover", stored(&header, &shard)),
        Ok(Request::Fetch { .. }) => ("fetch", error(ErrorCode::NotFound, "nothing here")),
        Ok(Request::FetchPart { .. }) => ("fetch_part", error(ErrorCode::NotFound, "nothing here")),
        // "Queued", and never done.
        Ok(Request::Repair { .. }) => ("repair", Response::Accepted),
        // Every stripe stored free at the start of time: its life is long over.
        Ok(Request::Postage { .. }) => ("postage", Response::FreeSince { epoch: 0 }),
        Ok(_) => ("other", error(ErrorCode::UnsupportedVersion, "not spoken here")),
    }
}

/// `Stored` with the shard's index in its header, the bytes thrown away.
fn stored(header: &[u8], shard: &[u8]) -> Response {
    let index = StripeHeader::parse(header).ok().and_then(|h| h.index_of(&ShardId::of(shard)));
    match index {
        Some(index) => Response::Stored { index: index as u8 },
        None => Response::Error { code: ErrorCode::BadHash, detail: "not a shard of that stripe".into() },
    }
}

fn describe(r: &Response) -> String {
    match r {
        Response::Error { code, .. } => format!("error {code}"),
        Response::Accepted => "accepted".into(),
        other => format!("{other:?}").chars().take(40).collect(),
    }
}

/// Stripe headers, each with relays to name as holders besides the liar.
type Orders = Vec<(Vec<u8>, Vec<PeerId>)>;

/// What the test has the liar send.
enum Cmd {
    /// Rebuild orders to every relay.
    Orders(Orders),
    /// These requests to these relays (their answers are counted as the orders' are).
    Send(Vec<(PeerId, Request)>),
}

/// The liar, started: its peer id, a way to hand it stripe headers (it then orders every
/// relay to rebuild index 0 of each from it and the holders named), and what it saw.
struct Liar {
    peer: PeerId,
    orders: mpsc::Sender<Cmd>,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Liar {
    /// Listens on loopback TCP, dials every relay and puts them in its Kademlia table;
    /// answers challenges as `prover` says.
    async fn start(relays: &[Multiaddr], prover: Prover) -> Self {
        let key = kura_p2p::testnet::identity();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
            .unwrap()
            .with_behaviour(|key| {
                let peer = key.public().to_peer_id();
                let mut kad = kad::Behaviour::with_config(
                    peer,
                    kad::store::MemoryStore::new(peer),
                    kad::Config::new(KAD_PROTOCOL),
                );
                kad.set_mode(Some(kad::Mode::Server));
                LiarBehaviour {
                    identify: identify::Behaviour::new(
                        identify::Config::new(AGENT_PROTOCOL.into(), key.public())
                            .with_agent_version("kura-relay/0.1.0".into()),
                    ),
                    kad,
                    store: request_response::Behaviour::with_codec(
                        RelayCodec::default(),
                        [(PROTOCOL, ProtocolSupport::Full)],
                        request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
                    ),
                    audit: request_response::Behaviour::with_codec(
                        AuditCodec,
                        [(AUDIT_PROTOCOL, ProtocolSupport::Inbound)],
                        request_response::Config::default().with_request_timeout(Duration::from_secs(600)),
                    ),
                }
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
            .build();
        swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
        // Listening before dialing, so that identify tells the relays where it is.
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                    swarm.add_external_address(address);
                    return;
                }
            }
        })
        .await
        .expect("the liar listens");
        let peers: Vec<PeerId> = relays.iter().map(peer_of).collect();
        for (p, a) in peers.iter().zip(relays) {
            swarm.behaviour_mut().kad.add_address(p, a.clone());
            swarm.dial(a.clone()).unwrap();
        }
        let peer = *swarm.local_peer_id();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (orders, rx) = mpsc::channel(4);
        let task = tokio::spawn(run_liar(swarm, peers, rx, seen.clone(), prover));
        Self { peer, orders, seen, task }
    }
}

async fn run_liar(
    mut swarm: Swarm<LiarBehaviour>,
    relays: Vec<PeerId>,
    mut cmds: mpsc::Receiver<Cmd>,
    seen: Arc<Mutex<Seen>>,
    prover: Prover,
) {
    let me = *swarm.local_peer_id();
    // Challenges it never answers, held open.
    let mut held = Vec::new();
    let mut challenges = 0;
    let mut sent: HashSet<OutboundRequestId> = HashSet::new();
    let record = |key: String| *seen.lock().unwrap().orders.entry(key).or_default() += 1;
    // A relay whose dial failed or whose connection closed is dialed again, as any peer
    // would: one refused first dial must not leave a relay without the liar.
    let mut redial = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = redial.tick() => {
                for p in &relays {
                    if !swarm.is_connected(p) {
                        let _ = swarm.dial(*p);
                    }
                }
            }
            cmd = cmds.recv() => {
                let headers = match cmd {
                    None => break,
                    Some(Cmd::Orders(headers)) => headers,
                    Some(Cmd::Send(requests)) => {
                        for (p, req) in requests {
                            sent.insert(swarm.behaviour_mut().store.send_request(&p, Ok(req)));
                        }
                        continue;
                    }
                };
                for p in &relays {
                    for (header, named) in &headers {
                        let holders = std::iter::once(me).chain(named.iter().copied());
                        let order = Request::Repair {
                            header: header.clone(),
                            index: 0,
                            holders: holders.map(|p| p.to_bytes().into()).collect(),
                            live: 1,
                        };
                        sent.insert(swarm.behaviour_mut().store.send_request(p, Ok(order)));
                    }
                }
            }
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(LiarBehaviourEvent::Store(request_response::Event::Message {
                    message: request_response::Message::Request { request, channel, .. },
                    ..
                })) => {
                    let (kind, response) = lie(request);
                    *seen.lock().unwrap().requests.entry(kind).or_default() += 1;
                    let _ = swarm.behaviour_mut().store.send_response(channel, Answer { response, framing: Framing::Whole });
                }
                SwarmEvent::Behaviour(LiarBehaviourEvent::Audit(request_response::Event::Message {
                    message: request_response::Message::Request { request, channel, .. },
                    ..
                })) => {
                    *seen.lock().unwrap().requests.entry("prove").or_default() += 1;
                    match prove_falsely(&prover, &me, challenges, request) {
                        Some(answer) => {
                            let _ = swarm.behaviour_mut().audit.send_response(channel, answer);
                        }
                        None => held.push(channel),
                    }
                    challenges += 1;
                }
                SwarmEvent::Behaviour(LiarBehaviourEvent::Store(request_response::Event::Message {
                    peer,
                    message: request_response::Message::Response { request_id, response },
                    ..
                })) if sent.remove(&request_id) => {
                    if let Response::Draw(proof) = response.response {
                        seen.lock().unwrap().draws.push((peer, proof));
                    }
                    record(describe(&response.response))
                }
                SwarmEvent::Behaviour(LiarBehaviourEvent::Store(request_response::Event::OutboundFailure {
                    request_id,
                    error,
                    ..
                })) if sent.remove(&request_id) => record(format!("failed: {error}")),
                SwarmEvent::Behaviour(LiarBehaviourEvent::Identify(identify::Event::Received {
                    peer_id,
                    info,
                    ..
                })) => {
                    for a in info.listen_addrs {
                        swarm.behaviour_mut().kad.add_address(&peer_id, a);
                    }
                }
                _ => {}
            }
        }
    }
}

/// stripe hex -> relay number -> indices held, from every relay's own inventory.
fn inventory(relays: &[RelayProc]) -> BTreeMap<String, BTreeMap<usize, Vec<u8>>> {
    let mut out: BTreeMap<String, BTreeMap<usize, Vec<u8>>> = BTreeMap::new();
    for (i, r) in relays.iter().enumerate() {
        let v = r.json("/inventory").unwrap();
        for (stripe, idx) in v["stripes"].as_object().unwrap() {
            let idx = idx.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u8).collect();
            out.entry(stripe.clone()).or_default().insert(i, idx);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lying_relay_first_in_every_group_loses_nobodys_data() {
    let started = Instant::now();
    let dir = Scratch::new("liar").unwrap();
    let fast = ["--repair-interval", "1", "--repair-grace", "5"];
    let first = spawn(&dir.path().join("r0"), &fast);
    let boot = first.addr("/tcp/").unwrap();
    let mut relays = vec![first];
    for i in 1..N {
        relays.push(spawn(
            &dir.path().join(format!("r{i}")),
            &[fast[0], fast[1], fast[2], fast[3], "--bootstrap", &boot],
        ));
    }
    for r in &relays {
        wait_for(Duration::from_secs(60), "every relay to know the other five", || {
            let table = routing_table(r)?;
            relays.iter().filter(|o| o.peer_id != r.peer_id).all(|o| table.contains(&o.peer_id)).then_some(())
        })
        .unwrap();
    }

    eprintln!("six relays know each other after {:.1} s", started.elapsed().as_secs_f64());

    // The liar joins: every relay takes it for one of them.
    let addrs: Vec<Multiaddr> = relays.iter().map(|r| r.addr("/tcp/").unwrap().parse().unwrap()).collect();
    let liar = Liar::start(&addrs, Prover::Zeros).await;
    let liar_id = liar.peer.to_string();
    for r in &relays {
        wait_for(Duration::from_secs(60), "every relay to have the liar in its routing table", || {
            routing_table(r)?.contains(&liar_id).then_some(())
        })
        .unwrap();
    }
    eprintln!("liar {liar_id} in every routing table after {:.1} s", started.elapsed().as_secs_f64());

    // Relay i keeps shard i of every stripe: each stripe on all six honest relays.
    let stripes: Vec<Stripe> = (0..STRIPES as u64).map(|n| stripe(50 * 1024, 1000 + n)).collect();
    let mut clients = Vec::new();
    for r in &relays {
        clients.push(StoreClient::connect(r.addr("/tcp/").unwrap().parse().unwrap()).await.unwrap());
    }
    for s in &stripes {
        let puts = clients.iter().enumerate().map(|(i, c)| async move {
            let req = Request::Store { header: s.header_bytes().to_vec(), shard: s.shard(i).to_vec() };
            (i, c.request(req).await.unwrap())
        });
        for (i, r) in futures::future::join_all(puts).await {
            assert_eq!(r, Response::Stored { index: i as u8 }, "shard {i} of stripe {} on relay {i}", s.id());
        }
    }
    // A whole stripe of four shards (k = 2, m = 2) on the four honest relays closest to it:
    // the other two are never in its group.
    let whole = {
        let opts = EncodeOptions { params: Params::new(2, 2).unwrap(), ..EncodeOptions::default() };
        encode_single_chunk(&opts, &pseudo_random(50 * 1024, 3000)).unwrap().0
    };
    let ids: Vec<PeerId> = relays.iter().map(|r| r.peer_id.parse().unwrap()).collect();
    let near =
        by_distance(&DhtKey::of_stripe(&whole.id()), ids.iter().map(|p| (*p, DhtKey::of(&p.to_bytes()))));
    let (holders, others): (Vec<usize>, Vec<usize>) = (0..N).partition(|i| near[..4].contains(&ids[*i]));
    for (j, &i) in holders.iter().enumerate() {
        let req = Request::Store { header: whole.header_bytes().to_vec(), shard: whole.shard(j).to_vec() };
        assert_eq!(clients[i].request(req).await.unwrap(), Response::Stored { index: j as u8 });
    }
    // Rebuild orders from the liar to every relay: index 0 of each stripe (held there
    // already), of 210 stripes nobody holds (from the liar alone, as most urgent), and of the whole stripe
    // naming its real holders (which a relay that took orders on the sender's word would
    // follow, fetching k shards to make a surplus copy).
    let mut headers: Orders = stripes.iter().map(|s| (s.header_bytes().to_vec(), Vec::new())).collect();
    for n in 0..FAKE_ORDERS {
        headers.push((stripe(4 * 1024, 2000 + n).header_bytes().to_vec(), Vec::new()));
    }
    headers.push((whole.header_bytes().to_vec(), holders.iter().map(|&i| ids[i]).collect()));
    liar.orders.send(Cmd::Orders(headers)).await.unwrap();

    // Rounds with the liar in the groups.
    let start: Vec<u64> = relays.iter().map(|r| rounds(r).unwrap()).collect();
    for (r, s0) in relays.iter().zip(&start) {
        wait_for(Duration::from_secs(120), "eight repair rounds on every relay", || {
            (rounds(r)? >= s0 + ROUNDS).then_some(())
        })
        .unwrap();
    }
    eprintln!("{ROUNDS} rounds on every relay after {:.1} s", started.elapsed().as_secs_f64());

    for (i, r) in relays.iter().enumerate() {
        let report = r.json("/repair").unwrap();
        eprintln!(
            "relay {i}: rounds {}, live relays {}, dropped (last round) {}, under-replicated {}",
            report["report"]["rounds"],
            report["report"]["live_relays"],
            report["report"]["dropped"],
            report["report"]["under_replicated"].as_array().map_or(0, Vec::len),
        );
        let (_, metrics) = r.get("/metrics").unwrap();
        for l in metrics.lines().filter(|l| !l.starts_with('#')) {
            if l.contains("dropped") || l.contains("proof") || l.contains("repair_events") {
                eprintln!("relay {i}: {l}");
            }
        }
    }
    {
        let seen = liar.seen.lock().unwrap();
        eprintln!("liar was asked: {:?}; its repair orders got: {:?}", seen.requests, seen.orders);
        assert!(
            seen.requests.get("holds").copied().unwrap_or(0) > 0,
            "no relay ever asked the liar what it holds: the attack was not exercised"
        );
    }

    // No honest copy dropped: relay i still holds shard i of every stripe.
    let inv = inventory(&relays);
    let mut lost = Vec::new();
    for s in &stripes {
        let held = inv.get(&s.id().to_hex());
        for i in 0..N {
            let has = held.and_then(|h| h.get(&i)).is_some_and(|idx| idx.contains(&(i as u8)));
            if !has {
                lost.push(format!(
                    "stripe {} shard {i} (relay {i} holds {:?})",
                    s.id(),
                    held.and_then(|h| h.get(&i))
                ));
            }
        }
    }
    assert!(lost.is_empty(), "{} honest shards dropped: {lost:#?}", lost.len());

    // The liar's orders were checked against each relay's own plan: nothing was rebuilt on
    // its word, and the whole stripe is still exactly where it was stored.
    for (i, r) in relays.iter().enumerate() {
        let rebuilt = r.metric("kura_repair_events_total{kind=\"rebuilt\"}").unwrap();
        let failed = r.metric("kura_repair_events_total{kind=\"rebuild_failed\"}").unwrap();
        let unneeded = r.metric("kura_repair_events_total{kind=\"order_unneeded\"}").unwrap();
        eprintln!("relay {i}: rebuilt {rebuilt}, rebuilds failed {failed}, orders not followed {unneeded}");
        assert_eq!((rebuilt, failed), (0.0, 0.0), "relay {i} acted on the liar's orders");
        // Each relay either checked the orders against its own plan, or had already caught
        // the liar's false proofs and refused every order as from no relay of the network
        // (which of the two comes first is a race between the orders and the audits).
        let audits = r.json("/audits").unwrap();
        let distrusts =
            audits["distrusted"].as_array().unwrap().iter().any(|d| d["peer"] == liar_id.as_str());
        assert!(unneeded >= 1.0 || distrusts, "relay {i} neither checked the liar's orders nor distrusts it");
    }
    let held = inv.get(&whole.id().to_hex()).cloned().unwrap_or_default();
    let want: BTreeMap<usize, Vec<u8>> =
        holders.iter().enumerate().map(|(j, &i)| (i, vec![j as u8])).collect();
    assert_eq!(held, want, "the whole stripe's holders (relays {others:?} never in its group)");

    // And each is served, verified against its header.
    for s in &stripes {
        for (i, c) in clients.iter().enumerate() {
            match c.request(Request::Fetch { stripe: s.id() }).await.unwrap() {
                Response::Shards { header, shards } => {
                    assert_eq!(header, s.header_bytes(), "header of stripe {} from relay {i}", s.id());
                    let idx: Vec<Option<usize>> =
                        shards.iter().map(|b| s.header().index_of(&ShardId::of(b))).collect();
                    assert!(idx.contains(&Some(i)), "relay {i} serves {idx:?} of stripe {}", s.id());
                    assert!(idx.iter().all(Option::is_some), "relay {i} serves {idx:?} of stripe {}", s.id());
                }
                other => panic!("fetch of stripe {} from relay {i}: {other:?}", s.id()),
            }
        }
    }
    liar.task.abort();
    for r in &relays {
        eprintln!("{}", r.usage_line("a lying relay in every group"));
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}

/// The verdicts relay `r` gave, by audited peer.
fn verdicts(r: &RelayProc) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Ok(a) = r.json("/audits") {
        for rec in a["recent"].as_array().into_iter().flatten() {
            let (Some(p), Some(v)) = (rec["peer"].as_str(), rec["verdict"].as_str()) else { continue };
            out.entry(p.to_owned()).or_default().push(v.to_owned());
        }
    }
    out
}

/// A relay that takes shards and answers every challenge on `/kura/audit/1` falsely: with
/// zeros, with a true proof of another shard of the same stripe (it has every shard's
/// bytes), or not at all. Four honest relays audit every second. Each of its answers is
/// judged false and each silence late; it is never passed, and a relay that caught it
/// answering falsely distrusts it. The honest relays audited each other all the while and
/// gave each other no failing verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_that_proves_falsely_is_failed_every_time_and_never_passed() {
    const HONEST: usize = 4;
    let dir = Scratch::new("false-prover").unwrap();
    let fast = ["--repair-interval", "1", "--repair-grace", "5", "--audit-interval", "1"];
    let first = spawn(&dir.path().join("r0"), &fast);
    let boot = first.addr("/tcp/").unwrap();
    let mut relays = vec![first];
    for i in 1..HONEST {
        let mut args = fast.to_vec();
        args.extend(["--bootstrap", &boot]);
        relays.push(spawn(&dir.path().join(format!("r{i}")), &args));
    }
    for r in &relays {
        wait_for(Duration::from_secs(60), "every relay to know the others", || {
            let table = routing_table(r)?;
            relays.iter().filter(|o| o.peer_id != r.peer_id).all(|o| table.contains(&o.peer_id)).then_some(())
        })
        .unwrap();
    }
    // Stripes of four shards (k = 2, m = 2), shard i on honest relay i; the liar has all
    // their bytes, to answer with the wrong one.
    let opts = EncodeOptions { params: Params::new(2, 2).unwrap(), ..EncodeOptions::default() };
    let stripes: Vec<Stripe> = (0..8u64)
        .map(|n| encode_single_chunk(&opts, &pseudo_random(40 * 1024, 500 + n)).unwrap().0)
        .collect();
    let shards: BTreeMap<StripeId, Vec<Vec<u8>>> =
        stripes.iter().map(|s| (s.id(), (0..HONEST).map(|i| s.shard(i).to_vec()).collect())).collect();
    let addrs: Vec<Multiaddr> = relays.iter().map(|r| r.addr("/tcp/").unwrap().parse().unwrap()).collect();
    let liar = Liar::start(&addrs, Prover::Rotate(Arc::new(shards))).await;
    let liar_id = liar.peer.to_string();
    for r in &relays {
        wait_for(Duration::from_secs(60), "every relay to have the liar in its routing table", || {
            routing_table(r)?.contains(&liar_id).then_some(())
        })
        .unwrap();
    }
    for (i, r) in relays.iter().enumerate() {
        let c = StoreClient::connect(r.addr("/tcp/").unwrap().parse().unwrap()).await.unwrap();
        for s in &stripes {
            let req = Request::Store { header: s.header_bytes().to_vec(), shard: s.shard(i).to_vec() };
            assert_eq!(c.request(req).await.unwrap(), Response::Stored { index: i as u8 });
        }
    }
    // Until the liar has been caught both ways: a false proof and a silence past the deadline.
    let caught = wait_for(Duration::from_secs(120), "false and late verdicts on the liar", || {
        let all: Vec<String> =
            relays.iter().flat_map(|r| verdicts(r).remove(&liar_id).unwrap_or_default()).collect();
        (all.iter().any(|v| v == "false") && all.iter().any(|v| v == "timeout")).then_some(all)
    });
    let seen = liar.seen.lock().unwrap().requests.clone();
    eprintln!("liar was asked: {seen:?}");
    let all = caught.unwrap();
    eprintln!("verdicts on the liar: {all:?}");
    assert!(
        all.iter().all(|v| v == "false" || v == "timeout"),
        "the liar passed or was judged otherwise: {all:?}"
    );
    for (i, r) in relays.iter().enumerate() {
        let mine = verdicts(r);
        if mine.get(&liar_id).is_some_and(|v| v.iter().any(|v| v == "false")) {
            let a = r.json("/audits").unwrap();
            let distrusted: Vec<&str> =
                a["distrusted"].as_array().unwrap().iter().filter_map(|d| d["peer"].as_str()).collect();
            assert!(distrusted.contains(&liar_id.as_str()), "relay {i} caught the liar and trusts it: {a}");
        }
        for (peer, v) in mine.iter().filter(|(p, _)| **p != liar_id) {
            assert!(v.iter().all(|v| v == "pass"), "relay {i} failed honest relay {peer}: {v:?}");
        }
        let passes = r.metric("kura_audits_total{role=\"auditor\",verdict=\"pass\"}").unwrap_or(0.0);
        eprintln!("relay {i}: {passes} passes given, verdicts {mine:?}");
    }
    liar.task.abort();
}

/// Three honest relays and the liar, all knowing each other; the relays run with `extra`
/// and with repair rounds and audits an hour apart (audits of the liar, whose proofs are
/// false, would make the relays refuse everything it sends as from no relay of the network:
/// they are kept out of these tests' time).
async fn three_relays_and_a_liar(dir: &Scratch, extra: &[&str]) -> (Vec<RelayProc>, Vec<Multiaddr>, Liar) {
    let quiet = ["--repair-interval", "3600", "--audit-interval", "3600"];
    let flags: Vec<&str> = quiet.iter().chain(extra).copied().collect();
    let first = spawn(&dir.path().join("r0"), &flags);
    let boot = first.addr("/tcp/").unwrap();
    let mut relays = vec![first];
    for i in 1..3 {
        let args: Vec<&str> = flags.iter().copied().chain(["--bootstrap", &boot]).collect();
        relays.push(spawn(&dir.path().join(format!("r{i}")), &args));
    }
    let addrs: Vec<Multiaddr> = relays.iter().map(|r| r.addr("/tcp/").unwrap().parse().unwrap()).collect();
    let liar = Liar::start(&addrs, Prover::Zeros).await;
    let liar_id = liar.peer.to_string();
    for r in &relays {
        wait_for(Duration::from_secs(60), "every relay to know the others and the liar", || {
            let table = routing_table(r)?;
            let others = relays.iter().filter(|o| o.peer_id != r.peer_id).all(|o| table.contains(&o.peer_id));
            (others && table.contains(&liar_id)).then_some(())
        })
        .unwrap();
    }
    (relays, addrs, liar)
}

/// A relay of the network hands honest relays stripes it made up: before, a handover was
/// taken wherever a store would be, unpaid and outside the free allowance and its room, so
/// one relay identity (a second of join work) could fill every disk. Now a handover is
/// taken only for a stripe another member of its group holds: each made-up stripe is
/// refused (`Unpaid`, in words) and stored nowhere, while the liar's handover of the
/// missing shard of a real stripe, which the two other relays hold, is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn made_up_stripes_handed_over_are_stored_nowhere() {
    let dir = Scratch::new("liar-handover").unwrap();
    let (relays, addrs, liar) = three_relays_and_a_liar(&dir, &[]).await;
    // A real stripe of three shards (k = 2, m = 1): relays 0 and 1 keep shards 0 and 1.
    let opts = EncodeOptions { params: Params::new(2, 1).unwrap(), ..EncodeOptions::default() };
    let real = encode_single_chunk(&opts, &pseudo_random(40 * 1024, 7000)).unwrap().0;
    for (i, addr) in addrs.iter().enumerate().take(2) {
        let c = StoreClient::connect(addr.clone()).await.unwrap();
        let req = Request::Store { header: real.header_bytes().to_vec(), shard: real.shard(i).to_vec() };
        assert_eq!(c.request(req).await.unwrap(), Response::Stored { index: i as u8 });
    }
    // Made-up stripes (each relay is in every group of three among four peers).
    let made_up: Vec<Stripe> = (0..10u64)
        .map(|n| encode_single_chunk(&opts, &pseudo_random(40 * 1024, 8000 + n)).unwrap().0)
        .collect();
    let ids: Vec<PeerId> = relays.iter().map(|r| r.peer_id.parse().unwrap()).collect();
    let mut requests: Vec<(PeerId, Request)> = Vec::new();
    for s in &made_up {
        for p in &ids {
            requests.push((
                *p,
                Request::Handover { header: s.header_bytes().to_vec(), shard: s.shard(0).to_vec() },
            ));
        }
    }
    liar.orders.send(Cmd::Send(requests)).await.unwrap();
    let answered = |want: usize| {
        let seen = liar.seen.lock().unwrap();
        (seen.orders.values().sum::<usize>() >= want).then(|| seen.orders.clone())
    };
    let got =
        wait_for(Duration::from_secs(60), "the made-up handovers to be answered", || answered(30)).unwrap();
    eprintln!("made-up handovers answered: {got:?}");
    assert_eq!(got.get(&format!("error {}", ErrorCode::Unpaid)), Some(&30), "{got:?}");
    // The real stripe's missing shard, handed to relay 2: relays 0 and 1 hold the stripe.
    let shard = real.shard(2).to_vec();
    liar.orders
        .send(Cmd::Send(vec![(ids[2], Request::Handover { header: real.header_bytes().to_vec(), shard })]))
        .await
        .unwrap();
    let got = wait_for(Duration::from_secs(60), "the real handover to be answered", || answered(31)).unwrap();
    assert_eq!(got.get("Stored { index: 2 }"), Some(&1), "{got:?}");

    let inv = inventory(&relays);
    for s in &made_up {
        assert!(!inv.contains_key(&s.id().to_hex()), "made-up stripe {} is held: {inv:?}", s.id());
    }
    let held = inv.get(&real.id().to_hex()).cloned().unwrap_or_default();
    let want: BTreeMap<usize, Vec<u8>> = (0..3).map(|i| (i, vec![i as u8])).collect();
    assert_eq!(held, want);
    for (i, r) in relays.iter().enumerate() {
        let refused = r.metric("kura_refused_requests_total{kind=\"handover\"}").unwrap_or(0.0);
        assert_eq!(refused, 10.0, "relay {i} counts the refusals");
    }
    liar.task.abort();
}

/// A free stripe's life follows it to a relay it is handed to, and a lying holder does not
/// end it early: the liar hands relay 2 the missing shard of a free stripe relays 0 and 1
/// took in epoch `e0`, then answers relay 2's question of when the stripe was first stored
/// with epoch 0 (so that relay 2 would drop it at once). Relay 2 takes the lower median of
/// the answers (the liar's and relays 0 and 1's): `e0`. So its next epoch sweep keeps the
/// shard and counts it in its free room, and all three drop the stripe together when its
/// life (`--free-epochs 4`) is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_lying_about_a_free_stripes_age_does_not_end_its_life() {
    let dir = Scratch::new("liar-free").unwrap();
    let (relays, addrs, liar) = three_relays_and_a_liar(&dir, &["--epoch", "2", "--free-epochs", "4"]).await;
    let epoch = |r: &RelayProc| r.json("/status").ok()?["farming"]["epoch"].as_u64();
    let opts = EncodeOptions { params: Params::new(2, 1).unwrap(), ..EncodeOptions::default() };
    let free = encode_single_chunk(&opts, &pseudo_random(40 * 1024, 9000)).unwrap().0;
    let e0 = epoch(&relays[0]).unwrap();
    for (i, addr) in addrs.iter().enumerate().take(2) {
        let c = StoreClient::connect(addr.clone()).await.unwrap();
        let req = Request::Store { header: free.header_bytes().to_vec(), shard: free.shard(i).to_vec() };
        assert_eq!(c.request(req).await.unwrap(), Response::Stored { index: i as u8 });
    }
    let e1 = epoch(&relays[0]).unwrap();
    let ids: Vec<PeerId> = relays.iter().map(|r| r.peer_id.parse().unwrap()).collect();
    let shard = free.shard(2).to_vec();
    liar.orders
        .send(Cmd::Send(vec![(ids[2], Request::Handover { header: free.header_bytes().to_vec(), shard })]))
        .await
        .unwrap();
    let handed = wait_for(Duration::from_secs(30), "the handover to be answered", || {
        let seen = liar.seen.lock().unwrap();
        (seen.orders.values().sum::<usize>() >= 1).then(|| seen.orders.clone())
    })
    .unwrap();
    assert_eq!(handed.get("Stored { index: 2 }"), Some(&1), "{handed:?}");
    wait_for(Duration::from_secs(30), "relay 2 to ask the liar when the stripe was stored", || {
        (liar.seen.lock().unwrap().requests.get("postage").copied().unwrap_or(0) > 0).then_some(())
    })
    .unwrap();
    // Relay 2's next sweep: it keeps the shard and counts it free (taking the liar's epoch 0,
    // it would have dropped it, counted in `kura_shards_expired_total`).
    let len = free.shard(2).len() as u64;
    wait_for(Duration::from_secs(30), "relay 2's sweep to count the handed shard as free", || {
        let expired = relays[2].metric("kura_shards_expired_total").ok()?;
        assert_eq!(expired, 0.0, "relay 2 dropped the stripe: it took the liar's word");
        let held = relays[2].json("/status").ok()?["farming"]["free_bytes_held"].as_u64()?;
        (held >= len).then_some(())
    })
    .unwrap();
    let inv = inventory(&relays);
    let want: BTreeMap<usize, Vec<u8>> = (0..3).map(|i| (i, vec![i as u8])).collect();
    assert_eq!(inv.get(&free.id().to_hex()).cloned().unwrap_or_default(), want);
    // Its life ends for all three together: four epochs after it was stored.
    let gone = wait_for(Duration::from_secs(60), "the free stripe's life to end on all three relays", || {
        (!inventory(&relays).contains_key(&free.id().to_hex())).then(|| epoch(&relays[0]))?
    })
    .unwrap();
    eprintln!("stored in epoch {e0}–{e1}, handed to relay 2, dropped by all three by epoch {gone}");
    assert!(gone >= e0 + 4 && gone <= e1 + 4 + 2, "stored in {e0}–{e1}, gone by {gone}, life 4");
    liar.task.abort();
}

/// A relay cannot place its own audit group. Its group for an epoch is placed by the least
/// of its neighbours' draws for that epoch (`kura_core::farming::beacon`), which they make
/// only once the epoch has ended: the liar, a relay of the network, is refused its
/// neighbours' draws for an epoch not yet over, and its claims are refused unjudged when
/// they carry no draws or draws made by keys of its own (proofs that verify, by no
/// neighbour of it); with the draws its neighbours gave it, the same claim is placed and
/// judged (here refused for what it lists: nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_cannot_place_its_own_audit_group() {
    use kura_core::ledger::Signer;
    let dir = Scratch::new("liar-draws").unwrap();
    let (relays, _addrs, liar) = three_relays_and_a_liar(&dir, &["--epoch", "10"]).await;
    let ids: Vec<PeerId> = relays.iter().map(|r| r.peer_id.parse().unwrap()).collect();
    // The relays met in the epoch they started in; by the age rule an audit group is placed
    // only among relays met before its epoch began, so the epoch claimed is a later one.
    let epoch = |r: &RelayProc| r.json("/status").ok()?["farming"]["epoch"].as_u64();
    let met = epoch(&relays[0]).unwrap();
    let now = wait_for(Duration::from_secs(40), "two epochs after the relays met", || {
        epoch(&relays[0]).filter(|e| *e >= met + 2)
    })
    .unwrap();
    let ended = now - 1;
    let answers = |want: usize| {
        wait_for(Duration::from_secs(30), "the relays' answers", || {
            let seen = liar.seen.lock().unwrap();
            (seen.orders.values().sum::<usize>() >= want).then(|| seen.orders.clone())
        })
        .unwrap()
    };
    // Draws for the next epoch (not over): refused by all three; for the last: given.
    let ask = |epoch| ids.iter().map(|p| (*p, Request::Draw { epoch })).collect();
    liar.orders.send(Cmd::Send(ask(now + 1))).await.unwrap();
    let got = answers(3);
    assert_eq!(got.get(&format!("error {}", ErrorCode::Unpaid)), Some(&3), "{got:?}");
    liar.orders.send(Cmd::Send(ask(ended))).await.unwrap();
    answers(6);
    let given: Vec<kura_core::farming::Draw> = {
        let seen = liar.seen.lock().unwrap();
        seen.draws
            .iter()
            .map(|(p, proof)| kura_core::farming::Draw {
                drawer: kura_p2p::ledger::key_of(p).unwrap(),
                proof: *proof,
            })
            .collect()
    };
    assert_eq!(given.len(), 3, "each neighbour gives its draw for an epoch that ended");
    let input = kura_core::farming::draw_input(&liar.peer.to_bytes(), ended);
    for d in &given {
        kura_core::vrf::verify(&d.drawer, &input, &d.proof).expect("a neighbour's draw verifies");
    }
    // Claims of that epoch: without draws, with its own keys' draws, with its neighbours'.
    let claim = |draws: Vec<kura_core::farming::Draw>| kura_core::farming::EpochClaim {
        epoch: ended,
        page: kura_core::farming::ClaimPage::default(),
        account: kura_core::testdata::account_key(3).key(),
        burns: vec![],
        entries: vec![],
        draws,
    };
    let own: Vec<kura_core::farming::Draw> = (0..3u8)
        .map(|i| kura_core::farming::Draw::make(&[200 + i; 32], &liar.peer.to_bytes(), ended))
        .collect();
    let not_placed = format!("error {}", ErrorCode::NotInGroup);
    liar.orders.send(Cmd::Send(vec![(ids[0], Request::EpochClaim(Box::new(claim(vec![]))))])).await.unwrap();
    assert_eq!(answers(7).get(&not_placed), Some(&1));
    liar.orders.send(Cmd::Send(vec![(ids[1], Request::EpochClaim(Box::new(claim(own))))])).await.unwrap();
    assert_eq!(answers(8).get(&not_placed), Some(&2));
    liar.orders.send(Cmd::Send(vec![(ids[2], Request::EpochClaim(Box::new(claim(given))))])).await.unwrap();
    let got = answers(9);
    assert_eq!(got.get(&not_placed), Some(&2), "the neighbours' draws place the group: {got:?}");
    liar.task.abort();
}
