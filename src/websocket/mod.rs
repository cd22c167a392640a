//! [`WebSocket`]: the protocol over an upgraded connection.
//!
//! This module owns everything that needs time or both directions at once:
//! answering pings (§5.5.2), the closing handshake (§7.1), failing the connection
//! with the right close code (§7.1.7), keepalive and idle timeouts, backpressure,
//! and splitting into halves for two tasks. Framing and validation are the
//! codec's; this module never parses bytes itself.
//!
//! It does not use `Framed`: it keeps its own read and write buffers so that they
//! start empty, grow with what actually arrives, and are given back after a burst
//! (a `Framed` allocates 8 KiB each way up front).
//!
//! # Shape
//!
//! | file | owns |
//! |---|---|
//! | `core.rs` | the state machine below, the codec, both buffers, the pending Pong, the stream's last item; no transport, no timer |
//! | `timers.rs` | the deadlines (keepalive, idle, close) as instants; the driver keeps one `Sleep` for all |
//! | `write_queue.rs` | encoded bytes in order, shared payloads without copies |
//! | `mod.rs` (this) | the driver: moves bytes between the transport and the core, polls the one `Sleep`, implements `Stream` and `Sink` |
//! | `split.rs` | the halves, and the wakers both halves share |
//! | `prepared.rs` | [`PreparedSink`], the `Sink` of prepared messages over either |
//! | `lock.rs` | the halves' lock, which wakes a task instead of blocking a thread |
//!
//! # The state machine
//!
//! ```text
//!           we queue Close                     peer's Close arrives
//!   Open ────────────────────▶ CloseSent ───────────────────────────┐
//!    │  peer's Close arrives (we answer it)                         ▼
//!    ├──────────────────────────────────────────────────────▶ Closing ──▶ Done
//!    │  protocol error, limit, idle timeout (we send its code)   ▲  flush, FIN, read to EOF
//!    └───────────────────────────────────────────────────────────┘
//!   Open/CloseSent ──── EOF, transport error, close timeout ───────────▶ Done
//! ```
//!
//! | state | event | action | next |
//! |---|---|---|---|
//! | Open | bytes read | decode; a Ping gets a Pong queued (bounded, see below; none with `auto_pong` off) | Open |
//! | Open | message sent | encode into the write queue | Open |
//! | Open | Close sent by us | queue it past the write limit, start the close deadline, wake the reader | CloseSent |
//! | Open | peer's Close | queue our answer (its code), start the close deadline | Closing (handshake, by peer) |
//! | Open | protocol error, limit, idle timeout | queue a Close with its code | Closing (failed) |
//! | Open | keepalive due | queue a Ping, unless our last control frame has not left | Open |
//! | CloseSent | bytes read | decode; data still arrives, pings are not answered (§5.5.1) | CloseSent |
//! | CloseSent | peer's Close | | Closing (handshake, by us) |
//! | CloseSent | close deadline | drop the queue | Done: [`AbnormalClosure::CloseTimeout`](crate::AbnormalClosure::CloseTimeout) |
//! | Open, CloseSent | EOF | drop the queue | Done: [`AbnormalClosure::PeerEof`](crate::AbnormalClosure::PeerEof) |
//! | Open, CloseSent | transport error | drop the queue | Done: [`Error::Io`] |
//! | Closing | transport writable | write the queue; then FIN if we are the server or failing (§7.1.1) | Closing |
//! | Closing | EOF | FIN if not sent yet | Done |
//! | Closing | close deadline, transport error | drop the queue | Done |
//! | Done | | yield the last item: the peer's Close, or the error | (stream ends) |
//!
//! Every transition to `Closing` or `Done` wakes the other half. A transition
//! that drops queued bytes makes a waiting `poll_flush` fail rather than report
//! them sent. The reader never stops reading because of the write queue: what
//! it generates itself is bounded: every Ping is answered while the peer
//! reads our Pongs, at most 4 KiB of them wait unwritten, and past that only
//! the latest Ping is kept to answer (§5.5.3); plus one Close.
//!
//! Reading to EOF before dropping the socket matters: closing a TCP socket with
//! unread bytes makes the kernel send RST, which can destroy our close frame
//! before the peer reads it.

mod core;
mod lock;
mod prepared;
mod split;
mod timers;
mod write_queue;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use futures_core::stream::FusedStream;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{sleep_until, Instant, Sleep};

