//! Pipeline benchmark: `cargo run --release -p kura-core --example pipeline_bench`.
//!
//! Side by side in one process, on the same 64 MiB input (override with
//! `KURA_BENCH_MIB`): kura encode / decode / decode with m shards missing per stripe,
//! maidsafe's `self_encryption` encrypt / decrypt, and the bare primitives. Then the peak
//! heap while encoding a 1 GiB stream (`KURA_BENCH_STREAM_MIB`). The last line is one JSON
//! object of MB/s (and the peak in MiB).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "bench/common.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

/// Counts live heap bytes and their peak.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// Safety: forwards to the system allocator unchanged; only adds counters.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_sub(l.size(), Relaxed);
            let now = LIVE.fetch_add(new, Relaxed) + new;
            PEAK.fetch_max(now, Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn env_mib(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let len = env_mib("KURA_BENCH_MIB", 64) << 20;
    let runs = env_mib("KURA_BENCH_RUNS", 3);
    let start = Instant::now();
    let now = move || start.elapsed().as_secs_f64();
    println!(
        "input: {} MiB, best of {runs} runs, single-threaded kura pipeline (k=4, m=2, 1 MiB chunks)",
        len >> 20
    );
    let mut figures = common::run(&now, len, runs);

    // maidsafe self_encryption on the same input (it compresses, then encrypts; it uses rayon).
    let data = bytes::Bytes::from(common::input(len));
    let mut enc = None;
    let se_enc = common::best(&now, len, runs, &mut || {
        enc = Some(self_encryption::encrypt(data.clone()).expect("self_encryption encrypts"));
    });
    let (map, chunks) = enc.expect("ran");
    let se_dec = common::best(&now, len, runs, &mut || {
        let out = self_encryption::decrypt(&map, &chunks).expect("self_encryption decrypts");
        assert_eq!(out.len(), len);
    });
    drop((map, chunks, data));
    figures.insert(3, ("self_encryption_encrypt", se_enc));
    figures.insert(4, ("self_encryption_decrypt", se_dec));
    debug_assert_eq!(figures[2].0, "kura_decode_degraded");

    // Peak heap while encoding a long stream fed from one reused 1 MiB input buffer.
    let stream = env_mib("KURA_BENCH_STREAM_MIB", 1024) << 20;
    let piece = common::input(1 << 20);
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let t = now();
    let mut enc = kura_core::Encoder::new(kura_core::EncodeOptions::default()).unwrap();
    let mut fed = 0usize;
    let mut counter = 0u64;
    while fed < stream {
        // Vary each piece so chunks do not dedupe into one stripe.
        counter += 1;
        let mut p = piece.clone();
        p[..8].copy_from_slice(&counter.to_le_bytes());
        enc.push(&p, |s| -> Result<(), ()> {
            std::hint::black_box(s.id());
            Ok(())
        })
        .unwrap();
        fed += p.len();
    }
    let cap = enc.finish(kura_core::FileMeta::default()).unwrap().drain(|_| Ok::<(), ()>(())).unwrap();
    let stream_secs = now() - t;
    let peak_mib = (PEAK.load(Relaxed) - base) as f64 / (1 << 20) as f64;
    std::hint::black_box(cap);

    let get = |k: &str| figures.iter().find(|(n, _)| *n == k).map(|(_, v)| *v).unwrap_or(0.0);
    println!();
    for (k, v) in &figures {
        println!("{k:>26}: {v:9.1} MB/s");
    }
    println!(
        "{:>26}: {:9.1} MB/s ({} MiB)",
        "kura_encode_stream",
        stream as f64 / stream_secs / 1e6,
        stream >> 20
    );
    println!(
        "{:>26}: {peak_mib:9.1} MiB above the 1 MiB input buffer (target <= 32)",
        "peak heap, stream encode"
    );
    println!();
    println!(
        "ratios (targets): encode / self_encryption encrypt = {:.2} (>= 4)",
        get("kura_encode") / get("self_encryption_encrypt")
    );
    println!(
        "                  decode / self_encryption decrypt = {:.2} (>= 2)",
        get("kura_decode") / get("self_encryption_decrypt")
    );
    println!(
        "                  encode / bare chacha20poly1305   = {:.2} (>= 0.60)",
        get("kura_encode") / get("chacha20poly1305")
    );
    figures.push(("peak_stream_encode_mib", peak_mib));
    println!("{}", common::json(&figures));
}
