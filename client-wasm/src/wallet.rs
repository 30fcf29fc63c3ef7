//! A wallet: an account's view, and transfers certified by its replicas
//! ([`kura_core::ledger`] has the rules; relays are the replicas, over `/kura/ledger/1`).
//!
//! An account's group is found by a Kademlia lookup of the account key (the relays closest
//! to it). A view is asked of every member and the one most members agree on is taken; a
//! transfer names the account's next seq and its unspent credits, is sent to every member
//! for acknowledgement, and once `q` have acknowledged it the certificate is handed to the
//! replicas of both accounts to apply.

use crate::net::{NetError, Network};
use futures::StreamExt;
use kura_core::ledger::{
    AccountView, Certificate, Ed25519, Group, Key, LedgerError, LedgerRequest, LedgerResponse, Signer,
    Transfer, MAX_DEPS,
};
use kura_core::StripeId;
use libp2p::PeerId;
use std::collections::HashMap;

/// Why a wallet operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("no relay of the account's group was found")]
    NoGroup,
    #[error("the account's replicas do not agree ({agree} of {asked} alike, {need} needed)")]
    Disagree { agree: usize, asked: usize, need: usize },
    #[error("{have} of {need} acknowledgements: {reasons}")]
    NotCertified { have: usize, need: usize, reasons: String },
    #[error("the certificate does not verify: {0}")]
    Invalid(#[from] LedgerError),
}

/// The account's group: the relays closest to the account key that a lookup finds.
pub async fn group(net: &Network, account: &Key) -> Result<(Group, Vec<PeerId>), WalletError> {
    // The account key is the lookup key, as relays find an account's group.
    let peers = net.look_up(StripeId::from_bytes(*account)).await?;
    kura_p2p::ledger::group_of(account, peers).ok_or(WalletError::NoGroup)
}

/// What the account's replicas agree it holds.
pub async fn view(net: &Network, account: &Key) -> Result<AccountView, WalletError> {
    let (group, members) = group(net, account).await?;
    let answers: Vec<Option<AccountView>> = futures::stream::iter(members)
        .map(|p| async move {
            match net.ledger(p, LedgerRequest::Account(*account)).await {
                Ok(LedgerResponse::Account(v)) => Some(v),
                _ => None,
            }
        })
        .buffer_unordered(kura_core::ledger::REPLICAS)
        .collect()
        .await;
    let asked = answers.len();
    let mut alike: Vec<(AccountView, usize)> = Vec::new();
    for v in answers.into_iter().flatten() {
        match alike.iter_mut().find(|(w, _)| *w == v) {
            Some((_, n)) => *n += 1,
            None => alike.push((v, 1)),
        }
    }
    // The view most replicas give, the furthest along among equals.
    alike.sort_by_key(|(v, n)| (std::cmp::Reverse(*n), std::cmp::Reverse(v.next_seq)));
    let need = group.tolerates() + 1;
    match alike.into_iter().next() {
        Some((v, n)) if n >= need => Ok(v),
        other => Err(WalletError::Disagree { agree: other.map_or(0, |(_, n)| n), asked, need }),
    }
}

/// Sends `amount` from `owner`'s account to `to`: certified by `owner`'s group and applied
/// by both groups. Returns the certificate.
pub async fn send(
    net: &Network,
    owner: &impl Signer,
    to: Key,
    amount: u64,
    memo: Vec<u8>,
) -> Result<Certificate, WalletError> {
    let from = owner.key();
    let account = view(net, &from).await?;
    let (group, members) = group(net, &from).await?;
    let deps = account.credits.iter().take(MAX_DEPS).map(|(id, _)| *id).collect();
    let signed = Transfer { from, seq: account.next_seq, to, amount, deps, memo }.sign(owner);
    let answers: Vec<(PeerId, Result<LedgerResponse, NetError>)> = futures::stream::iter(members.clone())
        .map(|p| {
            let req = LedgerRequest::Acknowledge(signed.clone());
            async move { (p, net.ledger(p, req).await) }
        })
        .buffer_unordered(kura_core::ledger::REPLICAS)
        .collect()
        .await;
    let mut acks = Vec::new();
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for (_, a) in answers {
        match a {
            Ok(LedgerResponse::Acked(ack)) => acks.push(ack),
            Ok(LedgerResponse::Refused { detail, .. }) => *reasons.entry(detail).or_default() += 1,
            Ok(_) => *reasons.entry("an answer of the wrong kind".into()).or_default() += 1,
            Err(e) => *reasons.entry(e.to_string()).or_default() += 1,
        }
    }
    if acks.len() < group.quorum {
        let reasons = reasons.into_iter().map(|(r, n)| format!("{n} × {r}")).collect::<Vec<_>>().join("; ");
        return Err(WalletError::NotCertified { have: acks.len(), need: group.quorum, reasons });
    }
    let cert = Certificate { signed, acks };
    cert.verify(&group, &Ed25519)?;
    apply(net, &cert).await?;
    Ok(cert)
}

/// Hands `cert` to the replicas of its sender and of its recipient; returns how many
/// applied it.
pub async fn apply(net: &Network, cert: &Certificate) -> Result<usize, WalletError> {
    let t = &cert.signed.transfer;
    let (_, mut to) = group(net, &t.from).await?;
    if t.to != kura_core::ledger::BURN {
        let (_, of_to) = group(net, &t.to).await?;
        to.extend(of_to.into_iter().filter(|p| !to.contains(p)).collect::<Vec<_>>());
    }
    let applied: Vec<bool> = futures::stream::iter(to)
        .map(|p| {
            let req = LedgerRequest::Apply(Box::new(cert.clone()));
            async move { matches!(net.ledger(p, req).await, Ok(LedgerResponse::Applied { .. })) }
        })
        .buffer_unordered(2 * kura_core::ledger::REPLICAS)
        .collect()
        .await;
    Ok(applied.into_iter().filter(|a| *a).count())
}
