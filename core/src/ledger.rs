//! Credits: accounts and transfers with no blockchain and no double spend.
//!
//! An **account** is an ed25519 key. Only its owner spends from it, so no consensus is
//! needed (an asset transfer with one owner per account has consensus number 1): it is
//! enough that no two transfers are ever certified for the same slot `(from, seq)`. The
//! account's **replicas** are a [`Group`] of `R` relays (its `R` closest) with a quorum `q`
//! such that two quorums share at least `f + 1 = 2q − R` replicas.
//!
//! 1. The owner signs a [`Transfer`] `{from, seq, to, amount, deps, memo}` and sends it to
//!    the replicas of `from`.
//! 2. A replica ([`Replica::acknowledge`]) answers with its signature ([`Ack`]) only if the
//!    owner's signature holds, `seq` is the account's next, every credit named in `deps` was
//!    applied here and not spent before, the balance covers the amount (checked on every
//!    acknowledgement), and it never acknowledged another transfer for `(from, seq)`. The
//!    caller makes that decision durable before it answers.
//! 3. `q` acknowledgements of group members form a [`Certificate`]: self-verifying, anyone
//!    may pass it on. Applied at the replicas of `from` it debits ([`Replica::apply_debit`]),
//!    at the replicas of `to` it credits ([`Replica::apply_credit`]); each once.
//!
//! Credits are spent by naming them: a transfer's `deps` are certificates crediting `from`
//! that no earlier transfer of `from` named. A replica's view of an account is then the
//! same as any other's once they have applied the same certificates: `balance` (what the
//! debits applied so far left) plus the credits applied and not yet named.
//!
//! **Safety.** Two certificates for one `(from, seq)` with different transfers need two
//! quorums; they share at least `f + 1` replicas, so while at most `f` are Byzantine an
//! honest replica signed both, which it never does. Debits are applied in `seq` order and
//! only when the credits they name are applied and unspent, so a balance never goes below
//! zero and no credit is spent twice; a certificate applied twice (a replay) changes
//! nothing. Where more than `f` replicas of a group are Byzantine, conflicting certificates
//! (or two owner signatures for one slot) are [`Evidence`] anyone can check: the owner and
//! every replica that signed both are named. Value is conserved: at a replica that serves
//! every account, the balances, the unspent credits, what was burnt and the amounts debited
//! but not yet credited sum to what was minted ([`Replica::check_conservation`]).
//!
//! **Chosen accounts.** An account's group sits at its key, and the key is its owner's to
//! make: an adversary holding a share of the relays can make keys until one's group holds
//! more than `f` (or a quorum) of its relays. So replicas serve only keys carrying
//! [`ACCOUNT_BITS`] of [`account_work`] (the mint and [`BURN`] excepted), as sender and as
//! recipient ([`Replica::check_accounts`], before a certificate is verified): a quorum that
//! certifies for a key without the work moves nothing at any honest replica, and each key
//! tried costs `2^ACCOUNT_BITS`. With groups of [`REPLICAS`] = 32 that prices a quorum at a
//! tenth of the relays at about 10⁷ core-years, more than `f` at about seven core-hours —
//! and what such a group lets its owner spend twice is bounded by the spending cap
//! ([`DEFAULT_SPEND_CAP`]).
//!
//! **Minting** is a rule other parts call: transfers from the [`Replica::mint`] account are
//! not balance-checked (rewards and test funding; the farming issue decides who may sign
//! them). **Burning** is a transfer to [`BURN`].
//!
//! No IO and no clock. Signatures are behind [`Verifier`] and [`Signer`]: [`Ed25519`] for
//! the network, cheaper stand-ins in simulations.

/// An owner's key (its verifying key is the account id).
pub use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A public key: an account's (its id) or a replica's.
pub type Key = [u8; 32];
/// A signature.
pub type Sig = [u8; 64];
/// A transfer's id: `BLAKE3(TRANSFER_DOMAIN ‖ postcard(transfer))`.
pub type TransferId = [u8; 32];

/// Credits sent here are destroyed.
pub const BURN: Key = [0; 32];

/// Leading zero bits an account key must show under [`account_work`] before replicas
/// acknowledge, apply or credit anything of it (the mint and [`BURN`] excepted).
///
/// An account's replicas are the relays nearest its key, and a key is the owner's to make:
/// without a price, an adversary whose relays are a share of the network makes keys until
/// one's group holds a quorum of its relays, and certifies credits that account never had
/// (with a tenth of the relays and groups of 16, about 3.7 × 10⁷ keys: eight minutes of one
/// core). The work multiplies every key tried by `2^ACCOUNT_BITS`; an honest wallet pays it
/// once, when it is made (about a second of one core natively, a few in a page).
pub const ACCOUNT_BITS: u32 = 16;

const ACCOUNT_CONTEXT: &str = "kura 2026 account work v1";

/// The account work of `key`: the leading zero bits of a BLAKE3 hash of it under a context
/// of its own (independent of the hash that places the account).
pub fn account_work(key: &Key) -> u32 {
    crate::placement::work_bits(ACCOUNT_CONTEXT, key)
}

/// A new account's key, carrying `bits` of account work ([`ACCOUNT_BITS`] on the network):
/// seeds from `fill` (a source of randomness) are tried until one's key shows the work;
/// the first error of `fill` ends it.
pub fn make_account<E>(
    bits: u32,
    mut fill: impl FnMut(&mut [u8; 32]) -> Result<(), E>,
) -> Result<SigningKey, E> {
    let mut seed = [0u8; 32];
    loop {
        fill(&mut seed)?;
        let key = SigningKey::from_bytes(&seed);
        if account_work(&key.verifying_key().to_bytes()) >= bits {
            return Ok(key);
        }
    }
}
/// Longest memo.
pub const MAX_MEMO: usize = 64;
/// Most credits one transfer names.
pub const MAX_DEPS: usize = 64;
/// Most acknowledgements a certificate carries.
pub const MAX_ACKS: usize = 64;
/// What a transfer's id hashes first.
pub const TRANSFER_DOMAIN: &[u8] = b"kura/ledger/transfer/v1";
/// What an acknowledgement signs first.
pub const ACK_DOMAIN: &[u8] = b"kura/ledger/ack/v1";
/// Certificates kept per account (for evidence against a conflicting one).
const KEPT_CERTIFICATES: usize = 16;

/// Largest encoded certificate: a transfer at its limits (about 2.2 KiB) and `MAX_ACKS`
/// acknowledgements of 97 bytes.
pub const MAX_CERTIFICATE_BYTES: usize = 9 * 1024;

/// Decodes a certificate from untrusted bytes: bounded before it is read, checked after.
/// (Its signatures are checked by [`Certificate::verify`].)
pub fn decode_certificate(bytes: &[u8]) -> Result<Certificate, LedgerError> {
    let c: Certificate = decode_within(bytes, MAX_CERTIFICATE_BYTES)?;
    c.signed.transfer.check()?;
    if c.acks.len() > MAX_ACKS {
        return Err(LedgerError::Limits);
    }
    Ok(c)
}

/// Decodes a message of at most `max` bytes (larger ones are not read).
fn decode_within<T: serde::de::DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, LedgerError> {
    if bytes.len() > max {
        return Err(LedgerError::Limits);
    }
    postcard::from_bytes(bytes).map_err(|_| LedgerError::Limits)
}

