//! Repair benchmark: fill a local network of `kura-relay` processes until one relay holds
//! about `KURA_BENCH_HELD_MIB` MiB, kill that relay with SIGKILL, and time until every stripe
//! is back to `n` distinct shards on `n` live relays, as the relays' own inventories
//! (`GET /inventory`) say. Prints the time, the rebuild rate, the bytes fetched per byte
//! lost (Reed-Solomon's lower bound is `k`) and the relays' CPU time.
//!
//! Run with `scripts/bench-repair.sh` (release build). Environment: `KURA_BENCH_HELD_MIB`
//! (default 1024), `KURA_BENCH_RELAYS` (default 7), `KURA_BENCH_REPAIR_RATE` (the relays'
//! `--repair-rate`, default 1G, i.e. not the limit), `KURA_BENCH_DIR` (scratch directory,
//! default the system temp directory; the input file and every shard go there).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_client::bootstrap::http_get;
use kura_client::devnet::{Devnet, DevnetConfig};
use kura_core::testdata::pseudo_random;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

async fn json(http: &str, path: &str) -> serde_json::Value {
    let body = http_get(&format!("http://{http}{path}")).await.unwrap().1;
    serde_json::from_str(&body).unwrap()
}

/// `GET path` as the relay's operator, parsed as JSON.
async fn operator_json(http: &str, path: &str, token: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(http).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap()
}

/// (user + system) CPU seconds of a process.
fn cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

/// stripe -> indices held on each live relay.
async fn inventory(net: &Devnet) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut out: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for r in &net.relays {
        let token = std::fs::read_to_string(r.dir.join("operator.token")).unwrap();
        let v = operator_json(&r.http, "/inventory", token.trim()).await;
        for (s, idx) in v["stripes"].as_object().unwrap() {
            let idx = idx.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u8).collect();
            out.entry(s.clone()).or_default().push(idx);
        }
    }
    out
}

/// Stripes not at `n` distinct shards, one per relay.
fn short(inv: &BTreeMap<String, Vec<Vec<u8>>>, stripes: &BTreeSet<String>, n: usize) -> usize {
    stripes
        .iter()
        .filter(|s| {
            let holders = inv.get(*s).map(Vec::as_slice).unwrap_or_default();
            let distinct: BTreeSet<u8> = holders.iter().flatten().copied().collect();
            !(holders.iter().all(|i| i.len() == 1) && distinct.len() == n && holders.len() == n)
        })
        .count()
}

