//! End-to-end tests with real `kura-relay` processes on 127.0.0.1, real libp2p connections
//! and real disks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_core::encoder::encode_single_chunk;
use kura_core::wire::{ErrorCode, Request, Response, MAX_FRAME_BODY};
use kura_core::{EncodeOptions, Params, ShardId, Stripe, StripeId};
use kura_p2p::client::StoreClient;
use kura_tests::relay::{wait_for, RelayProc};
use kura_tests::{pseudo_random, Scratch};
use std::time::Duration;

/// The relay binary cargo built for these tests.
const RELAY: &str = env!("CARGO_BIN_EXE_kura-relay");

fn spawn(dir: &std::path::Path, extra: &[&str]) -> RelayProc {
    RelayProc::spawn_bin(std::path::Path::new(RELAY), dir, extra).unwrap()
}

fn stripe(len: usize, seed: u64) -> Stripe {
    let opts = EncodeOptions { params: Params::new(4, 2).unwrap(), ..EncodeOptions::default() };
    encode_single_chunk(&opts, &pseudo_random(len, seed)).unwrap().0
}

async fn client(relay: &RelayProc, transport: &str) -> StoreClient {
    StoreClient::connect(relay.addr(transport).unwrap().parse().unwrap()).await.unwrap()
}

/// Stores shard `i` of `s` (a relay keeps one shard of a stripe).
async fn store_one(c: &StoreClient, s: &Stripe, i: usize) {
    let r = c.request(Request::Store { header: s.header_bytes().to_vec(), shard: s.shard(i).to_vec() }).await;
    assert_eq!(r.unwrap(), Response::Stored { index: i as u8 });
}

/// Fetches a stripe and checks every shard returned against its header.
async fn fetch_verified(c: &StoreClient, s: &Stripe) -> Vec<usize> {
    match c.request(Request::Fetch { stripe: s.id() }).await.unwrap() {
        Response::Shards { header, shards } => {
            assert_eq!(header, s.header_bytes());
            let mut idx: Vec<usize> = shards
                .iter()
                .map(|b| s.header().index_of(&ShardId::of(b)).expect("shard of this stripe"))
                .collect();
            idx.sort_unstable();
            idx
        }
        other => panic!("expected shards, got {other:?}"),
    }
}

