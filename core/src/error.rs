//! What kind of failure a person sees, named once here and carried unchanged to the command
//! line and the page: each error a user can meet has a [`ErrorKind`] and [`ErrorDetails`]
//! (counts, stripe ids), so that a front end chooses its own words by kind and never by
//! reading an error's text.

use crate::placement::PlacementError;
use crate::wire::ErrorCode;
use crate::{CapabilityError, DecodeError, EncodeError, StripeId};

/// The kinds of failure a user can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Fewer relays reachable than a stripe has shards: nothing could be stored safely.
    TooFewRelays,
    /// Too few pieces of the file are reachable to read it.
    Unavailable,
    /// The link (capability) is not a valid one: mistyped, cut or changed.
    DamagedLink,
    /// No relay could be reached at all.
    Unreachable,
    /// Relays refused to store: their quota is full.
    QuotaFull,
    /// Relays refused for now: overloaded, or this peer's allowance is spent.
    Busy,
    /// Relays refused to store without payment: the free allowance is used, or the
    /// postage does not pay (a wallet must pay for the upload).
    Unpaid,
    /// Relays refused for another reason (given in the details' relay code).
    Refused,
    /// Data was read but is not what it should be (a damaged data map, a wrong key).
    Corrupt,
    /// The request itself cannot be done (a range past the end, bad parameters).
    BadRequest,
    /// A fault of this program.
    Internal,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::TooFewRelays,
        ErrorKind::Unavailable,
        ErrorKind::DamagedLink,
        ErrorKind::Unreachable,
        ErrorKind::QuotaFull,
        ErrorKind::Busy,
        ErrorKind::Unpaid,
        ErrorKind::Refused,
        ErrorKind::Corrupt,
        ErrorKind::BadRequest,
        ErrorKind::Internal,
    ];

    /// Its name for programs: `too-few-relays`, `unavailable`, …
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::TooFewRelays => "too-few-relays",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::DamagedLink => "damaged-link",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::QuotaFull => "quota-full",
            ErrorKind::Busy => "busy",
            ErrorKind::Unpaid => "unpaid",
            ErrorKind::Refused => "refused",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::BadRequest => "bad-request",
            ErrorKind::Internal => "internal",
        }
    }

    /// The kind of a relay's refusal.
    pub const fn of_refusal(code: ErrorCode) -> Self {
        match code {
            ErrorCode::QuotaFull => ErrorKind::QuotaFull,
            ErrorCode::Busy => ErrorKind::Busy,
            ErrorCode::Unpaid | ErrorCode::Revoked => ErrorKind::Unpaid,
            _ => ErrorKind::Refused,
        }
    }
}

impl core::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Facts about a failure, for a front end to put in its own words. Fields that do not
/// apply are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDetails {
    /// Relays reachable, or valid shards found.
    pub found: Option<usize>,
    /// Relays, or shards, that were needed.
    pub needed: Option<usize>,
    /// The stripes concerned.
    pub stripes: Vec<StripeId>,
    /// The last refusal a relay gave.
    pub relay_code: Option<ErrorCode>,
}

/// An error a user can see.
pub trait UserError: core::fmt::Display {
    fn kind(&self) -> ErrorKind;
    fn details(&self) -> ErrorDetails {
        ErrorDetails::default()
    }
}

impl UserError for PlacementError {
    fn kind(&self) -> ErrorKind {
        match self {
            PlacementError::TooFewRelays { .. } => ErrorKind::TooFewRelays,
            PlacementError::Exhausted { last_code: Some(code), .. } => ErrorKind::of_refusal(*code),
            PlacementError::Exhausted { last_code: None, .. } => ErrorKind::Unreachable,
        }
    }

    fn details(&self) -> ErrorDetails {
        match self {
            PlacementError::TooFewRelays { live, n } => {
                ErrorDetails { found: Some(*live), needed: Some(*n), ..ErrorDetails::default() }
            }
            PlacementError::Exhausted { last_code, .. } => {
                ErrorDetails { relay_code: *last_code, ..ErrorDetails::default() }
            }
        }
    }
}

impl UserError for DecodeError {
    fn kind(&self) -> ErrorKind {
        match self {
            DecodeError::Unavailable { .. } | DecodeError::NoHeader { .. } => ErrorKind::Unavailable,
            DecodeError::RangeOutOfBounds { .. } => ErrorKind::BadRequest,
            DecodeError::Header { .. }
            | DecodeError::Stripe(_)
            | DecodeError::DataMap(_)
            | DecodeError::ChunkLength { .. } => ErrorKind::Corrupt,
        }
    }

    fn details(&self) -> ErrorDetails {
        match self {
            DecodeError::Unavailable { stripe, have, need, .. } => ErrorDetails {
                found: Some(*have),
                needed: Some(*need),
                stripes: vec![*stripe],
                relay_code: None,
            },
            DecodeError::NoHeader { stripe }
            | DecodeError::Header { stripe, .. }
            | DecodeError::ChunkLength { stripe, .. } => {
                ErrorDetails { stripes: vec![*stripe], ..ErrorDetails::default() }
            }
            _ => ErrorDetails::default(),
        }
    }
}

impl UserError for CapabilityError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::DamagedLink
    }
}

impl UserError for EncodeError {
    fn kind(&self) -> ErrorKind {
        match self {
            EncodeError::StripePending => ErrorKind::Internal,
            _ => ErrorKind::BadRequest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_name() {
        let names: std::collections::BTreeSet<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '-')));
    }

    #[test]
    fn placement_and_decoding_failures_carry_their_kind_and_counts() {
        let e = PlacementError::TooFewRelays { live: 3, n: 6 };
        assert_eq!(
            (e.kind(), e.details().found, e.details().needed),
            (ErrorKind::TooFewRelays, Some(3), Some(6))
        );
        assert!(!e.to_string().contains("--k"), "core carries no command-line wording: {e}");
        let full = PlacementError::Exhausted {
            index: 0,
            tried: 6,
            last: "quota full (4): full".into(),
            last_code: Some(ErrorCode::QuotaFull),
        };
        assert_eq!(full.kind(), ErrorKind::QuotaFull);
        let s = StripeId::of(b"s");
        let u = DecodeError::Unavailable { stripe: s, have: 3, need: 4, missing: vec![1, 2, 5] };
        assert_eq!(u.kind(), ErrorKind::Unavailable);
        assert_eq!(
            u.details(),
            ErrorDetails { found: Some(3), needed: Some(4), stripes: vec![s], relay_code: None }
        );
        assert_eq!(CapabilityError::Checksum.kind(), ErrorKind::DamagedLink);
    }
}
