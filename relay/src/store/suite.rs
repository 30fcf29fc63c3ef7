//! One test suite for every store implementation, over sizes at the boundaries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use kura_core::encoder::encode_single_chunk;
use kura_core::{EncodeOptions, Params, Stripe};

fn stripe(len: usize, seed: u8) -> Stripe {
    let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
    let opts = EncodeOptions { params: Params::new(4, 2).unwrap(), ..EncodeOptions::default() };
    encode_single_chunk(&opts, &data).unwrap().0
}

/// Stores shard `i` of `s` (a store keeps one shard of a stripe).
fn put_one(store: &dyn ShardStore, s: &Stripe, i: usize) {
    assert_eq!(store.put(s.header_bytes(), s.shard(i)).unwrap() as usize, i);
}

pub(super) fn round_trips_at_boundary_sizes(store: &dyn ShardStore) {
    for (n, len) in [0usize, 1, 1024, 4095, 4096, 4097, (1 << 20) - 1, 1 << 20].into_iter().enumerate() {
        let s = stripe(len, n as u8);
        // A zero-length stripe pads every data shard alike: index 0 is the one to store.
        let i = if len == 0 { 0 } else { n % 6 };
        put_one(store, &s, i);
        let held = store.get(&s.id()).unwrap().expect("held");
        assert_eq!(held.header, s.header_bytes());
        assert_eq!(held.shards, vec![(i as u8, s.shard(i).to_vec())], "len {len}");
    }
    let all = store.inventory().unwrap();
    assert_eq!(all.len(), 8);
    // A window from any place, wrapping round: the stripes that follow in id order.
    for (start, want) in [(0usize, 3usize), (5, 3), (6, 5), (7, 8), (3, 20)] {
        let got = store.inventory_from(&all[start].0, want).unwrap();
        let expect: Vec<_> = all.iter().cycle().skip(start).take(want.min(all.len())).cloned().collect();
        assert_eq!(got, expect, "a window of {want} from stripe {start}");
    }
    // From an id between two held ones: the next held one first.
    let mut between = *all[2].0.as_bytes();
    between[31] = between[31].wrapping_add(1);
    let between = StripeId::from_bytes(between);
    let next = all.iter().find(|(s, _)| *s >= between).unwrap_or(&all[0]);
    assert_eq!(store.inventory_from(&between, 1).unwrap(), vec![next.clone()]);
}

pub(super) fn one_shard_of_a_stripe_is_kept(store: &dyn ShardStore) {
    let s = stripe(5000, 11);
    put_one(store, &s, 2);
    let u = store.usage();
    let e = store.put(s.header_bytes(), s.shard(4)).unwrap_err();
    assert!(matches!(e, StoreError::AlreadyHeld { index: 2, .. }), "{e}");
    assert_eq!(e.code(), ErrorCode::AlreadyHeld);
    assert_eq!(store.usage(), u, "nothing written");
    assert_eq!(store.holds(&[s.id()]).unwrap(), vec![(s.id(), vec![2])]);
}

pub(super) fn a_shard_of_the_wrong_length_is_refused(store: &dyn ShardStore) {
    // A header whose index 0 names a blob longer than the header's shard length.
    let s = stripe(5000, 12);
    let blob = vec![7u8; s.shard(0).len() + 1];
    let mut header = s.header_bytes().to_vec();
    let at = header.len() - 6 * 32;
    header[at..at + 32].copy_from_slice(ShardId::of(&blob).as_bytes());
    let e = store.put(&header, &blob).unwrap_err();
    assert!(matches!(e, StoreError::WrongLength { .. }), "{e}");
    assert_eq!(e.code(), ErrorCode::Malformed);
    assert_eq!(store.usage().bytes, 0);
}

pub(super) fn puts_are_idempotent_and_accounted(store: &dyn ShardStore) {
    let s = stripe(5000, 1);
    store.put(s.header_bytes(), s.shard(2)).unwrap();
    let u = store.usage();
    assert_eq!(u.bytes, (s.header_bytes().len() + s.shard(2).len()) as u64);
    assert_eq!(u.shards, 1);
    assert_eq!(store.put(s.header_bytes(), s.shard(2)).unwrap(), 2);
    assert_eq!(store.usage(), u, "a repeated put costs nothing");
    assert_eq!(store.holds(&[s.id(), StripeId::from_bytes([0; 32])]).unwrap(), vec![(s.id(), vec![2])]);
}

