//! The pipeline benchmark's measurements, shared by the native example
//! (`examples/pipeline_bench.rs`) and the wasm32 build run in Chromium (`tests/wasm_bench.rs`).
//! Clocks come from the caller; figures are MB/s of plaintext (10^6 bytes per second).

use kura_core::{
    decode_from, DecodeError, Decoder, EncodeOptions, Encoder, FileMeta, ShardId, ShardSource, Stripe,
    StripeId,
};
use std::collections::HashMap;

/// Deterministic incompressible input.
pub fn input(len: usize) -> Vec<u8> {
    kura_core::testdata::pseudo_random(len, 1)
}

/// Best MB/s of `runs` runs of `f` over `bytes` bytes. `now` is in seconds.
pub fn best(now: &dyn Fn() -> f64, bytes: usize, runs: usize, f: &mut dyn FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..runs {
        let t = now();
        f();
        best = best.min(now() - t);
    }
    bytes as f64 / best.max(1e-9) / 1e6
}

/// Shards in memory, keyed by address (the benchmark measures the pipeline, not a disk).
#[derive(Default)]
pub struct Mem {
    headers: HashMap<StripeId, Vec<u8>>,
    shards: HashMap<ShardId, Vec<u8>>,
}

impl ShardSource for Mem {
    fn header(&mut self, s: &StripeId) -> Option<Vec<u8>> {
        self.headers.get(s).cloned()
    }
    fn shard(&mut self, s: &ShardId) -> Option<Vec<u8>> {
        self.shards.get(s).cloned()
    }
}

pub fn encode(data: &[u8], sink: &mut dyn FnMut(Stripe)) -> kura_core::Capability {
    encode_with(data, EncodeOptions::default(), sink)
}

pub fn encode_with(data: &[u8], opts: EncodeOptions, sink: &mut dyn FnMut(Stripe)) -> kura_core::Capability {
    let mut enc = Encoder::new(opts).expect("options are valid");
    for piece in data.chunks(1 << 20) {
        enc.push(piece, |s| -> Result<(), ()> {
            sink(s);
            Ok(())
        })
        .expect("sink never fails");
    }
    enc.finish(FileMeta::default())
        .expect("metadata is valid")
        .drain(|s| -> Result<(), ()> {
            sink(s);
            Ok(())
        })
        .expect("sink never fails")
}

pub fn decode(cap: kura_core::Capability, mem: &mut Mem) -> usize {
    let mut n = 0;
    decode_from(Decoder::new(cap), mem, |pt: &[u8]| -> Result<(), DecodeError> {
        n += pt.len();
        Ok(())
    })
    .expect("decodes");
    n
}

/// Runs the kura pipeline and the bare primitives; returns (key, MB/s) pairs.
pub fn run(now: &dyn Fn() -> f64, len: usize, runs: usize) -> Vec<(&'static str, f64)> {
    let data = input(len);
    let mut out = Vec::new();

    let mut cap = None;
    out.push((
        "kura_encode",
        best(now, len, runs, &mut || {
            let mut stripes = 0usize;
            cap = Some(encode(&data, &mut |s| stripes += s.shard_count()));
            assert!(stripes > 0);
        }),
    ));

    // Keep the shards for decoding.
    let mut mem = Mem::default();
    let cap = encode(&data, &mut |s: Stripe| {
        mem.headers.insert(s.id(), s.header_bytes().to_vec());
        for (id, b) in s.shards() {
            mem.shards.insert(id, b.to_vec());
        }
    });
    out.push(("kura_decode", best(now, len, runs, &mut || assert_eq!(decode(cap, &mut mem), len))));

    // Degraded: the two first data shards of every stripe are gone, so every chunk is rebuilt.
    let lost: Vec<ShardId> = mem
        .headers
        .values()
        .flat_map(|h| kura_core::StripeHeader::parse(h).expect("own header").shards()[..2].to_vec())
        .collect();
    for id in &lost {
        mem.shards.remove(id);
    }
    out.push(("kura_decode_degraded", best(now, len, runs, &mut || assert_eq!(decode(cap, &mut mem), len))));
    drop(mem);

    let mut buf = data.clone();
    let key = kura_core::ChunkKey::from_bytes([7; 32]);
    out.push((
        "chacha20poly1305",
        best(now, len, runs, &mut || {
            for c in buf.chunks_mut(1 << 20) {
                std::hint::black_box(key.seal_in_place(c));
            }
        }),
    ));
    if cfg!(target_arch = "wasm32") {
        // kura-core's own SIMD128 cipher above; the crate's portable one here.
        out.push((
            "chacha20poly1305_crate",
            best(now, len, runs, &mut || {
                for c in buf.chunks_mut(1 << 20) {
                    std::hint::black_box(key.seal_in_place_reference(c));
                }
            }),
        ));
    }
    out.push((
        "blake3",
        best(now, len, runs, &mut || {
            for c in data.chunks(1 << 20) {
                std::hint::black_box(blake3::hash(c));
            }
        }),
    ));
    let rs = reed_solomon_erasure::galois_8::ReedSolomon::new(4, 2).expect("valid");
    let shard = (1 << 20) / 4;
    let mut stripe = vec![0u8; 6 * shard];
    out.push((
        "rs_encode",
        best(now, len, runs, &mut || {
            for c in data.chunks(1 << 20) {
                stripe[..c.len()].copy_from_slice(c);
                let mut s: Vec<&mut [u8]> = stripe.chunks_exact_mut(shard).collect();
                rs.encode(&mut s).expect("encodes");
            }
        }),
    ));
    out
}

/// The figures as one JSON object (no dependency on a JSON crate).
pub fn json(figures: &[(&str, f64)]) -> String {
    let body: Vec<String> = figures.iter().map(|(k, v)| format!("\"{k}\": {v:.1}")).collect();
    format!("{{{}}}", body.join(", "))
}
