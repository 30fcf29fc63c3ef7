#![allow(clippy::unwrap_used)]

use super::*;
use crate::audit::Verdict;
use crate::ledger::{Ed25519, SigningKey};
use crate::testdata::XorShift;

const PRICES: Prices = Prices { price: 1_000, fee_percent: 10, cap: 1_000_000 };
const MIB: u64 = 1 << 20;
/// The one page of a relay with few paid shards.
const P0: ClaimPage = ClaimPage { level: 0, prefix: 0 };

fn signer(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn burn(owner: &SigningKey, terms: BatchTerms, amount: u64) -> Transfer {
    Transfer { from: owner.key(), seq: 1, to: BURN, amount, deps: vec![], memo: terms.memo() }
}

fn terms() -> BatchTerms {
    BatchTerms { slots: 4, slot_bytes: 6 * 256 * 1024, first_epoch: 10, epochs: 30 }
}

#[test]
fn a_burn_buys_the_batch_its_memo_names_if_it_covers_it() {
    let owner = crate::testdata::account_key(1);
    let cost = PRICES.cost(&terms());
    // 4 slots × 1.5 MiB × 30 epochs = 180 MiB-epochs at 1,000 per GiB-epoch: 175.78, up.
    assert_eq!(cost, 176);
    let b = Batch::of_burn(&burn(&owner, terms(), cost), &PRICES).unwrap();
    assert_eq!((b.owner, b.terms), (owner.key(), terms()));
    assert_eq!(
        Batch::of_burn(&burn(&owner, terms(), cost - 1), &PRICES),
        Err(FarmError::Underpaid { paid: cost - 1, cost })
    );
    let mut not_burnt = burn(&owner, terms(), cost);
    not_burnt.to = signer(2).key();
    assert_eq!(Batch::of_burn(&not_burnt, &PRICES), Err(FarmError::NotABatch));
    let mut no_terms = burn(&owner, terms(), cost);
    no_terms.memo = b"a gift".to_vec();
    assert_eq!(Batch::of_burn(&no_terms, &PRICES), Err(FarmError::NotABatch));
    let empty = BatchTerms { slots: 0, ..terms() };
    assert_eq!(Batch::of_burn(&burn(&owner, empty, cost), &PRICES), Err(FarmError::NotABatch));
    // A burn from an account without the account work buys nothing, however certified: its
    // group was the owner's to pick for free (see `ledger::ACCOUNT_BITS`).
    let workless = signer(1);
    assert!(matches!(
        Batch::of_burn(&burn(&workless, terms(), cost), &PRICES),
        Err(FarmError::NoAccountWork { need: crate::ledger::ACCOUNT_BITS, .. })
    ));
    assert!(terms().memo().len() <= crate::ledger::MAX_MEMO);
}

#[test]
fn a_stripe_may_be_dropped_once_its_batch_ended_and_the_grace_is_over() {
    // Epochs 10..=39 paid for; the grace is 3 epochs.
    let t = terms();
    assert_eq!(t.end_epoch(), 40);
    assert!(t.covers(39) && !t.covers(40));
    assert!(!t.droppable_at(39, 3), "paid for");
    assert!(!t.droppable_at(42, 3), "ended, within the grace: a renewal still finds it");
    assert!(t.droppable_at(43, 3) && t.droppable_at(1_000, 3));
    assert!(t.droppable_at(40, 0), "no grace: at the end");
    let forever = BatchTerms { epochs: u64::MAX, ..t };
    assert!(!forever.droppable_at(u64::MAX - 1, 5), "no overflow");
}

#[test]
fn stamps_are_checked_and_a_slot_stamped_twice_revokes_the_batch() {
    let owner = crate::testdata::account_key(1);
    let b = Batch::of_burn(&burn(&owner, terms(), 1_000), &PRICES).unwrap();
    let v = Ed25519;
    let s1 = StripeId::from_bytes([1; 32]);
    let s2 = StripeId::from_bytes([2; 32]);
    let ok = Stamp::sign(&owner, &b.id, s1, 0, MIB);
    assert_eq!(ok.check(&b, 10, &v), Ok(()));
    assert_eq!(ok.check(&b, 9, &v), Err(FarmError::Expired));
    assert_eq!(ok.check(&b, 40, &v), Err(FarmError::Expired));
    assert_eq!(ok.check(&b, 39, &v), Ok(()));
    assert_eq!(Stamp::sign(&owner, &b.id, s1, 4, MIB).check(&b, 10, &v), Err(FarmError::OutsideBatch));
    assert_eq!(Stamp::sign(&owner, &b.id, s1, 0, 2 * MIB).check(&b, 10, &v), Err(FarmError::OutsideBatch));
    assert_eq!(Stamp::sign(&signer(9), &b.id, s1, 0, MIB).check(&b, 10, &v), Err(FarmError::BadSignature));
    let mut forged = ok.clone();
    forged.stripe = s2;
    assert_eq!(forged.check(&b, 10, &v), Err(FarmError::BadSignature));

    let mut book = StampBook::default();
    book.admit(ok.clone(), &b, 10, &v).unwrap();
    // The same stamp again (a second shard of the stripe) is fine.
    book.admit(ok.clone(), &b, 11, &v).unwrap();
    book.admit(Stamp::sign(&owner, &b.id, s2, 1, MIB), &b, 11, &v).unwrap();
    assert!(book.pays(&ok, &b, 12));
    assert!(!book.pays(&ok, &b, 40), "expired");
    let twice = Stamp::sign(&owner, &b.id, s2, 0, MIB);
    let Err(FarmError::DoubleStamp(evidence)) = book.admit(twice, &b, 12, &v) else {
        panic!("admitted twice")
    };
    assert!(evidence.proves(&b, &v));
    assert!(book.is_revoked(&b.id));
    assert!(!book.pays(&ok, &b, 12), "a revoked batch pays nothing");
    assert_eq!(book.admit(Stamp::sign(&owner, &b.id, s1, 2, MIB), &b, 12, &v), Err(FarmError::Revoked));
    // Another relay learns of it from the evidence alone; bad evidence revokes nothing.
    let mut other = StampBook::default();
    let mut fake = (*evidence).clone();
    fake.second.sig = [0; 64];
    assert!(!other.revoke(&fake, &b, &v));
    assert!(!other.is_revoked(&b.id));
    assert!(other.revoke(&evidence, &b, &v));
    assert!(other.is_revoked(&b.id));
}

#[test]
fn the_free_allowance_is_bounded_per_account_and_per_relay_per_window() {
    let mut free = FreeUse::new(Allowance { per_account: 10 * MIB, per_relay: 25 * MIB, window_secs: 3600 });
    let (a, b, c) = (signer(1).key(), signer(2).key(), signer(3).key());
    free.take(&a, 6 * MIB, 0).unwrap();
    assert_eq!(free.left(&a, 10), 4 * MIB);
    assert_eq!(
        free.take(&a, 5 * MIB, 10),
        Err(FarmError::AllowanceUsed { used: 6 * MIB, allowance: 10 * MIB })
    );
    free.take(&a, 4 * MIB, 20).unwrap();
    free.take(&b, 10 * MIB, 30).unwrap();
    // The relay's whole allowance: 20 of 25 given, a third account gets 5.
    assert_eq!(free.left(&c, 40), 5 * MIB);
    assert!(free.take(&c, 6 * MIB, 40).is_err());
    free.take(&c, 5 * MIB, 40).unwrap();
    // A new window.
    assert_eq!(free.left(&a, 3600), 10 * MIB);
    free.take(&a, 10 * MIB, 3600).unwrap();
    // The room on disk for free storage bounds it whatever the windows: 35 MiB taken so far.
    assert_eq!(free.held(), (35 * MIB, u64::MAX));
    free.set_room(40 * MIB);
    assert_eq!(free.take(&b, 6 * MIB, 3700), Err(FarmError::FreeRoomFull { held: 35 * MIB, room: 40 * MIB }));
    free.take(&b, 5 * MIB, 3700).unwrap();
    // A sweep dropped ended free stripes and counted what is left.
    free.set_held(12 * MIB);
    free.take(&c, 10 * MIB, 3800).unwrap();
    assert_eq!(free.held(), (22 * MIB, 40 * MIB));
    // A store that failed after it was admitted gives its bytes back.
    free.release(10 * MIB);
    assert_eq!(free.held(), (12 * MIB, 40 * MIB));
}

#[test]
fn free_stripes_live_their_life_and_holders_agree_on_its_start() {
    let life = FreeLife { epochs: 10 };
    assert!(!life.droppable_at(100, 109));
    assert!(life.droppable_at(100, 110));
    assert!(life.droppable_at(u64::MAX - 3, u64::MAX), "no overflow");
    // Holders agree: the lower median of what they answered.
    assert_eq!(FreeLife::agreed_since(&mut [100, 100, 101], 120), 100);
    // One liar of three cannot keep the stripe forever (a late start) ...
    assert_eq!(FreeLife::agreed_since(&mut [100, 119, 101], 120), 101);
    // ... nor have it dropped at once (an early start).
    assert_eq!(FreeLife::agreed_since(&mut [0, 100, 100], 120), 100);
    // Two of four answering late are not a majority: the lower median is an honest answer.
    assert_eq!(FreeLife::agreed_since(&mut [100, 100, u64::MAX, u64::MAX], 120), 100);
    // A start in the future is taken as now; no answer is a fresh life.
    assert_eq!(FreeLife::agreed_since(&mut [500], 120), 120);
    assert_eq!(FreeLife::agreed_since(&mut [], 120), 120);
    // What the default bounds: the relay's allowance a window, for a week of windows.
    let held = DEFAULT_ALLOWANCE.per_relay * DEFAULT_FREE_LIFE.epochs * DEFAULT_EPOCH_SECS
        / DEFAULT_ALLOWANCE.window_secs;
    assert_eq!(held, 672 << 30);
}

/// Sixteen auditors, each with its own key.
fn auditors() -> Vec<SigningKey> {
    (0..AUDIT_GROUP as u8).map(|i| signer(100 + i)).collect()
}

fn share(auditor: &SigningKey, epoch: u64, relay: &Key, account: &Key, amount: u64) -> RewardShare {
    RewardShare::sign(auditor, epoch, relay, account, amount, &P0)
}

#[test]
fn a_quorum_of_the_audit_group_signs_a_reward_deposited_once() {
    let (relay, account) = (signer(7).key(), crate::testdata::account_key(0).key());
    let group = auditors();
    let keys: Vec<Key> = group.iter().map(Signer::key).collect();
    let bytes = 300 * MIB;
    // Every auditor sees its samples pass and computes the same amount.
    let amounts: Vec<Option<u64>> = group
        .iter()
        .map(|_| {
            let mut a = EpochAudit::new(5, relay, bytes, 1200);
            while a.wanted() > 0 {
                a.record(Verdict::Pass);
            }
            a.amount(&PRICES, &P0)
        })
        .collect();
    let amount = amounts[0].unwrap();
    assert!(amounts.iter().all(|a| *a == Some(amount)));
    // 300 MiB at 900 per GiB-epoch.
    assert_eq!(amount, 263);
    let shares: Vec<RewardShare> = group.iter().map(|g| share(g, 5, &relay, &account, amount)).collect();
    let cert = |shares: Vec<RewardShare>| RewardCertificate {
        epoch: 5,
        relay,
        account,
        amount,
        page: P0,
        shares,
        draws: Vec::new(),
    };
    let v = Ed25519;
    assert_eq!(cert(shares[..AUDIT_QUORUM].to_vec()).verify(&keys, &PRICES, &v), Ok(()));
    assert_eq!(
        cert(shares[..AUDIT_QUORUM - 1].to_vec()).verify(&keys, &PRICES, &v),
        Err(FarmError::NoQuorum { have: AUDIT_QUORUM - 1, need: AUDIT_QUORUM })
    );
    const Q: usize = AUDIT_QUORUM;
    // One auditor's share given a quorum's times counts once.
    assert!(cert(vec![shares[0].clone(); Q]).verify(&keys, &PRICES, &v).is_err());
    // Shares of relays outside the group count for nothing.
    let outsiders: Vec<RewardShare> =
        (0..Q as u8).map(|i| share(&signer(200 + i), 5, &relay, &account, amount)).collect();
    assert!(cert(outsiders).verify(&keys, &PRICES, &v).is_err());
    // Shares signed for another amount, epoch or account do not make this one.
    let mut mixed = shares[..Q - 1].to_vec();
    mixed.push(share(&group[Q - 1], 5, &relay, &account, amount + 1));
    assert!(cert(mixed).verify(&keys, &PRICES, &v).is_err());
    let other_account = RewardCertificate { account: relay, ..cert(shares[..Q].to_vec()) };
    assert!(other_account.verify(&keys, &PRICES, &v).is_err());
    // Over the cap, whoever signed it.
    let big = PRICES.cap + 1;
    let over = RewardCertificate {
        amount: big,
        shares: group.iter().map(|g| share(g, 5, &relay, &account, big)).collect(),
        ..cert(vec![])
    };
    assert_eq!(over.verify(&keys, &PRICES, &v), Err(FarmError::OverCap { amount: big, cap: PRICES.cap }));
    // Minted once by the account's replica, whichever quorum signed it.
    let mut ledger = crate::ledger::Replica::new(signer(50).key());
    let good = cert(shares[..Q].to_vec());
    assert_eq!(ledger.deposit_reward(&good, &keys, &PRICES, &v), Ok(crate::ledger::Applied::Done));
    let again = cert(shares[AUDIT_GROUP - Q..].to_vec());
    assert_eq!(ledger.deposit_reward(&again, &keys, &PRICES, &v), Ok(crate::ledger::Applied::Already));
    assert_eq!(ledger.rewarded(), u128::from(amount));
}

#[test]
fn any_failed_sample_forfeits_and_an_empty_inventory_earns_nothing() {
    let relay = signer(7).key();
    let mut a = EpochAudit::new(1, relay, 100 * MIB, 500);
    for _ in 0..EPOCH_SAMPLES - 1 {
        a.record(Verdict::Pass);
    }
    assert_eq!(a.amount(&PRICES, &P0), None, "not every sample asked");
    a.record(Verdict::Timeout);
    assert_eq!(a.wanted(), 0);
    assert_eq!(a.amount(&PRICES, &P0), None);
    let empty = EpochAudit::new(1, relay, 0, 0);
    assert_eq!((empty.wanted(), empty.amount(&PRICES, &P0)), (0, None));
    // A small inventory is sampled whole.
    let mut few = EpochAudit::new(1, relay, 3 * MIB, 3);
    assert_eq!(few.wanted(), 3);
    (0..3).for_each(|_| few.record(Verdict::Pass));
    assert_eq!(few.amount(&PRICES, &P0), Some(2));
}

/// The adversary: a relay that dropped 5% of its shards, audited by 32 auditors sampling
/// independently, gets a certificate (22 all-pass auditors) in few epochs; one that dropped
/// 1% in most but not all; an honest one in all.
#[test]
fn a_relay_that_drops_five_percent_forfeits_nearly_every_epoch() {
    let mut rng = XorShift(41);
    let rewarded = |drop: f64, rng: &mut XorShift| {
        let mut won = 0;
        for _ in 0..2000 {
            let mut passing = 0;
            for _ in 0..AUDIT_GROUP {
                let mut a = EpochAudit::new(1, [7; 32], 100 * MIB, 400);
                while a.wanted() > 0 {
                    a.record(if rng.chance(drop) { Verdict::False } else { Verdict::Pass });
                }
                passing += usize::from(a.amount(&PRICES, &P0).is_some());
            }
            won += usize::from(passing >= AUDIT_QUORUM);
        }
        won as f64 / 2000.0
    };
    let five = rewarded(0.05, &mut rng);
    assert!(five < 0.05, "{five}");
    let one = rewarded(0.01, &mut rng);
    assert!(one > 0.5 && one < 1.0, "{one}");
    assert_eq!(rewarded(0.0, &mut rng), 1.0);
}

/// Whatever batches are bought, a stripe's shards held by its close group (one shard per
/// member) and rewarded every epoch of the batch mint at most `(1 − fee)` of the burn.
#[test]
fn rewards_never_exceed_what_batches_burnt_less_the_fee() {
    let mut rng = XorShift(9);
    for _ in 0..500 {
        let t = BatchTerms {
            slots: 1 + rng.below(50) as u32,
            slot_bytes: 1 + rng.below(64 << 20) as u64,
            first_epoch: 0,
            epochs: 1 + rng.below(400) as u64,
        };
        let prices = Prices { price: 1 + rng.below(100_000) as u64, fee_percent: 10, cap: u64::MAX };
        let burnt = prices.cost(&t);
        // Each slot used by a stripe as large as allowed, split over up to 20 shards, each
        // proven by its holder every epoch (alone in its inventory: rounding at its worst).
        let mut minted = 0u64;
        for _ in 0..t.slots {
            let n = 1 + rng.below(20) as u64;
            let shard = t.slot_bytes / n;
            minted += prices.reward(shard) * n * t.epochs;
        }
        assert!(minted * 100 <= burnt * 90 + 100, "minted {minted} of {burnt} burnt");
    }
}

#[test]
fn the_audit_point_moves_every_epoch_and_differs_per_relay_and_beacon() {
    let b = [7u8; 32];
    let a = audit_point(b"relay a", 1, &b);
    assert_ne!(a, audit_point(b"relay a", 2, &b));
    assert_ne!(a, audit_point(b"relay b", 1, &b));
    assert_ne!(a, audit_point(b"relay a", 1, &[8u8; 32]));
    assert_eq!(a, audit_point(b"relay a", 1, &b));
    assert_eq!(epoch_of(86_399, 86_400), 0);
    assert_eq!(epoch_of(86_400, 86_400), 1);
    assert_eq!(epoch_of(5, 0), 5, "a zero length is taken as one second");
}

/// The ledger mints a certified reward once, as a credit the relay's account spends like
/// any other, and value stays conserved; a certificate short of a quorum mints nothing.
#[test]
fn a_replica_mints_a_certified_reward_once_and_it_can_be_spent() {
    use crate::ledger::{Applied, Replica};
    let v = Ed25519;
    let mint = signer(50);
    let owner = crate::testdata::account_key(0);
    let (relay, account) = (signer(7).key(), owner.key());
    let group = auditors();
    let keys: Vec<Key> = group.iter().map(Signer::key).collect();
    let amount = 263;
    let shares: Vec<RewardShare> = group.iter().map(|g| share(g, 5, &relay, &account, amount)).collect();
    let cert = RewardCertificate {
        epoch: 5,
        relay,
        account,
        amount,
        page: P0,
        shares: shares[..AUDIT_QUORUM].to_vec(),
        draws: Vec::new(),
    };
    let mut r = Replica::new(mint.key());
    // A reward into an account without the account work mints nothing, however certified.
    let workless = signer(9).key();
    let into_workless = RewardCertificate {
        account: workless,
        shares: group.iter().map(|g| share(g, 5, &relay, &workless, amount)).collect(),
        ..cert.clone()
    };
    assert_eq!(into_workless.verify(&keys, &PRICES, &v), Ok(()));
    assert!(matches!(
        r.deposit_reward(&into_workless, &keys, &PRICES, &v),
        Err(FarmError::NoAccountWork { need: crate::ledger::ACCOUNT_BITS, .. })
    ));
    assert_eq!(r.rewarded(), 0);
    let short = RewardCertificate { shares: shares[..AUDIT_QUORUM - 1].to_vec(), ..cert.clone() };
    assert!(matches!(r.deposit_reward(&short, &keys, &PRICES, &v), Err(FarmError::NoQuorum { .. })));
    assert_eq!(r.deposit_reward(&cert, &keys, &PRICES, &v), Ok(Applied::Done));
    // The same reward again, even signed by other auditors of the group: once.
    let again = RewardCertificate { shares: shares[AUDIT_GROUP - AUDIT_QUORUM..].to_vec(), ..cert.clone() };
    assert_eq!(r.deposit_reward(&again, &keys, &PRICES, &v), Ok(Applied::Already));
    assert_eq!(r.view(&account).spendable(), amount);
    assert_eq!(r.rewarded(), u128::from(amount));
    r.check_conservation().unwrap();
    // Spent by naming it.
    let id = reward_id(5, &relay, &P0);
    // Not to an account without the work: nothing is sent where it could never be spent.
    let pay = |to: Key| {
        Transfer { from: account, seq: 1, to, amount: 200, deps: vec![id], memo: vec![] }.sign(&owner)
    };
    assert!(matches!(
        r.acknowledge(&pay(workless), &group[0], &v),
        Err(crate::ledger::LedgerError::NoAccountWork { .. })
    ));
    assert!(r.acknowledge(&pay(crate::testdata::account_key(1).key()), &group[0], &v).is_ok());
    // Another epoch is another credit.
    assert_ne!(reward_id(6, &relay, &P0), id);
    assert_ne!(reward_id(5, &signer(9).key(), &P0), id);
}

/// A burn of `amount` for `terms`, certified by a group of four replicas (quorum three).
fn certified_burn(owner: &SigningKey, terms: BatchTerms, amount: u64) -> (Certificate, Group) {
    use crate::ledger::{ack_message, Ack};
    let replicas: Vec<SigningKey> = (20..24).map(signer).collect();
    let group = Group::new(replicas.iter().map(|r| r.key()).collect(), 3).unwrap();
    let signed = burn(owner, terms, amount).sign(owner);
    let t = &signed.transfer;
    let msg = ack_message(&t.from, t.seq, &t.id());
    let acks = replicas.iter().take(3).map(|r| Ack { replica: r.key(), sig: r.sign(&msg) }).collect();
    (Certificate { signed, acks }, group)
}

#[test]
fn a_relay_admits_paid_stores_by_their_postage_and_unpaid_ones_within_the_allowance() {
    let v = Ed25519;
    let owner = crate::testdata::account_key(1);
    let allowance = Allowance { per_account: 3 * MIB, per_relay: 100 * MIB, window_secs: 3600 };
    let mut gate = Admission::new(PRICES, allowance);
    let payer = [7u8; 32];
    let s1 = StripeId::from_bytes([1; 32]);
    let s2 = StripeId::from_bytes([2; 32]);
    let none = |_: &Key| -> Option<Group> { None };

    // Unpaid: within the allowance, then refused, and a refusal takes nothing.
    assert_eq!(gate.admit(&s1, 2 * MIB, 6 * MIB, &payer, None, none, 0, 10, &v), Ok(Admitted::Free));
    assert_eq!(gate.free_left(&payer, 0), MIB);
    let refused = gate.admit(&s1, 2 * MIB, 6 * MIB, &payer, None, none, 0, 10, &v);
    assert_eq!(refused, Err(FarmError::AllowanceUsed { used: 2 * MIB, allowance: 3 * MIB }));
    assert_eq!(gate.free_left(&payer, 0), MIB);
    // The next window gives it again.
    assert_eq!(gate.admit(&s1, 2 * MIB, 6 * MIB, &payer, None, none, 3600, 11, &v), Ok(Admitted::Free));

    // Paid: the burn's certificate is verified once, against the owner's group.
    let cost = PRICES.cost(&terms());
    let (cert, group) = certified_burn(&owner, terms(), cost);
    let id = cert.signed.transfer.id();
    let postage = |stripe: StripeId, slot: u32, bytes: u64| Postage {
        stamp: Stamp::sign(&owner, &id, stripe, slot, bytes),
        burn: cert.clone(),
    };
    let asked = &std::cell::Cell::new(0);
    let owner_key = owner.key();
    let of = |g: &Group| {
        let g = g.clone();
        move |k: &Key| {
            asked.set(asked.get() + 1);
            (*k == owner_key).then_some(g)
        }
    };
    let p1 = postage(s1, 0, MIB);
    assert_eq!(
        gate.admit(&s1, MIB / 4, MIB, &payer, Some(&p1), of(&group), 0, 10, &v),
        Ok(Admitted::Paid { batch: id, new: true })
    );
    assert_eq!((asked.get(), gate.known_batches()), (1, 1));
    // Another shard of the stripe: the batch is known, nothing verified again.
    assert_eq!(
        gate.admit(&s1, MIB / 4, MIB, &payer, Some(&p1), of(&group), 0, 10, &v),
        Ok(Admitted::Paid { batch: id, new: false })
    );
    // A relay started again takes back what it admitted, and still sees a slot stamped
    // twice; a batch that has ended is left out.
    let mut again = Admission::new(PRICES, allowance);
    assert!(again.restore(&p1, 11));
    assert!(!again.restore(&p1, 40), "ended");
    assert_eq!((again.stamps(), again.known_batches()), (1, 1));
    assert!(matches!(
        again.admit(&s2, MIB / 4, MIB, &payer, Some(&postage(s2, 0, MIB)), of(&group), 0, 11, &v),
        Err(FarmError::DoubleStamp(_))
    ));
    assert_eq!(asked.get(), 1);

    // Postage that does not pay: for another stripe, for fewer bytes than the stripe has,
    // a slot stamped twice (which revokes the batch), an underpaid or uncertified burn.
    let no = |p: &Postage, stripe: &StripeId, gate: &mut Admission| {
        gate.admit(stripe, MIB / 4, MIB, &payer, Some(p), of(&group), 0, 10, &v).unwrap_err()
    };
    assert_eq!(no(&p1, &s2, &mut gate), FarmError::WrongStripe);
    assert_eq!(no(&postage(s2, 1, MIB / 2), &s2, &mut gate), FarmError::OutsideBatch);
    assert!(matches!(no(&postage(s2, 0, MIB), &s2, &mut gate), FarmError::DoubleStamp(_)));
    assert_eq!(no(&postage(s2, 1, MIB), &s2, &mut gate), FarmError::Revoked);

    let mut fresh = Admission::new(PRICES, allowance);
    let (cheap, g2) = certified_burn(&owner, terms(), cost - 1);
    let underpaid =
        Postage { stamp: Stamp::sign(&owner, &cheap.signed.transfer.id(), s1, 0, MIB), burn: cheap };
    let e = fresh.admit(&s1, MIB / 4, MIB, &payer, Some(&underpaid), of(&g2), 0, 10, &v).unwrap_err();
    assert_eq!(e, FarmError::Underpaid { paid: cost - 1, cost });
    let mut thin = p1.clone();
    thin.burn.acks.truncate(2);
    assert!(matches!(
        fresh.admit(&s1, MIB / 4, MIB, &payer, Some(&thin), of(&group), 0, 10, &v),
        Err(FarmError::Burn(_))
    ));
    // Acknowledged by relays that are not the owner's group, in this relay's view.
    let strangers = Group::new((30..34).map(|n| signer(n).key()).collect(), 3).unwrap();
    assert!(matches!(
        fresh.admit(&s1, MIB / 4, MIB, &payer, Some(&p1), |_: &Key| Some(strangers.clone()), 0, 10, &v),
        Err(FarmError::Burn(_))
    ));
    assert_eq!(
        fresh.admit(&s1, MIB / 4, MIB, &payer, Some(&p1), of(&group), 0, 40, &v),
        Err(FarmError::Expired)
    );
    assert_eq!(fresh.known_batches(), 0, "nothing refused is remembered");
    // The free allowance is untouched by paid stores.
    assert_eq!(fresh.free_left(&payer, 0), 3 * MIB);
}

/// Evidence of a double stamp told by another relay: a relay that never saw either stripe
/// verifies the batch and both stamps and revokes it (its stripes take no more stores);
/// told again it checks nothing. What proves nothing revokes nothing: one slot with one
/// stripe, two slots, a second stamp signed by another key, a burn nobody certified.
#[test]
fn evidence_told_by_another_relay_revokes_a_batch_it_proves() {
    let v = Ed25519;
    let owner = crate::testdata::account_key(1);
    let allowance = Allowance { per_account: MIB, per_relay: MIB, window_secs: 3600 };
    let cost = PRICES.cost(&terms());
    let (cert, group) = certified_burn(&owner, terms(), cost);
    let id = cert.signed.transfer.id();
    let (s1, s2, s3) =
        (StripeId::from_bytes([1; 32]), StripeId::from_bytes([2; 32]), StripeId::from_bytes([3; 32]));
    let first = Postage { stamp: Stamp::sign(&owner, &id, s1, 5, MIB), burn: cert.clone() };
    let asked = std::cell::Cell::new(0);
    let of = |k: &Key| {
        asked.set(asked.get() + 1);
        (*k == owner.key()).then(|| group.clone())
    };
    let mut gate = Admission::new(PRICES, allowance);
    let not = [
        Stamp::sign(&owner, &id, s1, 5, MIB),     // the same stripe
        Stamp::sign(&owner, &id, s2, 6, MIB),     // another slot
        Stamp::sign(&signer(9), &id, s2, 5, MIB), // not the owner's
    ];
    for second in &not {
        assert_eq!(gate.revoke(&first, second, of, 10, &v), Err(FarmError::NoEvidence));
    }
    let mut thin = first.clone();
    thin.burn.acks.truncate(2);
    let mut fresh = Admission::new(PRICES, allowance);
    assert!(matches!(
        fresh.revoke(&thin, &Stamp::sign(&owner, &id, s2, 5, MIB), of, 10, &v),
        Err(FarmError::Burn(_))
    ));
    assert!(!gate.is_revoked(&id) && !fresh.is_revoked(&id));

    let second = Stamp::sign(&owner, &id, s2, 5, MIB);
    assert_eq!(gate.revoke(&first, &second, of, 10, &v), Ok(true));
    assert!(gate.is_revoked(&id));
    let asked_before = asked.get();
    assert_eq!(gate.revoke(&thin, &second, of, 10, &v), Ok(false), "known: nothing checked");
    assert_eq!(asked.get(), asked_before);
    let p3 = Postage { stamp: Stamp::sign(&owner, &id, s3, 7, MIB), burn: cert.clone() };
    assert_eq!(gate.admit(&s3, MIB / 4, MIB, &[7; 32], Some(&p3), of, 0, 10, &v), Err(FarmError::Revoked));
    // After a restart, from the journal.
    let mut again = Admission::new(PRICES, allowance);
    again.restore_revoked(id);
    assert_eq!(again.admit(&s3, MIB / 4, MIB, &[7; 32], Some(&p3), of, 0, 10, &v), Err(FarmError::Revoked));
}

#[test]
fn terms_for_a_file_cover_every_stripe_its_encoding_makes() {
    use crate::{EncodeOptions, Encoder, FileMeta};
    let params = crate::Params::new(4, 2).unwrap();
    let chunk = crate::MIN_CHUNK_SIZE * 4;
    for len in [0usize, 1, chunk - 1, chunk, 5 * chunk + 7, 300 * chunk] {
        let mut enc =
            Encoder::new(EncodeOptions { params, chunk_size: chunk, ..Default::default() }).unwrap();
        let data = crate::testdata::pseudo_random(len, len as u64);
        let mut stripes = Vec::new();
        let mut rest = &data[..];
        while !rest.is_empty() {
            rest = &rest[enc.write(rest)..];
            stripes.extend(enc.take_stripe());
        }
        let meta = FileMeta { name: "f".repeat(1000), ..Default::default() };
        let fin = enc.finish(meta).unwrap();
        fin.drain(|s| {
            stripes.push(s);
            Ok::<_, ()>(())
        })
        .unwrap();
        let t = terms_for(len as u64, chunk, params, 3, 5);
        let largest = stripes.iter().map(|s| (s.shard_count() * s.shard(0).len()) as u64).max().unwrap();
        assert!(t.slots as usize >= stripes.len(), "{len}: {} slots for {} stripes", t.slots, stripes.len());
        assert!(
            t.slots as usize <= stripes.len() + 2,
            "{len}: {} slots for {} stripes",
            t.slots,
            stripes.len()
        );
        assert!(t.slot_bytes >= largest, "{len}: {} < {largest}", t.slot_bytes);
        assert_eq!((t.first_epoch, t.epochs), (3, 5));
    }
}

#[test]
fn postage_is_small_beside_a_shard() {
    use crate::ledger::{ack_message, Ack};
    let owner = crate::testdata::account_key(1);
    let t = terms();
    let signed = burn(&owner, t, PRICES.cost(&t)).sign(&owner);
    let tr = &signed.transfer;
    let msg = ack_message(&tr.from, tr.seq, &tr.id());
    let size = |acks: u8| {
        let acks = (0..acks)
            .map(|n| Ack { replica: signer(50 + n).key(), sig: signer(50 + n).sign(&msg) })
            .collect();
        let p = Postage {
            stamp: Stamp::sign(&owner, &tr.id(), StripeId::from_bytes([3; 32]), 0, MIB),
            burn: Certificate { signed: signed.clone(), acks },
        };
        p.check().unwrap();
        postcard::to_allocvec(&p).unwrap().len()
    };
    let (six, sixteen) = (size(6), size(16));
    println!("postage: {six} bytes with 6 acknowledgements, {sixteen} with 16");
    // A stamp and a transfer, and 97 bytes per acknowledgement (a key, a signature and its
    // length): under 1% of a 256 KiB shard.
    assert_eq!(sixteen - six, 10 * 97);
    assert!(sixteen < 2048, "{sixteen}");
}

#[test]
fn small_audit_groups_need_the_same_share_of_their_members() {
    assert_eq!(audit_quorum(AUDIT_GROUP), AUDIT_QUORUM);
    for (len, q) in [(1, 1), (4, 3), (5, 4), (6, 5), (7, 5), (10, 7)] {
        assert_eq!(audit_quorum(len), q, "{len}");
        // Two quorums share more than the members a group tolerates being dishonest.
        let f = (len - 1) / 3;
        assert!(2 * q > len + f, "{len}: {q}");
    }
    // A certificate of a five-relay group needs four of them; a key outside counts nothing.
    let v = Ed25519;
    let auditors: Vec<SigningKey> = (60..65).map(signer).collect();
    let group: Vec<Key> = auditors.iter().map(|a| a.key()).collect();
    let (relay, account) = (signer(70).key(), signer(71).key());
    let msg = share_message(3, &relay, &account, 500, &P0);
    let shares =
        |by: &[SigningKey]| by.iter().map(|a| RewardShare { auditor: a.key(), sig: a.sign(&msg) }).collect();
    let cert = |shares| RewardCertificate {
        epoch: 3,
        relay,
        account,
        amount: 500,
        page: P0,
        shares,
        draws: Vec::new(),
    };
    assert_eq!(cert(shares(&auditors[..4])).verify(&group, &PRICES, &v), Ok(()));
    let three_and_a_stranger = [&auditors[..3], &[signer(72)][..]].concat();
    assert_eq!(
        cert(shares(&three_and_a_stranger)).verify(&group, &PRICES, &v),
        Err(FarmError::NoQuorum { have: 3, need: 4 })
    );
}

/// A real stripe of 4 + 2 shards of 64 KiB of `n`s.
fn stripe(n: u8) -> crate::stripe::Stripe {
    let codec = crate::erasure::Codec::new(crate::Params::new(4, 2).unwrap()).unwrap();
    crate::stripe::Stripe::encode(&codec, &crate::crypto::ChunkKey::from_bytes([n; 32]), &vec![n; 64 * 1024])
}

#[test]
fn an_auditor_takes_a_claim_whole_or_refuses_it() {
    let v = Ed25519;
    let owner = crate::testdata::account_key(1);
    let t = BatchTerms { first_epoch: 10, epochs: 5, ..terms() };
    let (cert, group) = certified_burn(&owner, t, PRICES.cost(&t));
    let batch = Batch::of_burn(&cert.signed.transfer, &PRICES).unwrap();
    let stripes: Vec<_> = (1..=3).map(stripe).collect();
    let entry = |s: &crate::stripe::Stripe, slot: u32, index: u8| {
        let bytes = (s.shard_count() * s.header().shard_len()) as u64;
        ClaimEntry {
            header: s.header_bytes().to_vec(),
            index,
            stamp: Stamp::sign(&owner, &batch.id, s.id(), slot, bytes),
        }
    };
    let claim = EpochClaim {
        page: P0,
        epoch: 12,
        account: crate::testdata::account_key(0).key(),
        burns: vec![cert.clone()],
        entries: stripes.iter().enumerate().map(|(i, s)| entry(s, i as u32, i as u8)).collect(),
        draws: Vec::new(),
    };
    claim.check().unwrap();
    let groups = |_: &Key| Some(group.clone());
    let everywhere = |_: &StripeId, _: usize| true;
    let inv = claim.inventory(&PRICES, groups, everywhere, &v).unwrap();
    assert_eq!(claim.revoked_batch(|_| false), None);
    assert_eq!(claim.revoked_batch(|b| *b == batch.id), Some(batch.id), "a revoked batch is named");
    let shard_len = stripes[0].header().shard_len() as u64;
    assert_eq!((inv.bytes, inv.shards.len()), (3 * shard_len, 3));
    assert_eq!(inv.shards[1], (stripes[1].header().clone(), 1));

    // Each broken rule refuses the whole claim, so honest auditors never sign two amounts.
    let with = |f: &dyn Fn(&mut EpochClaim)| {
        let mut c = claim.clone();
        f(&mut c);
        c.inventory(&PRICES, groups, everywhere, &v)
    };
    assert_eq!(with(&|c| c.epoch = 15), Err(FarmError::Expired));
    assert_eq!(with(&|c| c.burns.clear()), Err(FarmError::NotABatch));
    let twice = with(&|c| c.burns.push(cert.clone()));
    assert!(matches!(twice, Err(FarmError::BadClaim(_))), "{twice:?}");
    assert!(matches!(with(&|c| c.entries.push(c.entries[0].clone())), Err(FarmError::BadClaim(_))));
    // Two stripes on one slot: the owner stamped it twice.
    let double = with(&|c| c.entries[1] = entry(&stripes[1], 0, 1));
    assert!(matches!(double, Err(FarmError::BadClaim(_))), "{double:?}");
    assert!(matches!(with(&|c| c.entries[0].index = 6), Err(FarmError::BadClaim(_))));
    assert_eq!(with(&|c| c.entries[0].stamp.stripe = stripes[1].id()), Err(FarmError::WrongStripe));
    assert_eq!(with(&|c| c.entries[0].stamp.sig = [0; 64]), Err(FarmError::BadSignature));
    // A stamp for fewer bytes than the stripe's shards.
    assert_eq!(
        with(&|c| c.entries[2] = ClaimEntry {
            stamp: Stamp::sign(&owner, &batch.id, stripes[2].id(), 2, 10),
            ..entry(&stripes[2], 2, 2)
        }),
        Err(FarmError::OutsideBatch)
    );
    let mut other_header = claim.clone();
    other_header.entries[0].header = stripes[1].header_bytes().to_vec();
    assert_eq!(other_header.inventory(&PRICES, groups, everywhere, &v), Err(FarmError::WrongStripe));
    // A page that leaves some listed stripe out.
    let narrow = ClaimPage::of(&stripes[0].id(), MAX_PAGE_LEVEL);
    let outside = with(&|c| c.page = narrow);
    assert!(matches!(outside, Err(FarmError::BadClaim(ref m)) if m.contains("outside")), "{outside:?}");
    // Not a member of a stripe's close group in the auditor's view.
    let not_second = |s: &StripeId, _: usize| *s != stripes[1].id();
    assert_eq!(claim.inventory(&PRICES, groups, not_second, &v), Err(FarmError::NotInGroup));
    // A burn certified by someone else's group.
    let strangers = Group::new((40..44).map(|n| signer(n).key()).collect(), 3).unwrap();
    let forged = claim.inventory(&PRICES, |_: &Key| Some(strangers.clone()), everywhere, &v);
    assert!(matches!(forged, Err(FarmError::Burn(_))), "{forged:?}");
    // Limits before anything else.
    let mut big = claim.clone();
    big.entries = vec![claim.entries[0].clone(); MAX_CLAIM_ENTRIES + 1];
    assert!(big.check().is_err());
}

#[test]
fn epoch_messages_on_the_wire() {
    use crate::ledger::{ack_message, Ack, LedgerRequest};
    use crate::wire::{Message, Request, Response};
    // A burn acknowledged by 16 replicas, and claims of real 4 + 2 stripes' headers.
    let owner = crate::testdata::account_key(1);
    let t = BatchTerms { first_epoch: 10, epochs: 5, ..terms() };
    let signed = burn(&owner, t, PRICES.cost(&t)).sign(&owner);
    let tr = signed.transfer.clone();
    let msg = ack_message(&tr.from, tr.seq, &tr.id());
    let acks =
        (0..16u8).map(|n| Ack { replica: signer(50 + n).key(), sig: signer(50 + n).sign(&msg) }).collect();
    let cert = Certificate { signed, acks };
    let s = stripe(1);
    let entry = ClaimEntry {
        header: s.header_bytes().to_vec(),
        index: 0,
        stamp: Stamp::sign(&owner, &tr.id(), s.id(), 0, 6 * MIB),
    };
    // The draws of a full group of neighbours: a claim carries them all, a deposit a quorum.
    let draws: Vec<Draw> = (0..AUDIT_GROUP as u8).map(|n| Draw::make(&[n; 32], b"relay", 12)).collect();
    let claim = |entries: usize, burns: usize| {
        let c = EpochClaim {
            page: P0,
            epoch: 12,
            account: crate::testdata::account_key(0).key(),
            burns: vec![cert.clone(); burns],
            entries: vec![entry.clone(); entries],
            draws: draws.clone(),
        };
        Request::EpochClaim(Box::new(c)).frame_len()
    };
    let (base, per_entry, per_burn) = (claim(0, 0), claim(1, 0) - claim(0, 0), claim(0, 1) - claim(0, 0));
    let share = Response::Share(RewardShare::sign(
        &signer(100),
        12,
        &signer(7).key(),
        &crate::testdata::account_key(0).key(),
        5,
        &P0,
    ))
    .frame_len();
    let shares = auditors()
        .iter()
        .map(|a| RewardShare::sign(a, 12, &signer(7).key(), &crate::testdata::account_key(0).key(), 5, &P0))
        .collect();
    let rc = RewardCertificate {
        epoch: 12,
        relay: signer(7).key(),
        account: crate::testdata::account_key(0).key(),
        amount: 5,
        page: P0,
        shares,
        draws: draws[..AUDIT_QUORUM].to_vec(),
    };
    let deposit = LedgerRequest::Reward(Box::new(rc)).encode().len() + 4;
    // A challenge and its proof for a 256 KiB shard: the same sizes the repair audits use.
    let (challenge, proof) = (70 + 4, 4 + 1 + 1024 + 2 + 32 * 9 + 4);
    println!("epoch claim: {base} bytes + {per_entry} per paid shard + {per_burn} per batch (16 acks)");
    println!("share: {share} bytes; reward deposit ({AUDIT_GROUP} shares): {deposit} bytes per replica");
    for (shards, batches) in [(100usize, 10usize), (1024, 64)] {
        let out = AUDIT_GROUP * claim(shards, batches);
        let audits = AUDIT_GROUP * EPOCH_SAMPLES * (challenge + proof);
        let deposits = crate::ledger::REPLICAS * deposit;
        println!(
            "a relay with {shards} paid shards of {batches} batches, per epoch: claims {} KiB out, \
             samples {} KiB answered, shares {} KiB in, deposits {} KiB out (and as much again as an \
             auditor of {AUDIT_GROUP} others)",
            out / 1024,
            audits / 1024,
            AUDIT_GROUP * share / 1024,
            deposits / 1024
        );
    }
    // A header of 4 + 2 shard addresses and a stamp: under 500 bytes a shard; a deposit is
    // about a share per auditor and a draw (key and proof, 128 bytes) per member of a quorum.
    let draw = postcard::to_allocvec(&draws[0]).unwrap().len();
    println!("a draw: {draw} bytes; a claim carries up to {AUDIT_GROUP}, a deposit at least {AUDIT_QUORUM}");
    assert!(draw <= 130, "{draw}");
    assert!(
        per_entry < 500
            && per_burn < 2000
            && share < 150
            && deposit < AUDIT_GROUP * 110 + AUDIT_QUORUM * draw + 512,
        "{per_entry} {per_burn}"
    );
}

/// Pages split the stripe id space by its leading bits: every stripe is in exactly one page
/// of a level, the level grows with the shards to list, and the pages of a level together
/// earn at most the cap.
#[test]
fn claim_pages_partition_the_stripes_and_share_the_cap() {
    let stripes: Vec<StripeId> =
        (0..4096u32).map(|i| StripeId::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes())).collect();
    for level in [0u8, 1, 3, 8, MAX_PAGE_LEVEL] {
        let mut per_page = std::collections::HashMap::new();
        for s in &stripes {
            let page = ClaimPage::of(s, level);
            assert!(page.is_valid() && page.contains(s), "{page:?}");
            let pages_holding =
                (0..(1u32 << level.min(8))).filter(|p| ClaimPage { level, prefix: *p }.contains(s)).count();
            assert!(level > 8 || pages_holding == 1, "one page of level {level} holds each stripe");
            *per_page.entry(page.prefix).or_insert(0usize) += 1;
        }
        if level == 3 {
            assert_eq!(per_page.len(), 8);
            assert!(per_page.values().all(|n| (384..=640).contains(n)), "{per_page:?}");
        }
    }
    assert!(!ClaimPage { level: 2, prefix: 4 }.is_valid());
    assert!(!ClaimPage { level: MAX_PAGE_LEVEL + 1, prefix: 0 }.is_valid());
    assert_eq!(ClaimPage::level_for(0), 0);
    assert_eq!(ClaimPage::level_for(PAGE_TARGET), 0);
    assert_eq!(ClaimPage::level_for(PAGE_TARGET + 1), 1);
    assert_eq!(ClaimPage::level_for(1_000_000), 11);
    assert_eq!(ClaimPage::level_for(usize::MAX), MAX_PAGE_LEVEL);
    assert_eq!(ClaimPage::level_for_target(9, 2), 3);
    // The cap is shared: 2^level pages at their cap sum to at most the cap.
    let level = 4;
    let page = ClaimPage { level, prefix: 0 };
    assert_eq!(page.cap(&PRICES) << level, PRICES.cap);
    assert_eq!(page.reward(&PRICES, u64::MAX), page.cap(&PRICES));
    assert_eq!(page.reward(&PRICES, 1 << 30), PRICES.reward(1 << 30));
    // A reward signed for one page is not a reward for another, nor over the page's cap.
    let (relay, account) = (signer(7).key(), crate::testdata::account_key(0).key());
    let other = ClaimPage { level, prefix: 1 };
    assert_ne!(reward_id(3, &relay, &page), reward_id(3, &relay, &other));
    let shares: Vec<RewardShare> =
        auditors().iter().map(|a| RewardShare::sign(a, 3, &relay, &account, 10, &page)).collect();
    let keys: Vec<Key> = auditors().iter().map(|a| a.key()).collect();
    let cert = RewardCertificate {
        epoch: 3,
        relay,
        account,
        amount: 10,
        page,
        shares: shares.clone(),
        draws: Vec::new(),
    };
    assert_eq!(cert.verify(&keys, &PRICES, &Ed25519), Ok(()));
    let moved = RewardCertificate { page: other, ..cert.clone() };
    assert!(matches!(moved.verify(&keys, &PRICES, &Ed25519), Err(FarmError::NoQuorum { .. })));
    let big = page.cap(&PRICES) + 1;
    let over: Vec<RewardShare> =
        auditors().iter().map(|a| RewardShare::sign(a, 3, &relay, &account, big, &page)).collect();
    let over = RewardCertificate { amount: big, shares: over, ..cert };
    assert!(matches!(over.verify(&keys, &PRICES, &Ed25519), Err(FarmError::OverCap { .. })));
}

