//! Shared helpers for kura-core's tests, native and wasm32 alike.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use kura_core::{
    decode_from, Capability, DecodeError, Decoder, EncodeOptions, Encoder, FileMeta, Params, Secret, ShardId,
    ShardSource, Stripe, StripeId,
};
use std::collections::HashMap;

/// Deterministic pseudo-random bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    kura_core::testdata::pseudo_random(len, seed)
}

/// An in-memory shard store (a unit-test fake for the directory and relay stores).
#[derive(Default, Clone)]
pub struct MemStore {
    pub headers: HashMap<StripeId, Vec<u8>>,
    pub shards: HashMap<ShardId, Vec<u8>>,
    /// Stripes in the order they were produced.
    pub stripes: Vec<(StripeId, Vec<ShardId>)>,
    pub corrupt_seen: Vec<ShardId>,
}

impl MemStore {
    pub fn put(&mut self, s: &Stripe) {
        self.headers.insert(s.id(), s.header_bytes().to_vec());
        let ids: Vec<ShardId> = s
            .shards()
            .map(|(id, b)| {
                self.shards.insert(id, b.to_vec());
                id
            })
            .collect();
        self.stripes.push((s.id(), ids));
    }
    /// Removes shard `index` of every stripe.
    pub fn drop_index(&mut self, index: usize) {
        for (_, ids) in &self.stripes {
            if let Some(id) = ids.get(index) {
                self.shards.remove(id);
            }
        }
    }
}

impl ShardSource for MemStore {
    fn header(&mut self, stripe: &StripeId) -> Option<Vec<u8>> {
        self.headers.get(stripe).cloned()
    }
    fn shard(&mut self, shard: &ShardId) -> Option<Vec<u8>> {
        self.shards.get(shard).cloned()
    }
    fn corrupt(&mut self, _stripe: &StripeId, shard: &ShardId, _error: &DecodeError) {
        self.corrupt_seen.push(*shard);
    }
}

pub fn opts(k: usize, m: usize, chunk_size: usize, secret: Secret) -> EncodeOptions {
    EncodeOptions { params: Params::new(k, m).unwrap(), secret, chunk_size }
}

/// Encodes `data`, fed in pieces of the given lengths (cycled), into a fresh store.
pub fn encode_sliced(data: &[u8], o: EncodeOptions, slices: &[usize], name: &str) -> (Capability, MemStore) {
    let mut store = MemStore::default();
    let mut enc = Encoder::new(o).unwrap();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = slices[i % slices.len()].clamp(1, rest.len());
        i += 1;
        enc.push(&rest[..n], |s| -> Result<(), ()> {
            store.put(&s);
            Ok(())
        })
        .unwrap();
        rest = &rest[n..];
    }
    let meta = FileMeta { name: name.into(), media_type: "application/octet-stream".into() };
    let cap = enc
        .finish(meta)
        .unwrap()
        .drain(|s| -> Result<(), ()> {
            store.put(&s);
            Ok(())
        })
        .unwrap();
    (cap, store)
}

pub fn encode(data: &[u8], o: EncodeOptions) -> (Capability, MemStore) {
    encode_sliced(data, o, &[data.len().max(1)], "file.bin")
}

pub fn decode(decoder: Decoder, store: &mut MemStore) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    decode_from(decoder, store, |pt: &[u8]| -> Result<(), DecodeError> {
        out.extend_from_slice(pt);
        Ok(())
    })?;
    Ok(out)
}

pub fn decode_all(cap: Capability, store: &mut MemStore) -> Result<Vec<u8>, DecodeError> {
    decode(Decoder::new(cap), store)
}
