//! Round trips, loss, corruption, dedup, nesting and ranges through the whole pipeline.
//! Runs natively and in headless Chromium (wasm32).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use kura_core::encoder::encode_single_chunk;
use kura_core::{
    Capability, DecodeError, Decoder, HeaderError, Secret, StripeError, StripeHeader, CHUNK_SIZE,
};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const SMALL: usize = 4096;

#[test]
fn round_trip_boundary_sizes_with_odd_slicings() {
    let sizes = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + CHUNK_SIZE / 2];
    let slicings: [&[usize]; 4] = [&[usize::MAX], &[1, 7, 4093, 100_003], &[CHUNK_SIZE - 3], &[65_537, 1]];
    for (i, &size) in sizes.iter().enumerate() {
        let data = random_bytes(size, i as u64);
        for slices in slicings {
            let (cap, mut store) =
                encode_sliced(&data, opts(4, 2, CHUNK_SIZE, Secret::public()), slices, "f");
            let out = decode_all(cap, &mut store).unwrap();
            assert_eq!(out.len(), data.len(), "size {size} slicing {slices:?}");
            assert!(out == data, "size {size} slicing {slices:?}: bytes differ");
        }
    }
}

#[test]
fn slicing_does_not_change_the_capability() {
    let data = random_bytes(3 * SMALL + 17, 9);
    let a = encode_sliced(&data, opts(4, 2, SMALL, Secret::public()), &[usize::MAX], "x").0;
    let b = encode_sliced(&data, opts(4, 2, SMALL, Secret::public()), &[1, 2, 3, 4095], "x").0;
    assert_eq!(a, b);
}

#[test]
fn grid_of_parameters_survives_losing_any_m_leading_or_trailing_shards() {
    let grid = [(2, 1), (2, 3), (3, 2), (4, 2), (5, 3), (10, 4), (16, 8), (100, 155)];
    let data = random_bytes(5 * SMALL + 333, 42);
    for (k, m) in grid {
        let (cap, store) = encode(&data, opts(k, m, SMALL, Secret::public()));
        assert!(decode_all(cap, &mut store.clone()).unwrap() == data, "({k},{m}) intact");
        // Lose the first m shards (data shards: decoding needed) ...
        let mut s = store.clone();
        (0..m).for_each(|i| s.drop_index(i));
        assert!(decode_all(cap, &mut s).unwrap() == data, "({k},{m}) without first m");
        // ... or the last m (all parity: no decoding).
        let mut s = store.clone();
        (k..k + m).for_each(|i| s.drop_index(i));
        assert!(decode_all(cap, &mut s).unwrap() == data, "({k},{m}) without last m");
    }
}

#[test]
fn any_two_of_six_shards_may_be_lost_but_not_three() {
    let data = random_bytes(4 * SMALL + 5, 7);
    let (cap, store) = encode(&data, opts(4, 2, SMALL, Secret::public()));
    for a in 0..6 {
        for b in a + 1..6 {
            let mut s = store.clone();
            s.drop_index(a);
            s.drop_index(b);
            assert!(decode_all(cap, &mut s).unwrap() == data, "lost {a},{b}");
            for c in b + 1..6 {
                let mut s3 = s.clone();
                s3.drop_index(c);
                match decode_all(cap, &mut s3) {
                    Err(DecodeError::Unavailable { have: 3, need: 4, missing, .. }) => {
                        assert_eq!(missing, vec![a, b, c])
                    }
                    other => panic!("lost {a},{b},{c}: expected Unavailable, got {other:?}"),
                }
            }
        }
    }
}

#[test]
fn unavailable_names_the_stripe_and_no_bytes_of_it_are_output() {
    let data = random_bytes(3 * SMALL, 8);
    let (cap, mut store) = encode(&data, opts(4, 2, SMALL, Secret::public()));
    // Remove three shards of the second data stripe only.
    let victim = store.stripes[1].clone();
    for id in &victim.1[..3] {
        store.shards.remove(id);
    }
    let mut out = Vec::new();
    let err = kura_core::decode_from(Decoder::new(cap), &mut store, |pt: &[u8]| -> Result<(), DecodeError> {
        out.extend_from_slice(pt);
        Ok(())
    })
    .unwrap_err();
    assert!(matches!(&err, DecodeError::Unavailable { stripe, .. } if *stripe == victim.0), "{err:?}");
    assert!(err.to_string().contains(&victim.0.to_hex()), "message names the stripe: {err}");
    assert!(out == data[..SMALL], "exactly the chunk before the missing one was output");
}