pub(super) fn parts_read_pieces_of_the_lowest_index(store: &dyn ShardStore) {
    let s = stripe(100_000, 7);
    assert_eq!(store.part(&s.id(), 0, 10).unwrap(), None, "nothing held yet");
    store.put(s.header_bytes(), s.shard(1)).unwrap();
    let shard = s.shard(1);
    let mut back = Vec::new();
    let mut offset = 0;
    while offset < shard.len() + 10 {
        let p = store.part(&s.id(), offset, 8192).unwrap().expect("held");
        assert_eq!(p.header, s.header_bytes());
        assert_eq!(p.total, shard.len());
        back.extend_from_slice(&p.bytes);
        offset += 8192;
    }
    assert!(back == shard, "parts of the shard held put together are the shard");
    let past = store.part(&s.id(), shard.len() + 5, 100).unwrap().expect("held");
    assert!(past.bytes.is_empty(), "past the end: no bytes, still the length");
}

pub(super) fn sole_puts_and_removals(store: &dyn ShardStore) {
    let s = stripe(7000, 9);
    assert_eq!(store.header(&s.id()).unwrap(), None);
    assert_eq!(store.put_sole(s.header_bytes(), s.shard(3)).unwrap(), 3);
    let e = store.put_sole(s.header_bytes(), s.shard(1)).unwrap_err();
    assert!(matches!(e, StoreError::AlreadyHeld { index: 3, .. }), "{e}");
    assert_eq!(e.code(), ErrorCode::AlreadyHeld);
    assert_eq!(store.holds(&[s.id()]).unwrap(), vec![(s.id(), vec![3])], "nothing written");
    assert_eq!(store.header(&s.id()).unwrap().as_deref(), Some(s.header_bytes()));
    assert!(!store.remove(&s.id(), 1).unwrap());
    assert!(store.remove(&s.id(), 3).unwrap());
    assert_eq!(store.header(&s.id()).unwrap(), None, "the header goes with the last shard");
    assert_eq!(store.usage().bytes, 0);
    assert_eq!(store.usage().shards, 0);
}

pub(super) fn refuses_bad_input_and_writes_nothing(store: &dyn ShardStore) {
    let s = stripe(3000, 2);
    let other = stripe(3000, 3);
    let e = store.put(s.header_bytes(), other.shard(0)).unwrap_err();
    assert!(matches!(e, StoreError::NotInStripe { .. }), "{e}");
    assert_eq!(e.code(), ErrorCode::BadHash);
    let mut shard = s.shard(0).to_vec();
    shard[0] ^= 1;
    assert!(matches!(store.put(s.header_bytes(), &shard), Err(StoreError::NotInStripe { .. })));
    let mut header = s.header_bytes().to_vec();
    header.truncate(20);
    let e = store.put(&header, s.shard(0)).unwrap_err();
    assert!(matches!(e, StoreError::BadHeader(_)));
    assert_eq!(e.code(), ErrorCode::Malformed);
    assert!(store.put(&[], &[]).is_err());
    assert_eq!(store.usage().bytes, 0);
    assert!(store.get(&s.id()).unwrap().is_none());
    assert!(store.inventory().unwrap().is_empty());
}

pub(super) fn quota_full_is_reported_before_writing(store: &dyn ShardStore) {
    // The suite gives this store a quota of 100 KiB.
    let s = stripe(1 << 20, 4);
    let small = stripe(10_000, 5);
    put_one(store, &small, 3);
    let before = store.usage();
    let e = store.put(s.header_bytes(), s.shard(0)).unwrap_err();
    assert!(matches!(e, StoreError::QuotaFull { .. }), "{e}");
    assert_eq!(e.code(), ErrorCode::QuotaFull);
    assert_eq!(store.usage(), before, "nothing half-written");
    assert!(store.get(&s.id()).unwrap().is_none());
    let held = store.get(&small.id()).unwrap().unwrap();
    assert_eq!(held.shards, vec![(3, small.shard(3).to_vec())], "what was there is intact");
}