fn code_of(r: &Response) -> Option<ErrorCode> {
    match r {
        Response::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[test]
fn three_relays_find_each_other_through_one_bootstrap_address() {
    let dir = Scratch::new("relay-kad").unwrap();
    let a = spawn(&dir.path().join("a"), &[]);
    let boot = a.addr("/tcp/").unwrap();
    let b = spawn(&dir.path().join("b"), &["--bootstrap", &boot]);
    let c = spawn(&dir.path().join("c"), &["--bootstrap", &boot]);
    for (me, others) in [(&a, [&b, &c]), (&b, [&a, &c]), (&c, [&a, &b])] {
        wait_for(Duration::from_secs(60), "routing tables to fill", || {
            let s = me.json("/status").ok()?;
            let table: Vec<&str> = s["routing_table"].as_array()?.iter().filter_map(|v| v.as_str()).collect();
            others.iter().all(|o| table.contains(&o.peer_id.as_str())).then_some(())
        })
        .unwrap();
    }
}

/// A relay keeps what it knows of the others' comings and goings (the records that earn a
/// relay the long repair grace) in its data directory when it stops, and takes them back
/// when it starts: restarted alone, it still holds its record of the relay it met.
#[test]
fn a_relay_keeps_its_records_of_other_relays_across_a_restart() {
    let dir = Scratch::new("relay-records").unwrap();
    let data = dir.path().join("a");
    let a = spawn(&data, &[]);
    let boot = a.addr("/tcp/").unwrap();
    let b = spawn(&dir.path().join("b"), &["--bootstrap", &boot]);
    let records = |r: &RelayProc, what: &str| r.json("/repair").ok()?["records"][what].as_u64();
    wait_for(Duration::from_secs(60), "relay a to record relay b", || {
        (records(&a, "held")? >= 1).then_some(())
    })
    .unwrap();
    assert_eq!(records(&a, "restored"), Some(0), "a first start takes nothing back");
    assert!(a.terminate().unwrap().success());
    let kept: Vec<(String, serde_json::Value)> =
        serde_json::from_slice(&std::fs::read(data.join("liveness.json")).unwrap()).unwrap();
    let of_b = kept.iter().find(|(p, _)| *p == b.peer_id).map(|(_, k)| k.clone());
    assert!(of_b.as_ref().is_some_and(|k| k["up"].as_u64() <= k["known"].as_u64()), "{kept:?}");
    assert!(b.terminate().unwrap().success());

    let a = spawn(&data, &[]);
    assert_eq!(records(&a, "restored"), Some(kept.len() as u64));
    assert!(records(&a, "held") >= Some(1), "b's record is held though b is gone");
    // A damaged file is reported and skipped: the relay starts all the same.
    assert!(a.terminate().unwrap().success());
    std::fs::write(data.join("liveness.json"), b"[[").unwrap();
    let a = spawn(&data, &[]);
    assert_eq!(records(&a, "restored"), Some(0));
    assert!(a.terminate().unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn stores_and_fetches_over_tcp_quic_websocket_and_webrtc_direct() {
    let dir = Scratch::new("relay-transports").unwrap();
    let r = spawn(&dir.path().join("r"), &[]);
    // WebRTC-direct is what browsers dial (with the certhash from /bootstrap); here a native
    // WebRTC client checks that the listener serves the storage protocol too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    for (n, t) in ["/tcp/", "/quic-v1", "/ws", "/webrtc-direct"].into_iter().enumerate() {
        let c = client(&r, t).await;
        let s = stripe(1 << 20, n as u64);
        store_one(&c, &s, n).await;
        assert_eq!(fetch_verified(&c, &s).await, vec![n], "{t}");
        let held =
            c.request(Request::Holds { stripes: vec![s.id(), StripeId::from_bytes([9; 32])] }).await.unwrap();
        assert_eq!(held, Response::Held { held: vec![(s.id(), vec![n as u8].into())] }, "{t}");
        let missing = c.request(Request::Fetch { stripe: StripeId::from_bytes([1; 32]) }).await.unwrap();
        assert_eq!(code_of(&missing), Some(ErrorCode::NotFound), "{t}");
    }
    let status = r.json("/status").unwrap();
    assert_eq!(status["shards"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_peer_id_certhash_and_shards_and_disk_corruption_is_caught() {
    let dir = Scratch::new("relay-restart").unwrap();
    let data = dir.path().join("r");
    let r = spawn(&data, &[]);
    let certhash = |r: &RelayProc| {
        let a = r.addr("/webrtc-direct").unwrap();
        a[a.find("/certhash/").expect("certhash in the address")..].split('/').nth(2).unwrap().to_owned()
    };
    let (peer, hash) = (r.peer_id.clone(), certhash(&r));
    let s = stripe(300_000, 1);
    store_one(&client(&r, "/tcp/").await, &s, 1).await;
    let status = r.terminate().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}");

    let r = spawn(&data, &[]);
    assert_eq!(r.peer_id, peer);
    assert_eq!(certhash(&r), hash);
    let c = client(&r, "/tcp/").await;
    assert_eq!(fetch_verified(&c, &s).await, vec![1]);
    let bootstrap = r.json("/bootstrap").unwrap();
    assert_eq!(bootstrap["peer_id"], peer.as_str());
    assert!(bootstrap["addrs"].as_array().unwrap().iter().any(|a| a.as_str().unwrap().contains(&hash)));

    // Change one byte of shard 1 on disk: the relay refuses it with the bad-hash code.
    let hex = s.header().shards()[1].to_hex();
    let path = data.join("store").join("shards").join(&hex[..2]).join(&hex);
    let mut b = std::fs::read(&path).unwrap();
    b[100] ^= 1;
    std::fs::write(&path, b).unwrap();
    let r1 = c.request(Request::Fetch { stripe: s.id() }).await.unwrap();
    assert_eq!(code_of(&r1), Some(ErrorCode::BadHash), "{r1:?}");
    // The bad shard is gone: the relay no longer claims it.
    let gone = c.request(Request::Fetch { stripe: s.id() }).await.unwrap();
    assert_eq!(code_of(&gone), Some(ErrorCode::NotFound), "{gone:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_peers_get_error_codes_while_a_good_client_is_served() {
    let dir = Scratch::new("relay-bad").unwrap();
    let r = spawn(&dir.path().join("r"), &[]);
    let good = client(&r, "/tcp/").await;
    let bad = client(&r, "/quic-v1").await;
    // The good client stores and fetches stripes the whole time.
    let worker = tokio::spawn(async move {
        for n in 0..12 {
            let s = stripe(200_000, 100 + n);
            store_one(&good, &s, n as usize % 6).await;
            assert_eq!(fetch_verified(&good, &s).await, vec![n as usize % 6]);
        }
    });
    let s = stripe(100_000, 7);
    let other = stripe(100_000, 8);
    for round in 0..5 {
        // Garbage frame body.
        let mut garbage = 9u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0xff; 9]);
        assert_eq!(code_of(&bad.raw(garbage).await.unwrap()), Some(ErrorCode::Malformed), "round {round}");
        // A request kind from a newer protocol version.
        let mut newer = 3u32.to_be_bytes().to_vec();
        newer.extend_from_slice(&[100, 0, 0]);
        assert_eq!(code_of(&bad.raw(newer).await.unwrap()), Some(ErrorCode::UnsupportedVersion));
        // Oversized: refused from the prefix alone.
        let huge = ((MAX_FRAME_BODY + 1) as u32).to_be_bytes().to_vec();
        assert_eq!(code_of(&bad.raw(huge).await.unwrap()), Some(ErrorCode::TooLarge));
        // A shard that is not part of its header.
        let wrong = Request::Store { header: s.header_bytes().to_vec(), shard: other.shard(0).to_vec() };
        assert_eq!(code_of(&bad.request(wrong).await.unwrap()), Some(ErrorCode::BadHash));
        // A damaged header.
        let mut h = s.header_bytes().to_vec();
        h[0] = 7;
        let broken = Request::Store { header: h, shard: s.shard(0).to_vec() };
        assert_eq!(code_of(&bad.request(broken).await.unwrap()), Some(ErrorCode::Malformed));
        // A second shard of a stripe already held here.
        let _ = bad
            .request(Request::Store { header: s.header_bytes().to_vec(), shard: s.shard(0).to_vec() })
            .await;
        let second = Request::Store { header: s.header_bytes().to_vec(), shard: s.shard(1).to_vec() };
        assert_eq!(code_of(&bad.request(second).await.unwrap()), Some(ErrorCode::AlreadyHeld));
    }
    worker.await.expect("the good client was served throughout");
    let metrics = r.get("/metrics").unwrap().1;
    assert!(metrics.contains("kura_request_errors_total{kind=\"invalid\",code=\"7\"} 5"), "{metrics}");
    assert!(metrics.contains("kura_request_errors_total{kind=\"invalid\",code=\"3\"} 5"));
    assert!(metrics.contains("kura_request_errors_total{kind=\"store\",code=\"2\"} 5"));
    assert!(metrics.contains("kura_request_errors_total{kind=\"store\",code=\"9\"} 5"));
    assert!(metrics.contains("kura_shards_held 13"), "the good client's 12 and the bad one's 1");
}

#[tokio::test(flavor = "multi_thread")]
async fn quota_full_is_reported_and_nothing_half_written_stays() {
    let dir = Scratch::new("relay-quota").unwrap();
    let data = dir.path().join("r");
    // Free stores may fill the whole quota here: the quota itself is what is tested.
    let r = spawn(&data, &["--quota", "1M", "--free-share", "100"]);
    let c = client(&r, "/tcp/").await;
    let mut stored = 0u64;
    let mut full = None;
    for n in 0..10 {
        let s = stripe(1 << 20, 50 + n);
        let req = Request::Store { header: s.header_bytes().to_vec(), shard: s.shard(0).to_vec() };
        match c.request(req).await.unwrap() {
            Response::Stored { .. } => stored += 1,
            other => {
                full = Some(other);
                break;
            }
        }
    }
    let full = full.expect("the quota filled up");
    assert_eq!(code_of(&full), Some(ErrorCode::QuotaFull), "{full:?}");
    let status = r.json("/status").unwrap();
    assert_eq!(status["shards"].as_u64().unwrap(), stored);
    assert!(status["bytes"].as_u64().unwrap() <= 1 << 20);
    let files = walk(&data.join("store").join("shards"));
    assert_eq!(files.len() as u64, stored, "one file per stored shard, no leftovers: {files:?}");
    // A shard is written as `NAME.tmpN` and renamed: no such file may be left.
    let temporary = |f: &String| {
        std::path::Path::new(f)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.strip_prefix("tmp").is_some_and(|n| n.chars().all(|c| c.is_ascii_digit())))
    };
    assert!(!files.iter().any(temporary), "temporary files left: {files:?}");
}

/// Free stores fill only their share of the quota (half by default): beyond it they are
/// refused as unpaid, in words, and the rest of the disk stays for paid stores.
#[tokio::test(flavor = "multi_thread")]
async fn free_stores_fill_only_their_share_of_the_quota() {
    let dir = Scratch::new("relay-free-room").unwrap();
    let r = spawn(&dir.path().join("r"), &["--quota", "2M"]);
    let c = client(&r, "/tcp/").await;
    let mut stored = 0u64;
    let refused = loop {
        let s = stripe(1 << 20, 80 + stored);
        let req = Request::Store { header: s.header_bytes().to_vec(), shard: s.shard(0).to_vec() };
        match c.request(req).await.unwrap() {
            Response::Stored { .. } => stored += 1,
            other => break other,
        }
        assert!(stored < 10, "free stores never refused");
    };
    assert_eq!(code_of(&refused), Some(ErrorCode::Unpaid), "{refused:?}");
    let Response::Error { detail, .. } = &refused else { unreachable!() };
    assert!(detail.contains("room for free storage is full"), "{detail}");
    let farming = &r.json("/status").unwrap()["farming"];
    let (held, room) = (farming["free_bytes_held"].as_u64().unwrap(), farming["free_room"].as_u64().unwrap());
    assert_eq!(room, 1 << 20);
    assert!(held <= room && stored >= 3, "{stored} stored, {held} of {room} held");
    // The disk is not full: the quota would take more.
    assert!(r.json("/status").unwrap()["bytes"].as_u64().unwrap() <= (1 << 20) + 4096);
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn a_second_relay_on_the_same_data_dir_refuses() {
    let dir = Scratch::new("relay-lock").unwrap();
    let data = dir.path().join("r");
    let first = spawn(&data, &[]);
    let out = std::process::Command::new(RELAY)
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another kura-relay"), "{stderr}");
    assert_eq!(first.get("/health").unwrap(), (200, "ok\n".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn http_serves_the_page_bootstrap_and_metrics() {
    let dir = Scratch::new("relay-http").unwrap();
    let r = spawn(&dir.path().join("r"), &[]);
    let (code, page) = r.get("/").unwrap();
    assert_eq!(code, 200);
    assert!(page.contains("Kura"));
    let b = r.json("/bootstrap").unwrap();
    let addrs: Vec<&str> = b["addrs"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
    for t in ["/tcp/", "/quic-v1", "/ws", "/webrtc-direct/certhash/"] {
        assert!(
            addrs.iter().any(|a| a.contains(t) && a.ends_with(&format!("/p2p/{}", r.peer_id))),
            "{t} in {addrs:?}"
        );
    }
    // Some traffic, so that per-kind and per-transport series exist.
    let c = client(&r, "/ws").await;
    let s = stripe(1 << 20, 3);
    store_one(&c, &s, 2).await;
    fetch_verified(&c, &s).await;
    let (code, m) = r.get("/metrics").unwrap();
    assert_eq!(code, 200);
    for line in [
        "kura_shards_held 1",
        "kura_requests_total{kind=\"store\"} 1",
        "kura_requests_total{kind=\"fetch\"} 1",
        "kura_connected_peers{transport=\"websocket\"} 1",
        "kura_quota_bytes 10737418240",
        "libp2p_bandwidth_bytes_total",
    ] {
        assert!(m.contains(line), "{line} missing from /metrics:\n{m}");
    }
    let bytes = |dir: &str| {
        m.lines()
            .filter(|l| {
                l.starts_with("libp2p_bandwidth_bytes_total") && l.contains(&format!("direction=\"{dir}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let bw: Vec<&str> = m.lines().filter(|l| l.starts_with("libp2p_bandwidth")).collect();
    assert!(
        bytes("Inbound") > 150_000 && bytes("Outbound") > 100_000,
        "bytes in and out are counted: {bw:?}"
    );
    assert_eq!(r.get("/nope").unwrap().0, 404);
    // The inventory is the operator's: a stranger gets 401, the operator's token opens it.
    assert_eq!(kura_tests::relay::http_get(&r.http, "/inventory").unwrap().0, 401);
    assert_eq!(r.json("/inventory").unwrap()["stripes"].as_object().unwrap().len(), 1);
    // The operator's page is public; what it draws is the operator's.
    let (code, page) = r.get("/operator").unwrap();
    assert!(code == 200 && page.contains("data-testid=\"operator-chart\""), "{code}");
    assert_eq!(kura_tests::relay::http_get(&r.http, "/operator.json").unwrap().0, 401);
    let o = r.json("/operator.json").unwrap();
    let now = &o["now"];
    assert_eq!(
        (now["shards"].as_u64(), now["stores_free"].as_u64(), now["stores_paid"].as_u64()),
        (Some(1), Some(1), Some(0))
    );
    assert!(now["bytes"].as_u64().unwrap() > 250_000, "{now}");
    assert_eq!(o["peer_id"].as_str(), Some(r.peer_id.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_writes_in_flight_and_keeps_every_acknowledged_shard() {
    let dir = Scratch::new("relay-sigterm").unwrap();
    let data = dir.path().join("r");
    let r = spawn(&data, &[]);
    let c = client(&r, "/tcp/").await;
    // Eight writers, each storing one shard of each of six stripes.
    let stripes: Vec<Stripe> = (0..48).map(|n| stripe(1 << 20, 200 + n)).collect();
    let (tx, mut acked) = tokio::sync::mpsc::channel(64);
    let mut writers = Vec::new();
    for w in stripes.chunks(6).map(<[Stripe]>::to_vec) {
        let (c, tx) = (c.clone(), tx.clone());
        writers.push(tokio::spawn(async move {
            for (i, s) in w.iter().enumerate() {
                let req = Request::Store { header: s.header_bytes().to_vec(), shard: s.shard(i).to_vec() };
                match c.request(req).await {
                    Ok(Response::Stored { index }) => tx.send((s.id(), index)).await.unwrap(),
                    _ => break, // the relay went away
                }
            }
        }));
    }
    drop(tx);
    // Stop the relay once some writes were acknowledged and others are still running.
    let mut got = Vec::new();
    while got.len() < 10 {
        got.push(acked.recv().await.expect("writes are acknowledged"));
    }
    let status = r.terminate().unwrap();
    assert!(status.success(), "clean exit: {status}");
    for w in writers {
        w.await.unwrap();
    }
    while let Some(a) = acked.recv().await {
        got.push(a);
    }
    let r = spawn(&data, &[]);
    let c = client(&r, "/tcp/").await;
    let ids: Vec<StripeId> = stripes.iter().map(Stripe::id).collect();
    let Response::Held { held } = c.request(Request::Holds { stripes: ids }).await.unwrap() else { panic!() };
    for (stripe, index) in &got {
        let idx = held.iter().find(|(s, _)| s == stripe).map(|(_, i)| i.to_vec()).unwrap_or_default();
        assert!(idx.contains(index), "acknowledged shard {index} of {stripe} survived the restart");
    }
    let status = r.json("/status").unwrap();
    let files = walk(&data.join("store").join("shards"));
    assert_eq!(files.len() as u64, status["shards"].as_u64().unwrap(), "no orphan or partial files");
}

#[tokio::test(flavor = "multi_thread")]
async fn donating_tabs_announce_what_they_hold_and_announcements_expire() {
    let dir = Scratch::new("relay-tabs").unwrap();
    let r = spawn(&dir.path().join("r"), &["--tab-ttl", "3"]);
    let uploader = client(&r, "/tcp/").await;
    let held = stripe(100_000, 31);
    let other = stripe(100_000, 32);
    store_one(&uploader, &held, 0).await;
    // A tab (here a native peer playing one) says it holds shard 2 of the stripe and is
    // reachable through this relay; a second shard of the stripe, and a shard of a stripe
    // this relay does not hold, are not kept.
    let tab = client(&r, "/tcp/").await;
    let via = r.peer_id.parse::<libp2p::PeerId>().unwrap().to_bytes();
    let announce = |shards: Vec<(StripeId, u8)>| Request::Announce { via: via.clone(), shards, payee: None };
    let kept =
        tab.request(announce(vec![(held.id(), 2), (held.id(), 3), (other.id(), 1), (held.id(), 9)])).await;
    assert_eq!(kept.unwrap(), Response::Held { held: vec![(held.id(), vec![2].into())] });
    // A reader asks who holds the stripe: the tab, its index, the relay it is reached through.
    let reader = client(&r, "/tcp/").await;
    let holders = || async { reader.request(Request::Holders { stripe: held.id() }).await.unwrap() };
    let Response::Holders { holders: found } = holders().await else { panic!("not holders") };
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].tab.as_slice(), found[0].via.as_slice(), found[0].index),
        (tab.local.to_bytes().as_slice(), via.as_slice(), 2)
    );
    let st = r.json("/status").unwrap();
    assert_eq!(
        (st["tabs"]["known"].as_u64(), st["tabs"]["announcements"].as_u64()),
        (Some(1), Some(1)),
        "{st}"
    );
    assert_eq!(r.metric("kura_tabs_known").unwrap(), 1.0);
    // Bad input: a `via` that is no peer id.
    let bad =
        tab.request(Request::Announce { via: vec![1, 2, 3], shards: vec![], payee: None }).await.unwrap();
    assert_eq!(code_of(&bad), Some(ErrorCode::Malformed));
    // Not refreshed, the announcement expires (3 s) and the reader finds no tab.
    wait_for(Duration::from_secs(30), "the announcement to expire", || {
        let rt = tokio::runtime::Handle::current();
        let found = tokio::task::block_in_place(|| rt.block_on(holders()));
        (found == Response::Holders { holders: vec![] }).then_some(())
    })
    .unwrap();
    assert_eq!(r.json("/status").unwrap()["tabs"]["known"].as_u64(), Some(0));
    // The relay's shard is untouched by any of it.
    assert_eq!(fetch_verified(&reader, &held).await, vec![0]);
}
