//! The relay's repair executor over libp2p's memory transport: eight real relay nodes (the
//! relay's own behaviours, event loop, repair rounds and rebuild worker, each with a shard
//! store in memory) in one process, connected by real libp2p connections without sockets.
//! What is tested is the executor: `Holds` queries across the group, kura-core's round plan
//! carried out, a rebuild ordered to a vacant member, fetched there through `FetchPlan`,
//! checked against the header and stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_core::encoder::encode_single_chunk;
use kura_core::placement::{by_distance, DhtKey};
use kura_core::testdata::pseudo_random;
use kura_core::{EncodeOptions, Params, Stripe, StripeId};
use kura_p2p::testnet;
use kura_relay::ip_limits::PerIp;
use kura_relay::metrics::Metrics;
use kura_relay::node::{self, Node, NodeConfig, Shared};
use kura_relay::repair::{self, Ctx, Repair, RepairConfig};
use kura_relay::store::{MemStore, ShardStore};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// A relay running in this process.
struct MemRelay {
    id: PeerId,
    shared: Arc<Shared>,
    /// Stops it: its event loop ends (its connections close) and its repair tasks with it.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl MemRelay {
    fn stop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
    }
}

fn config(bootstrap: Option<Multiaddr>) -> NodeConfig {
    NodeConfig {
        listen: Vec::new(),
        bootstrap: bootstrap.into_iter().collect(),
        external: Vec::new(),
        max_connections: 1024,
        per_ip: PerIp { pending: 64, established: 128 },
        max_inflight: 256,
        store_rate: 1 << 30,
        store_burst: 1 << 30,
        group_lookups_always: false,
    }
}

/// Starts `n` relays, each bootstrapping from the first, with repair rounds every
/// `interval`; returns once every relay's routing table holds all the others.
async fn relays(n: usize, interval: Duration) -> Vec<MemRelay> {
    let mut out: Vec<MemRelay> = Vec::new();
    let mut first: Option<Multiaddr> = None;
    for _ in 0..n {
        let cfg = config(first.clone());
        let (swarm, addr) = testnet::swarm(|key| node::behaviour(key, &cfg)).await.unwrap();
        let id = *swarm.local_peer_id();
        first.get_or_insert_with(|| addr.with(Protocol::P2p(id)));
        let store: Arc<dyn ShardStore> = Arc::new(MemStore::new(1 << 30));
        let shared = Arc::new(Shared {
            info: RwLock::new(Default::default()),
            metrics: Metrics::new(Default::default()),
            store,
            repair: Arc::new(Repair::new(RepairConfig::new(interval, 1 << 30))),
            // In memory, with a key of its own: these tests move no credits.
            ledger: Arc::new(
                kura_relay::ledger::Ledger::open(
                    None,
                    kura_p2p::ledger::IdentitySigner(libp2p::identity::Keypair::generate_ed25519()),
                    kura_relay::ledger::NO_MINT,
                    None,
                )
                .unwrap(),
            ),
            farming: kura_relay::farming::Farming::new(Default::default()),
            history: Default::default(),
            tabs: kura_relay::donation::Tabs::new(Default::default(), Default::default(), Default::default()),
        });
        let node = Node::start(swarm, shared.clone(), cfg).unwrap();
        let ctx = Ctx { me: id, shared: shared.clone(), net: node.sender() };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let rounds = tokio::spawn(repair::run_rounds(ctx.clone()));
            let worker = tokio::spawn(repair::run_worker(ctx));
            node.run(async { drop(stopped.await) }, |_| {}).await;
            rounds.abort();
            worker.abort();
        });
        out.push(MemRelay { id, shared, stop: Some(stop) });
    }
    let ids: Vec<String> = out.iter().map(|r| r.id.to_string()).collect();
    wait_for(Duration::from_secs(30), "every relay to know all the others", || {
        out.iter().all(|r| {
            let table = r.shared.info.read().unwrap().routing_table.clone();
            ids.iter().filter(|i| **i != r.id.to_string()).all(|i| table.contains(i))
        })
    })
    .await;
    out
}

async fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn stripe(seed: u64) -> Stripe {
    let opts = EncodeOptions { params: Params::new(4, 2).unwrap(), ..EncodeOptions::default() };
    encode_single_chunk(&opts, &pseudo_random(40_000, seed)).unwrap().0
}

