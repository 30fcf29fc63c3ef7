//! The relay as a ledger replica ([`kura_core::ledger`]): it acknowledges transfers of the
//! accounts whose group it is in, applies certificates, and answers what it knows of an
//! account, over `/kura/ledger/1`.
//!
//! Everything that changes its state (a transfer acknowledged, a certificate applied as a
//! debit or a credit) is written to a journal in redb (`DIR/ledger.redb`) and committed
//! before the answer leaves: a relay killed and started again replays its journal and
//! never acknowledges a second transfer for a slot it signed. The journal holds what was
//! signed and applied, never announcements or anyone's word. Every certificate applied can
//! be asked for by its transfer id (an index into the journal, rebuilt on replay), so a
//! replica that missed some (it was down, or a wallet stopped half-way) can be handed them
//! by anyone. A relay that finds itself behind on an account (it refused for want of a
//! debit or a credit) also catches itself up ([`catch_up`]): it asks the account's group
//! for their views, takes the one `f + 1` agree on, fetches the certificates it lacks from
//! members that agree, and applies them, each verified as any certificate is. When it
//! missed more debits than a view lists, it adopts the account's state instead: the
//! summary (seq, balance, digest of the whole) that `f + 1` members give alike, put
//! together page by page from a member that gave it ([`kura_core::ledger::StateAssembly`]),
//! then the credits it still lacks by certificate.

use crate::unix_now;
use anyhow::{Context, Result};
use kura_core::farming::{Prices, RewardCertificate};
use kura_core::ledger::{
    AccountState, AccountView, Applied, Ed25519, Group, Key, LedgerError, LedgerRequest, LedgerResponse,
    Replica, Signed, SpendCap, StateAssembly, StateSummary, TransferId,
};
use kura_p2p::ledger::IdentitySigner;
use redb::{Database, ReadableTable, TableDefinition};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");

/// What one journal entry did.
const ACKNOWLEDGED: u8 = 0;
const DEBITED: u8 = 1;
const CREDITED: u8 = 2;
/// Applied as a credit, then as a debit (a replica serving both accounts).
const BOTH: u8 = 3;
/// An account's state adopted from its group (the entry is the state's encoding).
const ADOPTED: u8 = 4;
/// A reward certificate deposited (verified when it came; minted again on replay).
const REWARDED: u8 = 5;
/// A credit taken on the word of `f + 1` members ([`Replica::take_vouched`]): the entry is
/// the account, the credit's id and its amount.
const VOUCHED: u8 = 6;

/// A mint nobody holds the key of: relays started without `--ledger-mint` mint nothing.
pub const NO_MINT: Key = [0xff; 32];

/// Least time between two catch-ups of one account, and most catch-ups at once.
const CATCH_UP_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
const CATCH_UPS_AT_ONCE: usize = 8;

struct State {
    replica: Replica,
    next: u64,
    /// Where each applied certificate is in the journal.
    by_id: HashMap<TransferId, u64>,
}

/// The relay's replica and its journal.
pub struct Ledger {
    state: Mutex<State>,
    /// Accounts this replica is catching up on, and when it last started on each.
    catching_up: Mutex<HashMap<Key, (std::time::Instant, bool)>>,
    /// Accounts whose state this replica has checked with its group since it started (and
    /// so holds what the group acknowledged for the open slot): it acknowledges transfers of
    /// these only.
    synced: Mutex<std::collections::HashSet<Key>>,
    /// Groups of certificate senders this replica looked up ([`with_group_of`]), for a while.
    looked_up: Mutex<HashMap<Key, (std::time::Instant, Vec<libp2p::PeerId>)>>,
    /// Group lookups running ([`LOOKUPS_AT_ONCE`]).
    lookups: tokio::sync::Semaphore,
    journal: Option<Database>,
    signer: IdentitySigner,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("journal", &self.journal.is_some()).finish()
    }
}

impl Ledger {
    /// Opens (or creates) the journal under `dir` and replays it; `None`: in memory only
    /// (tests).
    pub fn open(
        dir: Option<&Path>,
        signer: IdentitySigner,
        mint: Key,
        cap: Option<SpendCap>,
    ) -> Result<Self> {
        let mut replica = Replica::new(mint);
        if let Some(cap) = cap {
            // What was spent before a restart is not counted again: after one, an account may
            // spend up to one more cap in the window.
            replica = replica.with_cap(cap);
            replica.set_now(unix_now());
        }
        let mut state = State { replica, next: 0, by_id: HashMap::new() };
        let journal = match dir {
            None => None,
            Some(dir) => {
                let path = dir.join("ledger.redb");
                let db = Database::create(&path).with_context(|| format!("opening {}", path.display()))?;
                let w = db.begin_write()?;
                w.open_table(JOURNAL)?;
                w.commit()?;
                let r = db.begin_read()?;
                let t = r.open_table(JOURNAL)?;
                for entry in t.iter()? {
                    let (n, bytes) = entry?;
                    state.next = n.value() + 1;
                    if let Some(id) = replay(&mut state.replica, &signer, bytes.value()) {
                        state.by_id.insert(id, n.value());
                    }
                }
                drop(t);
                drop(r);
                Some(db)
            }
        };
        Ok(Self {
            state: Mutex::new(state),
            catching_up: Mutex::new(HashMap::new()),
            looked_up: Mutex::new(HashMap::new()),
            lookups: tokio::sync::Semaphore::new(LOOKUPS_AT_ONCE),
            synced: Mutex::new(std::collections::HashSet::new()),
            journal,
            signer,
        })
    }

