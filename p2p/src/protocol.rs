//! The storage protocol (`/kura/store/1`) on libp2p request-response, with kura-core's frame
//! codec.
//!
//! Inbound requests decode to `Result<Request, WireError>` rather than failing the stream,
//! so that a garbage or oversized frame still gets an answer with its error code. An
//! oversized frame is refused from its 4-byte prefix: its body is never read.

use crate::transport::Framing;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use kura_core::stripe::{MAX_HEADER_LEN, MAX_SHARD_LEN};
use kura_core::wire::{
    frame_body_len, push_varint, Message, Request, Response, WireError, FRAME_PREFIX_LEN,
    MAX_SHARDS_PER_RESPONSE, STORE_PROTOCOL,
};
use libp2p::StreamProtocol;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The protocol id as libp2p wants it.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new(STORE_PROTOCOL);

/// Kura's own Kademlia protocol, so relays never mix with other DHTs. Relays serve it;
/// clients only query it.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/kura/kad/1.0.0");

/// The request-response codec of the storage protocol: each frame is written as its
/// [`Framing`] says (by default in flushed pieces, which every transport takes).
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreCodec {
    framing: Framing,
}

impl StoreCodec {
    /// A codec that writes frames so. Written whole, a shard goes out in a write of its own,
    /// from the message (see [`Message::to_split_frame`]), flushed by closing the stream: over
    /// yamux each flushed 8,000-byte piece is its own noise message and socket write, a whole
    /// frame goes out in yamux's 16 KiB frames, half as many (a 256 MiB put: 31,000 `sendto`
    /// instead of 57,000; docs/benchmarks.md).
    pub const fn new(framing: Framing) -> Self {
        Self { framing }
    }

    async fn write_message<T: AsyncWrite + Unpin + Send, M: Message>(
        &self,
        io: &mut T,
        msg: &M,
    ) -> io::Result<()> {
        write_message(io, msg, self.framing).await
    }
}

/// Writes one message as a frame, whole or in flushed pieces, and closes the stream.
async fn write_message<T: AsyncWrite + Unpin + Send, M: Message>(
    io: &mut T,
    msg: &M,
    framing: Framing,
) -> io::Result<()> {
    match framing {
        Framing::Whole => {
            // A shard goes onto the stream from the message itself, not from a copy in a frame.
            let frame = msg.to_split_frame().map_err(invalid)?;
            io.write_all(&frame.head).await?;
            io.write_all(frame.tail).await?;
        }
        Framing::Pieces => write_pieces(io, &msg.to_frame().map_err(invalid)?).await?,
    }
    io.close().await
}

/// A response and how it goes onto its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub response: Response,
    /// How it is written: as its connection's transport takes it. Answers read from a
    /// stream say [`Framing::Pieces`].
    pub framing: Framing,
}

/// A relay's codec: the same protocol as [`StoreCodec`], but each answer says how it is to
/// be written. One relay answers peers on WebRTC, whose streams need flushed pieces, and on
/// TCP, QUIC and WebSocket, whose streams take a frame at once (over yamux each piece is its
/// own noise message and socket write); only the relay's loop knows which connection a
/// request came on. Its own requests (to other relays) go out in pieces.
///
/// Each connection's reads are also bounded by [`MAX_READING_PER_CONNECTION`]. libp2p's
/// request-response gives each connection a copy of the behaviour's codec and each stream a
/// copy of its connection's, so a copy of a codec with no connection yet opens a new
/// allowance and a copy of a connection's shares it.
#[derive(Debug, Default)]
pub struct RelayCodec {
    connection: Option<Arc<ReadBudget>>,
}

impl Clone for RelayCodec {
    fn clone(&self) -> Self {
        let budget = self
            .connection
            .clone()
            .unwrap_or_else(|| Arc::new(ReadBudget::within(MAX_READING_PER_CONNECTION, &READING)));
        Self { connection: Some(budget) }
    }
}

