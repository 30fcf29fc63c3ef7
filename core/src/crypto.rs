//! Convergent encryption of chunks.
//!
//! `key = BLAKE3 derive_key("kura chunk key v1", secret || BLAKE3(plaintext))`; the cipher is
//! ChaCha20-Poly1305 with a zero nonce, which is safe because each key encrypts exactly one
//! plaintext. Public data uses the empty secret, so identical chunks get identical keys and
//! dedupe across the network; private data uses a secret of 32 bytes so nobody without it can
//! confirm that a known file is stored.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use core::fmt;
use serde::{Deserialize, Serialize};

/// BLAKE3 key-derivation context for chunk keys.
pub const CHUNK_KEY_CONTEXT: &str = "kura chunk key v1";
/// Length of the Poly1305 tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;
/// Length of a key.
pub const KEY_LEN: usize = 32;

/// The convergence secret: empty for public data, 32 bytes for private data.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Option<[u8; 32]>);

impl Secret {
    /// The empty secret: identical plaintexts give identical keys (network-wide dedup).
    pub const fn public() -> Self {
        Self(None)
    }
    /// A private secret.
    pub const fn private(bytes: [u8; 32]) -> Self {
        Self(Some(bytes))
    }
    /// Whether this is the public (empty) secret.
    pub const fn is_public(&self) -> bool {
        self.0.is_none()
    }
    fn bytes(&self) -> &[u8] {
        match &self.0 {
            Some(b) => b,
            None => &[],
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_public() { "Secret(public)" } else { "Secret(private, redacted)" })
    }
}

/// The key of one chunk.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkKey([u8; KEY_LEN]);

impl ChunkKey {
    /// Wraps raw key bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }
    /// The raw key bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
    /// Derives the convergent key of `plaintext` under `secret`.
    pub fn derive(secret: &Secret, plaintext: &[u8]) -> Self {
        Self::from_content_hash(secret, &blake3::hash(plaintext))
    }

    /// Derives the key from `BLAKE3(plaintext)` computed by the caller.
    pub fn from_content_hash(secret: &Secret, content: &blake3::Hash) -> Self {
        let mut h = blake3::Hasher::new_derive_key(CHUNK_KEY_CONTEXT);
        h.update(secret.bytes());
        h.update(content.as_bytes());
        Self(*h.finalize().as_bytes())
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new((&self.0).into())
    }

    /// Encrypts `buf` in place and returns the tag.
    pub fn seal_in_place(&self, buf: &mut [u8]) -> [u8; TAG_LEN] {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return crate::wasm_aead::seal(&self.0, buf);
        // Encryption of a slice cannot fail: the only error is a length over 256 GiB.
        #[allow(clippy::expect_used, unreachable_code)]
        let tag = self
            .cipher()
            .encrypt_in_place_detached(&Nonce::default(), &[], buf)
            .expect("chunks are far below the ChaCha20 length limit");
        tag.into()
    }

    /// Decrypts `buf` in place, checking `tag`. On failure `buf` is left unspecified.
    pub fn open_in_place(&self, buf: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<(), TagMismatch> {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return if crate::wasm_aead::open(&self.0, buf, tag) { Ok(()) } else { Err(TagMismatch) };
        #[allow(unreachable_code)]
        self.cipher()
            .decrypt_in_place_detached(&Nonce::default(), &[], buf, Tag::from_slice(tag))
            .map_err(|_| TagMismatch)
    }

    /// The same encryption through the `chacha20poly1305` crate on every target, to check
    /// the wasm SIMD implementation against it.
    #[doc(hidden)]
    pub fn seal_in_place_reference(&self, buf: &mut [u8]) -> [u8; TAG_LEN] {
        #[allow(clippy::expect_used)]
        let tag = self
            .cipher()
            .encrypt_in_place_detached(&Nonce::default(), &[], buf)
            .expect("chunks are far below the ChaCha20 length limit");
        tag.into()
    }
}

impl fmt::Debug for ChunkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChunkKey(redacted)")
    }
}

/// The ciphertext does not authenticate under the key: tampered data or a wrong key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ciphertext failed authentication (tampered data or wrong key)")]
pub struct TagMismatch;