/// Moves `amount` from `from` to `to`, as the `seq`-th transfer of `from` (from 1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Transfer {
    pub from: Key,
    pub seq: u64,
    pub to: Key,
    pub amount: u64,
    /// Certificates crediting `from` that this transfer spends (none named before).
    pub deps: Vec<TransferId>,
    #[serde(with = "serde_bytes")]
    pub memo: Vec<u8>,
}

impl Transfer {
    /// The transfer's id (what the owner signs).
    pub fn id(&self) -> TransferId {
        let mut h = blake3::Hasher::new();
        h.update(TRANSFER_DOMAIN);
        // A transfer within its limits always encodes.
        h.update(&postcard::to_allocvec(self).unwrap_or_default());
        *h.finalize().as_bytes()
    }

    /// Checks the limits the types do not express.
    pub fn check(&self) -> Result<(), LedgerError> {
        let distinct: HashSet<&TransferId> = self.deps.iter().collect();
        if self.memo.len() > MAX_MEMO || self.deps.len() > MAX_DEPS || distinct.len() != self.deps.len() {
            return Err(LedgerError::Limits);
        }
        if self.seq == 0 || self.from == self.to || self.from == BURN {
            return Err(LedgerError::Limits);
        }
        Ok(())
    }

    /// Signs it as its owner.
    pub fn sign(self, owner: &impl Signer) -> Signed {
        let sig = owner.sign(&self.id());
        Signed { transfer: self, sig }
    }
}

/// A transfer with its owner's signature over its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    pub transfer: Transfer,
    #[serde(with = "serde_bytes")]
    pub sig: Sig,
}

impl Signed {
    /// Whether the owner (`from`) signed it.
    pub fn verify(&self, v: &impl Verifier) -> bool {
        v.verify(&self.transfer.from, &self.transfer.id(), &self.sig)
    }
}

/// A replica's acknowledgement of one transfer: its signature over [`ack_message`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub replica: Key,
    #[serde(with = "serde_bytes")]
    pub sig: Sig,
}

/// What a replica signs to acknowledge transfer `id` as slot `(from, seq)`.
pub fn ack_message(from: &Key, seq: u64, id: &TransferId) -> Vec<u8> {
    let mut m = Vec::with_capacity(ACK_DOMAIN.len() + 72);
    m.extend_from_slice(ACK_DOMAIN);
    m.extend_from_slice(from);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(id);
    m
}

/// A transfer acknowledged by a quorum of its sender's replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub signed: Signed,
    pub acks: Vec<Ack>,
}

/// An account's replicas and the quorum of them a certificate needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub replicas: Vec<Key>,
    pub quorum: usize,
}

impl Group {
    /// A group whose quorums intersect in at least one replica more than it tolerates.
    pub fn new(replicas: Vec<Key>, quorum: usize) -> Result<Self, LedgerError> {
        let r = replicas.len();
        let distinct: HashSet<&Key> = replicas.iter().collect();
        if distinct.len() != r || quorum > r || 2 * quorum <= r {
            return Err(LedgerError::Limits);
        }
        Ok(Self { replicas, quorum })
    }

    /// Byzantine replicas tolerated: `2q − R − 1`.
    pub fn tolerates(&self) -> usize {
        2 * self.quorum - self.replicas.len() - 1
    }

    /// The group of an account from the replicas closest to it, closest first: the first
    /// [`REPLICAS`] (fewer in a small network), with the quorum `R − ⌊(R − 1)/3⌋` (22 of
    /// 32: ten silent replicas do not stop it, and two quorums share twelve).
    pub fn of_closest(mut closest: Vec<Key>) -> Result<Self, LedgerError> {
        closest.truncate(REPLICAS);
        let r = closest.len();
        if r == 0 {
            return Err(LedgerError::Limits);
        }
        Self::new(closest, Self::quorum_of(r))
    }

    /// The quorum of a group of `r` replicas found by [`Group::of_closest`] (at least 1).
    pub fn quorum_of(r: usize) -> usize {
        let r = r.clamp(1, REPLICAS);
        r - (r - 1) / 3
    }
}

/// Replicas of an account. Thirty-two, not sixteen: an adversary picks the accounts it
/// attacks (see [`ACCOUNT_BITS`]), and a quorum of a group it did not choose by luck is
/// what stands between it and minting. With a tenth of the relays, a group of 16 holds 11
/// of its relays once in about 3.7 × 10⁷ keys, a group of 32 holds 22 once in about
/// 4.2 × 10¹⁴ (`docs/scale/capture.md`).
pub const REPLICAS: usize = 32;
/// Most unspent credits a replica lists for an account (a transfer names at most
/// [`MAX_DEPS`]).
pub const MAX_LISTED_CREDITS: usize = 256;
/// Most recent transfers a replica lists for an account.
pub const MAX_LISTED_TRANSFERS: usize = 16;

/// A request of the ledger protocol (`/kura/ledger/1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerRequest {
    /// Acknowledge this transfer.
    Acknowledge(Signed),
    /// Apply this certificate: as a debit if the replica serves its sender, as a credit if
    /// it serves its recipient.
    Apply(Box<Certificate>),
    /// What the replica knows of an account.
    Account(Key),
    /// A certificate this replica applied (as a debit or a credit), by transfer id: what a
    /// replica that missed it needs, handed over by whoever asks.
    Certificate(TransferId),
    /// One page of an account's whole state ([`StatePage`]): what a member too far behind
    /// to catch up by certificates adopts when `f + 1` members give the same.
    State { account: Key, page: u32 },
    /// Mint this reward into the account it names ([`Replica::deposit_reward`]): sent by the
    /// relay its auditors certified, to the replicas of its rewards account. Answered
    /// `Applied { debit: None, credit: Some(_) }`.
    Reward(Box<crate::farming::RewardCertificate>),
}

/// An answer of the ledger protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerResponse {
    Acked(Ack),
    /// What applying did, as a debit and as a credit (`None`: not a replica for that side).
    Applied {
        debit: Option<bool>,
        credit: Option<bool>,
    },
    Account(AccountView),
    Certificate(Box<Certificate>),
    /// Refused: a [`LedgerError`]'s code and words.
    Refused {
        code: u16,
        detail: String,
    },
    State(Box<StatePage>),
    /// A reward this replica minted, asked for by its id ([`LedgerRequest::Certificate`]
    /// names a reward's id as it does a transfer's): the replica handed it mints it only if
    /// it verifies with its own view of the audit group.
    Reward(Box<crate::farming::RewardCertificate>),
}

/// One replica's view of an account, as the protocol carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub next_seq: u64,
    pub balance: u64,
    /// Unspent credits: transfer id and amount (at most [`MAX_LISTED_CREDITS`]).
    pub credits: Vec<(TransferId, u64)>,
    /// The latest transfers applied as debits (at most [`MAX_LISTED_TRANSFERS`]).
    pub recent: Vec<Transfer>,
    /// The transfer this replica acknowledged for slot `next_seq`, if any: its owner must
    /// complete it before signing another for the slot.
    pub pending: Option<Box<Signed>>,
}

impl AccountView {
    /// Whether this replica's view holds what `agreed` ([`AccountView::agreed`]) says of the
    /// account: the same debits applied (seq and balance) and every credit it lists. The
    /// recent transfers listed are not compared: a member that adopted the state
    /// ([`Replica::adopt_agreed`]) lists none of those before it, and what they are used for
    /// (fetching certificates to apply) verifies each. Credits `agreed` does not list (a
    /// reward fewer than `f + 1` replicas minted) do not matter.
    pub fn agrees(&self, agreed: &AccountView) -> bool {
        (self.next_seq, self.balance) == (agreed.next_seq, agreed.balance)
            && agreed.credits.iter().all(|c| self.credits.contains(c))
    }

