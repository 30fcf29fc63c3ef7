//! Wire frames arriving in two pieces: the stream decoder and both message decoders never
//! panic, and a message that decodes round-trips.
#![no_main]
use kura_core::wire::{FrameDecoder, Message, Request, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut dec = FrameDecoder::new();
    dec.push(&data[..split]);
    let mut bodies = Vec::new();
    while let Ok(Some(b)) = dec.next_body() {
        bodies.push(b);
    }
    dec.push(&data[split..]);
    while let Ok(Some(b)) = dec.next_body() {
        bodies.push(b);
    }
    bodies.push(data.to_vec());
    for body in bodies {
        if let Ok(r) = Request::from_body(&body) {
            assert_eq!(Request::from_frame(&r.to_frame().expect("re-encodes")), Ok(r));
        }
        if let Ok(r) = Response::from_body(&body) {
            assert_eq!(Response::from_frame(&r.to_frame().expect("re-encodes")), Ok(r));
        }
    }
    let _ = Request::from_frame(data);
});
