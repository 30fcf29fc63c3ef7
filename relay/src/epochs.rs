//! Epoch audits and rewards on the wire ([`kura_core::farming`] has the rules).
//!
//! **Claiming.** A moment after each epoch ends, the relay lists the paid shards it holds
//! (its postage journal, less what the store no longer holds, with each stamp's burn once)
//! in an [`EpochClaim`] and sends it to each member of its audit group for that epoch, as
//! it sees the group. Each auditor answers a [`RewardShare`] or a refusal; with a quorum of
//! shares for the amount the rules give, the relay makes a [`RewardCertificate`] and
//! deposits it with the replicas of its rewards account (`LedgerRequest::Reward`), which
//! check it against their own view of the group and mint it once.
//!
//! **Auditing.** A claim is taken only from a live relay, for an epoch that ended at most
//! two epochs ago, by a member of the claimant's audit group in this relay's view, once per
//! claimant and epoch (a repeat gets the same answer). It is checked whole
//! ([`EpochClaim::inventory`]: burns, stamps, close-group membership); then
//! [`kura_core::farming::EPOCH_SAMPLES`] of its shards, drawn here at random, are challenged
//! with proofs of possession. Any failure refuses the share: the epoch is forfeited unless
//! enough other auditors sign.

use crate::farming::Claimed;
use crate::node::{error, rank_among, CLOSE_GROUP_SLACK};
use crate::repair::{blocking, challenge, Ctx};
use crate::unix_now;
use futures::StreamExt;
use kura_core::audit::Verdict;
use kura_core::farming::{
    epoch_of, ClaimEntry, ClaimPage, Draw, EpochAudit, EpochClaim, FreeLife, RewardCertificate, RewardShare,
    MAX_CLAIM_BATCHES, MAX_CLAIM_ENTRIES,
};
use kura_core::ledger::{Ed25519, Key, LedgerRequest, LedgerResponse};
use kura_core::wire::{ErrorCode, Request, Response};
use kura_core::StripeId;
use kura_p2p::ledger::{audit_group, beacon_of, draw_group, group_of, key_of};
use libp2p::PeerId;
use std::collections::HashMap;
use std::time::Duration;

/// Challenges one auditor has in flight for one claim.
const SAMPLES_AT_ONCE: usize = 4;

/// This relay's view of the live relays ([`crate::node::view`]).
fn view(ctx: &Ctx) -> Vec<PeerId> {
    crate::node::view(&ctx.shared, &ctx.me)
}

/// How long after an epoch's end its claim goes out: long enough that the auditors' clocks
/// have crossed the boundary too.
fn settle(epoch_secs: u64) -> Duration {
    Duration::from_millis((epoch_secs * 1000 / 10).clamp(500, 30_000))
}

/// Claims each epoch's reward as it ends, then drops the stripes whose batch ended (spawn
/// it). The first sweep runs at start, so a relay back from a long absence drops what ended
/// meanwhile before long. Epochs are claimed in turn: when a claim (with its tabs' pay)
/// outlasts an epoch, the next is claimed as soon as it is done, not skipped; only an
/// epoch its auditors no longer take claims for is passed over.
pub async fn run_epochs(ctx: Ctx) {
    let secs = ctx.shared.farming.config().epoch_secs;
    sweep(&ctx, epoch_of(unix_now(), secs)).await;
    let mut next = epoch_of(unix_now(), secs);
    loop {
        let since_unix =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let due = Duration::from_secs((next + 1) * secs) + settle(secs);
        tokio::time::sleep(due.saturating_sub(since_unix)).await;
        let epoch = next.max(epoch_of(unix_now(), secs).saturating_sub(CLAIMABLE_FOR));
        let earned = claim(&ctx, epoch).await.unwrap_or(0);
        pay_tabs(&ctx, epoch, earned).await;
        sweep(&ctx, epoch + 1).await;
        next = epoch + 1;
    }
}

/// For how many epochs after it ends an epoch may still be claimed, or drawn for.
const CLAIMABLE_FOR: u64 = 2;

/// The relays this one knows, but itself and `from` (the one that told it of a double
/// stamp): where it passes the evidence on.
pub fn others(ctx: &Ctx, from: Option<PeerId>) -> Vec<PeerId> {
    view(ctx).into_iter().filter(|p| *p != ctx.me && Some(*p) != from).collect()
}

