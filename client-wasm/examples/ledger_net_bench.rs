//! Transfer latency on a local network: `KURA_BENCH_RELAYS` (default 20) real `kura-relay`
//! processes on 127.0.0.1 (groups of 16, quorum 11, journals on disk) and wallets in this
//! process, as `kura wallet send` runs them (a lookup of the group, every member's view,
//! acknowledgements, the certificate applied by both groups).
//!
//! First one transfer at a time (`KURA_BENCH_TRANSFERS`, default 100), then
//! `KURA_BENCH_ACCOUNTS` accounts (default 20) sending at once, 10 transfers each. Prints
//! p50 and p99 latency and transfers per second, with an account's first transfer apart
//! (its replicas check the account with their group before they acknowledge anything for
//! it, once after each start); the last line is one JSON object. Build the
//! relay first: `cargo build --release -p kura-relay --bin kura-relay && cargo run --release
//! -p kura-client --example ledger_net_bench`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use kura_client::devnet::{Devnet, DevnetConfig};
use kura_client::net::{NetConfig, Network};
use kura_client::wallet;
use kura_core::ledger::{Signer, SigningKey};
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn key(i: usize) -> SigningKey {
    let mut seed = [3u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    SigningKey::from_bytes(&seed)
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

#[tokio::main]
async fn main() {
    let relays = env("KURA_BENCH_RELAYS", 20);
    let sequential = env("KURA_BENCH_TRANSFERS", 100);
    let accounts = env("KURA_BENCH_ACCOUNTS", 20);
    let bin_dir = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
    let work = std::env::temp_dir().join(format!("kura-ledger-net-bench-{}", std::process::id()));
    let mint = key(usize::MAX);
    let mint_hex: String = mint.key().iter().map(|b| format!("{b:02x}")).collect();
    let mut cfg = DevnetConfig::ephemeral(
        relays,
        work.join("net"),
        bin_dir.join("kura-relay"),
        vec!["--ledger-mint".into(), mint_hex],
    );
    // Identities from the test pool: each new one is seconds of join work.
    cfg.identities = Some(kura_client::devnet::TEST_IDENTITIES.into());
    let net = Devnet::start(&cfg).await.unwrap();
    let addrs = kura_client::bootstrap::resolve(&[net.bootstrap().unwrap().to_owned()]).await.unwrap();
    let client = Network::connect(&addrs, NetConfig::default()).await.unwrap();
    // Owners carry the account work: the test pool's wallets (made anew beyond it).
    let owners: Vec<SigningKey> = (0..accounts.max(2)).map(kura_core::testdata::account_key).collect();
    for o in &owners {
        wallet::send(&client, &mint, o.key(), 1_000_000, vec![]).await.unwrap();
    }

    // One at a time, between two accounts (their first transfers counted apart).
    let mut alone = Vec::with_capacity(sequential);
    let mut firsts = Vec::new();
    for i in 0..sequential + 2 {
        let (from, to) = (&owners[i % 2], &owners[(i + 1) % 2]);
        let start = Instant::now();
        wallet::send(&client, from, to.key(), 1, vec![]).await.unwrap();
        if i < 2 { &mut firsts } else { &mut alone }.push(start.elapsed());
    }

    // Every account at once, ten transfers each.
    let start = Instant::now();
    let loaded: Vec<Duration> = futures::stream::iter(0..owners.len())
        .map(|i| {
            let (client, owners) = (&client, &owners);
            async move {
                let mut out = Vec::new();
                for j in 0..10 {
                    let to = owners[(i + 1 + j) % owners.len()].key();
                    let t = Instant::now();
                    wallet::send(client, &owners[i], to, 1, vec![]).await.unwrap();
                    out.push((j == 0 && i >= 2, t.elapsed()));
                }
                out
            }
        })
        .buffer_unordered(owners.len())
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .filter_map(|(first, d)| {
            if first {
                firsts.push(d);
                None
            } else {
                Some(d)
            }
        })
        .collect();
    let loaded_per_s = (loaded.len() + firsts.len() - 2) as f64 / start.elapsed().as_secs_f64();
    drop(client);
    net.stop().unwrap();
    let _ = std::fs::remove_dir_all(&work);

    let (a50, a99) = percentiles(alone);
    let (l50, l99) = percentiles(loaded.clone());
    let (f50, f99) = percentiles(firsts.clone());
    println!("{relays} relays on 127.0.0.1, groups of 16 (quorum 11)");
    println!("one transfer at a time ({sequential}):     p50 {a50:7.1} ms   p99 {a99:7.1} ms");
    println!(
        "{} accounts at once ({} transfers): p50 {l50:7.1} ms   p99 {l99:7.1} ms   {loaded_per_s:.1} transfers/s",
        owners.len(),
        loaded.len()
    );
    println!("an account's first transfer ({}):  p50 {f50:7.1} ms   p99 {f99:7.1} ms", firsts.len());
    println!(
        "{{\"relays\":{relays},\"alone_p50_ms\":{a50:.1},\"alone_p99_ms\":{a99:.1},\"accounts\":{},\"loaded_p50_ms\":{l50:.1},\"loaded_p99_ms\":{l99:.1},\"loaded_per_s\":{loaded_per_s:.1},\"first_p50_ms\":{f50:.1},\"first_p99_ms\":{f99:.1}}}",
        owners.len()
    );
}