impl RelayCodec {
    /// Where this codec's reads are counted: its connection's allowance, or (before it has
    /// one) the process's.
    fn budget(&self) -> &ReadBudget {
        self.connection.as_deref().unwrap_or(&READING)
    }
}

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

/// Why a message could not be read: the stream failed, or its bytes are no message.
enum ReadError {
    Io(io::Error),
    Wire(WireError),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<WireError> for ReadError {
    fn from(e: WireError) -> Self {
        Self::Wire(e)
    }
}

/// The first allocation for a byte string being read; later ones at most double it.
const GROW_FROM: usize = 8 * 1024;

/// Most bytes of message bodies being read at once, over every stream of this process: what
/// peers that send most of a message and stall can make a node hold (each stream is also
/// bounded in time, and streams per connection and connections per address in number).
pub const MAX_READING: usize = 512 << 20;

/// Most bytes of message bodies being read at once over one connection: one peer's
/// half-sent messages take at most this share of [`MAX_READING`] (sixteen of the largest
/// messages), so one connection cannot leave every other peer answered `Busy`.
pub const MAX_READING_PER_CONNECTION: usize = 64 << 20;

/// An allowance of bytes being read, shared by streams; one taken from it is also taken
/// from its parent's (a connection's from the process's).
#[derive(Debug)]
pub struct ReadBudget {
    used: AtomicUsize,
    max: usize,
    parent: Option<&'static ReadBudget>,
}

impl ReadBudget {
    /// An allowance of `max` bytes.
    pub const fn new(max: usize) -> Self {
        Self { used: AtomicUsize::new(0), max, parent: None }
    }

    /// An allowance of `max` bytes within `parent`'s.
    pub const fn within(max: usize, parent: &'static ReadBudget) -> Self {
        Self { used: AtomicUsize::new(0), max, parent: Some(parent) }
    }

    fn take(&self, n: usize) -> bool {
        let before = self.used.fetch_add(n, Ordering::SeqCst);
        if before.saturating_add(n) > self.max {
            self.used.fetch_sub(n, Ordering::SeqCst);
            return false;
        }
        if let Some(parent) = self.parent {
            if !parent.take(n) {
                self.used.fetch_sub(n, Ordering::SeqCst);
                return false;
            }
        }
        true
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::SeqCst);
        if let Some(parent) = self.parent {
            parent.give(n);
        }
    }

    /// Bytes held by reads in progress.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }
}

/// The allowance of every stream of this process.
pub static READING: ReadBudget = ReadBudget::new(MAX_READING);

/// The body of one frame read from a stream piece by piece, each byte string into a buffer
/// of its own size: a shard is read from the stream once, into the buffer it is kept in
/// (reading the body whole and decoding it would copy every shard out of the body).
struct BodyReader<'a, T> {
    io: &'a mut T,
    len: usize,
    read: usize,
    /// Where the bytes of buffers grown for this message are counted while it is read.
    budget: &'a ReadBudget,
    held: usize,
}

impl<T> Drop for BodyReader<'_, T> {
    fn drop(&mut self) {
        self.budget.give(self.held);
    }
}

impl<'a, T: AsyncRead + Unpin + Send> BodyReader<'a, T> {
    /// Reads the frame's prefix; an oversized frame is refused before its body is read.
    async fn start(io: &'a mut T, budget: &'a ReadBudget) -> Result<Self, ReadError> {
        let mut prefix = [0u8; FRAME_PREFIX_LEN];
        io.read_exact(&mut prefix).await?;
        let len = frame_body_len(prefix)?;
        Ok(Self { io, len, read: 0, budget, held: 0 })
    }

    fn left(&self) -> usize {
        self.len - self.read
    }

    /// Fills `buf` from the body.
    async fn fill(&mut self, buf: &mut [u8]) -> Result<(), ReadError> {
        if buf.len() > self.left() {
            return Err(WireError::Malformed(format!(
                "{} bytes announced where the frame body has {} left",
                buf.len(),
                self.left()
            ))
            .into());
        }
        let mut have = 0;
        while have < buf.len() {
            match self.io.read(&mut buf[have..]).await? {
                0 => {
                    return Err(WireError::Truncated {
                        have: FRAME_PREFIX_LEN + self.read + have,
                        need: FRAME_PREFIX_LEN + self.len,
                    }
                    .into())
                }
                n => have += n,
            }
        }
        self.read += have;
        Ok(())
    }