/// Passes evidence of a double stamp on to `peers` (every relay this one knows, [`others`],
/// or a claimant that missed it), a few at a time. Each relay passes a batch's evidence on
/// once, when it first revokes it: a flood that ends, paid for by the cheat's burn.
pub async fn spread_revocation(ctx: Ctx, evidence: crate::farming::Evidence, peers: Vec<PeerId>) {
    let told = futures::stream::iter(peers)
        .map(|p| {
            let req = Request::Revoke {
                postage: Box::new(evidence.postage.clone()),
                second: Box::new(evidence.second.clone()),
            };
            let net = &ctx.net;
            async move { matches!(net.request(p, req).await, Ok(Response::Accepted)) }
        })
        .buffer_unordered(8)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    tracing::info!(
        batch = %kura_core::hex::encode(&evidence.postage.stamp.batch),
        told,
        "evidence of a double stamp passed on"
    );
}

/// Pays the donating tabs for `epoch` out of `earned`, this relay's reward for it
/// ([`kura_core::donation::TabPay`]): one ledger transfer each from the rewards account, the
/// largest first, one at a time (each names the account's next seq). Tabs owed nothing, or
/// a relay that earned nothing, pay nothing; the standing of every tab starts afresh.
pub async fn pay_tabs(ctx: &Ctx, epoch: u64, earned: u64) -> u64 {
    let cfg = *ctx.shared.farming.config();
    let due = ctx.shared.tabs.settle(&cfg.prices, cfg.epoch_secs, earned);
    let Some(payer) = ctx.shared.farming.payer() else { return 0 };
    let m = &ctx.shared.metrics;
    let mut paid = 0;
    let net = RelayLedger { ctx };
    for p in due {
        let memo = kura_core::donation::tab_reward_memo(epoch);
        // The operator may be spending from the same key file at this moment.
        let sent = match kura_p2p::wallet::SpendLock::take_async(&payer.file).await {
            Ok(_one_spender) => kura_p2p::wallet::send(&net, &payer.key, p.account, p.amount, memo)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("locking {}: {e}", payer.file.display())),
        };
        match sent {
            Ok(_) => {
                paid += p.amount;
                m.tab_payments.inc();
                m.tab_credits_paid.inc_by(p.amount);
                tracing::info!(tab = %p.tab, epoch, credits = p.amount, "paid a donating tab");
            }
            Err(e) => {
                m.tab_payments_failed.inc();
                tracing::warn!(tab = %p.tab, epoch, "paying a donating tab failed: {e}");
            }
        }
    }
    paid
}

/// The ledger as this relay reaches it: its own view for groups (with an account's group
/// looked up where the view is thin: [`crate::ledger::with_group_of`]), its own replica for
/// itself.
struct RelayLedger<'a> {
    ctx: &'a Ctx,
}

impl kura_p2p::wallet::LedgerNet for RelayLedger<'_> {
    type Error = String;

    async fn look_up(&self, key: Key) -> Result<Vec<PeerId>, String> {
        Ok(view_with_group(self.ctx, &key).await)
    }

    async fn look_up_bytes(&self, _bytes: Vec<u8>) -> Result<Vec<PeerId>, String> {
        Ok(view(self.ctx))
    }

    async fn ledger(&self, peer: PeerId, req: LedgerRequest) -> Result<LedgerResponse, String> {
        ledger_at(self.ctx, peer, req).await
    }

    async fn pause(&self, d: Duration) {
        tokio::time::sleep(d).await
    }
}

/// Sends `req` to the ledger replica `peer`: over the network, or answered here when `peer`
/// is this relay (a relay cannot dial itself, and is a replica of its own accounts' groups
/// as often as of anyone's).
async fn ledger_at(ctx: &Ctx, peer: PeerId, req: LedgerRequest) -> Result<LedgerResponse, String> {
    if peer != ctx.me {
        return ctx.net.ledger(peer, req).await;
    }
    let (shared, me) = (ctx.shared.clone(), ctx.me);
    blocking(move || {
        let relays = crate::node::view(&shared, &me);
        crate::node::answer_ledger(&shared, &me, &relays, Ok(req))
    })
    .await
    .ok_or_else(|| "ledger task failed".to_string())
}

