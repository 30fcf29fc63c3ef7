//! Transport floor: what the storage protocol's transport alone costs on this machine, with
//! nothing else running — no erasure coding, no encryption of the file, no Kademlia, no
//! verification, no disk. One client process and `KURA_BENCH_RELAYS` (6) server processes
//! on 127.0.0.1, connected as `kura` and `kura-relay` are (`kura_p2p::transport::tcp`:
//! TCP, noise, yamux; request-response with the storage codec, frames written whole). The client sends the
//! `Store` requests a put of a `KURA_BENCH_MIB` (256) MiB file at k=4, m=2 sends (one
//! 1 MiB-chunk stripe = 6 shards of 262,148 bytes, 8 stripes in flight) and the servers
//! answer `Stored` without keeping anything; then it sends one `Fetch` per data shard and
//! the servers answer a shard from memory, as a get of that file reads (16 stripes in
//! flight).
//!
//! Printed next to the pipeline benchmark run in the same process: the file's throughput
//! through the bare transport, as a share of the pipeline's encode and decode — the ceiling
//! for `net_bench`'s put and get on this machine, whatever the client and relays do.
//!
//! `cargo run --release -p kura-client --example transport_floor`
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../core/examples/bench/common.rs"]
#[allow(dead_code)]
mod common;

use futures::StreamExt;
use kura_core::wire::{Request, Response};
use kura_core::StripeId;
use kura_p2p::protocol::{StoreCodec, PROTOCOL};
use kura_p2p::transport::Framing;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Bytes of one shard of a 1 MiB chunk at k=4: a quarter of its ciphertext (chunk + tag),
/// rounded up.
const SHARD: usize = ((1 << 20) + 16usize).div_ceil(4);
/// Bytes of a stripe header at k=4, m=2: 12 fixed and a 32-byte address per shard.
const HEADER: usize = 12 + 32 * 6;

type Rr = request_response::Behaviour<StoreCodec>;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn swarm(support: ProtocolSupport) -> Swarm<Rr> {
    let cfg = request_response::Config::default()
        .with_request_timeout(Duration::from_secs(60))
        .with_max_concurrent_streams(1024);
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(kura_p2p::transport::tcp)
        .unwrap()
        .with_behaviour(|_| Rr::with_codec(StoreCodec::new(Framing::Whole), [(PROTOCOL, support)], cfg))
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// A server: answers `Store` with `Stored` and `Fetch` with one shard held in memory.
async fn serve() {
    let mut sw = swarm(ProtocolSupport::Inbound);
    sw.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
    let held = vec![7u8; SHARD];
    let header = vec![1u8; HEADER];
    loop {
        match sw.select_next_some().await {
            SwarmEvent::NewListenAddr { address, .. } => {
                println!("{address}/p2p/{}", sw.local_peer_id());
            }
            SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Request { request, channel, .. },
                ..
            }) => {
                let answer = match request {
                    Ok(Request::Store { .. }) => Response::Stored { index: 0 },
                    Ok(Request::Fetch { .. }) => {
                        Response::Shards { header: header.clone(), shards: vec![held.clone().into()] }
                    }
                    _ => Response::Accepted,
                };
                let _ = sw.behaviour_mut().send_response(channel, answer);
            }
            _ => {}
        }
    }
}

/// (user + system) CPU seconds of a process, from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
    (f[11] + f[12]) / 100.0
}

struct Servers {
    children: Vec<Child>,
    addrs: Vec<Multiaddr>,
}

impl Servers {
    fn start(n: usize) -> Self {
        let me = std::env::current_exe().unwrap();
        let mut children = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..n {
            let mut child = Command::new(&me).arg("serve").stdout(Stdio::piped()).spawn().unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
            addrs.push(line.trim().parse().unwrap());
            children.push(child);
        }
        Self { children, addrs }
    }

