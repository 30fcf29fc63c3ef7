//! The decoder fed genuine, damaged, truncated, swapped and foreign headers and shards in
//! any order: it never panics and never returns wrong bytes.
#![no_main]
use kura_core::{Capability, Decoder, EncodeOptions, Encoder, FileMeta, Params, Secret, ShardId, StripeId};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::OnceLock;

struct Fixture {
    data: Vec<u8>,
    cap: Capability,
    headers: Vec<(StripeId, Vec<u8>)>,
    shards: Vec<(StripeId, Vec<u8>)>,
    by_address: HashMap<ShardId, usize>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let data: Vec<u8> = (0..300 * 1024usize).map(|i| (i * 7 % 253) as u8).collect();
        let opts =
            EncodeOptions { params: Params::new(3, 2).unwrap(), secret: Secret::public(), chunk_size: 4096 };
        let mut enc = Encoder::new(opts).unwrap();
        let mut headers = Vec::new();
        let mut shards = Vec::new();
        let mut keep = |s: kura_core::Stripe| -> Result<(), ()> {
            headers.push((s.id(), s.header_bytes().to_vec()));
            for (_, b) in s.shards() {
                shards.push((s.id(), b.to_vec()));
            }
            Ok(())
        };
        enc.push(&data, &mut keep).unwrap();
        let cap = enc.finish(FileMeta::default()).unwrap().drain(&mut keep).unwrap();
        let by_address = shards.iter().enumerate().map(|(i, (_, s))| (ShardId::of(s), i)).collect();
        Fixture { data, cap, headers, shards, by_address }
    })
}

fuzz_target!(|ops: &[u8]| {
    let f = fixture();
    let mut dec = if ops.first().is_some_and(|b| b & 1 == 1) {
        Decoder::new(f.cap)
    } else {
        let off = u64::from(*ops.get(1).unwrap_or(&0)) * 1000;
        Decoder::with_range(f.cap, off, 50_000)
    };
    let mut out = Vec::new();
    let header_of: HashMap<StripeId, &Vec<u8>> = f.headers.iter().map(|(i, h)| (*i, h)).collect();
    let mut i = 2;
    let mut steps = 0;
    while !dec.is_finished() && steps < 20_000 {
        steps += 1;
        match dec.next_output() {
            Ok(Some(pt)) => {
                out.extend_from_slice(&pt);
                continue;
            }
            Ok(None) => {}
            Err(_) => return,
        }
        let Some(id) = dec.wanted().first().copied() else { break };
        let op = ops.get(i).copied().unwrap_or(0);
        let arg = ops.get(i + 1).copied().unwrap_or(0);
        i += 2;
        let mut header = header_of.get(&id).map(|h| h.to_vec()).unwrap_or_default();
        if op & 0x80 != 0 && !header.is_empty() {
            let at = usize::from(arg) % header.len();
            header[at] ^= op;
        }
        if dec.add_header(id, &header).is_err() {
            return;
        }
        for (n, addr) in dec.shard_plan(&id).unwrap_or_default().into_iter().enumerate() {
            let Some(&at) = f.by_address.get(&addr) else { continue };
            let mut s = f.shards[at].1.clone();
            match (op >> (n % 4)) & 3 {
                0 => {}
                1 if !s.is_empty() => {
                    let at = usize::from(arg) % s.len();
                    s[at] ^= 1;
                }
                2 => s.truncate(usize::from(arg) % (s.len() + 1)),
                _ => s = f.shards[usize::from(arg) % f.shards.len()].1.clone(),
            }
            match dec.add_shard(id, s) {
                Ok(true) => break,
                Ok(false) | Err(kura_core::DecodeError::Stripe(_)) => {}
                Err(_) => return,
            }
        }
        if dec.shard_plan(&id).is_some() {
            // Not enough good shards: the caller would report this stripe unavailable.
            let _ = dec.unavailable(&id).to_string();
            return;
        }
    }
    // Whatever came out is exactly the corresponding bytes of the file.
    let start = if ops.first().is_some_and(|b| b & 1 == 1) {
        0
    } else {
        usize::from(*ops.get(1).unwrap_or(&0)) * 1000
    };
    assert!(out.len() <= f.data.len().saturating_sub(start));
    assert!(out == f.data[start..start + out.len()], "decoder returned wrong bytes");
});