/// Drops, at `epoch`, every shard of the paid stripes whose batch ended the grace ago or more
/// and of the free stripes whose life is over ([`crate::farming::Farming::expired`]).
/// Returns the shards dropped.
pub async fn sweep(ctx: &Ctx, epoch: u64) -> u64 {
    let shared = ctx.shared.clone();
    let dropped = blocking(move || {
        // What is held, read once: a stripe with no record of either kind gets a free life
        // from now, and what is left after the drops is what the free room holds.
        let mut held: HashMap<StripeId, usize> = match shared.store.inventory() {
            Ok(h) => h.into_iter().map(|(s, idx)| (s, idx.len())).collect(),
            Err(e) => {
                tracing::error!("store inventory: {e:#}");
                HashMap::new()
            }
        };
        match shared.farming.count_unrecorded(held.keys().copied(), epoch) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(stripes = n, epoch, "stripes held without a record counted as free from now")
            }
            Err(e) => tracing::error!("farming journal: {e:#}"),
        }
        let stripes = shared.farming.expired(epoch).unwrap_or_else(|e| {
            tracing::error!("farming journal: {e:#}");
            Vec::new()
        });
        let mut dropped = 0u64;
        for stripe in stripes {
            held.remove(&stripe);
            let Ok(has) = shared.store.holds(&[stripe]) else { continue };
            for index in has.into_iter().flat_map(|(_, idx)| idx) {
                if shared.store.remove(&stripe, index).is_ok_and(|gone| gone) {
                    dropped += 1;
                }
            }
        }
        shared.metrics.shards_expired.inc_by(dropped);
        let len_of = |stripe: &StripeId| -> u64 {
            let shard_len =
                shared.store.header(stripe).ok().flatten().and_then(|h| {
                    kura_core::stripe::StripeHeader::parse(&h).ok().map(|h| h.shard_len() as u64)
                });
            shard_len.unwrap_or(0) * held.get(stripe).copied().unwrap_or(0) as u64
        };
        if let Err(e) = shared.farming.count_free_held(held.keys().copied(), len_of) {
            tracing::error!("farming journal: {e:#}");
        }
        dropped
    })
    .await
    .unwrap_or(0);
    if dropped > 0 {
        tracing::info!(epoch, dropped, "dropped the shards of stripes whose batch ended");
    }
    dropped
}

/// Builds this relay's claims for `epoch`: every paid shard it holds of a batch not revoked
/// here, in the pages of the level its count needs (about `page_target` shards a page,
/// [`ClaimPage::level_for`]); a page lists at most [`MAX_CLAIM_ENTRIES`] shards of at most
/// [`MAX_CLAIM_BATCHES`] batches. Each claim with its shard bytes.
fn build_claims(ctx: &Ctx, epoch: u64, account: Key, page_target: usize) -> Vec<(EpochClaim, u64)> {
    let postage = ctx.shared.farming.postage(epoch).unwrap_or_else(|e| {
        tracing::error!("farming journal: {e:#}");
        Vec::new()
    });
    let mut held = Vec::new();
    for p in postage {
        // A revoked batch's stripes earn nothing (auditors refuse a claim naming one).
        if ctx.shared.farming.is_revoked(&p.stamp.batch) {
            continue;
        }
        let stripe = p.stamp.stripe;
        let Ok(has) = ctx.shared.store.holds(&[stripe]) else { continue };
        let Some(&index) = has.first().and_then(|(_, idx)| idx.first()) else { continue };
        let Ok(Some(header)) = ctx.shared.store.header(&stripe) else { continue };
        let Ok(shard_len) = kura_core::stripe::StripeHeader::parse(&header).map(|h| h.shard_len()) else {
            continue;
        };
        held.push((p, index, header, shard_len as u64));
    }
    let level = ClaimPage::level_for_target(held.len(), page_target);
    type Page =
        (HashMap<kura_core::ledger::TransferId, kura_core::ledger::Certificate>, Vec<ClaimEntry>, u64);
    let mut pages: std::collections::BTreeMap<u32, Page> = std::collections::BTreeMap::new();
    for (p, index, header, shard_len) in held {
        let (burns, entries, bytes) = pages.entry(ClaimPage::of(&p.stamp.stripe, level).prefix).or_default();
        if entries.len() >= MAX_CLAIM_ENTRIES {
            continue;
        }
        if !burns.contains_key(&p.stamp.batch) {
            if burns.len() >= MAX_CLAIM_BATCHES {
                continue;
            }
            burns.insert(p.stamp.batch, p.burn);
        }
        *bytes += shard_len;
        entries.push(ClaimEntry { header, index, stamp: p.stamp });
    }
    pages
        .into_iter()
        .map(|(prefix, (burns, entries, bytes))| {
            let page = ClaimPage { level, prefix };
            let burns = burns.into_values().collect();
            (EpochClaim { epoch, page, account, burns, entries, draws: Vec::new() }, bytes)
        })
        .collect()
}

