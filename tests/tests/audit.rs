//! Audits with real `kura-relay` processes on 127.0.0.1: files put by the real `kura`, a
//! healthy network audited without a single failing verdict, then one relay's shard files
//! deleted behind its back (its metadata left as it was, so it goes on claiming them) —
//! the other relays' audits fail it, the lost shards are rebuilt elsewhere, and two more
//! relays killed leave every file byte-exact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_tests::net::Net;
use kura_tests::pseudo_random;
use kura_tests::relay::{wait_for, RelayProc};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// Repair rounds and audits every second. The relays' own scrubbing is slowed to a crawl
/// (a byte a second), so that what finds the loss here is the neighbours' audits.
const ARGS: &[&str] =
    &["--repair-interval", "1", "--repair-grace", "5", "--audit-interval", "1", "--scrub-rate", "1"];
const RELAYS: usize = 8;
/// Shards per stripe (the client's default k = 4, m = 2).
const N: usize = 6;

/// An auditor verdict count summed over `relays`.
fn verdicts(relays: &[&RelayProc], verdict: &str) -> f64 {
    let series = format!("kura_audits_total{{role=\"auditor\",verdict=\"{verdict}\"}}");
    relays.iter().map(|r| r.metric(&series).unwrap_or(0.0)).sum()
}

/// stripe -> indices held, by relay number, from the inventories of relays `from`.
fn inventory(net: &Net, from: &[usize]) -> BTreeMap<String, BTreeMap<usize, Vec<u8>>> {
    let mut out: BTreeMap<String, BTreeMap<usize, Vec<u8>>> = BTreeMap::new();
    for &i in from {
        let v = net.relay(i).json("/inventory").unwrap();
        for (stripe, idx) in v["stripes"].as_object().unwrap() {
            let idx = idx.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u8).collect();
            out.entry(stripe.clone()).or_default().insert(i, idx);
        }
    }
    out
}

/// Files under `dir`, in order.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Deletes `percent`% of the shard files under `dir` (the store's `shards/` tree; at least
/// one), leaving the directories and the metadata database alone. Returns how many were
/// deleted.
fn delete_shard_files(dir: &Path, percent: usize) -> usize {
    let files = files_under(dir);
    let n = (files.len() * percent).div_ceil(100).max(1).min(files.len());
    for p in files.iter().take(n) {
        std::fs::remove_file(p).unwrap();
    }
    n
}

