//! Deterministic, incompressible filler bytes for tests and benchmarks (xorshift64*), so a
//! failure reproduces from its seed. Not for anything secret.

/// `len` pseudo-random bytes from `seed`.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A small deterministic generator for simulations in tests (xorshift64).
#[derive(Debug, Clone)]
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 for `n` = 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() % 1_000_000) as f64 / 1e6 < p
    }
}

/// A stand-in signature scheme for simulations of the ledger and farming: a keyed BLAKE3
/// of the message under a secret derived from the key. Simulated adversaries sign only
/// with their own keys (the model's unforgeable signatures); the scheme itself is not
/// secret, so it is for simulations only, never the network.
#[derive(Debug, Clone, Copy)]
pub struct SimKey(pub crate::ledger::Key);

fn sim_sig(key: &crate::ledger::Key, msg: &[u8]) -> crate::ledger::Sig {
    let secret = *blake3::hash(&[b"kura-ledger-sim".as_slice(), key].concat()).as_bytes();
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(blake3::keyed_hash(&secret, msg).as_bytes());
    sig
}

impl crate::ledger::Signer for SimKey {
    fn key(&self) -> crate::ledger::Key {
        self.0
    }
    fn sign(&self, msg: &[u8]) -> crate::ledger::Sig {
        sim_sig(&self.0, msg)
    }
}

/// Checks [`SimKey`] signatures.
#[derive(Debug, Clone, Copy)]
pub struct SimVerifier;

impl crate::ledger::Verifier for SimVerifier {
    fn verify(&self, key: &crate::ledger::Key, msg: &[u8], sig: &crate::ledger::Sig) -> bool {
        sim_sig(key, msg) == *sig
    }
}