/// The seeds of a draw group of `n` neighbours, and their keys.
fn neighbours(n: u8) -> (Vec<[u8; 32]>, Vec<Key>) {
    let seeds: Vec<[u8; 32]> = (0..n).map(|i| [100 + i; 32]).collect();
    let keys =
        seeds.iter().map(|s| ed25519_dalek::SigningKey::from_bytes(s).verifying_key().to_bytes()).collect();
    (seeds, keys)
}

#[test]
fn the_beacon_is_the_least_draw_of_a_quorum_of_the_relays_neighbours() {
    let (seeds, group) = neighbours(AUDIT_GROUP as u8);
    let draws: Vec<Draw> = seeds.iter().map(|s| Draw::make(s, b"relay", 9)).collect();
    let outputs: Vec<[u8; 32]> = draws
        .iter()
        .map(|d| crate::vrf::verify(&d.drawer, &draw_input(b"relay", 9), &d.proof).unwrap())
        .collect();
    let all = beacon(b"relay", 9, &group, &draws).unwrap();
    assert_eq!(all, *outputs.iter().min().unwrap());
    // A claimant that proved each draw as it came takes the same beacon from the outputs,
    // under the same rules.
    assert_eq!(beacon_of_verified(&group, &draws, &outputs).unwrap(), all);
    assert!(beacon_of_verified(&group, &draws[..AUDIT_QUORUM - 1], &outputs[..AUDIT_QUORUM - 1]).is_err());
    assert!(beacon_of_verified(&group, &draws, &outputs[1..]).is_err());
    // Any quorum gives a beacon; fewer do not.
    assert!(beacon(b"relay", 9, &group, &draws[..AUDIT_QUORUM]).is_ok());
    assert!(matches!(beacon(b"relay", 9, &group, &draws[..AUDIT_QUORUM - 1]), Err(FarmError::BadDraws(_))));
    // Another epoch, another relay: other draws, another beacon; and the draws of one epoch
    // do not verify for the next.
    let next: Vec<Draw> = seeds.iter().map(|s| Draw::make(s, b"relay", 10)).collect();
    assert_ne!(beacon(b"relay", 10, &group, &next).unwrap(), all);
    assert!(beacon(b"relay", 10, &group, &draws).is_err());
    assert!(beacon(b"other", 9, &group, &draws).is_err());
}