    /// Answers one request. `group_of` gives an account's group as this relay sees it, and
    /// whether this relay is in it.
    pub fn handle(
        &self,
        req: Result<LedgerRequest, LedgerError>,
        group_of: impl Fn(&Key) -> Option<(Group, bool)>,
    ) -> LedgerResponse {
        let req = match req {
            Ok(r) => r,
            Err(e) => return LedgerResponse::refused(&e),
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.replica.set_now(unix_now());
        match req {
            LedgerRequest::Account(account) => LedgerResponse::Account(st.replica.view(&account)),
            LedgerRequest::State { account, page } => match st.replica.state(&account).page(page) {
                Some(p) => LedgerResponse::State(Box::new(p)),
                None => LedgerResponse::refused(&LedgerError::Unknown),
            },
            LedgerRequest::Certificate(id) => {
                self.handed(&st, &id).unwrap_or_else(|| LedgerResponse::refused(&LedgerError::Unknown))
            }
            LedgerRequest::Acknowledge(signed) => {
                if !group_of(&signed.transfer.from).is_some_and(|(_, member)| member) {
                    return LedgerResponse::refused(&LedgerError::NotReplica);
                }
                if !self.is_synced(&signed.transfer.from) {
                    // Only a transfer its owner signed sets off a catch-up (fifteen requests
                    // to the group): a stranger's garbage costs one check and no traffic.
                    if !signed.verify(&Ed25519) {
                        return LedgerResponse::refused(&LedgerError::BadSignature);
                    }
                    return LedgerResponse::refused(&LedgerError::Joining);
                }
                self.acknowledge(&mut st, signed)
            }
            // Rewards need the relays' view of audit groups: see `Ledger::reward`.
            LedgerRequest::Reward(_) => LedgerResponse::refused(&LedgerError::NotReplica),
            LedgerRequest::Apply(cert) => {
                let t = &cert.signed.transfer;
                let Some((from_group, serves_from)) = group_of(&t.from) else {
                    return LedgerResponse::refused(&LedgerError::NotReplica);
                };
                let serves_to = group_of(&t.to).is_some_and(|(_, m)| m);
                if !serves_from && !serves_to {
                    return LedgerResponse::refused(&LedgerError::NotReplica);
                }
                // The certificate is verified once for both sides, and only if one of them
                // has not applied it yet (a replay costs a lookup).
                let (debited, credited) = st.replica.applied(&t.id());
                if (serves_to && !credited) || (serves_from && !debited) {
                    if let Err(e) =
                        st.replica.check_accounts(t).and_then(|()| cert.verify(&from_group, &Ed25519))
                    {
                        return LedgerResponse::refused(&e);
                    }
                }
                let (mut debit, mut credit, mut refusal) = (None, None, None);
                let (mut credited_now, mut debited_now) = (false, false);
                if serves_to {
                    credited_now = st.replica.apply_verified_credit(&cert) == Applied::Done;
                    credit = Some(true);
                }
                if serves_from {
                    match st.replica.apply_verified_debit(&cert, &Ed25519) {
                        Ok(applied) => {
                            debited_now = applied == Applied::Done;
                            debit = Some(true);
                        }
                        Err(e) => refusal = Some(LedgerResponse::refused(&e)),
                    }
                }
                // One entry, one commit, for what changed (a failed write is logged: the
                // certificate can be handed over again).
                let what = match (credited_now, debited_now) {
                    (true, true) => Some(BOTH),
                    (true, false) => Some(CREDITED),
                    (false, true) => Some(DEBITED),
                    (false, false) => None,
                };
                let req = LedgerRequest::Apply(cert);
                if let Some(what) = what {
                    if let Err(e) = self.write(&mut st, what, &req) {
                        tracing::error!("ledger journal: {e:#}");
                    }
                }
                refusal.unwrap_or(LedgerResponse::Applied { debit, credit })
            }
        }
    }

    /// Mints a reward certificate into the account it names, once per relay and epoch
    /// ([`Replica::deposit_reward`]), when this replica `serves` that account; `auditors` is
    /// this relay's view of the rewarded relay's audit group for the certificate's epoch.
    /// Journaled before the answer leaves.
    pub fn reward(
        &self,
        cert: &RewardCertificate,
        serves: bool,
        auditors: &[Key],
        prices: &Prices,
    ) -> LedgerResponse {
        if !serves {
            return LedgerResponse::refused(&LedgerError::NotReplica);
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match st.replica.deposit_reward(cert, auditors, prices, &Ed25519) {
            Ok(Applied::Done) => {
                let req = LedgerRequest::Reward(Box::new(cert.clone()));
                if let Err(e) = self.write(&mut st, REWARDED, &req) {
                    tracing::error!("ledger journal: {e:#}");
                }
                LedgerResponse::Applied { debit: None, credit: Some(true) }
            }
            Ok(_) => LedgerResponse::Applied { debit: None, credit: Some(true) },
            Err(e) => {
                let mut detail = format!("the reward is refused: {e}");
                detail.truncate(200);
                let code = match e {
                    kura_core::farming::FarmError::NoAccountWork { bits, need } => {
                        LedgerError::NoAccountWork { account: cert.account, bits, need }.code()
                    }
                    _ => LedgerError::NoQuorum { have: 0, need: 0 }.code(),
                };
                LedgerResponse::Refused { code, detail }
            }
        }
    }

    /// This ledger asking `bits` of account work instead of `ACCOUNT_BITS`: for benchmarks
    /// whose thousands of owners would take a second each to make with the work (the check,
    /// one hash, is still run). A relay never calls it.
    pub fn asking_account_bits(self, bits: u32) -> Self {
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let replica = std::mem::replace(&mut st.replica, Replica::new(kura_core::ledger::BURN));
            st.replica = replica.with_account_bits(bits);
        }
        self
    }

    /// The key this replica signs with (the relay's identity).
    pub fn signer(&self) -> &IdentitySigner {
        &self.signer
    }

    /// Adopts `state`, which `f + 1` members of the account's group gave alike, if it is
    /// further along than this replica's; durable when it returns `Ok(true)`.
    pub fn adopt(&self, state: AccountState) -> Result<bool> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = state.encode();
        if !st.replica.adopt_agreed(state) {
            return Ok(false);
        }
        self.write_entry(&mut st, ADOPTED, &bytes, None)?;
        Ok(true)
    }