use self::core::{Core, Decoded, Ending, State};
pub use self::prepared::PreparedSink;
pub use self::split::{ReadHalf, WriteHalf};
use self::split::{Side, SplitWakers};
use crate::codec::PreparedMessage;
use crate::config::{Config, Role};
use crate::error::Error;
use crate::extension::Extensions;
use crate::handshake::Agreed;
use crate::message::{CloseCode, CloseFrame, Message};

/// A WebSocket connection over `T`: a [`Stream`] of received [`Message`]s and a
/// [`Sink`] of messages to send.
///
/// It answers pings by itself (unless [`Config::auto_pong`] is off), runs the
/// closing handshake in both directions,
/// and fails the connection with the right close code when the peer breaks the
/// protocol.
///
/// # How the stream ends
///
/// The last item tells how the connection ended, then the stream yields `None`:
///
/// | last item | meaning |
/// |---|---|
/// | `Ok(Message::Close(frame))` | the closing handshake completed; `frame` is the peer's Close, whoever started |
/// | `Err(`[`Error::AbnormalClosure`]`(PeerEof))` | the peer closed the transport without a Close frame (1006) |
/// | `Err(`[`Error::AbnormalClosure`]`(CloseTimeout))` | the peer did not answer our Close within [`Config::close_timeout`] (1006) |
/// | `Err(`[`Error::Protocol`]` / `[`Error::Capacity`]` / `[`Error::IdleTimeout`]`)` | we failed the connection, sending the error's close code |
/// | `Err(`[`Error::Io`]`)` | the transport failed |
///
/// # Sending and batching
///
/// `start_send` (and `SinkExt::feed`) only appends to a write queue. The queue
/// goes to the transport on `poll_flush` (which `SinkExt::send` calls), when it
/// exceeds [`Config::write_buffer_limit`] in `poll_ready`, and whenever the
/// stream is about to wait for input. `poll_flush` is `Ready(Ok)` only once
/// every queued byte is written and the transport's own flush is done, as the
/// `Sink` contract says.
///
/// So a read-and-reply loop that `feed`s its replies answers a burst of
/// pipelined messages with one write, not one per message: the replies leave
/// together when the stream finds no more input.
///
/// ```ignore
/// while let Some(message) = ws.next().await {
///     ws.feed(message?).await?; // sent before the stream next waits for input
/// }
/// ```
///
/// `send` in the same loop writes each reply at once; `SinkExt::send_all`
/// and `StreamExt::forward` batch by themselves.
///
/// # Runtime
///
/// The close timeout, keepalive and idle timeout use tokio's timers: run it in
/// a runtime with time enabled (`#[tokio::main]` is).
///
/// # Example
///
/// ```
/// use futures::{SinkExt, StreamExt};
/// use wscodec::{Config, Message, Role, WebSocket};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), wscodec::Error> {
/// let (a, b) = tokio::io::duplex(4096);
/// let mut client = WebSocket::from_upgraded(a, Role::Client, Config::default());
/// let mut server = WebSocket::from_upgraded(b, Role::Server, Config::default());
/// client.send(Message::text("ping?")).await?;
/// let got = server.next().await.unwrap()?;
/// server.send(got).await?;
/// assert_eq!(client.next().await.unwrap()?, Message::text("ping?"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct WebSocket<T> {
    io: T,
    core: Core,
    /// One timer for every deadline, created when the first one is set.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Present once split: who to wake when the transport or the timer is
    /// ready, since each of them keeps one waker and both halves may wait.
    split: Option<SplitWakers>,
}

impl<T> WebSocket<T> {
    /// Wraps a connection that has already completed the opening handshake (a
    /// hyper or axum upgrade, say), playing `role`.
    pub fn from_upgraded(io: T, role: Role, config: Config) -> Self {
        Self::from_parts(io, role, config, BytesMut::new())
    }

    /// Like [`WebSocket::from_upgraded`], with bytes already read from `io` past
    /// the handshake (pipelined frames), which are decoded first.
    pub fn from_parts(io: T, role: Role, config: Config, read_buf: BytesMut) -> Self {
        Self::with_extensions(io, role, config, read_buf, &Extensions::none())
    }

    /// The server side of a connection whose handshake was answered
    /// elsewhere from `agreed` (a hyper or axum upgrade, say): runs the
    /// extensions it agreed on, in one step.
    ///
    /// ```
    /// use wscodec::handshake::{Accept, Agreed, Request};
    /// use wscodec::{Config, WebSocket};
    /// # fn upgrade(request: &Request, io: tokio::io::DuplexStream) -> Result<(), wscodec::HandshakeError> {
    /// let config = Config::default();
    /// let agreed = Agreed::negotiate(request, Accept::new(), &config)?;
    /// // ... send agreed's 101 response, take the upgraded `io` ...
    /// let ws = WebSocket::from_agreed(io, &agreed, config);
    /// # Ok(()) }
    /// ```
    pub fn from_agreed(io: T, agreed: &Agreed, config: Config) -> Self {
        let extensions = agreed.extensions();
        Self::with_extensions(io, Role::Server, config, BytesMut::new(), extensions)
    }

