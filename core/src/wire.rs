//! The storage protocol's messages and their codec.
//!
//! Protocol id: [`STORE_PROTOCOL`] (`/kura/store/1`), request-response. Each message is one
//! frame: a 4-byte big-endian body length, then the postcard encoding of a [`Request`] or a
//! [`Response`]. A reader checks the length against [`MAX_FRAME_BODY`] before allocating
//! anything for the body ([`frame_body_len`], [`FrameDecoder`]).
//!
//! ```text
//! client                                   relay
//!   Store { header, shard }        ──►     verify header id, shard address; write
//!                                  ◄──     Stored { index } | Error { code, .. }
//!   Fetch { stripe }               ──►
//!                                  ◄──     Shards { header, shards } | Error { NotFound, .. }
//!   Holds { stripes }              ──►
//!                                  ◄──     Held { held: [(stripe, [index..])] }
//! ```
//! Errors travel as numeric [`ErrorCode`]s plus a human-readable detail, never as a
//! serialized Rust enum; unknown codes decode to [`ErrorCode::Unknown`].

use crate::address::StripeId;
use crate::stripe::{MAX_HEADER_LEN, MAX_SHARD_LEN};
use serde::{Deserialize, Serialize};

/// Protocol id of the storage protocol.
pub const STORE_PROTOCOL: &str = "/kura/store/1";
/// Length of the frame prefix.
pub const FRAME_PREFIX_LEN: usize = 4;
/// Longest human-readable error detail.
pub const MAX_DETAIL_LEN: usize = 512;

/// An error response whose detail is cut (at a character boundary) to `max` bytes.
pub fn error_within(code: ErrorCode, detail: impl ToString, max: usize) -> Response {
    let mut detail = detail.to_string();
    if detail.len() > max {
        let mut cut = max;
        while !detail.is_char_boundary(cut) {
            cut -= 1;
        }
        detail.truncate(cut);
    }
    Response::Error { code, detail }
}
/// Most stripes in one `Holds` query.
pub const MAX_HOLDS_QUERY: usize = 1024;
/// Most shards in one `Shards` response.
pub const MAX_SHARDS_PER_RESPONSE: usize = 4;
/// Most holders a repair order may name.
pub const MAX_REPAIR_HOLDERS: usize = 64;
/// Longest peer id (binary multihash) a repair order may carry.
pub const MAX_PEER_ID_LEN: usize = 64;
/// Longest piece of a shard one `FetchPart` may ask for. A `Part` answer (with a header of
/// up to 16 shards) then fits one 16 KiB WebRTC data-channel message, which is all a browser's
/// WebRTC stream buffers.
pub const MAX_PART_LEN: usize = 8 * 1024;
/// Largest frame body: a response with the maximum number of largest shards plus a header,
/// with room for framing. Anything larger is refused before it is read.
pub const MAX_FRAME_BODY: usize = MAX_SHARDS_PER_RESPONSE * (MAX_SHARD_LEN + 8) + MAX_HEADER_LEN + 1024;