    /// What at least `need` of `views` vouch for: the debits applied (seq and balance) most
    /// of them give alike, the furthest along among equals, and of those views' credits the
    /// ones at least `need` of them list. Credits are counted one by one, not as a whole
    /// list: each was minted or applied on its own (a reward is minted by each replica that
    /// verifies it with its own view of the audit group, so a reward that only some took is
    /// held by those only), and a credit held by fewer than `need` must not split the
    /// replicas' word on everything else. Among alike views, the one listing most recent
    /// transfers gives those (and its pending transfer). Otherwise: how many agreed at most.
    pub fn agreed<'a>(
        views: impl IntoIterator<Item = &'a AccountView>,
        need: usize,
    ) -> Result<AccountView, usize> {
        let mut alike: Vec<Vec<&AccountView>> = Vec::new();
        for v in views {
            match alike.iter_mut().find(|w| (w[0].next_seq, w[0].balance) == (v.next_seq, v.balance)) {
                Some(w) => w.push(v),
                None => alike.push(vec![v]),
            }
        }
        alike.sort_by_key(|w| (std::cmp::Reverse(w.len()), std::cmp::Reverse(w[0].next_seq)));
        let most = match alike.into_iter().next() {
            Some(w) if w.len() >= need => w,
            other => return Err(other.map_or(0, |w| w.len())),
        };
        let mut listed: BTreeMap<(TransferId, u64), usize> = BTreeMap::new();
        for v in &most {
            for c in v.credits.iter().collect::<HashSet<_>>() {
                *listed.entry(*c).or_default() += 1;
            }
        }
        let vouched: Vec<(TransferId, u64)> =
            listed.into_iter().filter(|(_, n)| *n >= need).map(|(c, _)| c).collect();
        // One amount per id: an id vouched for with two amounts (a Byzantine member among
        // the vouchers) is left out.
        let credits = vouched
            .iter()
            .filter(|(id, _)| vouched.iter().filter(|(other, _)| other == id).count() == 1)
            .copied()
            .collect();
        let fullest = most.iter().max_by_key(|v| v.recent.len()).copied().unwrap_or(most[0]);
        Ok(AccountView { credits, ..fullest.clone() })
    }

    /// What a replica whose view is `self` lacks to reach `agreed`: certificate ids in the
    /// order to apply them. First [`AccountView::missing_debits`], then the credits `agreed`
    /// lists and it does not hold.
    pub fn missing(&self, agreed: &AccountView) -> Vec<TransferId> {
        let mut out = self.missing_debits(agreed);
        for (id, _) in &agreed.credits {
            if !self.credits.iter().any(|(c, _)| c == id) && !out.contains(id) {
                out.push(*id);
            }
        }
        out
    }

    /// What a replica whose view is `self` must apply to have applied the debits `agreed`
    /// did: for each debit it missed (oldest first), the credits that debit named and it
    /// does not hold, then the debit. None when it missed more than `agreed` lists (they
    /// must be applied in order; such a replica needs the state from its group).
    pub fn missing_debits(&self, agreed: &AccountView) -> Vec<TransferId> {
        let holds = |id: &TransferId| self.credits.iter().any(|(c, _)| c == id);
        let mut out: Vec<TransferId> = Vec::new();
        if let Some(missed) = self.missed_debits(agreed) {
            for t in missed {
                out.extend(t.deps.iter().filter(|d| !holds(d)));
                out.push(t.id());
            }
        }
        out
    }

    /// Whether a replica whose view is `self` missed debits `agreed` does not list (more
    /// than [`MAX_LISTED_TRANSFERS`]): it cannot catch up by certificates and needs the
    /// account's state from its group ([`StateAssembly`]).
    pub fn needs_state(&self, agreed: &AccountView) -> bool {
        self.missed_debits(agreed).is_none()
    }

    /// The debits `agreed` applied and `self` did not, oldest first, when it lists them all.
    fn missed_debits<'a>(&self, agreed: &'a AccountView) -> Option<Vec<&'a Transfer>> {
        let mut missed: Vec<&Transfer> = agreed.recent.iter().filter(|t| t.seq >= self.next_seq).collect();
        missed.sort_by_key(|t| t.seq);
        missed.dedup_by_key(|t| t.seq);
        (missed.len() as u64 == agreed.next_seq.saturating_sub(self.next_seq)).then_some(missed)
    }

    /// What the owner can spend, by this view.
    pub fn spendable(&self) -> u64 {
        self.credits.iter().fold(self.balance, |b, (_, c)| b.saturating_add(*c))
    }
}

/// Largest request or answer of the ledger protocol.
pub const MAX_LEDGER_MESSAGE: usize = 16 * 1024;

impl LedgerRequest {
    /// Encodes it (its postcard body).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a request from untrusted bytes: bounded, then checked.
    pub fn decode(bytes: &[u8]) -> Result<Self, LedgerError> {
        let r: Self = decode_within(bytes, MAX_LEDGER_MESSAGE)?;
        match &r {
            LedgerRequest::Acknowledge(s) => s.transfer.check()?,
            LedgerRequest::Apply(c) => {
                c.signed.transfer.check()?;
                if c.acks.len() > MAX_ACKS {
                    return Err(LedgerError::Limits);
                }
            }
            LedgerRequest::Reward(c) => {
                if c.shares.len() > 2 * crate::farming::AUDIT_GROUP {
                    return Err(LedgerError::Limits);
                }
            }
            LedgerRequest::Account(_) | LedgerRequest::Certificate(_) | LedgerRequest::State { .. } => {}
        }
        Ok(r)
    }
}

impl LedgerResponse {
    /// Encodes it (its postcard body).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes an answer from untrusted bytes: bounded, then checked.
    pub fn decode(bytes: &[u8]) -> Result<Self, LedgerError> {
        let r: Self = decode_within(bytes, MAX_LEDGER_MESSAGE)?;
        if let LedgerResponse::Account(v) = &r {
            if v.credits.len() > MAX_LISTED_CREDITS || v.recent.len() > MAX_LISTED_TRANSFERS {
                return Err(LedgerError::Limits);
            }
            for t in v.recent.iter().chain(v.pending.iter().map(|s| &s.transfer)) {
                t.check()?;
            }
        }
        if let LedgerResponse::Certificate(c) = &r {
            c.signed.transfer.check()?;
            if c.acks.len() > MAX_ACKS {
                return Err(LedgerError::Limits);
            }
        }
        if let LedgerResponse::Reward(c) = &r {
            if c.shares.len() > 2 * crate::farming::AUDIT_GROUP {
                return Err(LedgerError::Limits);
            }
        }
        if let LedgerResponse::State(p) = &r {
            if p.credits.len() + p.spent.len() > STATE_PAGE_ITEMS {
                return Err(LedgerError::Limits);
            }
        }
        if let LedgerResponse::Refused { detail, .. } = &r {
            if detail.len() > 256 {
                return Err(LedgerError::Limits);
            }
        }
        Ok(r)
    }

    /// What this answer to [`LedgerRequest::Certificate`]`(id)` hands over, as the request
    /// that makes the credit at a replica lacking it: a certificate to apply, a reward to
    /// deposit; `None` unless it is what `id` names.
    pub fn handing(self, id: &TransferId) -> Option<LedgerRequest> {
        match self {
            LedgerResponse::Certificate(c) if c.signed.transfer.id() == *id => Some(LedgerRequest::Apply(c)),
            LedgerResponse::Reward(r) if crate::farming::reward_id(r.epoch, &r.relay, &r.page) == *id => {
                Some(LedgerRequest::Reward(r))
            }
            _ => None,
        }
    }

