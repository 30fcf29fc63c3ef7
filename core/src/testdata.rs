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

/// Seeds of ed25519 keys whose accounts carry the account work
/// ([`crate::ledger::ACCOUNT_BITS`]), made by `kura-sim account-keys --count 32` then
/// `kura-sim account-keys --count 160 --seed 2`: the wallets tests fund and test relays'
/// rewards accounts, without paying the work each time.
const ACCOUNT_KEYS: &str = include_str!("account_keys.txt");

/// The `i`-th test wallet carrying the account work: from the pool while it lasts, then
/// made (about a second each) from a seed that follows from `i`.
pub fn account_key(i: usize) -> crate::ledger::SigningKey {
    let pooled = ACCOUNT_KEYS.lines().filter_map(crate::hex::decode_array::<32>).nth(i);
    let key = pooled.map(|seed| crate::ledger::SigningKey::from_bytes(&seed));
    match key {
        Some(k)
            if crate::ledger::account_work(&k.verifying_key().to_bytes()) >= crate::ledger::ACCOUNT_BITS =>
        {
            k
        }
        _ => account_from(&mut XorShift((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)),
    }
}

/// A wallet carrying the account work, from seeds `rng` draws (deterministic: for tests and
/// the pool above, never a real wallet).
pub fn account_from(rng: &mut XorShift) -> crate::ledger::SigningKey {
    let fill = |s: &mut [u8; 32]| {
        for c in s.chunks_mut(8) {
            c.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        Ok::<(), std::convert::Infallible>(())
    };
    crate::ledger::make_account(crate::ledger::ACCOUNT_BITS, fill).unwrap_or_else(|e| match e {})
}

/// The `n`-th stand-in account key for simulations ([`SimKey`]): the first of `n`'s hashes
/// that carries the account work (about 65,000 hashes, a few milliseconds).
pub fn sim_account(n: u64) -> crate::ledger::Key {
    (0u64..)
        .map(|c| *blake3::hash(&[n.to_le_bytes(), c.to_le_bytes()].concat()).as_bytes())
        .find(|k| crate::ledger::account_work(k) >= crate::ledger::ACCOUNT_BITS)
        .unwrap_or_default()
}
