//! The relay as a ledger replica, with its journal: `cargo run --release -p kura-relay
//! --example ledger_bench`.
//!
//! A real `Ledger` (the relay's own request handling, a redb journal committed before every
//! answer) in a scratch directory, in groups of 32 (quorum 22) whose other 31 members are
//! keys in this process: their 21 acknowledgements a certificate needs are signed here, out
//! of the timing, so that only this replica's work is timed and certificates have their
//! real size. `KURA_BENCH_ACCOUNTS` accounts (default 2,000) are funded by the
//! mint; then each acknowledges one transfer, first from one thread, then from
//! `KURA_BENCH_THREADS` (default 4) at once over other accounts; then the certificates are
//! applied. The same again with no journal (memory only), side by side. Prints operations
//! per second and the journal's bytes per account; the last line is one JSON object.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_core::ledger::{
    ack_message, Ack, Certificate, Group, Key, LedgerRequest, LedgerResponse, Signed, Signer, SigningKey,
    Transfer,
};
use kura_p2p::ledger::IdentitySigner;
use kura_relay::ledger::Ledger;
use std::path::Path;
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn owner(i: usize) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    SigningKey::from_bytes(&seed)
}

fn ack(resp: LedgerResponse) -> Ack {
    match resp {
        LedgerResponse::Acked(a) => a,
        other => panic!("{other:?}"),
    }
}

/// The acknowledgements of `others` for `signed`, with this replica's.
fn certificate(signed: Signed, mine: Ack, others: &[SigningKey]) -> Certificate {
    let t = &signed.transfer;
    let msg = ack_message(&t.from, t.seq, &t.id());
    let mut acks = vec![mine];
    acks.extend(others.iter().map(|k| Ack { replica: k.key(), sig: k.sign(&msg) }));
    Certificate { signed, acks }
}

struct Run {
    fund_per_s: f64,
    ack_per_s_1: f64,
    ack_per_s_n: f64,
    apply_per_s: f64,
    journal_bytes: u64,
}