    /// Takes credit `id` of `amount` into `account` on the word of `f + 1` members of its
    /// group ([`Replica::take_vouched`]); durable when it returns `Ok(true)`.
    pub fn vouched(&self, account: Key, id: TransferId, amount: u64) -> Result<bool> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.replica.take_vouched(account, id, amount) != Applied::Done {
            return Ok(false);
        }
        let body = postcard::to_allocvec(&(account, id, amount))?;
        self.write_entry(&mut st, VOUCHED, &body, None)?;
        Ok(true)
    }

    /// Acknowledges `signed` if the rules allow, durably before the answer.
    fn acknowledge(&self, st: &mut State, signed: Signed) -> LedgerResponse {
        let first = st.replica.account(&signed.transfer.from).acked.is_none();
        match st.replica.acknowledge(&signed, &self.signer, &Ed25519) {
            Ok(ack) => {
                if first {
                    if let Err(e) = self.write(st, ACKNOWLEDGED, &LedgerRequest::Acknowledge(signed)) {
                        tracing::error!("ledger journal: {e:#}");
                        return LedgerResponse::Refused { code: 0, detail: "journal not written".into() };
                    }
                }
                LedgerResponse::Acked(ack)
            }
            Err(e) => LedgerResponse::refused(&e),
        }
    }

    fn is_synced(&self, account: &Key) -> bool {
        self.synced.lock().unwrap_or_else(|p| p.into_inner()).contains(account)
    }

    /// Counts `account` as checked with its group: this replica acknowledges its transfers
    /// from now on. [`catch_up`] calls it; a replica run alone (a benchmark) may too.
    pub fn mark_synced(&self, account: Key) {
        self.synced.lock().unwrap_or_else(|p| p.into_inner()).insert(account);
    }

    /// Holds `pending`, which a member of the account's group reported acknowledged for the
    /// account's open slot: this replica acknowledges it (if the rules allow) and no other
    /// transfer for the slot, keeping the vote of a member that left the group. Two
    /// different ones reported for a slot are the owner's two signatures: evidence.
    fn hold(&self, pending: Signed) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if pending.transfer.seq == st.replica.account(&pending.transfer.from).next_seq {
            if let LedgerResponse::Refused { detail, .. } = self.acknowledge(&mut st, pending) {
                tracing::debug!("catch-up: a transfer reported pending was not held: {detail}");
            }
        }
    }

    fn write(&self, st: &mut State, what: u8, req: &LedgerRequest) -> Result<()> {
        let applied = match req {
            LedgerRequest::Apply(c) => Some(c.signed.transfer.id()),
            LedgerRequest::Reward(c) => Some(kura_core::farming::reward_id(c.epoch, &c.relay, &c.page)),
            _ => None,
        };
        self.write_entry(st, what, &req.encode(), applied)
    }

    /// Appends one entry; `applied`: the certificate (or reward) it holds, indexed by id.
    fn write_entry(&self, st: &mut State, what: u8, body: &[u8], applied: Option<TransferId>) -> Result<()> {
        let Some(db) = &self.journal else { return Ok(()) };
        let mut bytes = vec![what];
        bytes.extend_from_slice(body);
        let w = db.begin_write()?;
        {
            let mut t = w.open_table(JOURNAL)?;
            t.insert(st.next, bytes.as_slice())?;
        }
        w.commit()?;
        if let Some(id) = applied {
            st.by_id.insert(id, st.next);
        }
        st.next += 1;
        Ok(())
    }

    /// What this replica knows of `account`.
    pub fn view(&self, account: &Key) -> AccountView {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).replica.view(account)
    }

    /// Whether a catch-up of `account` may start now (not one running, none lately, not
    /// too many at once); if so it is counted as running until [`Ledger::end_catch_up`].
    pub fn start_catch_up(&self, account: Key) -> bool {
        let mut c = self.catching_up.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        c.retain(|_, (at, running)| *running || now.duration_since(*at) < CATCH_UP_EVERY);
        if c.contains_key(&account) || c.values().filter(|(_, running)| *running).count() >= CATCH_UPS_AT_ONCE
        {
            return false;
        }
        c.insert(account, (now, true));
        true
    }

    fn end_catch_up(&self, account: &Key) {
        if let Some(e) = self.catching_up.lock().unwrap_or_else(|p| p.into_inner()).get_mut(account) {
            e.1 = false;
        }
    }

    /// A certificate applied here, or a reward minted here, by its id, from the journal:
    /// the answer to [`LedgerRequest::Certificate`].
    fn handed(&self, st: &State, id: &TransferId) -> Option<LedgerResponse> {
        let n = *st.by_id.get(id)?;
        let r = self.journal.as_ref()?.begin_read().ok()?;
        let t = r.open_table(JOURNAL).ok()?;
        let bytes = t.get(n).ok()??;
        match LedgerRequest::decode(bytes.value().get(1..)?) {
            Ok(LedgerRequest::Apply(c)) => Some(LedgerResponse::Certificate(c)),
            Ok(LedgerRequest::Reward(c)) => Some(LedgerResponse::Reward(c)),
            _ => None,
        }
    }
}