    /// A connection running the `extensions` a handshake agreed on, that
    /// starts by decoding `read_buf`.
    pub fn with_extensions(
        io: T,
        role: Role,
        config: Config,
        read_buf: BytesMut,
        extensions: &Extensions,
    ) -> Self {
        WebSocket {
            io,
            core: Core::new(role, config, read_buf, extensions),
            sleep: None,
            split: None,
        }
    }

    /// The role this side plays.
    pub fn role(&self) -> Role {
        self.core.role
    }

    /// Turns on permessage-deflate with parameters agreed in a handshake done
    /// elsewhere. Prefer [`WebSocket::from_agreed`] or
    /// [`WebSocket::with_extensions`], which set every agreed extension at
    /// once; `accept_with` and `connect_with` do that themselves.
    #[cfg(feature = "deflate")]
    pub fn set_deflate(&mut self, params: &crate::deflate::DeflateParams) {
        self.core.set_deflate(params);
    }

    /// The connection's span (feature `tracing`): `websocket`, at DEBUG, with
    /// the fields `role` and `peer`. Every event of the connection is emitted
    /// in it (the close with who started it, its code and reason; protocol
    /// errors, limits and timeouts at DEBUG; each message at TRACE). It is
    /// created in the span that is current when the connection is, so it
    /// nests under the application's own span for the connection.
    ///
    /// A `WebSocket` over any `T` cannot know who the peer is: record it.
    ///
    /// ```
    /// use wscodec::{Config, Role, WebSocket};
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let ws = WebSocket::from_upgraded(io, Role::Server, Config::default());
    /// ws.span().record("peer", tracing::field::display("192.0.2.7:50312"));
    /// ```
    #[cfg(feature = "tracing")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
    pub fn span(&self) -> &tracing::Span {
        &self.core.span
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    /// The underlying transport.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The underlying transport, mutably. Reading or writing it directly
    /// corrupts the WebSocket stream.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// Bytes queued for sending and not yet written to the transport.
    pub fn pending_write_bytes(&self) -> usize {
        self.core.writes.len()
    }

    /// Whether the stream has ended: it has yielded its last item (see "How
    /// the stream ends" above) and will yield only `None`. The same as
    /// [`FusedStream::is_terminated`], so `futures::select!` still receives
    /// that last item.
    pub fn is_terminated(&self) -> bool {
        self.is_done() && self.core.final_item.is_none()
    }

    /// Whether the connection is over (its last item may still be waiting to
    /// be yielded).
    fn is_done(&self) -> bool {
        matches!(self.core.state, State::Done(_))
    }

    /// Starts the closing handshake without waiting: queues our Close (with
    /// `frame`, or no status) behind what is already queued, even past
    /// `write_buffer_limit`, and starts the close timer. Keep polling the
    /// stream: it writes the queue out and ends when the peer answers, or
    /// after `close_timeout` at the latest, so even a peer that has stopped
    /// reading cannot hold the connection open. Does nothing if a Close was
    /// already sent.
    ///
    /// Compare `SinkExt::close`, which waits until our Close is written (at
    /// most `close_timeout`).
    ///
    /// Fails with [`Error::Protocol`] if the frame cannot be sent (a reason
    /// over 123 bytes) and with [`Error::Closed`] once the connection is done.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use wscodec::{CloseCode, CloseFrame, Config, Error, Role, WebSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), wscodec::Error> {
    /// let (a, _peer) = tokio::io::duplex(4096);
    /// let mut ws = WebSocket::from_upgraded(a, Role::Server, Config::default());
    /// ws.start_close(Some(CloseFrame::new(CloseCode::POLICY_VIOLATION, "too slow")))?;
    /// // A peer that never answers: the stream ends after `close_timeout`.
    /// # tokio::time::pause();
    /// let last = ws.next().await.unwrap();
    /// assert!(matches!(last, Err(Error::AbnormalClosure(_))));
    /// assert!(ws.next().await.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn start_close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        if self.is_done() {
            return Err(Error::Closed);
        }
        self.core.close_by_us(frame)?;
        self.wake_other(Side::Write);
        Ok(())
    }

    /// After a call into the core from `side`: if the state changed, the other
    /// half may be waiting on it.
    fn wake_other(&mut self, side: Side) {
        if self.core.take_changed() {
            if let Some(split) = &self.split {
                split.wake(side.other());
            }
        }
    }
}

