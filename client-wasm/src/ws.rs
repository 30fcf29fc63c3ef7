//! The browser's WebSocket transport: dials `/ip4|ip6|dns…/tcp/PORT/ws` (or `/wss`, `/tls/ws`)
//! with the page's `WebSocket` and hands libp2p a byte stream, on which noise and yamux run.
//!
//! Kura has its own so that a dropped relay is noticed. When a relay goes away (killed,
//! restarted) the browser closes the socket, often without an `error` event; this stream
//! then ends (a read returns 0 bytes), so libp2p closes the connection at once and the next
//! request or lookup dials the relay again. (libp2p's `websocket-websys` 0.6 leaves a read
//! pending forever after a close without an error: the connection looked alive, every
//! request on it failed, and a page whose relays had all restarted could not upload again
//! until reloaded — the page test's reconnect step failed that way.) A failed open is an error
//! of the dial, naming the URL.
//!
//! Writes: a browser `WebSocket` has no "buffer drained" event, only `bufferedAmount`; this
//! stream accepts writes while fewer than [`HIGH_WATER`] bytes wait in the browser, and when
//! more do it looks again after [`RECHECK`] (a timer armed only while a writer is blocked). A
//! flush returns at once: bytes handed to `send` leave in order whatever the caller does
//! next. Incoming messages are appended to one buffer, bounded by [`MAX_UNREAD`] (yamux's
//! stream windows keep a relay far below it). Upload speed measured the same as with
//! `websocket-websys` (tests/browser/bench.mjs, side by side).

use libp2p::core::multiaddr::Protocol;
use libp2p::Multiaddr;

#[cfg(target_arch = "wasm32")]
pub use browser::{Opening, Stream, Transport, HIGH_WATER, MAX_UNREAD, RECHECK};

/// Why a WebSocket connection failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WsError(String);

/// The `ws://` or `wss://` URL of a WebSocket multiaddr (a trailing `/p2p/…` is ignored).
pub fn url_of(addr: &Multiaddr) -> Option<String> {
    let mut parts = addr.iter();
    let host = match parts.next()? {
        Protocol::Ip4(ip) => ip.to_string(),
        Protocol::Ip6(ip) => format!("[{ip}]"),
        Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h) => h.to_string(),
        _ => return None,
    };
    let Protocol::Tcp(port) = parts.next()? else { return None };
    let (scheme, path) = match parts.next()? {
        Protocol::Ws(path) => ("ws", path),
        Protocol::Wss(path) => ("wss", path),
        Protocol::Tls => match parts.next()? {
            Protocol::Ws(path) => ("wss", path),
            _ => return None,
        },
        _ => return None,
    };
    match parts.next() {
        None | Some(Protocol::P2p(_)) => Some(format!("{scheme}://{host}:{port}{path}")),
        Some(_) => None,
    }
}

#[cfg(target_arch = "wasm32")]
mod browser {
    use super::{url_of, WsError};
    use futures::{AsyncRead, AsyncWrite, FutureExt};
    use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
    use libp2p::Multiaddr;
    use send_wrapper::SendWrapper;
    use std::cell::RefCell;
    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    use web_sys::{BinaryType, MessageEvent, WebSocket};

    /// Writes are accepted while fewer bytes than this wait in the browser's send buffer.
    pub const HIGH_WATER: usize = 4 << 20;
    /// How long a blocked writer waits before looking at `bufferedAmount` again.
    pub const RECHECK: Duration = Duration::from_millis(1);
    /// Received bytes not yet read beyond which the connection is closed as misbehaving.
    pub const MAX_UNREAD: usize = 64 << 20;

    /// Dials WebSocket addresses; listens on none (a page cannot accept connections).
    #[derive(Debug, Default)]
    pub struct Transport;

    impl libp2p::core::Transport for Transport {
        type Output = Stream;
        type Error = WsError;
        type ListenerUpgrade = futures::future::Pending<Result<Stream, WsError>>;
        type Dial = Opening;

        fn listen_on(&mut self, _: ListenerId, addr: Multiaddr) -> Result<(), TransportError<WsError>> {
            Err(TransportError::MultiaddrNotSupported(addr))
        }

        fn remove_listener(&mut self, _: ListenerId) -> bool {
            false
        }