/// Applies one journal entry (written by this relay, so trusted as it stands); the id of the
/// certificate it applied, if it is one.
fn replay(r: &mut Replica, signer: &IdentitySigner, bytes: &[u8]) -> Option<TransferId> {
    let (&what, body) = bytes.split_first()?;
    if what == ADOPTED {
        match AccountState::decode(body) {
            Ok(state) => {
                r.adopt_agreed(state);
            }
            Err(_) => tracing::warn!("journal: an adopted state that does not decode was skipped"),
        }
        return None;
    }
    if what == VOUCHED {
        match postcard::from_bytes::<(Key, TransferId, u64)>(body) {
            Ok((account, id, amount)) => {
                r.take_vouched(account, id, amount);
            }
            Err(_) => tracing::warn!("journal: a vouched credit that does not decode was skipped"),
        }
        return None;
    }
    let acked = |s: &Signed| s.transfer.from;
    match (what, LedgerRequest::decode(body)) {
        (ACKNOWLEDGED, Ok(LedgerRequest::Acknowledge(s))) => {
            if let Err(e) = r.acknowledge(&s, signer, &Ed25519) {
                tracing::debug!(from = ?acked(&s), "journal: acknowledgement not replayed: {e}");
            }
        }
        (DEBITED, Ok(LedgerRequest::Apply(c))) => {
            let _ = r.apply_verified_debit(&c, &Ed25519);
            return Some(c.signed.transfer.id());
        }
        (CREDITED, Ok(LedgerRequest::Apply(c))) => {
            let _: Applied = r.apply_verified_credit(&c);
            return Some(c.signed.transfer.id());
        }
        (REWARDED, Ok(LedgerRequest::Reward(c))) => {
            let _: Applied = r.credit_reward(&c);
            return Some(kura_core::farming::reward_id(c.epoch, &c.relay, &c.page));
        }
        (BOTH, Ok(LedgerRequest::Apply(c))) => {
            let _: Applied = r.apply_verified_credit(&c);
            let _ = r.apply_verified_debit(&c, &Ed25519);
            return Some(c.signed.transfer.id());
        }
        _ => tracing::warn!("journal: an entry that does not decode was skipped"),
    }
    None
}

/// Whether `resp` refuses for want of state this replica could fetch: a debit it has not
/// applied (`WrongSeq`) or a credit it does not hold (`MissingDeps`).
pub fn lacks_state(resp: &LedgerResponse) -> bool {
    matches!(resp, LedgerResponse::Refused { code, .. } if LedgerError::lacks_state(*code))
}

/// Brings this replica's view of `account` level with what `f + 1` of its group agree on,
/// fetching the certificates it lacks from members that agree (each verified on apply);
/// `mint` deposits a reward handed over as one sent to this replica would be (verified with
/// its own view of the audit group). `relays` are the live relays this one knows, itself
/// among them. Returns what happened, for the metrics (`kura_ledger_catch_ups_total{kind}`).
///
/// A certificate fetched has its sender's group placed as one sent here has
/// ([`answer_certificate`]: looked up where the view is thin, or `always`); the second value
/// is how many fetched certificates' groups were placed with a lookup.
pub async fn catch_up(
    ledger: &Ledger,
    net: &crate::repair::Sender,
    account: Key,
    me: libp2p::PeerId,
    relays: Vec<libp2p::PeerId>,
    always: bool,
    mint: impl Fn(RewardCertificate) -> LedgerResponse + Sync,
) -> (&'static str, usize) {
    let mut looked = 0;
    let outcome = catch_up_once(ledger, net, account, me, &relays, always, &mint, &mut looked).await;
    ledger.end_catch_up(&account);
    (outcome, looked)
}

