//! Proofs of possession: a holder shows that it still has a shard's bytes, and anyone who
//! knows the shard's address and length (both in the stripe header) checks the answer
//! without holding the shard.
//!
//! A shard's address is `BLAKE3(shard)`, the root of BLAKE3's tree of 1 KiB chunks. A
//! challenge names a nonce; the chunk to prove is derived from
//! `BLAKE3(DOMAIN || nonce || holder || address)`, so the holder cannot choose it and cannot
//! reuse an answer made for someone else. The answer is that chunk and the chaining values of
//! the sibling subtrees on its path to the root (top first): for a 256 KiB shard one 1 KiB
//! chunk and 8 × 32 bytes. The checker hashes the chunk at its offset, merges upward with the
//! siblings, and compares the root with the address.
//!
//! What a proof shows: that whoever answered had the challenged chunk and the hashes of the
//! rest at the time, which in practice means the shard (a holder that kept only the tree's
//! hashes and not the bytes cannot answer for a chunk it does not have). What it does not
//! show: that the answer was not fetched from another holder at the moment it was asked.
//! Each member of a close group holds a *different* shard, so there is no neighbour to copy
//! from: a relay that dropped its shard must rebuild it from `k` others for every challenge.
//!
//! No IO: [`prove`] takes the shard's bytes, [`verify`] the answer.

use crate::address::ShardId;
use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};

/// Bytes of a BLAKE3 chunk, the unit a proof shows.
pub const CHUNK_LEN: usize = blake3::CHUNK_LEN;
/// Most sibling hashes a proof may carry (a tree over the largest shard is 13 levels deep;
/// room to spare, and a bound for readers).
pub const MAX_PROOF_SIBLINGS: usize = 32;
/// Length of a challenge's nonce.
pub const NONCE_LEN: usize = 32;

const DOMAIN: &[u8] = b"kura possession challenge v1";

/// A holder's answer to a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The challenged chunk's bytes.
    pub chunk: Vec<u8>,
    /// Chaining values of the sibling subtrees along the chunk's path, top first.
    pub siblings: Vec<[u8; 32]>,
}

/// Why a proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    #[error("the chunk is {found} bytes; {expected} expected at that offset")]
    ChunkLen { found: usize, expected: usize },
    #[error("{found} sibling hashes; {expected} expected for that chunk")]
    Siblings { found: usize, expected: usize },
    #[error("the proof does not lead to the shard's address")]
    Mismatch,
}

/// The chunk (by index) a challenge asks `holder` to prove for the shard `address` of
/// `len` bytes.
pub fn challenged_chunk(nonce: &[u8; NONCE_LEN], holder: &[u8], address: &ShardId, len: usize) -> usize {
    let chunks = len.div_ceil(CHUNK_LEN).max(1);
    let mut h = blake3::Hasher::new();
    h.update(DOMAIN);
    h.update(nonce);
    h.update(&(holder.len() as u64).to_le_bytes());
    h.update(holder);
    h.update(address.as_bytes());
    let mut pick = [0u8; 8];
    pick.copy_from_slice(&h.finalize().as_bytes()[..8]);
    (u64::from_le_bytes(pick) % chunks as u64) as usize
}

/// The chaining value of `bytes` as the subtree starting at `offset` of a larger input.
fn subtree_cv(bytes: &[u8], offset: usize) -> ChainingValue {
    let mut h = blake3::Hasher::new();
    h.set_input_offset(offset as u64);
    h.update(bytes);
    h.finalize_non_root()
}

/// The answer to a challenge for chunk `chunk` of `shard`.
pub fn prove(shard: &[u8], chunk: usize) -> Proof {
    let chunk_start = (chunk * CHUNK_LEN).min(shard.len());
    let mut siblings = Vec::new();
    // Walk down from the whole shard to the chunk, keeping the sibling at each level.
    let (mut start, mut len) = (0usize, shard.len());
    while len > CHUNK_LEN {
        let left = left_subtree_len(len as u64) as usize;
        if chunk_start < start + left {
            siblings.push(subtree_cv(&shard[start + left..start + len], start + left));
            len = left;
        } else {
            siblings.push(subtree_cv(&shard[start..start + left], start));
            start += left;
            len -= left;
        }
    }
    Proof { chunk: shard[start..start + len].to_vec(), siblings }
}

