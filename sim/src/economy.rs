//! The farming economy over a year of epochs, decided by kura-core's farming rules
//! ([`kura_core::farming`]): uploaders burn credits into batches and stamp stripes, the
//! close group of each stripe holds its shards, and every epoch each relay's audit group
//! (the 16 relays nearest a point that moves every epoch) samples its stamped inventory
//! with [`EpochAudit`]; eleven all-pass shares make a [`RewardCertificate`], checked against
//! the group and minted once by the ledger's own rule ([`Replica::deposit_reward`], with
//! conservation checked after every epoch).
//!
//! Some relays drop a share of the shards they take (they keep the rest, and forge or
//! withhold on the dropped ones: any failed sample forfeits). One operator is a
//! self-dealer: it runs a close group of its own (`n` relays, each of which passes the join
//! work) and uploads data it generated, with stripe ids ground so that every shard lands
//! on its own relays; it earns every shard's reward and pays every batch.
//!
//! Checked every epoch: what was minted never exceeds what batches burnt less the fee (the
//! free allowance earns nothing). Signatures are a stand-in ([`SimKey`], as in the
//! ledger's simulations): the rules, not ed25519, are under test.

use crate::population::{random_key, Population};
use kura_core::audit::Verdict;
use kura_core::farming::{
    audit_point, share_message, Batch, BatchTerms, ClaimPage, EpochAudit, Prices, RewardCertificate,
    RewardShare, AUDIT_GROUP, AUDIT_QUORUM,
};
use kura_core::ledger::{Applied, Key, Replica, Signer, Transfer, BURN};
use kura_core::testdata::{SimKey, SimVerifier, XorShift};

/// One run.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub relays: usize,
    pub epochs: u64,
    /// Stripes uploaded per epoch (paid), and unpaid ones within the free allowance.
    pub uploads_per_epoch: usize,
    pub free_per_epoch: usize,
    /// Shard bytes of a stripe (all shards), and shards per stripe.
    pub stripe_bytes: u64,
    pub n: usize,
    pub prices: Prices,
    /// Relays that drop this share of the shards they take.
    pub droppers: usize,
    pub drop_share: f64,
    /// Stripes the self-dealer uploads to itself per epoch.
    pub self_dealt_per_epoch: usize,
    pub seed: u64,
}

impl Config {
    /// A year of daily epochs among `relays`, 4+2 stripes of 6 MiB of shards, a price of
    /// 1,000 per GiB of shard bytes per epoch with a 10% fee.
    pub fn year(relays: usize, seed: u64) -> Self {
        Self {
            relays,
            epochs: 365,
            uploads_per_epoch: relays * 2,
            free_per_epoch: relays / 4,
            stripe_bytes: 6 << 20,
            n: 6,
            prices: Prices { price: 1_000, fee_percent: 10, cap: 10_000_000 },
            droppers: relays / 20,
            drop_share: 0.05,
            self_dealt_per_epoch: 20,
            seed,
        }
    }
}

/// One epoch's totals (cumulative).
#[derive(Debug, Clone, Copy, Default)]
pub struct EpochTotals {
    pub epoch: u64,
    pub burnt: u64,
    pub minted: u64,
    /// Shard bytes stored: paid and live, and free.
    pub paid_bytes: u64,
    pub free_bytes: u64,
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub history: Vec<EpochTotals>,
    /// Relay-epochs audited, and the invariant checked after each epoch.
    pub relay_epochs: u64,
    pub invariant_checks: u64,
    /// Honest relays: what they earned against `rate · bytes proven` summed per epoch (the
    /// formula), worst relative gap.
    pub honest_worst_gap: f64,
    pub honest_earned: u64,
    /// Droppers: epochs in which a shard they took is dropped, and of those rewarded.
    pub dropper_epochs: u64,
    pub dropper_rewarded: u64,
    /// Honest relays: epochs with something stored, and of those rewarded.
    pub honest_epochs: u64,
    pub honest_rewarded: u64,
    /// The self-dealer: burnt for its batches, and what its relays earned for holding its
    /// own uploads (their share of each rewarded inventory).
    pub self_burnt: u64,
    pub self_earned: u64,
    /// Certificates refused by the depositing check (should be none from honest groups).
    pub refused: u64,
}

/// A paid shard held: the stripe's batch index, its bytes, dropped or kept. (Free shards
/// earn nothing: only their bytes are counted.)
#[derive(Debug, Clone, Copy)]
struct Held {
    batch: u32,
    bytes: u64,
    dropped: bool,
}