#[test]
fn corrupt_shards_are_detected_and_skipped() {
    let data = random_bytes(6 * SMALL + 1, 3);
    let (cap, mut store) = encode(&data, opts(4, 2, SMALL, Secret::public()));
    // Corrupt shard 0 and 2 of every stripe: m = 2 bad shards are tolerated.
    for (_, ids) in store.stripes.clone() {
        for i in [0, 2] {
            let shard = store.shards.get_mut(&ids[i]).unwrap();
            let mid = shard.len() / 2;
            shard[mid] ^= 0x40;
        }
    }
    assert!(decode_all(cap, &mut store).unwrap() == data);
    assert_eq!(store.corrupt_seen.len(), 2 * store.stripes.len(), "every corrupt shard reported");
    // A third corrupt shard in one stripe makes it unavailable.
    let ids = store.stripes[0].1.clone();
    store.shards.get_mut(&ids[1]).unwrap()[0] ^= 1;
    assert!(matches!(decode_all(cap, &mut store), Err(DecodeError::Unavailable { .. })));
}

#[test]
fn truncated_and_extended_shards_are_detected() {
    let data = random_bytes(SMALL, 4);
    let (cap, mut store) = encode(&data, opts(2, 1, SMALL, Secret::public()));
    let (id, ids) = store.stripes[0].clone();
    store.shards.get_mut(&ids[0]).unwrap().pop();
    store.shards.get_mut(&ids[1]).unwrap().push(0);
    let err = decode_all(cap, &mut store).unwrap_err();
    assert!(matches!(err, DecodeError::Unavailable { stripe, have: 1, .. } if stripe == id), "{err:?}");
    assert_eq!(store.corrupt_seen, vec![ids[0], ids[1]]);
}

#[test]
fn corrupt_or_missing_headers_are_detected() {
    let data = random_bytes(2 * SMALL, 5);
    let (cap, store) = encode(&data, opts(4, 2, SMALL, Secret::public()));
    let (id, _) = store.stripes[0];
    let mut s = store.clone();
    s.headers.get_mut(&id).unwrap()[5] ^= 1;
    let err = decode_all(cap, &mut s).unwrap_err();
    assert!(
        matches!(err, DecodeError::Header { stripe, source: HeaderError::IdMismatch { .. } } if stripe == id)
    );
    let mut s = store.clone();
    s.headers.remove(&id);
    assert!(matches!(decode_all(cap, &mut s), Err(DecodeError::NoHeader { stripe }) if stripe == id));
}

/// Stores `map_bytes` as a root stripe with a valid key: only the data map's own rules can
/// reject it.
fn root_with(map_bytes: &[u8]) -> (Capability, MemStore) {
    let o = opts(2, 1, SMALL, Secret::public());
    let (stripe, chunk) = encode_single_chunk(&o, map_bytes).unwrap();
    let mut store = MemStore::default();
    store.put(&stripe);
    (Capability { root: chunk.stripe, key: chunk.key }, store)
}