    fn cpu(&self) -> f64 {
        self.children.iter().map(|c| cpu_secs(c.id())).sum()
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends `requests` (to peer, request) keeping `in_flight` outstanding; returns the bytes of
/// shards received. Panics on any failure: the floor only means something if all arrive.
async fn exchange(sw: &mut Swarm<Rr>, mut requests: VecDeque<(PeerId, Request)>, in_flight: usize) -> usize {
    let mut outstanding = 0;
    let mut received = 0;
    loop {
        while outstanding < in_flight {
            let Some((peer, req)) = requests.pop_front() else { break };
            sw.behaviour_mut().send_request(&peer, Ok(req));
            outstanding += 1;
        }
        if outstanding == 0 {
            return received;
        }
        match sw.select_next_some().await {
            SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Response { response, .. },
                ..
            }) => {
                outstanding -= 1;
                match response {
                    Response::Stored { .. } => {}
                    Response::Shards { shards, .. } => {
                        received += shards.iter().map(|s| s.len()).sum::<usize>()
                    }
                    other => panic!("unexpected answer {other:?}"),
                }
            }
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure { error, .. }) => {
                panic!("request failed: {error}")
            }
            _ => {}
        }
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(serve());
        return;
    }
    let mib = env("KURA_BENCH_MIB", 256);
    let relays = env("KURA_BENCH_RELAYS", 6);
    let (k, m) = (4, 2);
    let stripes = mib; // one 1 MiB chunk per stripe
    let file = (mib << 20) as f64;

    let start = Instant::now();
    let figures = common::run(&move || start.elapsed().as_secs_f64(), 64 << 20, 3);
    let fig = |name: &str| figures.iter().find(|(n, _)| *n == name).unwrap().1;
    let (encode, decode) = (fig("kura_encode"), fig("kura_decode"));

    let servers = Servers::start(relays);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (put, get) = rt.block_on(async {
        let mut sw = swarm(ProtocolSupport::Outbound);
        let mut peers = Vec::new();
        for a in &servers.addrs {
            let Some(libp2p::multiaddr::Protocol::P2p(p)) = a.iter().last() else { unreachable!() };
            sw.dial(a.clone()).unwrap();
            peers.push(p);
        }
        let mut connected = 0;
        while connected < peers.len() {
            match sw.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => connected += 1,
                SwarmEvent::OutgoingConnectionError { error, .. } => panic!("dial failed: {error}"),
                _ => {}
            }
        }
        let header = vec![1u8; HEADER];
        let shard = vec![9u8; SHARD];

        // Put: every shard of every stripe, to a relay picked round-robin, as the client's
        // 8 stripes in flight keep about 48 stores outstanding.
        let stores: VecDeque<_> = (0..stripes * (k + m))
            .map(|i| {
                let req = Request::Store { header: header.clone(), shard: shard.clone() };
                (peers[i % peers.len()], req)
            })
            .collect();
        let (cpu0, t0) = (servers.cpu() + cpu_secs(std::process::id()), Instant::now());
        exchange(&mut sw, stores, 8 * (k + m)).await;
        let put = (t0.elapsed().as_secs_f64(), servers.cpu() + cpu_secs(std::process::id()) - cpu0);

        // Get: k shards per stripe, 16 stripes in flight.
        let fetches: VecDeque<_> = (0..stripes * k)
            .map(|i| (peers[i % peers.len()], Request::Fetch { stripe: StripeId::of(&i.to_le_bytes()) }))
            .collect();
        let (cpu0, t0) = (servers.cpu() + cpu_secs(std::process::id()), Instant::now());
        let got = exchange(&mut sw, fetches, 16 * k).await;
        assert_eq!(got, stripes * k * SHARD, "every fetch answered with a whole shard");
        let get = (t0.elapsed().as_secs_f64(), servers.cpu() + cpu_secs(std::process::id()) - cpu0);
        (put, get)
    });
    drop(servers);

    println!(
        "transport floor: {mib} MiB file, k={k} m={m}, {relays} servers answering from memory on 127.0.0.1"
    );
    println!("pipeline benchmark (same process): encode {encode:8.1} MB/s   decode {decode:8.1} MB/s");
    println!("               file MB/s   vs pipeline   wall s   CPU s (client + servers)");
    for (name, (secs, cpu), reference) in [("put (stores)", put, encode), ("get (fetches)", get, decode)] {
        let mbps = file / secs / 1e6;
        println!("{name:<14} {mbps:10.1} {:12.1}% {secs:8.2} {cpu:8.2}", 100.0 * mbps / reference);
    }
}