/// The relays by distance to `stripe`, closest first.
fn ranked<'a>(relays: &'a [MemRelay], stripe: &StripeId) -> Vec<&'a MemRelay> {
    let order =
        by_distance(&DhtKey::of_stripe(stripe), relays.iter().map(|r| (r.id, DhtKey::of(&r.id.to_bytes()))));
    order.iter().map(|id| relays.iter().find(|r| r.id == *id).unwrap()).collect()
}

/// Which indices of `stripe` each relay holds.
fn holdings(relays: &[MemRelay], stripe: &StripeId) -> Vec<(PeerId, Vec<u8>)> {
    relays
        .iter()
        .map(|r| {
            let held = r.shared.store.holds(std::slice::from_ref(stripe)).unwrap();
            (r.id, held.into_iter().flat_map(|(_, i)| i).collect())
        })
        .collect()
}

/// A stripe of six shards placed on the six relays closest to it, but for one member that
/// never got its shard: the group finds the index missing, orders it rebuilt, and the
/// vacant member fetches `k` shards from the others, rebuilds the index and keeps it. No
/// member ends with two shards and nothing is lost on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_shard_is_rebuilt_on_the_vacant_member_of_its_group() {
    let net = relays(8, Duration::from_millis(500)).await;
    let s = stripe(1);
    let id = s.id();
    let group = ranked(&net, &id);
    const MISSING: usize = 2;
    for (i, (_, shard)) in s.shards().enumerate() {
        if i != MISSING {
            group[i].shared.store.put(s.header_bytes(), shard).unwrap();
        }
    }
    let vacant = group[MISSING].id;
    wait_for(Duration::from_secs(60), "the missing shard to be rebuilt", || {
        holdings(&net, &id).iter().any(|(p, held)| *p == vacant && held == &[MISSING as u8])
    })
    .await;
    let held = holdings(&net, &id);
    let all: BTreeSet<u8> = held.iter().flat_map(|(_, i)| i.iter().copied()).collect();
    assert_eq!(all, (0..6).collect::<BTreeSet<u8>>(), "{held:?}");
    assert!(held.iter().all(|(_, i)| i.len() <= 1), "a relay holds two shards: {held:?}");
    // The rebuilt shard is the original, byte for byte (the store checks it against the
    // header; here it is compared with what the encoder made).
    let kept = net.iter().find(|r| r.id == vacant).unwrap().shared.store.get(&id).unwrap().unwrap();
    let original = s.shards().nth(MISSING).unwrap().1.to_vec();
    assert!(kept.shards.iter().any(|(i, b)| usize::from(*i) == MISSING && b[..] == original[..]));
    let rebuilt: u64 = net.iter().map(|r| r.shared.metrics.repair_bytes_in.get()).sum();
    assert!(rebuilt > 0, "the rebuild fetched shards over the network");
}

/// A full group of six loses a member (its node stops: connections close, it answers
/// nothing): once the member's grace is over, the group orders its index rebuilt on the
/// next relay by distance, which had nothing of the stripe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_of_a_member_that_left_is_rebuilt_on_the_next_relay() {
    let mut net = relays(8, Duration::from_millis(500)).await;
    let s = stripe(2);
    let id = s.id();
    let order: Vec<PeerId> = ranked(&net, &id).iter().map(|r| r.id).collect();
    for (i, (_, shard)) in s.shards().enumerate() {
        net.iter().find(|r| r.id == order[i]).unwrap().shared.store.put(s.header_bytes(), shard).unwrap();
    }
    const LEAVER: usize = 1;
    net.iter_mut().find(|r| r.id == order[LEAVER]).unwrap().stop();
    let next = order[6];
    // The grace is at least 5 s (RepairConfig::new); the rebuild follows within rounds.
    wait_for(Duration::from_secs(60), "the leaver's index to be rebuilt on the next relay", || {
        holdings(&net, &id).iter().any(|(p, held)| *p == next && held == &[LEAVER as u8])
    })
    .await;
    let live: Vec<(PeerId, Vec<u8>)> =
        holdings(&net, &id).into_iter().filter(|(p, _)| *p != order[LEAVER]).collect();
    let all: BTreeSet<u8> = live.iter().flat_map(|(_, i)| i.iter().copied()).collect();
    assert_eq!(all, (0..6).collect::<BTreeSet<u8>>(), "{live:?}");
    assert!(live.iter().all(|(_, i)| i.len() <= 1), "a relay holds two shards: {live:?}");
}