    /// A varint of a `bits`-bit integer, read by postcard's rules so that both readers take
    /// the same bytes: at most `ceil(bits / 7)` bytes, the last of them holding only the
    /// bits left (an enum's kind is a `u32`; a length a `usize`, so 32 bits on wasm32).
    async fn varint(&mut self, bits: u32) -> Result<u64, ReadError> {
        let max_bytes = bits.div_ceil(7);
        let last_max = (1u8 << (bits % 7)) - 1;
        let mut v = 0u64;
        for i in 0..max_bytes {
            let mut b = [0u8];
            self.fill(&mut b).await?;
            v |= u64::from(b[0] & 0x7f) << (7 * i);
            if b[0] & 0x80 == 0 {
                if i == max_bytes - 1 && b[0] > last_max {
                    break;
                }
                return Ok(v);
            }
        }
        Err(WireError::Malformed(format!("a varint of a {bits}-bit integer longer than it can be")).into())
    }

    /// A message's kind.
    async fn kind(&mut self) -> Result<u64, ReadError> {
        self.varint(u32::BITS).await
    }

    /// A length-prefixed byte string of at most `max` bytes.
    async fn bytes(&mut self, field: &'static str, max: usize) -> Result<Vec<u8>, ReadError> {
        let len = self.count(field, max).await?;
        self.take(Vec::new(), len).await
    }

    /// Reads `len` more bytes of the body onto the end of `out`, which grows only as bytes
    /// arrive (at most doubling, from [`GROW_FROM`]): a length announced by a peer costs
    /// memory only once the peer has sent the bytes, so a stream that stops half-way holds
    /// about what it sent, not the largest message it could have been.
    async fn take(&mut self, mut out: Vec<u8>, len: usize) -> Result<Vec<u8>, ReadError> {
        if len > self.left() {
            return Err(WireError::Malformed(format!(
                "{len} bytes announced where the frame body has {} left",
                self.left()
            ))
            .into());
        }
        let start = out.len();
        let end = start + len;
        let mut have = start;
        while have < end {
            if have == out.len() {
                let grow = (end - have).min((have - start).max(GROW_FROM));
                if !self.budget.take(grow) {
                    return Err(WireError::Overloaded.into());
                }
                self.held += grow;
                out.resize(have + grow, 0);
            }
            match self.io.read(&mut out[have..]).await? {
                0 => {
                    return Err(WireError::Truncated {
                        have: FRAME_PREFIX_LEN + self.read + (have - start),
                        need: FRAME_PREFIX_LEN + self.len,
                    }
                    .into())
                }
                n => have += n,
            }
        }
        self.read += len;
        Ok(out)
    }

    /// A length or count of at most `max`.
    async fn count(&mut self, field: &'static str, max: usize) -> Result<usize, ReadError> {
        let len = usize::try_from(self.varint(usize::BITS).await?).unwrap_or(usize::MAX);
        if len > max {
            return Err(WireError::TooMany { field, len, max }.into());
        }
        Ok(len)
    }

    /// The whole body, for a message read whose `kind` is already read.
    async fn rest_after(&mut self, kind: u64) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        push_varint(&mut body, kind);
        let left = self.left();
        self.take(body, left).await
    }

    fn end(&self) -> Result<(), ReadError> {
        match self.left() {
            0 => Ok(()),
            n => Err(WireError::TrailingBytes(n).into()),
        }
    }
}

/// Reads one request as a relay does (piece by piece, buffers counted in `budget`): the
/// request, or what is wrong with its bytes (`Ok(Err(_))`), or the stream's failure. What
/// the fuzz target `body_reader` drives.
pub async fn read_request<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    budget: &ReadBudget,
) -> io::Result<Result<Request, WireError>> {
    match read_request_body(io, budget).await {
        Ok(req) => Ok(Ok(req)),
        Err(ReadError::Wire(e)) => Ok(Err(e)),
        Err(ReadError::Io(e)) => Err(e),
    }
}

