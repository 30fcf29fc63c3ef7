//! Relay benchmark: `cargo run --release -p kura-relay --example relay_bench`.
//!
//! Starts one real `kura-relay` process on 127.0.0.1 and drives it from 100 native clients
//! (each its own libp2p swarm and TCP connection) in this process:
//! 1. stores: every client stores distinct 256 KiB shards, one per stripe, as fast as the
//!    relay answers;
//! 2. fetches: every client fetches random held stripes in a closed loop for a while;
//! 3. latency at a fixed offered load of 500 fetches/s (open loop), p50 / p99;
//! 4. resident memory of the idle relay, and per idle connection (100 more clients that
//!    connect and do nothing).
//!
//! The last line is one JSON object with the figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_core::encoder::encode_single_chunk;
use kura_core::wire::{Request, Response};
use kura_core::{EncodeOptions, Params};
use kura_p2p::client::StoreClient;
use kura_tests::relay::RelayProc;
use kura_tests::{pseudo_random, Scratch};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let clients_n = env("KURA_BENCH_CLIENTS", 100);
    let stripes_n = env("KURA_BENCH_STRIPES", 1200);
    let secs = env("KURA_BENCH_SECONDS", 10) as u64;
    let dir = Scratch::new("relay-bench").unwrap();
    // The relay binary of the same build as this example.
    let bin = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("kura-relay");
    let relay = RelayProc::spawn_bin(&bin, &dir.path().join("relay"), &["--quota", "100G"]).unwrap();
    let pid = relay.pid();
    let addr: libp2p::Multiaddr = relay.addr("/tcp/").unwrap().parse().unwrap();
    // Give the relay a moment to settle before measuring its idle footprint.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kib = rss_kib(pid);

    println!("preparing {stripes_n} stripes (1 MiB chunk, k=4: 256 KiB shards)");
    let opts = EncodeOptions { params: Params::new(4, 2).unwrap(), ..EncodeOptions::default() };
    let shards: Vec<(Vec<u8>, Vec<u8>, kura_core::StripeId)> = (0..stripes_n)
        .map(|i| {
            let (s, _) = encode_single_chunk(&opts, &pseudo_random(1 << 20, i as u64 + 1)).unwrap();
            (s.header_bytes().to_vec(), s.shard(i % 6).to_vec(), s.id())
        })
        .collect();
    let shard_len = shards[0].1.len();
    let shards = Arc::new(shards);

    let mut clients = Vec::new();
    for _ in 0..clients_n {
        clients.push(StoreClient::connect(addr.clone()).await.unwrap());
    }
    println!("{clients_n} clients connected over TCP");

    // 1. Stores.
    let t = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in &clients {
        let (c, shards, next) = (c.clone(), shards.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((h, s, _)) = shards.get(i) else { break };
                let r = c.request(Request::Store { header: h.clone(), shard: s.clone() }).await.unwrap();
                assert!(matches!(r, Response::Stored { .. }), "{r:?}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let store_secs = t.elapsed().as_secs_f64();
    let store_rps = stripes_n as f64 / store_secs;
    println!(
        "stores: {stripes_n} x {shard_len} B in {store_secs:.2} s = {store_rps:.0}/s, {:.0} MB/s",
        store_rps * shard_len as f64 / 1e6
    );

    // 2. Fetches, closed loop.
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (n, c) in clients.iter().enumerate() {
        let (c, shards, done) = (c.clone(), shards.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = n * 7919;
            while Instant::now() < deadline {
                i = (i + 104_729) % shards.len();
                let r = c.request(Request::Fetch { stripe: shards[i].2 }).await.unwrap();
                assert!(matches!(&r, Response::Shards { shards, .. } if shards.len() == 1), "{r:?}");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let t = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    let fetch_rps = done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    println!(
        "fetches (closed loop, {clients_n} clients): {fetch_rps:.0}/s, {:.0} MB/s",
        fetch_rps * shard_len as f64 / 1e6
    );

    // 3. Fixed offered load: one fetch every 2 ms, spread over the clients.
    let rate = env("KURA_BENCH_RATE", 500);
    let total = rate * secs as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for k in 0..total {
        let when = start + interval * k as u32;
        tokio::time::sleep_until(when.into()).await;
        let c = clients[k % clients.len()].clone();
        let id = shards[(k * 31) % shards.len()].2;
        tasks.push(tokio::spawn(async move {
            let r = c.request(Request::Fetch { stripe: id }).await.unwrap();
            assert!(matches!(r, Response::Shards { .. }));
            // Latency from the scheduled send time, so queueing delay counts.
            when.elapsed()
        }));
    }
    let mut lat = Vec::with_capacity(total);
    for t in tasks {
        lat.push(t.await.unwrap());
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    let (p50, p99) = (pct(0.50), pct(0.99));
    println!("latency at {rate} fetches/s offered: p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms", pct(1.0));

    // 4. Memory per idle connection, on a fresh relay (the first one's allocator keeps the
    // memory the traffic above used, which new connections would reuse unseen).
    drop(clients);
    let fresh = RelayProc::spawn_bin(&bin, &dir.path().join("fresh"), &[]).unwrap();
    let fresh_addr: libp2p::Multiaddr = fresh.addr("/tcp/").unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(fresh.pid());
    let mut idle = Vec::new();
    for _ in 0..clients_n {
        idle.push(StoreClient::connect(fresh_addr.clone()).await.unwrap());
    }
    // One request each, so every connection has its streams and buffers set up, then idle.
    for c in &idle {
        let r = c.request(Request::Holds { stripes: vec![] }).await.unwrap();
        assert!(matches!(r, Response::Held { .. }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(fresh.pid());
    let per_conn = after.saturating_sub(before) as f64 / clients_n as f64;
    println!("fresh relay RSS: {before} KiB idle, {after} KiB with {clients_n} idle connections: {per_conn:.1} KiB each");
    println!("first relay RSS after the load above: {} KiB", rss_kib(pid));
    println!(
        "targets: fetches/s >= 1000: {}; p99 <= 50 ms at 500/s: {}; <= 100 KiB per idle connection: {}",
        fetch_rps >= 1000.0,
        p99 <= 50.0,
        per_conn <= 100.0
    );
    drop(idle);
    println!(
        "{{\"store_per_s\": {store_rps:.0}, \"fetch_per_s\": {fetch_rps:.0}, \"p50_ms\": {p50:.2}, \"p99_ms\": {p99:.2}, \"idle_rss_kib\": {idle_kib}, \"kib_per_idle_connection\": {per_conn:.1}}}"
    );
}
