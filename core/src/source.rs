//! A synchronous driver for [`Decoder`] over any place shards can be read from
//! (a directory, a map in memory). The network client drives the decoder itself.

use crate::address::{ShardId, StripeId};
use crate::decoder::{DecodeError, Decoder};

/// Somewhere headers and shards can be looked up by address.
pub trait ShardSource {
    /// The header bytes stored for `stripe`, if any (they are verified by the decoder).
    fn header(&mut self, stripe: &StripeId) -> Option<Vec<u8>>;
    /// The bytes stored under `shard`, if any (verified by the decoder).
    fn shard(&mut self, shard: &ShardId) -> Option<Vec<u8>>;
    /// Told about every shard that failed verification, so the caller can report it.
    fn corrupt(&mut self, _stripe: &StripeId, _shard: &ShardId, _error: &DecodeError) {}
}

/// Runs `decoder` to the end, reading from `source` and handing plaintext to `out` in order.
pub fn decode_from<S: ShardSource, E: From<DecodeError>>(
    mut decoder: Decoder,
    source: &mut S,
    mut out: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    loop {
        while let Some(pt) = decoder.next_output()? {
            out(&pt)?;
        }
        if decoder.is_finished() {
            return Ok(());
        }
        for id in decoder.wanted() {
            if !decoder.has_header(&id) {
                let header = source.header(&id).ok_or(DecodeError::NoHeader { stripe: id })?;
                decoder.add_header(id, &header)?;
            }
            let plan = decoder.shard_plan(&id).unwrap_or_default();
            let mut complete = false;
            for shard in plan {
                let Some(bytes) = source.shard(&shard) else {
                    continue;
                };
                match decoder.add_shard(id, bytes) {
                    Ok(true) => {
                        complete = true;
                        break;
                    }
                    Ok(false) => {}
                    Err(e @ DecodeError::Stripe(crate::StripeError::UnknownShard { .. })) => {
                        source.corrupt(&id, &shard, &e)
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if !complete {
                return Err(decoder.unavailable(&id).into());
            }
            while let Some(pt) = decoder.next_output()? {
                out(&pt)?;
            }
        }
    }
}