#[allow(clippy::too_many_arguments)]
async fn catch_up_once(
    ledger: &Ledger,
    net: &crate::repair::Sender,
    account: Key,
    me: libp2p::PeerId,
    relays: &[libp2p::PeerId],
    always: bool,
    mint: &(dyn Fn(RewardCertificate) -> LedgerResponse + Sync),
    looked: &mut usize,
) -> &'static str {
    let mut pending = Vec::new();
    let at = Catching { ledger, net, me, relays, always };
    let outcome = level_with_group(&at, account, mint, &mut pending, looked).await;
    if matches!(outcome, "level" | "done" | "adopted" | "vouched" | "credits-short") {
        for p in pending {
            ledger.hold(p);
        }
        ledger.mark_synced(account);
    }
    outcome
}

/// Brings this replica level with its group on `account`; `pending` gets what members
/// reported acknowledged for the account's open slot. "vouched": level, with a credit
/// taken on the word of `f + 1` members (it could not verify one itself); "credits-short":
/// level on debits, but some credits could not be had (a journal write failed).
async fn level_with_group(
    at: &Catching<'_>,
    account: Key,
    mint: &(dyn Fn(RewardCertificate) -> LedgerResponse + Sync),
    pending: &mut Vec<Signed>,
    looked: &mut usize,
) -> &'static str {
    let Catching { ledger, net, me, relays, .. } = *at;
    let Some((group, members)) = kura_p2p::ledger::group_of(&account, relays.iter().copied()) else {
        return "no-group";
    };
    let others: Vec<libp2p::PeerId> = members.into_iter().filter(|p| *p != me).collect();
    let enough = group.quorum.min(others.len());
    let views: Vec<(libp2p::PeerId, AccountView)> =
        ask_all(net, &others, LedgerRequest::Account(account), enough, |r| {
            matches!(r, LedgerResponse::Account(_))
        })
        .await
        .into_iter()
        .filter_map(|(p, r)| match r {
            LedgerResponse::Account(v) => Some((p, v)),
            _ => None,
        })
        .collect();
    // Answers from `q` others at least: then one of them acknowledged any transfer a quorum
    // of the group did for the open slot (of the `q` that did, at most `f` are Byzantine
    // and one may be the member this one replaced), so its `pending` is heard and held.
    if views.len() < enough {
        return "too-few-answers";
    }
    pending.extend(views.iter().filter_map(|(_, v)| v.pending.as_deref().cloned()));
    pending.sort_by_key(|s| s.transfer.id());
    pending.dedup_by_key(|s| s.transfer.id());
    // This replica's own view counts as one member's: agreeing with it is being level.
    let mine = ledger.view(&account);
    let all = views.iter().map(|(_, v)| v).chain([&mine]);
    let Ok(agreed) = AccountView::agreed(all, group.tolerates() + 1) else {
        return "no-agreement";
    };
    let mut adopted = false;
    if ledger.view(&account).needs_state(&agreed) {
        match adopt_from(ledger, net, account, group.tolerates() + 1, &others, &agreed.credits).await {
            Ok(true) => adopted = true,
            Ok(false) => return "unadopted",
            Err(e) => {
                tracing::error!("ledger journal: {e:#}");
                return "unadopted";
            }
        }
    }
    let now = ledger.view(&account);
    let (debits, wanted) = (now.missing_debits(&agreed), now.missing(&agreed));
    if wanted.is_empty() {
        return if adopted { "adopted" } else { "level" };
    }
    let (mut short, mut vouched) = (false, false);
    for id in wanted {
        // A debit (or a credit it names) must be applied, in order, to be level; a credit
        // only listed is taken from whoever lists it.
        let required = debits.contains(&id);
        let holders: Vec<libp2p::PeerId> = views
            .iter()
            .filter(
                |(_, v)| if required { v.agrees(&agreed) } else { v.credits.iter().any(|(c, _)| *c == id) },
            )
            .map(|(p, _)| *p)
            .collect();
        let answer = match fetch(net, &holders, id).await {
            Some(LedgerRequest::Reward(cert)) => mint(*cert),
            Some(LedgerRequest::Apply(cert)) => {
                let (answer, lookup) = at.apply(&cert).await;
                *looked += usize::from(lookup);
                answer
            }
            Some(req) => ledger.handle(Ok(req), |a| group_in(relays, me, a)),
            None if required => return "unfetched",
            None => LedgerResponse::refused(&LedgerError::Unknown),
        };
        if let LedgerResponse::Refused { detail, .. } = answer {
            tracing::debug!(required, "catch-up: a certificate was not fetched or was refused: {detail}");
            if required {
                return "refused";
            }
            // A credit `f + 1` list alike (`agreed` lists no other) is taken on their word.
            match agreed.credits.iter().find(|(c, _)| *c == id) {
                Some(&(_, amount)) => match ledger.vouched(account, id, amount) {
                    Ok(taken) => vouched |= taken,
                    Err(e) => {
                        tracing::error!("ledger journal: {e:#}");
                        short = true;
                    }
                },
                None => short = true,
            }
        }
    }
    match (adopted, vouched, short) {
        (_, _, true) => "credits-short",
        (true, _, false) => "adopted",
        (false, true, false) => "vouched",
        (false, false, false) => "done",
    }
}

