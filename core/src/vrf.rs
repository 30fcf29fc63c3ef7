//! A verifiable random function over a relay's ed25519 identity key: for a key and an input
//! there is exactly one output its owner can prove, nobody else can compute it before the
//! owner shows it, and anyone with the public key can check it.
//!
//! Kura uses it for **draws** ([`crate::farming::beacon`]): the value that places a relay's
//! audit group for an epoch is the least of the draws its neighbours make for that relay and
//! epoch, shown only after the epoch ends. An ed25519 signature cannot serve: its signer
//! picks the nonce, so one key can sign one message in as many ways as it likes, and a value
//! taken from signatures is the signer's to choose.
//!
//! The construction is the usual one for prime-order groups (a hash to the curve and a proof
//! that two logarithms are equal), on the ed25519 curve with the key's own scalar:
//!
//! - `H = hash_to_curve(A, input)` (RFC 9380, Elligator 2, SHA-512; `A` the public key),
//!   of prime order;
//! - `Γ = a·H`, the proof's point; the output is `BLAKE3-derive-key(Γ)`;
//! - a Chaum–Pedersen proof that `log_B A = log_H Γ`: a nonce `k` (derived from the secret
//!   scalar and `H`, so proving twice gives the same bytes), `c = hash(A, H, Γ, k·B, k·H)`,
//!   `s = k + c·a`; checked by recomputing `s·B − c·A` and `s·H − c·Γ`.
//!
//! **Why the output is unique.** The verifier takes only a public key of prime order (no
//! small-order part, not of small order: an honest ed25519 key never has one) and a `Γ` of
//! prime order. In a group of prime order the proof is sound: a prover that passes with
//! probability better than about `2⁻²⁵²` knows `a` and has `Γ = a·H`, so for one key and
//! one input there is one `Γ` and one output. Without those checks a key with a torsion part
//! would let its owner show up to eight outputs. **Why it is unpredictable.** Computing `Γ`
//! from `A` and `H` alone is the computational Diffie–Hellman problem on the curve, and the
//! output hashes `Γ`.
use crate::ledger::Key;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use serde::{Deserialize, Serialize};
use sha2_11::{Digest, Sha512};

/// Domain of the hash to the curve.
const HASH_TO_CURVE_DOMAIN: &[u8] = b"kura 2026 vrf hash-to-curve v1";
/// Domain of the proof's challenge.
const CHALLENGE_DOMAIN: &[u8] = b"kura 2026 vrf challenge v1";
/// Domain of the deterministic nonce.
const NONCE_DOMAIN: &[u8] = b"kura 2026 vrf nonce v1";
/// Context of the output's hash.
const OUTPUT_CONTEXT: &str = "kura 2026 vrf output v1";

/// A proof of one key's output for one input: 96 bytes on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrfProof {
    /// `Γ = a·H`, compressed.
    pub gamma: [u8; 32],
    /// The challenge `c`, a canonical scalar.
    pub c: [u8; 32],
    /// The response `s = k + c·a`, a canonical scalar.
    pub s: [u8; 32],
}

impl std::fmt::Debug for VrfProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VrfProof({})", &crate::hex::encode(&self.gamma)[..8])
    }
}

/// Why a proof is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VrfError {
    #[error("the key is not a point of prime order on the curve")]
    BadKey,
    #[error("the proof's point is not a point of prime order on the curve")]
    BadPoint,
    #[error("the proof's scalars are not canonical")]
    BadScalar,
    #[error("the proof does not verify for this key and input")]
    Invalid,
}

/// The key's point `A`, refused unless of prime order.
fn prime_point(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    let p = CompressedEdwardsY(*bytes).decompress()?;
    (!p.is_small_order() && p.is_torsion_free()).then_some(p)
}

/// `H`: the input hashed to a point of prime order, bound to the key.
fn input_point(key: &Key, input: &[u8]) -> EdwardsPoint {
    EdwardsPoint::hash_to_curve::<Sha512>(&[key, input], &[HASH_TO_CURVE_DOMAIN])
}

