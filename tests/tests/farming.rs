//! Paying for storage with real `kura-relay` processes on 127.0.0.1 and the real `kura`:
//! relays take unpaid stores within their free allowance only; an upload beyond it is
//! refused in words; `kura put --key WALLET` buys a batch by burning credits (its cost
//! printed, and exactly what the wallet loses) and stamps every stripe, and relays take
//! it; a wallet that cannot cover the batch is refused before anything is sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_client::net::{NetConfig, Network};
use kura_core::farming::{terms_for, DEFAULT_EPOCH_SECS, DEFAULT_PRICES};
use kura_core::farming::{EpochClaim, RewardCertificate, RewardShare};
use kura_core::ledger::{LedgerRequest, LedgerResponse, Signer, SigningKey};
use kura_core::testdata::pseudo_random;
use kura_core::wire::{ErrorCode, Request, Response};
use kura_tests::net::{kura, new_key, Net};

const MIB: usize = 1 << 20;

fn metric_sum(net: &Net, series: &str) -> f64 {
    net.live().map(|r| r.metric(series).unwrap_or(0.0)).sum()
}

/// Runs `kura ARGS` paid from the wallet `key` for `epochs`, listing uploads in `list`;
/// its stdout and stderr, once it succeeded.
fn kura_paid(net: &Net, args: &[&str], key: &str, epochs: &str, list: &str) -> (String, String) {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    all.extend(net.bootstrap_args());
    all.extend(["--key", key, "--epochs", epochs, "--files", list].map(String::from));
    let out = kura(&all.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8(out.stdout).unwrap().trim().to_owned(), stderr)
}

#[test]
fn uploads_beyond_the_free_allowance_are_paid_from_a_wallet() {
    let keys = kura_tests::Scratch::new("farming-keys").unwrap();
    let (mint, mint_account) = new_key(keys.path(), "mint");
    // Each relay takes 2 MiB of unpaid shard bytes an hour, from everyone together.
    let mut net =
        Net::start_with("farming", 6, &["--ledger-mint", &mint_account, "--free-bytes-total", "2M"]);
    let dir = net.dir.path();
    let t0 = std::time::Instant::now();
    let at = |what: &str| eprintln!("farming: {what} at {:.1} s", t0.elapsed().as_secs_f64());

    // A small file fits the allowance.
    let small = pseudo_random(256 * 1024, 1);
    std::fs::write(dir.join("small"), &small).unwrap();
    let cap = net.put(&dir.join("small"), &[]).unwrap();
    net.get_exact(&cap, &small, "small");
    assert!(metric_sum(&net, "kura_stores_free_total") >= 6.0);
    at("small put and get");

    // A file whose shards are more than the relays take unpaid is refused, in words.
    let big = pseudo_random(12 * MIB, 2);
    std::fs::write(dir.join("big"), &big).unwrap();
    let refused = net.put(&dir.join("big"), &[]).unwrap_err();
    assert!(refused.contains("free allowance is used"), "{refused}");
    assert!(refused.contains("--key"), "{refused}");
    at("unpaid put refused");

    // A wallet with nothing in it cannot buy the batch: refused before any shard is sent.
    let (alice, alice_account) = new_key(keys.path(), "alice");
    let paid_before = metric_sum(&net, "kura_stores_paid_total");
    let key_arg = alice.display().to_string();
    let broke = net.put(&dir.join("big"), &["--key", &key_arg, "--epochs", "24"]).unwrap_err();
    assert!(broke.contains("does not cover"), "{broke}");
    assert_eq!(metric_sum(&net, "kura_stores_paid_total"), paid_before);
    at("broke put refused");

    // Funded, it pays exactly what the batch for the file costs, and the upload is taken.
    net.wallet(&mint, &["send", &alice_account, "100000"]).unwrap();
    assert_eq!(net.balance(&alice), 100_000);
    let list = dir.join("files.jsonl").display().to_string();
    let big_path = dir.join("big").display().to_string();
    let (cap, stderr) = kura_paid(&net, &["put", &big_path], &key_arg, "24", &list);
    at("paid put");
    // Six relays, found whole: stripes stay 4+2, and the batch is priced for them.
    assert!(stderr.contains("stripes 4+2 (a network of about 6 relays)"), "{stderr}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let terms = terms_for(
        big.len() as u64,
        kura_core::CHUNK_SIZE,
        kura_core::Params::new(4, 2).unwrap(),
        now / DEFAULT_EPOCH_SECS,
        24,
    );
    let cost = DEFAULT_PRICES.cost(&terms);
    // 12 chunks and one data-map stripe, 1.5 MiB each, for 24 epochs at 1,000 per GiB-epoch.
    assert_eq!((terms.slots, cost), (13, 458));
    assert!(stderr.contains(&format!("paid {cost} credits")), "{stderr}");
    assert_eq!(net.balance(&alice), 100_000 - cost);
    net.get_exact(&cap, &big, "big");
    // `kura ls` lists it: name, size, what it cost, for how long (24 hour epochs, less the
    // part of this one gone), and its capability.
    let ls = kura(&["ls", "--files", &list]);
    let ls = String::from_utf8_lossy(&ls.stdout);
    let line = ls.lines().find(|l| l.starts_with("big\t")).unwrap_or_else(|| panic!("{ls}"));
    assert!(line.contains(&format!("{} bytes", big.len())) && line.contains(&cap), "{line}");
    // (24 h exactly only in the first second of an hour.)
    assert!(
        line.contains(&format!("({cost} credits), 23 h"))
            || line.contains(&format!("({cost} credits), 1 d 0 h")),
        "{line}"
    );
    // Every shard of the 13 stripes went in paid (some more: stores that raced a refusal).
    let paid = metric_sum(&net, "kura_stores_paid_total") - paid_before;
    assert!(paid >= 13.0 * 6.0, "{paid} paid stores");
    // Each relay shows what it took unpaid this hour (at most its allowance) and the batch.
    for r in net.live() {
        let f = &r.json("/status").unwrap()["farming"];
        assert!(f["free_bytes_used"].as_u64().unwrap() <= 2 << 20, "{f}");
        assert_eq!(
            (f["free_bytes_total"].as_u64(), f["batches_known"].as_u64()),
            (Some(2 << 20), Some(1)),
            "{f}"
        );
    }
    // A relay started again still knows which of its stripes are paid: its stamps come back
    // from its journal.
    let stamps = |net: &Net| net.relay(3).json("/status").unwrap()["farming"]["stamps"].as_u64().unwrap();
    let before = stamps(&net);
    assert!(before >= 1, "relay 3 holds paid stripes");
    net.kill9(3);
    net.restart(3);
    assert_eq!(stamps(&net), before);

    // Renewed: every stripe stored again under a new batch, paid again, the same capability.
    let stamps_all = |net: &Net| -> u64 {
        net.live().map(|r| r.json("/status").unwrap()["farming"]["stamps"].as_u64().unwrap()).sum()
    };
    let held = stamps_all(&net);
    let stores_before = metric_sum(&net, "kura_stores_paid_total");
    let (_, stderr) = kura_paid(&net, &["renew", &cap], &key_arg, "48", &list);
    let renewal = DEFAULT_PRICES.cost(&kura_core::farming::BatchTerms { epochs: 48, ..terms });
    // Every close group took the new stamp for the shards it holds: no shard moved.
    assert!(
        stderr.contains(&format!("paid {renewal} credits"))
            && stderr.contains("renewed 13 stripes (13 by stamp alone"),
        "{stderr}"
    );
    assert_eq!(metric_sum(&net, "kura_stores_paid_total"), stores_before, "no shard was stored again");
    assert_eq!(net.balance(&alice), 100_000 - cost - renewal);
    assert!(stamps_all(&net) >= held + 13 * 6, "every shard of the 13 stripes stamped again");
    let ls = kura(&["ls", "--files", &list]);
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert_eq!(ls.lines().filter(|l| l.contains(&cap)).count(), 1, "{ls}");
    assert!(
        ls.contains(&format!("({renewal} credits), 1 d 23 h"))
            || ls.contains(&format!("({renewal} credits), 2 d 0 h")),
        "{ls}"
    );
    net.get_exact(&cap, &big, "renewed");
    eprintln!("farming: paid {cost} for {} slots, {paid} paid stores", terms.slots);
}