/// What a catch-up runs with: the replica, its view (`relays`, itself among them) and
/// whether it looks every sender's group up.
#[derive(Clone, Copy)]
struct Catching<'a> {
    ledger: &'a Ledger,
    net: &'a crate::repair::Sender,
    me: libp2p::PeerId,
    relays: &'a [libp2p::PeerId],
    always: bool,
}

impl Catching<'_> {
    /// A fetched certificate applied here, its sender's group placed as for one sent here.
    async fn apply(&self, cert: &kura_core::ledger::Certificate) -> (LedgerResponse, bool) {
        let (ledger, me) = (self.ledger, self.me);
        let answer = |view: Vec<libp2p::PeerId>| {
            let req = LedgerRequest::Apply(Box::new(cert.clone()));
            async move { Some(ledger.handle(Ok(req), |a| group_in(&view, me, a))) }
        };
        let (resp, looked) =
            answer_certificate(ledger, self.net, &me, self.relays.to_vec(), cert, self.always, answer).await;
        (resp.unwrap_or_else(|| LedgerResponse::refused(&LedgerError::Unknown)), looked)
    }
}

/// The group of `account` placed in the view `relays` (which holds `me`), and whether `me`
/// is a member.
fn group_in(relays: &[libp2p::PeerId], me: libp2p::PeerId, account: &Key) -> Option<(Group, bool)> {
    kura_p2p::ledger::group_of(account, relays.iter().copied()).map(|(g, members)| (g, members.contains(&me)))
}

/// The certificate (or reward) `id` names, from the first of `holders` that hands one that
/// hashes to it, as the request that applies it here.
async fn fetch(
    net: &crate::repair::Sender,
    holders: &[libp2p::PeerId],
    id: TransferId,
) -> Option<LedgerRequest> {
    for h in holders {
        if let Some(req) =
            net.ledger(*h, LedgerRequest::Certificate(id)).await.ok().and_then(|r| r.handing(&id))
        {
            return Some(req);
        }
    }
    None
}

/// How long a catch-up waits for the members that have not answered once enough have: a
/// member that died a moment ago is still in the view, and a dial to it can hang for
/// seconds (a QUIC handshake to a closed port), which held every catch-up of its group's
/// accounts up — past the wallet's retries, so a new account's first transfer was refused.
const ANSWER_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Asks every one of `peers` at once; the answers that came: all of them, or once `enough`
/// answers of the kind asked for (`kind`) have, those that come within [`ANSWER_GRACE`] more
/// (a refusal, busy, does not count towards `enough`).
async fn ask_all(
    net: &crate::repair::Sender,
    peers: &[libp2p::PeerId],
    req: LedgerRequest,
    enough: usize,
    kind: fn(&LedgerResponse) -> bool,
) -> Vec<(libp2p::PeerId, LedgerResponse)> {
    use futures::StreamExt;
    let mut asked: futures::stream::FuturesUnordered<_> = peers
        .iter()
        .map(|&p| {
            let req = req.clone();
            async move { (p, net.ledger(p, req).await) }
        })
        .collect();
    let (mut out, mut useful) = (Vec::new(), 0);
    let mut grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        let next = match grace.as_mut() {
            None => asked.next().await,
            Some(g) => tokio::select! {
                next = asked.next() => next,
                () = g => None,
            },
        };
        let Some((p, r)) = next else { break };
        if let Ok(r) = r {
            useful += usize::from(kind(&r));
            out.push((p, r));
        }
        if grace.is_none() && useful >= enough {
            grace = Some(Box::pin(tokio::time::sleep(ANSWER_GRACE)));
        }
    }
    out
}

/// Adopts `account`'s state from `members`: the debits at least `need` of them give alike,
/// the pages from the first of those whose pages hash to its summary, keeping of its unspent
/// credits those `vouched` lists. Whether it adopted.
async fn adopt_from(
    ledger: &Ledger,
    net: &crate::repair::Sender,
    account: Key,
    need: usize,
    members: &[libp2p::PeerId],
    vouched: &[(TransferId, u64)],
) -> Result<bool> {
    let firsts: Vec<(libp2p::PeerId, kura_core::ledger::StatePage)> =
        ask_all(net, members, LedgerRequest::State { account, page: 0 }, need, |r| {
            matches!(r, LedgerResponse::State(_))
        })
        .await
        .into_iter()
        .filter_map(|(p, r)| match r {
            LedgerResponse::State(page) if page.summary.account == account && page.page == 0 => {
                Some((p, *page))
            }
            _ => None,
        })
        .collect();
    let Some(agreed) = StateSummary::agreed(firsts.iter().map(|(_, p)| &p.summary), need) else {
        return Ok(false);
    };
    'members: for (p, first) in firsts.into_iter().filter(|(_, f)| f.summary.same_debits(&agreed)) {
        let mut assembly = StateAssembly::new(first.summary.clone());
        let mut next = Some(first);
        while let Some(n) = assembly.next_page() {
            let page = match next.take() {
                Some(page) => page,
                None => match net.ledger(p, LedgerRequest::State { account, page: n }).await {
                    Ok(LedgerResponse::State(page)) => *page,
                    _ => continue 'members,
                },
            };
            if assembly.add(page).is_err() {
                tracing::debug!(peer = %p, "catch-up: a state page does not match the agreed summary");
                continue 'members;
            }
        }
        match assembly.finish() {
            Ok(state) => return ledger.adopt(state.vouched(vouched)),
            Err(e) => {
                tracing::debug!(peer = %p, "catch-up: a member's state does not hash to the agreed one: {e}")
            }
        }
    }
    Ok(false)
}

