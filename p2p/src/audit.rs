//! The audit protocol (`/kura/audit/1`): a challenge names a shard (stripe and index) and a
//! nonce; the answer is a proof of possession ([`kura_core::proof`]) or an error code.
//!
//! The messages are the wire format's `Request::Prove` and `Response::Proof` /
//! `Response::Error` (and a client's `Request::Report` of a claim it could not prove,
//! answered `Response::Accepted`), in frames of their own protocol with hard limits far below the storage
//! protocol's: a challenge body is at most [`MAX_CHALLENGE_BODY`] bytes and an answer at most
//! [`MAX_ANSWER_BODY`]; anything larger is refused from its 4-byte prefix, and any other
//! message kind is refused once decoded. So an audit stream costs its reader at most a few
//! KiB, whatever the peer sends; relays also rate-limit challenges per peer.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use kura_core::wire::{frame_body_len, Message, Request, Response, WireError, FRAME_PREFIX_LEN};
use libp2p::StreamProtocol;
use std::io;

/// The protocol id.
pub const AUDIT_PROTOCOL: StreamProtocol = StreamProtocol::new("/kura/audit/1");
/// Largest challenge body: a message tag, a stripe id, an index and a 32-byte nonce fit in
/// 70 bytes; a report (a peer id instead of the nonce) in 80.
pub const MAX_CHALLENGE_BODY: usize = 128;
/// Largest answer body: a 1 KiB chunk and at most 32 sibling hashes (2,050 bytes and a few
/// of framing), or an error with a short detail.
pub const MAX_ANSWER_BODY: usize = 4096;
/// Longest error detail an answer carries (longer ones are cut).
pub const MAX_DETAIL: usize = 256;

/// The audit protocol's request-response codec, the same on both sides. Inbound challenges
/// decode to `Result<Request, WireError>`, so that garbage still gets an answer with its
/// code.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditCodec;

/// Reads one frame body of at most `max` bytes.
pub(crate) async fn read_small<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> io::Result<Result<Vec<u8>, WireError>> {
    let mut prefix = [0u8; FRAME_PREFIX_LEN];
    io.read_exact(&mut prefix).await?;
    let len = match frame_body_len(prefix) {
        Ok(len) if len <= max => len,
        Ok(len) => return Ok(Err(WireError::TooLarge(len))),
        Err(e) => return Ok(Err(e)),
    };
    let mut body = vec![0u8; len];
    match io.read_exact(&mut body).await {
        Ok(()) => Ok(Ok(body)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Ok(Err(WireError::Truncated { have: FRAME_PREFIX_LEN, need: FRAME_PREFIX_LEN + len }))
        }
        Err(e) => Err(e),
    }
}

/// Decodes a challenge body: a `Prove` request (or a client's `Report` of a failed one) and
/// nothing else.
pub fn decode_challenge(body: &[u8]) -> Result<Request, WireError> {
    match Request::from_body(body)? {
        r @ (Request::Prove { .. } | Request::Report { .. }) => Ok(r),
        _ => Err(WireError::Malformed("only proofs of possession are asked on /kura/audit/1".into())),
    }
}

/// Decodes an answer body: a `Proof`, an `Accepted` (to a report) or an `Error`, and
/// nothing else.
pub fn decode_answer(body: &[u8]) -> Result<Response, WireError> {
    match Response::from_body(body)? {
        r @ (Response::Proof { .. } | Response::Accepted | Response::Error { .. }) => Ok(r),
        _ => Err(WireError::Malformed("an audit is answered by a proof or an error".into())),
    }
}

async fn write_small<T: AsyncWrite + Unpin + Send, M: Message>(io: &mut T, msg: &M) -> io::Result<()> {
    let frame = msg.to_frame().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    io.write_all(&frame).await?;
    io.close().await
}