/// The relays' status of their epochs' earnings.
fn earnings(net: &Net, i: usize) -> serde_json::Value {
    net.relay(i).json("/status").unwrap()["farming"]["earnings"].clone()
}

#[test]
fn relays_earn_for_paid_storage_their_auditors_proved() {
    const EPOCH: &str = "15";
    const PRICE: u64 = 1_000_000;
    let keys = kura_tests::Scratch::new("earning-keys").unwrap();
    let (mint, mint_account) = new_key(keys.path(), "mint");
    // Relays re-read their own shards at a byte a second: a lost shard file is found by
    // the auditors' samples, not by the holder's own scrub first.
    let mut net = Net::start_with(
        "earning",
        6,
        &[
            "--ledger-mint",
            &mint_account,
            "--epoch",
            EPOCH,
            "--price",
            &PRICE.to_string(),
            "--scrub-rate",
            "1",
            // Claims in pages of about two shards: each relay's seven paid shards are
            // claimed in the four pages of level 2.
            "--claim-page-shards",
            "2",
        ],
    );
    let dir = net.dir.path().to_owned();
    let prices = kura_core::farming::Prices { price: PRICE, ..DEFAULT_PRICES };

    // A paid upload: six 1 MiB chunks and the data map, one shard of each stripe on each of
    // the six relays.
    let (alice, alice_account) = new_key(keys.path(), "alice");
    net.wallet(&mint, &["send", &alice_account, "10000000"]).unwrap();
    let file = pseudo_random(6 * MIB, 7);
    std::fs::write(dir.join("file"), &file).unwrap();
    let list = dir.join("files.jsonl").display().to_string();
    let (cap, _) = kura_paid(
        &net,
        &["put", &dir.join("file").display().to_string(), "--epoch", EPOCH, "--price", &PRICE.to_string()],
        &alice.display().to_string(),
        "20",
        &list,
    );
    // Relay 5 loses every shard file behind its back.
    let shards = dir.join("r5").join("store").join("shards");
    let mut deleted = 0;
    for sub in std::fs::read_dir(&shards).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
            deleted += 1;
        }
    }
    assert!(deleted >= 7, "relay 5 held a shard of each stripe ({deleted} files)");

    // Each other relay is rewarded for an epoch: its auditors (the other five) sampled its
    // paid shards and a quorum signed; the certificate was deposited in its rewards account.
    // Relay 5 still lists the shards its index names, and forfeits: its auditors' samples
    // fail.
    let count = |i: usize, what: &str| earnings(&net, i)[what].as_u64().unwrap_or(0);
    kura_tests::relay::wait_for(std::time::Duration::from_secs(120), "an epoch's rewards", || {
        ((0..5).all(|i| count(i, "epochs_rewarded") >= 1) && count(5, "epochs_forfeited") >= 1).then_some(())
    })
    .unwrap();
    for i in 0..5 {
        let e = earnings(&net, i);
        let status = net.relay(i).json("/status").unwrap();
        let last = &e["last"];
        let (pages, shards, bytes, credits) = (
            last["pages"].as_u64().unwrap(),
            last["shards"].as_u64().unwrap(),
            last["bytes"].as_u64().unwrap(),
            last["credits"].as_u64().unwrap(),
        );
        // Every shard it holds is paid and was listed, in pages of one level (each page
        // rounded down apart); the reward is the formula's.
        assert_eq!(shards, status["shards"].as_u64().unwrap(), "relay {i}: {e}");
        assert!(shards >= 7 && bytes >= 6 * 262_148, "relay {i}: {e}");
        assert!((2..=4).contains(&pages), "relay {i}: {e}");
        assert!(credits <= prices.reward(bytes) && credits + pages >= prices.reward(bytes), "relay {i}: {e}");
        // The credits are in the relay's rewards account, spendable with `kura wallet`.
        let earned = e["earned"].as_u64().unwrap();
        let balance = net.balance(&dir.join(format!("r{i}")).join("rewards.key"));
        assert!(balance >= earned && earned >= credits, "relay {i}: balance {balance}, {e}");
        assert!(net.relay(i).metric("kura_credits_earned_total").unwrap() >= credits as f64);
        eprintln!(
            "earning: relay {i} earned {credits} for {shards} shards ({bytes} bytes) in {pages} pages, epoch {}",
            last["epoch"]
        );
        // The operator's terminal says the same (a later epoch may have paid more since).
        let relay = kura_tests::binary("kura-relay", "kura-relay").unwrap();
        let dir_arg = dir.join(format!("r{i}")).display().to_string();
        let out =
            std::process::Command::new(relay).args(["status", "--data-dir", &dir_arg]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let said: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("earned: ")?.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{text}"));
        let account = status["farming"]["rewards_account"].as_str().unwrap();
        assert!(said >= earned && text.contains(account) && text.contains("paid shards"), "{text}");
    }
    // Relay 5 earned nothing.
    let e = earnings(&net, 5);
    eprintln!("earning: relay 5, whose shard files were deleted: {e}");
    assert_eq!((e["earned"].as_u64(), e["epochs_rewarded"].as_u64()), (Some(0), Some(0)), "{e}");
    assert_eq!(e["last"]["credits"].as_u64(), Some(0), "{e}");
    assert_eq!(net.balance(&dir.join("r5").join("rewards.key")), 0);
    assert!(net.relay(5).metric("kura_epochs_forfeited_total").unwrap() >= 1.0);
    let audits = |kind: &str| -> f64 {
        let series = format!("kura_epoch_audits_total{{kind=\"{kind}\"}}");
        net.live().map(|r| r.metric(&series).unwrap_or(0.0)).sum()
    };
    // Five relays' claims, each signed by at least four of their five auditors; relay 5's
    // refused by at least two (four signatures make its certificate).
    let (signed, failed) = (audits("signed"), audits("failed"));
    assert!(signed >= 20.0 && failed >= 2.0, "{signed} signed, {failed} failed");
    // A stranger mints nothing: a certificate of shares signed by keys it made is refused by
    // every replica, and its epoch claim (it is no relay) is refused unheard.
    let epoch = e["last"]["epoch"].as_u64().unwrap();
    let peers: Vec<libp2p_identity::PeerId> = net.live().map(|r| r.peer_id.parse().unwrap()).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let thief = kura_core::testdata::account_key(7).key();
    let relay5 = kura_p2p::ledger::key_of(&peers[5]).unwrap();
    rt.block_on(async {
        let addrs = kura_client::bootstrap::resolve(&net.addrs).await.unwrap();
        let client = Network::connect(&addrs, NetConfig::default()).await.unwrap();
        let amount = 1_000_000;
        let page = kura_core::farming::ClaimPage::default();
        let shares = (0..16u8)
            .map(|i| {
                RewardShare::sign(
                    &SigningKey::from_bytes(&[150 + i; 32]),
                    epoch,
                    &relay5,
                    &thief,
                    amount,
                    &page,
                )
            })
            .collect();
        // Its own keys' draws for relay 5's epoch: proofs that verify, by no neighbour of it.
        let draws = (0..16u8)
            .map(|i| kura_core::farming::Draw::make(&[150 + i; 32], &peers[5].to_bytes(), epoch))
            .collect();
        let forged = RewardCertificate { epoch, relay: relay5, account: thief, amount, page, shares, draws };
        for p in &peers {
            let a = client.ledger(*p, LedgerRequest::Reward(Box::new(forged.clone()))).await.unwrap();
            assert!(matches!(a, LedgerResponse::Refused { .. }), "{a:?}");
        }
        let claim = EpochClaim { epoch, page, account: thief, burns: vec![], entries: vec![], draws: vec![] };
        let a = client.request(peers[0], Request::EpochClaim(Box::new(claim))).await.unwrap();
        assert!(matches!(a, Response::Error { code: ErrorCode::NotInGroup, .. }), "{a:?}");
        // Nor does a stranger learn a relay's draws.
        let a = client.request(peers[0], Request::Draw { epoch }).await.unwrap();
        assert!(matches!(a, Response::Error { code: ErrorCode::NotInGroup, .. }), "{a:?}");
        for p in &peers {
            let a = client.ledger(*p, LedgerRequest::Account(thief)).await.unwrap();
            let LedgerResponse::Account(v) = a else { panic!("{a:?}") };
            assert!(v.balance == 0 && v.credits.is_empty(), "{v:?}");
        }
    });
    // A seventh relay joins: it enters the close group of most stripes, the relay that
    // left each group hands its shard over, and the newcomer learns the stripe's postage
    // from the sender, so the shards it was handed earn there in the next epoch.
    let joined = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        / EPOCH.parse::<u64>().unwrap();
    let seven = net.add();
    let held_paid = || {
        let s = net.relay(seven).json("/status").ok()?;
        let stamps = s["farming"]["stamps"].as_u64()?;
        (stamps >= 1 && s["shards"].as_u64()? >= stamps).then_some(stamps)
    };
    let stamps =
        kura_tests::relay::wait_for(std::time::Duration::from_secs(240), "handovers to relay 6", held_paid)
            .unwrap();
    kura_tests::relay::wait_for(std::time::Duration::from_secs(120), "relay 6's reward", || {
        (earnings(&net, seven)["epochs_rewarded"].as_u64().unwrap_or(0) >= 1).then_some(())
    })
    .unwrap();
    let e = earnings(&net, seven);
    let last = &e["last"];
    let (pages, shards, bytes, credits) = (
        last["pages"].as_u64().unwrap(),
        last["shards"].as_u64().unwrap(),
        last["bytes"].as_u64().unwrap(),
        last["credits"].as_u64().unwrap(),
    );
    let formula = prices.reward(bytes);
    assert!(shards >= 1 && credits <= formula && credits + pages >= formula, "{stamps} stamps: {e}");
    // The age rule: it met the others in the epoch it joined, so no audit group of that
    // epoch is placed in its view; its first reward is for a later one. It knows all seven.
    let rewarded = last["epoch"].as_u64().unwrap();
    assert!(
        rewarded > joined,
        "relay 6 joined in epoch {joined} and was first rewarded for epoch {rewarded}"
    );
    let met = net.relay(seven).json("/status").unwrap()["farming"]["relays_met"].as_u64().unwrap();
    assert_eq!(met, 7, "relay 6 met itself and the six others");
    eprintln!(
        "earning: relay 6 joined in epoch {joined}, was handed {stamps} paid shards and earned {credits} for {shards} \
         (epoch {rewarded})"
    );
    // Relay 6 is a replica of relay 0's rewards account now, and cannot verify the rewards
    // minted into it before it joined (no audit group of those epochs is placed in its
    // view). The operator of relay 0 spends from it: relay 6, asked to acknowledge, catches
    // up, takes those rewards on the word of the f + 1 members that list them, and follows
    // the account as the others do.
    let rewards0 = dir.join("r0").join("rewards.key");
    net.wallet(&rewards0, &["send", &alice_account, "1000"]).unwrap();
    let account0: [u8; 32] = kura_core::hex::decode_array(
        net.relay(0).json("/status").unwrap()["farming"]["rewards_account"].as_str().unwrap(),
    )
    .unwrap();
    let views = |rt: &tokio::runtime::Runtime| {
        rt.block_on(async {
            let addrs = kura_client::bootstrap::resolve(&net.addrs).await.unwrap();
            let client = Network::connect(&addrs, NetConfig::default()).await.unwrap();
            let mut out = Vec::new();
            for r in net.live() {
                let peer: libp2p_identity::PeerId = r.peer_id.parse().unwrap();
                match client.ledger(peer, LedgerRequest::Account(account0)).await {
                    Ok(LedgerResponse::Account(v)) => out.push(v),
                    other => panic!("{other:?}"),
                }
            }
            out
        })
    };
    let seen = kura_tests::relay::wait_for(
        std::time::Duration::from_secs(60),
        "relay 6 level on relay 0's rewards",
        || {
            let seen = views(&rt);
            (seen.iter().all(|v| v.next_seq == 2 && v.balance == seen[0].balance)).then_some(seen)
        },
    )
    .unwrap();
    let vouched = net.relay(seven).metric("kura_ledger_catch_ups_total{kind=\"vouched\"}").unwrap_or(0.0);
    assert!(vouched >= 1.0, "relay 6 took the earlier rewards on the group's word ({vouched}): {seen:?}");
    eprintln!(
        "earning: relay 0's operator sent 1,000 credits from its rewards; relay 6 vouched {vouched} time(s)"
    );
    net.get_exact(&cap, &file, "earning");
}