/// Reads one answer as a client does; see [`read_request`].
pub async fn read_response<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    budget: &ReadBudget,
) -> io::Result<Result<Response, WireError>> {
    match read_response_body(io, budget).await {
        Ok(res) => Ok(Ok(res)),
        Err(ReadError::Wire(e)) => Ok(Err(e)),
        Err(ReadError::Io(e)) => Err(e),
    }
}

/// Reads one request: a `Store` or `Handover` piece by piece (its shard straight into its
/// own buffer), anything else whole. Decodes to exactly what [`Message::from_body`] gives for
/// the body.
async fn read_request_body<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    budget: &ReadBudget,
) -> Result<Request, ReadError> {
    let mut r = BodyReader::start(io, budget).await?;
    let kind = r.kind().await?;
    if kind != u64::from(Request::STORE_KIND) && kind != u64::from(Request::HANDOVER_KIND) {
        return Ok(Request::from_body(&r.rest_after(kind).await?)?);
    }
    let header = r.bytes("header bytes", MAX_HEADER_LEN).await?;
    let shard = r.bytes("shard bytes", MAX_SHARD_LEN).await?;
    r.end()?;
    let req = if kind == u64::from(Request::STORE_KIND) {
        Request::Store { header, shard }
    } else {
        Request::Handover { header, shard }
    };
    req.check()?;
    Ok(req)
}