/// A request from a client (or another relay) to a relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// Store one shard of a stripe, with the stripe's header.
    Store {
        #[serde(with = "serde_bytes")]
        header: Vec<u8>,
        #[serde(with = "serde_bytes")]
        shard: Vec<u8>,
    },
    /// Fetch the header and the shard(s) held for a stripe.
    Fetch { stripe: StripeId },
    /// Which of these stripes are held, and which shard indices of each.
    Holds { stripes: Vec<StripeId> },
    /// Relay to relay: rebuild shard `index` of the stripe from `k` shards fetched from
    /// `holders` (peer ids, closest first) and keep it. Sent by the closest member of the
    /// stripe's close group to a member that holds nothing of it. `live` is how many
    /// shards are left (fewer is more urgent). Answered [`Response::Accepted`] once queued.
    Repair {
        #[serde(with = "serde_bytes")]
        header: Vec<u8>,
        index: u8,
        holders: Vec<serde_bytes::ByteBuf>,
        live: u8,
    },
    /// Relay to relay: keep this shard as the receiver's one shard of the stripe (a relay
    /// that fell out of the close group hands its shard to one that joined). Refused with
    /// [`ErrorCode::AlreadyHeld`] if the receiver already holds a shard of the stripe.
    Handover {
        #[serde(with = "serde_bytes")]
        header: Vec<u8>,
        #[serde(with = "serde_bytes")]
        shard: Vec<u8>,
    },
    /// Bytes `offset..offset + len` (at most [`MAX_PART_LEN`]) of the shard held for a
    /// stripe (the lowest index, if several), answered [`Response::Part`]. For readers whose
    /// transport cannot take a whole shard in one answer (a browser over WebRTC-direct).
    FetchPart { stripe: StripeId, offset: u32, len: u32 },
    /// Prove possession of shard `index` of a stripe: answered [`Response::Proof`] for the
    /// chunk [`crate::proof::challenged_chunk`] picks from `nonce`, the answering relay's
    /// peer id and the shard's address. Relays ask it of each other before trusting a claim
    /// that decides what they drop or repair.
    Prove {
        stripe: StripeId,
        index: u8,
        #[serde(with = "serde_bytes")]
        nonce: [u8; crate::proof::NONCE_LEN],
    },
    /// Advice from a client that checked a file: the relay `holder` (a peer id's bytes) could
    /// not prove shard `index` of a stripe. Answered [`Response::Accepted`] when the relay
    /// holds the stripe and relies on that claim: it then challenges the claim itself, soon.
    /// A report changes nobody's standing; only the relay's own challenge does.
    Report {
        stripe: StripeId,
        index: u8,
        #[serde(with = "serde_bytes")]
        holder: Vec<u8>,
    },
    /// A paid `Store`: the shard, the stripe's header, and the postage that pays for it (a
    /// stamp of the uploader's batch and the burn that bought the batch,
    /// [`crate::farming::Postage`]). Refused with [`ErrorCode::Unpaid`] when the postage does
    /// not pay for the stripe; a plain `Store` is taken within the relay's free allowance.
    PaidStore {
        postage: Box<crate::farming::Postage>,
        #[serde(with = "serde_bytes")]
        header: Vec<u8>,
        #[serde(with = "serde_bytes")]
        shard: Vec<u8>,
    },
    /// Relay to relay, at the end of an epoch: the sender's paid shards, for a share of its
    /// reward ([`crate::farming::EpochClaim`]), sent to each member of its audit group.
    /// Answered [`Response::Share`] once the receiver's samples of them all passed, or
    /// [`ErrorCode::Unpaid`] with the reason.
    EpochClaim(Box<crate::farming::EpochClaim>),
    /// The postage a relay keeps for a stripe: asked by a relay that now holds a shard of it
    /// by a repair or a handover (it earns for the shard only with its stamp). Answered
    /// [`Response::Postage`], [`Response::FreeSince`] for a stripe stored free (whose life
    /// the asker then counts from the same epoch), or [`ErrorCode::NotFound`].
    Postage { stripe: StripeId },
    /// A renewal that moves no shard: keep this postage (a stamp of a new batch) for the
    /// shard of its stripe the receiver holds. Answered [`Response::Stored`] with the index
    /// held, [`ErrorCode::NotFound`] when nothing of the stripe is held, or
    /// [`ErrorCode::Unpaid`] when the postage does not pay.
    Restamp { postage: Box<crate::farming::Postage> },
    /// From a donating tab: it holds shard `index` of each stripe listed and is reachable
    /// through the relay `via` (a peer id's bytes: a circuit reservation there). Kept in
    /// memory with an expiry ([`crate::donation::Announcements`]); answered
    /// [`Response::Held`] with the announcements kept. `payee`: the account the tab is
    /// paid into for holding them ([`crate::donation::TabPay`]), if any.
    Announce {
        #[serde(with = "serde_bytes")]
        via: Vec<u8>,
        shards: Vec<(StripeId, u8)>,
        payee: Option<crate::ledger::Key>,
    },
    /// The donating tabs known to hold shards of a stripe: answered [`Response::Holders`].
    Holders { stripe: StripeId },
    /// From a donating tab reachable through the relay `via` (a peer id's bytes) with room
    /// for a shard of up to `room` bytes: give me a shard to hold. Answered
    /// [`Response::Shards`] with the header and one shard the relay holds that the tab
    /// policy ([`crate::donation::Announcements::offer`]) gives this tab (the tab counts as
    /// holding it from then on), or [`ErrorCode::NotFound`] when there is none.
    Offer {
        #[serde(with = "serde_bytes")]
        via: Vec<u8>,
        room: u32,
    },
    /// Evidence that a batch's owner stamped one slot twice: the first stamp with the
    /// batch's burn (`postage`) and the second stamp. The receiver verifies the batch and
    /// both signatures, revokes the batch (its stripes earn nothing and take no more stores)
    /// and passes the evidence on to the relays it knows, once. Answered
    /// [`Response::Accepted`] (also when the batch was revoked already), or
    /// [`ErrorCode::Unpaid`] when it proves nothing.
    Revoke { postage: Box<crate::farming::Postage>, second: Box<crate::farming::Stamp> },
    /// Relay to relay, once epoch `epoch` has ended: the receiver's draw for the sender's
    /// epoch ([`crate::farming::Draw`]), which with its other neighbours' places the
    /// sender's audit group. Answered [`Response::Draw`], or refused (epoch not ended or too
    /// old, a sender that is not a live relay, a receiver not among its neighbours).
    Draw { epoch: u64 },
}