async fn repair_bytes_in(net: &Devnet) -> u64 {
    let mut total = 0;
    for r in &net.relays {
        total += json(&r.http, "/repair").await["bytes_in"].as_u64().unwrap_or(0);
    }
    total
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let held_mib: u64 = env("KURA_BENCH_HELD_MIB", "1024").parse().unwrap();
    let relays: usize = env("KURA_BENCH_RELAYS", "7").parse().unwrap();
    let rate = env("KURA_BENCH_REPAIR_RATE", "1G");
    let (k, n) = (4usize, 6usize);
    assert!(relays > n, "repair needs more relays than shards per stripe");
    let bin_dir: PathBuf = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
    let kura = bin_dir.join("kura");
    let base = PathBuf::from(env("KURA_BENCH_DIR", &std::env::temp_dir().to_string_lossy()));
    let work = base.join(format!("kura-repair-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();

    // The shards are n/k times the file, spread evenly over the relays.
    let file_mib = (held_mib * relays as u64 * k as u64).div_ceil(n as u64);
    let file = work.join("file");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for i in 0..file_mib {
            f.write_all(&pseudo_random(1 << 20, 7_000 + i)).unwrap();
        }
    }
    println!(
        "repair benchmark: {relays} relays on 127.0.0.1, k={k} m={}, {file_mib} MiB file so that one relay \
         holds about {held_mib} MiB; repair rate limit {rate}/s",
        n - k
    );
    // The benchmark's one upload is far beyond the free allowance a relay gives one peer.
    let args = [
        "--repair-interval",
        "2",
        "--repair-grace",
        "5",
        "--repair-rate",
        &rate,
        "--quota",
        "64G",
        "--free-bytes",
        "1T",
        "--free-bytes-total",
        "1T",
    ];
    let mut cfg = DevnetConfig::ephemeral(
        relays,
        work.join("net"),
        bin_dir.join("kura-relay"),
        args.iter().map(|a| (*a).to_owned()).collect(),
    );
    // Identities from the test pool: each new one is seconds of join work.
    cfg.identities = Some(kura_client::devnet::TEST_IDENTITIES.into());
    let mut net = Devnet::start(&cfg).await.unwrap();
    let boot = net.bootstrap().unwrap().to_owned();
    let t = Instant::now();
    let out = std::process::Command::new(&kura)
        .args(["put", file.to_str().unwrap(), "--bootstrap", &boot])
        .env("HOME", &work)
        .output()
        .unwrap();
    assert!(out.status.success(), "put failed: {}", String::from_utf8_lossy(&out.stderr));
    println!("put {file_mib} MiB in {:.1} s", t.elapsed().as_secs_f64());
    std::fs::remove_file(&file).unwrap();

    let stripes: BTreeSet<String> = inventory(&net).await.into_keys().collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    while short(&inventory(&net).await, &stripes, n) > 0 {
        assert!(Instant::now() < deadline, "the upload never settled on {n} relays per stripe");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The relay holding the most goes.
    let mut most = (0, 0u64);
    for (i, r) in net.relays.iter().enumerate() {
        let b = json(&r.http, "/status").await["bytes"].as_u64().unwrap();
        if b > most.1 {
            most = (i, b);
        }
    }
    let (victim, lost) = most;
    let lost_shards = json(&net.relays[victim].http, "/status").await["shards"].as_u64().unwrap();
    let bytes_before = repair_bytes_in(&net).await;
    net.relays[victim].kill9().unwrap();
    let t0 = Instant::now();
    net.relays.remove(victim);
    let pids: Vec<u32> = net.relays.iter().map(|r| r.pid()).collect();
    let cpu0: f64 = pids.iter().map(|p| cpu(*p)).sum();
    let mut first_rebuild = None;
    loop {
        let inv = inventory(&net).await;
        let left = short(&inv, &stripes, n);
        if first_rebuild.is_none() && repair_bytes_in(&net).await > bytes_before {
            first_rebuild = Some(t0.elapsed());
        }
        if left == 0 && first_rebuild.is_some() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(3600), "{left} stripes still short after an hour");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = t0.elapsed().as_secs_f64();
    let cpu1: f64 = pids.iter().map(|p| cpu(*p)).sum();
    let fetched = repair_bytes_in(&net).await - bytes_before;
    let detect = first_rebuild.unwrap_or_default().as_secs_f64();
    println!("lost: relay {victim} with {lost_shards} shards, {:.1} MiB", lost as f64 / (1 << 20) as f64);
    println!("full redundancy again after {took:.1} s (first rebuild finished after {detect:.1} s)");
    println!(
        "rebuilt {:.1} MB/s of lost shards; fetched {:.1} MiB = {:.2} bytes per byte lost (lower bound {k})",
        lost as f64 / took / 1e6,
        fetched as f64 / (1 << 20) as f64,
        fetched as f64 / lost as f64
    );
    println!("relays' CPU during repair: {:.1} s user+system on {} cores", cpu1 - cpu0, num_cpus());
    println!(
        "{{\"held_mib\":{:.1},\"seconds_to_full\":{took:.1},\"bytes_per_byte_lost\":{:.3},\"rebuild_mb_s\":{:.1}}}",
        lost as f64 / (1 << 20) as f64,
        fetched as f64 / lost as f64,
        lost as f64 / took / 1e6
    );
    net.stop().unwrap();
    let _ = std::fs::remove_dir_all(&work);
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