    /// The refusal for `e`.
    pub fn refused(e: &LedgerError) -> Self {
        let mut detail = e.to_string();
        detail.truncate(200);
        LedgerResponse::Refused { code: e.code(), detail }
    }
}

impl Certificate {
    /// Checks the owner's signature and `q` distinct acknowledgements by members of `group`;
    /// returns the transfer's id.
    pub fn verify(&self, group: &Group, v: &impl Verifier) -> Result<TransferId, LedgerError> {
        self.check_signed(v)?;
        let t = &self.signed.transfer;
        let id = t.id();
        let msg = ack_message(&t.from, t.seq, &id);
        let mut signers: HashSet<&Key> = HashSet::new();
        for a in &self.acks {
            if group.replicas.contains(&a.replica) && v.verify(&a.replica, &msg, &a.sig) {
                signers.insert(&a.replica);
            }
        }
        if signers.len() < group.quorum {
            return Err(LedgerError::NoQuorum { have: signers.len(), need: group.quorum });
        }
        Ok(id)
    }

    /// The keys whose valid acknowledgement it carries, if the transfer is well formed and
    /// its owner signed it: what a replica checks before it spends lookups placing the
    /// sender's group (a certificate that fails here fails [`Certificate::verify`] against
    /// any group, and one with fewer signers than any quorum the group can have, too).
    pub fn checked_signers(&self, v: &impl Verifier) -> Result<HashSet<Key>, LedgerError> {
        self.check_signed(v)?;
        Ok(self.signers(v))
    }

    /// The transfer is well formed, the acknowledgements within bounds, and its owner signed
    /// it: what every use of a certificate checks first.
    fn check_signed(&self, v: &impl Verifier) -> Result<(), LedgerError> {
        self.signed.transfer.check()?;
        if self.acks.len() > MAX_ACKS {
            return Err(LedgerError::Limits);
        }
        if !self.signed.verify(v) {
            return Err(LedgerError::BadSignature);
        }
        Ok(())
    }

    /// The replicas whose valid acknowledgement it carries.
    fn signers(&self, v: &impl Verifier) -> HashSet<Key> {
        let t = &self.signed.transfer;
        let msg = ack_message(&t.from, t.seq, &t.id());
        self.acks.iter().filter(|a| v.verify(&a.replica, &msg, &a.sig)).map(|a| a.replica).collect()
    }
}

/// Proof that someone signed two transfers for one slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub first: Signed,
    pub second: Signed,
    /// Acknowledgements of each, where the conflict was between certificates.
    pub first_acks: Vec<Ack>,
    pub second_acks: Vec<Ack>,
}

impl Evidence {
    /// From two certificates, or two signed transfers (no acknowledgements), for one slot.
    pub fn of(first: Certificate, second: Certificate) -> Self {
        Evidence {
            first: first.signed,
            second: second.signed,
            first_acks: first.acks,
            second_acks: second.acks,
        }
    }

    /// Checks it and names who equivocated: the owner (always: it signed both) and every
    /// replica whose valid acknowledgement is on both. `None` if it proves nothing.
    pub fn guilty(&self, v: &impl Verifier) -> Option<Vec<Key>> {
        let (a, b) = (&self.first.transfer, &self.second.transfer);
        if a.from != b.from
            || a.seq != b.seq
            || a.id() == b.id()
            || !self.first.verify(v)
            || !self.second.verify(v)
        {
            return None;
        }
        let first = Certificate { signed: self.first.clone(), acks: self.first_acks.clone() }.signers(v);
        let second = Certificate { signed: self.second.clone(), acks: self.second_acks.clone() }.signers(v);
        let mut guilty: Vec<Key> = first.intersection(&second).copied().collect();
        guilty.sort_unstable();
        guilty.insert(0, a.from);
        Some(guilty)
    }
}

/// Why a replica refused or could not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("a field is over its limit, or the transfer is malformed")]
    Limits,
    #[error("a signature does not verify")]
    BadSignature,
    #[error("{have} valid acknowledgements of the group, {need} needed")]
    NoQuorum { have: usize, need: usize },
    #[error("transfer {got} is not the account's next ({expected})")]
    WrongSeq { expected: u64, got: u64 },
    #[error("{} credits named are not applied here", .0.len())]
    MissingDeps(Vec<TransferId>),
    #[error("a credit named was spent before")]
    SpentDep,
    #[error("the balance {balance} does not cover {amount}")]
    Overdraft { balance: u64, amount: u64 },
    #[error("another transfer holds this slot: the owner signed two")]
    Conflict(Box<Evidence>),
    #[error("the account is banned for equivocating")]
    Banned,
    #[error("this relay is not a replica of the account")]
    NotReplica,
    #[error("no such certificate here")]
    Unknown,
    #[error("the account's spending cap is reached: {spent} of {cap} spent in this window")]
    CapReached { spent: u64, cap: u64 },
    #[error("this replica is learning the account's state from its group; ask again")]
    Joining,
    #[error("account {} carries {bits} bits of account work, {need} needed (a wallet made by `kura wallet new` or the page has them)", crate::hex::encode(&.account[..4]))]
    NoAccountWork { account: Key, bits: u32, need: u32 },
}

impl LedgerError {
    /// Whether a refusal with wire code `code` means the replica lacks state it can be
    /// handed (a debit it has not applied, a credit it does not hold, or the account's
    /// state as its group holds it), not that the request is wrong.
    pub fn lacks_state(code: u16) -> bool {
        matches!(code, 4 | 5 | 13)
    }

    /// The error's number on the wire.
    pub fn code(&self) -> u16 {
        match self {
            LedgerError::Limits => 1,
            LedgerError::BadSignature => 2,
            LedgerError::NoQuorum { .. } => 3,
            LedgerError::WrongSeq { .. } => 4,
            LedgerError::MissingDeps(_) => 5,
            LedgerError::SpentDep => 6,
            LedgerError::Overdraft { .. } => 7,
            LedgerError::Conflict(_) => 8,
            LedgerError::Banned => 9,
            LedgerError::NotReplica => 10,
            LedgerError::Unknown => 11,
            LedgerError::CapReached { .. } => 12,
            LedgerError::Joining => 13,
            LedgerError::NoAccountWork { .. } => 14,
        }
    }
}

/// Checks signatures.
pub trait Verifier {
    fn verify(&self, key: &Key, msg: &[u8], sig: &Sig) -> bool;
}

/// Makes signatures with one key.
pub trait Signer {
    fn key(&self) -> Key;
    fn sign(&self, msg: &[u8]) -> Sig;
}

/// Ed25519, as the network uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ed25519;

impl Verifier for Ed25519 {
    fn verify(&self, key: &Key, msg: &[u8], sig: &Sig) -> bool {
        let Ok(k) = ed25519_dalek::VerifyingKey::from_bytes(key) else { return false };
        k.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig)).is_ok()
    }
}

impl Signer for ed25519_dalek::SigningKey {
    fn key(&self) -> Key {
        self.verifying_key().to_bytes()
    }
    fn sign(&self, msg: &[u8]) -> Sig {
        ed25519_dalek::Signer::sign(self, msg).to_bytes()
    }
}