impl Ledger {
    /// `relays` with the group of `account` this replica looked up lately, if any
    /// ([`with_group_of`]): where a group is placed in code that cannot wait for a lookup,
    /// after one was run ahead of it.
    pub fn with_looked_up(&self, account: &Key, mut relays: Vec<libp2p::PeerId>) -> Vec<libp2p::PeerId> {
        let map = self.looked_up.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, found)) = map.get(account) {
            if at.elapsed() < LOOKED_UP_FOR {
                for p in found {
                    if !relays.contains(p) {
                        relays.push(*p);
                    }
                }
            }
        }
        relays
    }
}

/// The group of a batch's owner for its burn certificate `burn`, looked up ahead of the
/// (blocking) check that places it where this relay's view is thin there
/// ([`with_group_of`]; the certificate earns it as a transfer's does), unless the batch was
/// admitted here already. Whether it looked up.
pub async fn look_up_burn_owner(
    shared: &crate::node::Shared,
    net: &crate::repair::Sender,
    me: &libp2p::PeerId,
    view: Vec<libp2p::PeerId>,
    burn: &kura_core::ledger::Certificate,
    always: bool,
) -> bool {
    if shared.farming.knows_batch(&burn.signed.transfer.id()) {
        return false;
    }
    let (ledger, mut relays) = (&shared.ledger, view);
    with_sender_group(ledger, net, me, burn, &mut relays, always).await
}

/// How long a looked-up group stands in for new lookups, and how many are kept.
const LOOKED_UP_FOR: std::time::Duration = std::time::Duration::from_secs(60);
const LOOKED_UP_MAX: usize = 1024;

/// The view `relays` with the group of `account` in it: as it is where the view holds the
/// account's neighbourhood, and otherwise (or `always`) with the relays a wide lookup of
/// the account finds added ([`kura_core::placement::view_is_thin`], [`WideLookup`]): at scale a
/// replica's view is its routing table, which holds the group of an account far from it in
/// part only, and it must place the sender's group to check a certificate's quorum.
/// Lookups are kept a minute, a thousand at most. Whether it looked up.
///
/// A lookup costs the network some fifty requests, so a certificate earns one only when it
/// could verify (`worth`: [`worth_a_lookup`], asked only when a lookup would start); and at most [`LOOKUPS_AT_ONCE`] run at once
/// (a certificate beyond that is placed from the view, and refused if the view lacks its
/// group: the wallet hands it again).
///
/// [`WideLookup`]: kura_core::placement::WideLookup
pub async fn with_group_of(
    ledger: &Ledger,
    net: &crate::repair::Sender,
    me: &libp2p::PeerId,
    account: &Key,
    relays: &mut Vec<libp2p::PeerId>,
    always: bool,
    worth: impl FnOnce() -> bool,
) -> bool {
    use kura_core::placement::{view_is_thin, DhtKey};
    let point = DhtKey::of(account);
    let keys: Vec<DhtKey> = relays.iter().map(|p| DhtKey::of(&p.to_bytes())).collect();
    if !always && !view_is_thin(&point, &DhtKey::of(&me.to_bytes()), &keys, kura_core::ledger::REPLICAS) {
        return false;
    }
    let now = std::time::Instant::now();
    let kept = ledger
        .looked_up
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(account)
        .filter(|(at, _)| now.duration_since(*at) < LOOKED_UP_FOR)
        .cloned();
    let found = match kept {
        Some((_, found)) => found,
        None => {
            if !worth() {
                return false;
            }
            let Ok(_running) = ledger.lookups.try_acquire() else { return false };
            let first = net.look_up(account.to_vec()).await;
            let found = kura_p2p::wallet::widen(net, point, kura_core::ledger::REPLICAS, first).await;
            let mut map = ledger.looked_up.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, (at, _)| now.duration_since(*at) < LOOKED_UP_FOR);
            if map.len() < LOOKED_UP_MAX {
                map.insert(*account, (now, found.clone()));
            }
            found
        }
    };
    for p in found {
        if !relays.contains(&p) {
            relays.push(p);
        }
    }
    true
}

/// [`with_group_of`] for the sender of certificate `cert`, which earns a lookup only if it
/// could verify ([`worth_a_lookup`] against the view as it was).
pub async fn with_sender_group(
    ledger: &Ledger,
    net: &crate::repair::Sender,
    me: &libp2p::PeerId,
    cert: &kura_core::ledger::Certificate,
    relays: &mut Vec<libp2p::PeerId>,
    always: bool,
) -> bool {
    let n = relays.len();
    let from = cert.signed.transfer.from;
    with_group_of(ledger, net, me, &from, relays, always, || worth_a_lookup(cert, n)).await
}