/// Runs `f(i)` on `n` threads released at once.
fn at_once<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let gate = std::sync::Barrier::new(n);
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let (gate, f) = (&gate, &f);
                sc.spawn(move || {
                    gate.wait();
                    f(i)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

pub(super) fn concurrent_writes_count_once(store: &dyn ShardStore) {
    // Eight writers over four stripes: every shard is written by two of them at once.
    let stripes: Vec<Stripe> = (0..4).map(|i| stripe(20_000, 40 + i)).collect();
    at_once(8, |t| put_one(store, &stripes[t % 4], t % 4));
    let want: u64 =
        stripes.iter().enumerate().map(|(i, s)| (s.header_bytes().len() + s.shard(i).len()) as u64).sum();
    assert_eq!(store.usage().bytes, want, "each header and shard counted once");
    assert_eq!(store.usage().shards, 4);
    for (i, s) in stripes.iter().enumerate() {
        let held = store.get(&s.id()).unwrap().expect("held");
        assert_eq!(held.shards, vec![(i as u8, s.shard(i).to_vec())]);
    }
}

pub(super) fn concurrent_sole_writes_keep_one(store: &dyn ShardStore) {
    for round in 0..5u8 {
        let s = stripe(30_000, 60 + round);
        let results = at_once(6, |i| store.put_sole(s.header_bytes(), s.shard(i)));
        let won: Vec<u8> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
        assert_eq!(won.len(), 1, "round {round}: exactly one sole write wins: {results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, StoreError::AlreadyHeld { index, .. } if *index == won[0]), "{e}");
            }
        }
        assert_eq!(store.holds(&[s.id()]).unwrap(), vec![(s.id(), won.clone())]);
    }
    assert_eq!(store.usage().shards, 5, "one shard per stripe, no more");
}

pub(super) fn concurrent_writes_stay_within_the_quota(store: &dyn ShardStore) {
    // The suite gives this store room for three and a half of these writes.
    let stripes: Vec<Stripe> = (0..8).map(|i| stripe(40_000, 80 + i)).collect();
    let cost = (stripes[0].header_bytes().len() + stripes[0].shard(0).len()) as u64;
    assert_eq!(store.usage().quota, cost * 7 / 2);
    let results = at_once(8, |i| store.put(stripes[i].header_bytes(), stripes[i].shard(0)));
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3, "{results:?}");
    assert!(results.iter().all(|r| matches!(r, Ok(0) | Err(StoreError::QuotaFull { .. }))), "{results:?}");
    assert_eq!(store.usage().bytes, cost * 3);
    assert_eq!(store.usage().shards, 3);
}

/// The quota [`concurrent_writes_stay_within_the_quota`] needs.
fn room_for_three_and_a_half() -> u64 {
    let s = stripe(40_000, 80);
    (s.header_bytes().len() + s.shard(0).len()) as u64 * 7 / 2
}

macro_rules! suite {
    ($modname:ident, $make:expr) => {
        mod $modname {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn round_trips_at_boundary_sizes() {
                let (_g, s) = $make(u64::MAX);
                super::round_trips_at_boundary_sizes(&s);
            }
            #[test]
            fn one_shard_of_a_stripe_is_kept() {
                let (_g, s) = $make(u64::MAX);
                super::one_shard_of_a_stripe_is_kept(&s);
            }
            #[test]
            fn a_shard_of_the_wrong_length_is_refused() {
                let (_g, s) = $make(u64::MAX);
                super::a_shard_of_the_wrong_length_is_refused(&s);
            }
            #[test]
            fn puts_are_idempotent_and_accounted() {
                let (_g, s) = $make(u64::MAX);
                super::puts_are_idempotent_and_accounted(&s);
            }
            #[test]
            fn parts_read_pieces_of_the_lowest_index() {
                let (_g, s) = $make(u64::MAX);
                super::parts_read_pieces_of_the_lowest_index(&s);
            }
            #[test]
            fn sole_puts_and_removals() {
                let (_keep, store) = $make(1 << 30);
                super::sole_puts_and_removals(&store);
            }

            #[test]
            fn refuses_bad_input_and_writes_nothing() {
                let (_g, s) = $make(u64::MAX);
                super::refuses_bad_input_and_writes_nothing(&s);
            }
            #[test]
            fn concurrent_writes_count_once() {
                let (_g, s) = $make(u64::MAX);
                super::concurrent_writes_count_once(&s);
                super::no_stray_files(&_g, &s);
            }
            #[test]
            fn concurrent_sole_writes_keep_one() {
                let (_g, s) = $make(u64::MAX);
                super::concurrent_sole_writes_keep_one(&s);
                super::no_stray_files(&_g, &s);
            }
            #[test]
            fn concurrent_writes_stay_within_the_quota() {
                let (_g, s) = $make(super::room_for_three_and_a_half());
                super::concurrent_writes_stay_within_the_quota(&s);
                super::no_stray_files(&_g, &s);
            }
            #[test]
            fn quota_full_is_reported_before_writing() {
                let (_g, s) = $make(100 * 1024);
                super::quota_full_is_reported_before_writing(&s);
            }
        }
    };
}

/// On disk, exactly one file per shard held: no temporary or unnamed file is left behind.
fn no_stray_files(dir: &impl StoreDir, store: &dyn ShardStore) {
    let Some(dir) = dir.shards() else { return };
    let mut files = 0;
    for sub in std::fs::read_dir(dir).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let name = f.unwrap().file_name();
            assert!(ShardId::from_hex(name.to_str().unwrap()).is_some(), "stray file {name:?}");
            files += 1;
        }
    }
    assert_eq!(files, store.usage().shards, "one file per shard held");
}

/// Where a store made by the suite keeps shard files, if it has any.
trait StoreDir {
    fn shards(&self) -> Option<std::path::PathBuf>;
}

impl StoreDir for () {
    fn shards(&self) -> Option<std::path::PathBuf> {
        None
    }
}

impl StoreDir for kura_tests::Scratch {
    fn shards(&self) -> Option<std::path::PathBuf> {
        Some(self.path().join("shards"))
    }
}