/// Polls `$poll` with the waker for shared resources (the transport's write
/// side, the timer): the caller's own, or, once split, one that wakes both
/// halves.
macro_rules! shared_cx {
    ($self:ident, $cx:ident, |$c:ident| $poll:expr) => {
        match $self.split.as_ref().map(SplitWakers::waker) {
            Some(waker) => {
                let $c = &mut Context::from_waker(&waker);
                $poll
            }
            None => {
                let $c = &mut *$cx;
                $poll
            }
        }
    };
}

impl<T: AsyncRead + AsyncWrite + Unpin> WebSocket<T> {
    /// Writes queued bytes until at most `limit` remain. `Pending` means more
    /// than `limit` remain and the transport is not writable yet.
    fn poll_write_down_to(&mut self, cx: &mut Context<'_>, limit: usize) -> Poll<io::Result<()>> {
        self.core.queue_control();
        while self.core.writes.len() > limit {
            let (slices, count) = self.core.writes.slices();
            let io = Pin::new(&mut self.io);
            let n = ready!(shared_cx!(self, cx, |c| io.poll_write_vectored(c, &slices[..count])))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.core.writes.advance(n);
            self.core.needs_flush = true;
            // A Pong waiting for the last control frame to leave may go now.
            self.core.queue_control();
        }
        self.core.writes.shrink_if_idle();
        Poll::Ready(Ok(()))
    }

    /// Writes everything queued and flushes the transport.
    fn poll_write_all(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_down_to(cx, 0))?;
        if self.core.needs_flush {
            let io = Pin::new(&mut self.io);
            ready!(shared_cx!(self, cx, |c| io.poll_flush(c)))?;
            self.core.needs_flush = false;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let io = Pin::new(&mut self.io);
        let result = ready!(shared_cx!(self, cx, |c| io.poll_shutdown(c)));
        self.core.shut_down = true;
        Poll::Ready(result)
    }

