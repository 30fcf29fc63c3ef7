//! Groups wider than one Kademlia lookup (20 relays), on forty real `kura-relay` processes:
//! - an account's group (32 replicas, quorum 22): a wallet must find the whole group, or its
//!   certificates carry too few acknowledgements for the replicas of the recipient; and the
//!   recipient's replicas, told to, find the sender's group by the same lookups;
//! - a replica that was down catches up by certificates it fetches, each checked against
//!   its sender's group looked up as for one sent to it (told to);
//! - a batch's burn certificate, checked by every relay that takes a paid shard against
//!   its owner's group, which it looks up first (told to);
//! - a stripe of 20 shards, whose shards go to its 20 nearest or the 4 after them: with
//!   relays among the nearest that refuse every shard, a put must know the 4 after, and a
//!   check must ask them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_client::net::{NetConfig, Network};
use kura_client::wallet;
use kura_core::ledger::REPLICAS;
use kura_core::ledger::{LedgerRequest, LedgerResponse, Signer, SigningKey};
use kura_core::testdata::XorShift;
use kura_sim::kad::{lookup_group, Tables};
use kura_sim::population::{random_key, Population};
use kura_tests::net::Net;

const RELAYS: usize = 40;
/// Accounts whose groups the wallet finds, beside alice's.
const GROUPS: usize = 7;