/// What a replica knows of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// The seq of the next debit to apply (transfers before it are applied).
    pub next_seq: u64,
    /// What the debits applied so far left.
    pub balance: u64,
    /// Credits applied here and not yet named by a transfer of this account.
    pub credits: BTreeMap<TransferId, u64>,
    /// The transfer acknowledged for slot `next_seq`, if any.
    pub acked: Option<Signed>,
    /// The latest certificates applied as debits, by seq.
    pub applied: BTreeMap<u64, Certificate>,
    /// Every credit this account received and spent (named by a debit applied here).
    pub spent: std::collections::BTreeSet<TransferId>,
}

/// An account's state as one replica holds it, whole: what a replica new to the account's
/// group (or too far behind to catch up by certificates) adopts when `f + 1` members give
/// the same ([`Replica::adopt`]). It names the credits spent so far, so that the adopter
/// refuses a replayed certificate of one of them as the replicas that applied it do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    pub account: Key,
    pub next_seq: u64,
    pub balance: u64,
    /// Unspent credits, by id.
    pub credits: Vec<(TransferId, u64)>,
    /// Spent credits, by id.
    pub spent: Vec<TransferId>,
}

/// Items of an account's state (its unspent credits, then its spent ones) per
/// [`StatePage`]: a page stays well under [`MAX_LEDGER_MESSAGE`].
pub const STATE_PAGE_ITEMS: usize = 256;

impl AccountState {
    /// What members compare: BLAKE3 (keyed for this use) of the state's encoding. Credits
    /// and spent ids are in order, so equal states give equal digests.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("kura ledger account state 1");
        h.update(&postcard::to_allocvec(self).unwrap_or_default());
        *h.finalize().as_bytes()
    }

    /// What members must agree on before a replica adopts the state: BLAKE3 (keyed for this
    /// use) of its debits — the account, seq, balance and spent credits, alike at every
    /// replica that applied the same debits. Unspent credits are left out: a reward only
    /// some replicas minted differs between them, and credits are vouched for one by one
    /// ([`AccountView::agreed`]).
    pub fn debits_digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("kura ledger account debits 1");
        let debits = (&self.account, self.next_seq, self.balance, &self.spent);
        h.update(&postcard::to_allocvec(&debits).unwrap_or_default());
        *h.finalize().as_bytes()
    }

    /// This state with only the unspent credits `vouched` lists (id and amount alike: the
    /// credits of an agreed view, [`AccountView::agreed`]).
    pub fn vouched(mut self, vouched: &[(TransferId, u64)]) -> Self {
        self.credits.retain(|c| vouched.contains(c));
        self
    }

    /// The state's encoding (the relay's journal keeps adopted states so).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a state this process encoded.
    pub fn decode(bytes: &[u8]) -> Result<Self, LedgerError> {
        postcard::from_bytes(bytes).map_err(|_| LedgerError::Limits)
    }

    fn summary(&self) -> StateSummary {
        StateSummary {
            account: self.account,
            next_seq: self.next_seq,
            balance: self.balance,
            digest: self.digest(),
            debits: self.debits_digest(),
            credit_count: self.credits.len() as u32,
            spent_count: self.spent.len() as u32,
        }
    }

    /// Page `page` of this state; `None` past the last (page 0 always exists).
    pub fn page(&self, page: u32) -> Option<StatePage> {
        let summary = self.summary();
        if page >= summary.pages() {
            return None;
        }
        let from = page as usize * STATE_PAGE_ITEMS;
        let to = from + STATE_PAGE_ITEMS;
        let n = self.credits.len();
        let credits = self.credits.get(from.min(n)..to.min(n)).unwrap_or_default().to_vec();
        let (from, to) = (from.saturating_sub(n), to.saturating_sub(n));
        let m = self.spent.len();
        let spent = self.spent.get(from.min(m)..to.min(m)).unwrap_or_default().to_vec();
        Some(StatePage { summary, page, credits, spent })
    }
}

/// What every page of an account's state carries. `f + 1` members must give its debits
/// alike ([`StateSummary::same_debits`]) before a replica adopts the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSummary {
    pub account: Key,
    pub next_seq: u64,
    pub balance: u64,
    /// [`AccountState::digest`] of the whole state (this member's pages must hash to it).
    pub digest: [u8; 32],
    /// [`AccountState::debits_digest`].
    pub debits: [u8; 32],
    pub credit_count: u32,
    pub spent_count: u32,
}

impl StateSummary {
    /// How many pages the state takes (at least one).
    pub fn pages(&self) -> u32 {
        let items = u64::from(self.credit_count) + u64::from(self.spent_count);
        items.div_ceil(STATE_PAGE_ITEMS as u64).max(1) as u32
    }

    /// Whether two summaries give the same debits (account, seq, balance, spent credits).
    pub fn same_debits(&self, other: &StateSummary) -> bool {
        (self.account, self.next_seq, self.balance, self.debits, self.spent_count)
            == (other.account, other.next_seq, other.balance, other.debits, other.spent_count)
    }

    /// A summary whose debits at least `need` of `summaries` give alike (the most given,
    /// then the furthest along); their credits may differ.
    pub fn agreed<'a>(
        summaries: impl IntoIterator<Item = &'a StateSummary>,
        need: usize,
    ) -> Option<StateSummary> {
        let mut alike: Vec<(&StateSummary, usize)> = Vec::new();
        for s in summaries {
            match alike.iter_mut().find(|(t, _)| t.same_debits(s)) {
                Some((_, n)) => *n += 1,
                None => alike.push((s, 1)),
            }
        }
        alike
            .into_iter()
            .filter(|(_, n)| *n >= need.max(1))
            .max_by_key(|(s, n)| (*n, s.next_seq))
            .map(|(s, _)| s.clone())
    }
}

/// One page of an account's state, as a member answers [`LedgerRequest::State`]: the
/// summary, and up to [`STATE_PAGE_ITEMS`] of the unspent credits then the spent ids,
/// from item `page * STATE_PAGE_ITEMS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatePage {
    pub summary: StateSummary,
    pub page: u32,
    pub credits: Vec<(TransferId, u64)>,
    pub spent: Vec<TransferId>,
}

/// An account's state put together from one member's pages, for the summary that member
/// gave, whose debits `f + 1` members gave alike ([`StateSummary::agreed`]): each page must
/// carry that summary and exactly the items due at its place, and the whole must hash to
/// its digest and its debits to the agreed ones. So a member can hand over the debits only
/// as `f + 1` (one honest among them) described them; a member that lies in its pages is
/// found out at [`StateAssembly::finish`], and the next is asked. Its unspent credits are
/// its own word: the adopter keeps those `f + 1` vouch for ([`AccountState::vouched`]).
#[derive(Debug, Clone)]
pub struct StateAssembly {
    summary: StateSummary,
    credits: Vec<(TransferId, u64)>,
    spent: Vec<TransferId>,
    next: u32,
}

impl StateAssembly {
    /// Starts on the agreed `summary`.
    pub fn new(summary: StateSummary) -> Self {
        Self { summary, credits: Vec::new(), spent: Vec::new(), next: 0 }
    }

    /// The page to ask for next; `None` when all are in.
    pub fn next_page(&self) -> Option<u32> {
        (self.next < self.summary.pages()).then_some(self.next)
    }

    /// Takes the next page.
    pub fn add(&mut self, page: StatePage) -> Result<(), LedgerError> {
        if page.summary != self.summary || page.page != self.next {
            return Err(LedgerError::Limits);
        }
        let before = self.credits.len() + self.spent.len();
        let total = self.summary.credit_count as usize + self.summary.spent_count as usize;
        let due = total.saturating_sub(before).min(STATE_PAGE_ITEMS);
        let credits_due = (self.summary.credit_count as usize).saturating_sub(self.credits.len()).min(due);
        if page.credits.len() != credits_due || page.spent.len() != due - credits_due {
            return Err(LedgerError::Limits);
        }
        self.credits.extend(page.credits);
        self.spent.extend(page.spent);
        self.next += 1;
        Ok(())
    }