/// stripe (hex) → the relays holding a shard of it, from every live relay's inventory.
fn holders(net: &Net) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for r in net.live() {
        for stripe in r.json("/inventory").unwrap()["stripes"].as_object().unwrap().keys() {
            *out.entry(stripe.clone()).or_default() += 1;
        }
    }
    out
}

/// Paid storage ends with its batch: relays drop a stripe once its batch's life and the
/// grace after it (`--expiry-grace` epochs) are over, and no repair brings it back; a stripe
/// paid for longer stays whole and readable. Free storage ends too (`--free-epochs`), at the
/// same epoch on a relay that was handed the stripe later (it learns when the stripe's life
/// began from the other holders); a free file paid for since (`kura renew`) stays.
#[test]
fn relays_drop_stripes_when_their_batch_or_free_life_ends() {
    const EPOCH: &str = "4";
    const FREE_EPOCHS: u64 = 20;
    let epoch_now = || {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        kura_core::farming::epoch_of(now.as_secs(), 4)
    };
    let keys = kura_tests::Scratch::new("expiry-keys").unwrap();
    let (mint, mint_account) = new_key(keys.path(), "mint");
    let free_epochs = FREE_EPOCHS.to_string();
    let mut net = Net::start_with(
        "expiry",
        6,
        &[
            "--ledger-mint",
            &mint_account,
            "--epoch",
            EPOCH,
            "--expiry-grace",
            "1",
            "--repair-interval",
            "1",
            "--free-epochs",
            &free_epochs,
        ],
    );
    let dir = net.dir.path().to_owned();
    let (alice, alice_account) = new_key(keys.path(), "alice");
    net.wallet(&mint, &["send", &alice_account, "10000000"]).unwrap();
    let list = dir.join("files.jsonl").display().to_string();
    let put = |name: &str, seed: u64, epochs: Option<&str>| {
        let bytes = pseudo_random(2 * MIB + 1000, seed);
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let before: std::collections::BTreeSet<String> = holders(&net).into_keys().collect();
        let cap = match epochs {
            Some(e) => {
                let args = ["put", path.to_str().unwrap(), "--epoch", EPOCH];
                kura_paid(&net, &args, &alice.display().to_string(), e, &list).0
            }
            None => net.put(&path, &[]).unwrap(),
        };
        let mine: Vec<String> = holders(&net).into_keys().filter(|s| !before.contains(s)).collect();
        assert!(mine.len() >= 3, "{name}: its stripes ({mine:?})");
        (cap, bytes, mine)
    };
    let free_from = epoch_now();
    let free = put("free", 1, None);
    let kept = put("kept", 4, None);
    let free_to = epoch_now();
    // What each relay's room for free storage holds (the rest of its quota is for paid stores).
    let free_held = |net: &Net| -> Vec<u64> {
        net.live()
            .map(|r| r.json("/status").unwrap()["farming"]["free_bytes_held"].as_u64().unwrap())
            .collect()
    };
    let held = free_held(&net);
    assert!(held.iter().all(|b| *b > 0), "every relay holds free shards: {held:?}");
    let long = put("long", 2, Some("1000"));
    // Two epochs of life: dropped once the epoch after them ends (a grace of one).
    let short = put("short", 3, Some("2"));
    net.get_exact(&short.0, &short.1, "short-while-paid");

    kura_tests::relay::wait_for(
        std::time::Duration::from_secs(60),
        "the short batch's stripes to go",
        || {
            let h = holders(&net);
            short.2.iter().all(|s| !h.contains_key(s)).then_some(())
        },
    )
    .unwrap();
    let expired = metric_sum(&net, "kura_shards_expired_total");
    // At least one shard per relay per stripe; a copy a repair made just as the epoch turned
    // (before every relay had swept) is dropped again and counted again.
    assert!(expired as usize >= 6 * short.2.len(), "each relay dropped its shard of each stripe: {expired}");
    println!("{expired} shards dropped for {} stripes on six relays", short.2.len());
    // Repair rounds go on (every second here) and bring none of them back.
    let rounds = |net: &Net| -> Vec<u64> {
        net.live().map(|r| r.json("/repair").unwrap()["report"]["rounds"].as_u64().unwrap()).collect()
    };
    let from = rounds(&net);
    kura_tests::relay::wait_for(std::time::Duration::from_secs(60), "three more repair rounds", || {
        rounds(&net).iter().zip(&from).all(|(n, f)| *n >= f + 3).then_some(())
    })
    .unwrap();
    let h = holders(&net);
    assert!(short.2.iter().all(|s| !h.contains_key(s)), "a dropped stripe came back: {h:?}");
    assert!(epoch_now() < free_from + FREE_EPOCHS, "the free files' life is not over yet");
    for (name, file) in [("long", &long), ("free", &free), ("kept", &kept)] {
        assert!(file.2.iter().all(|s| h.get(s) == Some(&6)), "{name}: every stripe on six relays: {h:?}");
        net.get_exact(&file.0, &file.1, name);
    }
    let gone = dir.join("short.out");
    assert!(net.get(&short.0, &gone, &[]).is_err(), "an ended file no longer reads");

    // A free file paid for since: the relays take the renewal's stamps.
    let (_, stderr) =
        kura_paid(&net, &["renew", &kept.0, "--epoch", EPOCH], &alice.display().to_string(), "1000", &list);
    assert!(stderr.contains("by stamp alone"), "{stderr}");
    // A seventh relay joins and is handed shards of the free file's stripes.
    let seven = net.add();
    let handed = kura_tests::relay::wait_for(
        std::time::Duration::from_secs(60),
        "relay 6 to be handed shards of the free file",
        || {
            let inv = net.relay(seven).json("/inventory").ok()?;
            let n = free.2.iter().filter(|s| inv["stripes"].get(s.as_str()).is_some()).count();
            (n >= 1).then_some(n)
        },
    )
    .unwrap();
    assert!(epoch_now() < free_from + FREE_EPOCHS, "handed over before the free life is over");
    // The free file's life ends at the same epoch on every relay, the newcomer too (had it
    // counted the shards it was handed as new, it would keep them far longer).
    kura_tests::relay::wait_for(
        std::time::Duration::from_secs(4 * FREE_EPOCHS + 60),
        "the free file's stripes to go",
        || {
            let h = holders(&net);
            free.2.iter().all(|s| !h.contains_key(s)).then_some(())
        },
    )
    .unwrap();
    let ended = epoch_now();
    assert!(
        ended >= free_from + FREE_EPOCHS && ended <= free_to + FREE_EPOCHS + 1,
        "dropped in epoch {ended}: stored in {free_from}..={free_to}, a life of {FREE_EPOCHS}"
    );
    eprintln!(
        "expiry: relay 6 was handed {handed} free stripes; all dropped in epoch {ended} ({} after the store)",
        ended - free_from
    );
    let gone = dir.join("free.out");
    assert!(net.get(&free.0, &gone, &[]).is_err(), "a free file whose life is over no longer reads");
    // The sweeps count what the free room holds again: nothing (the other free file is paid).
    kura_tests::relay::wait_for(std::time::Duration::from_secs(30), "the free rooms to empty", || {
        free_held(&net).iter().all(|b| *b == 0).then_some(())
    })
    .unwrap();
    let h = holders(&net);
    for (name, file) in [("long", &long), ("kept", &kept)] {
        assert!(
            file.2.iter().all(|s| h.get(s).is_some_and(|n| *n >= 6)),
            "{name}: every stripe on six relays: {h:?}"
        );
        net.get_exact(&file.0, &file.1, name);
    }
}

