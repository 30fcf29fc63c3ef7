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
    // Read straight into a buffer of the frame's size: `read_to_end` would zero it twice and
    // grow it (a copy of the whole shard) just to learn that the stream has nothing more.
    let mut body = vec![0u8; len];
    let mut have = 0;
    while have < len {
        match io.read(&mut body[have..]).await? {
            0 => {
                return Ok(Err(WireError::Truncated {
                    have: FRAME_PREFIX_LEN + have,
                    need: FRAME_PREFIX_LEN + len,
                }))
            }
            n => have += n,
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use kura_core::wire::MAX_FRAME_BODY;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Hands out at most 3 bytes per read, as a stream delivering small pieces does.
    struct Trickle(Cursor<Vec<u8>>);

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(3);
            Pin::new(&mut self.0).poll_read(cx, &mut buf[..n])
        }
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn frames_are_read_whole_or_reported_truncated() {
        futures::executor::block_on(async {
            let body: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
            let mut two = frame(&body);
            two.extend_from_slice(&frame(b"next"));
            let mut r = Trickle(Cursor::new(two));
            assert_eq!(read_frame(&mut r).await.unwrap(), Ok(body.clone()), "read in 3-byte pieces");
            assert_eq!(
                read_frame(&mut r).await.unwrap(),
                Ok(b"next".to_vec()),
                "nothing past the first frame read"
            );

            let cut = frame(&body)[..700].to_vec();
            let got = read_frame(&mut Trickle(Cursor::new(cut))).await.unwrap();
            assert_eq!(got, Err(WireError::Truncated { have: 700, need: 1004 }));

            assert_eq!(read_frame(&mut Cursor::new(frame(&[]))).await.unwrap(), Ok(Vec::new()), "empty body");

            let huge = ((MAX_FRAME_BODY + 1) as u32).to_be_bytes().to_vec();
            let got = read_frame(&mut Cursor::new(huge)).await.unwrap();
            assert_eq!(got, Err(WireError::TooLarge(MAX_FRAME_BODY + 1)), "refused from the prefix");

            assert!(read_frame(&mut Cursor::new(vec![0, 0])).await.is_err(), "closed inside the prefix");
        });
    }
}