/// A relay's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// The shard is stored (or was already) as index `index` of its stripe.
    Stored { index: u8 },
    /// The header and every shard held for the stripe (verified on read).
    Shards {
        #[serde(with = "serde_bytes")]
        header: Vec<u8>,
        shards: Vec<serde_bytes::ByteBuf>,
    },
    /// For each stripe asked about that is held: the shard indices held.
    Held { held: Vec<(StripeId, serde_bytes::ByteBuf)> },
    /// The request was refused.
    Error { code: ErrorCode, detail: String },
    /// A repair was queued.
    Accepted,
    /// A piece of a shard: `bytes` from the offset asked for (shorter at the end of the
    /// shard), the shard's length `total`, and the stripe's header when the offset was 0
    /// (empty otherwise). The reader checks the assembled shard against its address.
    Part {
        #[serde(with = "serde_bytes")]
        header: Vec<u8>,
        total: u32,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// The answer to [`Request::Prove`]: the challenged chunk and the sibling hashes on its
    /// path to the shard's address, top first (see [`crate::proof`]).
    Proof {
        #[serde(with = "serde_bytes")]
        chunk: Vec<u8>,
        siblings: Vec<[u8; 32]>,
    },
    /// The answer to [`Request::EpochClaim`]: the auditor's signature on the reward.
    Share(crate::farming::RewardShare),
    /// The answer to [`Request::Postage`].
    Postage(Box<crate::farming::Postage>),
    /// The answer to [`Request::Holders`].
    Holders { holders: Vec<TabHolder> },
    /// The answer to [`Request::Postage`] for a stripe stored free: the epoch in which this
    /// relay first took it (its life, [`crate::farming::FreeLife`], counts from there).
    FreeSince { epoch: u64 },
    /// The answer to [`Request::Draw`]: the proof of the one value the receiver's key shows
    /// for the sender's epoch.
    Draw(crate::vrf::VrfProof),
}

/// A donating tab that holds shard `index` of a stripe, reachable through the relay `via`
/// (both peer ids' bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TabHolder {
    #[serde(with = "serde_bytes")]
    pub tab: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub via: Vec<u8>,
    pub index: u8,
}

/// Most shards one [`Request::Announce`] lists.
pub const MAX_ANNOUNCED: usize = 256;
/// Most tabs one [`Response::Holders`] names.
pub const MAX_TAB_HOLDERS: usize = 64;

/// Why a request was refused. Travels as a `u16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Nothing is held for that stripe.
    NotFound,
    /// A header does not hash to its id, or a shard to an address in the header; also sent
    /// when bytes held on disk no longer match their address.
    BadHash,
    /// The message or one of its parts is over its limit.
    TooLarge,
    /// The relay's quota would be exceeded.
    QuotaFull,
    /// The relay is overloaded; retry later or elsewhere.
    Busy,
    /// The request uses a version or variant this relay does not speak.
    UnsupportedVersion,
    /// The request does not decode or breaks a rule (e.g. a bad header).
    Malformed,
    /// The relay failed internally (e.g. a disk error).
    Internal,
    /// The relay already holds a shard of that stripe (a handover or repair would put a
    /// second one on the same machine).
    AlreadyHeld,
    /// The relay is not among the closest live relays to the stripe (by its own view): store
    /// the shard with the stripe's close group.
    NotInGroup,
    /// The store is not paid for: beyond the free allowance without postage, or with
    /// postage that does not pay (an expired, revoked or underpaid batch, a bad stamp).
    Unpaid,
    /// A batch the request names is revoked (its owner stamped a slot twice); the detail
    /// names it (`batch <hex>`). Sent to an epoch claim listing one: its claimant missed the
    /// evidence, is told it, and may claim again without the batch.
    Revoked,
    /// A code this build does not know.
    Unknown(u16),
}

