//! Proofs of possession, measured: `cargo run --release -p kura-core --example proof_bench`.
//!
//! One 1 MiB chunk encoded k = 4, m = 2 (shards of about 256 KiB). Side by side, over
//! `KURA_BENCH_PROOFS` challenges (default 300), each with its own nonce: the bytes of a
//! challenge and of a proof on the wire; proving from a shard in memory, from a shard file
//! (read whole, then proved; the page cache is warm, as for a relay's recently read shard),
//! verifying; what an outboard of 16 KiB chunk groups would save (hashing one group instead
//! of the whole shard); and the work of a cheater that keeps no shard and must rebuild it
//! from `k` others for every challenge. Then the audit traffic a relay causes per audited
//! peer per day at the default interval. Times are p50 and p99 in microseconds; the last
//! line is one JSON object.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_core::encoder::encode_single_chunk;
use kura_core::proof::{challenged_chunk, prove, verify, NONCE_LEN};
use kura_core::testdata::pseudo_random;
use kura_core::wire::{Message, Request, Response};
use kura_core::{EncodeOptions, Params, ShardId, StripeAssembler};
use std::time::{Duration, Instant};

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

fn nonce(i: usize) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..8].copy_from_slice(&(i as u64).to_le_bytes());
    n
}

fn main() {
    let runs: usize = std::env::var("KURA_BENCH_PROOFS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let opts = EncodeOptions { params: Params::new(4, 2).unwrap(), ..EncodeOptions::default() };
    let (stripe, _) = encode_single_chunk(&opts, &pseudo_random(1 << 20, 1)).unwrap();
    let shard = stripe.shard(0).to_vec();
    let address = ShardId::of(&shard);
    let holder = b"12D3KooW-a-relay-id-of-38-bytes-------";
    let len = shard.len();
    let dir = std::env::temp_dir().join(format!("kura-proof-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shard");
    std::fs::write(&file, &shard).unwrap();

    let (mut mem, mut disk, mut check, mut group, mut cheat) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut challenge_bytes, mut proof_bytes) = (0, 0);
    for i in 0..runs {
        let n = nonce(i);
        let chunk = challenged_chunk(&n, holder, &address, len);

        let t = Instant::now();
        let p = prove(&shard, chunk);
        mem.push(t.elapsed());

        let t = Instant::now();
        let bytes = std::fs::read(&file).unwrap();
        let from_disk = prove(&bytes, chunk);
        disk.push(t.elapsed());
        assert_eq!(from_disk, p);

        let t = Instant::now();
        verify(&address, len, chunk, &p).unwrap();
        check.push(t.elapsed());

        // With an outboard of 16 KiB chunk groups, a proof hashes one group, not the shard.
        let start = (chunk * 1024 / 16384) * 16384;
        let t = Instant::now();
        let _ = blake3::hash(&shard[start..(start + 16384).min(len)]);
        group.push(t.elapsed());

        // A cheater holding nothing: fetches k other shards (not counted here: 4 × 256 KiB
        // over the network), rebuilds the challenged one, then proves.
        let t = Instant::now();
        let mut asm = StripeAssembler::new(stripe.id(), stripe.header_bytes()).unwrap();
        for j in 1..=4 {
            asm.add_shard(stripe.shard(j).to_vec()).unwrap();
        }
        let rebuilt = asm.rebuild_all().unwrap();
        let forged = prove(&rebuilt[0], chunk);
        cheat.push(t.elapsed());
        assert_eq!(forged, p);

        challenge_bytes =
            Request::Prove { stripe: stripe.id(), index: 0, nonce: n }.to_frame().unwrap().len();
        proof_bytes = Response::Proof { chunk: p.chunk, siblings: p.siblings }.to_frame().unwrap().len();
    }
    let _ = std::fs::remove_dir_all(&dir);

    let (mem50, mem99) = percentiles(mem);
    let (disk50, disk99) = percentiles(disk);
    let (ver50, ver99) = percentiles(check);
    let (grp50, grp99) = percentiles(group);
    let (cheat50, cheat99) = percentiles(cheat);
    // Default audits: every 300 s, 4 claims of each peer; both directions counted.
    let per_peer_day = 86_400 / 300 * 4 * (challenge_bytes + proof_bytes);
    println!("shard of {len} bytes (1 MiB chunk, k = 4, m = 2), {runs} challenges");
    println!("challenge {challenge_bytes} B, proof {proof_bytes} B on the wire");
    println!("prove, shard in memory      p50 {mem50:8.1} µs  p99 {mem99:8.1} µs");
    println!("prove, shard read from file p50 {disk50:8.1} µs  p99 {disk99:8.1} µs");
    println!("verify                      p50 {ver50:8.1} µs  p99 {ver99:8.1} µs");
    println!("hash one 16 KiB group       p50 {grp50:8.1} µs  p99 {grp99:8.1} µs  (an outboard's proving cost; outboard {} B per shard)", 2 * (len.div_ceil(16384)) * 32);
    println!("cheater: rebuild from k + prove p50 {cheat50:8.1} µs  p99 {cheat99:8.1} µs  ({:.1}x the honest proof from memory, plus {} KiB fetched)", cheat50 / mem50, 4 * len / 1024);
    println!("audit traffic per audited peer per day at the defaults: {:.2} MB", per_peer_day as f64 / 1e6);
    println!(
        "{{\"shard_bytes\":{len},\"challenge_bytes\":{challenge_bytes},\"proof_bytes\":{proof_bytes},\"prove_mem_p50_us\":{mem50:.1},\"prove_mem_p99_us\":{mem99:.1},\"prove_file_p50_us\":{disk50:.1},\"prove_file_p99_us\":{disk99:.1},\"verify_p50_us\":{ver50:.1},\"verify_p99_us\":{ver99:.1},\"group_hash_p50_us\":{grp50:.1},\"cheat_p50_us\":{cheat50:.1},\"cheat_p99_us\":{cheat99:.1},\"audit_bytes_per_peer_day\":{per_peer_day}}}"
    );
}
