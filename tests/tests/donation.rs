//! Donating clients end to end: real relay processes on 127.0.0.1 and real `kura donate`
//! processes holding shards for others through circuit reservations, read by `kura get`
//! after five of six relays are gone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_tests::donor::Donor;
use kura_tests::net::Net;
use kura_tests::relay::wait_for;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The bytes the donors served, once their figures have settled: they print them every half
/// second, so a get's are all in once the sum has stood still for over two reports.
fn served_bytes(donors: &[Donor]) -> u64 {
    let mut last = (u64::MAX, std::time::Instant::now());
    wait_for(Duration::from_secs(20), "the donors' figures to settle", || {
        let sum: u64 = donors.iter().map(|d| d.num("served_bytes")).sum();
        if sum != last.0 {
            last = (sum, std::time::Instant::now());
        }
        (last.1.elapsed() > Duration::from_millis(1200)).then_some(sum)
    })
    .unwrap()
}

/// stripe (hex) → the indices relay `r` holds, from its inventory.
fn inventory(net: &Net, r: usize) -> BTreeMap<String, Vec<u8>> {
    let v = net.relay(r).json("/inventory").unwrap();
    v["stripes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(s, idx)| {
            (s.clone(), idx.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u8).collect())
        })
        .collect()
}

/// Six relays, a file of k = 4, m = 2 put on them, four donating clients reserved on relay
/// 5. Relays offer each donor the shards the tab policy gives it: the four data shards of
/// every stripe, each on a different donor. A donor restarted on its directory keeps its
/// shards and reserves and announces again. Four relays are killed, relay 5 among them: the
/// donors reserve on relay 0 instead and announce there. A donor's shard is damaged on disk: the donor drops it unserved and the read succeeds from the others. A
/// fifth relay is killed: `kura get` reads the file byte-exact from relay 0's shards and the
/// donors' copies through relay 0's circuits.
/// A donor stopped is no longer named by relay 0 once its announcements expire.
#[test]
fn donors_serve_a_file_when_five_of_six_relays_are_gone() {
    let mut net = Net::start_with("donors", 6, &["--tab-ttl", "6"]);
    let file = net.dir.path().join("file");
    let want = kura_tests::pseudo_random(12 * 1024 * 1024 + 777, 18);
    std::fs::write(&file, &want).unwrap();
    let cap = net.put(&file, &["--k", "4", "--m", "2"]).unwrap();
    let stripes: BTreeSet<String> = inventory(&net, 0).keys().cloned().collect();
    assert!(stripes.len() >= 2, "the file spans several stripes: {stripes:?}");

    // Reserved on relay 5 first; when it goes, on relay 0.
    let boot = vec![net.addrs[5].clone(), net.addrs[0].clone()];
    let mut donors: Vec<Donor> =
        (0..4).map(|i| Donor::start(&net.dir.path().join(format!("donor{i}")), &boot)).collect();
    // Until every stripe's four data shards are held, one by each donor.
    let held = wait_for(Duration::from_secs(120), "the donors to hold every stripe's data shards", || {
        let each: Vec<BTreeMap<String, u8>> = donors.iter().map(Donor::held).collect();
        let all = stripes.iter().all(|s| {
            let idx: BTreeSet<u8> = each.iter().filter_map(|h| h.get(s).copied()).collect();
            idx == BTreeSet::from([0, 1, 2, 3])
        });
        all.then_some(each)
    })
    .unwrap();
    for (i, h) in held.iter().enumerate() {
        assert_eq!(h.len(), stripes.len(), "donor {i} holds one shard of each stripe: {h:?}");
    }
    let tabs = net.relay(5).json("/status").unwrap()["tabs"].clone();
    eprintln!("relay 5 tabs: {tabs}");
    for d in &donors {
        eprintln!("donor via {} refused {}", d.stat("via"), d.stat("refused"));
    }
    assert_eq!(tabs["reserved"].as_u64(), Some(4), "four reservations on relay 5: {tabs}");
    let offered: f64 = net.live().map(|r| r.metric("kura_tab_offers_total").unwrap_or(0.0)).sum();
    assert_eq!(offered as usize, 4 * stripes.len(), "each shard offered once");

    // A donor restarted on its directory keeps what it held and is reachable again.
    let d0 = donors.remove(0);
    let (dir0, peer0) = (d0.dir.clone(), d0.stat("peer"));
    d0.kill();
    donors.insert(0, Donor::start(&dir0, &boot));
    wait_for(Duration::from_secs(60), "the restarted donor to reserve again", || {
        (donors[0].num("shards") == stripes.len() as u64 && donors[0].stat("via").is_string()).then_some(())
    })
    .unwrap();
    assert_eq!(donors[0].stat("peer"), peer0, "a restarted donor keeps its peer id");
    // It is needed for a stripe where relay 0 does not hold its index.
    let relay0 = inventory(&net, 0);
    let relay1 = inventory(&net, 1);
    let needed = held[0].iter().any(|(s, i)| !relay0[s].contains(i));

    // Four relays killed, relays 0 and 1 left. A donor's stored shard is damaged on disk: a
    // stripe where relay 0 holds a parity shard (so it stays readable from relay 0 and the
    // other donors later) and the damaged donor's index is held by neither relay (so the
    // reader asks for it). The donor checks it before serving, drops it and never serves it;
    // the read still succeeds from the others.
    let announced: Vec<u64> = donors.iter().map(|d| d.num("announced")).collect();
    for r in 2..6 {
        net.kill9(r);
    }
    // Their relay gone, the donors reserve on relay 0 and announce everything there again.
    let relay0_id = serde_json::Value::from(net.relay(0).peer_id.clone());
    wait_for(Duration::from_secs(60), "every donor to move to relay 0 and announce there", || {
        donors
            .iter()
            .zip(&announced)
            .all(|(d, before)| d.stat("via") == relay0_id && d.num("announced") > *before)
            .then_some(())
    })
    .unwrap();
    assert_eq!(net.relay(0).json("/status").unwrap()["tabs"]["reserved"].as_u64(), Some(4));
    let (victim, stripe, index) = (1..4)
        .flat_map(|d| held[d].iter().map(move |(s, i)| (d, s.clone(), *i)))
        .find(|(_, s, i)| relay0[s].iter().all(|j| *j >= 4) && !relay1[s].contains(i))
        .expect("a stripe with a parity shard on relay 0 (one in three; the file has many)");
    let path = donors[victim].dir.join(format!("{stripe}.{index}.shard"));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x5a;
    std::fs::write(&path, &bytes).unwrap();
    net.get_exact(&cap, &want, "damaged-donor");
    wait_for(Duration::from_secs(10), "the damaged donor to count the damage", || {
        (donors[victim].num("corrupt") == 1 && donors[victim].num("shards") == stripes.len() as u64 - 1)
            .then_some(())
    })
    .unwrap();
    assert!(!path.exists(), "the damaged shard is dropped from disk");

    net.kill9(1);
    let served_before: Vec<u64> = donors.iter().map(|d| d.num("served_requests")).collect();
    let bytes_before = served_bytes(&donors);
    let relayed_before = net.relay(0).metric("kura_tab_served_bytes_total").unwrap();
    let checked_before = net.relay(0).metric("kura_tab_check_bytes_total").unwrap_or(0.0);
    net.get_exact(&cap, &want, "from-donors");
    let served: Vec<u64> = donors.iter().map(|d| d.num("served_requests")).collect();
    eprintln!("served before {served_before:?}, after {served:?}");
    // A get runs in its own process; the donors' lines may trail by half a second.
    wait_for(Duration::from_secs(10), "the donors to count what they served", || {
        let now: Vec<u64> = donors.iter().map(|d| d.num("served_requests")).collect();
        let total: u64 = now.iter().zip(&served_before).map(|(a, b)| a - b).sum();
        (total >= stripes.len() as u64 * 2 && (!needed || now[0] > served_before[0])).then_some(())
    })
    .unwrap();
    assert!(net.relay(0).metric("kura_circuits_total").unwrap() >= 1.0);
    // The relays spot-checked the donors when they first announced: every check verified
    // but the damaged shard's, which its donor dropped unserved (not a lie).
    let outcome = |o: &str| -> f64 {
        net.live().map(|r| r.metric(&format!("kura_tab_checks_total{{kind=\"{o}\"}}")).unwrap_or(0.0)).sum()
    };
    eprintln!("relay 0 spot-checks: verified {}, not held {}", outcome("verified"), outcome("not_held"));
    assert!(outcome("verified") >= 1.0 && outcome("wrong") == 0.0);
    // Relay 0 counts what the donors sent through its circuits: their shards, inside the
    // circuits' own encryption and framing, a few percent more. (A spot-check by relay 0 in
    // the meantime fetches on a direct connection, not through a circuit.)
    let served_bytes = served_bytes(&donors) - bytes_before;
    let relayed = net.relay(0).metric("kura_tab_served_bytes_total").unwrap() - relayed_before;
    let checked = net.relay(0).metric("kura_tab_check_bytes_total").unwrap_or(0.0) - checked_before;
    let status = net.relay(0).json("/status").unwrap()["tabs"].clone();
    eprintln!("donors served {served_bytes} bytes; relay 0 relayed {relayed} from them, checked {checked}; {status}");
    assert!(served_bytes >= 2 * 1024 * 1024, "the donors served shards: {served_bytes}");
    assert!(
        relayed + checked >= served_bytes as f64 && relayed <= served_bytes as f64 * 1.05 + 65536.0,
        "relay 0 counts the bytes donors served through it: {relayed} (and {checked} checked) for {served_bytes}"
    );
    assert!(status["served_bytes"].as_f64().unwrap() >= relayed, "and says so in /status: {status}");

    // A donor stopped: relay 0 forgets it once its announcements expire (6 s).
    donors.pop().unwrap().kill();
    wait_for(Duration::from_secs(30), "relay 0 to forget the stopped donor", || {
        let t = net.relay(0).json("/status").ok()?["tabs"].clone();
        (t["known"].as_u64() == Some(3)).then_some(())
    })
    .unwrap();
}