/// Claims `epoch`'s reward, page by page; returns the credits deposited. The epoch counts
/// as rewarded when any page was, forfeited when pages were claimed and none was.
pub async fn claim(ctx: &Ctx, epoch: u64) -> Option<u64> {
    let farming = &ctx.shared.farming;
    let account = farming.rewards()?;
    let target = farming.page_target();
    let claims = {
        let ctx = ctx.clone();
        blocking(move || build_claims(&ctx, epoch, account, target)).await?
    };
    let relays = view(ctx);
    if claims.is_empty() {
        return None;
    }
    // The draws of this relay's neighbours place its audit group for the epoch: asked once,
    // shown with every page.
    let Some((draws, beacon)) = draws(ctx, epoch, &relays).await else {
        ctx.shared.metrics.epochs_unplaced.inc();
        return None;
    };
    // Its auditors: relays this one knew before the epoch began (the age rule); a relay
    // new to the network, or a network in its first epoch, has none yet.
    let auditors = farming.aged(&relays, epoch);
    if auditors.iter().all(|p| *p == ctx.me) {
        tracing::info!(epoch, "no relay met before the epoch began: nobody to audit it");
        ctx.shared.metrics.epochs_unplaced.inc();
        return None;
    }
    let (mut pages, mut shards, mut bytes, mut credits) = (0, 0, 0, 0);
    for (mut c, page_bytes) in claims {
        c.draws = draws.clone();
        let Some((outcome, page_shards, page_bytes)) =
            claim_page(ctx, &auditors, c, &beacon, page_bytes).await
        else {
            continue;
        };
        pages += 1;
        shards += page_shards;
        bytes += page_bytes;
        credits += outcome;
    }
    if pages == 0 {
        return None;
    }
    let m = &ctx.shared.metrics;
    farming.claimed(Claimed { epoch, pages, shards, bytes, credits });
    if credits > 0 {
        tracing::info!(epoch, pages, shards, credits, "epoch rewarded");
        m.epochs_rewarded.inc();
        Some(credits)
    } else {
        tracing::warn!(epoch, shards, "epoch forfeited");
        m.epochs_forfeited.inc();
        None
    }
}

/// Claims one page of an epoch from the relay's audit group (placed among `auditors`, the
/// relays of its view met before the epoch began): `None` when it earns nothing at these
/// prices (no claim sent, no auditor's time), else the credits deposited (0: the page was
/// forfeited), with the shards and bytes the page finally listed (the rewards account's
/// ledger group from this relay's view, looked up where it is thin). When auditors refuse it for a batch they
/// know is revoked (this relay missed the evidence: it was down while it spread), the page
/// is claimed once more without the batches they name.
async fn claim_page(
    ctx: &Ctx,
    auditors: &[PeerId],
    mut c: EpochClaim,
    beacon: &[u8; 32],
    mut bytes: u64,
) -> Option<(u64, usize, u64)> {
    let me = key_of(&ctx.me)?;
    let (epoch, page, account) = (c.epoch, c.page, c.account);
    let prices = ctx.shared.farming.config().prices;
    let group = audit_group(&ctx.me, epoch, beacon, auditors.iter().copied());
    let keys: Vec<Key> = group.iter().map(|(_, k)| *k).collect();
    for attempt in 0..2 {
        let (amount, shards) = (page.reward(&prices, bytes), c.entries.len());
        if c.entries.is_empty() || amount == 0 {
            return None;
        }
        let (shares, revoked) = ask_auditors(ctx, &group, &c).await;
        let draws = c.draws.clone();
        let cert = RewardCertificate { epoch, relay: me, account, amount, page, shares, draws };
        if let Err(e) = cert.verify(&keys, &prices, &Ed25519) {
            match c.without_batches(&revoked) {
                Some((again, left)) if attempt == 0 => {
                    tracing::info!(
                        epoch,
                        ?page,
                        batches = revoked.len(),
                        "auditors named revoked batches: the page is claimed again without them"
                    );
                    ctx.shared.metrics.claims_resent.inc();
                    (c, bytes) = (again, left);
                    continue;
                }
                _ => {
                    tracing::warn!(epoch, ?page, shards, "page forfeited: {e}");
                    return Some((0, shards, bytes));
                }
            }
        }
        return if deposit(ctx, &cert).await {
            tracing::info!(epoch, ?page, shards, credits = amount, "page rewarded");
            ctx.shared.metrics.credits_earned.inc_by(amount);
            Some((amount, shards, bytes))
        } else {
            tracing::warn!(epoch, ?page, "reward certified but not deposited (too few replicas took it)");
            Some((0, shards, bytes))
        };
    }
    None
}