#[test]
fn a_relay_chooses_among_at_most_the_group_less_the_quorum_plus_one_beacons() {
    // The adversary: the relay shows whichever draws suit it, leaving out up to
    // `n - q` of them. Every subset it can show has one of the `n - q + 1` least draws as its
    // least, so that is all it can choose from. Played over many subsets.
    let (seeds, group) = neighbours(AUDIT_GROUP as u8);
    let draws: Vec<Draw> = seeds.iter().map(|s| Draw::make(s, b"relay", 3)).collect();
    let mut outs: Vec<[u8; 32]> = draws
        .iter()
        .map(|d| crate::vrf::verify(&d.drawer, &draw_input(b"relay", 3), &d.proof).unwrap())
        .collect();
    outs.sort();
    let allowed: HashSet<[u8; 32]> = outs[..AUDIT_GROUP - AUDIT_QUORUM + 1].iter().copied().collect();
    let mut reached = HashSet::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..400 {
        // A pseudo-random subset of at least a quorum.
        let mut shown: Vec<Draw> = Vec::new();
        for d in &draws {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if !x.is_multiple_of(4) {
                shown.push(*d);
            }
        }
        if let Ok(b) = beacon(b"relay", 3, &group, &shown) {
            assert!(allowed.contains(&b), "a beacon outside the least {}", allowed.len());
            reached.insert(b);
        }
    }
    // And leaving out the least ones reaches each of them.
    for skip in 0..=AUDIT_GROUP - AUDIT_QUORUM {
        let shown: Vec<Draw> = draws
            .iter()
            .filter(|d| {
                let o = crate::vrf::verify(&d.drawer, &draw_input(b"relay", 3), &d.proof).unwrap();
                !outs[..skip].contains(&o)
            })
            .copied()
            .collect();
        assert_eq!(beacon(b"relay", 3, &group, &shown).unwrap(), outs[skip]);
        reached.insert(outs[skip]);
    }
    assert_eq!(reached, allowed, "exactly the n - q + 1 least draws are reachable");
    let one_more = [&draws[..AUDIT_QUORUM], &draws[..1]].concat();
    assert!(beacon(b"relay", 3, &group, &one_more).is_err(), "two draws by one neighbour");
}