impl ErrorCode {
    /// The numeric code.
    pub const fn as_u16(self) -> u16 {
        match self {
            ErrorCode::NotFound => 1,
            ErrorCode::BadHash => 2,
            ErrorCode::TooLarge => 3,
            ErrorCode::QuotaFull => 4,
            ErrorCode::Busy => 5,
            ErrorCode::UnsupportedVersion => 6,
            ErrorCode::Malformed => 7,
            ErrorCode::Internal => 8,
            ErrorCode::AlreadyHeld => 9,
            ErrorCode::NotInGroup => 10,
            ErrorCode::Unpaid => 11,
            ErrorCode::Revoked => 12,
            ErrorCode::Unknown(c) => c,
        }
    }
    /// From the numeric code.
    pub const fn from_u16(c: u16) -> Self {
        match c {
            1 => ErrorCode::NotFound,
            2 => ErrorCode::BadHash,
            3 => ErrorCode::TooLarge,
            4 => ErrorCode::QuotaFull,
            5 => ErrorCode::Busy,
            6 => ErrorCode::UnsupportedVersion,
            7 => ErrorCode::Malformed,
            8 => ErrorCode::Internal,
            9 => ErrorCode::AlreadyHeld,
            10 => ErrorCode::NotInGroup,
            11 => ErrorCode::Unpaid,
            12 => ErrorCode::Revoked,
            c => ErrorCode::Unknown(c),
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.as_u16())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u16::deserialize(d).map(ErrorCode::from_u16)
    }
}

impl core::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self {
            ErrorCode::NotFound => "not found",
            ErrorCode::BadHash => "bad hash",
            ErrorCode::TooLarge => "too large",
            ErrorCode::QuotaFull => "quota full",
            ErrorCode::Busy => "busy",
            ErrorCode::UnsupportedVersion => "unsupported version",
            ErrorCode::Malformed => "malformed",
            ErrorCode::Internal => "internal error",
            ErrorCode::AlreadyHeld => "already held",
            ErrorCode::NotInGroup => "not in the stripe's close group",
            ErrorCode::Unpaid => "not paid for",
            ErrorCode::Revoked => "a batch named is revoked",
            ErrorCode::Unknown(_) => "unknown error",
        };
        write!(f, "{name} ({})", self.as_u16())
    }
}

/// A frame or message that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("frame body of {0} bytes is over the limit of {MAX_FRAME_BODY}")]
    TooLarge(usize),
    #[error("frame is truncated: {have} of {need} bytes")]
    Truncated { have: usize, need: usize },
    #[error("message does not decode: {0}")]
    Malformed(String),
    #[error("message has {0} trailing bytes")]
    TrailingBytes(usize),
    #[error("{field} has {len} entries, over the limit of {max}")]
    TooMany { field: &'static str, len: usize, max: usize },
    #[error("message kind {0} is not known to this version of the protocol")]
    UnknownKind(u32),
    /// The reader holds as many bytes of messages being read as it may; retry later.
    #[error("too many bytes of messages are being read at once; retry")]
    Overloaded,
}

impl WireError {
    /// The code a relay answers with when a request fails this way.
    pub fn code(&self) -> ErrorCode {
        match self {
            WireError::TooLarge(_) | WireError::TooMany { .. } => ErrorCode::TooLarge,
            WireError::UnknownKind(_) => ErrorCode::UnsupportedVersion,
            WireError::Overloaded => ErrorCode::Busy,
            _ => ErrorCode::Malformed,
        }
    }
}

/// Checks a frame prefix and returns the body length it announces.
pub fn frame_body_len(prefix: [u8; FRAME_PREFIX_LEN]) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME_BODY {
        return Err(WireError::TooLarge(len));
    }
    Ok(len)
}