///
/// `KURA_AUDIT_LOSS_PERCENT` (default 100) deletes only that share of the relay's shard
/// files; the test prints the time from the loss to the first failing verdict and to full
/// redundancy.
#[test]
fn shards_deleted_behind_a_relays_back_are_found_by_audits_and_rebuilt() {
    let percent: usize = std::env::var("KURA_AUDIT_LOSS_PERCENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .clamp(1, 100);
    let started = Instant::now();
    let mut net = Net::start_with("audit", RELAYS, ARGS);
    let mut files = Vec::new();
    for (n, len) in [1_500_000usize, 1_500_000, 700_000, 100_000, 40_000, 5].into_iter().enumerate() {
        let data = pseudo_random(len, 40 + n as u64);
        let path = net.dir.path().join(format!("f{n}"));
        std::fs::write(&path, &data).unwrap();
        files.push((net.put(&path, &[]).unwrap(), data));
    }
    let all: Vec<usize> = (0..RELAYS).collect();
    let stripes: BTreeSet<String> = inventory(&net, &all).into_keys().collect();
    eprintln!(
        "{} files, {} stripes put after {:.1} s",
        files.len(),
        stripes.len(),
        started.elapsed().as_secs_f64()
    );

    // A healthy network: every relay audits its neighbours, and nobody fails anybody.
    let live: Vec<&RelayProc> = net.live().collect();
    wait_for(Duration::from_secs(90), "every relay to have audited its neighbours", || {
        live.iter()
            .all(|r| r.metric("kura_audits_total{role=\"auditor\",verdict=\"pass\"}").unwrap_or(0.0) >= 5.0)
            .then_some(())
    })
    .unwrap();
    let failing = ["fail", "false", "timeout"].map(|v| (v, verdicts(&live, v)));
    eprintln!("healthy: {} passes, failing verdicts {failing:?}", verdicts(&live, "pass"));
    assert!(failing.iter().all(|(_, n)| *n == 0.0), "false failures on a healthy network: {failing:?}");

    // The relay holding the most shards loses every shard file; its metadata stays.
    let inv = inventory(&net, &all);
    let held = |i: usize| inv.values().filter(|h| h.contains_key(&i)).count();
    let victim = (0..RELAYS).max_by_key(|&i| held(i)).unwrap();
    let victim_id = net.relay(victim).peer_id.clone();
    let deleted = delete_shard_files(&net.dir.path().join(format!("r{victim}/store/shards")), percent);
    eprintln!(
        "relay {victim} ({victim_id}) lost {deleted} shard files ({percent}%) after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(deleted >= 5 || percent < 100, "relay {victim} held only {deleted} shards");

    // Its neighbours fail it; the lost shards are rebuilt (elsewhere, or on the relay that
    // lost them once it no longer claims them): every stripe is back to N distinct shards,
    // and the relay that lost its files claims only shards it has again.
    let victim_dir = net.dir.path().join(format!("r{victim}/store/shards"));
    let lost = Instant::now();
    let mut why = String::new();
    let others: Vec<usize> = (0..RELAYS).filter(|&i| i != victim).collect();
    let auditors: Vec<&RelayProc> = others.iter().map(|&i| net.relay(i)).collect();
    let mut detected = None;
    let whole = wait_for(Duration::from_secs(120), "the lost shards to be found and rebuilt", || {
        if detected.is_none() && verdicts(&auditors, "fail") > 0.0 {
            detected = Some(lost.elapsed());
        }
        let inv = inventory(&net, &all);
        let claimed = inv.values().filter(|h| h.contains_key(&victim)).count();
        let on_disk = files_under(&victim_dir).len();
        let short: Vec<String> = stripes
            .iter()
            .filter(|s| {
                let idx: BTreeSet<u8> =
                    inv.get(*s).into_iter().flat_map(|h| h.values().flatten().copied()).collect();
                idx.len() < N
            })
            .map(|s| format!("{}: {:?}", &s[..12], inv.get(s)))
            .collect();
        why = format!(
            "relay {victim} claims {claimed} shards, has {on_disk} on disk; short stripes: {short:#?}"
        );
        (claimed == on_disk && short.is_empty()).then_some(())
    });
    if whole.is_err() {
        for r in net.live() {
            eprintln!("{}: audits {}", r.peer_id, r.json("/audits").unwrap()["verdicts"]);
            eprintln!("{}: repair {}", r.peer_id, r.json("/repair").unwrap()["report"]);
        }
    }
    whole.unwrap_or_else(|e| panic!("{e}: {why}"));
    let failed = verdicts(&auditors, "fail");
    eprintln!(
        "{percent}% lost: first failing verdict {:.1} s after the loss, whole again {:.1} s after it; \
         relay {victim}'s neighbours gave it {failed} failing verdicts",
        detected.map_or(f64::NAN, |d| d.as_secs_f64()),
        lost.elapsed().as_secs_f64()
    );
    assert!(failed >= 1.0, "no audit failed the relay that lost its shards");
    let judged: Vec<String> = auditors
        .iter()
        .flat_map(|r| r.json("/audits").unwrap()["recent"].as_array().cloned().unwrap_or_default())
        .filter(|rec| rec["verdict"] == "fail")
        .map(|rec| rec["peer"].as_str().unwrap().to_owned())
        .collect();
    assert!(judged.iter().all(|p| *p == victim_id), "an honest relay was failed: {judged:?}");

    // Two more relays go; every file still reads back byte-exact.
    let kill: Vec<usize> = others.iter().copied().filter(|&i| i != 0).take(2).collect();
    for &i in &kill {
        net.kill9(i);
    }
    for (n, (cap, data)) in files.iter().enumerate() {
        net.get_exact(cap, data, &format!("f{n}"));
    }
    eprintln!(
        "every file byte-exact with relays {kill:?} killed; done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Without neighbours asking (audits a day apart), a relay finds the loss of its own shard
/// files by scrubbing (re-reading and re-hashing them), stops claiming them, and the group
/// rebuilds them.
#[test]
fn a_relay_finds_its_own_lost_shards_by_scrubbing() {
    let mut args = vec![
        "--repair-interval",
        "1",
        "--repair-grace",
        "5",
        "--audit-interval",
        "86400",
        "--scrub-rate",
        "64M",
    ];
    let mut net = Net::start_with("scrub", 7, &args);
    args.clear();
    let data = pseudo_random(2_500_000, 77);
    let path = net.dir.path().join("f");
    std::fs::write(&path, &data).unwrap();
    let cap = net.put(&path, &[]).unwrap();
    let all: Vec<usize> = (0..7).collect();
    let inv = inventory(&net, &all);
    let victim = (0..7).max_by_key(|&i| inv.values().filter(|h| h.contains_key(&i)).count()).unwrap();
    let dir = net.dir.path().join(format!("r{victim}/store/shards"));
    let deleted = delete_shard_files(&dir, 100);
    assert!(deleted >= 1);
    wait_for(Duration::from_secs(60), "the relay to find its lost shards by scrubbing", || {
        let lost = net.relay(victim).metric("kura_scrubbed_shards_total{kind=\"lost\"}").unwrap_or(0.0);
        let inv = inventory(&net, &all);
        let claimed = inv.values().filter(|h| h.contains_key(&victim)).count();
        let whole = inv.values().all(|h| h.values().flatten().collect::<BTreeSet<_>>().len() == N);
        (lost >= 1.0 && claimed == files_under(&dir).len() && whole).then_some(())
    })
    .unwrap();
    for i in all.into_iter().filter(|&i| i != victim).take(2) {
        net.kill9(i);
    }
    net.get_exact(&cap, &data, "scrubbed");
}

/// `kura check` proves each stripe's shards by challenge and agrees with the relays' own
/// inventories: six of six on a whole network; with a relay gone (and no repair running)
/// the stripes it held are proven five of six and the command fails.
#[test]
fn kura_check_proves_what_the_relays_hold() {
    let mut net = Net::start_with("check", 6, &["--repair-interval", "86400"]);
    let data = pseudo_random(2_200_000, 5);
    let path = net.dir.path().join("f");
    std::fs::write(&path, &data).unwrap();
    let cap = net.put(&path, &[]).unwrap();
    let check = |net: &Net| {
        let mut args = vec!["check".to_owned(), cap.clone()];
        args.extend(net.bootstrap_args());
        kura_tests::net::kura(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = check(&net);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let stripes: Vec<&str> = text.lines().filter(|l| l.starts_with("stripe ")).collect();
    assert!(stripes.len() >= 3, "{text}");
    assert!(stripes.iter().all(|l| l.contains(": 6 of 6 shards proven")), "{text}");

    net.kill9(3);
    let out = check(&net);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "a relay is gone, yet: {text}");
    let live: Vec<usize> = (0..6).filter(|&i| i != 3).collect();
    let inv = inventory(&net, &live);
    for line in text.lines().filter(|l| l.starts_with("stripe ")) {
        let id = &line["stripe ".len()..line.find(':').unwrap()];
        let held: BTreeSet<u8> =
            inv.get(id).into_iter().flat_map(|h| h.values().flatten().copied()).collect();
        assert!(
            line.contains(&format!(": {} of 6 shards proven", held.len())),
            "{line} but inventories say {held:?}"
        );
    }
    assert!(text.contains("5 of 6"), "{text}");
    net.get_exact(&cap, &data, "after-check");
}

/// Replaces every shard file under `dir` with a directory of the same name: reading it
/// fails with an IO error, which a relay takes as a fault of the moment (it keeps the shard
/// and goes on claiming it) rather than a loss. Returns how many were replaced.
fn make_shards_unreadable(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && std::fs::read_dir(&p).unwrap().next().is_some() {
            n += make_shards_unreadable(&p);
        } else if p.is_file() {
            std::fs::remove_file(&p).unwrap();
            std::fs::create_dir(&p).unwrap();
            n += 1;
        }
    }
    n
}

/// A relay whose shards cannot be read any more (every read an IO error) keeps claiming
/// them; its neighbours audit only once a day and its own scrubbing takes the errors for
/// passing faults, so nothing in the network notices. `kura check` does: it cannot prove
/// those claims, reports them to the stripes' other holders, and they challenge the claims
/// themselves, fail them, and rebuild the shards elsewhere. Then a second check proves every
/// stripe whole, and with two more relays killed the file reads back byte-exact.
#[test]
fn a_check_reports_unprovable_claims_and_the_group_rebuilds_them() {
    let mut net = Net::start_with(
        "report",
        7,
        &["--repair-interval", "1", "--repair-grace", "5", "--audit-interval", "86400", "--scrub-rate", "1M"],
    );
    let data = pseudo_random(2_500_000, 91);
    let path = net.dir.path().join("f");
    std::fs::write(&path, &data).unwrap();
    let cap = net.put(&path, &[]).unwrap();
    let all: Vec<usize> = (0..7).collect();
    // Every relay has planned its stripes since the put: it relies on its peers' claims.
    let rounds = |r: &RelayProc| r.json("/repair").ok()?["report"]["rounds"].as_u64();
    let after_put: Vec<u64> = net.live().map(|r| rounds(r).unwrap_or(0)).collect();
    wait_for(Duration::from_secs(60), "two repair rounds on every relay since the put", || {
        net.live().zip(&after_put).all(|(r, n)| rounds(r).is_some_and(|m| m >= n + 2)).then_some(())
    })
    .unwrap();
    let inv = inventory(&net, &all);
    let victim = (0..7).max_by_key(|&i| inv.values().filter(|h| h.contains_key(&i)).count()).unwrap();
    let broken = make_shards_unreadable(&net.dir.path().join(format!("r{victim}/store/shards")));
    assert!(broken >= 1);
    let stripes: BTreeSet<String> = inv.keys().cloned().collect();
    eprintln!("relay {victim}: {broken} of its shard files unreadable");

    let check = |net: &Net| {
        let mut args = vec!["check".to_owned(), cap.clone()];
        args.extend(net.bootstrap_args());
        let out = kura_tests::net::kura(&args.iter().map(String::as_str).collect::<Vec<_>>());
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, text) = check(&net);
    eprintln!("{text}");
    assert!(!ok, "the unreadable shards were proven: {text}");
    let reported = text
        .lines()
        .find_map(|l| l.split(" claims could not be proven; ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no report line: {text}"));
    assert!(reported >= 1, "no report was taken: {text}");

    // The group audits what was reported, and rebuilds the shards on relays that can serve them.
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    let started = Instant::now();
    let mut why = String::new();
    let rebuilt = wait_for(Duration::from_secs(90), "the reported shards rebuilt elsewhere", || {
        let inv = inventory(&net, &others);
        let short: Vec<_> = stripes
            .iter()
            .filter(|s| {
                inv.get(*s).into_iter().flat_map(|h| h.values().flatten()).collect::<BTreeSet<_>>().len() < N
            })
            .collect();
        why = format!("stripes short without relay {victim}: {short:?}");
        short.is_empty().then_some(())
    });
    if rebuilt.is_err() {
        for r in net.live() {
            eprintln!("{}: audits {}", r.peer_id, r.json("/audits").unwrap()["recent"]);
            eprintln!("{}: repair {}", r.peer_id, r.json("/repair").unwrap());
            eprintln!("{}: reports {:?}", r.peer_id, r.metric("kura_audit_reports_total{kind=\"accepted\"}"));
        }
    }
    rebuilt.unwrap_or_else(|e| panic!("{e}: {why}"));
    let auditors: Vec<&RelayProc> = others.iter().map(|&i| net.relay(i)).collect();
    let accepted: f64 =
        auditors.iter().map(|r| r.metric("kura_audit_reports_total{kind=\"accepted\"}").unwrap_or(0.0)).sum();
    let failed = verdicts(&auditors, "fail");
    eprintln!(
        "rebuilt {:.1} s after the check; {accepted} reports accepted, {failed} failing verdicts",
        started.elapsed().as_secs_f64()
    );
    assert!(accepted >= 1.0 && failed >= 1.0, "{accepted} reports accepted, {failed} failing verdicts");

    let (ok, text) = check(&net);
    assert!(ok, "after the rebuild: {text}");
    for i in others.into_iter().filter(|&i| i != 0).take(2) {
        net.kill9(i);
    }
    net.get_exact(&cap, &data, "reported");
}
