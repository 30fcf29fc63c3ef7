//! A wallet's side of the ledger, shared by the native client, the page and relays (which
//! pay donating tabs from their rewards account): an account's view, and transfers certified
//! by its replicas ([`kura_core::ledger`] has the rules; relays are the replicas, over
//! `/kura/ledger/1`). Generic over how the caller reaches relays ([`LedgerNet`]).
//!
//! An account's group is the relays closest to the account key the caller knows of. A view
//! is asked of every member and the one most members agree on is taken; a transfer names
//! the account's next seq and its unspent credits, is sent to every member for
//! acknowledgement, and once `q` have acknowledged it the certificate is handed to the
//! replicas of both accounts to apply.
//!
//! Replicas that missed certificates (they were down, or a wallet stopped half-way) refuse
//! to acknowledge (`WrongSeq`, `MissingDeps`); before asking them again the wallet hands
//! them what they lack, fetched by id from replicas that hold it (certificates verify by
//! themselves, so whoever passes them on needs no trust). A transfer of the owner's that
//! some replica acknowledged for the next slot but that was never certified is completed
//! before another is signed: two signatures for one slot are equivocation.

use futures::StreamExt;
use kura_core::ledger::{
    AccountView, Certificate, Ed25519, Group, Key, LedgerError, LedgerRequest, LedgerResponse, Signer,
    Transfer, MAX_DEPS,
};
use kura_core::ledger::{Ack, Signed, TransferId};
use kura_core::placement::{DhtKey, WideLookup};
use libp2p::PeerId;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

/// Rounds of asking for acknowledgements before a transfer is given up, with a pause that
/// grows by [`PAUSE`] between them.
const ROUNDS: u32 = 6;
const PAUSE: Duration = Duration::from_millis(150);

/// How a wallet reaches the relays: the client's network, or a relay's own.
pub trait LedgerNet {
    type Error: std::fmt::Display;
    /// The relays closest to `key` this caller can find (one lookup: up to
    /// [`kura_core::placement::LOOKUP_FINDS`]).
    fn look_up(&self, key: Key) -> impl Future<Output = Result<Vec<PeerId>, Self::Error>>;
    /// The relays closest to the key of `bytes` ([`DhtKey::of`]) this caller can find: a
    /// group wider than one lookup is found by lookups of the sides of its point
    /// ([`kura_core::placement::WideLookup`]).
    fn look_up_bytes(&self, bytes: Vec<u8>) -> impl Future<Output = Result<Vec<PeerId>, Self::Error>>;
    /// One ledger request to `peer`, and its answer.
    fn ledger(
        &self,
        peer: PeerId,
        req: LedgerRequest,
    ) -> impl Future<Output = Result<LedgerResponse, Self::Error>>;
    /// Waits `d` (between rounds of asking).
    fn pause(&self, d: Duration) -> impl Future<Output = ()>;
}

