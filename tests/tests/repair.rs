//! Self-repair with real `kura-relay` processes on 127.0.0.1: relays killed with SIGKILL,
//! added and restarted; redundancy checked from the relays' own inventories
//! (`GET /inventory`), files read back byte-exact with the real `kura` client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_core::address::StripeId;
use kura_core::placement::DhtKey;
use kura_sim::durability::{drain_time, predict, rebuilds_at, Held, Pacing};
use kura_tests::net::Net;
use kura_tests::pseudo_random;
use kura_tests::relay::wait_for;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Rounds every second, so that the tests see repair within seconds.
const FAST_REPAIR: &[&str] = &["--repair-interval", "1", "--repair-grace", "5"];
/// Shards per stripe (the client's default k = 4, m = 2).
const N: usize = 6;

/// stripe -> (relay number, indices held), from every live relay's inventory.
type Inventory = BTreeMap<String, Vec<(usize, Vec<u8>)>>;

fn inventory(net: &Net) -> Inventory {
    let mut out: Inventory = BTreeMap::new();
    for (i, r) in net.relays.iter().enumerate() {
        let Some(r) = r else { continue };
        let v = r.json("/inventory").unwrap();
        for (stripe, idx) in v["stripes"].as_object().unwrap() {
            let idx: Vec<u8> = idx.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u8).collect();
            out.entry(stripe.clone()).or_default().push((i, idx));
        }
    }
    out
}

/// Each stripe's shard length, asked of a relay holding it (`FetchPart` of one byte, whose
/// answer carries the shard's whole length).
fn shard_lengths(net: &Net, inv: &Inventory) -> BTreeMap<String, u64> {
    use kura_core::wire::{Request, Response};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut clients = BTreeMap::new();
        let mut out = BTreeMap::new();
        for (stripe, holders) in inv {
            let (relay, _) = holders[0];
            if let std::collections::btree_map::Entry::Vacant(e) = clients.entry(relay) {
                let addr = net.relay(relay).addr("/tcp/").unwrap().parse().unwrap();
                e.insert(kura_p2p::client::StoreClient::connect(addr).await.unwrap());
            }
            let req = Request::FetchPart { stripe: StripeId::from_hex(stripe).unwrap(), offset: 0, len: 1 };
            match clients[&relay].request(req).await.unwrap() {
                Response::Part { total, .. } => out.insert(stripe.clone(), u64::from(total)),
                other => panic!("the length of stripe {stripe}'s shard: {other:?}"),
            };
        }
        out
    })
}

/// Why `stripes` are not each at `N` distinct shards on `N` distinct live relays, one per
/// relay (None when they all are).
fn short_of_full(inv: &Inventory, stripes: &BTreeSet<String>) -> Option<String> {
    for s in stripes {
        let holders = inv.get(s).map(Vec::as_slice).unwrap_or_default();
        let mut idx: Vec<u8> = holders.iter().flat_map(|(_, i)| i.iter().copied()).collect();
        idx.sort_unstable();
        let one_each = holders.iter().all(|(_, i)| i.len() == 1);
        if !one_each || idx != (0..N as u8).collect::<Vec<_>>() {
            return Some(format!("stripe {}: {holders:?}", &s[..12]));
        }
    }
    None
}

/// Distinct shard indices of each stripe held by live relays; and whether any relay holds
/// two shards of one stripe.
fn redundancy(inv: &Inventory, stripes: &BTreeSet<String>) -> (usize, Option<String>) {
    let mut least = usize::MAX;
    let mut doubled = None;
    for s in stripes {
        let holders = inv.get(s).map(Vec::as_slice).unwrap_or_default();
        let distinct: BTreeSet<u8> = holders.iter().flat_map(|(_, i)| i.iter().copied()).collect();
        least = least.min(distinct.len());
        if let Some((r, i)) = holders.iter().find(|(_, i)| i.len() > 1) {
            doubled = Some(format!("relay {r} holds indices {i:?} of stripe {}", &s[..12]));
        }
    }
    (least, doubled)
}

/// Live relays left out of some relay's repair plan, for not answering two rounds in a row
/// (`kura_repair_events_total{kind="left_out_silent"}`, summed over the live relays).
fn left_out_silent(net: &Net) -> f64 {
    net.live().map(|r| r.metric("kura_repair_events_total{kind=\"left_out_silent\"}").unwrap_or(0.0)).sum()
}

