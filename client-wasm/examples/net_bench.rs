//! Network benchmark: `kura put` and `kura get` of one file through a local network of
//! `kura-relay` processes on 127.0.0.1, next to the pipeline benchmark (kura-core alone, in
//! memory) run in the same process before the put and after the get. Prints throughput, the
//! client's peak memory and where the CPU time went (client and relays, user and system).
//! Beside it, also before and after, the disk alone: the put's shard files and the get's
//! output written on the same filesystem the way the relays and `kura get` write them, with
//! no network and no encoding — the floor under the put and get on this machine's disk.
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
        // Uploads are listed under $HOME/.kura: the benchmark's own temporary home, not the user's.
        Command::new(kura)
            .args(args)
            .env("HOME", std::env::temp_dir().join("kura-bench-home"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
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

/// What this filesystem alone gives, with no network and no encoding: the put's durable
/// writes and the get's output, done the way `kura-relay` and `kura get` do them.
#[derive(Debug, Clone, Copy)]
struct DiskFloor {
    /// Shard files, MB/s: `writers` threads, each writing its files one after another
    /// (temporary file, write, fsync, rename), as the relays store a put's shards.
    shards: f64,
    /// Kernel CPU seconds those writes took (this process, otherwise idle).
    shards_sys: f64,
    /// One output file, MB/s: 1 MiB writes, a background sync every 32 MiB, a final
    /// sync and rename, as `kura get` writes its output.
    output: f64,
}

/// Own (user, system) CPU seconds of this process.
fn own_cpu() -> (f64, f64) {
    cpu(std::process::id())
}

/// Writes into `dir`, then deletes what it wrote (on an ext4 without a journal that slows
/// the file creations of the next minutes: measure on a journaled one, docs/benchmarks.md).
fn disk_floor(
    dir: &Path,
    writers: usize,
    files_each: usize,
    shard_len: usize,
    output_len: usize,
) -> DiskFloor {
    use std::io::Write;
    let shard = pseudo_random(shard_len, 9);
    for w in 0..writers {
        std::fs::create_dir_all(dir.join(w.to_string())).unwrap();
    }
    let (_, sys0) = own_cpu();
    let t = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let (dir, shard) = (dir.join(w.to_string()), &shard);
            s.spawn(move || {
                for i in 0..files_each {
                    let tmp = dir.join(format!("{i}.tmp"));
                    let mut f = std::fs::File::create(&tmp).unwrap();
                    f.write_all(shard).unwrap();
                    f.sync_all().unwrap();
                    std::fs::rename(&tmp, dir.join(i.to_string())).unwrap();
                }
            });
        }
    });
    let shards = mbps(writers * files_each * shard_len, t.elapsed().as_secs_f64());
    let shards_sys = own_cpu().1 - sys0;

    let piece = pseudo_random(1 << 20, 10);
    let pieces = output_len.div_ceil(piece.len());
    let t = Instant::now();
    let tmp = dir.join("output.tmp");
    let mut f = std::fs::File::create(&tmp).unwrap();
    let mut syncer: Option<std::thread::JoinHandle<std::io::Result<()>>> = None;
    let mut unsynced = 0;
    for _ in 0..pieces {
        f.write_all(&piece).unwrap();
        unsynced += piece.len();
        if unsynced >= 32 << 20 && syncer.as_ref().is_none_or(|t| t.is_finished()) {
            if let Some(t) = syncer.take() {
                t.join().unwrap().unwrap();
            }
            let c = f.try_clone().unwrap();
            syncer = Some(std::thread::spawn(move || c.sync_data()));
            unsynced = 0;
        }
    }
    if let Some(t) = syncer.take() {
        t.join().unwrap().unwrap();
    }
    f.sync_all().unwrap();
    std::fs::rename(&tmp, dir.join("output")).unwrap();
    let output = mbps(pieces * piece.len(), t.elapsed().as_secs_f64());
    std::fs::remove_dir_all(dir).unwrap();
    DiskFloor { shards, shards_sys, output }
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
    // On disk before anything is measured: its write-back would otherwise run during them.
    std::fs::File::open(&file).unwrap().sync_all().unwrap();
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

    // The disk's own speed for the same writes, before the put and after the get: on a
    // machine whose durable writes are slow, the put and get cannot be faster than these.
    let shard_len = params.shard_len(kura_core::CHUNK_SIZE + kura_core::crypto::TAG_LEN);
    let shard_files = mib * params.n() / relays.max(1);
    let disk = |when: &str| {
        disk_floor(&work.join(format!("disk-floor-{}", when)), relays, shard_files, shard_len, mib << 20)
    };
    let disk_before = disk("before");

    // Many puts of large files from this machine: beyond what relays give unpaid by default.
    let free = ["--free-bytes", "1T", "--free-bytes-total", "1T"].map(String::from).to_vec();
    let mut cfg = DevnetConfig::ephemeral(relays, work.join("net"), bin_dir.join("kura-relay"), free);
    // Identities from the test pool: each new one is seconds of join work.
    cfg.identities = Some(kura_client::devnet::TEST_IDENTITIES.into());
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
    let disk_after = disk("after");
    for (when, d) in [("before the put", disk_before), ("after the get ", disk_after)] {
        println!(
            "disk alone {when}: shard files {:7.1} MB/s ({relays} writers, write + fsync + rename, {:.2} s kernel CPU); output file {:7.1} MB/s",
            d.shards, d.shards_sys, d.output
        );
    }
    let disk_shards = (disk_before.shards + disk_after.shards) / 2.0;
    let disk_output = (disk_before.output + disk_after.output) / 2.0;

    let n = data.len();
    println!();
    // The put writes n/k bytes of shard per byte of file; the get one byte of output.
    let stored_per_byte = params.n() as f64 / params.k() as f64;
    let (put_disk, get_disk) = (disk_shards / stored_per_byte, disk_output);
    println!("                 MB/s   vs pipeline   vs disk alone   wall s   client user+sys s   relays user+sys s   client peak MiB");
    let row = |what: &str, r: &Run, reference: f64, disk: f64, cpu: (f64, f64)| {
        println!(
            "{what:<9}    {:8.1}   {:10.1}%   {:12.1}%   {:6.2}   {:8.2} + {:5.2}     {:8.2} + {:5.2}     {:8.1}",
            mbps(n, r.secs),
            mbps(n, r.secs) / reference * 100.0,
            mbps(n, r.secs) / disk * 100.0,
            r.secs,
            r.user,
            r.sys,
            cpu.0,
            cpu.1,
            r.peak_mib
        );
    };
    row("put", &put, enc, put_disk, (after_put.0 - before.0, after_put.1 - before.1));
    row("get", &get, dec, get_disk, (after_get.0 - after_put.0, after_get.1 - after_put.1));
    println!(
        "(disk alone: the put's file rate if only its shard writes ran, {put_disk:.1} MB/s = the shard files' rate x k/n; the get's, {get_disk:.1} MB/s = the output file's)"
    );
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
    println!(
        "    (the same shard writes alone, disk floor above: {:.2} s of kernel CPU)",
        (disk_before.shards_sys + disk_after.shards_sys) / 2.0
    );
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