/// Reads one answer: `Shards` piece by piece (each shard straight into its own buffer),
/// anything else whole. Decodes to exactly what [`Message::from_body`] gives for the body.
async fn read_response_body<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    budget: &ReadBudget,
) -> Result<Response, ReadError> {
    let mut r = BodyReader::start(io, budget).await?;
    let kind = r.kind().await?;
    if kind != u64::from(Response::SHARDS_KIND) {
        return Ok(Response::from_body(&r.rest_after(kind).await?)?);
    }
    let header = r.bytes("header bytes", MAX_HEADER_LEN).await?;
    let count = r.count("shards", MAX_SHARDS_PER_RESPONSE).await?;
    let mut shards = Vec::with_capacity(count);
    for _ in 0..count {
        shards.push(r.bytes("shard bytes", MAX_SHARD_LEN).await?.into());
    }
    r.end()?;
    let res = Response::Shards { header, shards };
    res.check()?;
    Ok(res)
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

impl libp2p::request_response::Codec for StoreCodec {
    type Protocol = StreamProtocol;
    type Request = Result<Request, WireError>;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Self::Request> {
        read_request(io, &READING).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response> {
        read_response(io, &READING).await?.map_err(invalid)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Self::Request,
    ) -> io::Result<()> {
        self.write_message(io, &req.map_err(invalid)?).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()> {
        self.write_message(io, &res).await
    }
}

impl libp2p::request_response::Codec for RelayCodec {
    type Protocol = StreamProtocol;
    type Request = Result<Request, WireError>;
    type Response = Answer;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Self::Request> {
        read_request(io, self.budget()).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Answer> {
        let response = read_response(io, self.budget()).await?.map_err(invalid)?;
        Ok(Answer { response, framing: Framing::Pieces })
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
        req: Self::Request,
    ) -> io::Result<()> {
        StoreCodec::default().write_request(p, io, req).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Answer,
    ) -> io::Result<()> {
        write_message(io, &res.response, res.framing).await
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

    /// Bodies to read: every message kind, shards of real sizes, and broken ones — cut
    /// short, with a byte too many, lengths past the body or over a limit, kinds written
    /// in more bytes than needed, garbage after a Store or Shards kind.
    fn bodies() -> Vec<Vec<u8>> {
        use kura_core::testdata::pseudo_random;
        let id = kura_core::StripeId::of(b"s");
        let shard = pseudo_random(262_148, 1);
        let mut good = vec![
            Request::Store { header: vec![4; 300], shard: shard.clone() }.to_body().unwrap(),
            Request::Store { header: vec![], shard: vec![] }.to_body().unwrap(),
            Request::Handover { header: vec![4; 300], shard: shard.clone() }.to_body().unwrap(),
            Request::Handover { header: vec![1], shard: vec![] }.to_body().unwrap(),
            Request::Fetch { stripe: id }.to_body().unwrap(),
            Request::Holds { stripes: vec![id; 3] }.to_body().unwrap(),
            Response::Shards { header: vec![4; 300], shards: vec![shard.clone().into()] }.to_body().unwrap(),
            Response::Shards { header: vec![1], shards: vec![vec![2; 10].into(), vec![].into()] }
                .to_body()
                .unwrap(),
            Response::Shards { header: vec![], shards: vec![] }.to_body().unwrap(),
            Response::Stored { index: 2 }.to_body().unwrap(),
            Response::Error { code: kura_core::wire::ErrorCode::Busy, detail: "busy".into() }
                .to_body()
                .unwrap(),
        ];
        let mut bad = Vec::new();
        for b in &good {
            for cut in [1, 2, 3, b.len() / 2, b.len().saturating_sub(1)] {
                bad.push(b[..cut.min(b.len())].to_vec());
            }
            let mut long = b.clone();
            long.push(0);
            bad.push(long);
        }
        // Five shards in one answer; a header over its limit; a length past the body.
        bad.push(vec![1, 0, 5, 0, 0, 0, 0, 0]);
        let mut over = vec![0];
        push_varint(&mut over, (MAX_HEADER_LEN + 1) as u64);
        over.resize(over.len() + MAX_HEADER_LEN + 1, 0);
        over.push(0);
        bad.push(over);
        bad.push(vec![0, 3, 1, 2]);
        bad.push(vec![0x80, 0x00, 0, 0]);
        bad.push(vec![0x81, 0x00, 0, 1, 9]);
        // Overlong varints: a kind of six bytes (a u32 takes at most five; found by the fuzz
        // target body_reader), a kind whose fifth byte holds more than a u32's last bits,
        // and a length of eleven bytes.
        bad.push(vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0, 4, 1, 2, 3, 4]);
        bad.push(vec![0x80, 0x80, 0x80, 0x80, 0x10, 0, 4, 1, 2, 3, 4]);
        bad.push(vec![0x80, 0x80, 0x80, 0x80, 0x00, 0, 4, 1, 2, 3, 4]);
        let mut eleven = vec![0, 0x80 | 4];
        eleven.extend([0x80; 9]);
        eleven.push(0);
        bad.push(eleven);
        for seed in 0..200u64 {
            let mut g = pseudo_random(1 + (seed as usize * 7) % 64, seed);
            g[0] = (seed % 3) as u8;
            bad.push(g);
        }
        good.extend(bad);
        good
    }

    /// Reading a Store or a Shards answer piece by piece gives exactly what decoding its
    /// whole body gives: the same message, or an error for the same bodies.
    #[test]
    fn messages_read_piece_by_piece_decode_as_whole_bodies() {
        use libp2p::request_response::Codec;
        futures::executor::block_on(async {
            for body in bodies() {
                let mut read = Trickle(Cursor::new(frame(&body)));
                let got = StoreCodec::default().read_request(&PROTOCOL, &mut read).await.unwrap();
                match Request::from_body(&body) {
                    Ok(want) => assert_eq!(got, Ok(want)),
                    Err(e) => assert!(got.is_err(), "{body:?}: read {got:?}, decoding says {e}"),
                }
                let mut read = Trickle(Cursor::new(frame(&body)));
                let got = StoreCodec::default().read_response(&PROTOCOL, &mut read).await;
                match Response::from_body(&body) {
                    Ok(want) => assert_eq!(got.unwrap(), want),
                    Err(e) => assert!(got.is_err(), "{body:?}: read {got:?}, decoding says {e}"),
                }
            }
            // A stream that ends inside a shard is reported as truncated, with how far it got.
            let store = Request::Store { header: vec![4; 300], shard: vec![7; 20_000] }.to_frame().unwrap();
            let mut read = Trickle(Cursor::new(store[..10_000].to_vec()));
            let got = StoreCodec::default().read_request(&PROTOCOL, &mut read).await.unwrap();
            assert_eq!(got, Err(WireError::Truncated { have: 10_000, need: store.len() }));
            // An oversized frame is refused from its prefix; nothing of its body is read.
            let huge = ((MAX_FRAME_BODY + 1) as u32).to_be_bytes().to_vec();
            let got = StoreCodec::default().read_request(&PROTOCOL, &mut Cursor::new(huge)).await.unwrap();
            assert_eq!(got, Err(WireError::TooLarge(MAX_FRAME_BODY + 1)));
        });
    }

    /// Bytes of messages being read are counted against a shared allowance while they are
    /// read, given back once read (or failed), and a message that would overrun it is
    /// refused as `Overloaded` (answered `Busy`).
    #[test]
    fn reads_hold_bytes_within_a_shared_allowance() {
        futures::executor::block_on(async {
            let budget = ReadBudget::new(100_000);
            let small = Request::Store { header: vec![4; 300], shard: vec![7; 50_000] }.to_frame().unwrap();
            let got = read_request_body(&mut Trickle(Cursor::new(small)), &budget).await;
            assert!(got.is_ok());
            assert_eq!(budget.used(), 0, "given back once read");
            let big = Request::Store { header: vec![4; 300], shard: vec![7; 200_000] }.to_frame().unwrap();
            let got = read_request_body(&mut Cursor::new(big.clone()), &budget).await;
            assert!(matches!(got, Err(ReadError::Wire(WireError::Overloaded))));
            assert_eq!(WireError::Overloaded.code(), kura_core::wire::ErrorCode::Busy);
            assert_eq!(budget.used(), 0, "given back when refused");
            // A stream that stops half-way gives its bytes back too.
            let cut = big[..120_000].to_vec();
            let roomy = ReadBudget::new(1 << 20);
            let got = read_request_body(&mut Cursor::new(cut), &roomy).await;
            assert!(matches!(got, Err(ReadError::Wire(WireError::Truncated { .. }))));
            assert_eq!(roomy.used(), 0);
        });
    }

    /// A connection's allowance is also counted in its parent's: it refuses what would pass
    /// either, and gives back to both.
    #[test]
    fn a_connection_allowance_counts_within_its_parent() {
        static PARENT: ReadBudget = ReadBudget::new(300_000);
        let a = ReadBudget::within(200_000, &PARENT);
        let b = ReadBudget::within(200_000, &PARENT);
        assert!(a.take(150_000));
        assert!(!a.take(100_000), "past the connection's own bound");
        assert_eq!(PARENT.used(), 150_000, "a refused take leaves the parent as it was");
        assert!(b.take(150_000));
        assert!(!b.take(10_000), "within b's bound, past the parent's");
        assert_eq!(b.used(), 150_000, "a refused take leaves the child as it was");
        a.give(150_000);
        b.give(150_000);
        assert_eq!((a.used(), b.used(), PARENT.used()), (0, 0, 0));
    }

    /// The relay's codec: a copy of the behaviour's (a new connection) opens its own
    /// allowance; copies of that (its streams) share it.
    #[test]
    fn each_connection_of_the_relay_codec_has_its_own_allowance() {
        let behaviour = RelayCodec::default();
        let (one, two) = (behaviour.clone(), behaviour.clone());
        let (a, b) = (one.clone(), one.clone());
        let ptr = |c: &RelayCodec| c.connection.as_ref().map(Arc::as_ptr);
        assert!(ptr(&behaviour).is_none());
        assert_ne!(ptr(&one), ptr(&two));
        assert_eq!(ptr(&a), ptr(&one));
        assert_eq!(ptr(&b), ptr(&one));
        assert_eq!(one.budget().max, MAX_READING_PER_CONNECTION);
        assert_eq!(behaviour.budget().max, MAX_READING);
    }

    /// Records every write and flush of a stream.
    #[derive(Default)]
    struct Recorder {
        bytes: Vec<u8>,
        writes: Vec<usize>,
        flushes: usize,
        closed: bool,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.bytes.extend_from_slice(buf);
            self.writes.push(buf.len());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flushes += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_close(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.closed = true;
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn frames_go_out_in_flushed_pieces_or_whole() {
        use libp2p::request_response::Codec;
        let store =
            || Request::Store { header: vec![1; 100], shard: (0..20_000u32).map(|i| i as u8).collect() };
        let frame = store().to_frame().unwrap();
        futures::executor::block_on(async {
            let mut pieces = Recorder::default();
            StoreCodec::default().write_request(&PROTOCOL, &mut pieces, Ok(store())).await.unwrap();
            assert_eq!(pieces.bytes, frame);
            assert!(
                pieces.writes.iter().all(|&n| n <= MAX_WRITE),
                "a piece over {MAX_WRITE}: {:?}",
                pieces.writes
            );
            assert_eq!(pieces.flushes, frame.len().div_ceil(MAX_WRITE), "one flush per piece");
            assert!(pieces.closed);

            let mut whole = Recorder::default();
            StoreCodec::new(Framing::Whole).write_request(&PROTOCOL, &mut whole, Ok(store())).await.unwrap();
            assert_eq!(whole.bytes, frame);
            assert_eq!(whole.writes, vec![frame.len() - 20_000, 20_000], "the head, then the shard itself");
            assert_eq!(whole.flushes, 0, "no flush but the close");
            assert!(whole.closed);

            let mut answer = Recorder::default();
            let res = Response::Stored { index: 3 };
            StoreCodec::new(Framing::Whole)
                .write_response(&PROTOCOL, &mut answer, res.clone())
                .await
                .unwrap();
            assert_eq!(answer.bytes, res.to_frame().unwrap());
            assert_eq!(answer.writes, vec![answer.bytes.len()], "a message without a shard: one write");
        });
    }

    #[test]
    fn a_relay_answers_whole_or_in_pieces_as_told() {
        use libp2p::request_response::Codec;
        let shards = Response::Shards { header: vec![2; 150], shards: vec![vec![9; 30_000].into()] };
        let frame = shards.to_frame().unwrap();
        futures::executor::block_on(async {
            let mut webrtc = Recorder::default();
            let answer = Answer { response: shards.clone(), framing: Framing::Pieces };
            RelayCodec::default().write_response(&PROTOCOL, &mut webrtc, answer).await.unwrap();
            assert_eq!(webrtc.bytes, frame);
            assert!(webrtc.writes.iter().all(|&n| n <= MAX_WRITE), "{:?}", webrtc.writes);
            assert_eq!(webrtc.flushes, frame.len().div_ceil(MAX_WRITE));

            let mut yamux = Recorder::default();
            let answer = Answer { response: shards.clone(), framing: Framing::Whole };
            RelayCodec::default().write_response(&PROTOCOL, &mut yamux, answer).await.unwrap();
            assert_eq!(yamux.bytes, frame);
            assert_eq!(yamux.writes, vec![frame.len() - 30_000, 30_000], "the head, then the shard itself");
            assert!(yamux.closed);

            // What a relay reads back as an answer to its own request is the response itself.
            let read = RelayCodec::default().read_response(&PROTOCOL, &mut Cursor::new(frame)).await.unwrap();
            assert_eq!(read, Answer { response: shards, framing: Framing::Pieces });

            // Its own requests go out in pieces: it cannot tell which relay is on WebRTC.
            let mut out = Recorder::default();
            let req = Request::Fetch { stripe: kura_core::StripeId::from_bytes([5; 32]) };
            RelayCodec::default().write_request(&PROTOCOL, &mut out, Ok(req.clone())).await.unwrap();
            assert_eq!(out.bytes, req.to_frame().unwrap());
            assert_eq!(out.flushes, 1);
        });
    }
}
