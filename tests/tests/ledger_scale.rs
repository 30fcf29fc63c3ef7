//! The credits ledger on twenty real `kura-relay` processes (groups of all twenty, quorum 14),
//! driven by wallets in this process through the client library `kura` uses:
//! - a thousand transfers between forty accounts, the accounts all at once, while three
//!   relays are killed with SIGKILL and started again on their data: every transfer is
//!   certified, every balance is exact to the unit, value is conserved (the balances sum to
//!   what the test mint minted), and the restarted relays lost nothing they had signed;
//! - every certificate replayed changes nothing;
//! - an owner who signs two transfers for one slot and sends them at once to the two halves
//!   of the group (and then each to the other half) gets at most one certificate, and the
//!   replicas that saw both hold evidence and refuse the owner from then on.
//!
//! Prints the transfer latency (p50, p99) on this local network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use kura_client::net::{NetConfig, Network};
use kura_client::wallet;
use kura_core::ledger::{
    AccountView, Certificate, Key, LedgerRequest, LedgerResponse, Signer, SigningKey, Transfer,
};
use kura_core::testdata::XorShift;
use kura_tests::net::Net;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const ACCOUNTS: usize = 40;
const TRANSFERS_EACH: usize = 25;
const FUNDS: u64 = 1_000;
/// The code of [`LedgerError::Conflict`] on the wire.
const CONFLICT: u16 = 8;

fn key(i: usize) -> SigningKey {
    kura_core::testdata::account_key(i)
}

async fn connect(net: &Net) -> Network {
    let addrs = kura_client::bootstrap::resolve(&net.addrs).await.unwrap();
    Network::connect(&addrs, NetConfig::default()).await.unwrap()
}

/// Sends with a few more tries when the network was in the middle of a restart; a retry
/// never signs a second transfer for a slot (the wallet completes what was acknowledged).
async fn send(client: &Network, owner: &SigningKey, to: Key, amount: u64) -> Certificate {
    let mut last = String::new();
    for attempt in 0..8u32 {
        match wallet::send(client, owner, to, amount, b"test".to_vec()).await {
            Ok(c) => return c,
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt + 1))).await;
    }
    panic!("a transfer was not certified: {last}");
}

/// Every group member's view of every account, by the relay's peer id.
async fn views_at(client: &Network, accounts: &[Key]) -> HashMap<(String, Key), AccountView> {
    let mut out = HashMap::new();
    for a in accounts {
        let (_, members) = wallet::group(client, a).await.unwrap();
        for p in members {
            if let Ok(LedgerResponse::Account(v)) = client.ledger(p, LedgerRequest::Account(*a)).await {
                out.insert((p.to_string(), *a), v);
            }
        }
    }
    out
}