/// Sends claim `c` to each member of its audit `group` at once: the shares they signed, and
/// the batches of the claim they refused it for as revoked.
async fn ask_auditors(
    ctx: &Ctx,
    group: &[(PeerId, Key)],
    c: &EpochClaim,
) -> (Vec<RewardShare>, Vec<kura_core::ledger::TransferId>) {
    let (epoch, page) = (c.epoch, c.page);
    let req = Request::EpochClaim(Box::new(c.clone()));
    let answers = futures::future::join_all(group.iter().map(|(peer, key)| {
        let req = req.clone();
        async move {
            match ctx.net.request(*peer, req).await {
                Ok(Response::Share(s)) if s.auditor == *key => Ok(s),
                Ok(Response::Error { code, detail }) => {
                    tracing::info!(%peer, epoch, ?page, "epoch claim refused: {code}: {detail}");
                    Err((code == ErrorCode::Revoked).then_some(detail))
                }
                Ok(other) => {
                    tracing::info!(%peer, epoch, ?page, "epoch claim answered {other:?}");
                    Err(None)
                }
                Err(e) => {
                    tracing::info!(%peer, epoch, ?page, "epoch claim unanswered: {e}");
                    Err(None)
                }
            }
        }
    }))
    .await;
    let (mut shares, mut revoked) = (Vec::new(), Vec::new());
    for a in answers {
        match a {
            Ok(s) => shares.push(s),
            Err(Some(detail)) => revoked.extend(c.revoked_in(&detail).filter(|b| !revoked.contains(b))),
            Err(None) => {}
        }
    }
    (shares, revoked)
}

/// Asks this relay's draw group (its neighbours, [`draw_group`]) for their draws for
/// `epoch`, once it has ended: those that answer with a proof that verifies, and the
/// beacon they give. `None` (the epoch is not claimed) when fewer than a quorum answer.
async fn draws(ctx: &Ctx, epoch: u64, relays: &[PeerId]) -> Option<(Vec<Draw>, [u8; 32])> {
    let group = draw_group(&ctx.me, relays.iter().copied());
    let input = kura_core::farming::draw_input(&ctx.me.to_bytes(), epoch);
    let answers = futures::future::join_all(group.iter().map(|(peer, key)| {
        let input = &input;
        async move {
            match ctx.net.request(*peer, Request::Draw { epoch }).await {
                Ok(Response::Draw(proof)) => match kura_core::vrf::verify(key, input, &proof) {
                    Ok(out) => Some((Draw { drawer: *key, proof }, out)),
                    Err(e) => {
                        tracing::warn!(%peer, epoch, "a draw that does not verify: {e}");
                        None
                    }
                },
                Ok(other) => {
                    tracing::info!(%peer, epoch, "draw answered {other:?}");
                    None
                }
                Err(e) => {
                    tracing::info!(%peer, epoch, "draw unanswered: {e}");
                    None
                }
            }
        }
    }))
    .await;
    let (draws, outputs): (Vec<Draw>, Vec<[u8; 32]>) = answers.into_iter().flatten().unzip();
    // Each draw was proven as it came: the beacon is taken from those outputs.
    let committee: Vec<_> = group.iter().map(|(_, k)| *k).collect();
    match kura_core::farming::beacon_of_verified(&committee, &draws, &outputs) {
        Ok(beacon) => Some((draws, beacon)),
        Err(e) => {
            tracing::warn!(epoch, "epoch not claimed: {e}");
            None
        }
    }
}