#[test]
fn corrupt_data_maps_are_detected() {
    let data = random_bytes(3 * SMALL + 10, 6);
    let (cap, mut store) = encode(&data, opts(2, 1, SMALL, Secret::public()));
    // The genuine map, fetched through a decoder of the root stripe alone.
    let root_plain = {
        let header = store.headers[&cap.root].clone();
        let mut asm = kura_core::StripeAssembler::new(cap.root, &header).unwrap();
        for id in asm.header().shards().to_vec() {
            asm.add_shard(store.shards[&id].clone()).unwrap();
        }
        asm.decrypt(&cap.key).unwrap()
    };
    assert!(decode_all(cap, &mut store).unwrap() == data);
    let map = kura_core::DataMap::from_bytes(&root_plain).unwrap();
    let kura_core::DataMap::File(file) = map else { panic!("expected a file map") };

    let bad = |f: &dyn Fn(&mut kura_core::FileMap)| {
        let mut m = file.clone();
        f(&mut m);
        kura_core::DataMap::File(m).to_bytes()
    };
    let mut trailing = root_plain.clone();
    trailing.push(0);
    let mut version = root_plain.clone();
    version[0] = 2;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("version", version),
        ("trailing", trailing),
        ("truncated", root_plain[..root_plain.len() - 3].to_vec()),
        ("garbage", random_bytes(300, 1)),
        ("size", bad(&|m| m.size += 1)),
        ("chunk len", bad(&|m| m.chunks[0].len -= 1)),
        ("chunk size", bad(&|m| m.chunk_size = 100)),
        ("long name", bad(&|m| m.meta.name = "n".repeat(2000))),
        (
            "empty last",
            bad(&|m| {
                m.chunks.last_mut().unwrap().len = 0;
                m.size -= 10;
            }),
        ),
    ];
    for (what, bytes) in cases {
        let (c, mut s) = root_with(&bytes);
        match decode_all(c, &mut s) {
            Err(DecodeError::DataMap(_)) => {}
            other => panic!("{what}: expected a data map error, got {other:?}"),
        }
    }
    // A map that lies about a chunk's length (but is self-consistent) fails on that chunk.
    let mut m = file.clone();
    m.chunks.swap(0, 3);
    let last = m.chunks.len() - 1;
    m.chunks[0].len = SMALL as u32;
    m.chunks[last].len = 10;
    let (c, mut s) = root_with(&kura_core::DataMap::File(m).to_bytes());
    s.headers.extend(store.headers.clone());
    s.shards.extend(store.shards.clone());
    assert!(matches!(decode_all(c, &mut s), Err(DecodeError::ChunkLength { .. })));
    // A wrong key fails authentication.
    let wrong = Capability { root: cap.root, key: kura_core::ChunkKey::from_bytes([7; 32]) };
    assert!(matches!(decode_all(wrong, &mut store), Err(DecodeError::Stripe(StripeError::Decrypt { .. }))));
}

#[test]
fn public_mode_dedups_and_private_mode_does_not() {
    let data = random_bytes(2 * SMALL + 100, 11);
    let (a, sa) = encode(&data, opts(4, 2, SMALL, Secret::public()));
    let (b, sb) = encode(&data, opts(4, 2, SMALL, Secret::public()));
    assert_eq!(a, b, "same public file, same capability");
    assert_eq!(sa.shards.keys().collect::<std::collections::BTreeSet<_>>(), sb.shards.keys().collect());

    let (p1, s1) = encode(&data, opts(4, 2, SMALL, Secret::private([1; 32])));
    let (p2, s2) = encode(&data, opts(4, 2, SMALL, Secret::private([2; 32])));
    let (p1b, _) = encode(&data, opts(4, 2, SMALL, Secret::private([1; 32])));
    assert_ne!(p1, a);
    assert_ne!(p1, p2);
    assert_eq!(p1, p1b, "the same secret converges");
    assert!(s1.shards.keys().all(|k| !s2.shards.contains_key(k) && !sa.shards.contains_key(k)));
    assert!(decode_all(p1, &mut s1.clone()).unwrap() == data);
    // Identical chunks inside one file share one stripe.
    let zeros = vec![0u8; 4 * SMALL];
    let (z, sz) = encode(&zeros, opts(4, 2, SMALL, Secret::public()));
    assert_eq!(sz.headers.len(), 2, "one data stripe + the root");
    assert!(decode_all(z, &mut sz.clone()).unwrap() == zeros);
}

#[test]
fn large_maps_nest_and_still_decode() {
    // 4 KiB chunks: 300 chunks need a ~21 KB map, nested twice before it fits in a chunk.
    let data = random_bytes(300 * SMALL - 7, 12);
    let (cap, mut store) = encode(&data, opts(3, 2, SMALL, Secret::public()));
    assert!(store.headers.len() > 300 + 1, "map stripes beyond the root were written");
    assert!(decode_all(cap, &mut store.clone()).unwrap() == data);
    let got = decode(Decoder::with_range(cap, 123_456, 50_000), &mut store).unwrap();
    assert!(got == data[123_456..173_456]);
}

