//! Known-answer vectors in `tests/vectors/kat.json`, which another implementation can check
//! itself against. Input bytes are `byte[i] = (i * 31 + 7) % 251`. Run natively with
//! `KURA_BLESS=1` to rewrite the file after a deliberate format change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{encode_sliced, opts};
use kura_core::{Capability, ChunkKey, Secret, StripeId};
use serde_json::{json, Value};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const KAT: &str = include_str!("vectors/kat.json");

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn secret_of(s: &Option<[u8; 32]>) -> Secret {
    s.map_or(Secret::public(), Secret::private)
}

fn generate() -> Value {
    let secrets: [Option<[u8; 32]>; 2] = [None, Some([0x42; 32])];
    let mut keys = Vec::new();
    for s in &secrets {
        for len in [0usize, 1, 1000, 4096] {
            let key = ChunkKey::derive(&secret_of(s), &pattern(len));
            keys.push(json!({
                "secret": s.map(|b| hex(&b)),
                "plaintext_len": len,
                "key": hex(key.as_bytes()),
            }));
        }
    }
    let mut caps = Vec::new();
    for (r, k) in [(0u8, 0u8), (0xff, 0xff), (0x01, 0x80)] {
        let root: [u8; 32] = std::array::from_fn(|i| r.wrapping_add(i as u8));
        let key: [u8; 32] = std::array::from_fn(|i| k ^ (i as u8));
        let c = Capability { root: StripeId::from_bytes(root), key: ChunkKey::from_bytes(key) };
        caps.push(json!({ "root": hex(&root), "key": hex(&key), "text": c.to_text() }));
    }
    let mut files = Vec::new();
    type Case = (usize, usize, usize, usize, Option<[u8; 32]>);
    let cases: [Case; 6] = [
        (0, 4, 2, 4096, None),
        (1, 4, 2, 4096, None),
        (4096, 4, 2, 4096, None),
        (10_000, 3, 2, 4096, None),
        (10_000, 3, 2, 4096, Some([0x42; 32])),
        (300 * 4096 + 5, 2, 1, 4096, None),
    ];
    for (size, k, m, cs, secret) in cases {
        let (cap, store) =
            encode_sliced(&pattern(size), opts(k, m, cs, secret_of(&secret)), &[777], "vector.bin");
        let (first, first_shards) = &store.stripes[0];
        files.push(json!({
            "size": size, "k": k, "m": m, "chunk_size": cs,
            "secret": secret.map(|b| hex(&b)),
            "name": "vector.bin", "media_type": "application/octet-stream",
            "stripe_count": store.stripes.len(),
            "first_stripe": first.to_hex(),
            "first_stripe_header": hex(&store.headers[first]),
            "first_stripe_shards": first_shards.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
            "last_stripe": store.stripes.last().unwrap().0.to_hex(),
            "capability": cap.to_text(),
        }));
    }
    // Proofs of possession: shards of awkward lengths (the pattern), challenged by a holder
    // with a nonce; the chunk picked and the proof (chunk bytes and sibling chaining values).
    let mut proofs = Vec::new();
    for (n, len) in [1usize, 1024, 1025, 3000, 4097, 100_001].into_iter().enumerate() {
        let shard = pattern(len);
        let address = kura_core::ShardId::of(&shard);
        let nonce = [n as u8 + 11; kura_core::proof::NONCE_LEN];
        let holder = b"kura vector holder";
        let chunk = kura_core::proof::challenged_chunk(&nonce, holder, &address, len);
        let p = kura_core::proof::prove(&shard, chunk);
        proofs.push(json!({
            "shard_len": len,
            "address": hex(address.as_bytes()),
            "nonce": hex(&nonce),
            "holder": hex(holder),
            "chunk": chunk,
            "chunk_bytes": hex(&p.chunk),
            "siblings": p.siblings.iter().map(|s| hex(s)).collect::<Vec<_>>(),
        }));
    }
    // Ledger transfers: the postcard encoding, the id, the owner's ed25519 signature over the
    // id, and a replica's acknowledgement (its signature over the ack message).
    let mut transfers = Vec::new();
    type T = (u8, u64, u64, usize, &'static [u8]);
    let cases: [T; 3] =
        [(1, 1, 100, 0, b""), (2, 7, 300, 2, b"rent"), (3, 1 << 40, u64::MAX, 3, b"a memo of some length")];
    for (seed, seq, amount, deps, memo) in cases {
        use kura_core::ledger::{ack_message, Signer, Transfer};
        let owner = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let replica = ed25519_dalek::SigningKey::from_bytes(&[seed + 100; 32]);
        let t = Transfer {
            from: owner.key(),
            seq,
            to: std::array::from_fn(|i| seed ^ i as u8),
            amount,
            deps: (0..deps).map(|d| std::array::from_fn(|i| (d * 7 + i) as u8)).collect(),
            memo: memo.to_vec(),
        };
        let id = t.id();
        let signed = t.clone().sign(&owner);
        let ack = ack_message(&t.from, t.seq, &id);
        transfers.push(json!({
            "owner_seed": hex(&[seed; 32]),
            "owner_key": hex(&t.from),
            "seq": seq,
            "to": hex(&t.to),
            "amount": amount.to_string(),
            "deps": t.deps.iter().map(|d| hex(d)).collect::<Vec<_>>(),
            "memo": hex(memo),
            "encoding": hex(&postcard::to_allocvec(&t).unwrap()),
            "id": hex(&id),
            "owner_signature": hex(&signed.sig),
            "replica_seed": hex(&[seed + 100; 32]),
            "ack_message": hex(&ack),
            "ack_signature": hex(&replica.sign(&ack)),
        }));
    }
    json!({
        "format": "kura v1 known-answer vectors",
        "input": "byte[i] = (i * 31 + 7) % 251",
        "chunk_key_context": kura_core::crypto::CHUNK_KEY_CONTEXT,
        "chunk_keys": keys,
        "capabilities": caps,
        "files": files,
        "proof_domain": "kura possession challenge v1",
        "proofs": proofs,
        "transfer_domain": String::from_utf8_lossy(kura_core::ledger::TRANSFER_DOMAIN),
        "ack_domain": String::from_utf8_lossy(kura_core::ledger::ACK_DOMAIN),
        "transfers": transfers,
    })
}

#[test]
fn known_answer_vectors_match() {
    let got = generate();
    #[cfg(not(target_arch = "wasm32"))]
    if std::env::var_os("KURA_BLESS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/kat.json");
        std::fs::write(path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        return;
    }
    let want: Value = serde_json::from_str(KAT).expect("kat.json parses");
    for section in ["chunk_keys", "capabilities", "files", "proofs", "transfers"] {
        let (g, w) = (&got[section], &want[section]);
        assert_eq!(g.as_array().unwrap().len(), w.as_array().unwrap().len(), "{section} count");
        for (i, (g, w)) in g.as_array().unwrap().iter().zip(w.as_array().unwrap()).enumerate() {
            assert_eq!(g, w, "{section}[{i}] differs from kat.json");
        }
    }
    // The vectors decode too: every capability text parses back to its parts.
    for c in want["capabilities"].as_array().unwrap() {
        let cap = Capability::parse(c["text"].as_str().unwrap()).unwrap();
        assert_eq!(cap.root.to_hex(), c["root"].as_str().unwrap());
    }
}
