//! Network benchmark: `kura put` and `kura get` of one file through a local network of
//! `kura-relay` processes on 127.0.0.1, next to the pipeline benchmark (kura-core alone, in
//! memory) run in the same process before the put and after the get. Prints throughput, the
//! client's peak memory and where the CPU time went (client and relays, user and system).
//!
//! Run with `scripts/bench-net.sh` (release build). Environment: `KURA_BENCH_MIB` (file size,
//! default 256), `KURA_BENCH_RELAYS` (default 6), `KURA_BENCH_K` / `KURA_BENCH_M` (4 / 2),
//! `KURA_BENCH_BIG_MIB` (a second, put-only file to measure peak memory; default 1024, 0 to
//! skip).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../core/examples/bench/common.rs"]
#[allow(dead_code)]
mod common;

use kura_client::devnet::{Devnet, DevnetConfig};
use kura_core::{testdata::pseudo_random, Params};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// (user, system) CPU seconds of a process, from /proc.
fn cpu(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime is 14th, stime 15th overall.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = 100.0; // USER_HZ on Linux
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / tick;
    (get(11), get(12))
}

/// Peak resident memory (VmHWM) of a process in MiB.
fn peak_rss(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

struct Run {
    secs: f64,
    user: f64,
    sys: f64,
    peak_mib: f64,
    stdout: String,
}

/// Runs the `kura` client, sampling its CPU and peak memory from /proc until it exits.
fn run_client(kura: &Path, args: &[&str]) -> Run {
    let start = Instant::now();
    let mut child =
        Command::new(kura).args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let pid = child.id();
    let (mut user, mut sys, mut peak) = (0.0, 0.0, 0.0f64);
    loop {
        if let Some(p) = peak_rss(pid) {
            peak = peak.max(p);
            (user, sys) = cpu(pid);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = start.elapsed().as_secs_f64();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kura {args:?} failed");
    Run { secs, user, sys, peak_mib: peak, stdout: String::from_utf8(out.stdout).unwrap() }
}

fn relays_cpu(pids: &[u32]) -> (f64, f64) {
    pids.iter().map(|p| cpu(*p)).fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// The pipeline benchmark (`core/examples/pipeline_bench.rs`, the same code) in this
/// process now: its kura encode and decode figures, MB/s (64 MiB, best of 3).
fn pipeline_bench() -> (f64, f64) {
    let start = Instant::now();
    let figures = common::run(&move || start.elapsed().as_secs_f64(), 64 << 20, 3);
    let get = |k: &str| figures.iter().find(|(name, _)| *name == k).map(|(_, v)| *v).unwrap();
    (get("kura_encode"), get("kura_decode"))
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mib = env("KURA_BENCH_MIB", 256);
    let big_mib = env("KURA_BENCH_BIG_MIB", 1024);
    let relays = env("KURA_BENCH_RELAYS", 6);
    let params = Params::new(env("KURA_BENCH_K", 4), env("KURA_BENCH_M", 2)).unwrap();
    let bin_dir: PathBuf = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
    let kura = bin_dir.join("kura");
    let work = std::env::temp_dir().join(format!("kura-net-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();

    let data = pseudo_random(mib << 20, 42);
    let file = work.join("file");
    std::fs::write(&file, &data).unwrap();
    println!(
        "network benchmark: {mib} MiB file, {relays} relays on 127.0.0.1, k={} m={}",
        params.k(),
        params.m()
    );
    println!("(client, relays and every connection's encryption share this machine's {} CPUs)", num_cpus());

    // The targets compare with the pipeline benchmark in the same run; the machine's speed
    // drifts, so it runs before the put and again after the get, and the mean is the reference.
    let ref_before = pipeline_bench();
    println!(
        "pipeline benchmark before the put:  encode {:8.1} MB/s   decode {:8.1} MB/s",
        ref_before.0, ref_before.1
    );

    let cfg = DevnetConfig::ephemeral(relays, work.join("net"), bin_dir.join("kura-relay"), Vec::new());
    let net = Devnet::start(&cfg).await.unwrap();
    let boot = net.bootstrap().unwrap().to_owned();
    let pids: Vec<u32> = net.relays.iter().map(|r| r.pid()).collect();
    let kp = params.k().to_string();
    let mp = params.m().to_string();

    let before = relays_cpu(&pids);
    let put =
        run_client(&kura, &["put", file.to_str().unwrap(), "--bootstrap", &boot, "--k", &kp, "--m", &mp]);
    let after_put = relays_cpu(&pids);
    let cap = put.stdout.trim().to_owned();
    let stored = dir_size(&cfg.dir);
    let out = work.join("back");
    let get = run_client(&kura, &["get", &cap, "--bootstrap", &boot, "-o", out.to_str().unwrap()]);
    let after_get = relays_cpu(&pids);
    assert!(std::fs::read(&out).unwrap() == data, "the file came back different");
    std::fs::remove_file(&out).unwrap();

    let ref_after = pipeline_bench();
    println!(
        "pipeline benchmark after the get:   encode {:8.1} MB/s   decode {:8.1} MB/s",
        ref_after.0, ref_after.1
    );
    let (enc, dec) = ((ref_before.0 + ref_after.0) / 2.0, (ref_before.1 + ref_after.1) / 2.0);
    println!("reference (mean):                   encode {enc:8.1} MB/s   decode {dec:8.1} MB/s");

    let n = data.len();
    println!();
    println!("                 MB/s   vs pipeline   wall s   client user+sys s   relays user+sys s   client peak MiB");
    let row = |what: &str, r: &Run, reference: f64, cpu: (f64, f64)| {
        println!(
            "{what:<9}    {:8.1}   {:10.1}%   {:6.2}   {:8.2} + {:5.2}     {:8.2} + {:5.2}     {:8.1}",
            mbps(n, r.secs),
            mbps(n, r.secs) / reference * 100.0,
            r.secs,
            r.user,
            r.sys,
            cpu.0,
            cpu.1,
            r.peak_mib
        );
    };
    row("put", &put, enc, (after_put.0 - before.0, after_put.1 - before.1));
    row("get", &get, dec, (after_get.0 - after_put.0, after_get.1 - after_put.1));
    println!();
    let pipeline_put_cpu = n as f64 / 1e6 / enc;
    let pipeline_get_cpu = n as f64 / 1e6 / dec;
    let shard_bytes = n as f64 * params.n() as f64 / params.k() as f64;
    let b3 = blake3_mbps();
    println!("where the put's CPU went (seconds):");
    println!("  client pipeline (encode, at the reference)    {pipeline_put_cpu:6.2}");
    println!(
        "  client rest (libp2p: noise encryption, yamux, kad, copies)  {:6.2}",
        (put.user + put.sys - pipeline_put_cpu).max(0.0)
    );
    println!(
        "  relays: verification (BLAKE3 of {:.0} MB of shards at {b3:.0} MB/s)  {:6.2}",
        shard_bytes / 1e6,
        shard_bytes / 1e6 / b3
    );
    println!(
        "  relays: everything else in user space (noise, yamux, redb)  {:6.2}",
        (after_put.0 - before.0 - shard_bytes / 1e6 / b3).max(0.0)
    );
    println!("  relays: kernel (sockets, file writes, fsync)               {:6.2}", after_put.1 - before.1);
    println!("  stored on disk: {:.1} MB ({:.2}x the file)", stored as f64 / 1e6, stored as f64 / n as f64);
    println!("where the get's CPU went (seconds):");
    println!("  client pipeline (decode, at the reference)    {pipeline_get_cpu:6.2}");
    println!(
        "  client rest (libp2p, shard verification, writing the file) {:6.2}",
        (get.user + get.sys - pipeline_get_cpu).max(0.0)
    );
    println!(
        "  relays (user + kernel: reads, verification, noise)         {:6.2}",
        after_get.0 - after_put.0 + after_get.1 - after_put.1
    );

    if big_mib > 0 {
        drop(data);
        let big = work.join("big");
        {
            use std::io::Write;
            let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
            for i in 0..big_mib {
                f.write_all(&pseudo_random(1 << 20, 1000 + i as u64)).unwrap();
            }
        }
        let r =
            run_client(&kura, &["put", big.to_str().unwrap(), "--bootstrap", &boot, "--k", &kp, "--m", &mp]);
        println!();
        println!(
            "put of a {big_mib} MiB file: {:.1} MB/s, client peak memory {:.1} MiB",
            mbps(big_mib << 20, r.secs),
            r.peak_mib
        );
        let out = work.join("big-back");
        let g =
            run_client(&kura, &["get", r.stdout.trim(), "--bootstrap", &boot, "-o", out.to_str().unwrap()]);
        println!(
            "get of a {big_mib} MiB file: {:.1} MB/s, client peak memory {:.1} MiB",
            mbps(big_mib << 20, g.secs),
            g.peak_mib
        );
        assert_eq!(std::fs::metadata(&out).unwrap().len(), (big_mib as u64) << 20);
    }
    net.stop().unwrap();
    let _ = std::fs::remove_dir_all(&work);
}

fn blake3_mbps() -> f64 {
    let buf = pseudo_random(64 << 20, 7);
    let t = Instant::now();
    let mut h = [0u8; 32];
    for _ in 0..4 {
        h = *blake3::hash(&buf).as_bytes();
    }
    std::hint::black_box(h);
    4.0 * buf.len() as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