/// Why a wallet operation failed; `E` is the network's error.
#[derive(Debug, thiserror::Error)]
pub enum WalletError<E> {
    #[error("{0}")]
    Net(E),
    #[error("no relay of the account's group was found")]
    NoGroup,
    #[error("the account's replicas do not agree ({agree} of {asked} alike, {need} needed)")]
    Disagree { agree: usize, asked: usize, need: usize },
    #[error("too few of the account's replicas answered ({answered}, {need} needed)")]
    TooFewAnswers { answered: usize, need: usize },
    #[error("{have} of {need} acknowledgements: {reasons}")]
    NotCertified { have: usize, need: usize, reasons: String },
    #[error("the certificate does not verify: {0}")]
    Invalid(#[from] LedgerError),
    #[error("{0}")]
    BadInput(String),
}

impl<E: kura_core::UserError> kura_core::UserError for WalletError<E> {
    fn kind(&self) -> kura_core::ErrorKind {
        use kura_core::ErrorKind;
        match self {
            WalletError::Net(e) => e.kind(),
            WalletError::NoGroup => ErrorKind::TooFewRelays,
            WalletError::Disagree { .. } => ErrorKind::Unavailable,
            WalletError::TooFewAnswers { .. } => ErrorKind::TooFewRelays,
            WalletError::NotCertified { .. } => ErrorKind::Refused,
            WalletError::Invalid(_) => ErrorKind::Corrupt,
            WalletError::BadInput(_) => ErrorKind::BadRequest,
        }
    }
}

/// An account id (or a key's seed) in hex: 64 digits.
pub fn parse_account<E>(text: &str) -> Result<Key, WalletError<E>> {
    let t = text.trim();
    let bad = || WalletError::BadInput("an account is 64 hex digits".into());
    if t.len() != 64 || !t.is_ascii() {
        return Err(bad());
    }
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(k)
}

/// Bytes in lower-case hex (account ids, certificate ids).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The account's group: the relays closest to the account key that a lookup finds.
pub async fn group<N: LedgerNet>(
    net: &N,
    account: &Key,
) -> Result<(Group, Vec<PeerId>), WalletError<N::Error>> {
    let peers = look_up_wide(net, account).await.map_err(WalletError::Net)?;
    crate::ledger::group_of(account, peers).ok_or(WalletError::NoGroup)
}

/// The [`kura_core::ledger::REPLICAS`] relays closest to `account` this caller can find: a
/// lookup of the account key (as relays find an account's group), then lookups of the sides
/// of its point until the nearest are known ([`WideLookup`]). A later lookup that fails adds
/// nothing; only the first must succeed.
pub async fn look_up_wide<N: LedgerNet>(net: &N, account: &Key) -> Result<Vec<PeerId>, N::Error> {
    let first = net.look_up(*account).await?;
    Ok(widen(net, DhtKey::of(account), kura_core::ledger::REPLICAS, first).await)
}

/// The `want` relays nearest `point` this caller can find, from what a lookup of the point
/// found (`first`): lookups of the point's sides until the nearest are known
/// ([`WideLookup`]; none when `first` holds fewer than a lookup returns). A lookup that fails
/// adds nothing.
pub async fn widen<N: LedgerNet>(net: &N, point: DhtKey, want: usize, first: Vec<PeerId>) -> Vec<PeerId> {
    let keyed = |peers: Vec<PeerId>| peers.into_iter().map(|p| (p, DhtKey::of(&p.to_bytes())));
    let mut wide = WideLookup::new(point, want);
    wide.found(keyed(first));
    while let Some(target) = wide.next_target() {
        wide.found(keyed(net.look_up_bytes(target).await.unwrap_or_default()));
    }
    wide.nearest()
}

/// Every member's view of `account` (members that do not answer are left out).
async fn views<N: LedgerNet>(net: &N, account: &Key, members: &[PeerId]) -> Vec<(PeerId, AccountView)> {
    futures::stream::iter(members.iter().copied())
        .map(|p| async move {
            match net.ledger(p, LedgerRequest::Account(*account)).await {
                Ok(LedgerResponse::Account(v)) => Some((p, v)),
                _ => None,
            }
        })
        .buffer_unordered(kura_core::ledger::REPLICAS)
        .filter_map(futures::future::ready)
        .collect()
        .await
}

/// The view most members give (at least `f + 1` must agree, so an honest one vouches for
/// it), the furthest along among equals.
fn agreed<E>(group: &Group, views: &[(PeerId, AccountView)]) -> Result<AccountView, WalletError<E>> {
    let need = group.tolerates() + 1;
    // Members that did not answer are unreachable, not in disagreement: said as such.
    if views.len() < need {
        return Err(WalletError::TooFewAnswers { answered: views.len(), need });
    }
    AccountView::agreed(views.iter().map(|(_, v)| v), need).map_err(|agree| WalletError::Disagree {
        agree,
        asked: views.len(),
        need,
    })
}

/// What the account's replicas agree it holds.
pub async fn view<N: LedgerNet>(net: &N, account: &Key) -> Result<AccountView, WalletError<N::Error>> {
    let (group, members) = group(net, account).await?;
    Ok(agreed_with_holders(net, &group, &members, account).await?.0)
}

/// One spender of a key at a time on this machine: an exclusive lock on the file `KEY.lock`
/// beside the key file, held while a transfer is signed, certified and applied. Two
/// transfers signed for one slot are the owner cheating, and replicas refuse the account
/// for good; an operator spending a relay's rewards (`kura wallet send`) while the relay
/// pays its tabs from them, or two uploads paid from one wallet, would otherwise race for
/// the slot. A copy of the key on another machine is not covered: spend from one place.
#[cfg(unix)]
#[derive(Debug)]
pub struct SpendLock {
    /// Locked until dropped (closing the file lets the lock go).
    _held: std::fs::File,
}

#[cfg(unix)]
impl SpendLock {
    /// Waits for the lock of the key file `key` (blocking: call it off an async runtime's
    /// workers, [`SpendLock::take_async`]).
    #[allow(unsafe_code)]
    pub fn take(key: &std::path::Path) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let mut name = key.as_os_str().to_owned();
        name.push(".lock");
        let f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(name)?;
        // SAFETY: `flock` on a descriptor this function owns for the call; no memory is shared.
        while unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(Self { _held: f })
    }

