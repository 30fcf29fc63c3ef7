//! The simulator's Kademlia lookups held against a real network: thirty `kura-relay`
//! processes on 127.0.0.1, a file put by the real `kura` (one lookup per stripe: thirty
//! relays are more than a lookup's twenty, so the client never takes the network as known
//! whole), the requests its lookups sent, and the simulator's lookups (`kura_sim::kad`, the
//! model behind `docs/scale/lookups.md`) on thirty nodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_core::testdata::XorShift;
use kura_sim::kad::{lookup, Tables};
use kura_sim::population::{random_key, Population};
use kura_tests::net::Net;

const RELAYS: usize = 30;

/// The requests one lookup sends, real and simulated, agree within a third.
#[test]
fn a_puts_lookups_send_as_many_requests_as_the_simulator_says() {
    let net = Net::start("lookups", RELAYS);
    let file = net.dir.path().join("file");
    std::fs::write(&file, kura_tests::pseudo_random(8 << 20, 21)).unwrap();
    let mut args = vec!["put".to_owned(), file.to_str().unwrap().to_owned()];
    args.extend(net.bootstrap_args());
    let out = kura_tests::kura_command().env("KURA_LOOKUP_STATS", "1").args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "kura put: {stderr}");
    let line = stderr.lines().find(|l| l.starts_with("lookups ")).expect("the put's lookup figures");
    let words: Vec<&str> = line.split_whitespace().collect();
    let (lookups, requests): (f64, f64) = (words[1].parse().unwrap(), words[3].parse().unwrap());
    assert!(lookups >= 8.0, "one lookup per stripe at least: {line}");
    // The put sized the network from its lookups (thirty relays: more than a lookup finds,
    // so estimated, not counted) and took the width that size calls for.
    let width = stderr.lines().find(|l| l.starts_with("stripes ")).expect("the put's stripe width");
    let words: Vec<&str> = width.split([' ', '+']).collect();
    let (k, m, relays): (usize, usize, f64) =
        (words[1].parse().unwrap(), words[2].parse().unwrap(), words[7].parse().unwrap());
    assert!((15.0..=60.0).contains(&relays), "{RELAYS} relays estimated as {relays}: {width}");
    let chosen = kura_core::Params::for_network(relays);
    assert_eq!((k, m), (chosen.k(), chosen.m()), "{width}");
    eprintln!("{RELAYS} relays: {width}");
    let real = requests / lookups;

    let mut rng = XorShift(0x5eed_0003);
    let p = Population::random(RELAYS, &mut rng);
    let t = Tables::build(&p, &mut rng);
    let runs = 400;
    let sim: f64 = (0..runs)
        .map(|_| lookup(&p, &t, rng.below(RELAYS), &random_key(&mut rng)).messages as f64)
        .sum::<f64>()
        / runs as f64;
    eprintln!(
        "{RELAYS} relays: a put's {lookups} lookups sent {requests} requests, {real:.1} per lookup; \
         the simulator: {sim:.1} per lookup ({runs} lookups)"
    );
    let off = (real - sim).abs() / sim;
    assert!(
        off <= 1.0 / 3.0,
        "real {real:.1} vs simulated {sim:.1} requests per lookup: {:.0}% apart",
        off * 100.0
    );
}