#[test]
fn transfers_are_certified_where_a_group_is_wider_than_a_lookup() {
    let mint = kura_core::testdata::account_key(10_000);
    let mint_hex: String = mint.key().iter().map(|b| format!("{b:02x}")).collect();
    // Replicas look up every certificate sender's group (at this size their views hold every
    // relay, so only `always` makes them; at scale a view is thin away from its owner).
    let mut net =
        Net::start_with("wide40", RELAYS, &["--ledger-mint", &mint_hex, "--group-lookups", "always"]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (alice, bob): (SigningKey, SigningKey) =
        (kura_core::testdata::account_key(1), kura_core::testdata::account_key(2));
    rt.block_on(async {
        let addrs = kura_client::bootstrap::resolve(&net.addrs).await.unwrap();
        let client = Network::connect(&addrs, NetConfig::default()).await.unwrap();
        // The group every relay computes from its view: the 32 nearest of all forty. The
        // wallet finds it exactly, for alice and for other accounts; its lookups cost what
        // the simulator's do (`kura_sim::kad::lookup_group`, the model of groups.md).
        let all: Vec<libp2p_identity::PeerId> = net.live().map(|r| r.peer_id.parse().unwrap()).collect();
        let before = client.lookup_stats();
        let accounts: Vec<_> = (0..GROUPS).map(|i| kura_core::testdata::account_key(100 + i).key()).collect();
        for a in accounts.iter().chain([&alice.key()]) {
            let (group, members) = wallet::group(&client, a).await.unwrap();
            let (_, truth) = kura_p2p::ledger::group_of(a, all.clone()).unwrap();
            assert_eq!(members, truth, "the wallet finds the group the replicas are");
            assert_eq!(group.quorum, 22);
        }
        let after = client.lookup_stats();
        let (lookups, requests) =
            ((after.0 - before.0) as f64 / (GROUPS + 1) as f64, (after.1 - before.1) as f64 / (GROUPS + 1) as f64);
        let mut rng = XorShift(0x5eed_0004);
        let p = Population::random(RELAYS, &mut rng);
        let t = Tables::build(&p, &mut rng);
        let runs = 400;
        let sims: Vec<_> = (0..runs)
            .map(|_| lookup_group(&p, &t, rng.below(RELAYS), &random_key(&mut rng), REPLICAS).0)
            .collect();
        let sim_lookups = sims.iter().map(|l| l.lookups as f64).sum::<f64>() / runs as f64;
        let sim_requests = sims.iter().map(|l| l.messages as f64).sum::<f64>() / runs as f64;
        println!(
            "{RELAYS} relays: finding a group of {REPLICAS} took {lookups:.1} lookups of {requests:.1} requests \
             (mean of {}); the simulator: {sim_lookups:.1} lookups of {sim_requests:.1} requests ({runs} groups)",
            GROUPS + 1
        );
        let off = (requests - sim_requests).abs() / sim_requests;
        assert!(off <= 1.0 / 3.0, "real {requests:.1} vs simulated {sim_requests:.1} requests: {:.0}% apart", off * 100.0);
        wallet::send(&client, &mint, alice.key(), 100, b"fund".to_vec()).await.unwrap();
        wallet::send(&client, &alice, bob.key(), 30, b"pay".to_vec()).await.unwrap();
        let a = wallet::view(&client, &alice.key()).await.unwrap();
        let b = wallet::view(&client, &bob.key()).await.unwrap();
        assert_eq!(a.balance + a.credits.iter().map(|c| c.1).sum::<u64>(), 70);
        assert_eq!(b.credits.iter().map(|c| c.1).sum::<u64>(), 30);
    });
    // The replicas that applied those certificates looked their senders' groups up first.
    let looked_up: f64 =
        net.live().map(|r| r.metric("kura_group_lookups_total{kind=\"certificate\"}").unwrap()).sum();
    println!("certificates whose sender's group a replica looked up: {looked_up}");
    assert!(looked_up >= 2.0 * 22.0, "a quorum of each recipient's replicas looked up: {looked_up}");

    // A replica of carol's that was down while she was funded and paid bob catches itself
    // up when handed her payment: it fetches the certificates it lacks — her debit and the
    // mint's credit it spends — and checks each against its sender's group, looked up as
    // for a certificate sent to it (at scale the mint's group is far from the replica).
    let carol = kura_core::testdata::account_key(3);
    let addrs = rt.block_on(kura_client::bootstrap::resolve(&net.addrs)).unwrap();
    let client = rt.block_on(Network::connect(&addrs, NetConfig::default())).unwrap();
    let (_, members) = rt.block_on(wallet::group(&client, &carol.key())).unwrap();
    let victim =
        (0..RELAYS).find(|&i| members.iter().any(|p| p.to_string() == net.relay(i).peer_id)).unwrap();
    let victim_peer = members.iter().find(|p| p.to_string() == net.relay(victim).peer_id).copied().unwrap();
    net.kill9(victim);
    let paid = rt.block_on(async {
        wallet::send(&client, &mint, carol.key(), 50, b"fund".to_vec()).await.unwrap();
        wallet::send(&client, &carol, bob.key(), 10, b"pay".to_vec()).await
    });
    // A failure prints how the relays' catch-ups ended (a new account's first transfer
    // needs its replicas caught up, with one of them just killed).
    let paid =
        paid.unwrap_or_else(|e| panic!("carol's payment: {e:?}; catch-ups: {:?}", catch_ups(&net, None)));
    net.restart(victim);
    let caught_up = rt.block_on(async {
        let agreed = wallet::view(&client, &carol.key()).await.unwrap();
        let addrs = kura_client::bootstrap::resolve(&[net.addrs[victim].clone()]).await.unwrap();
        let direct = Network::connect(&addrs, NetConfig::default()).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let view = match direct.ledger(victim_peer, LedgerRequest::Account(carol.key())).await {
                Ok(LedgerResponse::Account(v)) => Some(v),
                _ => None,
            };
            if view.is_some_and(|v| v.agrees(&agreed)) {
                break true;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            let _ = direct.ledger(victim_peer, LedgerRequest::Apply(Box::new(paid.clone()))).await;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    });
    let r = net.relay(victim);
    let fetched = r.metric("kura_group_lookups_total{kind=\"catch-up\"}").unwrap_or(0.0);
    let outcomes = catch_ups(&net, Some(victim));
    println!("a restarted replica of carol's caught up: {caught_up}; fetched certificates whose sender's group it looked up: {fetched}; catch-ups: {outcomes:?}");
    assert!(caught_up, "the restarted replica did not catch up: {outcomes:?}");
    assert!(fetched >= 2.0, "the debit's and the mint credit's groups were looked up: {fetched}");

    // A paid upload: each relay that takes a paid shard checks the batch's burn certificate
    // against its owner's group, looked up first (once per batch and relay).
    let (payer, payer_account) = kura_tests::net::new_key(net.dir.path(), "payer");
    let payer_key: [u8; 32] = kura_core::hex::decode_array(&payer_account).unwrap();
    rt.block_on(async {
        let addrs = kura_client::bootstrap::resolve(&net.addrs).await.unwrap();
        let client = Network::connect(&addrs, NetConfig::default()).await.unwrap();
        wallet::send(&client, &mint, payer_key, 100_000, b"fund".to_vec()).await.unwrap();
    });
    let sum = |net: &Net, series: &str| -> f64 { net.live().map(|r| r.metric(series).unwrap()).sum() };
    let burns = "kura_group_lookups_total{kind=\"burn\"}";
    assert_eq!(sum(&net, burns), 0.0, "no batch yet");
    let paid: Vec<u8> = (0..3 * kura_core::CHUNK_SIZE).map(|i| (i * 17 % 253) as u8).collect();
    let paid_file = net.dir.path().join("paid");
    std::fs::write(&paid_file, &paid).unwrap();
    let paid_cap = net.put(&paid_file, &["--key", payer.to_str().unwrap(), "--epochs", "24"]).unwrap();
    net.get_exact(&paid_cap, &paid, "paid");
    let takers = net.live().filter(|r| r.metric("kura_stores_paid_total").unwrap() > 0.0).count();
    let burn_lookups = sum(&net, burns);
    println!("a paid put: {takers} relays took paid shards, {burn_lookups} owner groups looked up");
    assert!(takers > 0 && burn_lookups >= takers as f64, "{takers} takers, {burn_lookups} lookups");

    // Four relays more that refuse every shard (their quota holds none), so that nearly
    // every stripe has some among its 20 nearest: 10+10 stripes are stored all the same.
    let full: Vec<usize> = (0..4).map(|_| net.add_with(&["--quota", "1K"])).collect();
    let ids: Vec<String> = full.iter().map(|&i| net.relay(i).peer_id.clone()).collect();
    kura_tests::relay::wait_for(std::time::Duration::from_secs(60), "the full relays to be known", || {
        let tables: Vec<serde_json::Value> =
            net.live().map(|r| r.json("/status")).collect::<Result<_, _>>().ok()?;
        let known = |id: &String| {
            tables.iter().any(|t| t["routing_table"].as_array().is_some_and(|a| a.iter().any(|v| v == id)))
        };
        ids.iter().all(known).then_some(())
    })
    .unwrap();
    let data: Vec<u8> = (0..6 * kura_core::CHUNK_SIZE).map(|i| (i * 31 % 251) as u8).collect();
    let file = net.dir.path().join("six-chunks");
    std::fs::write(&file, &data).unwrap();
    let cap = net.put(&file, &["--k", "10", "--m", "10"]).unwrap();
    net.get_exact(&cap, &data, "wide");
    // Stores they refused, whatever the words (a relay whose quota holds no shard refuses
    // the free share of it too).
    let refused: f64 = full
        .iter()
        .map(|&i| {
            let (_, m) = net.relay(i).get("/metrics").unwrap();
            m.lines()
                .filter(|l| l.starts_with("kura_request_errors_total{kind=\"store\""))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        })
        .sum();
    println!("shards refused by the full relays: {refused}");
    assert!(refused >= 1.0, "the full relays were asked for shards and refused them");
    // So some stripe has shards past its 20 nearest; a check proves all twenty of each
    // (it asks past one lookup's answer; asking the twenty alone, that stripe is not whole).
    let mut args = vec!["check".to_owned(), cap.clone()];
    args.extend(net.bootstrap_args());
    let out = kura_tests::net::kura(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{text}");
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let stripes: Vec<&str> = text.lines().filter(|l| l.starts_with("stripe ")).collect();
    assert!(!stripes.is_empty() && stripes.iter().all(|l| l.contains(": 20 of 20 shards proven")), "{text}");
}

/// How catch-ups ended (`kura_ledger_catch_ups_total` by outcome), at one relay or summed over
/// the live ones.
fn catch_ups(net: &Net, relay: Option<usize>) -> Vec<String> {
    let kinds = [
        "done",
        "level",
        "adopted",
        "vouched",
        "credits-short",
        "refused",
        "unfetched",
        "unadopted",
        "no-group",
        "no-agreement",
        "too-few-answers",
    ];
    kinds
        .iter()
        .map(|k| {
            let series = format!("kura_ledger_catch_ups_total{{kind=\"{k}\"}}");
            let n: f64 = match relay {
                Some(i) => net.relay(i).metric(&series).unwrap_or(0.0),
                None => net.live().map(|r| r.metric(&series).unwrap_or(0.0)).sum(),
            };
            format!("{k} {n}")
        })
        .collect()
}