    /// Reads more bytes into the read buffer; `Ok(0)` is EOF. Only the reading
    /// side reads, so this registers the caller's own waker.
    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.core.reserve_read();
        let io = Pin::new(&mut self.io);
        let n = match tokio_util::io::poll_read_buf(io, cx, &mut self.core.read_buf) {
            Poll::Ready(result) => result?,
            Poll::Pending => {
                self.core.on_read_pending();
                return Poll::Pending;
            }
        };
        self.core.on_read(n);
        Poll::Ready(Ok(n))
    }

    /// Polls the one timer, set to the earliest deadline; `true` when a
    /// deadline fell due and the core acted on it.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let open = self.core.state == State::Open;
            let Some(deadline) = self.core.deadlines.next(open) else {
                return false;
            };
            let sleep = match &mut self.sleep {
                // Left alone when the deadline moved later: it fires early
                // once, and is set again below, instead of on every read.
                Some(sleep) if sleep.deadline() <= deadline => sleep,
                Some(sleep) => {
                    sleep.as_mut().reset(deadline);
                    sleep
                }
                None => self.sleep.insert(Box::pin(sleep_until(deadline))),
            };
            let fired = match self.split.as_ref().map(SplitWakers::waker) {
                Some(waker) => sleep.as_mut().poll(&mut Context::from_waker(&waker)),
                None => sleep.as_mut().poll(cx),
            };
            if fired.is_pending() {
                return false;
            }
            let due = self.core.deadlines.due(Instant::now(), open);
            if due.keepalive || due.idle || due.close {
                self.core.on_time(due);
                return true;
            }
            // Fired early: the deadline moved on since the timer was set.
            sleep.as_mut().reset(deadline);
        }
    }

    fn poll_next_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        loop {
            match self.core.state {
                State::Open | State::CloseSent => {
                    match self.core.decode() {
                        Decoded::Message(message) => return Poll::Ready(Some(Ok(message))),
                        Decoded::Changed => continue,
                        Decoded::NeedInput => {}
                    }
                    if self.poll_timers(cx) {
                        continue;
                    }
                    // Send what is queued (pongs, pings, unflushed data)
                    // before waiting for input. This never holds up reading:
                    // if the transport is full, its wake-up brings us back.
                    if let Poll::Ready(Err(e)) = self.poll_write_all(cx) {
                        self.core.on_io_error(e);
                        continue;
                    }
                    match ready!(self.poll_read_more(cx)) {
                        Ok(0) => self.core.on_eof(),
                        Ok(_) => {}
                        Err(e) => {
                            self.core.on_io_error(e);
                        }
                    }
                }
                State::Closing(ending) => ready!(self.poll_closing(cx, ending)),
                State::Done(_) => return Poll::Ready(self.core.final_item.take()),
            }
        }
    }

    /// Closing: flush our Close, send FIN where it is ours to send first, read
    /// to EOF, all bounded by the close deadline. `Ready` once `Done`.
    fn poll_closing(&mut self, cx: &mut Context<'_>, ending: Ending) -> Poll<()> {
        if self.poll_timers(cx) {
            return Poll::Ready(());
        }
        if let Err(e) = ready!(self.poll_write_all(cx)) {
            self.core.on_io_error(e);
            return Poll::Ready(());
        }
        // §7.1.1: the server closes the TCP connection first; a client waits
        // for it, unless it is failing the connection.
        let first = self.core.role == Role::Server || ending == Ending::Failed;
        if first && !self.core.shut_down {
            if let Err(e) = ready!(self.poll_shutdown(cx)) {
                self.core.on_io_error(e);
                return Poll::Ready(());
            }
        }
        loop {
            self.core.read_buf.clear();
            match ready!(self.poll_read_more(cx)) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    self.core.on_io_error(e);
                    return Poll::Ready(());
                }
            }
        }
        // The peer has closed its side; close ours so it sees EOF too.
        if !self.core.shut_down {
            let _ = ready!(self.poll_shutdown(cx));
        }
        self.core.finish();
        Poll::Ready(())
    }

    fn poll_ready_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some(error) = self.core.refused.take() {
            return Poll::Ready(Err(error));
        }
        if self.core.state != State::Open {
            // start_send refuses data, and takes a repeated Close as a no-op.
            return Poll::Ready(Ok(()));
        }
        let limit = self.core.config.write_buffer_limit;
        match ready!(self.poll_write_down_to(cx, limit)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(self.core.on_io_error(e))),
        }
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some(error) = self.core.refused.take() {
            return Poll::Ready(Err(error));
        }
        loop {
            match self.core.state {
                State::Done(_) if self.core.dropped => {
                    return Poll::Ready(Err(self.core.writer_error()))
                }
                State::Done(_) => return Poll::Ready(Ok(())),
                State::Open => {}
                // Once closing, the close deadline bounds the wait too, even
                // if nobody polls the stream.
                State::CloseSent | State::Closing(_) => {
                    if self.poll_timers(cx) {
                        continue;
                    }
                }
            }
            return match ready!(self.poll_write_all(cx)) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(e) => Poll::Ready(Err(self.core.on_io_error(e))),
            };
        }
    }

    fn poll_close_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let normal = CloseFrame::new(CloseCode::NORMAL, "");
        self.core.close_by_us(Some(normal))?;
        self.poll_flush_inner(cx)
    }

    /// Runs one poll of the half `side`: registers its waker for wake-ups
    /// through the shared waker, then wakes the other half if the state moved.
    fn poll_as<R>(
        &mut self,
        side: Side,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Self, &mut Context<'_>) -> R,
    ) -> R {
        if let Some(split) = &self.split {
            split.register(side, cx.waker());
        }
        let result = poll(self, cx);
        self.wake_other(side);
        result
    }

    /// Queues a [`PreparedMessage`] (waiting while the write buffer is over its
    /// limit) without flushing: `SinkExt::feed` on
    /// [`prepared_sink`](WebSocket::prepared_sink). A server connection queues
    /// the shared encoded bytes as they are: no copy per recipient.
    pub async fn feed_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.prepared_sink().feed(message).await
    }

    /// Sends a [`PreparedMessage`] and flushes: `SinkExt::send` on
    /// [`prepared_sink`](WebSocket::prepared_sink).
    pub async fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.prepared_sink().send(message).await
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<T> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_inner(cx)
    }
}

/// `true` once the stream has yielded its last item: polling it again gives
/// only `None`.
impl<T: AsyncRead + AsyncWrite + Unpin> FusedStream for WebSocket<T> {
    fn is_terminated(&self) -> bool {
        WebSocket::is_terminated(self)
    }
}

/// Sending: see [`WebSocket`]'s docs on batching. `poll_close` sends a Close
/// (1000) and flushes; keep reading the stream until it ends to complete the
/// closing handshake.
impl<T: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_ready_inner(cx)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        self.get_mut().core.start_send(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush_inner(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_close_inner(cx)
    }
}

#[cfg(test)]
mod tests;