    /// The state, when every page is in and it hashes to the agreed digest.
    pub fn finish(self) -> Result<AccountState, LedgerError> {
        if self.next_page().is_some() {
            return Err(LedgerError::Limits);
        }
        let state = AccountState {
            account: self.summary.account,
            next_seq: self.summary.next_seq,
            balance: self.summary.balance,
            credits: self.credits,
            spent: self.spent,
        };
        if state.digest() != self.summary.digest || state.debits_digest() != self.summary.debits {
            return Err(LedgerError::BadSignature);
        }
        Ok(state)
    }
}

impl Account {
    /// What the owner can spend: the balance and the unspent credits.
    pub fn spendable(&self) -> u64 {
        self.balance.saturating_add(self.credits.values().sum())
    }
}

/// What applying a certificate did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// It was applied before (a replay): nothing changed.
    Already,
}

/// A spending cap: at most `amount` debited from one account per window of `window`
/// seconds (the mint is not capped). It bounds what an owner can spend twice where a group
/// has more than `f` Byzantine replicas: each of two conflicting certificates carries an
/// honest replica's acknowledgement, given only within the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpendCap {
    pub amount: u64,
    pub window: u64,
}

/// The spending cap relays apply unless told otherwise: 10⁹ a day (at the default prices a
/// million GiB-epochs of storage bought per day, about a TiB kept six weeks). On by
/// default because a double spend needs only more than `f` of an account's replicas (12
/// of 32), which an adversary with a tenth of the relays finds among its own once in about
/// 30,000 account keys it makes (seven core-hours with the account work, see
/// [`ACCOUNT_BITS`]); the cap bounds what each such account spends twice per day.
pub const DEFAULT_SPEND_CAP: SpendCap = SpendCap { amount: 1_000_000_000, window: 86_400 };

/// One replica's ledger state for the accounts it serves: the rules of acknowledging and
/// applying, without IO. The caller persists the state before it answers, and tells it the
/// time ([`Replica::set_now`]) when a spending cap applies.
#[derive(Debug, Clone)]
pub struct Replica {
    mint: Key,
    accounts: HashMap<Key, Account>,
    /// Transfers applied as debits and as credits here.
    debited: HashSet<TransferId>,
    credited: HashSet<TransferId>,
    minted: u128,
    burnt: u128,
    /// Amounts applied here as debits and as credits, in all, and the credits not yet named.
    debited_total: u128,
    credited_total: u128,
    unspent_total: u128,
    banned: HashSet<Key>,
    evidence: Vec<Evidence>,
    cap: Option<SpendCap>,
    /// Seconds, as the caller last said.
    now: u64,
    /// Per account: the window (its index) and what was debited in it.
    spent: HashMap<Key, (u64, u64)>,
    /// Value that came in by adopting accounts' states (see `check_conservation`).
    adopted: i128,
    /// Minted by reward certificates (also in `minted`).
    rewarded: u128,
    /// The account work asked of every key but the mint and the burn.
    account_bits: u32,
}

impl Replica {
    /// A replica of a ledger whose minting account is `mint`.
    pub fn new(mint: Key) -> Self {
        Self {
            mint,
            accounts: HashMap::new(),
            debited: HashSet::new(),
            credited: HashSet::new(),
            minted: 0,
            burnt: 0,
            debited_total: 0,
            credited_total: 0,
            unspent_total: 0,
            banned: HashSet::new(),
            evidence: Vec::new(),
            cap: None,
            now: 0,
            spent: HashMap::new(),
            adopted: 0,
            rewarded: 0,
            account_bits: ACCOUNT_BITS,
        }
    }

    /// This replica asking `bits` of account work instead of [`ACCOUNT_BITS`]: for
    /// simulations whose keys are stand-ins (a hash, not an ed25519 key) and whose subject
    /// is not the work. The network's relays never lower it.
    pub fn with_account_bits(mut self, bits: u32) -> Self {
        self.account_bits = bits;
        self
    }

    /// Refuses a transfer whose sender or recipient is an account without the work (the
    /// mint and the burn excepted): no acknowledgement, debit or credit of one anywhere, so
    /// a quorum certifying for a key it was ground for moves nothing, and nothing is sent
    /// where it could never be spent.
    pub fn check_accounts(&self, t: &Transfer) -> Result<(), LedgerError> {
        for account in [&t.from, &t.to] {
            self.holds(account)?;
        }
        Ok(())
    }

    /// Whether `account` may hold credits here: the mint, the burn, or a key with the work.
    fn holds(&self, account: &Key) -> Result<(), LedgerError> {
        let bits = account_work(account);
        if *account == self.mint || *account == BURN || bits >= self.account_bits {
            return Ok(());
        }
        Err(LedgerError::NoAccountWork { account: *account, bits, need: self.account_bits })
    }

    /// This replica with a spending cap.
    pub fn with_cap(mut self, cap: SpendCap) -> Self {
        self.cap = Some(cap);
        self
    }

    /// The time, in seconds (only the spending cap's windows use it).
    pub fn set_now(&mut self, now: u64) {
        self.now = now;
    }

    /// What `account` has had debited in the current window, and the window's index.
    fn spent_now(&self, account: &Key) -> (u64, u64) {
        let Some(cap) = self.cap else { return (0, 0) };
        let window = self.now / cap.window.max(1);
        match self.spent.get(account) {
            Some((w, spent)) if *w == window => (window, *spent),
            _ => (window, 0),
        }
    }

    /// The minting account.
    pub fn mint(&self) -> Key {
        self.mint
    }

    /// What this replica knows of `account`.
    pub fn account(&self, account: &Key) -> Account {
        self.accounts.get(account).cloned().unwrap_or_else(|| Account { next_seq: 1, ..Account::default() })
    }

    /// `account` as the protocol carries it.
    pub fn view(&self, account: &Key) -> AccountView {
        let a = self.account(account);
        AccountView {
            next_seq: a.next_seq,
            balance: a.balance,
            credits: a.credits.iter().take(MAX_LISTED_CREDITS).map(|(id, v)| (*id, *v)).collect(),
            recent: a
                .applied
                .values()
                .rev()
                .take(MAX_LISTED_TRANSFERS)
                .map(|c| c.signed.transfer.clone())
                .collect(),
            pending: a.acked.map(Box::new),
        }
    }

    /// `account` whole, as [`Replica::adopt`] takes it.
    pub fn state(&self, account: &Key) -> AccountState {
        let a = self.account(account);
        AccountState {
            account: *account,
            next_seq: a.next_seq,
            balance: a.balance,
            credits: a.credits.iter().map(|(id, v)| (*id, *v)).collect(),
            spent: a.spent.iter().copied().collect(),
        }
    }