/// Repair bytes in and out over the live relays, shards rebuilt, and of those the ones
/// decoded with another shard of their stripe and handed over (one read of `k` for both).
fn repair_traffic(net: &Net) -> (u64, u64, u64, u64) {
    let (mut bin, mut bout, mut rebuilt, mut joint) = (0, 0, 0, 0);
    for r in net.live() {
        let v = r.json("/repair").unwrap();
        bin += v["bytes_in"].as_u64().unwrap();
        bout += v["bytes_out"].as_u64().unwrap();
        let (_, metrics) = r.get("/metrics").unwrap();
        let count = |kind: &str| {
            let prefix = format!("kura_repair_events_total{{kind=\"{kind}\"}}");
            metrics
                .lines()
                .find(|l| l.starts_with(&prefix))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let handed = count("rebuilt_handed_over");
        rebuilt += count("rebuilt") + handed;
        joint += handed;
    }
    (bin, bout, rebuilt, joint)
}

struct Files {
    files: Vec<(String, Vec<u8>)>,
}

impl Files {
    /// Puts `count` files of pseudo-random sizes, four clients at a time.
    fn put(net: &Net, count: usize, seed: u64) -> Self {
        let dir = net.dir.path().join("in");
        std::fs::create_dir_all(&dir).unwrap();
        let jobs: Vec<(PathBuf, Vec<u8>)> = (0..count)
            .map(|i| {
                let size = 16 * 1024
                    + (pseudo_random(4, seed + i as u64).iter().map(|b| *b as usize).sum::<usize>() * 300);
                let data = pseudo_random(size, seed * 1000 + i as u64);
                let path = dir.join(format!("f{seed}-{i}"));
                std::fs::write(&path, &data).unwrap();
                (path, data)
            })
            .collect();
        let files = std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .chunks(count.div_ceil(4).max(1))
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|(p, d)| (net.put(p, &[]).unwrap_or_else(|e| panic!("put: {e}")), d.clone()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        Self { files }
    }

    /// Reads every file back, four clients at a time, and checks the bytes.
    fn check_all(&self, net: &Net, tag: &str) {
        std::thread::scope(|s| {
            for (t, chunk) in self.files.chunks(self.files.len().div_ceil(4).max(1)).enumerate() {
                s.spawn(move || {
                    for (i, (cap, data)) in chunk.iter().enumerate() {
                        net.get_exact(cap, data, &format!("{tag}-{t}-{i}"));
                    }
                });
            }
        });
    }
}

fn wait_full(net: &Net, stripes: &BTreeSet<String>, limit: Duration, what: &str) -> Duration {
    let t0 = Instant::now();
    let mut last = String::new();
    let r = wait_for(limit, what, || {
        let inv = inventory(net);
        match short_of_full(&inv, stripes) {
            None => Some(()),
            Some(why) => {
                last = why;
                None
            }
        }
    });
    if let Err(e) = r {
        panic!("{e}; still short: {last}\n{}", diagnose(net, &last));
    }
    t0.elapsed()
}

/// What the relays said about the stripe named in `short` (its id's first 12 digits) and
/// whom they distrust, from their logs and `/audits`: for a failure to be understood.
fn diagnose(net: &Net, short: &str) -> String {
    let prefix = short.strip_prefix("stripe ").and_then(|s| s.get(..12)).unwrap_or("-");
    let mut out = String::new();
    for (i, r) in net.relays.iter().enumerate() {
        let Some(r) = r else { continue };
        let log = std::fs::read_to_string(r.dir.with_extension("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> =
            log.lines().filter(|l| l.contains(prefix) || l.contains("distrusted")).collect();
        out += &format!("--- relay {i} ({}): {} lines about it\n", r.peer_id, lines.len());
        for l in lines.iter().rev().take(15).rev() {
            out += &format!("{l}\n");
        }
        if let Ok(a) = r.json("/audits") {
            out += &format!("audits: {a}\n");
        }
    }
    out
}

/// The tests of this file take turns: one compares how long repair takes with the
/// simulator's model, which a churn soak or a second network on the same two cores beside it
/// would skew (it ran 1.35 of the model once beside the soak, 0.98 alone).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn lost_shards_are_rebuilt_and_joining_relays_take_them_over() {
    let _alone = alone();
    // Rebuilds paced at 128 KiB/s per relay with no burst beyond it, so that how long repair
    // takes is the pacing's to predict (the simulator drives the same RepairQueue).
    let args: Vec<&str> =
        FAST_REPAIR.iter().copied().chain(["--repair-rate", "128K", "--repair-burst", "128K"]).collect();
    let mut net = Net::start_with("repair", 10, &args);
    let ids: Vec<String> = net.live().map(|r| r.peer_id.clone()).collect();
    for r in net.live() {
        wait_for(Duration::from_secs(60), "every relay to know every other", || {
            let s = r.json("/status").ok()?;
            let table = s["routing_table"].as_array()?;
            (table.len() >= ids.len() - 1).then_some(())
        })
        .unwrap();
    }
    let files = Files::put(&net, 100, 1);
    let stripes: BTreeSet<String> = inventory(&net).into_keys().collect();
    assert!(stripes.len() >= 100, "{} stripes for 100 files", stripes.len());
    wait_full(&net, &stripes, Duration::from_secs(60), "the uploads to sit on 6 relays each");
    let (b0, _, _, _) = repair_traffic(&net);

    // What the simulator's model (kura_sim::durability::predict: kura_core's plan_group on
    // each stripe, k shards read per rebuild, one per handover) says the deaths of relays 3
    // and 7 cost, from the real inventory, to compare with what the relays do.
    let inv = inventory(&net);
    let (keys, held) = as_held(&net, &inv, N);
    let lengths = shard_lengths(&net, &inv);
    let names: Vec<&String> = inv.keys().collect();
    let live: Vec<DhtKey> = (0..10).filter(|i| ![3, 7].contains(i)).map(|i| keys[i]).collect();
    let predicted = predict(N - 2, &live, &held);
    let sites = rebuilds_at(N - 2, &live, &held);

    // Two relays die: every stripe is back to 6 shards on 6 live relays.
    let lost_shards: usize = [3, 7].iter().map(|&i| inventory_of(&net, i)).sum();
    let lost_bytes: u64 =
        [3, 7].iter().map(|&i| net.relay(i).json("/status").unwrap()["bytes"].as_u64().unwrap()).sum();
    net.kill9(3);
    net.kill9(7);
    let took = wait_full(&net, &stripes, Duration::from_secs(180), "repair after two relays died");
    let (b1, out1, rebuilt, joint) = repair_traffic(&net);
    println!(
        "two of ten relays killed ({lost_shards} shards, {lost_bytes} bytes): full redundancy again after \
         {:.1} s; {rebuilt} shards rebuilt ({joint} of them decoded with another of their stripe and handed \
         over) for {} bytes in ({:.2} bytes per byte lost; one shard at a time, Reed-Solomon reads 4); \
         {out1} bytes served",
        took.as_secs_f64(),
        b1 - b0,
        (b1 - b0) as f64 / lost_bytes as f64
    );
    assert!(rebuilt as usize >= lost_shards, "{rebuilt} rebuilds for {lost_shards} lost shards");
    // The simulator against the real relays: the same rebuilds (a few more at most: a
    // relay may rebuild a shard another was rebuilding too), as many made together (a
    // stripe that lost both its shards on 3 and 7 is rebuilt by one relay reading k, which
    // hands the other over), and the bytes read within a quarter (the model reads k whole
    // shards per stripe rebuilt and one per shard handed over; relays also fetch headers).
    let shard_bytes = lost_bytes as f64 / lost_shards as f64;
    let model_bytes = predicted.shards_read as f64 * shard_bytes;
    let real_bytes = (b1 - b0) as f64;
    println!(
        "simulator vs relays, two of ten killed: shards rebuilt {} / {rebuilt}, of them together with another \
         {} / {joint}, handovers {} / 0 expected, bytes read {model_bytes:.0} / {real_bytes:.0} (real/model {:.3})",
        predicted.rebuilds,
        predicted.joint,
        predicted.handovers,
        real_bytes / model_bytes
    );
    assert_eq!((predicted.lost, predicted.handovers), (0, 0));
    assert_eq!(predicted.rebuilds as usize, lost_shards, "the model rebuilds exactly what died");
    assert!(
        rebuilt >= predicted.rebuilds && rebuilt as f64 <= predicted.rebuilds as f64 * 1.1 + 2.0,
        "{rebuilt} real rebuilds, {} in the model",
        predicted.rebuilds
    );
    // The model sees both deaths at once; a relay that takes one as gone a round before it
    // notices the other orders that stripe's first rebuild alone (one run: 15 of the
    // model's 19 together), so at least half.
    assert!(predicted.joint > 0, "no stripe had both its shards on the two relays killed");
    assert!(
        joint * 2 >= predicted.joint && joint <= predicted.joint + 2,
        "{joint} shards rebuilt together with another, {} in the model",
        predicted.joint
    );
    assert!(
        (real_bytes / model_bytes - 1.0).abs() <= 0.25,
        "bytes read: {real_bytes:.0} real, {model_bytes:.0} in the model"
    );
    // And how long it took: a dead relay is waited for its grace (5 s), the next round (1 s)
    // orders the rebuilds, and each relay's queue paces what it was ordered (k shards of
    // that stripe's shard length per rebuild, 128 KiB/s, four at a time; a rebuild itself,
    // here on one machine, taken as instant). Within a half: priced at the average shard
    // length, the model ran 0.98 to 1.37 of the real time in the runs of 2026-12-06
    // (depending on which relays the identities drawn made busiest); priced per stripe, as
    // now, one run of 2026-12-07 gave 1.11 where the average gave 1.02 — shard sizes alone do
    // not explain the spread (the rebuilds' own work and the rounds' timing, not modelled,
    // are the next suspects), so the bound stays where the spread was seen.
    let pacing = Pacing { max_running: 4, rate: 128 << 10, burst: 128 << 10, each: Duration::ZERO };
    let jobs: Vec<Vec<u64>> = sites
        .values()
        .map(|stripes| stripes.iter().map(|&i| (N - 2) as u64 * lengths[names[i]]).collect())
        .collect();
    let average: Vec<Vec<u64>> =
        sites.values().map(|stripes| vec![((N - 2) as f64 * shard_bytes) as u64; stripes.len()]).collect();
    let busiest = sites.values().map(Vec::len).max().unwrap_or(0);
    let model_time = Duration::from_secs(5 + 1) + drain_time(&jobs, pacing);
    let average_time = Duration::from_secs(5 + 1) + drain_time(&average, pacing);
    println!(
        "simulator vs relays, two of ten killed: full redundancy after {:.1} s real, {:.1} s in the model \
         (grace 5 s, a round, then the busiest relay's {busiest} rebuilds paced by RepairQueue; real/model {:.2}; \
         priced at the average shard length {:.1} s, real/model {:.2})",
        took.as_secs_f64(),
        model_time.as_secs_f64(),
        took.as_secs_f64() / model_time.as_secs_f64(),
        average_time.as_secs_f64(),
        took.as_secs_f64() / average_time.as_secs_f64()
    );
    assert!(
        (took.as_secs_f64() / model_time.as_secs_f64() - 1.0).abs() <= 0.5,
        "repair took {took:?}, the model says {model_time:?}"
    );

    // Two more die: every file still reads byte-exact (4 of 6 shards are enough).
    net.kill9(1);
    net.kill9(5);
    files.check_all(&net, "four-dead");
    wait_full(&net, &stripes, Duration::from_secs(180), "repair after two more relays died");

    // Three relays join: shards move to the closer ones, never below 6 distinct shards per
    // stripe and never two shards of one stripe on one relay.
    let before = repair_traffic(&net);
    let added = [net.add(), net.add(), net.add()];
    let t0 = Instant::now();
    let mut moved = false;
    let mut samples = 0;
    while t0.elapsed() < Duration::from_secs(180) {
        let inv = inventory(&net);
        samples += 1;
        let (least, doubled) = redundancy(&inv, &stripes);
        assert!(least >= N, "a stripe fell to {least} distinct shards while shards moved");
        assert!(doubled.is_none(), "{}", doubled.unwrap_or_default());
        let new_hold = added.iter().any(|&i| inv.values().flatten().any(|(r, _)| *r == i));
        if new_hold && short_of_full(&inv, &stripes).is_none() {
            // Settled: every stripe one-per-relay and the newcomers hold their share.
            moved = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(moved, "the three new relays never took shards over");
    let after = repair_traffic(&net);
    println!(
        "three relays joined: shards handed over in {:.1} s ({samples} inventory samples, never below 6 \
         distinct); handover bytes {}",
        t0.elapsed().as_secs_f64(),
        after.0.saturating_sub(before.0)
    );
    files.check_all(&net, "after-join");
}

/// Repair rounds every live relay has finished.
fn rounds(net: &Net) -> Vec<u64> {
    net.live().map(|r| r.json("/repair").unwrap()["report"]["rounds"].as_u64().unwrap()).collect()
}

/// Waits until every live relay has finished `more` rounds after `from` (relays that died
/// since are left out by position: call it with the same live set).
fn wait_rounds(net: &Net, from: &[u64], more: u64, what: &str) {
    wait_for(Duration::from_secs(120), what, || {
        let now = rounds(net);
        (now.len() == from.len() && now.iter().zip(from).all(|(n, f)| *n >= f + more)).then_some(())
    })
    .unwrap();
}

/// A group waits for a member that went down (`--repair-grace`, two hours by default): one
/// relay of eight killed costs no rebuild while every stripe keeps more than `k` shards live,
/// and it comes back to find its stripes whole without any traffic. A second relay down
/// leaves the stripes the two shared at `k = 4` live shards: those are repaired at once.
#[test]
fn a_member_down_is_waited_for_and_a_stripe_at_k_is_repaired_at_once() {
    let _alone = alone();
    let mut net = Net::start_with("grace", 8, &["--repair-interval", "1", "--repair-grace", "3600"]);
    for r in net.live() {
        wait_for(Duration::from_secs(60), "every relay to know every other", || {
            let s = r.json("/status").ok()?;
            (s["routing_table"].as_array()?.len() >= 7).then_some(())
        })
        .unwrap();
    }
    let files = Files::put(&net, 40, 3);
    let stripes: BTreeSet<String> = inventory(&net).into_keys().collect();
    wait_full(&net, &stripes, Duration::from_secs(60), "the uploads to sit on 6 relays each");
    let before = inventory(&net);
    let (a, b) = (2, 5);
    let (on_a, on_b) = (stripes_on(&before, a), stripes_on(&before, b));
    let both: BTreeSet<String> = on_a.intersection(&on_b).cloned().collect();
    assert!(!both.is_empty() && on_a.len() > both.len(), "{} on a, {} on both", on_a.len(), both.len());
    let (_, _, rebuilt0, _) = repair_traffic(&net);
    let silent0 = left_out_silent(&net);

    // One member down: its stripes are at five live shards, waited for.
    let dead = net.relay(a).peer_id.clone();
    net.kill9(a);
    let from = rounds(&net);
    wait_rounds(&net, &from, 5, "five repair rounds after the first kill");
    let (_, _, rebuilt1, joint1) = repair_traffic(&net);
    let waiting = net
        .live()
        .map(|r| {
            let v = r.json("/repair").unwrap();
            v["report"]["under_replicated"]
                .as_array()
                .map_or(0, |s| s.iter().filter(|x| x["waiting"] == true).count())
        })
        .sum::<usize>();
    println!(
        "one of eight down: {} stripes at 5 live, {waiting} waiting in the relays' reports, {} rebuilds",
        on_a.len(),
        rebuilt1 - rebuilt0
    );
    // A live relay that some relay distrusts (its audits' verdicts: under this machine's
    // load, slow answers and dropped surplus copies count against a relay) is not counted
    // live there, and the stripes it shares with the dead member are at `k` in that view:
    // repaired at once, rightly. Seen twice in full-suite runs with the machine busy (3
    // rebuilds); so the rebuilds are counted, and any is allowed only beside a distrusted
    // live relay, whose verdicts are printed.
    let distrust = distrusted_besides(&net, &[dead.as_str()]);
    // Likewise a live relay that some relay left out of a round's plan for not answering
    // twice in a row (slow under the full suite's load: seen once, 9 rebuilds).
    let silent = left_out_silent(&net) - silent0;
    if rebuilt1 != rebuilt0 {
        println!(
            "rebuilds with one member down, beside: {distrust:#?}; live relays left out as silent: {silent}"
        );
    }
    assert!(
        rebuilt1 == rebuilt0 || !distrust.is_empty() || silent > 0.0,
        "a member within its grace was repaired around ({} rebuilds, no live relay distrusted or left out)",
        rebuilt1 - rebuilt0
    );
    assert!(waiting > 0, "no relay reports waiting for the member that is down");

    // A second member down: the stripes both held are at k = 4 and are rebuilt at once (both
    // missing shards); the others still wait.
    net.kill9(b);
    let t0 = Instant::now();
    wait_for(Duration::from_secs(120), "the stripes at k to be repaired", || {
        let inv = inventory(&net);
        both.iter()
            .all(|s| {
                let live: BTreeSet<u8> =
                    inv.get(s).into_iter().flatten().flat_map(|(_, i)| i.iter().copied()).collect();
                live.len() == N
            })
            .then_some(())
    })
    .unwrap();
    let took = t0.elapsed();
    let from = rounds(&net);
    wait_rounds(&net, &from, 5, "five repair rounds after the stripes at k were whole");
    let (_, _, rebuilt2, joint2) = repair_traffic(&net);
    let fresh = rebuilt2 - rebuilt1;
    println!(
        "two of eight down: {} stripes at k repaired in {:.1} s with {fresh} rebuilds; {} stripes at 5 still waited for",
        both.len(),
        took.as_secs_f64(),
        on_a.len() + on_b.len() - 2 * both.len()
    );
    assert!(
        fresh >= 2 * both.len() as u64 && fresh <= 2 * both.len() as u64 + 2,
        "{fresh} shards rebuilt for {} stripes that lost two shards each",
        both.len()
    );
    assert!(
        joint2 - joint1 >= both.len() as u64 * 4 / 5,
        "{} of {} stripes' second shard rebuilt together with the first",
        joint2 - joint1,
        both.len()
    );

    // The first comes back within its grace: its stripes without the second are whole
    // again with no traffic.
    net.restart(a);
    let only_a: BTreeSet<String> = on_a.difference(&on_b).cloned().collect();
    wait_full(&net, &only_a, Duration::from_secs(120), "the returning member's stripes to be whole");
    let (_, _, rebuilt3, _) = repair_traffic(&net);
    assert_eq!(rebuilt3, rebuilt2, "the member that came back was repaired around");
    files.check_all(&net, "grace");
}

/// Live relays some live relay distrusts (its audits' verdicts), besides `dead`: each as
/// who distrusts whom, with the verdicts behind it.
fn distrusted_besides(net: &Net, dead: &[&str]) -> Vec<String> {
    net.live()
        .flat_map(|r| {
            let v = r.json("/audits").unwrap();
            let by = r.peer_id.clone();
            let counts = v["verdicts"].to_string();
            v["distrusted"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| !d["peer"].as_str().is_some_and(|p| dead.contains(&p)))
                .map(|d| {
                    format!("{by} distrusts {} (score {}); its verdicts {counts}", d["peer"], d["score"])
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every relay's key (by number) and each stripe of `inv` as the simulator's model takes
/// it (`kura_sim::durability::Held`: its key, its holders' keys and indices, `n`).
fn as_held(net: &Net, inv: &Inventory, n: usize) -> (Vec<DhtKey>, Vec<Held>) {
    let keys: Vec<DhtKey> = (0..net.relays.len())
        .map(|i| DhtKey::of(&net.relay(i).peer_id.parse::<libp2p_identity::PeerId>().unwrap().to_bytes()))
        .collect();
    let held = inv
        .iter()
        .map(|(s, h)| Held {
            stripe: DhtKey::of_stripe(&StripeId::from_hex(s).unwrap()),
            holders: h.iter().map(|(r, idx)| (keys[*r], idx.clone())).collect(),
            n,
        })
        .collect();
    (keys, held)
}

/// The stripes relay `i` holds a shard of, by `inv`.
fn stripes_on(inv: &Inventory, i: usize) -> BTreeSet<String> {
    inv.iter().filter(|(_, h)| h.iter().any(|(r, _)| *r == i)).map(|(s, _)| s.clone()).collect()
}

/// Distinct shard indices held of `stripe` by live relays.
fn distinct(inv: &Inventory, stripe: &str) -> usize {
    inv.get(stripe).into_iter().flatten().flat_map(|(_, i)| i.iter().copied()).collect::<BTreeSet<u8>>().len()
}

/// Wide stripes (6+6 on fourteen relays) wait for a second loss, then one relay rebuilds
/// both lost shards from one read of six and hands the other over
/// (`kura_core::repair::rebuild_after`, `GroupPlan::rebuilt_with`): one relay killed costs
/// no rebuild once it is past its grace; a second killed has every stripe the two shared
/// rebuilt to twelve, a reading rebuild and a handover each, while the stripes that lost
/// one shard still wait at eleven. Every file reads back byte-exact.
#[test]
fn wide_stripes_wait_for_a_second_loss_and_rebuild_both_from_one_read() {
    let _alone = alone();
    const WIDE: usize = 12;
    let mut net = Net::start_with("wide", 14, FAST_REPAIR);
    let ids: Vec<String> = net.live().map(|r| r.peer_id.clone()).collect();
    for r in net.live() {
        wait_for(Duration::from_secs(60), "every relay to know every other", || {
            let table = r.json("/status").ok()?["routing_table"].as_array()?.len();
            (table >= ids.len() - 1).then_some(())
        })
        .unwrap();
    }
    let dir = net.dir.path().join("wide-in");
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for i in 0..12u64 {
        let data = pseudo_random(20_000 + 7_919 * i as usize, 100 + i);
        let path = dir.join(format!("f{i}"));
        std::fs::write(&path, &data).unwrap();
        let cap = net.put(&path, &["--k", "6", "--m", "6"]).unwrap();
        files.push((cap, data));
    }
    let whole = |net: &Net, stripes: &BTreeSet<String>| {
        let inv = inventory(net);
        stripes.iter().all(|s| distinct(&inv, s) == WIDE && inv[s].iter().all(|(_, i)| i.len() == 1))
    };
    let stripes: BTreeSet<String> = inventory(&net).into_keys().collect();
    assert!(stripes.len() >= 12, "{} stripes for 12 files", stripes.len());
    wait_for(Duration::from_secs(60), "the stripes to sit on 12 relays each", || {
        whole(&net, &stripes).then_some(())
    })
    .unwrap();
    let before = inventory(&net);
    let (a, b) = (4, 9);
    let (on_a, on_b) = (stripes_on(&before, a), stripes_on(&before, b));
    let both: BTreeSet<String> = on_a.intersection(&on_b).cloned().collect();
    let one: BTreeSet<String> = on_a.symmetric_difference(&on_b).cloned().collect();
    assert!(!both.is_empty() && !one.is_empty(), "{} on both, {} on one", both.len(), one.len());
    // The simulator's model of both deaths, from the real inventory: one relay gone costs
    // nothing (11 of 12 is short of `rebuild_after`); two rebuild the stripes both held.
    let (keys, held) = as_held(&net, &before, WIDE);
    let live_but = |dead: &[usize]| -> Vec<DhtKey> {
        (0..keys.len()).filter(|i| !dead.contains(i)).map(|i| keys[i]).collect()
    };
    let after_one = predict(6, &live_but(&[a]), &held);
    let after_two = predict(6, &live_but(&[a, b]), &held);
    assert_eq!((after_one.rebuilds, after_one.handovers), (0, 0), "{after_one:?}");
    // Repair bytes in at the relays that stay.
    let bytes_in = |net: &Net| -> u64 {
        (0..keys.len())
            .filter(|i| ![a, b].contains(i))
            .map(|i| net.relay(i).json("/repair").unwrap()["bytes_in"].as_u64().unwrap())
            .sum()
    };
    let b0 = bytes_in(&net);
    let (_, _, rebuilt0, joint0) = repair_traffic(&net);
    let silent0 = left_out_silent(&net);

    // One lost: past its grace (5 s) and five more rounds, nothing is rebuilt.
    let dead_a = net.relay(a).peer_id.clone();
    net.kill9(a);
    // Past its grace, each relay logs it as gone (from its repair round or a failed dial).
    wait_for(Duration::from_secs(60), "every relay to take the killed one as gone (its grace over)", || {
        net.live()
            .all(|r| {
                let log = std::fs::read_to_string(r.dir.with_extension("stderr.log")).unwrap_or_default();
                log.lines().any(|l| l.contains("taken as gone") && l.contains(dead_a.as_str()))
            })
            .then_some(())
    })
    .unwrap();
    let from = rounds(&net);
    wait_rounds(&net, &from, 5, "five repair rounds after the first relay's grace");
    let (_, _, rebuilt1, joint1) = repair_traffic(&net);
    let inv = inventory(&net);
    assert!(on_a.iter().all(|s| distinct(&inv, s) == WIDE - 1), "a stripe of the dead relay was rebuilt");
    let distrust = distrusted_besides(&net, &[dead_a.as_str()]);
    let silent = left_out_silent(&net) - silent0;
    assert!(
        rebuilt1 == rebuilt0 || !distrust.is_empty() || silent > 0.0,
        "{} shards rebuilt with one of twelve lost (none distrusted: {distrust:?}, left out as silent: {silent})",
        rebuilt1 - rebuilt0
    );

    // Two lost: the stripes both held are rebuilt, together.
    let dead_b = net.relay(b).peer_id.clone();
    net.kill9(b);
    let t0 = Instant::now();
    wait_for(Duration::from_secs(120), "the stripes that lost two shards to be whole", || {
        whole(&net, &both).then_some(())
    })
    .unwrap();
    let took = t0.elapsed();
    let from = rounds(&net);
    wait_rounds(&net, &from, 3, "three repair rounds after");
    let b2 = bytes_in(&net);
    let (_, _, rebuilt2, joint2) = repair_traffic(&net);
    let (rebuilt, joint) = (rebuilt2 - rebuilt1, joint2 - joint1);
    let inv = inventory(&net);
    let waiting = one.iter().filter(|s| distinct(&inv, s) == WIDE - 1).count();
    println!(
        "6+6 on 14 relays: one killed, {} stripes at 11 of 12, {} shards rebuilt; a second killed, {} stripes at 10 \
         made whole in {:.1} s: {rebuilt} shards rebuilt, {joint} of them decoded with another and handed over; \
         {waiting} of {} stripes that lost one still wait",
        on_a.len(),
        rebuilt1 - rebuilt0,
        both.len(),
        took.as_secs_f64(),
        one.len()
    );
    let distrust = distrusted_besides(&net, &[dead_a.as_str(), dead_b.as_str()]);
    let quiet = distrust.is_empty() && left_out_silent(&net) == silent0;
    assert!(
        rebuilt >= 2 * both.len() as u64,
        "{rebuilt} shards rebuilt for {} stripes that lost two",
        both.len()
    );
    assert!(
        joint * 5 >= both.len() as u64 * 4,
        "{joint} of {} second shards rebuilt with the first",
        both.len()
    );
    // The model: the same stripes rebuilt, as many together, and the bytes read (k per
    // stripe, one per shard handed over) within a quarter of what the relays read.
    let lengths = shard_lengths(&net, &before);
    let shard_bytes = lengths.values().sum::<u64>() as f64 / lengths.len().max(1) as f64;
    let (model, real) = (after_two.shards_read as f64 * shard_bytes, (b2 - b0) as f64);
    println!(
        "simulator vs relays, 6+6, two of fourteen killed: shards rebuilt {} / {rebuilt}, together with another \
         {} / {joint}, bytes read {model:.0} / {real:.0} (real/model {:.3})",
        after_two.rebuilds,
        after_two.joint,
        real / model
    );
    assert_eq!(after_two.rebuilds, 2 * both.len() as u64, "{after_two:?}");
    assert_eq!(after_two.joint, both.len() as u64, "{after_two:?}");
    if quiet {
        assert_eq!(rebuilt, 2 * both.len() as u64, "only the stripes that lost two were rebuilt");
        assert_eq!(waiting, one.len(), "a stripe that lost one shard was rebuilt");
        assert_eq!(joint0, joint1);
        assert!((real / model - 1.0).abs() <= 0.25, "bytes read: {real:.0} real, {model:.0} in the model");
    }
    for (i, (cap, data)) in files.iter().enumerate() {
        net.get_exact(cap, data, &format!("wide-{i}"));
    }
}

fn inventory_of(net: &Net, i: usize) -> usize {
    net.relay(i).json("/inventory").unwrap()["stripes"].as_object().unwrap().len()
}

/// Relays are killed and restarted at random while a client keeps putting and getting, for
/// `KURA_SOAK_SECONDS`. The README's test command (scripts/test.sh) sets it to 120; a plain
/// `cargo test` without it skips the soak and says so.
#[test]
fn churn_soak_loses_no_file() {
    let _alone = alone();
    let Some(secs) = std::env::var("KURA_SOAK_SECONDS").ok().and_then(|s| s.parse::<u64>().ok()) else {
        eprintln!("churn soak skipped: set KURA_SOAK_SECONDS (scripts/test.sh sets 120)");
        return;
    };
    let mut net = Net::start_with("soak", 8, FAST_REPAIR);
    let mut files = Files::put(&net, 8, 7).files;
    let start = Instant::now();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut kills, mut gets, mut down): (u32, u32, Option<(usize, Instant)>) = (0, 0, None);
    let mut last_kill = Instant::now();
    let dir = net.dir.path().join("soak-in");
    std::fs::create_dir_all(&dir).unwrap();
    let mut i = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        // One relay down at a time, for 5 to 30 s (some come back within the relays' grace
        // period, some are rebuilt first); a new victim 10 to 20 s after the last kill.
        match down {
            Some((r, since)) if since.elapsed() > Duration::from_secs(5 + next() % 25) => {
                net.restart(r);
                down = None;
            }
            None if last_kill.elapsed() > Duration::from_secs(10 + next() % 10) => {
                let r = (next() % net.relays.len() as u64) as usize;
                net.kill9(r);
                kills += 1;
                down = Some((r, Instant::now()));
                last_kill = Instant::now();
            }
            _ => {}
        }
        i += 1;
        let data = pseudo_random(32 * 1024 + (next() % (700 * 1024)) as usize, 50_000 + i);
        let path = dir.join(format!("s{i}"));
        std::fs::write(&path, &data).unwrap();
        let cap = net.put(&path, &[]).unwrap_or_else(|e| panic!("put during churn: {e}"));
        files.push((cap, data));
        let (cap, data) = &files[(next() % files.len() as u64) as usize];
        net.get_exact(cap, data, &format!("soak-{i}"));
        gets += 1;
    }
    if let Some((r, _)) = down {
        net.restart(r);
    }
    let stripes: BTreeSet<String> = inventory(&net).into_keys().collect();
    let settle = wait_full(&net, &stripes, Duration::from_secs(180), "redundancy after the churn");
    let all = Files { files };
    all.check_all(&net, "after-churn");
    let (bin, bout, rebuilt, _) = repair_traffic(&net);
    let elapsed = start.elapsed().as_secs_f64();
    let stored: u64 = net.live().map(|r| r.json("/status").unwrap()["bytes"].as_u64().unwrap()).sum();
    println!(
        "churn soak: {elapsed:.0} s, {kills} kills ({:.0} per hour), {} files put, {gets} gets, 0 lost, 0 wrong; \
         repair {bin} bytes in, {bout} bytes out, {rebuilt} rebuilds (counters of relays that were never \
         restarted), {:.0} MB/hour for {:.1} MB stored; settled {:.1} s after the last restart",
        kills as f64 * 3600.0 / elapsed,
        all.files.len(),
        bin as f64 * 3600.0 / elapsed / 1e6,
        stored as f64 / 1e6,
        settle.as_secs_f64()
    );
    assert!(kills >= 1 || secs < 20, "the soak killed no relay");
}