#[test]
fn draws_by_strangers_are_left_out_and_forged_or_repeated_ones_refused() {
    let (seeds, group) = neighbours(8);
    let q = audit_quorum(8);
    let mut draws: Vec<Draw> = seeds[..q].iter().map(|s| Draw::make(s, b"relay", 4)).collect();
    let placed = beacon(b"relay", 4, &group, &draws).unwrap();
    // A draw by a key outside the group (the relay's own sybil, whose value it could pick by
    // making keys) changes nothing: it is left out, unread.
    let strangers: Vec<Draw> = (0..8u8).map(|i| Draw::make(&[1 + i; 32], b"relay", 4)).collect();
    let with_stranger = [&draws[..], &strangers[..1]].concat();
    assert_eq!(beacon(b"relay", 4, &group, &with_stranger), Ok(placed));
    // Strangers alone, however many, place nothing.
    assert!(
        matches!(beacon(b"relay", 4, &group, &strangers), Err(FarmError::BadDraws(w)) if w.contains("0 draws by"))
    );
    // One member short of a quorum, made up with strangers: refused.
    let short = [&draws[..q - 1], &strangers[..]].concat();
    assert!(
        matches!(beacon(b"relay", 4, &group, &short), Err(FarmError::BadDraws(w)) if w.contains("needed"))
    );
    // A member's key with another member's proof.
    draws[0].proof = draws[1].proof;
    assert!(
        matches!(beacon(b"relay", 4, &group, &draws), Err(FarmError::BadDraws(w)) if w.contains("verify"))
    );
    // More draws than any group has: refused before any is verified.
    let many: Vec<Draw> = (0..=AUDIT_GROUP as u8).map(|i| Draw { drawer: [i; 32], ..strangers[0] }).collect();
    assert!(
        matches!(beacon(b"relay", 4, &group, &many), Err(FarmError::BadDraws(w)) if w.contains("at most"))
    );
}