    /// [`SpendLock::take`] on tokio's blocking pool.
    pub async fn take_async(key: &std::path::Path) -> std::io::Result<Self> {
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || Self::take(&key)).await.map_err(std::io::Error::other)?
    }
}

/// An unspent credit of an account, and the transfer that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    pub id: TransferId,
    pub amount: u64,
    /// The transfer that made it, when a replica handed its certificate over (a reward a
    /// relay deposited, minted, has none).
    pub transfer: Option<Transfer>,
}

/// Credits fewer than `f + 1` members list that one read hands to the others, at most.
const MAX_UNVOUCHED_SPREAD: usize = 4;

/// Certificates one call of [`credits`] looks up, at most.
pub const MAX_CREDITS_LOOKED_UP: usize = 32;

/// The unspent credits of `account` its replicas agree on (every id listed), and for those
/// `known` does not name (at most [`MAX_CREDITS_LOOKED_UP`]), the transfer that made each:
/// its certificate fetched by id from members that gave the agreed view, taken only when its
/// transfer hashes to that id and credits this account with the agreed amount. The id is a
/// hash of the whole transfer, memo included, and `f + 1` replicas agree on it, so no single
/// replica can pass off another memo (what a wallet counts as a tab's earnings).
pub async fn credits<N: LedgerNet>(
    net: &N,
    account: &Key,
    known: impl Fn(&TransferId) -> bool,
) -> Result<(Vec<TransferId>, Vec<Credit>), WalletError<N::Error>> {
    let (group, members) = group(net, account).await?;
    let (now, holders, _) = agreed_with_holders(net, &group, &members, account).await?;
    let listed = now.credits.iter().map(|(id, _)| *id).collect();
    let mut fresh = Vec::new();
    for &(id, amount) in now.credits.iter().filter(|(id, _)| !known(id)).take(MAX_CREDITS_LOOKED_UP) {
        let transfer = fetch_certificate(net, &holders, id)
            .await
            .map(|c| c.signed.transfer)
            .filter(|t| t.to == *account && t.amount == amount);
        fresh.push(Credit { id, amount, transfer });
    }
    Ok((listed, fresh))
}

/// Sends `amount` from `owner`'s account to `to`: certified by `owner`'s group and applied
/// by both groups. Returns the certificate.
pub async fn send<N: LedgerNet>(
    net: &N,
    owner: &impl Signer,
    to: Key,
    amount: u64,
    memo: Vec<u8>,
) -> Result<Certificate, WalletError<N::Error>> {
    let from = owner.key();
    let bits = kura_core::ledger::account_work(&to);
    if to != kura_core::ledger::BURN && bits < kura_core::ledger::ACCOUNT_BITS {
        return Err(WalletError::BadInput(format!(
            "account {} carries {bits} bits of account work, {} needed: replicas credit nothing to it \
             (a wallet made by `kura wallet new` or the page has it)",
            hex(&to),
            kura_core::ledger::ACCOUNT_BITS
        )));
    }
    let (group, members) = group(net, &from).await?;
    let (mut account, _, seen) = agreed_with_holders(net, &group, &members, &from).await?;
    if let Some(earlier) = pending(&seen, &account, &from) {
        let cert = certify(net, &group, &members, earlier).await?;
        settle(net, &group, &members, &cert).await?;
        account = agreed_with_holders(net, &group, &members, &from).await?.0;
    }
    let deps = deps_for(&account, &seen, group.quorum, amount);
    let signed = Transfer { from, seq: account.next_seq, to, amount, deps, memo }.sign(owner);
    let cert = certify(net, &group, &members, signed).await?;
    settle(net, &group, &members, &cert).await?;
    Ok(cert)
}