/// This relay's answer to `peer`'s [`Request::Draw`] for `epoch`: its draw, only once the
/// epoch has ended (before then nobody may know it), for the two epochs a claim may come
/// after, to a live relay whose draw group it is in (in its own view).
pub fn answer_draw(
    shared: &crate::node::Shared,
    me: &PeerId,
    peer: PeerId,
    epoch: u64,
    from_relay: bool,
) -> Response {
    let now = epoch_of(unix_now(), shared.farming.config().epoch_secs);
    if epoch >= now || epoch + CLAIMABLE_FOR < now {
        return error(
            ErrorCode::Unpaid,
            format!("epoch {epoch} is not drawn for now (epoch {now}): draws come after their epoch ends"),
        );
    }
    if !from_relay {
        return error(ErrorCode::NotInGroup, "draws are made for live relays of this network");
    }
    let relays = crate::node::view(shared, me);
    if !draw_group(&peer, relays.iter().copied()).iter().any(|(p, _)| p == me) {
        return error(ErrorCode::NotInGroup, "this relay is not among the sender's neighbours");
    }
    match shared.ledger.signer().draw(&peer, epoch) {
        Some(d) => Response::Draw(d.proof),
        None => error(ErrorCode::Internal, "this relay's identity makes no draws"),
    }
}

/// This relay's view with the group of `account` in it, looked up where the view is thin
/// there (this relay's own need: no stranger's certificate to check first).
async fn view_with_group(ctx: &Ctx, account: &Key) -> Vec<PeerId> {
    let mut relays = view(ctx);
    let looked = crate::ledger::with_group_of(
        &ctx.shared.ledger,
        &ctx.net,
        &ctx.me,
        account,
        &mut relays,
        false,
        || true,
    )
    .await;
    if looked {
        ctx.shared.metrics.group_lookup("own");
    }
    relays
}

/// Hands `cert` to the replicas of its account, twice at most for those that did not take
/// it; whether a quorum of the group took it.
async fn deposit(ctx: &Ctx, cert: &RewardCertificate) -> bool {
    let relays = view_with_group(ctx, &cert.account).await;
    let Some((group, members)) = group_of(&cert.account, relays.iter().copied()) else { return false };
    let mut waiting = members;
    let mut took = 0;
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let answers = futures::future::join_all(waiting.iter().map(|p| {
            let req = LedgerRequest::Reward(Box::new(cert.clone()));
            async move { (*p, ledger_at(ctx, *p, req).await) }
        }))
        .await;
        waiting = Vec::new();
        for (p, a) in answers {
            match a {
                Ok(LedgerResponse::Applied { credit: Some(true), .. }) => took += 1,
                Ok(other) => {
                    tracing::info!(peer = %p, "reward deposit answered {other:?}");
                    waiting.push(p);
                }
                Err(e) => {
                    tracing::info!(peer = %p, "reward deposit unanswered: {e}");
                    waiting.push(p);
                }
            }
        }
        if waiting.is_empty() {
            break;
        }
    }
    took >= group.quorum
}

