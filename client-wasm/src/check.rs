//! A file's health, proven: for every stripe of a file, how many of its shards the network
//! can prove it holds right now. Nothing is downloaded but the file's data map, each
//! stripe's header (a `FetchPart` of no bytes) and proofs of possession (about 2 KiB each).
//!
//! For each stripe: its close group is looked up (past one lookup's twenty where the
//! stripe's shards and the slack after them are more), each relay of the group (and a few
//! beyond) is asked which indices it holds, and each claim is challenged on
//! `/kura/audit/1` with a fresh nonce; a claim counts only if its proof verifies against the
//! address in the header. The result is advisory: it feeds no relay's reputation (a client
//! could otherwise grief a relay). A claim that could not be proven is **reported** to the
//! other holders of the stripe (`Request::Report` on `/kura/audit/1`), which challenge it
//! themselves soon; only their own verdict counts.
//!
//! Not checked: the intermediate stripes of a nested data map (files of more than about
//! 15,000 chunks); the root stripe and every data stripe are.

use crate::net::Network;
use crate::transfer::{self, Progress, TransferConfig, TransferError};
use futures::StreamExt;
use kura_core::audit::{Challenge, Verdict};
use kura_core::placement::{group_past_lookup, DhtKey, CLOSE_GROUP_SLACK};
use kura_core::proof::NONCE_LEN;
use kura_core::wire::{Message, Request, Response};
use kura_core::{Capability, StripeHeader, StripeId};
use libp2p::PeerId;
use std::collections::BTreeSet;

/// Stripes checked at once.
const STRIPES_AT_ONCE: usize = 8;

/// What was proven of one stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeHealth {
    pub stripe: StripeId,
    /// Shards a stripe has, and needs to be read.
    pub n: usize,
    pub k: usize,
    /// Distinct shard indices proven held.
    pub proven: usize,
    /// Distinct indices some relay claimed.
    pub claimed: usize,
}

/// What was proven of a whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    pub stripes: Vec<StripeHealth>,
    /// Bytes of challenges and proofs moved (and of reports).
    pub proof_bytes: u64,
    /// Claims answered but not proven, and reports of them the group took.
    pub unproven: usize,
    pub reported: usize,
}

impl Health {
    /// The stripe with the fewest proven shards (past its `k`).
    pub fn weakest(&self) -> Option<&StripeHealth> {
        self.stripes.iter().min_by_key(|s| (s.proven as i64 - s.k as i64, s.proven))
    }

    /// Whether every stripe is proven whole.
    pub fn is_whole(&self) -> bool {
        self.stripes.iter().all(|s| s.proven >= s.n)
    }
}

/// Checks the file behind `cap`.
pub async fn check(net: &Network, cap: Capability, cfg: &TransferConfig) -> Result<Health, TransferError> {
    let map = transfer::get(net, cap, Some((0, 0)), cfg, &Progress::default(), |_| Ok(())).await?;
    let ids = transfer::stripes_of(&cap, &map);
    let results: Vec<Result<Checked, TransferError>> =
        futures::stream::iter(ids).map(|id| check_stripe(net, id)).buffered(STRIPES_AT_ONCE).collect().await;
    let mut health = Health::default();
    for r in results {
        let c = r?;
        health.stripes.push(c.health);
        health.proof_bytes += c.bytes;
        health.unproven += c.unproven;
        health.reported += c.reported;
    }
    Ok(health)
}

/// One stripe checked.
struct Checked {
    health: StripeHealth,
    bytes: u64,
    unproven: usize,
    reported: usize,
}