/// The age rule against an adversary that grinds ids near an audit point once the draws
/// have shown it: 200 relays met at second 0 (epochs of 100 s); the point of a relay's
/// epoch 3 is known at its end (second 400), and 40 ids made to sit nearest to it are met at
/// second 410. Without the rule they would be the whole group of 32; with it, none of them
/// counts for epoch 3 (they were met after it began), so the group is the honest one it
/// was. From epoch 5 on they count, like any relay, at points they could not aim at.
#[test]
fn ids_met_after_an_epoch_began_count_in_none_of_its_audit_groups() {
    let mut rng = XorShift(11);
    let key = |rng: &mut XorShift| {
        let mut k = [0u8; 32];
        for b in &mut k {
            *b = rng.next_u64() as u8;
        }
        crate::placement::DhtKey(k)
    };
    let honest: Vec<crate::placement::DhtKey> = (0..200).map(|_| key(&mut rng)).collect();
    let mut known = Acquaintances::default();
    for h in &honest {
        assert!(known.met(h, 0));
    }
    assert!(!known.met(&honest[0], 500), "a relay met again keeps its first meeting");
    assert_eq!(known.since(&honest[0]), Some(0));
    let point = audit_point(b"relay", 3, &[7; 32]);
    // Ground ids: the point's own bits with a random tail, nearer than any honest relay.
    let ground: Vec<crate::placement::DhtKey> = (0..40)
        .map(|_| {
            let mut k = key(&mut rng).0;
            k[..12].copy_from_slice(&point.0[..12]);
            crate::placement::DhtKey(k)
        })
        .collect();
    for g in &ground {
        known.met(g, 410);
    }
    let group = |view: Vec<crate::placement::DhtKey>| -> Vec<crate::placement::DhtKey> {
        crate::placement::by_distance(&point, view.into_iter().map(|k| (k, k)))
            .into_iter()
            .take(AUDIT_GROUP)
            .collect()
    };
    let everyone: Vec<_> = honest.iter().chain(&ground).copied().collect();
    let naive = group(everyone.clone());
    assert!(naive.iter().all(|k| ground.contains(k)), "without the rule the ground ids are the group");
    let aged = group(known.aged_view(everyone.clone(), 3, 100));
    assert_eq!(aged, group(honest.clone()), "with it the group is the honest one");
    assert!(known.aged_view(everyone.clone(), 5, 100).len() == 240, "from epoch 5 they count");
    // A restart takes the meetings back from disk: the earlier of two wins.
    let mut again = Acquaintances::default();
    again.restore(ground[0], 410);
    again.restore(ground[0], 900);
    assert!(!again.aged(&ground[0], 4, 100) && again.aged(&ground[0], 5, 100));
    assert!(!again.aged(&honest[0], 9, 100), "a relay never met counts in no group");
}

