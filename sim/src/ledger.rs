//! The credits ledger among many relays, some of them hostile, decided by kura-core's
//! ledger replicas ([`kura_core::ledger::Replica`]) and certificates.
//!
//! Each account's group is the 32 relays closest to it (`DhtKey::of(account)`, as
//! `kura_p2p::ledger` places it, [`REPLICAS`]), with the quorum of 22. A share of the relays is the
//! adversary's, with random ids. Every account is funded by a mint certificate its honest
//! replicas apply; then two things are played against every account:
//!
//! - **equivocation**: the owner colludes with the adversary and signs two transfers for
//!   its first slot, sending each to half of the honest replicas (and both to the
//!   adversary's, which acknowledge anything). Both certificates form only where the
//!   adversary has more than `f = 2q − R − 1 = 11` of the 32; each honest replica is then
//!   handed the other certificate, and the evidence it keeps must name the owner and only
//!   the adversary's replicas;
//! - **withholding**: an honest owner's transfer, which the adversary's replicas refuse to
//!   acknowledge; it is certified unless the adversary holds more than `R − q = 10`.
//!
//! Signatures are a stand-in ([`SimKey`]): the rules are under test.

use crate::population::Population;
use kura_core::ledger::{
    ack_message, Ack, Certificate, Evidence, Group, Key, Replica, Signer, Transfer, REPLICAS,
};
use kura_core::placement::DhtKey;
use kura_core::testdata::{SimKey, SimVerifier, XorShift};

/// One run.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub relays: usize,
    pub accounts: usize,
    /// The adversary's share of the relays.
    pub share: f64,
    pub seed: u64,
}

/// What happened.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    pub accounts: usize,
    /// Accounts whose group has more than `f` of the adversary's replicas.
    pub over_f: usize,
    /// Equivocations that produced two certificates for one slot.
    pub double_spent: usize,
    /// Equivocations caught: honest replicas keeping evidence, and evidence naming an
    /// honest replica (must stay 0).
    pub evidence_kept: usize,
    pub honest_named: usize,
    /// Honest owners' accounts whose group has more than `R − q` of the adversary's
    /// replicas; their transfers certified despite withholding, and refused (frozen).
    pub over_f_withholding: usize,
    pub certified: usize,
    pub frozen: usize,
    /// Acknowledgements asked of replicas.
    pub asks: u64,
}

