//! The reader that faces the network: a frame read piece by piece (as relays read every
//! inbound request and clients every answer), arriving in pieces of fuzzer-chosen sizes.
//! It never panics, gives back every byte it counted, and agrees with decoding the whole
//! body at once: the same message, or an error for the same bodies.
#![no_main]
use futures::io::AsyncRead;
use kura_core::wire::{Message, Request, Response};
use kura_p2p::protocol::{read_request, read_response, ReadBudget};
use libfuzzer_sys::fuzz_target;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Gives the bytes in pieces whose sizes come from `sizes` (cycled), as a stream would.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    at: usize,
    turn: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let size = match self.sizes.get(self.turn % self.sizes.len().max(1)) {
            Some(&s) => usize::from(s).max(1),
            None => usize::MAX,
        };
        self.turn += 1;
        let n = size.min(buf.len()).min(self.data.len() - self.at);
        let at = self.at;
        buf[..n].copy_from_slice(&self.data[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(n))
    }
}

fuzz_target!(|input: &[u8]| {
    let split = input.first().map_or(0, |b| usize::from(*b) % 16).min(input.len().saturating_sub(1));
    let (sizes, frame) = input.get(1..).unwrap_or_default().split_at(split);
    let budget = ReadBudget::new(64 << 20);
    let body = body_of(frame);
    futures::executor::block_on(async {
        let mut io = Pieces { data: frame, sizes, at: 0, turn: 0 };
        // A stream that ends inside the 4-byte length is the stream's failure, not the bytes'.
        let got = match read_request(&mut io, &budget).await {
            Ok(got) => got,
            Err(e) => return assert!(frame.len() < 4, "{e} reading a frame of {} bytes", frame.len()),
        };
        match body {
            Some(body) => match Request::from_body(body) {
                Ok(want) => assert_eq!(got, Ok(want)),
                Err(e) => assert!(got.is_err(), "read {got:?} where decoding says {e}"),
            },
            None => assert!(got.is_err(), "read {got:?} from an incomplete frame"),
        }
        assert_eq!(budget.used(), 0, "a request read gave back every byte");
        let mut io = Pieces { data: frame, sizes, at: 0, turn: 0 };
        let got = read_response(&mut io, &budget).await.expect("the length was read above");
        match body {
            Some(body) => match Response::from_body(body) {
                Ok(want) => assert_eq!(got, Ok(want)),
                Err(e) => assert!(got.is_err(), "read {got:?} where decoding says {e}"),
            },
            None => assert!(got.is_err(), "read {got:?} from an incomplete frame"),
        }
        assert_eq!(budget.used(), 0, "an answer read gave back every byte");
    });
});

/// The body of `frame` (after its 4-byte length), if all of it is there; bytes after it are
/// not read.
fn body_of(frame: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(frame.get(..4)?.try_into().ok()?) as usize;
    frame.get(4..4 + len)
}