/// A message of the storage protocol.
pub trait Message: Serialize + for<'de> Deserialize<'de> {
    /// How many kinds (enum variants) this version knows; a body starting with a higher
    /// kind number is from a newer protocol version.
    const KINDS: u32;

    /// Checks limits that the types alone do not express.
    fn check(&self) -> Result<(), WireError>;

    /// Encodes the body (no prefix): [`to_frame`](Self::to_frame) without its prefix.
    fn to_body(&self) -> Result<Vec<u8>, WireError> {
        let mut frame = self.to_frame()?;
        frame.drain(..FRAME_PREFIX_LEN);
        Ok(frame)
    }

    /// Encodes a whole frame: prefix and body, serialized once into a buffer of the exact
    /// size (a shard is copied once, not once for the body and again for the frame).
    fn to_frame(&self) -> Result<Vec<u8>, WireError> {
        self.check()?;
        let malformed = |e: postcard::Error| WireError::Malformed(e.to_string());
        let len = postcard::experimental::serialized_size(self).map_err(malformed)?;
        if len > MAX_FRAME_BODY {
            return Err(WireError::TooLarge(len));
        }
        let mut out = Vec::with_capacity(FRAME_PREFIX_LEN + len);
        // len <= MAX_FRAME_BODY < u32::MAX.
        out.extend_from_slice(&(len as u32).to_be_bytes());
        let out = postcard::to_extend(self, out).map_err(malformed)?;
        debug_assert_eq!(out.len(), FRAME_PREFIX_LEN + len);
        Ok(out)
    }

    /// The length of [`to_frame`](Self::to_frame)'s output, without encoding (for byte
    /// counters); 0 for a message that would not encode.
    fn frame_len(&self) -> usize {
        postcard::experimental::serialized_size(self).map_or(0, |len| FRAME_PREFIX_LEN + len)
    }

    /// Encodes a whole frame as a head and a tail borrowed from the message, so that a
    /// writer can send a shard without first copying it into the frame: `head` followed by
    /// `tail` is exactly [`to_frame`](Self::to_frame). Messages that end in one large byte
    /// string (a `Store`, a `Shards` answer with one shard) have it as their tail; for all
    /// others the tail is empty.
    fn to_split_frame(&self) -> Result<SplitFrame<'_>, WireError> {
        Ok(SplitFrame { head: self.to_frame()?, tail: &[] })
    }

    /// Decodes a body from untrusted bytes.
    fn from_body(body: &[u8]) -> Result<Self, WireError> {
        if body.len() > MAX_FRAME_BODY {
            return Err(WireError::TooLarge(body.len()));
        }
        let (msg, rest) = postcard::take_from_bytes::<Self>(body).map_err(|e| match kind_of(body) {
            Some(k) if k >= Self::KINDS => WireError::UnknownKind(k),
            _ => WireError::Malformed(e.to_string()),
        })?;
        if !rest.is_empty() {
            return Err(WireError::TrailingBytes(rest.len()));
        }
        msg.check()?;
        Ok(msg)
    }

    /// Decodes one complete frame (prefix and body, nothing more).
    fn from_frame(frame: &[u8]) -> Result<Self, WireError> {
        let prefix: [u8; FRAME_PREFIX_LEN] = frame
            .get(..FRAME_PREFIX_LEN)
            .and_then(|p| p.try_into().ok())
            .ok_or(WireError::Truncated { have: frame.len(), need: FRAME_PREFIX_LEN })?;
        let len = frame_body_len(prefix)?;
        let body = &frame[FRAME_PREFIX_LEN..];
        if body.len() < len {
            return Err(WireError::Truncated { have: frame.len(), need: FRAME_PREFIX_LEN + len });
        }
        if body.len() > len {
            return Err(WireError::TrailingBytes(body.len() - len));
        }
        Self::from_body(body)
    }
}

/// A frame in two parts: written one after the other they are the whole frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitFrame<'a> {
    /// The prefix and every byte of the body before `tail`.
    pub head: Vec<u8>,
    /// The message's last byte string, borrowed (empty when the message has none worth
    /// splitting off).
    pub tail: &'a [u8],
}

