//! The ledger's costs, measured: `cargo run --release -p kura-core --example ledger_bench`.
//!
//! A group of 32 replicas (quorum 22) with real ed25519 keys, in one process: the bytes of
//! a transfer, an acknowledgement and a certificate on the wire (postcard); the time a
//! replica takes to acknowledge (check the owner's signature and the rules, sign), to verify
//! a certificate (22 signatures), and to apply one as a debit and a credit; what one account
//! costs a replica in memory. `KURA_BENCH_TRANSFERS` transfers (default 300) between two
//! accounts funded by the mint; times are p50 and p99 in microseconds, side by side; the
//! last line is one JSON object.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_core::ledger::{
    Ack, Certificate, Ed25519, Group, LedgerRequest, Replica, Signer, SigningKey, Transfer,
};
use std::time::{Duration, Instant};

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

fn main() {
    let runs: usize = std::env::var("KURA_BENCH_TRANSFERS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let key = |i: u8| SigningKey::from_bytes(&[i; 32]);
    let replicas: Vec<SigningKey> = (100..100 + kura_core::ledger::REPLICAS as u8).map(key).collect();
    let group = Group::of_closest(replicas.iter().map(Signer::key).collect()).unwrap();
    // The owners carry the account work (the mint needs none).
    let (mint, alice, bob) =
        (key(1), kura_core::testdata::account_key(0), kura_core::testdata::account_key(1));
    let mut states: Vec<Replica> = replicas.iter().map(|_| Replica::new(mint.key())).collect();
    let certify = |states: &mut Vec<Replica>, t: Transfer, owner: &SigningKey, times: &mut Vec<Duration>| {
        let signed = t.sign(owner);
        let mut acks: Vec<Ack> = Vec::new();
        for (r, k) in states.iter_mut().zip(&replicas).take(group.quorum) {
            let start = Instant::now();
            acks.push(r.acknowledge(&signed, k, &Ed25519).unwrap());
            times.push(start.elapsed());
        }
        Certificate { signed, acks }
    };
    let (mut ack_t, mut verify_t, mut apply_t) = (vec![], vec![], vec![]);
    let fund = certify(
        &mut states,
        Transfer { from: mint.key(), seq: 1, to: alice.key(), amount: 1 << 40, deps: vec![], memo: vec![] },
        &mint,
        &mut vec![],
    );
    for r in &mut states {
        r.apply_debit(&fund, &group, &Ed25519).unwrap();
        r.apply_credit(&fund, &group, &Ed25519).unwrap();
    }
    let mut credits = vec![fund.signed.transfer.id()];
    let mut sizes = (0, 0, 0);
    for seq in 1..=runs as u64 {
        let t = Transfer {
            from: alice.key(),
            seq,
            to: bob.key(),
            amount: 7,
            deps: std::mem::take(&mut credits),
            memo: b"rent".to_vec(),
        };
        let c = certify(&mut states, t, &alice, &mut ack_t);
        let start = Instant::now();
        c.verify(&group, &Ed25519).unwrap();
        verify_t.push(start.elapsed());
        let start = Instant::now();
        states[0].apply_debit(&c, &group, &Ed25519).unwrap();
        states[0].apply_credit(&c, &group, &Ed25519).unwrap();
        apply_t.push(start.elapsed());
        for r in states.iter_mut().skip(1) {
            r.apply_debit(&c, &group, &Ed25519).unwrap();
            r.apply_credit(&c, &group, &Ed25519).unwrap();
        }
        sizes = (
            LedgerRequest::Acknowledge(c.signed.clone()).encode().len(),
            kura_core::ledger::LedgerResponse::Acked(c.acks[0].clone()).encode().len(),
            LedgerRequest::Apply(Box::new(c.clone())).encode().len(),
        );
        states[0].check_conservation().unwrap();
    }
    let (a50, a99) = percentiles(ack_t);
    let (v50, v99) = percentiles(verify_t);
    let (p50, p99) = percentiles(apply_t);
    let view = LedgerRequest::Account(alice.key()).encode().len();
    let state = kura_core::ledger::LedgerResponse::Account(states[0].view(&alice.key())).encode().len();
    println!(
        "group of {} replicas, quorum {}, tolerating {} Byzantine; {runs} transfers",
        group.replicas.len(),
        group.quorum,
        group.tolerates()
    );
    println!("wire: transfer request {} B, acknowledgement answer {} B, certificate request {} B, account query {view} B", sizes.0, sizes.1, sizes.2);
    println!("acknowledge (owner signature checked, rules, signed): p50 {a50:.1} µs, p99 {a99:.1} µs");
    println!("verify a certificate ({} signatures): p50 {v50:.1} µs, p99 {v99:.1} µs", group.quorum);
    println!("apply a certificate as debit and credit (verified twice): p50 {p50:.1} µs, p99 {p99:.1} µs");
    println!(
        "an account's view on the wire (balance, unspent credits, latest {} transfers): {state} B",
        kura_core::ledger::MAX_LISTED_TRANSFERS
    );
    println!("acknowledgements per second per core, from the p50: {:.0}", 1e6 / a50);
    println!(
        "{{\"transfer_bytes\":{},\"ack_bytes\":{},\"certificate_bytes\":{},\"ack_p50_us\":{a50:.1},\"ack_p99_us\":{a99:.1},\"verify_p50_us\":{v50:.1},\"verify_p99_us\":{v99:.1},\"apply_p50_us\":{p50:.1},\"apply_p99_us\":{p99:.1}}}",
        sizes.0, sizes.1, sizes.2
    );
}