    /// Adopts the state of an account that at least `need` (`f + 1`) of `states` give alike
    /// (from distinct members of its group; the caller checks that), when it is further
    /// along than this replica's: then at least one honest member holds it. Credits applied
    /// here that the adopted state neither holds nor spent are kept (they reached this
    /// replica first); the adopted spent credits are never credited again here. Returns
    /// whether it adopted.
    pub fn adopt(&mut self, states: &[AccountState], need: usize) -> bool {
        let mut alike: Vec<(&AccountState, usize)> = Vec::new();
        for st in states {
            match alike.iter_mut().find(|(s, _)| *s == st) {
                Some((_, n)) => *n += 1,
                None => alike.push((st, 1)),
            }
        }
        let Some((st, _)) =
            alike.into_iter().filter(|(_, n)| *n >= need.max(1)).max_by_key(|(s, n)| (*n, s.next_seq))
        else {
            return false;
        };
        self.adopt_agreed(st.clone())
    }

    /// Adopts `st`, which the caller established `f + 1` members of the account's group give
    /// (as [`Replica::adopt`] counts, or as [`StateAssembly`] checks against an agreed
    /// digest), when it is further along than this replica's. Returns whether it adopted.
    pub fn adopt_agreed(&mut self, st: AccountState) -> bool {
        let before = {
            let a = self.account(&st.account);
            if st.next_seq <= a.next_seq {
                return false;
            }
            i128::from(a.balance) + a.credits.values().map(|v| i128::from(*v)).sum::<i128>()
        };
        let spent: std::collections::BTreeSet<TransferId> = st.spent.iter().copied().collect();
        let acct = self.entry(st.account);
        let mut credits: BTreeMap<TransferId, u64> = st.credits.iter().copied().collect();
        for (id, v) in &acct.credits {
            if !spent.contains(id) {
                credits.entry(*id).or_insert(*v);
            }
        }
        let old_unspent: u128 = acct.credits.values().map(|v| u128::from(*v)).sum();
        let new_unspent: u128 = credits.values().map(|v| u128::from(*v)).sum();
        acct.next_seq = st.next_seq;
        acct.balance = st.balance;
        acct.credits = credits;
        acct.spent.extend(spent.iter().copied());
        acct.acked = None;
        let after = i128::from(acct.balance) + new_unspent as i128;
        self.unspent_total = self.unspent_total - old_unspent + new_unspent;
        self.credited.extend(st.credits.iter().map(|(id, _)| *id).chain(spent));
        self.adopted += after - before;
        true
    }

    /// Evidence of equivocation seen here.
    pub fn evidence(&self) -> &[Evidence] {
        &self.evidence
    }

    /// Whether `key` is banned here (an owner that equivocated, or a replica named by
    /// evidence).
    pub fn is_banned(&self, key: &Key) -> bool {
        self.banned.contains(key)
    }

    /// Takes evidence from anyone: if it checks, everyone it names is banned here.
    pub fn take_evidence(&mut self, e: Evidence, v: &impl Verifier) -> Option<Vec<Key>> {
        let guilty = e.guilty(v)?;
        self.banned.extend(guilty.iter().copied());
        self.evidence.push(e);
        Some(guilty)
    }

    fn entry(&mut self, account: Key) -> &mut Account {
        self.accounts.entry(account).or_insert_with(|| Account { next_seq: 1, ..Account::default() })
    }

    /// Acknowledges `signed` (see the module's rules) with `me`'s signature, or refuses.
    /// Acknowledging the same transfer again gives the same answer.
    pub fn acknowledge(
        &mut self,
        signed: &Signed,
        me: &impl Signer,
        v: &impl Verifier,
    ) -> Result<Ack, LedgerError> {
        let t = &signed.transfer;
        t.check()?;
        self.check_accounts(t)?;
        if self.banned.contains(&t.from) {
            return Err(LedgerError::Banned);
        }
        if !signed.verify(v) {
            return Err(LedgerError::BadSignature);
        }
        let id = t.id();
        let mint = self.mint;
        let acct = self.entry(t.from);
        if t.seq != acct.next_seq {
            // The slot of an applied transfer: the same one again is answered, another is
            // the owner signing twice.
            if let Some(c) = acct.applied.get(&t.seq) {
                if c.signed.transfer.id() != id {
                    let e = Evidence {
                        first: c.signed.clone(),
                        second: signed.clone(),
                        first_acks: vec![],
                        second_acks: vec![],
                    };
                    return Err(self.equivocation(e));
                }
                return Ok(Ack { replica: me.key(), sig: me.sign(&ack_message(&t.from, t.seq, &id)) });
            }
            return Err(LedgerError::WrongSeq { expected: acct.next_seq, got: t.seq });
        }
        if let Some(prev) = &acct.acked {
            if prev.transfer.id() != id {
                let e = Evidence {
                    first: prev.clone(),
                    second: signed.clone(),
                    first_acks: vec![],
                    second_acks: vec![],
                };
                return Err(self.equivocation(e));
            }
            return Ok(Ack { replica: me.key(), sig: me.sign(&ack_message(&t.from, t.seq, &id)) });
        }
        let missing: Vec<TransferId> =
            t.deps.iter().filter(|d| !acct.credits.contains_key(*d)).copied().collect();
        if !missing.is_empty() {
            return Err(LedgerError::MissingDeps(missing));
        }
        let available = acct.balance.saturating_add(t.deps.iter().map(|d| acct.credits[d]).sum());
        if t.from != mint && available < t.amount {
            return Err(LedgerError::Overdraft { balance: available, amount: t.amount });
        }
        if let (Some(cap), false) = (self.cap, t.from == mint) {
            let (_, spent) = self.spent_now(&t.from);
            if spent.saturating_add(t.amount) > cap.amount {
                return Err(LedgerError::CapReached { spent, cap: cap.amount });
            }
        }
        let acct = self.entry(t.from);
        acct.acked = Some(signed.clone());
        Ok(Ack { replica: me.key(), sig: me.sign(&ack_message(&t.from, t.seq, &id)) })
    }

    fn equivocation(&mut self, e: Evidence) -> LedgerError {
        self.banned.insert(e.first.transfer.from);
        self.evidence.push(e.clone());
        LedgerError::Conflict(Box::new(e))
    }

    /// Applies `cert` as a debit of its sender (this replica serves `from`; `group` is the
    /// sender's). In seq order only; the credits it names must be applied here first.
    pub fn apply_debit(
        &mut self,
        cert: &Certificate,
        group: &Group,
        v: &impl Verifier,
    ) -> Result<Applied, LedgerError> {
        // A replay is known by its id alone: nothing to verify, nothing changes.
        if self.debited.contains(&cert.signed.transfer.id()) {
            return Ok(Applied::Already);
        }
        self.check_accounts(&cert.signed.transfer)?;
        let id = cert.verify(group, v)?;
        self.debit(cert, id, v)
    }

    /// Whether the transfer `id` was applied here as a debit, and as a credit.
    pub fn applied(&self, id: &TransferId) -> (bool, bool) {
        (self.debited.contains(id), self.credited.contains(id))
    }

    /// Applies as a debit a certificate already verified against the sender's group: by the
    /// caller (once for both sides), or when it was first applied (from this replica's own
    /// journal).
    pub fn apply_verified_debit(
        &mut self,
        cert: &Certificate,
        v: &impl Verifier,
    ) -> Result<Applied, LedgerError> {
        let id = cert.signed.transfer.id();
        if self.debited.contains(&id) {
            return Ok(Applied::Already);
        }
        self.debit(cert, id, v)
    }

