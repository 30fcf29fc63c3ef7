//! End-to-end tests of storage abuse against real `kura-relay` processes on 127.0.0.1: one
//! peer flooding a relay with stores, stores sent to relays outside a stripe's close group,
//! and a "poison" stripe whose header names a shard that can never be rebuilt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_core::encoder::encode_single_chunk;
use kura_core::placement::{by_distance, DhtKey};
use kura_core::wire::{ErrorCode, Request, Response};
use kura_core::{EncodeOptions, Params, ShardId, Stripe, StripeId};
use kura_p2p::client::StoreClient;
use kura_tests::relay::{wait_for, RelayProc};
use kura_tests::{pseudo_random, Scratch};
use libp2p::PeerId;
use std::path::Path;
use std::time::Duration;

/// The relay binary cargo built for these tests.
const RELAY: &str = env!("CARGO_BIN_EXE_kura-relay");

fn spawn(dir: &Path, extra: &[&str]) -> RelayProc {
    RelayProc::spawn_bin(Path::new(RELAY), dir, extra).unwrap()
}

fn stripe(len: usize, seed: u64, k: usize, m: usize) -> Stripe {
    let opts = EncodeOptions { params: Params::new(k, m).unwrap(), ..EncodeOptions::default() };
    encode_single_chunk(&opts, &pseudo_random(len, seed)).unwrap().0
}

async fn client(relay: &RelayProc) -> StoreClient {
    StoreClient::connect(relay.addr("/tcp/").unwrap().parse().unwrap()).await.unwrap()
}

async fn store(c: &StoreClient, header: &[u8], shard: &[u8]) -> Response {
    c.request(Request::Store { header: header.to_vec(), shard: shard.to_vec() }).await.unwrap()
}