#[test]
fn twenty_relays_certify_concurrent_transfers_exactly_through_kills_replays_and_equivocation() {
    let mint = key(10_000);
    let mint_hex: String = mint.key().iter().map(|b| format!("{b:02x}")).collect();
    let mut net = Net::start_with("ledger20", 20, &["--ledger-mint", &mint_hex]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let owners: Vec<SigningKey> = (0..ACCOUNTS).map(key).collect();
    let accounts: Vec<Key> = owners.iter().map(Signer::key).collect();
    let client = rt.block_on(connect(&net));

    // The test mint funds every account.
    rt.block_on(async {
        for a in &accounts {
            send(&client, &mint, *a, FUNDS).await;
        }
    });

    // A thousand transfers, the accounts all at once (each account's in a row, as its slots
    // are). Three relays are killed and started again once a third of them are certified.
    let done = AtomicUsize::new(0);
    let certs: Mutex<Vec<Certificate>> = Mutex::new(Vec::new());
    let latencies: Mutex<Vec<Duration>> = Mutex::new(Vec::new());
    let victims = [3usize, 11, 17];
    let mut before: HashMap<(String, Key), AccountView> = HashMap::new();
    std::thread::scope(|s| {
        let transfers = s.spawn(|| {
            rt.block_on(
                futures::stream::iter(0..ACCOUNTS)
                    .map(|i| {
                        let (client, owners, accounts, done, certs, latencies) =
                            (&client, &owners, &accounts, &done, &certs, &latencies);
                        async move {
                            let mut rng = XorShift(0x9e37_79b9 + i as u64);
                            for _ in 0..TRANSFERS_EACH {
                                let to = accounts[(i + 1 + rng.below(ACCOUNTS - 1)) % ACCOUNTS];
                                let amount = 1 + rng.below(20) as u64;
                                let start = Instant::now();
                                let cert = send(client, &owners[i], to, amount).await;
                                latencies.lock().unwrap().push(start.elapsed());
                                certs.lock().unwrap().push(cert);
                                done.fetch_add(1, Relaxed);
                            }
                        }
                    })
                    .buffer_unordered(ACCOUNTS)
                    .collect::<Vec<()>>(),
            )
        });
        while done.load(Relaxed) < ACCOUNTS * TRANSFERS_EACH / 3 {
            std::thread::sleep(Duration::from_millis(20));
        }
        // What the victims acknowledged and applied just before they die.
        let victim_ids: Vec<String> = victims.iter().map(|&i| net.relay(i).peer_id.clone()).collect();
        before = rt
            .block_on(views_at(&client, &accounts))
            .into_iter()
            .filter(|((peer, _), _)| victim_ids.contains(peer))
            .collect();
        for &i in &victims {
            net.kill9(i);
        }
        for &i in &victims {
            net.restart(i);
        }
        transfers.join().unwrap();
    });
    let certs = certs.into_inner().unwrap();
    assert_eq!(certs.len(), ACCOUNTS * TRANSFERS_EACH);

    // Every balance exact, and value conserved.
    let mut want: HashMap<Key, i64> = accounts.iter().map(|a| (*a, FUNDS as i64)).collect();
    for c in &certs {
        let t = &c.signed.transfer;
        *want.get_mut(&t.from).unwrap() -= t.amount as i64;
        *want.get_mut(&t.to).unwrap() += t.amount as i64;
    }
    let balances = |client: &Network| -> HashMap<Key, i64> {
        rt.block_on(async {
            let mut out = HashMap::new();
            for a in &accounts {
                out.insert(*a, wallet::view(client, a).await.unwrap().spendable() as i64);
            }
            out
        })
    };
    let got = balances(&client);
    assert_eq!(got, want);
    assert_eq!(got.values().sum::<i64>(), (ACCOUNTS as u64 * FUNDS) as i64, "value is conserved");

    // The restarted relays kept what they had signed and applied: no account is behind
    // where it was, and a slot acknowledged and still open holds the same transfer.
    let after = rt.block_on(views_at(&client, &accounts));
    assert!(!before.is_empty());
    for (k, was) in &before {
        let Some(now) = after.get(k) else { continue };
        assert!(now.next_seq >= was.next_seq, "{k:?}: {} after {}", now.next_seq, was.next_seq);
        if now.next_seq == was.next_seq && was.pending.is_some() {
            assert_eq!(now.pending, was.pending);
        }
    }

    // Every member of every group agrees: those that missed certificates while they were
    // down were handed them.
    let mut views: HashMap<Key, Vec<&AccountView>> = HashMap::new();
    for ((_, a), v) in &after {
        views.entry(*a).or_default().push(v);
    }
    let behind: Vec<String> = views
        .iter()
        .flat_map(|(a, vs)| {
            let top = vs.iter().map(|v| v.next_seq).max().unwrap();
            vs.iter()
                .filter(move |v| v.next_seq < top)
                .map(move |v| format!("{:02x}…: {} < {top}", a[0], v.next_seq))
        })
        .collect();
    eprintln!("replicas behind the others after the run: {behind:?}");
    assert!(behind.is_empty(), "replicas left behind: {behind:?}");

    // Every certificate handed over again: nothing changes.
    rt.block_on(async {
        for c in certs.iter().step_by(7) {
            assert!(wallet::apply(&client, c).await.unwrap() > 0);
        }
    });
    assert_eq!(balances(&client), want, "a replayed certificate changed a balance");

    // A replica that was down while an account moved catches itself up when it is handed a
    // certificate it cannot apply yet (no wallet helps it here): by the certificates it
    // lacks when it missed three debits, by adopting the account's state from its group
    // when it missed more than a view lists.
    let mover = &owners[5];
    let (_, members) = rt.block_on(wallet::group(&client, &mover.key())).unwrap();
    let mut spared = victims.to_vec();
    let mut adopter = None;
    for (missed, kind) in [(3, "done"), (kura_core::ledger::MAX_LISTED_TRANSFERS + 4, "adopted")] {
        let victim = (0..net.relays.len())
            .find(|&i| !spared.contains(&i) && members.iter().any(|p| p.to_string() == net.relay(i).peer_id))
            .unwrap();
        spared.push(victim);
        let victim_peer =
            members.iter().find(|p| p.to_string() == net.relay(victim).peer_id).copied().unwrap();
        net.kill9(victim);
        let last = rt.block_on(async {
            let mut last = None;
            for _ in 0..missed {
                last = Some(send(&client, mover, accounts[6], 1).await);
            }
            last.unwrap()
        });
        net.restart(victim);
        adopter = Some((victim, victim_peer));
        let (behind_at, caught_up) = rt.block_on(async {
            let agreed = wallet::view(&client, &mover.key()).await.unwrap();
            // Straight to the restarted relay (on its new port).
            let addrs = kura_client::bootstrap::resolve(&[net.addrs[victim].clone()]).await.unwrap();
            let direct = Network::connect(&addrs, NetConfig::default()).await.unwrap();
            let direct = &direct;
            let view = || async move {
                match direct.ledger(victim_peer, LedgerRequest::Account(mover.key())).await {
                    Ok(LedgerResponse::Account(v)) => Some(v),
                    _ => None,
                }
            };
            let behind_at = view().await.map(|v| v.next_seq);
            // Handed the latest certificate, which it cannot apply yet, until it has caught up.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if view().await.is_some_and(|v| v.agrees(&agreed)) {
                    break (behind_at, true);
                }
                if Instant::now() > deadline {
                    break (behind_at, false);
                }
                let _ = direct.ledger(victim_peer, LedgerRequest::Apply(Box::new(last.clone()))).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        eprintln!(
            "a restarted replica {missed} debits behind (at seq {behind_at:?}) caught itself up: {caught_up}"
        );
        assert!(caught_up, "the restarted replica did not catch itself up from {missed} debits behind");
        let metric = format!("kura_ledger_catch_ups_total{{kind=\"{kind}\"}}");
        assert!(
            net.relay(victim).metric(&metric).unwrap_or(0.0) >= 1.0,
            "{metric} not counted by the restarted relay"
        );
    }
    // The replica that adopted applies the account's next transfer with the others, and
    // every balance is still exact.
    let moved = 3 + kura_core::ledger::MAX_LISTED_TRANSFERS as i64 + 4 + 1;
    let next = rt.block_on(send(&client, mover, accounts[6], 1));
    let (victim, victim_peer) = adopter.unwrap();
    let after = rt.block_on(async {
        let addrs = kura_client::bootstrap::resolve(&[net.addrs[victim].clone()]).await.unwrap();
        let direct = Network::connect(&addrs, NetConfig::default()).await.unwrap();
        // The wallet hands the certificate to every member; the adopter applies it as a debit.
        let _ = direct.ledger(victim_peer, LedgerRequest::Apply(Box::new(next.clone()))).await;
        match direct.ledger(victim_peer, LedgerRequest::Account(mover.key())).await {
            Ok(LedgerResponse::Account(v)) => v,
            other => panic!("{other:?}"),
        }
    });
    let agreed = rt.block_on(wallet::view(&client, &mover.key())).unwrap();
    assert!(
        after.agrees(&agreed),
        "the adopter is not level after the next transfer: {after:?} vs {agreed:?}"
    );
    *want.get_mut(&accounts[5]).unwrap() -= moved;
    *want.get_mut(&accounts[6]).unwrap() += moved;
    assert_eq!(balances(&client), want, "a balance is not exact after the catch-ups");

    // An owner signs two transfers for its next slot and sends them at once to the two
    // halves of its group, then each to the other half.
    let cheat = &owners[0];
    let (conflicts, certified) = rt.block_on(async {
        let (group, members) = wallet::group(&client, &cheat.key()).await.unwrap();
        let seq = wallet::view(&client, &cheat.key()).await.unwrap().next_seq;
        let t = |to: usize| Transfer {
            from: cheat.key(),
            seq,
            to: accounts[to],
            amount: 5,
            deps: vec![],
            memo: vec![],
        };
        let both = [t(1).sign(cheat), t(2).sign(cheat)];
        let half = members.len() / 2;
        let mut sends = Vec::new();
        for (i, p) in members.iter().enumerate() {
            let first = usize::from(i >= half);
            sends.push((*p, first));
            sends.push((*p, 1 - first));
        }
        let answers: Vec<(usize, LedgerResponse)> = futures::stream::iter(sends)
            .map(|(p, which)| {
                let req = LedgerRequest::Acknowledge(both[which].clone());
                let client = &client;
                async move { (which, client.ledger(p, req).await.unwrap()) }
            })
            .buffer_unordered(2 * members.len())
            .collect()
            .await;
        let mut acks = [Vec::new(), Vec::new()];
        let mut conflicts = 0;
        for (which, a) in answers {
            match a {
                LedgerResponse::Acked(ack) => acks[which].push(ack),
                LedgerResponse::Refused { code, .. } => {
                    conflicts += usize::from(code == CONFLICT);
                }
                other => panic!("{other:?}"),
            }
        }
        let certified = acks
            .into_iter()
            .zip(both)
            .filter(|(acks, signed)| {
                let c = Certificate { signed: signed.clone(), acks: acks.clone() };
                c.verify(&group, &kura_core::ledger::Ed25519).is_ok()
            })
            .count();
        (conflicts, certified)
    });
    eprintln!("equivocating owner: {certified} certificate(s), {conflicts} replicas answered with evidence");
    assert!(certified <= 1, "two certificates for one slot");
    assert!(conflicts > 0, "no replica saw both transfers");
    // The replicas that saw both refuse the owner from then on.
    let refused = rt.block_on(async {
        wallet::send(&client, cheat, accounts[3], 1, vec![]).await.err().map(|e| e.to_string())
    });
    eprintln!("the equivocating owner's next transfer: {refused:?}");
    assert!(refused.is_some_and(|r| r.contains("banned")));

    // A relay that has not checked an account with its group refuses to acknowledge for it
    // ("joining", code 13) and catches up; a stranger's transfer with a bad signature is
    // refused as such and sets nothing off. Once caught up, the owner's transfer meets the
    // ordinary rules (an empty account: an overdraft).
    let fresh = key(999);
    let (_, members) = rt.block_on(wallet::group(&client, &fresh.key())).unwrap();
    let (relay, peer) = members
        .iter()
        .find_map(|p| {
            (0..net.relays.len())
                .find(|&i| !spared.contains(&i) && net.relay(i).peer_id == p.to_string())
                .map(|i| (i, *p))
        })
        .unwrap();
    let metric =
        |kind: &str| net.relay(relay).metric(&format!("kura_ledger_catch_ups_total{{kind=\"{kind}\"}}"));
    let level_before = metric("level").unwrap_or(0.0);
    let t = Transfer { from: fresh.key(), seq: 1, to: accounts[0], amount: 1, deps: vec![], memo: vec![] };
    let mut forged = t.clone().sign(&fresh);
    forged.sig[0] ^= 1;
    let codes = rt.block_on(async {
        let ask = |s: kura_core::ledger::Signed| {
            let client = &client;
            async move {
                match client.ledger(peer, LedgerRequest::Acknowledge(s)).await.unwrap() {
                    LedgerResponse::Refused { code, .. } => code,
                    other => panic!("{other:?}"),
                }
            }
        };
        let garbage = ask(forged).await;
        let first = ask(t.clone().sign(&fresh)).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut later = first;
        while later == first && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            later = ask(t.clone().sign(&fresh)).await;
        }
        (garbage, first, later)
    });
    eprintln!(
        "a fresh account at an unchecked relay: bad signature {}, first {}, later {}",
        codes.0, codes.1, codes.2
    );
    assert_eq!(codes, (2, 13, 7), "(bad signature, joining, overdraft) expected");
    assert_eq!(
        metric("level").unwrap_or(0.0),
        level_before + 1.0,
        "one catch-up, for the owner's transfer only"
    );

    let mut l = latencies.into_inner().unwrap();
    l.sort();
    let pct = |p: f64| l[((l.len() - 1) as f64 * p) as usize];
    eprintln!(
        "ledger on 20 relays: {} transfers, latency p50 {:?}, p99 {:?}, max {:?}",
        l.len(),
        pct(0.5),
        pct(0.99),
        l[l.len() - 1]
    );
}
