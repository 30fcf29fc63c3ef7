//! The cipher kura-core uses (on wasm32: its own SIMD128 ChaCha20-Poly1305) against the
//! `chacha20poly1305` crate, over lengths around every block and lane boundary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::random_bytes;
use kura_core::ChunkKey;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[test]
fn seal_matches_the_reference_and_open_round_trips() {
    let mut lens: Vec<usize> = (0..300).collect();
    lens.extend([511, 512, 513, 1023, 1024, 1025, 4096, 65_535, 65_537, (1 << 20) + 7]);
    for (n, len) in lens.into_iter().enumerate() {
        let key = ChunkKey::from_bytes(random_bytes(32, n as u64).try_into().unwrap());
        let plain = random_bytes(len, 1000 + n as u64);
        let mut ours = plain.clone();
        let mut theirs = plain.clone();
        let tag = key.seal_in_place(&mut ours);
        let ref_tag = key.seal_in_place_reference(&mut theirs);
        assert!(ours == theirs, "ciphertext differs at length {len}");
        assert_eq!(tag, ref_tag, "tag differs at length {len}");
        let mut back = ours.clone();
        key.open_in_place(&mut back, &tag).unwrap();
        assert!(back == plain, "round trip at length {len}");
        if len > 0 {
            let mut bad = ours.clone();
            bad[len / 2] ^= 1;
            assert!(key.open_in_place(&mut bad, &tag).is_err(), "tampering detected at length {len}");
        }
        let mut wrong_tag = tag;
        wrong_tag[0] ^= 0x80;
        assert!(key.open_in_place(&mut ours.clone(), &wrong_tag).is_err());
    }
}

/// RFC 8439 section 2.4.2 keystream, checked through the AEAD: with the zero nonce the
/// keystream differs, so this checks against the crate on the RFC's key and plaintext.
#[test]
fn rfc_key_and_plaintext() {
    let key: [u8; 32] = core::array::from_fn(|i| i as u8);
    let text = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
    let k = ChunkKey::from_bytes(key);
    let (mut a, mut b) = (text.to_vec(), text.to_vec());
    assert_eq!(k.seal_in_place(&mut a), k.seal_in_place_reference(&mut b));
    assert_eq!(a, b);
}