/// Proves what can be proven of one stripe, and reports what could not be.
async fn check_stripe(net: &Network, id: StripeId) -> Result<Checked, TransferError> {
    let ordered = transfer::candidates(net, id, false, kura_core::placement::LOOKUP_FINDS).await?;
    // The header, from the first relay that has it.
    let mut header = None;
    for p in &ordered {
        if let Ok(Response::Part { header: h, .. }) =
            net.request(*p, Request::FetchPart { stripe: id, offset: 0, len: 0 }).await
        {
            if let Ok(parsed) = StripeHeader::parse_verified(&id, &h) {
                header = Some(parsed);
                break;
            }
        }
    }
    let Some(header) = header else {
        return Err(TransferError::Unavailable(vec![transfer::Unavailable {
            stripe: id,
            have: 0,
            need: 0,
            asked: ordered.len(),
            reasons: vec!["no relay asked has the stripe's header".into()],
        }]));
    };
    let (n, k) = (header.params().n(), header.params().k());
    // A 10+10 stripe's group is wider than one lookup: its last shards lie past it.
    let ordered = match group_past_lookup(n, ordered.len()) {
        Some(want) => kura_p2p::wallet::widen(net, DhtKey::of_stripe(&id), want, ordered).await,
        None => ordered,
    };
    let ask: Vec<PeerId> = ordered.into_iter().take(n + CLOSE_GROUP_SLACK).collect();
    let claims: Vec<(PeerId, Vec<u8>)> = futures::stream::iter(ask)
        .map(|p| async move {
            match net.request(p, Request::Holds { stripes: vec![id] }).await {
                Ok(Response::Held { held }) => {
                    (p, held.into_iter().filter(|(s, _)| *s == id).flat_map(|(_, i)| i.into_vec()).collect())
                }
                _ => (p, Vec::new()),
            }
        })
        .buffer_unordered(n + CLOSE_GROUP_SLACK)
        .collect()
        .await;
    let claimed: BTreeSet<u8> = claims.iter().flat_map(|(_, i)| i.iter().copied()).collect();
    let holders: Vec<PeerId> = claims.iter().filter(|(_, i)| !i.is_empty()).map(|(p, _)| *p).collect();
    let challenges = claims.into_iter().flat_map(|(p, idx)| idx.into_iter().map(move |i| (p, i)));
    let outcomes: Vec<(PeerId, u8, Option<Verdict>, u64)> = futures::stream::iter(challenges)
        .map(|(p, index)| {
            let header = &header;
            async move {
                let (verdict, bytes) = prove_claim(net, header, id, p, index).await;
                (p, index, verdict, bytes)
            }
        })
        .buffer_unordered(n + CLOSE_GROUP_SLACK)
        .collect()
        .await;
    let proven: BTreeSet<u8> = outcomes.iter().filter(|o| o.2 == Some(Verdict::Pass)).map(|o| o.1).collect();
    let mut bytes: u64 = outcomes.iter().map(|o| o.3).sum();
    // Claims answered but not proven, told to other holders of the stripe.
    let failed: Vec<(PeerId, u8)> =
        outcomes.iter().filter(|o| o.2.is_some_and(Verdict::is_failure)).map(|o| (o.0, o.1)).collect();
    let mut reports: Vec<(PeerId, PeerId, u8)> = Vec::new();
    for &(holder, index) in &failed {
        // Every other holder: each plans the stripe from its own view, and the one that orders
        // the rebuild must have failed the claim itself.
        reports.extend(holders.iter().filter(|p| **p != holder).map(|to| (*to, holder, index)));
    }
    let answers: Vec<(bool, u64)> = futures::stream::iter(reports)
        .map(|(to, holder, index)| async move {
            let req = Request::Report { stripe: id, index, holder: holder.to_bytes() };
            let sent = req.frame_len() as u64;
            match net.audit(to, req).await {
                Ok(answer) => (answer == Response::Accepted, sent + answer.frame_len() as u64),
                Err(_) => (false, sent),
            }
        })
        .buffer_unordered(n + CLOSE_GROUP_SLACK)
        .collect()
        .await;
    bytes += answers.iter().map(|a| a.1).sum::<u64>();
    Ok(Checked {
        health: StripeHealth { stripe: id, n, k, proven: proven.len(), claimed: claimed.len() },
        bytes,
        unproven: failed.len(),
        reported: answers.iter().filter(|a| a.0).count(),
    })
}

/// Challenges `peer` on index `index`: its verdict (none if it could not be asked or was
/// busy), and the bytes moved.
async fn prove_claim(
    net: &Network,
    header: &StripeHeader,
    id: StripeId,
    peer: PeerId,
    index: u8,
) -> (Option<Verdict>, u64) {
    let Some(c) = Challenge::new(header, id, index, &peer.to_bytes(), rand_nonce()) else { return (None, 0) };
    let req = c.request();
    let sent = req.frame_len() as u64;
    match net.audit(peer, req).await {
        Ok(answer) => {
            let got = answer.frame_len() as u64;
            (c.judge(answer).ok(), sent + got)
        }
        Err(_) => (None, sent),
    }
}

/// A fresh challenge nonce.
fn rand_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    // Without randomness a nonce would be guessable; an all-zero one still checks the bytes
    // (the holder cannot choose the chunk), so a failure here is not fatal.
    let _ = getrandom::fill(&mut n);
    n
}
