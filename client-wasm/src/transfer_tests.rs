//! The transfer executor over libp2p's memory transport: a real client `Network` (its
//! Kademlia lookups and storage requests) against in-process relays that keep shards in a
//! map. What is tested is the executor: lookups, stores and fetches driven by kura-core's
//! machines, refusals moving a shard on, a silent holder hedged at the machine's deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::net::{behaviour, NetConfig};
use futures::StreamExt;
use kura_core::encoder::encode_single_chunk;
use kura_core::testdata::pseudo_random;
use kura_core::{EncodeOptions, Encoder, FileMeta, Params, ShardId, StripeHeader};
use kura_p2p::protocol::{Answer, RelayCodec, KAD_PROTOCOL, PROTOCOL};
use kura_p2p::testnet;
use kura_p2p::transport::Framing;
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{kad, Multiaddr};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How a test relay behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mood {
    Honest,
    /// Refuses every store: its quota is full.
    Full,
    /// Takes stores, never answers a fetch.
    Silent,
    /// Answers every fetch that it holds nothing (a relay that lost its disk).
    Lost,
}

#[derive(NetworkBehaviour)]
struct RelayBehaviour {
    kad: kad::Behaviour<kad::store::MemoryStore>,
    store: request_response::Behaviour<RelayCodec>,
}

/// Stripe id -> header and the shards held, by index.
type Shelf = HashMap<StripeId, (Vec<u8>, Vec<(u8, Vec<u8>)>)>;

fn answer(mood: Mood, shelf: &mut Shelf, req: Request) -> Option<Response> {
    match req {
        Request::Store { header, shard } => {
            if mood == Mood::Full {
                return Some(Response::Error { code: ErrorCode::QuotaFull, detail: "full".into() });
            }
            let h = StripeHeader::parse(&header).unwrap();
            let index = h.index_of(&ShardId::of(&shard)).unwrap() as u8;
            let entry = shelf.entry(StripeId::of(&header)).or_insert_with(|| (header, Vec::new()));
            entry.1.push((index, shard));
            Some(Response::Stored { index })
        }
        Request::Fetch { stripe } => {
            if mood == Mood::Silent {
                return None;
            }
            if mood == Mood::Lost {
                return Some(Response::Error { code: ErrorCode::NotFound, detail: String::new() });
            }
            Some(match shelf.get(&stripe) {
                Some((header, shards)) => Response::Shards {
                    header: header.clone(),
                    shards: shards.iter().map(|(_, s)| s.clone().into()).collect(),
                },
                None => Response::Error { code: ErrorCode::NotFound, detail: String::new() },
            })
        }
        _ => Some(Response::Error { code: ErrorCode::Malformed, detail: "not served here".into() }),
    }
}

/// A test relay: its id, its address (ending in `/p2p/ID`), and its mood (which a test may
/// change as it runs).
struct TestRelay {
    id: PeerId,
    addr: Multiaddr,
    mood: Arc<Mutex<Mood>>,
}

/// Starts `n` honest relays on the memory transport, each knowing the others.
async fn relays(n: usize) -> Vec<TestRelay> {
    let mut swarms = Vec::new();
    for _ in 0..n {
        let (swarm, addr) = testnet::swarm(|key| {
            let me = key.public().to_peer_id();
            let mut kad = kad::Behaviour::with_config(
                me,
                kad::store::MemoryStore::new(me),
                kad::Config::new(KAD_PROTOCOL),
            );
            kad.set_mode(Some(kad::Mode::Server));
            RelayBehaviour {
                kad,
                store: request_response::Behaviour::with_codec(
                    RelayCodec::default(),
                    [(PROTOCOL, ProtocolSupport::Full)],
                    // A silent relay holds its streams open longer than any test waits.
                    request_response::Config::default().with_request_timeout(Duration::from_secs(120)),
                ),
            }
        })
        .await
        .unwrap();
        let id = *swarm.local_peer_id();
        swarms.push((swarm, id, addr));
    }
    let book: Vec<(PeerId, Multiaddr)> = swarms.iter().map(|(_, id, a)| (*id, a.clone())).collect();
    let mut out = Vec::new();
    for (mut swarm, me, addr) in swarms {
        let mood = Arc::new(Mutex::new(Mood::Honest));
        out.push(TestRelay {
            id: me,
            addr: addr.with(libp2p::multiaddr::Protocol::P2p(me)),
            mood: mood.clone(),
        });
        for (p, a) in &book {
            if *p != me {
                swarm.behaviour_mut().kad.add_address(p, a.clone());
            }
        }
        tokio::spawn(async move {
            let mut shelf = Shelf::new();
            let mut unanswered: Vec<ResponseChannel<Answer>> = Vec::new();
            loop {
                if let SwarmEvent::Behaviour(RelayBehaviourEvent::Store(request_response::Event::Message {
                    message: request_response::Message::Request { request: Ok(req), channel, .. },
                    ..
                })) = swarm.select_next_some().await
                {
                    let now = *mood.lock().unwrap();
                    match answer(now, &mut shelf, req) {
                        Some(response) => {
                            let answer = Answer { response, framing: Framing::Whole };
                            let _ = swarm.behaviour_mut().store.send_response(channel, answer);
                        }
                        None => unanswered.push(channel),
                    }
                }
            }
        });
    }
    out
}

