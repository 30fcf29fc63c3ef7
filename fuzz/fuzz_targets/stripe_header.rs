//! Stripe header bytes: a header that parses is canonical and starts an assembler.
#![no_main]
use kura_core::{StripeAssembler, StripeHeader, StripeId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = StripeHeader::parse(data) {
        assert_eq!(h.to_bytes(), data, "a parsed header re-encodes to the same bytes");
        assert!(h.params().k() >= 2 && h.shards().len() == h.params().n());
        let mut asm = StripeAssembler::new(StripeId::of(data), data).expect("verified header");
        assert!(asm.add_shard(data.to_vec()).is_err() || h.shards().contains(&kura_core::ShardId::of(data)));
    }
});
