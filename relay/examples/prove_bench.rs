//! Proving from disk, as a relay answers a challenge: `cargo run --release -p kura-relay
//! --example prove_bench`.
//!
//! A real store (`FsStore`, redb metadata and one file per shard) in a scratch directory
//! takes `KURA_BENCH_SHARDS` shards (default 400) of about 256 KiB (1 MiB chunks at k = 4,
//! m = 2), one per stripe. Each is then challenged through the relay's own request path
//! (`node::serve` of a `Prove`: read the shard, check it against its address, prove one
//! chunk) twice: first with the shard's pages dropped from the page cache (`posix_fadvise`
//! `DONTNEED` on its file: the first challenge of a shard nobody read lately), then again
//! with them cached. Times are p50 and p99 in microseconds, side by side; the last line is
//! one JSON object. Every proof is verified, so a fast wrong answer cannot pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_core::audit::{Challenge, Verdict};
use kura_core::encoder::encode_single_chunk;
use kura_core::testdata::pseudo_random;
use kura_core::wire::Request;
use kura_core::{EncodeOptions, Params, Stripe};
use kura_relay::node::serve;
use kura_relay::store::{FsStore, ShardStore};
use libp2p::PeerId;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

/// Drops every file under `dir` from the page cache.
#[allow(unsafe_code)]
fn evict(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            n += evict(&p);
        } else {
            let f = std::fs::File::open(&p).unwrap();
            // SAFETY: a valid open descriptor; the call only advises the kernel.
            let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            assert_eq!(rc, 0, "posix_fadvise on {}", p.display());
            n += 1;
        }
    }
    n
}

fn main() {
    let shards: usize = std::env::var("KURA_BENCH_SHARDS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let dir = std::env::temp_dir().join(format!("kura-prove-bench-{}", std::process::id()));
    let store = FsStore::open(&dir, u64::MAX).unwrap();
    let me = PeerId::random();
    let opts = EncodeOptions { params: Params::new(4, 2).unwrap(), ..EncodeOptions::default() };
    let stripes: Vec<Stripe> = (0..shards)
        .map(|i| encode_single_chunk(&opts, &pseudo_random(1 << 20, i as u64)).unwrap().0)
        .collect();
    for s in &stripes {
        store.put(s.header_bytes(), s.shard(0)).unwrap();
    }
    let challenge = |s: &Stripe, round: u8| {
        let mut nonce = [round; 32];
        nonce[..8].copy_from_slice(&s.id().as_bytes()[..8]);
        Challenge::new(s.header(), s.id(), 0, &me.to_bytes(), nonce).unwrap()
    };
    let run = |round: u8| -> Vec<Duration> {
        stripes
            .iter()
            .map(|s| {
                let c = challenge(s, round);
                let Request::Prove { stripe, index, nonce } = c.request() else { unreachable!() };
                let t = Instant::now();
                let answer = serve(&store, &me, Request::Prove { stripe, index, nonce });
                let took = t.elapsed();
                assert_eq!(c.judge(answer), Ok(Verdict::Pass));
                took
            })
            .collect()
    };
    let files = evict(&dir.join("shards"));
    let cold = run(1);
    let warm = run(2);
    let (cold50, cold99) = percentiles(cold);
    let (warm50, warm99) = percentiles(warm);
    let len = stripes[0].shard(0).len();
    println!("{shards} shards of {len} bytes in a real store ({files} files), each challenged through the relay's path");
    println!("prove from disk, page cache dropped: p50 {cold50:.1} µs, p99 {cold99:.1} µs");
    println!("prove from disk, page cache warm:    p50 {warm50:.1} µs, p99 {warm99:.1} µs");
    println!("cold / warm: p50 {:.2}x, p99 {:.2}x", cold50 / warm50, cold99 / warm99);
    println!(
        "{{\"shards\":{shards},\"shard_bytes\":{len},\"cold_p50_us\":{cold50:.1},\"cold_p99_us\":{cold99:.1},\"warm_p50_us\":{warm50:.1},\"warm_p99_us\":{warm99:.1}}}"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