/// The credits a transfer of `amount` names, of those the agreed view `account` lists (at
/// most [`MAX_DEPS`]): those at least a quorum of members (by `seen`) hold, when with the
/// balance they cover `amount`, so that a credit held by fewer (which a wallet hands the
/// others, but which they may refuse: a reward their view of its audit group does not
/// verify) does not stop the transfer; else all.
fn deps_for(
    account: &AccountView,
    seen: &[(PeerId, AccountView)],
    quorum: usize,
    amount: u64,
) -> Vec<TransferId> {
    let held = |c: &(TransferId, u64)| seen.iter().filter(|(_, v)| v.credits.contains(c)).count();
    let well: Vec<&(TransferId, u64)> =
        account.credits.iter().filter(|c| held(c) >= quorum).take(MAX_DEPS).collect();
    let covered = well.iter().fold(account.balance, |b, (_, v)| b.saturating_add(*v));
    if covered >= amount {
        well.into_iter().map(|(id, _)| *id).collect()
    } else {
        account.credits.iter().take(MAX_DEPS).map(|(id, _)| *id).collect()
    }
}

/// Hands `cert` to both groups; members of the sender's that could not apply it (they
/// missed earlier certificates) are caught up.
async fn settle<N: LedgerNet>(
    net: &N,
    group: &Group,
    members: &[PeerId],
    cert: &Certificate,
) -> Result<(), WalletError<N::Error>> {
    let refused = apply_to(net, cert, members.to_vec()).await?;
    if members.iter().any(|p| refused.contains(p)) {
        catch_up(net, group, members, cert.signed.transfer.from).await;
    }
    Ok(())
}

/// A transfer of `from`'s that a replica acknowledged for the agreed next slot.
fn pending(views: &[(PeerId, AccountView)], now: &AccountView, from: &Key) -> Option<Signed> {
    views
        .iter()
        .filter_map(|(_, v)| v.pending.as_ref())
        .find(|p| p.transfer.from == *from && p.transfer.seq == now.next_seq && p.verify(&Ed25519))
        .map(|p| (**p).clone())
}

/// Refusals worth asking again after a pause and a catch-up: the replica lacked state, was
/// busy, or was not reached.
fn retryable(code: u16) -> bool {
    code == 0 || code == LedgerError::NotReplica.code() || LedgerError::lacks_state(code)
}

/// Asks the members to acknowledge `signed` until `q` have.
async fn certify<N: LedgerNet>(
    net: &N,
    group: &Group,
    members: &[PeerId],
    signed: Signed,
) -> Result<Certificate, WalletError<N::Error>> {
    let mut acks: HashMap<PeerId, Ack> = HashMap::new();
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for round in 0..ROUNDS {
        if round > 0 {
            net.pause(PAUSE * round).await;
            catch_up(net, group, members, signed.transfer.from).await;
        }
        let ask: Vec<PeerId> = members.iter().filter(|p| !acks.contains_key(p)).copied().collect();
        let answers: Vec<(PeerId, Result<LedgerResponse, N::Error>)> = futures::stream::iter(ask)
            .map(|p| {
                let req = LedgerRequest::Acknowledge(signed.clone());
                async move { (p, net.ledger(p, req).await) }
            })
            .buffer_unordered(kura_core::ledger::REPLICAS)
            .collect()
            .await;
        reasons.clear();
        let mut hopeful = 0;
        for (p, a) in answers {
            match a {
                Ok(LedgerResponse::Acked(ack)) => {
                    acks.insert(p, ack);
                }
                Ok(LedgerResponse::Refused { code, detail }) => {
                    hopeful += usize::from(retryable(code));
                    *reasons.entry(detail).or_default() += 1;
                }
                Ok(_) => *reasons.entry("an answer of the wrong kind".into()).or_default() += 1,
                Err(e) => {
                    hopeful += 1;
                    *reasons.entry(e.to_string()).or_default() += 1;
                }
            }
        }
        if acks.len() >= group.quorum {
            let cert = Certificate { signed, acks: acks.into_values().collect() };
            cert.verify(group, &Ed25519)?;
            return Ok(cert);
        }
        if acks.len() + hopeful < group.quorum {
            break;
        }
    }
    let reasons = reasons.into_iter().map(|(r, n)| format!("{n} × {r}")).collect::<Vec<_>>().join("; ");
    Err(WalletError::NotCertified { have: acks.len(), need: group.quorum, reasons })
}