/// Appends `v` as postcard writes lengths and kinds: LEB128, seven bits per byte, low first.
pub fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The split frame of `msg` (already checked) whose last byte string is `tail`, from
/// `stub`: the same message with that byte string, and any sequence that holds only it,
/// left empty. Postcard writes an empty byte string or sequence as its length, one zero
/// byte, last in the body; the head is the stub's body with that byte replaced by the real
/// `lens` (the sequence's and then the byte string's).
fn split_frame<'a, M: Message>(
    stub: &M,
    lens: &[usize],
    tail: &'a [u8],
) -> Result<SplitFrame<'a>, WireError> {
    let malformed = |e: postcard::Error| WireError::Malformed(e.to_string());
    let mut head = postcard::to_extend(stub, vec![0u8; FRAME_PREFIX_LEN]).map_err(malformed)?;
    if head.pop() != Some(0) {
        return Err(WireError::Malformed("a split frame's stub does not end in an empty length".into()));
    }
    for &len in lens {
        push_varint(&mut head, len as u64);
    }
    let body = head.len() - FRAME_PREFIX_LEN + tail.len();
    if body > MAX_FRAME_BODY {
        return Err(WireError::TooLarge(body));
    }
    // body <= MAX_FRAME_BODY < u32::MAX.
    head[..FRAME_PREFIX_LEN].copy_from_slice(&(body as u32).to_be_bytes());
    Ok(SplitFrame { head, tail })
}

