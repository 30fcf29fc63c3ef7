//! The audit protocol's readers, facing the network: a challenge read by a relay and an
//! answer read by an auditor, from any bytes. They never panic, never read a body over the
//! protocol's limits, and agree with decoding the whole body: a challenge is a `Prove`, a
//! `Report` or an error, an answer a `Proof`, an `Accepted`, an `Error` or an error.
#![no_main]
use futures::io::Cursor;
use kura_core::wire::{Request, Response};
use kura_p2p::audit::{
    decode_answer, decode_challenge, AuditCodec, AUDIT_PROTOCOL, MAX_ANSWER_BODY, MAX_CHALLENGE_BODY,
};
use libfuzzer_sys::fuzz_target;
use libp2p::request_response::Codec;

fuzz_target!(|frame: &[u8]| {
    let len = frame.get(..4).map(|p| u32::from_be_bytes(p.try_into().unwrap()) as usize);
    let body = len.and_then(|l| frame.get(4..4 + l));
    futures::executor::block_on(async {
        let mut io = Cursor::new(frame);
        match AuditCodec.read_request(&AUDIT_PROTOCOL, &mut io).await {
            Ok(Ok(req)) => {
                assert!(matches!(req, Request::Prove { .. } | Request::Report { .. }));
                assert!(len.unwrap() <= MAX_CHALLENGE_BODY);
                assert_eq!(decode_challenge(body.unwrap()), Ok(req));
            }
            Ok(Err(_)) => {}
            // Only a stream that ends inside the 4-byte length fails as a stream.
            Err(e) => assert!(frame.len() < 4, "{e}"),
        }
        assert!(io.position() as usize <= 4 + MAX_CHALLENGE_BODY);
        let mut io = Cursor::new(frame);
        if let Ok(res) = AuditCodec.read_response(&AUDIT_PROTOCOL, &mut io).await {
            assert!(matches!(res, Response::Proof { .. } | Response::Accepted | Response::Error { .. }));
            assert!(len.unwrap() <= MAX_ANSWER_BODY);
            assert_eq!(decode_answer(body.unwrap()), Ok(res));
        }
        assert!(io.position() as usize <= 4 + MAX_ANSWER_BODY);
    });
});
