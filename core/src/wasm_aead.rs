//! ChaCha20-Poly1305 (RFC 8439, empty associated data) with WebAssembly SIMD128, for the
//! browser: the `chacha20` crate has no wasm SIMD backend and runs about 3x slower there.
//!
//! Four ChaCha20 blocks are computed at once, one per 32-bit lane; rotations by 16 and 8 are
//! byte shuffles. The Poly1305 half is the `poly1305` crate. Output is byte-identical to the
//! `chacha20poly1305` crate used natively: `tests/aead.rs` compares the two in Chromium over
//! many lengths, and the known-answer vectors pin the ciphertexts.

use core::arch::wasm32::{
    i32x4_shuffle, i64x2_shuffle, i8x16_shuffle, u32x4, u32x4_add, u32x4_shl, u32x4_shr, u32x4_splat, v128,
    v128_load, v128_or, v128_store, v128_xor,
};
use poly1305::universal_hash::{KeyInit, UniversalHash};
use poly1305::Poly1305;

const BLOCK: usize = 64;
const GROUP: usize = 4 * BLOCK;

fn load(s: &[u8]) -> v128 {
    assert!(s.len() >= 16);
    // SAFETY: 16 readable bytes were just checked; v128_load has no alignment requirement.
    #[allow(unsafe_code)]
    unsafe {
        v128_load(s.as_ptr().cast::<v128>())
    }
}

fn store(d: &mut [u8], x: v128) {
    assert!(d.len() >= 16);
    // SAFETY: 16 writable bytes were just checked; v128_store has no alignment requirement.
    #[allow(unsafe_code)]
    unsafe {
        v128_store(d.as_mut_ptr().cast::<v128>(), x)
    }
}

#[inline(always)]
fn rotl16(x: v128) -> v128 {
    i8x16_shuffle::<2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13>(x, x)
}

#[inline(always)]
fn rotl8(x: v128) -> v128 {
    i8x16_shuffle::<3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14>(x, x)
}

#[inline(always)]
fn rotl<const L: u32, const R: u32>(x: v128) -> v128 {
    v128_or(u32x4_shl(x, L), u32x4_shr(x, R))
}

#[inline(always)]
fn quarter(x: &mut [v128; 16], a: usize, b: usize, c: usize, d: usize) {
    x[a] = u32x4_add(x[a], x[b]);
    x[d] = rotl16(v128_xor(x[d], x[a]));
    x[c] = u32x4_add(x[c], x[d]);
    x[b] = rotl::<12, 20>(v128_xor(x[b], x[c]));
    x[a] = u32x4_add(x[a], x[b]);
    x[d] = rotl8(v128_xor(x[d], x[a]));
    x[c] = u32x4_add(x[c], x[d]);
    x[b] = rotl::<7, 25>(v128_xor(x[b], x[c]));
}

/// The keystream of blocks `counter .. counter + 4` (zero nonce) XORed into `out` (256 bytes).
fn four_blocks(key: &[u32; 8], counter: u32, out: &mut [u8]) {
    let mut init = [u32x4_splat(0); 16];
    for (i, c) in [0x6170_7865u32, 0x3320_646e, 0x7962_2d32, 0x6b20_6574].into_iter().enumerate() {
        init[i] = u32x4_splat(c);
    }
    for (i, k) in key.iter().enumerate() {
        init[4 + i] = u32x4_splat(*k);
    }
    init[12] = u32x4(counter, counter.wrapping_add(1), counter.wrapping_add(2), counter.wrapping_add(3));
    let mut x = init;
    for _ in 0..10 {
        quarter(&mut x, 0, 4, 8, 12);
        quarter(&mut x, 1, 5, 9, 13);
        quarter(&mut x, 2, 6, 10, 14);
        quarter(&mut x, 3, 7, 11, 15);
        quarter(&mut x, 0, 5, 10, 15);
        quarter(&mut x, 1, 6, 11, 12);
        quarter(&mut x, 2, 7, 8, 13);
        quarter(&mut x, 3, 4, 9, 14);
    }
    for g in 0..4 {
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| u32x4_add(x[4 * g + i], init[4 * g + i]));
        // Transpose: lane j of a, b, c, d are words 4g..4g+4 of block j.
        let t0 = i32x4_shuffle::<0, 4, 1, 5>(a, b);
        let t1 = i32x4_shuffle::<2, 6, 3, 7>(a, b);
        let t2 = i32x4_shuffle::<0, 4, 1, 5>(c, d);
        let t3 = i32x4_shuffle::<2, 6, 3, 7>(c, d);
        let rows = [
            i64x2_shuffle::<0, 2>(t0, t2),
            i64x2_shuffle::<1, 3>(t0, t2),
            i64x2_shuffle::<0, 2>(t1, t3),
            i64x2_shuffle::<1, 3>(t1, t3),
        ];
        for (j, r) in rows.into_iter().enumerate() {
            let at = j * BLOCK + 16 * g;
            let v = v128_xor(load(&out[at..]), r);
            store(&mut out[at..], v);
        }
    }
}

/// XORs the keystream starting at block `counter` into `buf`.
fn apply_keystream(key: &[u32; 8], mut counter: u32, buf: &mut [u8]) {
    let mut chunks = buf.chunks_exact_mut(GROUP);
    for c in &mut chunks {
        four_blocks(key, counter, c);
        counter = counter.wrapping_add(4);
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut t = [0u8; GROUP];
        t[..tail.len()].copy_from_slice(tail);
        four_blocks(key, counter, &mut t);
        tail.copy_from_slice(&t[..tail.len()]);
    }
}

fn words(key: &[u8; 32]) -> [u32; 8] {
    core::array::from_fn(|i| u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]]))
}

fn tag(key: &[u32; 8], ct: &[u8]) -> [u8; 16] {
    let mut block0 = [0u8; GROUP];
    four_blocks(key, 0, &mut block0);
    let mut mac = Poly1305::new(poly1305::Key::from_slice(&block0[..32]));
    mac.update_padded(ct);
    let mut lens = [0u8; 16];
    lens[8..].copy_from_slice(&(ct.len() as u64).to_le_bytes());
    mac.update(&[lens.into()]);
    mac.finalize().into()
}

/// Encrypts `buf` in place; returns the tag.
pub(crate) fn seal(key: &[u8; 32], buf: &mut [u8]) -> [u8; 16] {
    let k = words(key);
    apply_keystream(&k, 1, buf);
    tag(&k, buf)
}

/// Checks the tag (constant time), then decrypts `buf` in place.
pub(crate) fn open(key: &[u8; 32], buf: &mut [u8], expected: &[u8; 16]) -> bool {
    let k = words(key);
    let t = tag(&k, buf);
    let diff = t.iter().zip(expected).fold(0u8, |d, (a, b)| d | (a ^ b));
    if diff != 0 {
        return false;
    }
    apply_keystream(&k, 1, buf);
    true
}