/// The shard files a donor keeps of `stripe` (hex).
fn files_of(d: &Donor, stripe: &str) -> usize {
    std::fs::read_dir(&d.dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(stripe) && name.ends_with(".shard")
        })
        .count()
}

/// Three relays, a small file of k = 2, m = 1 (a stripe of data and one of its manifest),
/// four donors. The first tab copy of each index of each stripe goes to a donor; no fourth
/// copy of a stripe is offered, however often the donors ask, while nobody reads the file.
/// Three reads later, the relays that served them count its stripes popular (`--tab-popular
/// 2`: two reads standing earn a second copy of their index) and offer a fourth donor a
/// shard of a read stripe. No donor ever holds two shards of one stripe. With every donor
/// stopped, reads come from the relays, before and after the relays forget the donors.
#[test]
fn relays_offer_read_stripes_to_more_donors() {
    let started = std::time::Instant::now();
    let net = Net::start_with("popular", 3, &["--tab-ttl", "6", "--tab-popular", "2"]);
    let file = net.dir.path().join("file");
    let want = kura_tests::pseudo_random(200 * 1024, 31);
    std::fs::write(&file, &want).unwrap();
    let cap = net.put(&file, &["--k", "2", "--m", "1"]).unwrap();
    let stripes: Vec<String> = inventory(&net, 0).into_keys().collect();
    eprintln!("{:?}: put, {} stripes", started.elapsed(), stripes.len());
    let donors: Vec<Donor> =
        (0..4).map(|i| Donor::start(&net.dir.path().join(format!("donor{i}")), &net.addrs)).collect();
    let offered = || -> f64 { net.live().map(|r| r.metric("kura_tab_offers_total").unwrap_or(0.0)).sum() };
    let asked = || -> f64 {
        net.live().map(|r| r.metric("kura_requests_total{kind=\"offer\"}").unwrap_or(0.0)).sum()
    };
    // How many donors hold a shard of each stripe, and which indices.
    let copies = || -> Vec<(usize, BTreeSet<u8>)> {
        stripes
            .iter()
            .map(|s| {
                let idx: Vec<u8> = donors.iter().filter_map(|d| d.held().get(s).copied()).collect();
                (idx.len(), idx.into_iter().collect())
            })
            .collect()
    };
    wait_for(Duration::from_secs(60), "a tab copy of every index of every stripe", || {
        copies().iter().all(|(n, idx)| *n == 3 && *idx == BTreeSet::from([0, 1, 2])).then_some(())
    })
    .unwrap();
    eprintln!("{:?}: first copies held", started.elapsed());
    // Unread, each stripe has its one tab copy of each index: the asking goes on, the
    // offers do not.
    let before = asked();
    wait_for(Duration::from_secs(90), "the relays to be asked for offers six more times", || {
        (asked() >= before + 6.0).then_some(())
    })
    .unwrap();
    assert!(copies().iter().all(|(n, _)| *n == 3), "no fourth copy of an unread stripe: {:?}", copies());
    assert_eq!(offered(), 3.0 * stripes.len() as f64);
    eprintln!("{:?}: asked {} times, offered {}", started.elapsed(), asked(), offered());

    for i in 0..3 {
        net.get_exact(&cap, &want, &format!("read-{i}"));
    }
    let fourth =
        wait_for(Duration::from_secs(150), "a fourth donor to be offered a shard of a stripe", || {
            copies().iter().any(|(n, _)| *n == 4).then_some(())
        });
    eprintln!("{:?}: copies {:?}; relays offered {}", started.elapsed(), copies(), offered());
    fourth.unwrap();
    for (n, idx) in copies() {
        assert!(
            n <= 4 && idx == BTreeSet::from([0, 1, 2]),
            "at most a second copy of one index: {n} {idx:?}"
        );
    }
    assert!(offered() > 3.0 * stripes.len() as f64);
    for (i, d) in donors.iter().enumerate() {
        for s in &stripes {
            assert!(files_of(d, s) <= 1, "donor {i} keeps at most one shard of stripe {s}");
        }
    }

    // Every donor stopped: a read right away (their announcements still stand) comes from
    // the relays without error, and once the announcements expire (6 s) no relay names them.
    for d in donors {
        d.kill();
    }
    net.get_exact(&cap, &want, "after-donors");
    wait_for(Duration::from_secs(30), "the relays to forget the stopped donors", || {
        net.live()
            .all(|r| r.json("/status").is_ok_and(|s| s["tabs"]["known"].as_u64() == Some(0)))
            .then_some(())
    })
    .unwrap();
    net.get_exact(&cap, &want, "after-expiry");
}