/// Counts which stripes a decode fetched.
struct Counting<'a>(&'a mut MemStore, Vec<kura_core::StripeId>);
impl kura_core::ShardSource for Counting<'_> {
    fn header(&mut self, s: &kura_core::StripeId) -> Option<Vec<u8>> {
        self.1.push(*s);
        self.0.header(s)
    }
    fn shard(&mut self, s: &kura_core::ShardId) -> Option<Vec<u8>> {
        self.0.shard(s)
    }
}

#[test]
fn range_reads_return_exact_bytes_and_fetch_only_needed_chunks() {
    let size = 7 * SMALL + 1234;
    let data = random_bytes(size, 13);
    let (cap, mut store) = encode(&data, opts(4, 2, SMALL, Secret::public()));
    let ranges = [
        (0, 0),
        (0, 1),
        (0, size as u64),
        (5, 10),
        (SMALL as u64 - 1, 2),
        (SMALL as u64, SMALL as u64),
        (3 * SMALL as u64 + 7, 2 * SMALL as u64),
        (size as u64 - 1, 1),
        (size as u64 - 10, 1000), // clamped to the end
        (size as u64, 5),         // empty
    ];
    for (off, len) in ranges {
        let mut c = Counting(&mut store, Vec::new());
        let mut out = Vec::new();
        kura_core::decode_from(
            Decoder::with_range(cap, off, len),
            &mut c,
            |pt: &[u8]| -> Result<(), DecodeError> {
                out.extend_from_slice(pt);
                Ok(())
            },
        )
        .unwrap();
        let end = (off + len).min(size as u64) as usize;
        assert!(out == data[off as usize..end], "range {off}+{len}");
        let chunks = if end > off as usize { (end - 1) / SMALL - off as usize / SMALL + 1 } else { 0 };
        assert_eq!(c.1.len(), 1 + chunks, "range {off}+{len}: root + {chunks} chunks fetched");
    }
    assert!(matches!(
        decode(Decoder::with_range(cap, size as u64 + 1, 1), &mut store),
        Err(DecodeError::RangeOutOfBounds { .. })
    ));
}

#[test]
fn window_of_one_and_file_metadata() {
    let data = random_bytes(5 * SMALL, 14);
    let o = opts(4, 2, SMALL, Secret::public());
    let mut store = MemStore::default();
    let mut enc = kura_core::Encoder::new(o).unwrap();
    enc.push(&data, |s| -> Result<(), ()> {
        store.put(&s);
        Ok(())
    })
    .unwrap();
    let meta = kura_core::FileMeta { name: "photo.png".into(), media_type: "image/png".into() };
    let cap = enc
        .finish(meta.clone())
        .unwrap()
        .drain(|s| -> Result<(), ()> {
            store.put(&s);
            Ok(())
        })
        .unwrap();
    let mut d = Decoder::new(cap);
    d.set_window(1);
    assert!(d.file().is_none());
    assert_eq!(d.wanted(), vec![cap.root]);
    let mut out = Vec::new();
    let mut max_wanted = 0;
    while !d.is_finished() {
        while let Some(pt) = d.next_output().unwrap() {
            out.extend_from_slice(&pt);
        }
        let w = d.wanted();
        max_wanted = max_wanted.max(w.len());
        for id in w {
            d.add_header(id, &store.headers[&id]).unwrap();
            for s in d.shard_plan(&id).unwrap() {
                if d.add_shard(id, store.shards[&s].clone()).unwrap() {
                    break;
                }
            }
        }
    }
    assert!(out == data);
    assert_eq!(max_wanted, 1);
    let f = d.file().unwrap();
    assert_eq!((f.meta.clone(), f.size, f.chunks.len()), (meta, data.len() as u64, 5));
}

#[test]
fn data_shards_are_asked_for_first() {
    let data = random_bytes(SMALL, 15);
    let (cap, store) = encode(&data, opts(4, 2, SMALL, Secret::public()));
    let mut d = Decoder::new(cap);
    d.add_header(cap.root, &store.headers[&cap.root]).unwrap();
    let plan = d.shard_plan(&cap.root).unwrap();
    let (_, ids) = store.stripes.iter().find(|(id, _)| *id == cap.root).unwrap();
    assert_eq!(plan, *ids, "indices 0..n in order: data first");
}