    fn debit(
        &mut self,
        cert: &Certificate,
        id: TransferId,
        v: &impl Verifier,
    ) -> Result<Applied, LedgerError> {
        let t = &cert.signed.transfer;
        let mint = self.mint;
        let acct = self.entry(t.from);
        let acked_other =
            acct.acked.as_ref().filter(|a| a.transfer.id() != id && a.transfer.seq == t.seq).cloned();
        if t.seq < acct.next_seq {
            // Another transfer was certified for this slot: the group was captured.
            let Some(prev) = acct.applied.get(&t.seq).cloned() else {
                return Err(LedgerError::WrongSeq { expected: acct.next_seq, got: t.seq });
            };
            let e = Evidence::of(prev, cert.clone());
            if let Some(guilty) = e.guilty(v) {
                self.banned.extend(guilty);
                self.evidence.push(e.clone());
            }
            return Err(LedgerError::Conflict(Box::new(e)));
        }
        if t.seq > acct.next_seq {
            return Err(LedgerError::WrongSeq { expected: acct.next_seq, got: t.seq });
        }
        let missing: Vec<TransferId> =
            t.deps.iter().filter(|d| !acct.credits.contains_key(*d)).copied().collect();
        if !missing.is_empty() {
            return Err(LedgerError::MissingDeps(missing));
        }
        let named: u64 = t.deps.iter().map(|d| acct.credits[d]).sum();
        let available = acct.balance.saturating_add(named);
        let balance = if t.from == mint {
            available
        } else {
            available
                .checked_sub(t.amount)
                .ok_or(LedgerError::Overdraft { balance: available, amount: t.amount })?
        };
        for d in &t.deps {
            acct.credits.remove(d);
            acct.spent.insert(*d);
        }
        acct.balance = balance;
        acct.next_seq += 1;
        acct.acked = None;
        acct.applied.insert(t.seq, cert.clone());
        while acct.applied.len() > KEPT_CERTIFICATES {
            acct.applied.pop_first();
        }
        if t.from == mint {
            self.minted += u128::from(t.amount);
        }
        if self.cap.is_some() && t.from != mint {
            let (window, spent) = self.spent_now(&t.from);
            self.spent.insert(t.from, (window, spent.saturating_add(t.amount)));
        }
        self.debited.insert(id);
        self.debited_total += u128::from(t.amount);
        self.unspent_total -= u128::from(named);
        if let Some(other) = acked_other {
            // The slot went to another transfer than the one acknowledged here: the owner
            // signed two. The certificate stands; the owner is banned.
            let e = Evidence {
                first: other,
                second: cert.signed.clone(),
                first_acks: vec![],
                second_acks: vec![],
            };
            self.banned.insert(t.from);
            self.evidence.push(e);
        }
        Ok(Applied::Done)
    }

    /// Applies `cert` as a credit of its recipient (this replica serves `to`; `group` is the
    /// sender's). Once per transfer.
    pub fn apply_credit(
        &mut self,
        cert: &Certificate,
        group: &Group,
        v: &impl Verifier,
    ) -> Result<Applied, LedgerError> {
        if self.credited.contains(&cert.signed.transfer.id()) {
            return Ok(Applied::Already);
        }
        self.check_accounts(&cert.signed.transfer)?;
        let id = cert.verify(group, v)?;
        Ok(self.credit(cert, id))
    }

    /// Applies as a credit a certificate already verified against the sender's group (see
    /// [`Replica::apply_verified_debit`]).
    pub fn apply_verified_credit(&mut self, cert: &Certificate) -> Applied {
        let id = cert.signed.transfer.id();
        if self.credited.contains(&id) {
            return Applied::Already;
        }
        self.credit(cert, id)
    }

    fn credit(&mut self, cert: &Certificate, id: TransferId) -> Applied {
        let t = &cert.signed.transfer;
        self.credited.insert(id);
        self.credited_total += u128::from(t.amount);
        if t.to == BURN {
            self.burnt += u128::from(t.amount);
        } else {
            self.entry(t.to).credits.insert(id, t.amount);
            self.unspent_total += u128::from(t.amount);
        }
        Applied::Done
    }

    /// Mints a reward its auditors certified into the account it names, as an unspent
    /// credit whose id is [`crate::farming::reward_id`] (a later transfer spends it by naming
    /// it in `deps`). The certificate must verify against `auditors`, this replica's own view
    /// of the relay's audit group for that epoch, at `prices`; each `(epoch, relay, page)` is
    /// minted once here ([`Applied::Already`] for a replay). The caller checks that it serves
    /// the account.
    pub fn deposit_reward(
        &mut self,
        cert: &crate::farming::RewardCertificate,
        auditors: &[Key],
        prices: &crate::farming::Prices,
        v: &impl Verifier,
    ) -> Result<Applied, crate::farming::FarmError> {
        let id = crate::farming::reward_id(cert.epoch, &cert.relay, &cert.page);
        if self.credited.contains(&id) {
            return Ok(Applied::Already);
        }
        if let Err(LedgerError::NoAccountWork { bits, need, .. }) = self.holds(&cert.account) {
            return Err(crate::farming::FarmError::NoAccountWork { bits, need });
        }
        cert.verify(auditors, prices, v)?;
        Ok(self.credit_reward(cert))
    }

    /// Mints a reward certificate this replica verified before (replaying its own journal):
    /// [`Replica::deposit_reward`] without the check.
    pub fn credit_reward(&mut self, cert: &crate::farming::RewardCertificate) -> Applied {
        let id = crate::farming::reward_id(cert.epoch, &cert.relay, &cert.page);
        if !self.credited.insert(id) {
            return Applied::Already;
        }
        self.entry(cert.account).credits.insert(id, cert.amount);
        self.unspent_total += u128::from(cert.amount);
        self.minted += u128::from(cert.amount);
        self.rewarded += u128::from(cert.amount);
        Applied::Done
    }

    /// Takes credit `id` of `amount` into `account` on the word of `f + 1` members of its
    /// group that list it alike (the caller counted them: [`AccountView::agreed`]), when this
    /// replica cannot verify it itself: a reward its own view of the audit group does not
    /// place (it met the auditors after the epoch began), or a certificate nobody hands it.
    /// One of those members is honest and verified it, as for an adopted state. Never a credit
    /// this replica took or saw spent.
    pub fn take_vouched(&mut self, account: Key, id: TransferId, amount: u64) -> Applied {
        if self.credited.contains(&id) || self.account(&account).spent.contains(&id) {
            return Applied::Already;
        }
        self.credited.insert(id);
        self.entry(account).credits.insert(id, amount);
        self.unspent_total += u128::from(amount);
        // Minted (or debited) at the replicas that vouched for it, not here.
        self.adopted += i128::from(amount);
        Applied::Done
    }

    /// What rewards minted here, in all.
    pub fn rewarded(&self) -> u128 {
        self.rewarded
    }

    /// Checks that value is conserved here (for a replica that serves every account, as in
    /// a small network or a simulation): balances, unspent credits, what was burnt and what
    /// was debited but not yet credited sum to what was minted.
    pub fn check_conservation(&self) -> Result<(), String> {
        // Every balance (the mint's too: what is sent back to it is out of circulation) and
        // every credit not yet named; kept as running totals, so this costs one pass over the
        // accounts.
        let balances: i128 = self.accounts.values().map(|a| i128::from(a.balance)).sum();
        let held = balances + self.unspent_total as i128;
        // Debited and not yet credited here, less credited and not yet debited here.
        let in_flight = self.debited_total as i128 - self.credited_total as i128;
        let burnt = self.burnt as i128;
        let total = held + burnt + in_flight;
        // What adopted states brought in was minted elsewhere (at the replicas they came from).
        if total != self.minted as i128 + self.adopted {
            return Err(format!(
                "held {held} + burnt {burnt} + in flight {in_flight} = {total}, minted {} + adopted {}",
                self.minted, self.adopted
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