/// Donating clients are paid by the relays whose stripes they hold copies of: after an
/// epoch each donor's account holds credits, no relay paid its tabs more than half of what
/// it earned, what the relays say they paid is what the donors received, no donor got more
/// than the formula gives for the bytes it held for the time it held them, and a donor
/// spends what it earned on an upload of its own.
#[test]
fn relays_pay_donating_clients_out_of_their_rewards() {
    use kura_tests::donor::Donor;
    const EPOCH: u64 = 6;
    const PRICE: u64 = 10_000_000;
    let keys = kura_tests::Scratch::new("tab-pay-keys").unwrap();
    let (mint, mint_account) = new_key(keys.path(), "mint");
    let epoch = EPOCH.to_string();
    let net = Net::start_with(
        "tab-pay",
        6,
        &[
            "--ledger-mint",
            &mint_account,
            "--epoch",
            &epoch,
            "--price",
            &PRICE.to_string(),
            "--tab-check",
            "1",
        ],
    );
    let dir = net.dir.path().to_owned();
    let prices = kura_core::farming::Prices { price: PRICE, ..DEFAULT_PRICES };
    let (alice, alice_account) = new_key(keys.path(), "alice");
    net.wallet(&mint, &["send", &alice_account, "100000000"]).unwrap();
    let file = pseudo_random(12 * MIB, 71);
    std::fs::write(dir.join("file"), &file).unwrap();
    let list = dir.join("files.jsonl").display().to_string();
    let put =
        ["put", &dir.join("file").display().to_string(), "--epoch", &epoch, "--price", &PRICE.to_string()];
    let (cap, _) = kura_paid(&net, &put, &alice.display().to_string(), "50", &list);

    let started = std::time::Instant::now();
    let donors: Vec<(Donor, std::path::PathBuf)> = (0..2)
        .map(|i| {
            let (key, account) = new_key(keys.path(), &format!("donor{i}"));
            let d = Donor::start_paid(&dir.join(format!("donor{i}")), &net.addrs[..1], Some(&account));
            (d, key)
        })
        .collect();
    // A liar names its account too: it announces to every relay the shard that relay holds of
    // every stripe, and answers a check with other bytes.
    let (liar_key, liar_account) = new_key(keys.path(), "liar");
    let _liar = lying_tab(&net, &liar_account);
    let paid = || metric_sum(&net, "kura_tab_credits_paid_total") as u64;
    kura_tests::relay::wait_for(std::time::Duration::from_secs(120), "every donor to be paid", || {
        donors.iter().all(|(_, key)| net.balance(key) > 0).then_some(())
    })
    .unwrap();
    // What each held: its shard files (each relay of the stripe's group pays its share).
    let held_bytes: Vec<u64> = donors
        .iter()
        .map(|(d, _)| {
            std::fs::read_dir(&d.dir)
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".shard"))
                .map(|e| e.metadata().unwrap().len())
                .sum()
        })
        .collect();
    // Between two epochs' payments, what the relays say they paid is what the donors hold.
    let (balances, paid_all) = kura_tests::relay::wait_for(
        std::time::Duration::from_secs(60),
        "a quiet moment between payments",
        || {
            let before = paid();
            let balances: Vec<u64> = donors.iter().map(|(_, key)| net.balance(key)).collect();
            let received: u64 = balances.iter().sum();
            (paid() == before && received == before).then_some((balances, before))
        },
    )
    .unwrap();
    let elapsed_ms = started.elapsed().as_millis();
    eprintln!("tab pay: donors hold {held_bytes:?} bytes, received {balances:?}; relays paid {paid_all}");
    // The liar was checked, caught and paid nothing, though the donors were paid meanwhile.
    let wrong = metric_sum(&net, "kura_tab_checks_total{kind=\"wrong\"}");
    assert!(wrong >= 1.0, "the relays caught the liar: {wrong} wrong checks");
    assert_eq!(net.balance(&liar_key), 0, "a tab caught lying is paid nothing");
    for (i, (b, held)) in balances.iter().zip(&held_bytes).enumerate() {
        // The formula for everything it held since it started, at half the relays' rate.
        let most = prices.reward_for_time(u128::from(*held) * elapsed_ms, u128::from(EPOCH) * 1000, 50);
        assert!(*b <= most, "donor {i}: received {b}, the formula gives at most {most}");
    }
    for r in net.live() {
        let (earned, to_tabs) = (
            r.metric("kura_credits_earned_total").unwrap_or(0.0),
            r.metric("kura_tab_credits_paid_total").unwrap_or(0.0),
        );
        assert!(to_tabs <= earned / 2.0, "a relay paid its tabs {to_tabs} of {earned} earned");
    }

    // A donor spends what it earned: stopped (nothing more comes once an epoch passes with no
    // check of it), it pays for an upload of its own and loses exactly what it cost.
    let small = pseudo_random(64 * 1024, 72);
    let terms =
        terms_for(small.len() as u64, kura_core::CHUNK_SIZE, kura_core::Params::new(4, 2).unwrap(), 0, 1);
    let cost = prices.cost(&terms);
    let (d0, key0) = donors.into_iter().next().unwrap();
    kura_tests::relay::wait_for(
        std::time::Duration::from_secs(180),
        "donor 0 to earn an upload's cost",
        || (net.balance(&key0) >= cost).then_some(()),
    )
    .unwrap();
    d0.kill();
    let mut last = (u64::MAX, std::time::Instant::now());
    let balance = kura_tests::relay::wait_for(
        std::time::Duration::from_secs(60),
        "the stopped donor's balance to stand still for two epochs",
        || {
            let b = net.balance(&key0);
            if b != last.0 {
                last = (b, std::time::Instant::now());
            }
            (last.1.elapsed() > std::time::Duration::from_secs(2 * EPOCH)).then_some(b)
        },
    )
    .unwrap();
    std::fs::write(dir.join("small"), &small).unwrap();
    let put =
        ["put", &dir.join("small").display().to_string(), "--epoch", &epoch, "--price", &PRICE.to_string()];
    let (small_cap, said) = kura_paid(&net, &put, &key0.display().to_string(), "1", &list);
    let said_cost: u64 = said
        .lines()
        .find_map(|l| l.strip_prefix("paid ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(said_cost == cost && cost <= balance, "cost {said_cost} (expected {cost}), earned {balance}");
    assert_eq!(net.balance(&key0), balance - cost, "the donor paid the upload from its earnings");
    net.get_exact(&small_cap, &small, "paid-by-a-donor");
    net.get_exact(&cap, &file, "alice");
    eprintln!("tab pay: donor 0 earned {balance} and paid {cost} for an upload");
}

/// A peer playing a donating tab that lies: on a thread of its own, it announces to every live
/// relay of `net`, every 500 ms, the index that relay holds of each stripe (as an honest tab
/// holding it would), with `account` as its payee, and answers every fetch with bytes that
/// are not the shard. Stops announcing when the returned handle is dropped.
fn lying_tab(net: &Net, account: &str) -> Stop {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let payee = Some(kura_client::wallet::parse_account(account).unwrap());
    let relays: Vec<(libp2p_identity::PeerId, Vec<(kura_core::StripeId, u8)>)> = net
        .live()
        .map(|r| {
            let inv = r.json("/inventory").unwrap();
            let held = inv["stripes"]
                .as_object()
                .unwrap()
                .iter()
                .filter_map(|(s, idx)| {
                    let id = kura_core::StripeId::from_bytes(kura_core::hex::decode_array(s)?);
                    Some((id, idx.as_array()?.first()?.as_u64()? as u8))
                })
                .collect();
            (r.peer_id.parse().unwrap(), held)
        })
        .collect();
    let boot = net.addrs[0].clone();
    let running = stop.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            use futures::StreamExt;
            let addrs = kura_client::bootstrap::resolve(&[boot]).await.unwrap();
            let tab = Network::connect(&addrs, NetConfig::default()).await.unwrap();
            let mut inbound = tab.serve().await.unwrap();
            let answering = tab.clone();
            tokio::spawn(async move {
                while let Some(kura_client::net::Inbound::Request { id, .. }) = inbound.next().await {
                    let lie = Response::Shards { header: vec![7; 200], shards: vec![vec![9; 4096].into()] };
                    let _ = answering.respond(id, lie).await;
                }
            });
            let via = relays[0].0;
            while !running.load(std::sync::atomic::Ordering::SeqCst) {
                for (relay, held) in &relays {
                    let req = Request::Announce { via: via.to_bytes(), shards: held.clone(), payee };
                    let _ = tab.request(*relay, req).await;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        });
    });
    Stop(stop)
}