/// Hands members that are behind the agreed view of `from` what they lack: the debits
/// they missed (and the credits those named), then the unspent credits (among them those a
/// transfer being certified names: the wallet took them from the agreed view).
async fn catch_up<N: LedgerNet>(net: &N, group: &Group, members: &[PeerId], from: Key) {
    let Ok((now, holders, seen)) = agreed_with_holders(net, group, members, &from).await else { return };
    let mut fetched: HashMap<TransferId, Option<LedgerRequest>> = HashMap::new();
    for (peer, v) in seen.iter().filter(|(_, v)| !v.agrees(&now)) {
        for id in v.missing(&now) {
            if let std::collections::hash_map::Entry::Vacant(e) = fetched.entry(id) {
                e.insert(fetch_credit(net, &holders, id).await);
            }
            if let Some(req) = &fetched[&id] {
                let _ = net.ledger(*peer, req.clone()).await;
            }
        }
    }
}

/// The view of `account` that `members` of its `group` agree on, the members that gave it
/// (they hold what it lists), and every member's view.
async fn agreed_with_holders<N: LedgerNet>(
    net: &N,
    group: &Group,
    members: &[PeerId],
    account: &Key,
) -> Result<(AccountView, Vec<PeerId>, Vec<(PeerId, AccountView)>), WalletError<N::Error>> {
    let mut round = 0;
    loop {
        let seen = views(net, account, members).await;
        match agreed(group, &seen) {
            Ok(now) => {
                let holders = seen.iter().filter(|(_, v)| v.agrees(&now)).map(|(p, _)| *p).collect();
                // A credit only some list (an application that missed some members, or a
                // reward some did not mint) is handed to the others; when one took it, the
                // views are read again.
                if round > 0 || !spread_credits(net, &seen, group.tolerates() + 1).await {
                    return Ok((now, holders, seen));
                }
                round += 1;
                continue;
            }
            Err(e) if round + 1 >= ROUNDS => return Err(e),
            Err(_) => {}
        }
        // Views split while a transfer is being applied (a read between two replicas'
        // answers), or for good when an application missed some: ask again after a pause,
        // first handing members the credits others list and they lack.
        round += 1;
        net.pause(PAUSE * round).await;
        spread_credits(net, &seen, group.tolerates() + 1).await;
    }
}