/// Sets the mood of the `count` relays of `among` closest to `stripe`.
fn set_closest(
    book: &[TestRelay],
    among: &[PeerId],
    stripe: StripeId,
    count: usize,
    mood: Mood,
) -> Vec<PeerId> {
    let ranked =
        by_distance(&DhtKey::of_stripe(&stripe), among.iter().map(|p| (*p, DhtKey::of(&p.to_bytes()))));
    for r in book.iter().filter(|r| ranked[..count].contains(&r.id)) {
        *r.mood.lock().unwrap() = mood;
    }
    ranked[..count].to_vec()
}

async fn client(bootstrap: &Multiaddr) -> Network {
    let cfg = NetConfig::default();
    let (swarm, _) = testnet::swarm(|key| behaviour(key.public().to_peer_id(), &cfg)).await.unwrap();
    Network::start(swarm, std::slice::from_ref(bootstrap), cfg, false).await.unwrap()
}

/// Reads stripe `s` back within `within` and checks every shard rebuilt from it.
async fn read_whole(net: &Network, s: &Stripe, cfg: &TransferConfig, progress: &Progress, within: Duration) {
    let asm = tokio::time::timeout(within, fetch_stripe(net, s.id(), cfg, progress))
        .await
        .unwrap_or_else(|_| panic!("read within {within:?}"))
        .unwrap();
    assert!(asm.is_ready());
    let shards = asm.rebuild_all().unwrap();
    for (i, shard) in shards.iter().enumerate() {
        assert_eq!(shard.as_slice(), s.shard(i), "shard {i}");
    }
}

fn stripe(seed: u64) -> Stripe {
    stripe_of(Params::new(4, 2).unwrap(), seed)
}

fn stripe_of(params: Params, seed: u64) -> Stripe {
    let opts = EncodeOptions { params, ..EncodeOptions::default() };
    encode_single_chunk(&opts, &pseudo_random(40_000, seed)).unwrap().0
}

/// A stripe goes to six relays, one shard each, and comes back whole; the relay closest to
/// it has a full quota and is passed over for the next; then the two holders a reader asks
/// first never answer, and are hedged at the fetch machine's deadline (without hedging the
/// read would wait for the request timeout, a minute, past this test's bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripe_is_stored_on_distinct_relays_and_read_back_past_full_and_silent_ones() {
    let book = relays(7).await;
    let net = client(&book[0].addr).await;
    let cfg = TransferConfig { hedge_after: Duration::from_millis(300), ..TransferConfig::default() };
    let progress = Progress::default();
    let s = stripe(1);
    let all: Vec<PeerId> = book.iter().map(|r| r.id).collect();
    let full = set_closest(&book, &all, s.id(), 1, Mood::Full)[0];
    let holders = tokio::time::timeout(Duration::from_secs(30), upload_stripe(&net, &s, &cfg, &progress))
        .await
        .expect("stored within 30 s")
        .unwrap();
    assert_eq!(holders.len(), 6);
    let mut peers: Vec<PeerId> = holders.iter().map(|(_, p)| *p).collect();
    peers.sort();
    peers.dedup();
    assert_eq!(peers.len(), 6, "one shard per relay: {holders:?}");
    assert!(!peers.contains(&full), "the full relay holds nothing");
    assert_eq!(progress.retries.load(Relaxed), 1, "the refusal was counted");

    set_closest(&book, &peers, s.id(), 2, Mood::Silent);
    // Without hedging the read would wait for the request timeout.
    read_whole(&net, &s, &cfg, &progress, Duration::from_secs(30)).await;
}