fn mem(quota: u64) -> ((), MemStore) {
    ((), MemStore::new(quota))
}

fn disk(quota: u64) -> (kura_tests::Scratch, FsStore) {
    let dir = kura_tests::Scratch::new("store").unwrap();
    let s = FsStore::open(dir.path(), quota).unwrap();
    (dir, s)
}

suite!(mem_store, mem);
suite!(fs_store, disk);

#[test]
fn mem_store_detects_tampered_shards() {
    let store = MemStore::new(u64::MAX);
    let s = stripe(4000, 6);
    put_one(&store, &s, 1);
    store.tamper(&s.header().shards()[1], |b| b[0] ^= 1);
    assert!(matches!(store.get(&s.id()), Err(StoreError::Corrupt { .. })));
    assert_eq!(store.get(&s.id()).unwrap(), None, "the bad shard was dropped");
}

#[test]
fn fs_store_survives_reopen_and_detects_disk_corruption() {
    let dir = kura_tests::Scratch::new("store-reopen").unwrap();
    let s = stripe(70_000, 7);
    let usage = {
        let store = FsStore::open(dir.path(), u64::MAX).unwrap();
        put_one(&store, &s, 3);
        store.usage()
    };
    let store = FsStore::open(dir.path(), u64::MAX).unwrap();
    assert_eq!(store.usage(), usage, "counters persist");
    assert_eq!(store.get(&s.id()).unwrap().unwrap().shards.len(), 1);
    // Change one byte of shard 3 on disk.
    let hex = s.header().shards()[3].to_hex();
    let path = dir.path().join("shards").join(&hex[..2]).join(&hex);
    let mut b = std::fs::read(&path).unwrap();
    b[10] ^= 0x80;
    std::fs::write(&path, b).unwrap();
    let e = store.get(&s.id()).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }));
    assert_eq!(e.code(), ErrorCode::BadHash);
    assert!(!path.exists(), "the corrupt file is removed");
    assert_eq!(store.holds(&[s.id()]).unwrap(), vec![]);
    assert_eq!(store.usage().bytes, 0, "the header went with its last shard");
}

#[test]
fn fs_store_read_errors_drop_nothing_and_a_missing_file_is_a_lost_shard() {
    let dir = kura_tests::Scratch::new("store-read-errors").unwrap();
    let store = FsStore::open(dir.path(), u64::MAX).unwrap();
    let (a, b) = (stripe(9000, 21), stripe(9000, 22));
    put_one(&store, &a, 2);
    put_one(&store, &b, 4);
    let file = |s: &Stripe, i: usize| {
        let hex = s.header().shards()[i].to_hex();
        dir.path().join("shards").join(&hex[..2]).join(&hex)
    };
    // A read that fails (here: the path is a directory, EISDIR; under attack: EMFILE) is an
    // error, not a verdict on the shard.
    let saved = std::fs::read(file(&a, 2)).unwrap();
    std::fs::remove_file(file(&a, 2)).unwrap();
    std::fs::create_dir(file(&a, 2)).unwrap();
    let e = store.get(&a.id()).unwrap_err();
    assert!(matches!(e, StoreError::Io(_)), "{e}");
    assert_eq!(e.code(), ErrorCode::Internal);
    assert!(store.part(&a.id(), 0, 100).is_err());
    assert_eq!(store.holds(&[a.id()]).unwrap(), vec![(a.id(), vec![2])], "still held");
    std::fs::remove_dir(file(&a, 2)).unwrap();
    std::fs::write(file(&a, 2), &saved).unwrap();
    assert_eq!(store.get(&a.id()).unwrap().unwrap().shards, vec![(2, a.shard(2).to_vec())]);
    // A file that is gone is a shard lost: dropped, so the relay stops claiming it.
    std::fs::remove_file(file(&b, 4)).unwrap();
    assert!(matches!(store.get(&b.id()), Err(StoreError::Corrupt { .. })));
    assert_eq!(store.holds(&[b.id()]).unwrap(), vec![]);
    assert_eq!(store.usage().shards, 1);
}

#[test]
fn fs_store_removes_orphans_and_temporaries_at_open() {
    let dir = kura_tests::Scratch::new("store-orphans").unwrap();
    drop(FsStore::open(dir.path(), u64::MAX).unwrap());
    // As if a crash came between the rename and the metadata commit, or before the rename.
    let orphan = dir.path().join("shards").join("ab").join("ab".repeat(32));
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"orphan").unwrap();
    let tmp = orphan.with_extension("tmp");
    std::fs::write(&tmp, b"half").unwrap();
    let store = FsStore::open(dir.path(), u64::MAX).unwrap();
    assert!(!orphan.exists() && !tmp.exists());
    assert_eq!(store.usage().shards, 0);
}