/// Sets its flag when dropped.
struct Stop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A batch's owner stamps one slot for two stripes: the relay that sees both revokes the
/// batch and passes the evidence on, so every relay refuses the batch's stores, even those
/// that saw neither stamp, and still does after a restart (kill -9; the revocation was
/// journalled). Evidence that proves nothing — a second stamp signed by another key, or
/// the same stripe twice — is refused and revokes nothing; evidence told again is answered
/// without a second flood.
/// Six relays started with `args` (the test mint added), an owner the mint funded with
/// `funds`, and four 2+2 stripes of `len` pseudo-random bytes for it to stamp.
struct Stamping {
    net: Net,
    owner: SigningKey,
    peers: Vec<libp2p_identity::PeerId>,
    stripes: Vec<kura_core::Stripe>,
    _keys: kura_tests::Scratch,
}

fn stamping(tag: &str, args: &[&str], funds: &str, len: usize, seed: u64) -> Stamping {
    let keys = kura_tests::Scratch::new(&format!("{tag}-keys")).unwrap();
    let (mint, mint_account) = new_key(keys.path(), "mint");
    let net = Net::start_with(tag, 6, &[&["--ledger-mint", mint_account.as_str()][..], args].concat());
    let owner = kura_core::testdata::account_key(6);
    net.wallet(&mint, &["send", &kura_core::hex::encode(&owner.key()), funds]).unwrap();
    let peers = net.live().map(|r| r.peer_id.parse().unwrap()).collect();
    let opts =
        kura_core::EncodeOptions { params: kura_core::Params::new(2, 2).unwrap(), ..Default::default() };
    let stripes = (0..4)
        .map(|n| kura_core::encoder::encode_single_chunk(&opts, &pseudo_random(len, seed + n)).unwrap().0)
        .collect();
    Stamping { net, owner, peers, stripes, _keys: keys }
}