/// Starts `n` relays bootstrapped from the first, and waits until every relay has every
/// other in its routing table (and so counts it as a live relay).
fn network(dir: &Scratch, n: usize, extra: &[&str]) -> Vec<RelayProc> {
    let first = spawn(&dir.path().join("r0"), extra);
    let boot = first.addr("/tcp/").unwrap();
    let mut args = extra.to_vec();
    args.extend(["--bootstrap", &boot]);
    let mut relays = vec![first];
    for i in 1..n {
        relays.push(spawn(&dir.path().join(format!("r{i}")), &args));
    }
    for r in &relays {
        wait_for(Duration::from_secs(90), "every relay to know every other", || {
            let s = r.json("/status").ok()?;
            let table = s["routing_table"].as_array()?.len();
            (table >= n - 1).then_some(())
        })
        .unwrap();
    }
    relays
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_flood_hits_the_flooders_allowance_while_others_keep_storing() {
    let dir = Scratch::new("abuse-flood").unwrap();
    // 2 MiB at once, then 256 KiB/s, per peer.
    let r = spawn(&dir.path().join("r"), &["--peer-store-burst", "2M", "--peer-store-rate", "256K"]);
    let flooder = client(&r).await;
    let mut stored = 0u64;
    let mut refusal = None;
    let started = std::time::Instant::now();
    for n in 0..40 {
        let s = stripe(1 << 20, n, 4, 2);
        match store(&flooder, s.header_bytes(), s.shard(0)).await {
            Response::Stored { .. } => stored += (s.shard(0).len() + s.header_bytes().len()) as u64,
            other => {
                refusal = Some(other);
                break;
            }
        }
    }
    let refusal = refusal.expect("the flooder was stopped");
    eprintln!("the flooder stored {stored} bytes, then: {refusal:?}");
    assert!(
        matches!(&refusal, Response::Error { code: ErrorCode::Busy, detail } if detail.contains("allowance"))
    );
    // The burst, what the rate gave back meanwhile, and the one store that crossed the line.
    let allowed =
        (2 << 20) as f64 + (256 << 10) as f64 * started.elapsed().as_secs_f64() + (300 << 10) as f64;
    assert!((stored as f64) <= allowed, "about the allowance and no more: {stored} of {allowed}");
    assert!(stored >= 1 << 20, "the burst was given: {stored}");
    // Another peer (another identity) stores as if nothing happened.
    let honest = client(&r).await;
    for n in 100..106 {
        let s = stripe(1 << 20, n, 4, 2);
        assert_eq!(store(&honest, s.header_bytes(), s.shard(1)).await, Response::Stored { index: 1 });
    }
    assert!(r.metric("kura_refused_requests_total{kind=\"store\"}").unwrap() >= 1.0);
    eprintln!("{}", r.usage_line("a store flood"));
}

/// A handover (the store a relay leaving a stripe's group sends to a vacant member) from a
/// peer that is not a relay is refused, and stores nothing: it would otherwise pass around
/// the close-group rule and the per-peer allowance that stores are held to.
#[tokio::test(flavor = "multi_thread")]
async fn a_stranger_cannot_store_by_handing_over() {
    let dir = Scratch::new("abuse-handover").unwrap();
    let r = spawn(&dir.path().join("r"), &[]);
    let stranger = client(&r).await;
    let s = stripe(100_000, 7, 4, 2);
    let req = Request::Handover { header: s.header_bytes().to_vec(), shard: s.shard(0).to_vec() };
    let got = stranger.request(req).await.unwrap();
    eprintln!("a stranger's handover: {got:?}");
    assert!(matches!(&got, Response::Error { code: ErrorCode::NotInGroup, .. }), "{got:?}");
    let fetched = stranger.request(Request::Fetch { stripe: s.id() }).await.unwrap();
    assert!(matches!(&fetched, Response::Error { code: ErrorCode::NotFound, .. }), "{fetched:?}");
    assert_eq!(r.metric("kura_refused_requests_total{kind=\"handover\"}").unwrap(), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn stores_are_taken_only_by_the_stripes_close_group() {
    let dir = Scratch::new("abuse-group").unwrap();
    // k = 2, m = 1: n = 3, so a relay with n + 4 = 7 live relays closer refuses.
    let relays = network(&dir, 8, &[]);
    let s = stripe(50_000, 7, 2, 1);
    let key = DhtKey::of_stripe(&s.id());
    let peers: Vec<(usize, DhtKey)> = relays
        .iter()
        .enumerate()
        .map(|(i, r)| (i, DhtKey::of(&r.peer_id.parse::<PeerId>().unwrap().to_bytes())))
        .collect();
    let order = by_distance(&key, peers);
    let (closest, farthest) = (&relays[order[0]], &relays[order[7]]);
    let far = store(&client(farthest).await, s.header_bytes(), s.shard(0)).await;
    assert!(matches!(&far, Response::Error { code: ErrorCode::NotInGroup, .. }), "{far:?}");
    let near = store(&client(closest).await, s.header_bytes(), s.shard(0)).await;
    assert_eq!(near, Response::Stored { index: 0 });
    // Stripes whose shape would make the network multiply an upload are refused anywhere.
    let wide = stripe(50_000, 8, 2, 10);
    let r = store(&client(closest).await, wide.header_bytes(), wide.shard(0)).await;
    assert!(
        matches!(&r, Response::Error { code: ErrorCode::Malformed, detail } if detail.contains("not taken")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stripe_whose_rebuild_cannot_succeed_is_given_up() {
    let dir = Scratch::new("abuse-poison").unwrap();
    let relays = network(&dir, 3, &["--repair-interval", "1", "--repair-grace", "5"]);
    // A k = 2, m = 1 stripe whose header names, for index 2, a shard that does not exist:
    // shards 0 and 1 are real, and a rebuild of 2 from them never matches its address.
    let s = stripe(50_000, 9, 2, 1);
    let mut header = s.header_bytes().to_vec();
    let at = header.len() - 32;
    header[at..].copy_from_slice(ShardId::of(b"a shard nobody has").as_bytes());
    let poison = StripeId::of(&header);
    assert_eq!(store(&client(&relays[0]).await, &header, s.shard(0)).await, Response::Stored { index: 0 });
    assert_eq!(store(&client(&relays[1]).await, &header, s.shard(1)).await, Response::Stored { index: 1 });
    // The third relay is ordered to rebuild index 2, fails every time, and gives up.
    let given_up = wait_for(Duration::from_secs(120), "the poison stripe to be given up", || {
        let total: f64 = relays.iter().map(|r| r.metric("kura_repair_given_up_stripes").unwrap()).sum();
        (total >= 1.0).then_some(total)
    })
    .unwrap();
    eprintln!("poison stripe {poison}: given up by {given_up} relay(s)");
    let failed = |r: &RelayProc| r.metric("kura_repair_events_total{kind=\"rebuild_failed\"}").unwrap();
    let before: f64 = relays.iter().map(failed).sum();
    let rounds = |r: &RelayProc| r.json("/repair").unwrap()["report"]["rounds"].as_u64().unwrap();
    let start = rounds(&relays[0]);
    wait_for(Duration::from_secs(60), "five more repair rounds", || {
        (rounds(&relays[0]) >= start + 5).then_some(())
    })
    .unwrap();
    let after: f64 = relays.iter().map(failed).sum();
    assert_eq!(after, before, "no more rebuilds are tried once it is given up");
    // What was stored is still there and served.
    let got = client(&relays[0]).await.request(Request::Fetch { stripe: poison }).await.unwrap();
    assert!(matches!(got, Response::Shards { .. }), "{got:?}");
}