/// Checks `proof` for chunk `chunk` of the shard `address` of `len` bytes.
pub fn verify(address: &ShardId, len: usize, chunk: usize, proof: &Proof) -> Result<(), ProofError> {
    let chunk_start = (chunk * CHUNK_LEN).min(len);
    // The path: at each level, whether the chunk is on the left, and the subtree it is in.
    let mut path = Vec::new();
    let (mut start, mut size) = (0usize, len);
    while size > CHUNK_LEN {
        let left = left_subtree_len(size as u64) as usize;
        let goes_left = chunk_start < start + left;
        path.push(goes_left);
        if goes_left {
            size = left;
        } else {
            start += left;
            size -= left;
        }
    }
    if proof.chunk.len() != size {
        return Err(ProofError::ChunkLen { found: proof.chunk.len(), expected: size });
    }
    if proof.siblings.len() != path.len() {
        return Err(ProofError::Siblings { found: proof.siblings.len(), expected: path.len() });
    }
    let root = if path.is_empty() {
        // A shard of one chunk: its hash is the root itself.
        blake3::hash(&proof.chunk)
    } else {
        let mut cv = subtree_cv(&proof.chunk, start);
        let mut root = None;
        for (level, (&goes_left, sibling)) in path.iter().zip(&proof.siblings).enumerate().rev() {
            let (l, r) = if goes_left { (&cv, sibling) } else { (sibling, &cv) };
            if level == 0 {
                root = Some(merge_subtrees_root(l, r, Mode::Hash));
            } else {
                cv = merge_subtrees_non_root(l, r, Mode::Hash);
            }
        }
        root.ok_or(ProofError::Mismatch)?
    };
    // blake3::Hash compares in constant time.
    if root == blake3::Hash::from(*address.as_bytes()) {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testdata::pseudo_random;

    #[test]
    fn every_chunk_of_shards_of_awkward_sizes_proves_and_checks() {
        for len in [0usize, 1, 1023, 1024, 1025, 2048, 3000, 4097, 65_536, 100_001, 262_148] {
            let shard = pseudo_random(len, len as u64);
            let address = ShardId::of(&shard);
            let chunks = len.div_ceil(CHUNK_LEN).max(1);
            for c in 0..chunks {
                let p = prove(&shard, c);
                assert_eq!(verify(&address, len, c, &p), Ok(()), "len {len} chunk {c}");
                assert!(p.siblings.len() <= MAX_PROOF_SIBLINGS);
            }
        }
    }

    #[test]
    fn a_proof_from_other_bytes_or_for_another_chunk_fails() {
        let shard = pseudo_random(262_148, 9);
        let address = ShardId::of(&shard);
        let p = prove(&shard, 17);
        assert_eq!(verify(&address, shard.len(), 18, &p), Err(ProofError::Mismatch), "another chunk");
        let mut bad = p.clone();
        bad.chunk[5] ^= 1;
        assert_eq!(
            verify(&address, shard.len(), 17, &bad),
            Err(ProofError::Mismatch),
            "one bit of the chunk"
        );
        let mut bad = p.clone();
        bad.siblings[3][0] ^= 1;
        assert_eq!(
            verify(&address, shard.len(), 17, &bad),
            Err(ProofError::Mismatch),
            "one bit of a sibling"
        );
        let mut bad = p.clone();
        bad.siblings.pop();
        assert!(matches!(verify(&address, shard.len(), 17, &bad), Err(ProofError::Siblings { .. })));
        let mut bad = p;
        bad.chunk.push(0);
        assert!(matches!(verify(&address, shard.len(), 17, &bad), Err(ProofError::ChunkLen { .. })));
        // A neighbour's shard, however real, does not answer for this one.
        let other = pseudo_random(262_148, 10);
        assert_eq!(verify(&address, shard.len(), 17, &prove(&other, 17)), Err(ProofError::Mismatch));
    }

    #[test]
    fn the_chunk_depends_on_nonce_holder_and_address() {
        let a = ShardId::of(b"a");
        let picks: std::collections::BTreeSet<usize> =
            (0..64u8).map(|i| challenged_chunk(&[i; NONCE_LEN], b"holder", &a, 262_148)).collect();
        assert!(picks.len() > 40, "nonces spread over the chunks: {}", picks.len());
        assert!(picks.iter().all(|&c| c < 257));
        let n = [7; NONCE_LEN];
        let differs = (0..16u8).any(|i| {
            challenged_chunk(&n, &[i], &a, 262_148) != challenged_chunk(&n, &[i + 100], &a, 262_148)
        });
        assert!(differs, "another holder gets another chunk");
        assert_eq!(challenged_chunk(&n, b"x", &a, 0), 0);
    }
}