/// Batches relay `i` revoked, as `how` ("found" or "told").
fn revoked(net: &Net, i: usize, how: &str) -> f64 {
    net.relay(i).metric(&format!("kura_batches_revoked_total{{kind=\"{how}\"}}")).unwrap_or(0.0)
}

/// A stripe's shard bytes, as a stamp counts them.
fn stripe_bytes(s: &kura_core::Stripe) -> u64 {
    (s.shard_count() * s.shard(0).len()) as u64
}

/// Shard 0 of `s`, stored paid: stamped by `owner` in `slot` of the batch `burn` bought.
fn paid_store(
    owner: &SigningKey,
    burn: &kura_core::ledger::Certificate,
    s: &kura_core::Stripe,
    slot: u32,
) -> Request {
    let stamp =
        kura_core::farming::Stamp::sign(owner, &burn.signed.transfer.id(), s.id(), slot, stripe_bytes(s));
    Request::PaidStore {
        postage: Box::new(kura_core::farming::Postage { stamp, burn: burn.clone() }),
        header: s.header_bytes().to_vec(),
        shard: s.shard(0).to_vec(),
    }
}

#[test]
fn a_slot_stamped_twice_revokes_the_batch_at_every_relay() {
    use kura_core::farming::{Postage, Stamp};
    use kura_core::wire::Request::Revoke;
    let Stamping { mut net, owner, peers, stripes, _keys } = stamping("revoke", &[], "1000000", 4000, 300);
    let bytes = stripe_bytes;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let params = kura_core::Params::new(2, 2).unwrap();
    let terms = terms_for(4000, kura_core::CHUNK_SIZE, params, now / DEFAULT_EPOCH_SECS, 24);
    let terms = kura_core::farming::BatchTerms { slots: 8, ..terms };
    let stamp = |batch: &kura_core::ledger::TransferId, s: &kura_core::Stripe, slot: u32| {
        Stamp::sign(&owner, batch, s.id(), slot, bytes(s))
    };
    let paid_store = |burn: &kura_core::ledger::Certificate, s: &kura_core::Stripe, slot: u32| {
        paid_store(&owner, burn, s, slot)
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut sly = None;
    let (cheat, honest) = rt.block_on(async {
        let addrs = kura_client::bootstrap::resolve(&net.addrs).await.unwrap();
        let client = Network::connect(&addrs, NetConfig::default()).await.unwrap();
        let mut burns = Vec::new();
        for _ in 0..3 {
            let cost = DEFAULT_PRICES.cost(&terms);
            let burn =
                kura_client::wallet::send(&client, &owner, kura_core::ledger::BURN, cost, terms.memo());
            burns.push(burn.await.unwrap());
        }
        let (cheat, honest) = (burns[0].clone(), burns[1].clone());
        sly = Some(burns[2].clone());
        // Slot 0 of the first batch for stripe 0, then for stripe 1, at relay 0.
        let a = client.request(peers[0], paid_store(&cheat, &stripes[0], 0)).await.unwrap();
        assert_eq!(a, Response::Stored { index: 0 });
        let a = client.request(peers[0], paid_store(&cheat, &stripes[1], 0)).await.unwrap();
        let Response::Error { code: ErrorCode::Unpaid, detail } = &a else { panic!("{a:?}") };
        assert!(detail.contains("holds another stripe"), "{detail}");
        // Evidence that proves nothing, about the honest batch, told to relay 1.
        let honest_first =
            Postage { stamp: stamp(&honest.signed.transfer.id(), &stripes[0], 0), burn: honest.clone() };
        let other = SigningKey::from_bytes(&[56; 32]);
        for second in [
            Stamp::sign(&other, &honest.signed.transfer.id(), stripes[1].id(), 0, bytes(&stripes[1])),
            stamp(&honest.signed.transfer.id(), &stripes[0], 0),
        ] {
            let req = Revoke { postage: Box::new(honest_first.clone()), second: Box::new(second) };
            let a = client.request(peers[1], req).await.unwrap();
            let Response::Error { code: ErrorCode::Unpaid, detail } = &a else { panic!("{a:?}") };
            assert!(detail.contains("not evidence"), "{detail}");
        }
        (cheat, honest)
    });
    kura_tests::relay::wait_for(
        std::time::Duration::from_secs(30),
        "every relay to learn of the revocation",
        || (1..6).all(|i| revoked(&net, i, "told") == 1.0).then_some(()),
    )
    .unwrap();
    assert_eq!((revoked(&net, 0, "found"), revoked(&net, 0, "told")), (1.0, 0.0));
    assert!((1..6).all(|i| revoked(&net, i, "found") == 0.0));
    // Relay 3 saw neither stamp: it refuses another slot of the batch, also after kill -9.
    let refuses = |net: &Net, i: usize| {
        let peer: libp2p_identity::PeerId = net.relay(i).peer_id.parse().unwrap();
        rt.block_on(async {
            let addrs = kura_client::bootstrap::resolve(&net.addrs).await.unwrap();
            let client = Network::connect(&addrs, NetConfig::default()).await.unwrap();
            let a = client.request(peer, paid_store(&cheat, &stripes[2], 3)).await.unwrap();
            let honest_answer = client.request(peer, paid_store(&honest, &stripes[3], 0)).await.unwrap();
            (a, honest_answer)
        })
    };
    let (a, h) = refuses(&net, 3);
    assert!(
        matches!(&a, Response::Error { code: ErrorCode::Unpaid, detail } if detail.contains("revoked")),
        "{a:?}"
    );
    assert_eq!(h, Response::Stored { index: 0 }, "the honest batch still pays");
    net.kill9(3);
    net.restart(3);
    let (a, _) = refuses(&net, 3);
    assert!(
        matches!(&a, Response::Error { code: ErrorCode::Unpaid, detail } if detail.contains("revoked")),
        "{a:?}"
    );
    // The evidence told again: accepted, and passed on no further.
    let stamped = Postage { stamp: stamp(&cheat.signed.transfer.id(), &stripes[0], 0), burn: cheat.clone() };
    rt.block_on(async {
        let addrs = kura_client::bootstrap::resolve(&net.addrs).await.unwrap();
        let client = Network::connect(&addrs, NetConfig::default()).await.unwrap();
        let req = Revoke {
            postage: Box::new(stamped.clone()),
            second: Box::new(stamp(&cheat.signed.transfer.id(), &stripes[1], 0)),
        };
        assert_eq!(client.request(peers[1], req).await.unwrap(), Response::Accepted);
    });
    assert_eq!(revoked(&net, 1, "told"), 1.0);
    // A renewal that stamps a used slot of another batch is found the same way, by relay 4:
    // its slot 0 holds stripe 2, and a `Restamp` names it for stripe 3 (which relay 4 holds,
    // paid by the honest batch).
    let sly = sly.unwrap();
    rt.block_on(async {
        let addrs = kura_client::bootstrap::resolve(&net.addrs).await.unwrap();
        let client = Network::connect(&addrs, NetConfig::default()).await.unwrap();
        let four = peers[4];
        assert_eq!(client.request(four, paid_store(&sly, &stripes[2], 0)).await.unwrap(), Response::Stored { index: 0 });
        assert_eq!(client.request(four, paid_store(&honest, &stripes[3], 1)).await.unwrap(), Response::Stored { index: 0 });
        let again = Postage { stamp: stamp(&sly.signed.transfer.id(), &stripes[3], 0), burn: sly.clone() };
        let a = client.request(four, Request::Restamp { postage: Box::new(again) }).await.unwrap();
        assert!(matches!(&a, Response::Error { code: ErrorCode::Unpaid, detail } if detail.contains("another stripe")), "{a:?}");
    });
    kura_tests::relay::wait_for(
        std::time::Duration::from_secs(30),
        "every relay to learn of the renewal's double stamp",
        || {
            // Relay 3's counters started again with it (its first revocation came back from
            // its journal).
            ([0, 1, 2, 5].iter().all(|&i| revoked(&net, i, "told") + revoked(&net, i, "found") == 2.0)
                && revoked(&net, 3, "told") == 1.0
                && (revoked(&net, 4, "found"), revoked(&net, 4, "told")) == (1.0, 1.0))
                .then_some(())
        },
    )
    .unwrap();
}

/// A relay down while evidence of a double stamp spread still takes stores of the revoked
/// batch when it is back (nobody told it). Its next epoch's claim names the batch; its
/// auditors, who know, refuse with `Revoked` naming it and tell it the evidence; it claims
/// the page again without the batch and is rewarded for the rest, instead of forfeiting the
/// epoch for a batch it could not know of.
#[test]
fn a_relay_that_missed_a_revocation_is_told_and_still_earns_for_the_rest() {
    use kura_core::farming::{BatchTerms, Prices};
    const EPOCH: u64 = 10;
    const PRICE: u64 = 10_000_000;
    let prices = Prices { price: PRICE, ..DEFAULT_PRICES };
    let (epoch, price) = (EPOCH.to_string(), PRICE.to_string());
    let Stamping { mut net, owner, peers, stripes, _keys } =
        stamping("missed", &["--epoch", &epoch, "--price", &price], "20000000", 40_000, 500);
    let bytes = stripe_bytes;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let slot_bytes = stripes.iter().map(bytes).max().unwrap();
    let terms = BatchTerms { slots: 8, slot_bytes, first_epoch: now / EPOCH, epochs: 200 };
    let paid_store = |burn: &kura_core::ledger::Certificate, s: &kura_core::Stripe, slot: u32| {
        paid_store(&owner, burn, s, slot)
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let connect = |net: &Net| {
        let addrs = net.addrs.clone();
        async move {
            let addrs = kura_client::bootstrap::resolve(&addrs).await.unwrap();
            Network::connect(&addrs, NetConfig::default()).await.unwrap()
        }
    };
    let (cheat, honest) = rt.block_on(async {
        let client = connect(&net).await;
        let mut burns = Vec::new();
        for _ in 0..2 {
            let burn = kura_client::wallet::send(
                &client,
                &owner,
                kura_core::ledger::BURN,
                prices.cost(&terms),
                terms.memo(),
            );
            burns.push(burn.await.unwrap());
        }
        (burns[0].clone(), burns[1].clone())
    });
    // Relay 5 is down while the owner stamps slot 0 of the cheat's batch twice at relay 0:
    // the evidence reaches the four others.
    net.kill9(5);
    rt.block_on(async {
        let client = connect(&net).await;
        assert_eq!(
            client.request(peers[0], paid_store(&cheat, &stripes[0], 0)).await.unwrap(),
            Response::Stored { index: 0 }
        );
        let a = client.request(peers[0], paid_store(&cheat, &stripes[1], 0)).await.unwrap();
        assert!(matches!(&a, Response::Error { code: ErrorCode::Unpaid, .. }), "{a:?}");
    });
    kura_tests::relay::wait_for(
        std::time::Duration::from_secs(30),
        "relays 1 to 4 to learn of the revocation",
        || (1..5).all(|i| revoked(&net, i, "told") == 1.0).then_some(()),
    )
    .unwrap();
    // Every relay that passed the evidence on is done trying relay 5.
    kura_tests::relay::wait_for(std::time::Duration::from_secs(60), "the flood to end", || {
        (0..5).all(|i| net.relay(i).stderr().contains("evidence of a double stamp passed on")).then_some(())
    })
    .unwrap();
    // Back, relay 5 knows nothing of it: it takes a slot of the revoked batch, and one of
    // the honest batch.
    net.restart(5);
    rt.block_on(async {
        let client = connect(&net).await;
        assert_eq!(
            client.request(peers[5], paid_store(&cheat, &stripes[2], 3)).await.unwrap(),
            Response::Stored { index: 0 }
        );
        assert_eq!(
            client.request(peers[5], paid_store(&honest, &stripes[3], 0)).await.unwrap(),
            Response::Stored { index: 0 }
        );
    });
    assert_eq!(revoked(&net, 5, "told"), 0.0, "relay 5 missed the evidence");
    // Its next claims: the auditors name the batch, it claims again without it and is
    // rewarded for the honest shard; it has been told the evidence.
    let count = |what: &str| net.relay(5).metric(what).unwrap_or(0.0);
    kura_tests::relay::wait_for(
        std::time::Duration::from_secs(120),
        "relay 5 to be rewarded for an epoch",
        || (count("kura_epochs_rewarded_total") >= 1.0).then_some(()),
    )
    .unwrap();
    let e = earnings(&net, 5);
    eprintln!("missed revocation: relay 5 {e}");
    assert_eq!(
        count("kura_epochs_forfeited_total"),
        0.0,
        "no epoch forfeited for a batch it could not know of: {e}"
    );
    assert!(count("kura_claims_resent_total") >= 1.0, "{e}");
    assert_eq!(revoked(&net, 5, "told"), 1.0, "its auditors told it the evidence");
    let last = &e["last"];
    assert_eq!(last["shards"].as_u64(), Some(1), "the honest shard only: {e}");
    let (credits, shard) = (last["credits"].as_u64().unwrap(), stripes[3].shard(0).len() as u64);
    assert_eq!(last["bytes"].as_u64(), Some(shard), "{e}");
    assert!(
        credits > 0 && credits <= prices.reward(shard) && credits + 1 >= prices.reward(shard),
        "the formula for the one honest shard: {e}"
    );
    let refused: f64 =
        (0..5).map(|i| net.relay(i).metric("kura_epoch_audits_total{kind=\"revoked\"}").unwrap_or(0.0)).sum();
    assert!(refused >= 3.0, "auditors refused the claim naming the batch: {refused}");
}
