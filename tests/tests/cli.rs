//! The real `kura` binary, encoding to and decoding from a real directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kura_core::{StripeHeader, StripeId};
use kura_tests::{pseudo_random, Scratch};
use std::path::{Path, PathBuf};
use std::process::Output;

const MIB: usize = 1 << 20;

fn kura(args: &[&str]) -> Output {
    kura_tests::kura_command().args(args).output().unwrap()
}

fn encode(file: &Path, store: &Path, extra: &[&str]) -> String {
    let mut args = vec!["encode", file.to_str().unwrap(), "--store", store.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = kura(&args);
    assert!(out.status.success(), "encode failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "stdout is the capability alone: {stdout:?}");
    assert!(stdout.starts_with("kura1") && stdout.ends_with('\n'));
    stdout.trim().to_owned()
}

fn decode(cap: &str, store: &Path, out: &Path) -> Output {
    kura(&["decode", cap, "--store", store.to_str().unwrap(), "-o", out.to_str().unwrap()])
}

/// Every stripe in the store: its id and the paths of its shard files by index.
fn stripes(store: &Path) -> Vec<(StripeId, Vec<PathBuf>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(store.join("headers")).unwrap() {
        let e = e.unwrap();
        let id = StripeId::from_hex(e.file_name().to_str().unwrap()).unwrap();
        let h = StripeHeader::parse_verified(&id, &std::fs::read(e.path()).unwrap()).unwrap();
        let paths = h
            .shards()
            .iter()
            .map(|s| {
                let hex = s.to_hex();
                store.join("shards").join(&hex[..2]).join(hex)
            })
            .collect();
        out.push((id, paths));
    }
    out
}

fn shard_files(store: &Path) -> usize {
    std::fs::read_dir(store.join("shards"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum()
}

#[test]
fn round_trips_files_of_boundary_sizes() {
    let dir = Scratch::new("cli-sizes").unwrap();
    let store = dir.path().join("store");
    for (i, size) in [0, 1, MIB - 1, MIB, MIB + 1, 5 * MIB + 3].into_iter().enumerate() {
        let data = pseudo_random(size, i as u64);
        let file = dir.path().join(format!("in-{size}.bin"));
        std::fs::write(&file, &data).unwrap();
        let cap = encode(&file, &store, &[]);
        let out = dir.path().join(format!("out-{size}.bin"));
        let res = decode(&cap, &store, &out);
        assert!(res.status.success(), "decode {size}: {}", String::from_utf8_lossy(&res.stderr));
        assert!(std::fs::read(&out).unwrap() == data, "size {size}: bytes differ");
    }
}

#[test]
fn survives_any_m_shards_lost_or_corrupted_per_stripe_and_fails_cleanly_beyond() {
    let dir = Scratch::new("cli-loss").unwrap();
    let store = dir.path().join("store");
    let data = pseudo_random(3 * MIB + 12345, 99);
    let file = dir.path().join("in.bin");
    std::fs::write(&file, &data).unwrap();
    let cap = encode(&file, &store, &["--k", "4", "--m", "2"]);
    let all = stripes(&store);
    assert_eq!(all.len(), 5, "4 data stripes + the root");
    // Per stripe, lose one shard and corrupt another, at indices that vary per stripe.
    for (n, (_, paths)) in all.iter().enumerate() {
        std::fs::remove_file(&paths[n % 6]).unwrap();
        let victim = &paths[(n + 3) % 6];
        let mut b = std::fs::read(victim).unwrap();
        b[0] ^= 0xff;
        std::fs::write(victim, b).unwrap();
    }
    let out = dir.path().join("out.bin");
    let res = decode(&cap, &store, &out);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "decode with m lost: {stderr}");
    assert!(std::fs::read(&out).unwrap() == data);
    assert!(stderr.contains("corrupt"), "corrupt shards are reported: {stderr}");

    // A third loss in one data stripe: fewer than k remain.
    let (victim_id, paths) = all.iter().find(|(id, _)| stripes_holding_data(&store, id)).unwrap();
    let third = paths.iter().find(|p| p.exists()).unwrap();
    std::fs::remove_file(third).unwrap();
    let out2 = dir.path().join("out2.bin");
    let res = decode(&cap, &store, &out2);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success());
    assert!(
        stderr.contains("unavailable") && stderr.contains(&victim_id.to_hex()),
        "names the stripe: {stderr}"
    );
    assert!(!out2.exists(), "no output file is left");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") || n.starts_with("out2"))
        .collect();
    assert!(leftovers.is_empty(), "no partial file left: {leftovers:?}");
}

/// Whether stripe `id` is a file chunk (1 MiB) rather than the small data map root.
fn stripes_holding_data(store: &Path, id: &StripeId) -> bool {
    let b = std::fs::read(store.join("headers").join(id.to_hex())).unwrap();
    StripeHeader::parse(&b).unwrap().plaintext_len() == MIB
}

#[test]
fn custom_parameters_tolerate_m_losses() {
    let dir = Scratch::new("cli-params").unwrap();
    let store = dir.path().join("store");
    let data = pseudo_random(MIB / 2, 5);
    let file = dir.path().join("in.bin");
    std::fs::write(&file, &data).unwrap();
    let cap = encode(&file, &store, &["--k", "3", "--m", "3"]);
    for (_, paths) in stripes(&store) {
        for p in &paths[..3] {
            std::fs::remove_file(p).unwrap();
        }
    }
    let out = dir.path().join("out.bin");
    assert!(decode(&cap, &store, &out).status.success());
    assert!(std::fs::read(&out).unwrap() == data);
    let bad = kura(&["encode", file.to_str().unwrap(), "--store", store.to_str().unwrap(), "--k", "0"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("k (data shards)"));
}

#[test]
fn public_dedups_private_does_not() {
    let dir = Scratch::new("cli-dedup").unwrap();
    let store = dir.path().join("store");
    let data = pseudo_random(2 * MIB, 6);
    let file = dir.path().join("same.bin");
    std::fs::write(&file, &data).unwrap();
    let a = encode(&file, &store, &[]);
    let files = shard_files(&store);
    let b = encode(&file, &store, &[]);
    assert_eq!(a, b, "same public file, same capability");
    assert_eq!(shard_files(&store), files, "no new shards stored");
    let p1 = encode(&file, &store, &["--private"]);
    let p2 = encode(&file, &store, &["--private"]);
    assert_ne!(p1, p2);
    assert_ne!(p1, a);
    assert_eq!(shard_files(&store), files * 3, "private copies share nothing");
    let out = dir.path().join("out.bin");
    assert!(decode(&p2, &store, &out).status.success());
    assert!(std::fs::read(&out).unwrap() == data);
}

#[test]
fn invalid_capabilities_and_stores_are_clear_errors() {
    let dir = Scratch::new("cli-bad").unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let out = dir.path().join("out.bin");
    for (cap, expect) in
        [("hello", "must start with"), ("kura1abc", "characters after"), ("kura9aaaa", "version")]
    {
        let res = decode(cap, &store, &out);
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(!res.status.success());
        assert!(stderr.contains("invalid capability") && stderr.contains(expect), "{cap}: {stderr}");
    }
    // A well-formed capability for data that is not in the store.
    let file = dir.path().join("x.txt");
    std::fs::write(&file, b"hello").unwrap();
    let cap = encode(&file, &dir.path().join("other"), &[]);
    let res = decode(&cap, &store, &out);
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("no copy of its header"));
    assert!(!out.exists());
    let res = decode(&cap, &dir.path().join("missing"), &out);
    assert!(String::from_utf8_lossy(&res.stderr).contains("not a directory"));
}