/// Judges `peer`'s claim as a member of its audit group: a [`Response::Share`], or a
/// refusal with its reason.
pub async fn judge(ctx: &Ctx, peer: PeerId, claim: EpochClaim) -> Response {
    let farming = &ctx.shared.farming;
    let Some(relay) = key_of(&peer) else {
        return error(ErrorCode::Malformed, "epoch claims are taken from relays with ed25519 ids only");
    };
    let secs = farming.config().epoch_secs;
    let now = epoch_of(unix_now(), secs);
    if claim.epoch >= now || claim.epoch + CLAIMABLE_FOR < now {
        return error(
            ErrorCode::Unpaid,
            format!(
                "epoch {} is not claimable now (epoch {now}): claims come after their epoch ends",
                claim.epoch
            ),
        );
    }
    let relays = view(ctx);
    if !relays.contains(&peer) {
        return error(ErrorCode::NotInGroup, "epoch claims are taken from live relays of this network");
    }
    if let Some(batch) = claim.revoked_batch(|b| farming.is_revoked(b)) {
        // The claimant missed the evidence (it was down while it spread): it is told it,
        // once, and may claim the page again without the batch, so the refusal is not kept
        // as the page's judgement. It costs this relay a lookup per listed batch.
        if farming.first_told(relay, batch) {
            if let Ok(Some(evidence)) = farming.evidence(&batch) {
                tokio::spawn(spread_revocation(ctx.clone(), evidence, vec![peer]));
            }
        }
        ctx.shared.metrics.epoch_audits.get_or_create(&crate::metrics::Kind { kind: "revoked".into() }).inc();
        return error(ErrorCode::Revoked, EpochClaim::revoked_detail(&batch));
    }
    if let Some(answer) = farming.judged_before(relay, claim.epoch, claim.page) {
        return answer;
    }
    let beacon = {
        let (draws, relays) = (claim.draws.clone(), relays.clone());
        blocking(move || beacon_of(&peer, claim.epoch, &draws, &relays)).await
    };
    let beacon = match beacon {
        Some(Ok(b)) => b,
        Some(Err(e)) => {
            return error(ErrorCode::NotInGroup, format!("the claim's audit group is not placed: {e}"))
        }
        None => return error(ErrorCode::Internal, "the draws could not be checked"),
    };
    let aged = farming.aged(&relays, claim.epoch);
    let group = audit_group(&peer, claim.epoch, &beacon, aged);
    if !group.iter().any(|(p, _)| *p == ctx.me) {
        return error(
            ErrorCode::NotInGroup,
            "this relay is not in the claimant's audit group for that epoch",
        );
    }
    let (epoch, page) = (claim.epoch, claim.page);
    match farming.start_judging(relay, epoch, page) {
        Ok(()) => {}
        Err(Some(answer)) => return answer,
        Err(None) => return error(ErrorCode::Busy, "this claim is being judged; ask again later"),
    }
    let answer = audit(ctx, peer, relay, claim, relays).await;
    let outcome = match &answer {
        Response::Share(_) => "signed",
        Response::Error { code: ErrorCode::Unpaid, .. } => "failed",
        _ => "refused",
    };
    ctx.shared.metrics.epoch_audits.get_or_create(&crate::metrics::Kind { kind: outcome.into() }).inc();
    if matches!(&answer, Response::Error { code: ErrorCode::Internal, .. }) {
        farming.stop_judging(relay, epoch, page);
    } else {
        farming.judge(relay, epoch, page, &answer);
    }
    answer
}

async fn audit(ctx: &Ctx, peer: PeerId, relay: Key, claim: EpochClaim, relays: Vec<PeerId>) -> Response {
    let prices = ctx.shared.farming.config().prices;
    let epoch = claim.epoch;
    let account = claim.account;
    let page = claim.page;
    // The owners' groups of the claim's batches (burns it has not checked yet cost a lookup
    // each where this relay's view is thin there, one at a time).
    for burn in &claim.burns {
        if crate::ledger::look_up_burn_owner(&ctx.shared, &ctx.net, &ctx.me, relays.clone(), burn, false)
            .await
        {
            ctx.shared.metrics.group_lookup("burn");
        }
    }
    let shared = ctx.shared.clone();
    let checked = blocking(move || {
        let group = |owner: &Key| {
            group_of(owner, shared.ledger.with_looked_up(owner, relays.clone())).map(|(g, _)| g)
        };
        let member = |stripe: &StripeId, n: usize| rank_among(stripe, &peer, &relays) < n + CLOSE_GROUP_SLACK;
        claim.inventory(&prices, group, member, &Ed25519)
    })
    .await;
    let inv = match checked {
        Some(Ok(inv)) => inv,
        Some(Err(e)) => return error(ErrorCode::Unpaid, format!("the claim is refused: {e}")),
        None => return error(ErrorCode::Internal, "relay stopping"),
    };
    let mut audit = EpochAudit::new(epoch, relay, inv.bytes, inv.shards.len());
    let picks = rand::seq::index::sample(&mut rand::rng(), inv.shards.len(), audit.wanted());
    let verdicts: Vec<Verdict> = futures::stream::iter(picks.into_iter().map(|i| inv.shards[i].clone()))
        .map(|(header, index)| async move {
            challenge(ctx, header.id(), &header.to_bytes(), peer, index).await.unwrap_or(Verdict::Lost)
        })
        .buffer_unordered(SAMPLES_AT_ONCE)
        .collect()
        .await;
    for v in &verdicts {
        audit.record(*v);
    }
    match audit.amount(&prices, &page) {
        Some(amount) => Response::Share(RewardShare::sign(
            ctx.shared.ledger.signer(),
            epoch,
            &relay,
            &account,
            amount,
            &page,
        )),
        None if verdicts.iter().all(|v| *v == Verdict::Pass) => {
            error(ErrorCode::Unpaid, format!("{} shard bytes earn nothing at these prices", inv.bytes))
        }
        None => {
            let failed = verdicts.iter().filter(|v| **v != Verdict::Pass).count();
            error(
                ErrorCode::Unpaid,
                format!("{failed} of {} samples failed: the share is refused", verdicts.len()),
            )
        }
    }
}