/// Hands each member the certificates of credits other members list and it lacks (at most
/// [`MAX_CREDITS_LOOKED_UP`] ids), fetched from a member that lists it. The replica
/// verifies a certificate before applying it, so a member listing credits it cannot back
/// costs the wallet a lookup and moves nothing. Whether a member took one.
async fn spread_credits<N: LedgerNet>(net: &N, seen: &[(PeerId, AccountView)], need: usize) -> bool {
    let mut listed: Vec<(TransferId, Vec<PeerId>)> = Vec::new();
    for (p, v) in seen {
        for (id, _) in &v.credits {
            match listed.iter_mut().find(|(i, _)| i == id) {
                Some((_, by)) => by.push(*p),
                None => listed.push((*id, vec![*p])),
            }
        }
    }
    // Credits `need` list first (vouched for: an honest member holds each), then at most
    // [`MAX_UNVOUCHED_SPREAD`] fewer list: one member listing credits it made up costs a
    // read a few lookups, not one per made-up credit.
    listed.retain(|(_, by)| by.len() < seen.len());
    listed.sort_by_key(|(_, by)| std::cmp::Reverse(by.len()));
    let vouched = listed.iter().filter(|(_, by)| by.len() >= need).count();
    listed.truncate(vouched + MAX_UNVOUCHED_SPREAD);
    let mut took = false;
    for (id, by) in listed.into_iter().take(MAX_CREDITS_LOOKED_UP) {
        let Some(req) = fetch_credit(net, &by, id).await else { continue };
        let lacking: Vec<PeerId> = seen.iter().map(|(p, _)| *p).filter(|p| !by.contains(p)).collect();
        let answers: Vec<bool> = futures::stream::iter(lacking)
            .map(|p| {
                let req = req.clone();
                async move {
                    matches!(net.ledger(p, req).await, Ok(LedgerResponse::Applied { credit: Some(true), .. }))
                }
            })
            .buffer_unordered(kura_core::ledger::REPLICAS)
            .collect()
            .await;
        took |= answers.contains(&true);
    }
    took
}

/// A certificate by transfer id, from the first of `holders` that has it.
async fn fetch_certificate<N: LedgerNet>(net: &N, holders: &[PeerId], id: TransferId) -> Option<Certificate> {
    for p in holders {
        if let Ok(LedgerResponse::Certificate(c)) = net.ledger(*p, LedgerRequest::Certificate(id)).await {
            if c.signed.transfer.id() == id {
                return Some(*c);
            }
        }
    }
    None
}

/// What makes credit `id` at a replica that lacks it, from the first of `holders` that
/// hands it over: its transfer's certificate (applied), or the reward that minted it
/// (deposited: the replica verifies it with its own view of the audit group).
async fn fetch_credit<N: LedgerNet>(net: &N, holders: &[PeerId], id: TransferId) -> Option<LedgerRequest> {
    for p in holders {
        match net.ledger(*p, LedgerRequest::Certificate(id)).await {
            Ok(LedgerResponse::Certificate(c)) if c.signed.transfer.id() == id => {
                return Some(LedgerRequest::Apply(c))
            }
            Ok(LedgerResponse::Reward(r))
                if kura_core::farming::reward_id(r.epoch, &r.relay, &r.page) == id =>
            {
                return Some(LedgerRequest::Reward(r))
            }
            _ => {}
        }
    }
    None
}

/// Hands `cert` to the replicas of its sender and of its recipient; returns how many of
/// the sender's applied it.
pub async fn apply<N: LedgerNet>(net: &N, cert: &Certificate) -> Result<usize, WalletError<N::Error>> {
    let (_, of_from) = group(net, &cert.signed.transfer.from).await?;
    let refused = apply_to(net, cert, of_from.clone()).await?;
    Ok(of_from.iter().filter(|p| !refused.contains(p)).count())
}

/// Hands `cert` to `to` (the sender's group) and to the recipient's group; returns the
/// replicas that did not apply it.
async fn apply_to<N: LedgerNet>(
    net: &N,
    cert: &Certificate,
    mut to: Vec<PeerId>,
) -> Result<Vec<PeerId>, WalletError<N::Error>> {
    let t = &cert.signed.transfer;
    if t.to != kura_core::ledger::BURN {
        let (_, of_to) = group(net, &t.to).await?;
        to.extend(of_to.into_iter().filter(|p| !to.contains(p)).collect::<Vec<_>>());
    }
    let refused: Vec<Option<PeerId>> =
        futures::stream::iter(to)
            .map(|p| {
                let req = LedgerRequest::Apply(Box::new(cert.clone()));
                async move {
                    (!matches!(net.ledger(p, req).await, Ok(LedgerResponse::Applied { .. }))).then_some(p)
                }
            })
            .buffer_unordered(2 * kura_core::ledger::REPLICAS)
            .collect()
            .await;
    Ok(refused.into_iter().flatten().collect())
}

#[cfg(test)]
#[path = "wallet_tests.rs"]
mod tests;
