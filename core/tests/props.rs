//! Property tests (native only): round trips under random data, parameters, slicing and
//! loss; random bytes never panic any decoder of untrusted input.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use kura_core::wire::{ErrorCode, Message, Request, Response};
use kura_core::{Capability, Decoder, Secret, StripeHeader, StripeId};
use proptest::prelude::*;

const SMALL: usize = 4096;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_with_loss(
        data in proptest::collection::vec(any::<u8>(), 0..40_000),
        k in 2usize..8,
        m in 1usize..4,
        slices in proptest::collection::vec(1usize..9000, 1..5),
        lost in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        private in any::<bool>(),
    ) {
        let secret = if private { Secret::private([9; 32]) } else { Secret::public() };
        let (cap, mut store) = encode_sliced(&data, opts(k, m, SMALL, secret), &slices, "p");
        let n = k + m;
        let mut dropped: Vec<usize> = lost.iter().map(|i| i.index(n)).collect();
        dropped.sort_unstable();
        dropped.dedup();
        dropped.truncate(m);
        for i in &dropped {
            store.drop_index(*i);
        }
        let out = decode_all(cap, &mut store).unwrap();
        prop_assert!(out == data);
    }

    #[test]
    fn range_reads_match_slices(
        len in 0usize..30_000,
        off in 0u64..31_000,
        want in 0u64..20_000,
    ) {
        let data = random_bytes(len, len as u64);
        let (cap, mut store) = encode(&data, opts(3, 2, SMALL, Secret::public()));
        let got = decode(Decoder::with_range(cap, off, want), &mut store);
        if off > len as u64 {
            prop_assert!(got.is_err());
        } else {
            let end = (off + want).min(len as u64) as usize;
            prop_assert!(got.unwrap() == data[off as usize..end]);
        }
    }

    #[test]
    fn capability_parse_never_panics(s in "\\PC{0,200}") {
        let _ = Capability::parse(&s);
    }

    #[test]
    fn capability_like_strings_never_panic(s in "kura1[a-z2-7]{100,115}") {
        let _ = Capability::parse(&s);
    }

    #[test]
    fn untrusted_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = StripeHeader::parse(&b);
        let _ = StripeHeader::parse_verified(&StripeId::of(&b), &b);
        let _ = kura_core::DataMap::from_bytes(&b);
        let _ = Request::from_body(&b);
        let _ = Response::from_body(&b);
        let _ = Request::from_frame(&b);
        let mut d = kura_core::wire::FrameDecoder::new();
        d.push(&b);
        let _ = d.next_body();
    }

    #[test]
    fn wire_messages_round_trip(
        header in proptest::collection::vec(any::<u8>(), 0..300),
        shard in proptest::collection::vec(any::<u8>(), 0..3000),
        ids in proptest::collection::vec(any::<[u8; 32]>(), 0..20),
        code in any::<u16>(),
        detail in "\\PC{0,100}",
    ) {
        let stripes: Vec<StripeId> = ids.iter().map(|b| StripeId::from_bytes(*b)).collect();
        let reqs = [
            Request::Store { header: header.clone(), shard: shard.clone() },
            Request::Holds { stripes: stripes.clone() },
            Request::Handover { header: header.clone(), shard: shard.clone() },
            Request::Prove {
                stripe: stripes.first().copied().unwrap_or(StripeId::from_bytes([0; 32])),
                index: code as u8,
                nonce: ids.first().copied().unwrap_or([7; 32]),
            },
        ];
        for r in reqs {
            let split = r.to_split_frame().unwrap();
            prop_assert_eq!([split.head.as_slice(), split.tail].concat(), r.to_frame().unwrap());
            prop_assert_eq!(Request::from_frame(&r.to_frame().unwrap()).unwrap(), r);
        }
        let chunk: Vec<u8> = shard.iter().copied().take(1024).collect();
        let resps = [
            Response::Shards { header, shards: vec![shard.into()] },
            Response::Held { held: stripes.iter().map(|s| (*s, vec![1u8].into())).collect() },
            Response::Error { code: ErrorCode::from_u16(code), detail },
            Response::Proof { chunk, siblings: ids.clone() },
        ];
        for r in resps {
            let split = r.to_split_frame().unwrap();
            prop_assert_eq!([split.head.as_slice(), split.tail].concat(), r.to_frame().unwrap());
            prop_assert_eq!(Response::from_frame(&r.to_frame().unwrap()).unwrap(), r);
        }
    }

    #[test]
    fn data_map_round_trips(
        name in "\\PC{0,50}",
        media in "[a-z]{0,10}/?[a-z]{0,10}",
        chunks in 0usize..40,
        tail in 1u32..4096,
    ) {
        let refs: Vec<kura_core::ChunkRef> = (0..chunks).map(|i| kura_core::ChunkRef {
            stripe: StripeId::from_bytes([i as u8; 32]),
            key: kura_core::ChunkKey::from_bytes([!(i as u8); 32]),
            len: if i + 1 == chunks { tail } else { 4096 },
        }).collect();
        let size = refs.iter().map(|c| u64::from(c.len)).sum();
        let map = kura_core::DataMap::File(kura_core::FileMap {
            meta: kura_core::FileMeta { name, media_type: media },
            size, chunk_size: 4096, chunks: refs,
        });
        prop_assert_eq!(kura_core::DataMap::from_bytes(&map.to_bytes()).unwrap(), map);
    }
}
