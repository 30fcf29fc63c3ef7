//! The relays: ids in Kura's key space (the SHA-256 of a libp2p ed25519 peer id, as relays
//! have), sorted, each with a region (links between regions are slower) and whether it is
//! up and whether it is the adversary's.

use kura_core::placement::DhtKey;
use kura_core::testdata::XorShift;

/// The identity multihash prefix of an ed25519 libp2p peer id (protobuf key type 1, 32
/// bytes): a relay's id is this and its public key, its place in the key space the SHA-256
/// of that.
const PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

/// The peer id (binary form) of the relay with ed25519 public key `public`.
pub fn peer_id_of_public(public: &[u8; 32]) -> Vec<u8> {
    let mut id = PEER_ID_PREFIX.to_vec();
    id.extend_from_slice(public);
    id
}

/// Where a relay with ed25519 public key `public` sits in the key space.
pub fn key_of_public(public: &[u8; 32]) -> DhtKey {
    DhtKey::of(&peer_id_of_public(public))
}

/// A random point in the key space (for a relay, as good as a real key's: SHA-256 output).
pub fn random_key(rng: &mut XorShift) -> DhtKey {
    let mut k = [0u8; 32];
    for c in k.chunks_mut(8) {
        c.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    DhtKey(k)
}

/// Regions, and one-way latency between them in ms (same region: 5; neighbours: 40; far:
/// 90–140), plus up to 20% jitter per link.
pub const REGIONS: usize = 5;
const REGION_MS: [[f64; REGIONS]; REGIONS] = [
    [5.0, 40.0, 90.0, 120.0, 140.0],
    [40.0, 5.0, 70.0, 100.0, 130.0],
    [90.0, 70.0, 5.0, 60.0, 110.0],
    [120.0, 100.0, 60.0, 5.0, 80.0],
    [140.0, 130.0, 110.0, 80.0, 5.0],
];

/// The relays of one simulated network, sorted by key.
#[derive(Debug, Clone)]
pub struct Population {
    pub keys: Vec<DhtKey>,
    pub region: Vec<u8>,
    pub up: Vec<bool>,
    pub adversary: Vec<bool>,
}

impl Population {
    /// `n` relays with random ids, all up, none the adversary's.
    pub fn random(n: usize, rng: &mut XorShift) -> Self {
        let mut keys: Vec<DhtKey> = (0..n).map(|_| random_key(rng)).collect();
        keys.sort_unstable();
        keys.dedup();
        let n = keys.len();
        let region = (0..n).map(|_| rng.below(REGIONS) as u8).collect();
        Self { keys, region, up: vec![true; n], adversary: vec![false; n] }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Marks a random `fraction` of the relays down (their routing-table entries elsewhere
    /// stay: a stale entry times out when asked).
    pub fn kill(&mut self, fraction: f64, rng: &mut XorShift) {
        for u in &mut self.up {
            if rng.chance(fraction) {
                *u = false;
            }
        }
    }

    /// One-way latency of the link `a → b`, in ms (deterministic per pair).
    pub fn latency_ms(&self, a: usize, b: usize) -> f64 {
        let base = REGION_MS[self.region[a] as usize][self.region[b] as usize];
        let h =
            (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        let jitter = ((h >> 40) % 1000) as f64 / 1000.0 * 0.2;
        base * (1.0 + jitter)
    }

    /// The index range of relays whose keys start with the first `bits` bits of `key`.
    pub fn prefix_range(&self, key: &DhtKey, bits: usize) -> std::ops::Range<usize> {
        let (lo, hi) = prefix_bounds(key, bits);
        let a = self.keys.partition_point(|k| *k < lo);
        let b = self.keys.partition_point(|k| *k <= hi);
        a..b
    }

    /// The `r` relays closest to `target` among those `keep` accepts, closest first: they
    /// lie in the smallest prefix range around `target` that holds `r` accepted relays.
    pub fn closest(&self, target: &DhtKey, r: usize, keep: impl Fn(usize) -> bool) -> Vec<usize> {
        // The longest prefix whose range still holds `r` accepted relays (the count only
        // falls as the prefix grows): a binary search over its length.
        let enough = |bits: usize| self.prefix_range(target, bits).filter(|&i| keep(i)).count() >= r;
        let (mut lo, mut hi) = (0usize, 256usize);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if enough(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let mut v: Vec<usize> = self.prefix_range(target, lo).filter(|&i| keep(i)).collect();
        v.sort_by_key(|&i| target.distance(&self.keys[i]));
        v.truncate(r);
        v
    }
}

/// The smallest and largest keys that share the first `bits` bits of `key`.
pub fn prefix_bounds(key: &DhtKey, bits: usize) -> (DhtKey, DhtKey) {
    let mut lo = key.0;
    let mut hi = key.0;
    for bit in bits.min(256)..256 {
        let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
        lo[byte] &= !mask;
        hi[byte] |= mask;
    }
    (DhtKey(lo), DhtKey(hi))
}

/// `key` with bit `bit` (0 = most significant) flipped.
pub fn flip(key: &DhtKey, bit: usize) -> DhtKey {
    let mut k = key.0;
    k[bit / 8] ^= 0x80u8 >> (bit % 8);
    DhtKey(k)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kura_core::placement::by_distance;

    #[test]
    fn closest_matches_a_full_sort() {
        let mut rng = XorShift(7);
        let p = Population::random(3000, &mut rng);
        for _ in 0..50 {
            let t = random_key(&mut rng);
            let want: Vec<usize> =
                by_distance(&t, (0..p.len()).map(|i| (i, p.keys[i]))).into_iter().take(16).collect();
            assert_eq!(p.closest(&t, 16, |_| true), want);
            let odd: Vec<usize> =
                by_distance(&t, (0..p.len()).filter(|i| i % 2 == 1).map(|i| (i, p.keys[i])))
                    .into_iter()
                    .take(16)
                    .collect();
            assert_eq!(p.closest(&t, 16, |i| i % 2 == 1), odd);
        }
    }

    #[test]
    fn a_relays_key_is_the_hash_of_its_peer_id() {
        // The libp2p peer id of the ed25519 key with this public key, as relays print it.
        let public = [7u8; 32];
        let k = key_of_public(&public);
        let mut id = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
        id.extend_from_slice(&public);
        assert_eq!(k, DhtKey::of(&id));
        assert_eq!(id.len(), 38);
    }
}
