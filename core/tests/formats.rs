//! Capabilities, stripe headers and wire frames: round trips and every kind of bad input.
//! Runs natively and in headless Chromium (wasm32).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::random_bytes;
use kura_core::capability::BODY_CHARS;
use kura_core::wire::{
    frame_body_len, ErrorCode, FrameDecoder, Message, Request, Response, WireError, MAX_FRAME_BODY,
    MAX_HOLDS_QUERY, MAX_PART_LEN,
};
use kura_core::{Capability, CapabilityError, ChunkKey, HeaderError, ShardId, StripeHeader, StripeId};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn sample_cap() -> Capability {
    Capability { root: StripeId::from_bytes([0xab; 32]), key: ChunkKey::from_bytes([0x5c; 32]) }
}

#[test]
fn capability_text_round_trips_and_accepts_links() {
    let cap = sample_cap();
    let text = cap.to_text();
    assert!(text.starts_with("kura1"));
    assert_eq!(text.len(), 5 + BODY_CHARS);
    assert_eq!(Capability::parse(&text).unwrap(), cap);
    assert_eq!(Capability::parse(&format!("  {text}\n")).unwrap(), cap);
    assert_eq!(Capability::parse(&text.to_uppercase()).unwrap(), cap);
    assert_eq!(Capability::parse(&format!("https://relay.example/#{text}")).unwrap(), cap);
    assert_eq!(text.parse::<Capability>().unwrap(), cap);
    for seed in 0..50u64 {
        let b = random_bytes(64, seed);
        let c = Capability {
            root: StripeId::from_bytes(b[..32].try_into().unwrap()),
            key: ChunkKey::from_bytes(b[32..].try_into().unwrap()),
        };
        assert_eq!(Capability::parse(&c.to_text()).unwrap(), c);
    }
}

#[test]
fn capability_parse_errors_say_what_is_wrong() {
    let text = sample_cap().to_text();
    assert_eq!(Capability::parse(""), Err(CapabilityError::MissingPrefix));
    assert_eq!(Capability::parse("hello"), Err(CapabilityError::MissingPrefix));
    assert_eq!(
        Capability::parse(&text.replacen("kura1", "kura2", 1)),
        Err(CapabilityError::UnsupportedVersion('2'))
    );
    assert_eq!(Capability::parse("kura"), Err(CapabilityError::WrongLength { found: 0 }));
    assert_eq!(
        Capability::parse(&text[..text.len() - 4]),
        Err(CapabilityError::WrongLength { found: BODY_CHARS - 4 })
    );
    assert_eq!(
        Capability::parse(&format!("{text}a")),
        Err(CapabilityError::WrongLength { found: BODY_CHARS + 1 })
    );
    let mut bad = text.clone().into_bytes();
    bad[20] = b'1';
    assert_eq!(
        Capability::parse(std::str::from_utf8(&bad).unwrap()),
        Err(CapabilityError::BadCharacter { position: 20, found: '1' })
    );
    // Every single-character change is caught.
    for i in 5..text.len() {
        let mut b = text.clone().into_bytes();
        b[i] = if b[i] == b'a' { b'b' } else { b'a' };
        let e = Capability::parse(std::str::from_utf8(&b).unwrap());
        assert_eq!(e, Err(CapabilityError::Checksum), "change at {i}");
    }
    // Messages are words a person can act on.
    assert!(CapabilityError::Checksum.to_string().contains("damaged"));
    let multibyte = format!("kura1{}", "é".repeat(BODY_CHARS));
    assert!(matches!(Capability::parse(&multibyte), Err(CapabilityError::BadCharacter { position: 5, .. })));
}

fn header(k: u8, m: u8, shard_len: u32, ct_len: u32, n: usize) -> Vec<u8> {
    let mut b = vec![1, k, m, 0];
    b.extend_from_slice(&shard_len.to_le_bytes());
    b.extend_from_slice(&ct_len.to_le_bytes());
    for i in 0..n {
        b.extend_from_slice(&[i as u8; 32]);
    }
    b
}