        fn dial(&mut self, addr: Multiaddr, opts: DialOpts) -> Result<Self::Dial, TransportError<WsError>> {
            let Some(url) = url_of(&addr).filter(|_| opts.role.is_dialer()) else {
                return Err(TransportError::MultiaddrNotSupported(addr));
            };
            let socket = Socket::open(&url)
                .map_err(|e| TransportError::Other(WsError(format!("WebSocket {url}: {e}"))))?;
            Ok(Opening { socket: Some(SendWrapper::new(socket)), url })
        }

        fn poll(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<TransportEvent<Self::ListenerUpgrade, WsError>> {
            Poll::Pending
        }
    }

    /// A WebSocket being opened; resolves once the browser says it is open.
    pub struct Opening {
        socket: Option<SendWrapper<Socket>>,
        url: String,
    }

    impl Future for Opening {
        type Output = Result<Stream, WsError>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.get_mut();
            let Some(socket) = this.socket.as_ref() else {
                return Poll::Ready(Err(WsError(format!("{}: polled after it resolved", this.url))));
            };
            match socket.poll_open(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(e)) => Poll::Ready(Err(WsError(format!("cannot reach {}: {e}", this.url)))),
                Poll::Ready(Ok(())) => match this.socket.take() {
                    Some(socket) => Poll::Ready(Ok(Stream(socket))),
                    None => Poll::Pending,
                },
            }
        }
    }

    impl std::fmt::Debug for Opening {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Opening({})", self.url)
        }
    }

    /// An open WebSocket as a byte stream (`AsyncRead + AsyncWrite`).
    pub struct Stream(SendWrapper<Socket>);

    impl std::fmt::Debug for Stream {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Stream({})", self.0.ws.url())
        }
    }

    #[derive(Default)]
    struct Shared {
        /// Received bytes; `unread[read..]` are not yet read.
        unread: Vec<u8>,
        read: usize,
        opened: bool,
        closed: bool,
        failed: Option<String>,
        wake_reader: Option<Waker>,
        wake_opener: Option<Waker>,
        wake_closer: Option<Waker>,
    }

    impl Shared {
        fn wake_all(&mut self) {
            for w in [self.wake_reader.take(), self.wake_opener.take(), self.wake_closer.take()]
                .into_iter()
                .flatten()
            {
                w.wake();
            }
        }

        fn receive(&mut self, data: &js_sys::Uint8Array) {
            let n = data.length() as usize;
            if self.read == self.unread.len() {
                self.unread.clear();
                self.read = 0;
            } else if self.read > self.unread.len() / 2 {
                self.unread.drain(..self.read);
                self.read = 0;
            }
            if self.unread.len() - self.read + n > MAX_UNREAD {
                self.failed =
                    Some(format!("the relay sent more than {} MiB that was not read", MAX_UNREAD >> 20));
            } else {
                let start = self.unread.len();
                self.unread.resize(start + n, 0);
                data.copy_to(&mut self.unread[start..]);
            }
            if let Some(w) = self.wake_reader.take() {
                w.wake();
            }
        }

        fn error(&self) -> Option<io::Error> {
            self.failed.as_ref().map(|m| io::Error::new(io::ErrorKind::ConnectionReset, m.clone()))
        }
    }

    type Handler<E> = Closure<dyn FnMut(E)>;

    struct Socket {
        ws: WebSocket,
        shared: Rc<RefCell<Shared>>,
        /// Armed while a writer waits for the browser's send buffer to drain.
        recheck: Option<futures_timer::Delay>,
        _handlers: (
            Handler<web_sys::Event>,
            Handler<web_sys::Event>,
            Handler<web_sys::Event>,
            Handler<MessageEvent>,
        ),
    }

    impl Socket {
        fn open(url: &str) -> Result<Socket, String> {
            let ws = WebSocket::new(url).map_err(|e| format!("{e:?}"))?;
            ws.set_binary_type(BinaryType::Arraybuffer);
            let shared = Rc::new(RefCell::new(Shared::default()));
            let on_open = {
                let s = shared.clone();
                Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                    let mut s = s.borrow_mut();
                    s.opened = true;
                    s.wake_all();
                })
            };
            let on_error = {
                let s = shared.clone();
                Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                    let mut s = s.borrow_mut();
                    s.failed.get_or_insert_with(|| "the WebSocket failed".into());
                    s.wake_all();
                })
            };
            let on_close = {
                let s = shared.clone();
                Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                    let mut s = s.borrow_mut();
                    s.closed = true;
                    if !s.opened {
                        s.failed.get_or_insert_with(|| "the WebSocket closed before it opened".into());
                    }
                    s.wake_all();
                })
            };
            let on_message = {
                let s = shared.clone();
                Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
                    if let Ok(buf) = e.data().dyn_into::<js_sys::ArrayBuffer>() {
                        s.borrow_mut().receive(&js_sys::Uint8Array::new(&buf));
                    }
                })
            };
            ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
            ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
            ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            Ok(Socket { ws, shared, recheck: None, _handlers: (on_open, on_error, on_close, on_message) })
        }

        fn poll_open(&self, cx: &Context<'_>) -> Poll<io::Result<()>> {
            let mut s = self.shared.borrow_mut();
            if let Some(e) = s.error() {
                return Poll::Ready(Err(e));
            }
            if s.opened {
                return Poll::Ready(Ok(()));
            }
            s.wake_opener = Some(cx.waker().clone());
            Poll::Pending
        }

        fn writable(&self) -> io::Result<()> {
            let s = self.shared.borrow();
            match s.error() {
                Some(e) => Err(e),
                None if s.closed => Err(io::ErrorKind::BrokenPipe.into()),
                None => Ok(()),
            }
        }
    }

    impl Drop for Socket {
        fn drop(&mut self) {
            self.ws.set_onopen(None);
            self.ws.set_onerror(None);
            self.ws.set_onclose(None);
            self.ws.set_onmessage(None);
            if self.ws.ready_state() <= WebSocket::OPEN {
                let _ = self.ws.close();
            }
        }
    }

    impl AsyncRead for Stream {
        fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            let mut s = self.0.shared.borrow_mut();
            let available = s.unread.len() - s.read;
            if available > 0 {
                let n = available.min(buf.len());
                buf[..n].copy_from_slice(&s.unread[s.read..s.read + n]);
                s.read += n;
                return Poll::Ready(Ok(n));
            }
            if let Some(e) = s.error() {
                return Poll::Ready(Err(e));
            }
            if s.closed {
                return Poll::Ready(Ok(0));
            }
            s.wake_reader = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    impl AsyncWrite for Stream {
        fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let socket = &mut *self.get_mut().0;
            socket.writable()?;
            loop {
                let waiting = socket.ws.buffered_amount() as usize;
                if waiting < HIGH_WATER {
                    socket.recheck = None;
                    let n = buf.len().min(HIGH_WATER - waiting);
                    socket
                        .ws
                        .send_with_u8_array(&buf[..n])
                        .map_err(|e| io::Error::other(format!("send: {e:?}")))?;
                    return Poll::Ready(Ok(n));
                }
                let timer = socket.recheck.get_or_insert_with(|| futures_timer::Delay::new(RECHECK));
                if timer.poll_unpin(cx).is_pending() {
                    return Poll::Pending;
                }
                socket.recheck = None;
            }
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(self.0.writable())
        }

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let socket = &*self.0;
            let mut s = socket.shared.borrow_mut();
            if s.closed || s.failed.is_some() {
                return Poll::Ready(Ok(()));
            }
            if socket.ws.ready_state() == WebSocket::OPEN {
                let _ = socket.ws.close();
            }
            s.wake_closer = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::url_of;

    #[test]
    fn urls_of_websocket_addresses() {
        let cases = [
            ("/ip4/127.0.0.1/tcp/4101/ws", Some("ws://127.0.0.1:4101/")),
            ("/ip6/::1/tcp/4101/ws", Some("ws://[::1]:4101/")),
            ("/dns4/relay.example/tcp/443/wss", Some("wss://relay.example:443/")),
            ("/dns/relay.example/tcp/443/tls/ws", Some("wss://relay.example:443/")),
            (
                "/ip4/127.0.0.1/tcp/4101/ws/p2p/12D3KooWMZtakiBQvd74WikwzTpCDFMowXQaW9xPTNf1CsfgwkAe",
                Some("ws://127.0.0.1:4101/"),
            ),
            ("/ip4/127.0.0.1/tcp/4100", None),
            ("/ip4/127.0.0.1/udp/4102/webrtc-direct", None),
            ("/ip4/127.0.0.1/tcp/4101/ws/tls", None),
        ];
        for (addr, want) in cases {
            assert_eq!(url_of(&addr.parse().unwrap()).as_deref(), want, "{addr}");
        }
    }
}