/// The answer to certificate `cert` with its sender's group placed as a replica places it:
/// from `relays` where the view holds the group, looked up where it is thin or `always`
/// ([`with_sender_group`]), and looked up once more where the group the view gave refused it
/// for too few acknowledgements (the thin rule errs rarely, as a view's estimate of the
/// network does). `answer` answers with a view (`None`: no answer). The answer, and whether a
/// lookup placed the group. Certificates sent to this replica and certificates it fetched
/// to catch up are answered so.
pub async fn answer_certificate<F, Fut>(
    ledger: &Ledger,
    net: &crate::repair::Sender,
    me: &libp2p::PeerId,
    mut relays: Vec<libp2p::PeerId>,
    cert: &kura_core::ledger::Certificate,
    always: bool,
    answer: F,
) -> (Option<LedgerResponse>, bool)
where
    F: Fn(Vec<libp2p::PeerId>) -> Fut,
    Fut: std::future::Future<Output = Option<LedgerResponse>>,
{
    let mut looked = with_sender_group(ledger, net, me, cert, &mut relays, always).await;
    let mut resp = answer(relays.clone()).await;
    let no_quorum = LedgerError::NoQuorum { have: 0, need: 0 }.code();
    if !looked && matches!(&resp, Some(LedgerResponse::Refused { code, .. }) if *code == no_quorum) {
        looked = with_sender_group(ledger, net, me, cert, &mut relays, true).await;
        if looked {
            if let Some(again) = answer(relays).await {
                resp = Some(again);
            }
        }
    }
    (resp, looked)
}

/// Group lookups a replica runs at once ([`with_group_of`]).
pub const LOOKUPS_AT_ONCE: usize = 8;

/// Whether certificate `cert` may cost a lookup of its sender's group: its owner signed it
/// and at least the quorum of a group of `min(view, 32)` relays with the join work
/// acknowledged it validly — no group it could verify against is smaller than what the view
/// already holds, so one that fails this fails everywhere. Signature checks here, so that a
/// stranger's made-up certificates cost it what they cost this replica, and no network.
pub fn worth_a_lookup(cert: &kura_core::ledger::Certificate, view: usize) -> bool {
    let Ok(signers) = cert.checked_signers(&kura_core::ledger::Ed25519) else { return false };
    let floor = Group::quorum_of(view);
    let admitted = signers
        .iter()
        .filter(|k| kura_p2p::ledger::peer_of(k).is_some_and(|p| kura_p2p::admitted(&p)))
        .count();
    admitted >= floor
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod lookup_tests {
    use super::*;
    use kura_core::ledger::{ack_message, Ack, Certificate, Signer, Transfer};

    /// A certificate from `owner` acknowledged by `signers` relay identities.
    fn certificate(owner: &kura_core::ledger::SigningKey, signers: &[IdentitySigner]) -> Certificate {
        let t = Transfer {
            from: owner.key(),
            seq: 1,
            to: [7; 32],
            amount: 5,
            deps: Vec::new(),
            memo: Vec::new(),
        };
        let signed = t.sign(owner);
        let msg = ack_message(&signed.transfer.from, 1, &signed.transfer.id());
        let acks = signers.iter().map(|s| Ack { replica: s.key(), sig: s.sign(&msg) }).collect();
        Certificate { signed, acks }
    }

    /// Only a certificate that could verify against some group the view allows earns a
    /// lookup: its owner's signature, a quorum of valid acknowledgements, by relays with the
    /// join work. A stranger's made-up ones cost the replica signature checks, no network.
    #[test]
    fn a_certificate_earns_a_lookup_only_if_it_could_verify() {
        let owner = kura_core::testdata::account_key(1);
        let worked: Vec<IdentitySigner> =
            (0..22).map(|_| IdentitySigner(kura_p2p::testnet::identity())).collect();
        let good = certificate(&owner, &worked);
        assert!(worth_a_lookup(&good, 40), "22 worked relays, a view of 40 (quorum 22)");
        assert!(!worth_a_lookup(&certificate(&owner, &worked[..21]), 40), "one short of the quorum");
        assert!(worth_a_lookup(&certificate(&owner, &worked[..5]), 7), "a view of 7: quorum 5");
        let mut forged = good.clone();
        forged.signed.sig = [0; 64];
        assert!(!worth_a_lookup(&forged, 40), "the owner did not sign it");
        let mut bad_acks = good.clone();
        for a in &mut bad_acks.acks {
            a.sig[0] ^= 1;
        }
        assert!(!worth_a_lookup(&bad_acks, 40), "acknowledgements that do not verify");
        // Identities made without the work (almost every fresh key lacks 20 bits).
        let unworked: Vec<IdentitySigner> = (0..22)
            .map(|_| IdentitySigner(libp2p::identity::Keypair::generate_ed25519()))
            .filter(|s| !kura_p2p::admitted(&s.0.public().to_peer_id()))
            .collect();
        assert!(!unworked.is_empty() && !worth_a_lookup(&certificate(&owner, &unworked), unworked.len()));
    }
}