#[test]
fn bad_parameters_are_refused() {
    use kura_core::{EncodeError, EncodeOptions, Encoder, ErasureError, Params};
    assert_eq!(Params::new(0, 2), Err(ErasureError::NoDataShards));
    assert_eq!(Params::new(1, 2), Err(ErasureError::NoDataShards));
    assert_eq!(Params::new(4, 0), Err(ErasureError::NoParityShards));
    assert_eq!(Params::new(200, 56), Err(ErasureError::TooManyShards(256)));
    let e = Encoder::new(EncodeOptions { chunk_size: 100, ..EncodeOptions::default() }).unwrap_err();
    assert_eq!(e, EncodeError::ChunkSize(100));
}

#[test]
fn identical_shards_of_one_stripe_fill_every_index_they_have() {
    // A 5-byte chunk with k = 30: 21 bytes of ciphertext, one byte per shard, so data shards
    // 21..30 are all padding and share one address.
    let (stripe, chunk) = encode_single_chunk(&opts(30, 2, SMALL, Secret::public()), b"hello").unwrap();
    let header = stripe.header();
    let pad = header.shards()[25];
    assert_eq!(header.shards().iter().filter(|&&s| s == pad).count(), 9, "nine padding shards");
    let mut asm = kura_core::StripeAssembler::new(stripe.id(), stripe.header_bytes()).unwrap();
    for i in 0..22 {
        asm.add_shard(stripe.shard(i).to_vec()).unwrap();
    }
    assert_eq!(asm.present(), 30, "the one padding shard filled all nine indices");
    assert!(asm.missing() == vec![30, 31], "only parity missing: {:?}", asm.missing());
    assert_eq!(asm.decrypt(&chunk.key).unwrap(), b"hello");
    // A shard checked at its index: a padding shard is good at any padding index, and at
    // no other; changed bytes, another stripe's id or an index past the end are refused.
    let (id, hb) = (stripe.id(), stripe.header_bytes());
    let check =
        |id: &kura_core::StripeId, index: u8, shard: &[u8]| StripeHeader::check_shard(id, hb, index, shard);
    assert_eq!(check(&id, 25, stripe.shard(25)), Ok(()));
    assert_eq!(check(&id, 21, stripe.shard(25)), Ok(()));
    assert!(matches!(check(&id, 3, stripe.shard(25)), Err(StripeError::UnknownShard { .. })));
    let mut changed = stripe.shard(1).to_vec();
    changed[0] ^= 1;
    assert!(matches!(check(&id, 1, &changed), Err(StripeError::UnknownShard { .. })));
    let other = kura_core::StripeId::from_bytes([7; 32]);
    assert!(matches!(check(&other, 1, stripe.shard(1)), Err(StripeError::Header { .. })));
    assert!(check(&id, 40, stripe.shard(1)).is_err());
}

#[test]
fn a_stripe_is_whole_again_from_any_k_of_its_shards() {
    let (stripe, _) =
        encode_single_chunk(&opts(4, 2, SMALL, Secret::public()), &random_bytes(3000, 9)).unwrap();
    // Two data shards lost: rebuilt from the others and the parity.
    let mut asm = kura_core::StripeAssembler::new(stripe.id(), stripe.header_bytes()).unwrap();
    for i in [1, 3, 4, 5] {
        asm.add_shard(stripe.shard(i).to_vec()).unwrap();
    }
    let again = asm.into_stripe().unwrap();
    assert_eq!((again.id(), again.header_bytes()), (stripe.id(), stripe.header_bytes()));
    for i in 0..6 {
        assert_eq!(again.shard(i), stripe.shard(i), "shard {i}");
    }
    let mut short = kura_core::StripeAssembler::new(stripe.id(), stripe.header_bytes()).unwrap();
    short.add_shard(stripe.shard(0).to_vec()).unwrap();
    assert!(short.into_stripe().is_err(), "one shard of k = 4 rebuilds nothing");
}
