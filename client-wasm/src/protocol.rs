//! The storage protocol (`/kura/store/1`) on libp2p request-response, with kura-core's frame
//! codec.
//!
//! Inbound requests decode to `Result<Request, WireError>` rather than failing the stream,
//! so that a garbage or oversized frame still gets an answer with its error code. An
//! oversized frame is refused from its 4-byte prefix: its body is never read.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use kura_core::wire::{
    frame_body_len, Message, Request, Response, WireError, FRAME_PREFIX_LEN, STORE_PROTOCOL,
};
use libp2p::StreamProtocol;
use std::io;

/// The protocol id as libp2p wants it.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new(STORE_PROTOCOL);

/// Kura's own Kademlia protocol, so relays never mix with other DHTs. Relays serve it;
/// clients only query it.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/kura/kad/1.0.0");

/// The request-response codec of the storage protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreCodec;

/// Reads one frame body, or the reason it cannot be used. IO errors (a closed or reset
/// stream) are returned as such; everything about the bytes themselves is a `WireError`.
pub async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Result<Vec<u8>, WireError>> {
    let mut prefix = [0u8; FRAME_PREFIX_LEN];
    io.read_exact(&mut prefix).await?;
    let len = match frame_body_len(prefix) {
        Ok(len) => len,
        Err(e) => return Ok(Err(e)),
    };
    let mut body = Vec::with_capacity(len);
    io.take(len as u64).read_to_end(&mut body).await?;
    if body.len() < len {
        return Ok(Err(WireError::Truncated {
            have: FRAME_PREFIX_LEN + body.len(),
            need: FRAME_PREFIX_LEN + len,
        }));
    }
    Ok(Ok(body))
}

fn invalid(e: WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Largest single write on a stream. A libp2p WebRTC stream buffers what is written until a
/// flush and then sends it as one data-channel message; a message over the negotiated
/// 16 KiB fails ("outbound packet larger than maximum message size" on the writer, "Short
/// buffer (size: 8192) to be filled" on the reader: the family of rust-libp2p #6557). So
/// frames go out in pieces of at most 8,000 bytes, each flushed. Found by the WebRTC-direct
/// test in kura-relay's tests.
pub const MAX_WRITE: usize = 8000;

/// Writes `bytes` in flushed pieces of at most [`MAX_WRITE`].
pub async fn write_pieces<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    for piece in bytes.chunks(MAX_WRITE) {
        io.write_all(piece).await?;
        io.flush().await?;
    }
    Ok(())
}

async fn write_message<T: AsyncWrite + Unpin + Send, M: Message>(io: &mut T, msg: &M) -> io::Result<()> {
    let frame = msg.to_frame().map_err(invalid)?;
    write_pieces(io, &frame).await?;
    io.close().await
}

impl libp2p::request_response::Codec for StoreCodec {
    type Protocol = StreamProtocol;
    type Request = Result<Request, WireError>;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Self::Request> {
        Ok(read_frame(io).await?.and_then(|body| Request::from_body(&body)))
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response> {
        read_frame(io).await?.and_then(|body| Response::from_body(&body)).map_err(invalid)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Self::Request,
    ) -> io::Result<()> {
        write_message(io, &req.map_err(invalid)?).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()> {
        write_message(io, &res).await
    }
}