/// The kind (variant number, a varint) a body starts with.
fn kind_of(body: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for (i, b) in body.iter().take(5).enumerate() {
        v |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

pub(crate) fn limit(field: &'static str, len: usize, max: usize) -> Result<(), WireError> {
    if len > max {
        return Err(WireError::TooMany { field, len, max });
    }
    Ok(())
}

impl Request {
    /// The kind number `Store` bodies start with.
    pub const STORE_KIND: u32 = 0;
    /// The kind number `Handover` bodies start with (laid out as a `Store`).
    pub const HANDOVER_KIND: u32 = 4;
    /// The kind number `PaidStore` bodies start with.
    pub const PAID_STORE_KIND: u32 = 8;
}

impl Response {
    /// The kind number `Shards` bodies start with.
    pub const SHARDS_KIND: u32 = 1;
}

impl Message for Request {
    const KINDS: u32 = 17;

    fn to_split_frame(&self) -> Result<SplitFrame<'_>, WireError> {
        match self {
            Request::Store { header, shard } => {
                self.check()?;
                let stub = Request::Store { header: header.clone(), shard: Vec::new() };
                split_frame(&stub, &[shard.len()], shard)
            }
            Request::PaidStore { postage, header, shard } => {
                self.check()?;
                let stub = Request::PaidStore {
                    postage: postage.clone(),
                    header: header.clone(),
                    shard: Vec::new(),
                };
                split_frame(&stub, &[shard.len()], shard)
            }
            _ => Ok(SplitFrame { head: self.to_frame()?, tail: &[] }),
        }
    }

    fn check(&self) -> Result<(), WireError> {
        match self {
            Request::PaidStore { postage, header, shard } => {
                postage.check()?;
                limit("header bytes", header.len(), MAX_HEADER_LEN)?;
                limit("shard bytes", shard.len(), MAX_SHARD_LEN)
            }
            Request::Store { header, shard } => {
                limit("header bytes", header.len(), MAX_HEADER_LEN)?;
                limit("shard bytes", shard.len(), MAX_SHARD_LEN)
            }
            Request::Fetch { .. } => Ok(()),
            Request::Holds { stripes } => limit("stripes", stripes.len(), MAX_HOLDS_QUERY),
            Request::Repair { header, holders, .. } => {
                limit("header bytes", header.len(), MAX_HEADER_LEN)?;
                limit("holders", holders.len(), MAX_REPAIR_HOLDERS)?;
                holders.iter().try_for_each(|h| limit("peer id bytes", h.len(), MAX_PEER_ID_LEN))
            }
            Request::Handover { header, shard } => {
                limit("header bytes", header.len(), MAX_HEADER_LEN)?;
                limit("shard bytes", shard.len(), MAX_SHARD_LEN)
            }
            Request::FetchPart { len, .. } => limit("part bytes", *len as usize, MAX_PART_LEN),
            Request::Prove { .. } => Ok(()),
            Request::Report { holder, .. } => limit("peer id bytes", holder.len(), MAX_PEER_ID_LEN),
            Request::EpochClaim(claim) => claim.check(),
            Request::Postage { .. } => Ok(()),
            Request::Restamp { postage } => postage.check(),
            Request::Announce { via, shards, .. } => {
                limit("peer id bytes", via.len(), MAX_PEER_ID_LEN)?;
                limit("announced shards", shards.len(), MAX_ANNOUNCED)
            }
            Request::Holders { .. } => Ok(()),
            Request::Offer { via, .. } => limit("peer id bytes", via.len(), MAX_PEER_ID_LEN),
            Request::Revoke { postage, .. } => postage.check(),
            Request::Draw { .. } => Ok(()),
        }
    }
}

impl Message for Response {
    const KINDS: u32 = 12;

    fn to_split_frame(&self) -> Result<SplitFrame<'_>, WireError> {
        match self {
            Response::Shards { header, shards } if shards.len() == 1 => {
                self.check()?;
                let stub = Response::Shards { header: header.clone(), shards: Vec::new() };
                split_frame(&stub, &[1, shards[0].len()], &shards[0])
            }
            _ => Ok(SplitFrame { head: self.to_frame()?, tail: &[] }),
        }
    }

    fn check(&self) -> Result<(), WireError> {
        match self {
            Response::Stored { .. } => Ok(()),
            Response::Shards { header, shards } => {
                limit("header bytes", header.len(), MAX_HEADER_LEN)?;
                limit("shards", shards.len(), MAX_SHARDS_PER_RESPONSE)?;
                shards.iter().try_for_each(|s| limit("shard bytes", s.len(), MAX_SHARD_LEN))
            }
            Response::Held { held } => {
                limit("held stripes", held.len(), MAX_HOLDS_QUERY)?;
                held.iter().try_for_each(|(_, idx)| limit("indices", idx.len(), crate::erasure::MAX_SHARDS))
            }
            Response::Error { detail, .. } => limit("detail bytes", detail.len(), MAX_DETAIL_LEN),
            Response::Accepted => Ok(()),
            Response::Part { header, total, bytes } => {
                limit("header bytes", header.len(), MAX_HEADER_LEN)?;
                limit("shard bytes", *total as usize, MAX_SHARD_LEN)?;
                limit("part bytes", bytes.len(), MAX_PART_LEN)
            }
            Response::Proof { chunk, siblings } => {
                limit("chunk bytes", chunk.len(), crate::proof::CHUNK_LEN)?;
                limit("siblings", siblings.len(), crate::proof::MAX_PROOF_SIBLINGS)
            }
            Response::Share(_) => Ok(()),
            Response::Postage(p) => p.check(),
            Response::FreeSince { .. } => Ok(()),
            Response::Draw(_) => Ok(()),
            Response::Holders { holders } => {
                limit("tab holders", holders.len(), MAX_TAB_HOLDERS)?;
                holders.iter().try_for_each(|h| {
                    limit("peer id bytes", h.tab.len(), MAX_PEER_ID_LEN)?;
                    limit("peer id bytes", h.via.len(), MAX_PEER_ID_LEN)
                })
            }
        }
    }
}

/// Splits a byte stream into frame bodies, refusing an oversized frame as soon as its
/// prefix arrives (before buffering its body). After an error the stream must be closed.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    failed: bool,
}

impl FrameDecoder {
    /// A decoder with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next complete frame body, if one is buffered.
    pub fn next_body(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        if self.failed {
            return Err(WireError::Malformed("stream already failed".into()));
        }
        let Some(prefix) = self.buf.get(..FRAME_PREFIX_LEN) else {
            return Ok(None);
        };
        let mut p = [0u8; FRAME_PREFIX_LEN];
        p.copy_from_slice(prefix);
        let len = frame_body_len(p).inspect_err(|_| {
            self.failed = true;
            self.buf = Vec::new();
        })?;
        if self.buf.len() < FRAME_PREFIX_LEN + len {
            return Ok(None);
        }
        let body = self.buf[FRAME_PREFIX_LEN..FRAME_PREFIX_LEN + len].to_vec();
        self.buf.drain(..FRAME_PREFIX_LEN + len);
        Ok(Some(body))
    }
}