#[test]
fn stripe_headers_are_validated() {
    let good = header(4, 2, 5, 17, 6);
    let h = StripeHeader::parse(&good).unwrap();
    assert_eq!((h.params().k(), h.params().m(), h.shard_len(), h.plaintext_len()), (4, 2, 5, 1));
    assert_eq!(h.to_bytes(), good, "canonical");
    assert_eq!(h.index_of(&ShardId::from_bytes([3; 32])), Some(3));
    assert_eq!(StripeHeader::parse_verified(&StripeId::of(&good), &good).unwrap(), h);
    assert!(matches!(
        StripeHeader::parse_verified(&StripeId::from_bytes([0; 32]), &good),
        Err(HeaderError::IdMismatch { .. })
    ));
    assert_eq!(StripeHeader::parse(&good[..11]), Err(HeaderError::Truncated(11)));
    let mut v = good.clone();
    v[0] = 9;
    assert_eq!(StripeHeader::parse(&v), Err(HeaderError::Version(9)));
    let mut r = good.clone();
    r[3] = 1;
    assert_eq!(StripeHeader::parse(&r), Err(HeaderError::Reserved(1)));
    assert!(matches!(StripeHeader::parse(&header(1, 2, 17, 17, 3)), Err(HeaderError::Params(_))));
    assert!(matches!(StripeHeader::parse(&header(4, 0, 5, 17, 4)), Err(HeaderError::Params(_))));
    assert!(matches!(StripeHeader::parse(&header(200, 100, 1, 17, 0)), Err(HeaderError::Params(_))));
    assert_eq!(StripeHeader::parse(&header(4, 2, 1, 15, 6)), Err(HeaderError::CiphertextLen(15)));
    assert_eq!(
        StripeHeader::parse(&header(4, 2, 1 << 20, (1 << 20) + 17, 6)),
        Err(HeaderError::CiphertextLen((1 << 20) + 17))
    );
    assert!(matches!(
        StripeHeader::parse(&header(4, 2, 6, 17, 6)),
        Err(HeaderError::ShardLen { found: 6, .. })
    ));
    assert!(matches!(StripeHeader::parse(&header(4, 2, 5, 17, 5)), Err(HeaderError::Length { n: 6, .. })));
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(StripeHeader::parse(&long), Err(HeaderError::Length { .. })));
}

fn messages() -> (Vec<Request>, Vec<Response>) {
    let id = StripeId::from_bytes([9; 32]);
    let reqs = vec![
        Request::Store { header: header(4, 2, 5, 17, 6), shard: random_bytes(5, 1) },
        Request::Store { header: vec![], shard: vec![] },
        Request::Fetch { stripe: id },
        Request::Holds { stripes: vec![id; 3] },
        Request::Holds { stripes: vec![] },
        Request::FetchPart { stripe: id, offset: 8192, len: MAX_PART_LEN as u32 },
    ];
    let resps = vec![
        Response::Stored { index: 3 },
        Response::Shards { header: vec![1, 2], shards: vec![random_bytes(300, 2).into(), vec![].into()] },
        Response::Held { held: vec![(id, vec![0u8, 5].into())] },
        Response::Error { code: ErrorCode::QuotaFull, detail: "relay is full".into() },
        Response::Error { code: ErrorCode::Unknown(999), detail: String::new() },
        Response::Part { header: vec![3; 40], total: 262_160, bytes: random_bytes(MAX_PART_LEN, 3) },
        Response::Part { header: vec![], total: 10, bytes: vec![] },
        Response::FreeSince { epoch: 493_812 },
    ];
    (reqs, resps)
}

#[test]
fn wire_messages_round_trip_through_frames() {
    let (reqs, resps) = messages();
    let mut stream = Vec::new();
    for r in &reqs {
        let f = r.to_frame().unwrap();
        assert_eq!(&Request::from_frame(&f).unwrap(), r);
        stream.extend_from_slice(&f);
    }
    for r in &resps {
        assert_eq!(&Response::from_frame(&r.to_frame().unwrap()).unwrap(), r);
    }
    // The stream decoder splits frames however the bytes arrive.
    let mut dec = FrameDecoder::new();
    let mut got = Vec::new();
    for piece in stream.chunks(3) {
        dec.push(piece);
        while let Some(body) = dec.next_body().unwrap() {
            got.push(Request::from_body(&body).unwrap());
        }
    }
    assert_eq!(got, reqs);
}

#[test]
fn split_frames_are_the_frame_in_two_parts() {
    let (reqs, resps) = messages();
    let joined = |head: &[u8], tail: &[u8]| [head, tail].concat();
    for r in &reqs {
        let s = r.to_split_frame().unwrap();
        assert_eq!(joined(&s.head, s.tail), r.to_frame().unwrap(), "{r:?}");
    }
    for r in &resps {
        let s = r.to_split_frame().unwrap();
        assert_eq!(joined(&s.head, s.tail), r.to_frame().unwrap());
    }
    // A shard of a 1 MiB chunk at k=4 (three-byte length), a largest shard, an empty one:
    // the shard is the tail, not copied into the head.
    for len in [262_148, kura_core::stripe::MAX_SHARD_LEN, 0, 127, 128] {
        let shard = random_bytes(len, 7);
        let store = Request::Store { header: header(4, 2, 5, 17, 6), shard: shard.clone() };
        let s = store.to_split_frame().unwrap();
        assert_eq!(s.tail, &shard[..]);
        assert!(s.head.len() < 400, "the head is the prefix, kind, header and length only");
        assert_eq!(joined(&s.head, s.tail), store.to_frame().unwrap());
        let one = Response::Shards { header: vec![5; 300], shards: vec![shard.clone().into()] };
        let s = one.to_split_frame().unwrap();
        assert_eq!(s.tail, &shard[..]);
        assert_eq!(joined(&s.head, s.tail), one.to_frame().unwrap());
    }
    // Kind numbers as the bodies carry them.
    let store = Request::Store { header: vec![], shard: vec![] }.to_body().unwrap();
    assert_eq!(u32::from(store[0]), Request::STORE_KIND);
    let handover = Request::Handover { header: vec![], shard: vec![] }.to_body().unwrap();
    assert_eq!(u32::from(handover[0]), Request::HANDOVER_KIND);
    let shards = Response::Shards { header: vec![], shards: vec![] }.to_body().unwrap();
    assert_eq!(u32::from(shards[0]), Response::SHARDS_KIND);
    // Limits hold for split frames as for whole ones.
    let big = Request::Store { header: vec![], shard: vec![0; kura_core::stripe::MAX_SHARD_LEN + 1] };
    assert!(matches!(big.to_split_frame(), Err(WireError::TooMany { .. })));
}

