//! A file's health, proven: for every stripe of a file, how many of its shards the network
//! can prove it holds right now. Nothing is downloaded but the file's data map, each
//! stripe's header (a `FetchPart` of no bytes) and proofs of possession (about 2 KiB each).
//!
//! For each stripe: its close group is looked up, each relay of the group (and a few
//! beyond) is asked which indices it holds, and each claim is challenged on
//! `/kura/audit/1` with a fresh nonce; a claim counts only if its proof verifies against the
//! address in the header. The result is advisory: it feeds no relay's reputation (a client
//! could otherwise grief a relay), it only tells the owner how safe the file is.
//!
//! Not checked: the intermediate stripes of a nested data map (files of more than about
//! 15,000 chunks); the root stripe and every data stripe are.

use crate::net::{NetError, Network};
use crate::transfer::{self, Progress, TransferConfig, TransferError};
use futures::StreamExt;
use kura_core::placement::{by_distance, DhtKey};
use kura_core::proof::{challenged_chunk, verify, Proof, NONCE_LEN};
use kura_core::wire::{Message, Request, Response};
use kura_core::{Capability, StripeHeader, StripeId};
use libp2p::PeerId;
use std::collections::BTreeSet;

/// Relays asked about a stripe beyond the `n` closest (views differ; shards move).
const BEYOND_GROUP: usize = 4;
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
    /// Bytes of challenges and proofs moved.
    pub proof_bytes: u64,
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
    let mut ids: Vec<StripeId> = vec![cap.root];
    ids.extend(map.chunks.iter().map(|c| c.stripe));
    let mut seen = BTreeSet::new();
    ids.retain(|id| seen.insert(*id));
    let results: Vec<Result<(StripeHealth, u64), TransferError>> =
        futures::stream::iter(ids).map(|id| check_stripe(net, id)).buffered(STRIPES_AT_ONCE).collect().await;
    let mut health = Health::default();
    for r in results {
        let (s, bytes) = r?;
        health.stripes.push(s);
        health.proof_bytes += bytes;
    }
    Ok(health)
}

/// Proves what can be proven of one stripe; returns it with the bytes of proofs moved.
async fn check_stripe(net: &Network, id: StripeId) -> Result<(StripeHealth, u64), TransferError> {
    let peers = net.closest(id).await?;
    let ordered =
        by_distance(&DhtKey::of_stripe(&id), peers.into_iter().map(|p| (p, DhtKey::of(&p.to_bytes()))));
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
    let ask: Vec<PeerId> = ordered.into_iter().take(n + BEYOND_GROUP).collect();
    let claims: Vec<(PeerId, Vec<u8>)> = futures::stream::iter(ask)
        .map(|p| async move {
            match net.request(p, Request::Holds { stripes: vec![id] }).await {
                Ok(Response::Held { held }) => {
                    (p, held.into_iter().filter(|(s, _)| *s == id).flat_map(|(_, i)| i.into_vec()).collect())
                }
                _ => (p, Vec::new()),
            }
        })
        .buffer_unordered(n + BEYOND_GROUP)
        .collect()
        .await;
    let claimed: BTreeSet<u8> = claims.iter().flat_map(|(_, i)| i.iter().copied()).collect();
    let challenges = claims.into_iter().flat_map(|(p, idx)| idx.into_iter().map(move |i| (p, i)));
    let outcomes: Vec<(Option<u8>, u64)> = futures::stream::iter(challenges)
        .map(|(p, index)| prove_claim(net, &header, id, p, index))
        .buffer_unordered(n + BEYOND_GROUP)
        .collect()
        .await;
    let proven: BTreeSet<u8> = outcomes.iter().filter_map(|(i, _)| *i).collect();
    let bytes = outcomes.iter().map(|(_, b)| b).sum();
    Ok((StripeHealth { stripe: id, n, k, proven: proven.len(), claimed: claimed.len() }, bytes))
}

/// Challenges `peer` on index `index`: the index if its proof verifies, and the bytes moved.
async fn prove_claim(
    net: &Network,
    header: &StripeHeader,
    id: StripeId,
    peer: PeerId,
    index: u8,
) -> (Option<u8>, u64) {
    let Some(address) = header.shards().get(usize::from(index)).copied() else { return (None, 0) };
    let nonce: [u8; NONCE_LEN] = rand_nonce();
    let chunk = challenged_chunk(&nonce, &peer.to_bytes(), &address, header.shard_len());
    let challenge = Request::Prove { stripe: id, index, nonce };
    let sent = challenge.to_frame().map_or(0, |f| f.len()) as u64;
    match net.audit(peer, challenge).await {
        Ok(answer) => {
            let got = answer.to_frame().map_or(0, |f| f.len()) as u64;
            let proven = match answer {
                Response::Proof { chunk: bytes, siblings } => {
                    verify(&address, header.shard_len(), chunk, &Proof { chunk: bytes, siblings }).is_ok()
                }
                _ => false,
            };
            (proven.then_some(index), sent + got)
        }
        Err(
            NetError::Request { .. }
            | NetError::Closed
            | NetError::Unreachable(_)
            | NetError::BadBootstrap { .. },
        ) => (None, sent),
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