/// Runs `c`.
pub fn run(c: &Config) -> Outcome {
    let mut rng = XorShift(c.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 5);
    let prices = c.prices;
    // The self-dealer's n relays sit together: the first n of a population whose other
    // relays are random (its group of stripes is ground to land on them).
    let pop = Population::random(c.relays, &mut rng);
    let keys: Vec<SimKey> = (0..pop.len()).map(|i| SimKey(pop.keys[i].0)).collect();
    let selfish: Vec<usize> = (0..c.n).collect();
    let mut dropper = vec![false; pop.len()];
    let mut placed = 0;
    while placed < c.droppers {
        let i = c.n + rng.below(pop.len() - c.n);
        if !dropper[i] {
            dropper[i] = true;
            placed += 1;
        }
    }
    let mut batches: Vec<Batch> = Vec::new();
    let mut self_batches: Vec<bool> = Vec::new();
    let mut held: Vec<Vec<Held>> = vec![Vec::new(); pop.len()];
    // One replica serving every relay's account: the ledger's minting rule and its books.
    // Relays' accounts are their simulated keys, stand-ins without the account work (the
    // work is tested where it is the subject: `ledger_tests`, `capture`).
    let mut ledger = Replica::new([0xEE; 32]).with_account_bits(0);
    let mut earned = vec![0u64; pop.len()];
    let mut formula = vec![0u64; pop.len()];
    let mut out = Outcome::default();
    let mut totals = EpochTotals::default();
    let shard = c.stripe_bytes / c.n as u64;
    let uploader = SimKey(kura_core::testdata::sim_account(0xAB));
    let mut seq = 0u64;
    let mut buy =
        |epoch: u64, slots: u32, epochs: u64, batches: &mut Vec<Batch>, totals: &mut EpochTotals| {
            let terms = BatchTerms { slots, slot_bytes: c.stripe_bytes, first_epoch: epoch, epochs };
            seq += 1;
            let t = Transfer {
                from: uploader.key(),
                seq,
                to: BURN,
                amount: prices.cost(&terms),
                deps: vec![],
                memo: terms.memo(),
            };
            // A batch always decodes from the burn that bought it.
            let b = Batch::of_burn(&t, &prices).ok();
            if let Some(b) = b {
                totals.burnt += t.amount;
                batches.push(b);
            }
            batches.len() as u32 - 1
        };
    for epoch in 0..c.epochs {
        totals.epoch = epoch;
        // Uploads: each epoch's stripes in one batch of 30 to 180 epochs.
        let life = 30 + rng.below(151) as u64;
        let b = buy(epoch, c.uploads_per_epoch as u32, life, &mut batches, &mut totals);
        self_batches.push(false);
        for _ in 0..c.uploads_per_epoch {
            for r in pop.closest(&random_key(&mut rng), c.n, |_| true) {
                let dropped = dropper[r] && rng.chance(c.drop_share);
                held[r].push(Held { batch: b, bytes: shard, dropped });
            }
        }
        for _ in 0..c.free_per_epoch {
            // Placed like any stripe (the same draws), held unpaid.
            let _ = random_key(&mut rng);
            totals.free_bytes += shard * c.n as u64;
        }
        if c.self_dealt_per_epoch > 0 {
            let before = totals.burnt;
            let b = buy(epoch, c.self_dealt_per_epoch as u32, 30, &mut batches, &mut totals);
            self_batches.push(true);
            out.self_burnt += totals.burnt - before;
            for _ in 0..c.self_dealt_per_epoch {
                for &r in &selfish {
                    held[r].push(Held { batch: b, bytes: shard, dropped: false });
                }
            }
        }
        // Each relay's epoch: its audit group samples its paying inventory.
        let mut paid_bytes = 0u64;
        for r in 0..pop.len() {
            // An expired batch never pays again: its shards leave the inventory for good.
            held[r].retain(|h| batches[h.batch as usize].terms.covers(epoch));
            let inventory = &held[r];
            if inventory.is_empty() {
                continue;
            }
            let bytes: u64 = inventory.iter().map(|h| h.bytes).sum();
            paid_bytes += bytes;
            out.relay_epochs += 1;
            let relay = keys[r].key();
            // The beacon stands in for the least of the neighbours' draws (kura_core::vrf
            // proofs, costly at this scale and not what this simulation is about): a value
            // fixed by the relay and epoch that nobody picks.
            let beacon = kura_core::placement::DhtKey::of(&[&relay[..], &epoch.to_le_bytes()].concat()).0;
            let group: Vec<usize> = pop
                .closest(&audit_point(&relay, epoch, &beacon), AUDIT_GROUP + 1, |i| i != r)
                .into_iter()
                .take(AUDIT_GROUP)
                .collect();
            let mut shares = Vec::new();
            let mut amount = None;
            for &a in &group {
                let mut audit = EpochAudit::new(epoch, relay, bytes, inventory.len());
                while audit.wanted() > 0 {
                    let h = inventory[rng.below(inventory.len())];
                    audit.record(if h.dropped { Verdict::False } else { Verdict::Pass });
                }
                if let Some(x) = audit.amount(&prices, &ClaimPage::default()) {
                    amount = Some(x);
                    let msg = share_message(epoch, &relay, &relay, x, &ClaimPage::default());
                    shares.push(RewardShare { auditor: keys[a].key(), sig: keys[a].sign(&msg) });
                }
            }
            let due = prices.reward(bytes);
            if !dropper[r] {
                formula[r] += due;
            }
            let rewarded = match amount {
                Some(x) if shares.len() >= AUDIT_QUORUM => {
                    let cert = RewardCertificate {
                        epoch,
                        relay,
                        account: relay,
                        amount: x,
                        page: ClaimPage::default(),
                        shares,
                        draws: Vec::new(),
                    };
                    let group_keys: Vec<Key> = group.iter().map(|&a| keys[a].key()).collect();
                    match ledger.deposit_reward(&cert, &group_keys, &prices, &SimVerifier) {
                        Ok(Applied::Done) => {
                            earned[r] += x;
                            if selfish.contains(&r) {
                                // What its own uploads earned: their share of the inventory.
                                let own: u64 = inventory
                                    .iter()
                                    .filter(|h| self_batches[h.batch as usize])
                                    .map(|h| h.bytes)
                                    .sum();
                                out.self_earned +=
                                    (u128::from(x) * u128::from(own) / u128::from(bytes)) as u64;
                            }
                            true
                        }
                        _ => {
                            out.refused += 1;
                            false
                        }
                    }
                }
                _ => false,
            };
            if dropper[r] {
                if !inventory.iter().any(|h| h.dropped) {
                    // Nothing dropped yet: it is honest this epoch.
                    continue;
                }
                out.dropper_epochs += 1;
                out.dropper_rewarded += u64::from(rewarded);
            } else if !selfish.contains(&r) {
                out.honest_epochs += 1;
                out.honest_rewarded += u64::from(rewarded);
            }
        }
        totals.minted = u64::try_from(ledger.rewarded()).unwrap_or(u64::MAX);
        // The ledger's books balance: every reward minted is held as an unspent credit.
        if let Err(e) = ledger.check_conservation() {
            panic!("epoch {epoch}: {e}");
        }
        totals.paid_bytes = paid_bytes;
        // The invariant: minted ≤ burnt less the fee.
        assert!(
            u128::from(totals.minted) * 100
                <= u128::from(totals.burnt) * u128::from(100 - prices.fee_percent),
            "epoch {epoch}: minted {} of {} burnt",
            totals.minted,
            totals.burnt
        );
        out.invariant_checks += 1;
        out.history.push(totals);
    }
    for r in 0..pop.len() {
        if selfish.contains(&r) {
            continue;
        }
        if !dropper[r] && formula[r] > 0 {
            let gap = (earned[r] as f64 - formula[r] as f64).abs() / formula[r] as f64;
            out.honest_worst_gap = out.honest_worst_gap.max(gap);
            out.honest_earned += earned[r];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_economy_keeps_its_invariants() {
        let c = Config { epochs: 60, ..Config::year(80, 2) };
        let o = run(&c);
        assert_eq!(o.invariant_checks, 60);
        let last = o.history.last().copied().unwrap_or_default();
        assert!(last.minted > 0 && last.minted < last.burnt);
        // Honest relays earn what the formula says (every epoch rewarded).
        assert_eq!(o.honest_rewarded, o.honest_epochs);
        assert!(o.honest_worst_gap < 0.01, "{}", o.honest_worst_gap);
        // Droppers of 5% forfeit nearly every epoch.
        assert!(o.dropper_epochs > 0);
        assert!(
            (o.dropper_rewarded as f64) < 0.1 * o.dropper_epochs as f64,
            "{} of {}",
            o.dropper_rewarded,
            o.dropper_epochs
        );
        // The self-dealer loses at least the fee on what it paid.
        assert!(
            o.self_earned as f64 <= 0.9 * o.self_burnt as f64,
            "{} earned of {} paid",
            o.self_earned,
            o.self_burnt
        );
        assert_eq!(o.refused, 0);
    }
}