/// The relays of this relay's view, nearest to `stripe` first.
fn nearest_to_stripe(ctx: &Ctx, stripe: &StripeId) -> Vec<PeerId> {
    let target = kura_core::placement::DhtKey::of_stripe(stripe);
    kura_core::placement::by_distance(
        &target,
        view(ctx).into_iter().map(|p| (p, kura_core::placement::DhtKey::of(&p.to_bytes()))),
    )
}

/// Whether a relay of `stripe`'s close group (its `n` closest in this relay's view, this
/// relay and `sender` left out) holds a shard of it, asked at once; `Err` with how many
/// were asked when none does.
pub async fn held_elsewhere(ctx: &Ctx, stripe: StripeId, n: usize, sender: PeerId) -> Result<(), usize> {
    let asked: Vec<PeerId> = nearest_to_stripe(ctx, &stripe)
        .into_iter()
        .filter(|p| *p != ctx.me && *p != sender)
        .take(n)
        .collect();
    let answers = futures::future::join_all(
        asked.iter().map(|peer| ctx.net.request(*peer, Request::Holds { stripes: vec![stripe] })),
    )
    .await;
    let holds = |a: &Result<Response, _>| matches!(a, Ok(Response::Held { held }) if held.iter().any(|(s, i)| *s == stripe && !i.is_empty()));
    if answers.iter().any(holds) {
        Ok(())
    } else {
        Err(asked.len())
    }
}

/// Learns the postage of `stripe`, which this relay came to hold by a repair or a handover,
/// from `peers` that hold it and the stripe's close group in this relay's view (the first
/// answer with postage that pays): without it the shard would earn nothing here. A stripe
/// stored free has none: its life then counts from the epoch its other holders agree on
/// ([`FreeLife::agreed_since`]), so that moving it does not make it young again. Returns
/// whether the postage is known now.
pub async fn learn_postage(ctx: &Ctx, stripe: StripeId, peers: Vec<PeerId>) -> bool {
    let known = {
        let shared = ctx.shared.clone();
        blocking(move || shared.farming.postage_of(&stripe).ok().flatten().is_some()).await
    };
    if known != Some(false) {
        return known.unwrap_or(false);
    }
    let group = nearest_to_stripe(ctx, &stripe);
    let mut asked: Vec<PeerId> = Vec::new();
    for p in peers.into_iter().chain(group) {
        if p != ctx.me && !asked.contains(&p) && asked.len() < POSTAGE_ASKED {
            asked.push(p);
        }
    }
    let answers = futures::future::join_all(
        asked.iter().map(|peer| ctx.net.request(*peer, Request::Postage { stripe })),
    )
    .await;
    let (mut free, mut paid) = (Vec::new(), false);
    for (peer, answer) in asked.into_iter().zip(answers) {
        let postage = match answer {
            Ok(Response::Postage(p)) if p.stamp.stripe == stripe => p,
            Ok(Response::FreeSince { epoch }) => {
                free.push(epoch);
                continue;
            }
            _ => continue,
        };
        paid = true;
        // Taken as a renewal's postage is: checked like a paid store's, for the shard held.
        let (shared, me) = (ctx.shared.clone(), ctx.me);
        let (told, rt) = (ctx.clone(), tokio::runtime::Handle::current());
        let found = move |evidence| {
            let peers = others(&told, None);
            rt.spawn(spread_revocation(told, evidence, peers));
        };
        match blocking(move || crate::node::restamp(&shared, &me, &postage, found)).await {
            Some(Response::Stored { .. }) => {
                tracing::debug!(%stripe, %peer, "postage of a repaired or handed-over shard learnt");
                return true;
            }
            Some(refused) => tracing::info!(%stripe, %peer, "postage refused: {refused:?}"),
            None => return false,
        }
    }
    // Postage offered but refused here: not counted as free (the sweep's count of what has
    // no record gives it a free life if nothing pays for it by then).
    if !paid {
        let shared = ctx.shared.clone();
        blocking(move || {
            let since = FreeLife::agreed_since(&mut free, shared.farming.epoch_now());
            if let Err(e) = shared.farming.record_free(&stripe, since, true) {
                tracing::error!("farming journal: {e:#}");
            }
        })
        .await;
    }
    false
}

/// Holders asked for a stripe's postage at most.
const POSTAGE_ASKED: usize = 4;