fn invalid(e: WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl libp2p::request_response::Codec for AuditCodec {
    type Protocol = StreamProtocol;
    type Request = Result<Request, WireError>;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Self::Request> {
        Ok(read_small(io, MAX_CHALLENGE_BODY).await?.and_then(|b| decode_challenge(&b)))
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response> {
        read_small(io, MAX_ANSWER_BODY).await?.and_then(|b| decode_answer(&b)).map_err(invalid)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Self::Request,
    ) -> io::Result<()> {
        write_small(io, &req.map_err(invalid)?).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()> {
        let res = match res {
            Response::Error { code, detail } => kura_core::wire::error_within(code, detail, MAX_DETAIL),
            other => other,
        };
        write_small(io, &res).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use kura_core::proof::{MAX_PROOF_SIBLINGS, NONCE_LEN};
    use kura_core::wire::ErrorCode;
    use kura_core::StripeId;
    use libp2p::request_response::Codec;

    fn frame(msg: &impl Message) -> Vec<u8> {
        msg.to_frame().unwrap()
    }

    #[test]
    fn a_challenge_and_the_largest_proof_fit_their_limits_and_round_trip() {
        futures::executor::block_on(async {
            let challenge = Request::Prove { stripe: StripeId::of(b"s"), index: 5, nonce: [9; NONCE_LEN] };
            let bytes = frame(&challenge);
            assert!(bytes.len() - FRAME_PREFIX_LEN <= MAX_CHALLENGE_BODY, "{}", bytes.len());
            let got = AuditCodec.read_request(&AUDIT_PROTOCOL, &mut Cursor::new(bytes)).await.unwrap();
            assert_eq!(got, Ok(challenge));

            // A report naming the longest peer id a message may carry.
            let report = Request::Report { stripe: StripeId::of(b"s"), index: 5, holder: vec![3; 64] };
            let bytes = frame(&report);
            assert!(bytes.len() - FRAME_PREFIX_LEN <= MAX_CHALLENGE_BODY, "{}", bytes.len());
            let got = AuditCodec.read_request(&AUDIT_PROTOCOL, &mut Cursor::new(bytes)).await.unwrap();
            assert_eq!(got, Ok(report));
            let bytes = frame(&Response::Accepted);
            let got = AuditCodec.read_response(&AUDIT_PROTOCOL, &mut Cursor::new(bytes)).await.unwrap();
            assert_eq!(got, Response::Accepted);

            let proof = Response::Proof { chunk: vec![1; 1024], siblings: vec![[2; 32]; MAX_PROOF_SIBLINGS] };
            let bytes = frame(&proof);
            assert!(bytes.len() - FRAME_PREFIX_LEN <= MAX_ANSWER_BODY, "{}", bytes.len());
            let got = AuditCodec.read_response(&AUDIT_PROTOCOL, &mut Cursor::new(bytes)).await.unwrap();
            assert_eq!(got, proof);
        });
    }

    #[test]
    fn anything_else_is_refused_with_a_code_and_oversized_frames_unread() {
        futures::executor::block_on(async {
            // Another kind of request.
            let fetch = frame(&Request::Fetch { stripe: StripeId::of(b"s") });
            let got = AuditCodec.read_request(&AUDIT_PROTOCOL, &mut Cursor::new(fetch)).await.unwrap();
            assert_eq!(got.unwrap_err().code(), ErrorCode::Malformed);
            // A prefix announcing more than a challenge: refused before any body is read.
            let mut big = 1000u32.to_be_bytes().to_vec();
            big.extend([0u8; 1000]);
            let mut io = Cursor::new(big);
            let got = AuditCodec.read_request(&AUDIT_PROTOCOL, &mut io).await.unwrap();
            assert_eq!(got, Err(WireError::TooLarge(1000)));
            assert_eq!(io.position(), FRAME_PREFIX_LEN as u64, "the body was not read");
            // An answer of the wrong kind is an error for the asker.
            let held = frame(&Response::Stored { index: 1 });
            assert!(AuditCodec.read_response(&AUDIT_PROTOCOL, &mut Cursor::new(held)).await.is_err());
        });
    }

    #[test]
    fn a_long_error_detail_is_cut_to_fit() {
        futures::executor::block_on(async {
            let mut out = Cursor::new(Vec::new());
            let res = Response::Error { code: ErrorCode::NotFound, detail: "é".repeat(5000) };
            AuditCodec.write_response(&AUDIT_PROTOCOL, &mut out, res).await.unwrap();
            let bytes = out.into_inner();
            let got = AuditCodec.read_response(&AUDIT_PROTOCOL, &mut Cursor::new(bytes)).await.unwrap();
            let Response::Error { code, detail } = got else { panic!("{got:?}") };
            assert_eq!(code, ErrorCode::NotFound);
            assert!(detail.len() <= MAX_DETAIL);
        });
    }
}