fn run(dir: Option<&Path>, accounts: usize, threads: usize) -> Run {
    let signer = IdentitySigner(libp2p::identity::Keypair::generate_ed25519());
    let me = signer.key();
    let mint = owner(usize::MAX);
    // Owners are made without the account work (2,000 would take half an hour with it).
    let ledger = Ledger::open(dir, signer, mint.key(), None).unwrap().asking_account_bits(0);
    let others: Vec<SigningKey> =
        (0..kura_core::ledger::REPLICAS - 1).map(|i| owner(usize::MAX - 1 - i)).collect();
    let group =
        Group::of_closest(std::iter::once(me).chain(others.iter().map(Signer::key)).collect()).unwrap();
    assert_eq!(group.quorum, 22);
    let others = &others[..group.quorum - 1];
    let group_of = |_: &Key| Some((group.clone(), true));
    let owners: Vec<SigningKey> = (0..accounts).map(owner).collect();
    // Alone, the replica has no group to check accounts with: counted as checked.
    for a in owners.iter().chain([&mint]) {
        ledger.mark_synced(a.key());
    }

    // The mint funds every account: acknowledged, then applied (debit and credit).
    let start = Instant::now();
    let mut credits = Vec::with_capacity(accounts);
    for (i, o) in owners.iter().enumerate() {
        let t = Transfer {
            from: mint.key(),
            seq: i as u64 + 1,
            to: o.key(),
            amount: 100,
            deps: vec![],
            memo: vec![],
        };
        let signed = t.sign(&mint);
        let a = ack(ledger.handle(Ok(LedgerRequest::Acknowledge(signed.clone())), group_of));
        let id = signed.transfer.id();
        let cert = certificate(signed, a, others);
        let r = ledger.handle(Ok(LedgerRequest::Apply(Box::new(cert))), group_of);
        assert!(matches!(r, LedgerResponse::Applied { .. }), "{r:?}");
        credits.push(id);
    }
    let fund_per_s = accounts as f64 / start.elapsed().as_secs_f64();

    // Each account acknowledges one transfer naming its credit: a tenth from one thread,
    // the rest from `threads` at once.
    let transfer = |i: usize| {
        let to = owners[(i + 1) % accounts].key();
        Transfer { from: owners[i].key(), seq: 1, to, amount: 40, deps: vec![credits[i]], memo: vec![] }
            .sign(&owners[i])
    };
    let signed: Vec<_> = (0..accounts).map(transfer).collect();
    let solo = accounts / 10;
    let start = Instant::now();
    let mut acks: Vec<Ack> = Vec::with_capacity(accounts);
    for s in &signed[..solo] {
        acks.push(ack(ledger.handle(Ok(LedgerRequest::Acknowledge(s.clone())), group_of)));
    }
    let ack_per_s_1 = solo as f64 / start.elapsed().as_secs_f64();
    let rest = &signed[solo..];
    let start = Instant::now();
    let per = rest.len().div_ceil(threads);
    let more: Vec<Vec<Ack>> = std::thread::scope(|s| {
        let handles: Vec<_> = rest
            .chunks(per)
            .map(|part| {
                let ledger = &ledger;
                s.spawn(move || {
                    part.iter()
                        .map(|sg| ack(ledger.handle(Ok(LedgerRequest::Acknowledge(sg.clone())), group_of)))
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ack_per_s_n = rest.len() as f64 / start.elapsed().as_secs_f64();
    acks.extend(more.into_iter().flatten());
    let certs: Vec<Certificate> =
        signed.into_iter().zip(acks).map(|(s, a)| certificate(s, a, others)).collect();

    // The certificates applied (debit and credit at this replica).
    let start = Instant::now();
    for c in certs {
        let r = ledger.handle(Ok(LedgerRequest::Apply(Box::new(c))), group_of);
        assert!(matches!(r, LedgerResponse::Applied { debit: Some(true), credit: Some(true) }), "{r:?}");
    }
    let apply_per_s = accounts as f64 / start.elapsed().as_secs_f64();
    let journal_bytes = dir.map_or(0, |d| std::fs::metadata(d.join("ledger.redb")).unwrap().len());
    Run { fund_per_s, ack_per_s_1, ack_per_s_n, apply_per_s, journal_bytes }
}

fn main() {
    let accounts = env("KURA_BENCH_ACCOUNTS", 2_000);
    let threads = env("KURA_BENCH_THREADS", 4);
    let dir = std::env::temp_dir().join(format!("kura-ledger-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let disk = run(Some(&dir), accounts, threads);
    let _ = std::fs::remove_dir_all(&dir);
    let mem = run(None, accounts, threads);
    println!("{accounts} accounts; groups of 32, quorum 22; {threads} threads at once");
    println!("{:<44} {:>12} {:>12}", "per second", "journal", "memory");
    let row = |what: &str, a: f64, b: f64| println!("{what:<44} {a:>12.0} {b:>12.0}");
    row("fund (acknowledge + apply a mint transfer)", disk.fund_per_s, mem.fund_per_s);
    row("acknowledge, one thread", disk.ack_per_s_1, mem.ack_per_s_1);
    row(&format!("acknowledge, {threads} threads"), disk.ack_per_s_n, mem.ack_per_s_n);
    row("apply (debit + credit)", disk.apply_per_s, mem.apply_per_s);
    // Each account: its funding (acknowledged for the mint, applied as the mint's debit and
    // its credit), its own transfer (acknowledged, applied as its debit and the next
    // account's credit): two transfers, six entries.
    let per_account = disk.journal_bytes as f64 / accounts as f64;
    println!(
        "journal file: {} bytes, {per_account:.0} bytes per account (2 transfers each)",
        disk.journal_bytes
    );
    println!(
        "{{\"accounts\":{accounts},\"threads\":{threads},\"fund_per_s\":{:.0},\"ack_per_s_1\":{:.0},\"ack_per_s_n\":{:.0},\"apply_per_s\":{:.0},\"mem_ack_per_s_1\":{:.0},\"mem_ack_per_s_n\":{:.0},\"journal_bytes_per_account\":{per_account:.0}}}",
        disk.fund_per_s, disk.ack_per_s_1, disk.ack_per_s_n, disk.apply_per_s, mem.ack_per_s_1, mem.ack_per_s_n
    );
}