/// A claimant told by an auditor that a batch is revoked claims the page again without it:
/// the refusal's detail names the batch, only a batch the claim lists is taken from it, and
/// the page without it lists the other batch's shards and their bytes.
#[test]
fn a_page_is_claimed_again_without_the_batch_an_auditor_names_revoked() {
    let owner = crate::testdata::account_key(1);
    let t = BatchTerms { first_epoch: 10, epochs: 5, ..terms() };
    let (kept, _) = certified_burn(&owner, t, PRICES.cost(&t));
    let t2 = BatchTerms { first_epoch: 11, ..t };
    let (revoked, _) = certified_burn(&owner, t2, PRICES.cost(&t2));
    let (kept_id, revoked_id) = (kept.signed.transfer.id(), revoked.signed.transfer.id());
    let stripes: Vec<_> = (1..=3).map(stripe).collect();
    let entry = |s: &crate::stripe::Stripe, batch: &TransferId, slot: u32| {
        let bytes = (s.shard_count() * s.header().shard_len()) as u64;
        ClaimEntry {
            header: s.header_bytes().to_vec(),
            index: 0,
            stamp: Stamp::sign(&owner, batch, s.id(), slot, bytes),
        }
    };
    let claim = EpochClaim {
        page: P0,
        epoch: 12,
        account: crate::testdata::account_key(0).key(),
        burns: vec![kept.clone(), revoked.clone()],
        entries: vec![
            entry(&stripes[0], &kept_id, 0),
            entry(&stripes[1], &revoked_id, 0),
            entry(&stripes[2], &kept_id, 1),
        ],
        draws: Vec::new(),
    };
    let detail = EpochClaim::revoked_detail(&revoked_id);
    assert_eq!(claim.revoked_in(&detail), Some(revoked_id));
    let stranger = EpochClaim::revoked_detail(&[7; 32]);
    assert_eq!(claim.revoked_in(&stranger), None, "a batch the claim does not list is not taken");
    assert_eq!(claim.revoked_in("the claim is refused"), None);
    assert_eq!(claim.revoked_in(&detail[..40]), None, "a cut detail names nothing");
    let (again, bytes) = claim.without_batches(&[revoked_id]).unwrap();
    assert_eq!(again.burns, vec![kept]);
    assert_eq!(again.entries.len(), 2);
    assert!(again.entries.iter().all(|e| e.stamp.batch == kept_id));
    assert_eq!(bytes, 2 * stripes[0].header().shard_len() as u64);
    again.check().unwrap();
    assert!(claim.without_batches(&[[7; 32]]).is_none(), "nothing to drop: no second claim");
    assert!(again.revoked_batch(|b| *b == revoked_id).is_none());
}