#[test]
fn error_codes_are_numbers_and_unknown_ones_survive() {
    for c in 0..=20u16 {
        assert_eq!(ErrorCode::from_u16(c).as_u16(), c);
    }
    assert_eq!(ErrorCode::from_u16(2), ErrorCode::BadHash);
    assert_eq!(ErrorCode::from_u16(4), ErrorCode::QuotaFull);
    assert_eq!(ErrorCode::from_u16(777), ErrorCode::Unknown(777));
    // On the wire a code is a varint u16, not a Rust enum tag.
    let body = Response::Error { code: ErrorCode::Busy, detail: String::new() }.to_body().unwrap();
    assert_eq!(body, vec![3, 5, 0]);
}

#[test]
fn bad_frames_get_errors_not_panics() {
    // Oversized: refused from the prefix alone, before any body is buffered.
    let huge = ((MAX_FRAME_BODY + 1) as u32).to_be_bytes();
    assert_eq!(frame_body_len(huge), Err(WireError::TooLarge(MAX_FRAME_BODY + 1)));
    let mut dec = FrameDecoder::new();
    dec.push(&huge);
    assert_eq!(dec.next_body(), Err(WireError::TooLarge(MAX_FRAME_BODY + 1)));
    dec.push(&[0; 1000]);
    assert!(dec.next_body().is_err(), "a failed stream stays failed");
    // Truncated, trailing, garbage, unknown variants.
    let f = Request::Fetch { stripe: StripeId::from_bytes([1; 32]) }.to_frame().unwrap();
    assert!(matches!(Request::from_frame(&f[..f.len() - 1]), Err(WireError::Truncated { .. })));
    assert!(matches!(Request::from_frame(&f[..2]), Err(WireError::Truncated { .. })));
    let mut t = f.clone();
    t.push(0);
    assert!(matches!(Request::from_frame(&t), Err(WireError::TrailingBytes(1))));
    // A kind from a newer protocol version is told apart from garbage.
    let newer = Request::from_body(&[17, 0, 0]).unwrap_err();
    assert_eq!(newer, WireError::UnknownKind(17));
    assert_eq!(newer.code(), ErrorCode::UnsupportedVersion);
    assert_eq!(Response::from_body(&[12]).unwrap_err(), WireError::UnknownKind(12));
    assert_eq!(Request::from_body(&[18]).unwrap_err(), WireError::UnknownKind(18));
    assert!(matches!(Request::from_body(&[1, 0]), Err(WireError::Malformed(_))));
    assert!(matches!(Request::from_body(&[]), Err(WireError::Malformed(_))));
    // A part over its limit is refused (asked for, or answered).
    let id = StripeId::from_bytes([1; 32]);
    let big = Request::FetchPart { stripe: id, offset: 0, len: MAX_PART_LEN as u32 + 1 };
    assert!(matches!(big.to_body(), Err(WireError::TooMany { field: "part bytes", .. })));
    let fat = Response::Part { header: vec![], total: 1 << 20, bytes: vec![0; MAX_PART_LEN + 1] };
    assert!(matches!(fat.to_body(), Err(WireError::TooMany { .. })));
    // A Holds query over its limit is refused on decode and on encode.
    let many = Request::Holds { stripes: vec![StripeId::from_bytes([0; 32]); MAX_HOLDS_QUERY + 1] };
    assert!(matches!(many.to_body(), Err(WireError::TooMany { .. })));
    let mut body = vec![2u8];
    let n = MAX_HOLDS_QUERY + 1;
    body.extend_from_slice(&[(n & 0x7f) as u8 | 0x80, (n >> 7) as u8]);
    body.extend(std::iter::repeat_n(0u8, 32 * n));
    let e = Request::from_body(&body).unwrap_err();
    assert!(matches!(e, WireError::TooMany { .. }));
    assert_eq!(e.code(), ErrorCode::TooLarge);
    // A length prefix claiming a huge vector in a tiny body does not allocate for it.
    assert!(Request::from_body(&[2, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    for seed in 0..2000u64 {
        let len = (seed % 97) as usize;
        let junk = random_bytes(len, seed);
        let _ = Request::from_body(&junk);
        let _ = Response::from_body(&junk);
        let _ = Request::from_frame(&junk);
        let _ = StripeHeader::parse(&junk);
        let _ = kura_core::DataMap::from_bytes(&junk);
    }
}
