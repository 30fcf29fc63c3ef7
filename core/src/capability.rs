//! Capabilities: the root stripe id and key of a data map, which is all it takes to read a
//! file.
//!
//! Text form (v1): `kura1` followed by 109 characters of lowercase RFC 4648 base32 (no
//! padding) of `root stripe id (32) || root key (32) || checksum (4)`, where the checksum is
//! the first four bytes of `BLAKE3 derive_key("kura capability checksum v1", id || key)`.
//! Share links carry it in the URL fragment; [`Capability::parse`] accepts a bare capability
//! or any text whose last `#` is followed by one.

use crate::address::StripeId;
use crate::crypto::ChunkKey;
use core::fmt;
use core::str::FromStr;

/// Prefix of every v1 capability.
pub const PREFIX: &str = "kura";
/// Version of the text form.
pub const VERSION: char = '1';
const CHECKSUM_CONTEXT: &str = "kura capability checksum v1";
const PAYLOAD_LEN: usize = 64;
const CHECKSUM_LEN: usize = 4;
const RAW_LEN: usize = PAYLOAD_LEN + CHECKSUM_LEN;
/// Characters after the `kura1` prefix.
pub const BODY_CHARS: usize = (RAW_LEN * 8).div_ceil(5);
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The right to read one file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    pub root: StripeId,
    pub key: ChunkKey,
}

impl fmt::Debug for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capability").field("root", &self.root).finish_non_exhaustive()
    }
}

/// Why a capability's text does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilityError {
    #[error("not a Kura capability: it must start with \"kura1\"")]
    MissingPrefix,
    #[error("capability version '{0}' is not supported (this client reads version 1)")]
    UnsupportedVersion(char),
    #[error("capability has {found} characters after \"kura1\"; {BODY_CHARS} expected (truncated or extended link?)")]
    WrongLength { found: usize },
    #[error(
        "capability has an invalid character {found:?} at position {position} (only a-z and 2-7 are used)"
    )]
    BadCharacter { position: usize, found: char },
    #[error("capability checksum does not match: the link is damaged or mistyped")]
    Checksum,
}

fn checksum(payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut h = blake3::Hasher::new_derive_key(CHECKSUM_CONTEXT);
    h.update(payload);
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&h.finalize().as_bytes()[..CHECKSUM_LEN]);
    out
}

impl Capability {
    /// The text form, `kura1…`.
    pub fn to_text(&self) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[..32].copy_from_slice(self.root.as_bytes());
        raw[32..64].copy_from_slice(self.key.as_bytes());
        let sum = checksum(&raw[..PAYLOAD_LEN]);
        raw[PAYLOAD_LEN..].copy_from_slice(&sum);
        let mut s = String::with_capacity(PREFIX.len() + 1 + BODY_CHARS);
        s.push_str(PREFIX);
        s.push(VERSION);
        let (mut acc, mut bits) = (0u32, 0u32);
        for &b in &raw {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                s.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
            }
            acc &= (1 << bits) - 1;
        }
        if bits > 0 {
            s.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
        }
        s
    }

    /// Parses a capability, or a share link whose fragment is one. Surrounding whitespace is
    /// ignored; letters may be upper case.
    pub fn parse(text: &str) -> Result<Self, CapabilityError> {
        let text = text.trim();
        let text = text.rsplit_once('#').map_or(text, |(_, frag)| frag);
        let lower = text.to_ascii_lowercase();
        let body = lower.strip_prefix(PREFIX).ok_or(CapabilityError::MissingPrefix)?;
        let mut chars = body.chars();
        match chars.next() {
            Some(VERSION) => {}
            Some(other) => return Err(CapabilityError::UnsupportedVersion(other)),
            None => return Err(CapabilityError::WrongLength { found: 0 }),
        }
        let body = chars.as_str();
        let found = body.chars().count();
        if found != BODY_CHARS {
            return Err(CapabilityError::WrongLength { found });
        }
        let mut raw = [0u8; RAW_LEN];
        let (mut acc, mut bits, mut at) = (0u32, 0u32, 0usize);
        for (i, c) in body.chars().enumerate() {
            let v = match c {
                'a'..='z' => c as u32 - 'a' as u32,
                '2'..='7' => c as u32 - '2' as u32 + 26,
                _ => return Err(CapabilityError::BadCharacter { position: PREFIX.len() + 1 + i, found: c }),
            };
            acc = (acc << 5) | v;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                raw[at] = (acc >> bits) as u8;
                at += 1;
            }
            acc &= (1 << bits) - 1;
        }
        // 109 * 5 = 545 bits: 544 fill `raw`, the last bit must be zero (canonical form).
        if acc != 0 {
            return Err(CapabilityError::Checksum);
        }
        if checksum(&raw[..PAYLOAD_LEN]) != raw[PAYLOAD_LEN..] {
            return Err(CapabilityError::Checksum);
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&raw[..32]);
        let mut key = [0u8; 32];
        key.copy_from_slice(&raw[32..64]);
        Ok(Self { root: StripeId::from_bytes(id), key: ChunkKey::from_bytes(key) })
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl FromStr for Capability {
    type Err = CapabilityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
