//! What draws cost, measured: `cargo run --release -p kura-core --example draw_bench`.
//!
//! Side by side in one run, with real keys: making a draw (a VRF proof, what a neighbour
//! does once per relay and epoch) and checking one, against signing and verifying an ed25519
//! signature (what an auditor's share costs); then a whole beacon (`farming::beacon`: 32
//! draws checked, what an auditor and a replica do per claim and per deposit) against
//! checking a reward certificate's 22 shares. `KURA_BENCH_DRAWS` rounds (default 200);
//! times are p50 and p99 in microseconds; the last line is one JSON object.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_core::farming::{beacon, draw_input, Draw, AUDIT_GROUP, AUDIT_QUORUM};
use kura_core::ledger::{Ed25519, Signer, SigningKey, Verifier};
use std::time::{Duration, Instant};

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

fn timed(rounds: usize, mut f: impl FnMut(usize)) -> (f64, f64) {
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let start = Instant::now();
        f(i);
        times.push(start.elapsed());
    }
    percentiles(times)
}

fn main() {
    let rounds: usize = std::env::var("KURA_BENCH_DRAWS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let seeds: Vec<[u8; 32]> = (0..AUDIT_GROUP as u8).map(|i| [i + 1; 32]).collect();
    let keys: Vec<SigningKey> = seeds.iter().map(SigningKey::from_bytes).collect();
    let group: Vec<[u8; 32]> = keys.iter().map(Signer::key).collect();
    let relay = b"a relay's peer id bytes";
    let input = draw_input(relay, 7);

    let prove = timed(rounds, |i| {
        std::hint::black_box(Draw::make(&seeds[i % seeds.len()], relay, 7));
    });
    let draws: Vec<Draw> = seeds.iter().map(|s| Draw::make(s, relay, 7)).collect();
    let check = timed(rounds, |i| {
        let d = &draws[i % draws.len()];
        std::hint::black_box(kura_core::vrf::verify(&d.drawer, &input, &d.proof).unwrap());
    });
    let msg = b"a reward share's message, about a hundred bytes long, as auditors sign them each epoch";
    let sign = timed(rounds, |i| {
        std::hint::black_box(keys[i % keys.len()].sign(msg));
    });
    let sigs: Vec<_> = keys.iter().map(|k| k.sign(msg)).collect();
    let verify = timed(rounds, |i| {
        let j = i % keys.len();
        assert!(Ed25519.verify(&group[j], msg, &sigs[j]));
    });
    let whole = timed(rounds / 10 + 1, |_| {
        std::hint::black_box(beacon(relay, 7, &group, &draws).unwrap());
    });
    let shares = timed(rounds / 10 + 1, |_| {
        for j in 0..AUDIT_QUORUM {
            assert!(Ed25519.verify(&group[j], msg, &sigs[j]));
        }
    });
    let proof_bytes = postcard::to_allocvec(&draws[0].proof).unwrap().len();
    println!("one operation, p50 / p99 in µs ({rounds} rounds):");
    println!(
        "  make a draw (VRF proof)    {:>8.1} / {:>8.1}   ed25519 sign   {:>8.1} / {:>8.1}   ratio {:.1}",
        prove.0,
        prove.1,
        sign.0,
        sign.1,
        prove.0 / sign.0
    );
    println!(
        "  check a draw               {:>8.1} / {:>8.1}   ed25519 verify {:>8.1} / {:>8.1}   ratio {:.1}",
        check.0,
        check.1,
        verify.0,
        verify.1,
        check.0 / verify.0
    );
    println!(
        "  a beacon of {AUDIT_GROUP} draws   {:>8.1} / {:>8.1}   {AUDIT_QUORUM} shares' signatures {:>8.1} / {:>8.1}   ratio {:.1}",
        whole.0,
        whole.1,
        shares.0,
        shares.1,
        whole.0 / shares.0
    );
    println!("  a proof is {proof_bytes} bytes on the wire");
    println!(
        "{{\"prove_us_p50\":{:.1},\"check_us_p50\":{:.1},\"sign_us_p50\":{:.1},\"verify_us_p50\":{:.1},\"beacon_us_p50\":{:.1},\"shares_us_p50\":{:.1},\"proof_bytes\":{proof_bytes}}}",
        prove.0, check.0, sign.0, verify.0, whole.0, shares.0
    );
}