/// A key drawn at random: a stand-in, without the account work (the replicas here ask none;
/// this adversary does not choose its accounts, `capture` prices that).
fn key(rng: &mut XorShift) -> SimKey {
    let mut k = [0u8; 32];
    for c in k.chunks_mut(8) {
        c.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    SimKey(k)
}

/// Runs `c`.
pub fn run(c: &Config) -> Outcome {
    let mut rng = XorShift(c.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 7);
    let v = SimVerifier;
    let mut pop = Population::random(c.relays, &mut rng);
    // The relays' keys are their points' bytes (a stand-in for their peer ids).
    for i in 0..pop.len() {
        pop.adversary[i] = rng.chance(c.share);
    }
    let relay_keys: Vec<SimKey> = pop.keys.iter().map(|k| SimKey(k.0)).collect();
    let mint = key(&mut rng);
    let mut replicas: Vec<Option<Replica>> = (0..pop.len()).map(|_| None).collect();
    let mut out = Outcome { accounts: c.accounts, ..Outcome::default() };
    let mut mint_seq = 0u64;
    let group_of = |k: &Key| -> Vec<usize> { pop.closest(&DhtKey::of(k), REPLICAS, |_| true) };
    let mint_group = group_of(&mint.key());
    let mint_g = Group::of_closest(mint_group.iter().map(|&i| relay_keys[i].key()).collect()).ok();
    let Some(mint_g) = mint_g else { return out };
    // A mint certificate paying `to`, acknowledged by the mint's group (honest here: the
    // mint is the farming rules' to sign).
    let mint_to = |seq: u64, to: Key, amount: u64| {
        let signed = Transfer { from: mint.key(), seq, to, amount, deps: vec![], memo: vec![] }.sign(&mint);
        let id = signed.transfer.id();
        let acks: Vec<Ack> = mint_group
            .iter()
            .take(mint_g.quorum)
            .map(|&i| Ack {
                replica: relay_keys[i].key(),
                sig: relay_keys[i].sign(&ack_message(&mint.key(), seq, &id)),
            })
            .collect();
        Certificate { signed, acks }
    };
    for _ in 0..c.accounts {
        let owner = key(&mut rng);
        let members = group_of(&owner.key());
        let Ok(group) = Group::of_closest(members.iter().map(|&i| relay_keys[i].key()).collect()) else {
            continue;
        };
        let bad = members.iter().filter(|&&i| pop.adversary[i]).count();
        out.over_f += usize::from(bad > group.tolerates());
        // Funding: a mint certificate, applied as a credit by the owner's group.
        mint_seq += 1;
        let funding = mint_to(mint_seq, owner.key(), 1000);
        let fund_id = funding.signed.transfer.id();
        for &i in &members {
            if !pop.adversary[i] {
                let r = replicas[i].get_or_insert_with(|| Replica::new(mint.key()).with_account_bits(0));
                let _ = r.apply_credit(&funding, &mint_g, &v);
            }
        }
        let pay = |to: Key, amount: u64| {
            Transfer { from: owner.key(), seq: 1, to, amount, deps: vec![fund_id], memo: vec![] }.sign(&owner)
        };
        // Equivocation: two transfers for slot 1, each to half the honest replicas and to
        // every replica of the adversary.
        let (a, b) = (pay(key(&mut rng).key(), 900), pay(key(&mut rng).key(), 900));
        let honest: Vec<usize> = members.iter().copied().filter(|&i| !pop.adversary[i]).collect();
        let mut certs: Vec<Vec<Ack>> = vec![Vec::new(), Vec::new()];
        for (which, s) in [&a, &b].into_iter().enumerate() {
            for &i in &members {
                let ack = if pop.adversary[i] {
                    Some(Ack {
                        replica: relay_keys[i].key(),
                        sig: relay_keys[i].sign(&ack_message(&owner.key(), 1, &s.transfer.id())),
                    })
                } else {
                    let half = honest.iter().position(|&h| h == i).unwrap_or(0) % 2;
                    if half != which {
                        continue;
                    }
                    replicas[i].as_mut().and_then(|r| r.acknowledge(s, &relay_keys[i], &v).ok())
                };
                out.asks += 1;
                if let Some(ack) = ack {
                    certs[which].push(ack);
                }
            }
        }
        let ca = Certificate { signed: a.clone(), acks: std::mem::take(&mut certs[0]) };
        let cb = Certificate { signed: b.clone(), acks: std::mem::take(&mut certs[1]) };
        let (ok_a, ok_b) = (ca.verify(&group, &v).is_ok(), cb.verify(&group, &v).is_ok());
        if ok_a && ok_b {
            out.double_spent += 1;
        }
        // Each honest replica is handed both certificates (or, where one did not form, both
        // signed transfers): it keeps evidence, which must name only the guilty.
        for &i in &honest {
            let Some(r) = replicas[i].as_mut() else { continue };
            let before = r.evidence().len();
            for cert in [&ca, &cb] {
                if cert.verify(&group, &v).is_ok() {
                    let _ = r.apply_debit(cert, &group, &v);
                } else {
                    let _ = r.acknowledge(&cert.signed, &relay_keys[i], &v);
                }
            }
            if r.evidence().len() > before {
                out.evidence_kept += 1;
            }
        }
        if ok_a && ok_b {
            let e = Evidence::of(ca.clone(), cb.clone());
            if let Some(guilty) = e.guilty(&v) {
                let honest_keys: Vec<Key> = honest.iter().map(|&i| relay_keys[i].key()).collect();
                out.honest_named += guilty.iter().filter(|k| honest_keys.contains(k)).count();
            }
        }
        // Withholding: an honest owner of a fresh account pays; the adversary's replicas
        // in its group refuse.
        let honest_owner = key(&mut rng);
        let own = group_of(&honest_owner.key());
        let Ok(own_group) = Group::of_closest(own.iter().map(|&i| relay_keys[i].key()).collect()) else {
            continue;
        };
        out.over_f_withholding +=
            usize::from(own.iter().filter(|&&i| pop.adversary[i]).count() > own.len() - own_group.quorum);
        mint_seq += 1;
        let funding = mint_to(mint_seq, honest_owner.key(), 500);
        let id = funding.signed.transfer.id();
        let t = Transfer {
            from: honest_owner.key(),
            seq: 1,
            to: owner.key(),
            amount: 100,
            deps: vec![id],
            memo: vec![],
        }
        .sign(&honest_owner);
        let mut acks = Vec::new();
        for &i in own.iter().filter(|&&i| !pop.adversary[i]) {
            let r = replicas[i].get_or_insert_with(|| Replica::new(mint.key()).with_account_bits(0));
            let _ = r.apply_credit(&funding, &mint_g, &v);
            out.asks += 1;
            if let Ok(ack) = r.acknowledge(&t, &relay_keys[i], &v) {
                acks.push(ack);
            }
        }
        let cert = Certificate { signed: t, acks };
        if cert.verify(&own_group, &v).is_ok() {
            out.certified += 1;
        } else {
            out.frozen += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_spends_and_frozen_accounts_only_beyond_f_and_evidence_names_only_the_guilty() {
        let none = run(&Config { relays: 400, accounts: 150, share: 0.0, seed: 1 });
        assert_eq!((none.double_spent, none.frozen, none.over_f), (0, 0, 0));
        assert_eq!(none.certified, 150);
        let o = run(&Config { relays: 400, accounts: 300, share: 0.3, seed: 2 });
        assert!(o.over_f > 0, "a third of the relays should capture some groups");
        // Two quorums of 22 of 32 from halves of the honest replicas need twelve of the
        // adversary's: exactly the groups over f.
        assert_eq!(o.double_spent, o.over_f);
        assert_eq!(
            o.frozen, o.over_f_withholding,
            "frozen exactly where the adversary holds more than R - q"
        );
        assert_eq!(o.honest_named, 0);
        assert!(o.evidence_kept > 0);
        assert_eq!(o.certified + o.frozen, 300);
    }
}