/// The proof's challenge.
fn challenge(points: [&EdwardsPoint; 5]) -> Scalar {
    let mut h = Sha512::new();
    h.update(CHALLENGE_DOMAIN);
    for p in points {
        h.update(p.compress().as_bytes());
    }
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// The output for `Γ`.
fn output_of(gamma: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(OUTPUT_CONTEXT, gamma)
}

/// The output of the key of `seed` (an ed25519 secret key's 32 bytes) for `input`, and the
/// proof of it. Deterministic: the same key and input give the same bytes.
pub fn prove(seed: &[u8; 32], input: &[u8]) -> ([u8; 32], VrfProof) {
    let signing = ed25519_dalek::SigningKey::from_bytes(seed);
    let a = signing.to_scalar();
    let key = signing.verifying_key().to_bytes();
    let big_a = EdwardsPoint::mul_base(&a);
    let h = input_point(&key, input);
    let gamma = h * a;
    let mut n = Sha512::new();
    n.update(NONCE_DOMAIN);
    n.update(a.as_bytes());
    n.update(h.compress().as_bytes());
    let k = Scalar::from_bytes_mod_order_wide(&n.finalize().into());
    let c = challenge([&big_a, &h, &gamma, &EdwardsPoint::mul_base(&k), &(h * k)]);
    let s = k + c * a;
    let gamma = gamma.compress().to_bytes();
    (output_of(&gamma), VrfProof { gamma, c: c.to_bytes(), s: s.to_bytes() })
}

/// The output `key` proves for `input`, if `proof` shows it.
pub fn verify(key: &Key, input: &[u8], proof: &VrfProof) -> Result<[u8; 32], VrfError> {
    let big_a = prime_point(key).ok_or(VrfError::BadKey)?;
    let gamma = prime_point(&proof.gamma).ok_or(VrfError::BadPoint)?;
    let c = Option::<Scalar>::from(Scalar::from_canonical_bytes(proof.c)).ok_or(VrfError::BadScalar)?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(proof.s)).ok_or(VrfError::BadScalar)?;
    let h = input_point(key, input);
    let u = EdwardsPoint::vartime_double_scalar_mul_basepoint(&-c, &big_a, &s);
    let v = h * s - gamma * c;
    if challenge([&big_a, &h, &gamma, &u, &v]) != c {
        return Err(VrfError::Invalid);
    }
    Ok(output_of(&proof.gamma))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn seed(i: u8) -> [u8; 32] {
        [i; 32]
    }

    fn key(i: u8) -> Key {
        ed25519_dalek::SigningKey::from_bytes(&seed(i)).verifying_key().to_bytes()
    }

    #[test]
    fn a_proof_shows_one_output_and_checks() {
        let (out, proof) = prove(&seed(1), b"relay 7, epoch 9");
        assert_eq!(verify(&key(1), b"relay 7, epoch 9", &proof), Ok(out));
        // Deterministic: proving again gives the same output and the same bytes.
        assert_eq!(prove(&seed(1), b"relay 7, epoch 9"), (out, proof));
        // Another input, another key: other outputs.
        assert_ne!(prove(&seed(1), b"relay 7, epoch 10").0, out);
        assert_ne!(prove(&seed(2), b"relay 7, epoch 9").0, out);
    }

    #[test]
    fn a_proof_for_another_key_or_input_or_altered_is_refused() {
        let (_, proof) = prove(&seed(1), b"input");
        assert_eq!(verify(&key(2), b"input", &proof), Err(VrfError::Invalid));
        assert_eq!(verify(&key(1), b"other", &proof), Err(VrfError::Invalid));
        // Another key's point passed off as this key's output.
        let (_, theirs) = prove(&seed(2), b"input");
        let swapped = VrfProof { gamma: theirs.gamma, ..proof };
        assert_eq!(verify(&key(1), b"input", &swapped), Err(VrfError::Invalid));
        for i in 0..32 {
            let mut c = proof;
            c.c[i] ^= 1;
            assert!(verify(&key(1), b"input", &c).is_err(), "c altered at {i}");
            let mut s = proof;
            s.s[i] ^= 0x10;
            assert!(verify(&key(1), b"input", &s).is_err(), "s altered at {i}");
        }
        // A non-canonical scalar (s + ℓ) is refused, not reduced.
        let mut big = proof;
        big.s = [0xff; 32];
        assert_eq!(verify(&key(1), b"input", &big), Err(VrfError::BadScalar));
    }

    #[test]
    fn keys_and_points_with_a_small_order_part_are_refused() {
        // The point of order 2 (0, −1), added to a key or to Γ: the one key's output could
        // otherwise be shown in several ways.
        let t = CompressedEdwardsY({
            let mut b = [0u8; 32];
            b[0] = 0xec;
            b[1..31].fill(0xff);
            b[31] = 0x7f;
            b
        })
        .decompress()
        .unwrap();
        assert!(t.is_small_order());
        let (_, proof) = prove(&seed(1), b"input");
        let a = CompressedEdwardsY(key(1)).decompress().unwrap();
        let tainted = (a + t).compress().to_bytes();
        assert_eq!(verify(&tainted, b"input", &proof), Err(VrfError::BadKey));
        let g = CompressedEdwardsY(proof.gamma).decompress().unwrap();
        let bent = VrfProof { gamma: (g + t).compress().to_bytes(), ..proof };
        assert_eq!(verify(&key(1), b"input", &bent), Err(VrfError::BadPoint));
        assert_eq!(verify(&t.compress().to_bytes(), b"input", &proof), Err(VrfError::BadKey));
        assert_eq!(verify(&[0xff; 32], b"input", &proof), Err(VrfError::BadKey));
    }
}