/// A 10+10 stripe on thirty relays, more than one lookup returns: its four nearest refuse
/// it, so its shards go to ranks 5 to 24, four of them past the twenty a lookup finds. Then
/// seven holders among the twenty lose theirs: the twenty give nine shards of the ten
/// needed, and the read finds the stripe's 24 nearest (kura-core's `FetchPlan::wants_wider`)
/// and reads the rest from ranks 21 to 24. Without it the read fails with nine of ten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_finds_shards_past_what_one_lookup_returns() {
    let book = relays(30).await;
    let net = client(&book[0].addr).await;
    let cfg = TransferConfig { hedge_after: Duration::from_secs(5), ..TransferConfig::default() };
    let progress = Progress::default();
    let s = stripe_of(Params::new(10, 10).unwrap(), 4);
    let all: Vec<PeerId> = book.iter().map(|r| r.id).collect();
    let ranked =
        by_distance(&DhtKey::of_stripe(&s.id()), all.iter().map(|p| (*p, DhtKey::of(&p.to_bytes()))));
    let full = set_closest(&book, &all, s.id(), 4, Mood::Full);
    let holders = tokio::time::timeout(Duration::from_secs(60), upload_stripe(&net, &s, &cfg, &progress))
        .await
        .expect("stored within 60 s")
        .unwrap();
    let rank = |p: &PeerId| ranked.iter().position(|r| r == p).unwrap();
    let mut ranks: Vec<usize> = holders.iter().map(|(_, p)| rank(p)).collect();
    ranks.sort_unstable();
    assert_eq!(ranks, (4..24).collect::<Vec<_>>(), "ranks 5 to 24 hold the shards");
    for r in book.iter().filter(|r| full.contains(&r.id)) {
        *r.mood.lock().unwrap() = Mood::Honest;
    }
    for r in book.iter().filter(|r| (4..11).contains(&rank(&r.id))) {
        *r.mood.lock().unwrap() = Mood::Lost;
    }
    read_whole(&net, &s, &cfg, &progress, Duration::from_secs(60)).await;
}

/// Too few relays: the put looks again (kura-core's StripePut) and then refuses with a
/// count, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_relays_is_refused_after_looking_again() {
    let book = relays(3).await;
    let net = client(&book[0].addr).await;
    let e = tokio::time::timeout(
        Duration::from_secs(30),
        upload_stripe(&net, &stripe(2), &TransferConfig::default(), &Progress::default()),
    )
    .await
    .expect("refused within 30 s")
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooFewRelays, "{e}");
    assert_eq!((e.details().found, e.details().needed), (Some(3), Some(6)), "{e}");
}

/// The put pipeline end to end: a file of several stripes read by the encoder a piece at a
/// time (as the CLI and the page do), queued, uploaded, and read back byte for byte through
/// its capability; the progress counters saw every byte encoded and every stored shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_put_through_the_pipeline_comes_back_whole() {
    let book = relays(7).await;
    let net = client(&book[0].addr).await;
    let cfg = TransferConfig::default();
    let data = pseudo_random(3 * kura_core::CHUNK_SIZE + 5, 3);
    let opts = EncodeOptions { params: Params::new(4, 2).unwrap(), ..EncodeOptions::default() };
    let progress = Progress::default();
    let meta = FileMeta { name: "f".into(), media_type: String::new() };
    let put = put(&net, &cfg, &progress, |stripes| {
        encode_into(Encoder::new(opts).unwrap(), Blocking(&data[..]), meta, &progress, stripes)
    });
    let cap = tokio::time::timeout(Duration::from_secs(60), put).await.expect("put within 60 s").unwrap();
    let seen = progress.snapshot();
    assert_eq!(seen.encoded, data.len() as u64);
    assert!(seen.confirmed >= 6 * (data.len() as u64 / 4), "{seen:?}");
    let mut back = Vec::new();
    let reading = Progress::default();
    let got = get(&net, cap, None, &cfg, &reading, |pt| {
        back.extend_from_slice(pt);
        Ok(())
    });
    tokio::time::timeout(Duration::from_secs(60), got).await.expect("get within 60 s").unwrap();
    assert!(back == data, "the file came back different ({} bytes)", back.len());
}

/// An input that fails mid-way fails the put with the input's error, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_input_fails_the_put_with_its_error() {
    struct Broken(usize);
    impl Plaintext for Broken {
        async fn read(&mut self, max: usize) -> Result<Vec<u8>, String> {
            self.0 += 1;
            if self.0 > 2 {
                return Err("disk gone".into());
            }
            Ok(vec![self.0 as u8; max])
        }
    }
    let book = relays(7).await;
    let net = client(&book[0].addr).await;
    let opts = EncodeOptions { params: Params::new(4, 2).unwrap(), ..EncodeOptions::default() };
    let progress = Progress::default();
    let meta = FileMeta { name: "f".into(), media_type: String::new() };
    let cfg = TransferConfig::default();
    let put = put(&net, &cfg, &progress, |stripes| {
        encode_into(Encoder::new(opts).unwrap(), Broken(0), meta, &progress, stripes)
    });
    let e = tokio::time::timeout(Duration::from_secs(60), put).await.expect("ended within 60 s").unwrap_err();
    assert!(matches!(&e, TransferError::Input(m) if m == "disk gone"), "{e}");
    assert_eq!(e.kind(), ErrorKind::BadRequest);
}
