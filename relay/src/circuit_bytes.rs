//! Bytes that pass through this relay's circuits, counted on the connections to the circuits'
//! far ends.
//!
//! A circuit runs from a reader, through this relay, to a peer holding a reservation here (in
//! Kura, a donating tab). The relay opens a `stop` stream to that peer for each circuit and
//! copies bytes between it and the reader's `hop` stream; libp2p's relay does not count them.
//! [`count`] wraps every connection's stream muxer: an outbound stream whose protocol
//! negotiation names the `stop` protocol is counted from then on — the bytes read from it are
//! what the tab sent through the circuit (the shards it serves, inside the circuit's own
//! encryption), the bytes written to it what readers sent the tab. Other streams pass through
//! untouched after their first line of negotiation.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent, SubstreamBox};
use prometheus_client::metrics::counter::Counter;

/// The protocol a relay opens towards a circuit's destination.
const STOP_PROTOCOL: &[u8] = b"/libp2p/circuit/relay/0.2.0/stop";

/// How much of an outbound stream's first writes is kept to find its protocol: multistream's
/// header and one proposal fit well within it.
const SNIFF: usize = 96;

/// What every connection adds to (clones share their counts).
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Bytes circuits' destinations sent through this relay (what tabs served).
    pub from_destinations: Counter,
    /// Bytes sent to circuits' destinations (what readers asked of them).
    pub to_destinations: Counter,
}

/// Wraps a connection's muxer so its circuit streams are counted in `tally`.
pub fn count(muxer: StreamMuxerBox, tally: &Tally) -> StreamMuxerBox {
    StreamMuxerBox::new(Counted { inner: muxer, tally: tally.clone() })
}

struct Counted {
    inner: StreamMuxerBox,
    tally: Tally,
}

impl StreamMuxer for Counted {
    type Substream = Stream;
    type Error = io::Error;

    fn poll_inbound(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Stream, io::Error>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner).poll_inbound(cx).map_ok(|s| Stream { inner: s, kind: Kind::Other })
    }

    fn poll_outbound(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Stream, io::Error>> {
        let this = self.get_mut();
        let tally = this.tally.clone();
        Pin::new(&mut this.inner)
            .poll_outbound(cx)
            .map_ok(|s| Stream { inner: s, kind: Kind::Unknown { written: Vec::new(), tally } })
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<StreamMuxerEvent, io::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

/// A stream, and whether it is a circuit's.
#[derive(Debug)]
pub struct Stream {
    inner: SubstreamBox,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// An outbound stream whose protocol is not known yet: what it wrote so far.
    Unknown {
        written: Vec<u8>,
        tally: Tally,
    },
    Circuit(Tally),
    Other,
}

impl Kind {
    /// Learns from bytes written on an outbound stream whether it is a circuit's.
    fn wrote(&mut self, bytes: &[u8]) {
        let Kind::Unknown { written, tally } = self else { return };
        let take = bytes.len().min(SNIFF - written.len());
        written.extend_from_slice(&bytes[..take]);
        if written.windows(STOP_PROTOCOL.len()).any(|w| w == STOP_PROTOCOL) {
            *self = Kind::Circuit(tally.clone());
        } else if written.len() >= SNIFF || written.iter().filter(|&&b| b == b'\n').count() >= 2 {
            // Multistream's header line and the first proposal are written, and it is not
            // the stop protocol.
            *self = Kind::Other;
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(n)), Kind::Circuit(tally)) = (&read, &this.kind) {
            tally.from_destinations.inc_by(*n as u64);
        }
        read
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let wrote = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &wrote {
            match &this.kind {
                Kind::Circuit(tally) => {
                    tally.to_destinations.inc_by(*n as u64);
                }
                Kind::Unknown { .. } => this.kind.wrote(&buf[..*n]),
                Kind::Other => {}
            }
        }
        wrote
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Multistream's way of writing a line: its length as a varint, then the line.
    fn line(s: &str) -> Vec<u8> {
        let mut v = vec![(s.len() + 1) as u8];
        v.extend_from_slice(s.as_bytes());
        v.push(b'\n');
        v
    }

    fn after(writes: &[Vec<u8>]) -> Kind {
        let mut kind = Kind::Unknown { written: Vec::new(), tally: Tally::default() };
        for w in writes {
            kind.wrote(w);
        }
        kind
    }

    #[test]
    fn a_stream_is_a_circuit_when_its_negotiation_names_the_stop_protocol() {
        let header = line("/multistream/1.0.0");
        let stop = line("/libp2p/circuit/relay/0.2.0/stop");
        // Header and proposal in one write, or two, or byte by byte.
        assert!(matches!(after(&[[header.clone(), stop.clone()].concat()]), Kind::Circuit(_)));
        assert!(matches!(after(&[header.clone(), stop.clone()]), Kind::Circuit(_)));
        let bytes: Vec<Vec<u8>> = [header.clone(), stop].concat().into_iter().map(|b| vec![b]).collect();
        assert!(matches!(after(&bytes), Kind::Circuit(_)));
        // Lazy negotiation writes the payload behind the proposal at once.
        let lazy = [header.clone(), line("/libp2p/circuit/relay/0.2.0/stop"), vec![0u8; 4096]].concat();
        assert!(matches!(after(&[lazy]), Kind::Circuit(_)));
    }

    #[test]
    fn other_streams_are_decided_after_their_proposal_and_not_counted() {
        let header = line("/multistream/1.0.0");
        assert!(matches!(after(std::slice::from_ref(&header)), Kind::Unknown { .. }));
        assert!(matches!(after(&[header.clone(), line("/kura/store/1")]), Kind::Other));
        assert!(matches!(after(&[header.clone(), line("/libp2p/circuit/relay/0.2.0/hop")]), Kind::Other));
        // A stream that writes a lot without a newline is decided by length.
        assert!(matches!(after(&[vec![7u8; 200]]), Kind::Other));
    }
}
