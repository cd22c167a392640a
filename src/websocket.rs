//! [`WebSocket`]: the protocol state machine over an upgraded connection.
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
//! # Life of a connection
//!
//! ```text
//!            peer's Close / our error / idle timeout
//!   Open ─────────────────────────────────────────────▶ Closing ──▶ Done
//!   (close_sent once we sent Close: data may still arrive)   │
//!                                                            │ flush our Close,
//!                                                            │ FIN (server, or on error),
//!                                                            │ read to EOF (bounded by
//!                                                            │ close_timeout), then yield
//!                                                            ▼ the Close or the error
//! ```
//!
//! Reading to EOF before dropping the socket matters: closing a TCP socket with
//! unread bytes makes the kernel send RST, which can destroy our close frame
//! before the peer reads it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Wake, Waker};

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{sleep, Instant, Sleep};
use tokio_util::codec::Decoder;

use crate::codec::{encode_message, FrameSink, MessageCodec, PreparedMessage};
use crate::config::{Config, Role};
use crate::error::Error;
use crate::frame::{FrameHeader, MAX_CONTROL_PAYLOAD};
use crate::message::{CloseCode, CloseFrame, Message, Utf8Bytes};

/// The first read reserves this much, so an idle connection holds little.
const READ_CHUNK: usize = 1024;
/// While reads keep filling the buffer (a busy peer, pipelined messages), the
/// read size doubles up to this, so a burst costs few system calls.
const MAX_READ_CHUNK: usize = 64 << 10;
/// An empty buffer larger than this is given back to the allocator after a burst.
const SHRINK_ABOVE: usize = 64 << 10;

/// The most I/O slices handed to one vectored write.
const MAX_IO_SLICES: usize = 64;

/// Encoded bytes waiting for the transport, in order: the `shared` segments, then
/// `tail`. Headers and small payloads are copied into `tail`; large unmasked
/// payloads and prepared messages are queued as the caller's `Bytes`, and all of
/// it leaves in vectored writes, so a payload is never copied on its way out.
#[derive(Debug, Default)]
struct WriteQueue {
    shared: VecDeque<Bytes>,
    shared_len: usize,
    tail: BytesMut,
}

impl WriteQueue {
    fn len(&self) -> usize {
        self.shared_len + self.tail.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `bytes` after everything queued so far.
    fn push_shared(&mut self, bytes: Bytes) {
        if !self.tail.is_empty() {
            // Ends the current tail segment; its spare capacity stays with `tail`.
            let sealed = self.tail.split().freeze();
            self.shared_len += sealed.len();
            self.shared.push_back(sealed);
        }
        self.shared_len += bytes.len();
        self.shared.push_back(bytes);
    }

    /// The queued bytes as I/O slices, as many as one write takes.
    fn slices(&self) -> ([IoSlice<'_>; MAX_IO_SLICES], usize) {
        let mut slices = [IoSlice::new(&[]); MAX_IO_SLICES];
        let segments = self
            .shared
            .iter()
            .map(|b| &b[..])
            .chain(std::iter::once(&self.tail[..]))
            .filter(|s| !s.is_empty());
        let mut n = 0;
        for (slot, segment) in slices.iter_mut().zip(segments) {
            *slot = IoSlice::new(segment);
            n += 1;
        }
        (slices, n)
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            match self.shared.front_mut() {
                Some(front) if front.len() <= n => {
                    n -= front.len();
                    self.shared_len -= front.len();
                    self.shared.pop_front();
                }
                Some(front) => {
                    front.advance(n);
                    self.shared_len -= n;
                    return;
                }
                None => {
                    self.tail.advance(n);
                    return;
                }
            }
        }
    }

    /// Gives a large empty buffer back to the allocator after a burst.
    fn shrink_if_idle(&mut self) {
        if self.is_empty() && self.tail.capacity() > SHRINK_ABOVE {
            self.tail = BytesMut::new();
        }
        if self.shared.is_empty() && self.shared.capacity() > MAX_IO_SLICES {
            self.shared = VecDeque::new();
        }
    }
}

impl FrameSink for WriteQueue {
    fn buf(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    fn try_share(&mut self, payload: &Bytes) -> bool {
        self.push_shared(payload.clone());
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Messages flow (and keep flowing in after we sent Close, until the peer's).
    Open,
    /// The closing handshake is done or the connection failed: flush, FIN, read
    /// to EOF, then yield `final_item`.
    Closing,
    /// The stream has ended.
    Done,
}

/// Which half is polling: decides whose waker a write registers.
#[derive(Debug, Clone, Copy)]
enum Side {
    Read,
    Write,
}

/// When split, both halves may wait for the socket to become writable (the
/// reader to send a pong, the writer its data), but a socket keeps one waker per
/// direction. Writes register this instead, which wakes both, so neither half
/// loses its wake-up (the failure tokio-websockets #92 and #106 describe).
#[derive(Debug, Default)]
struct WriteWakers {
    reader: Mutex<Option<Waker>>,
    writer: Mutex<Option<Waker>>,
}

impl WriteWakers {
    fn slot(&self, side: Side) -> MutexGuard<'_, Option<Waker>> {
        let slot = match side {
            Side::Read => &self.reader,
            Side::Write => &self.writer,
        };
        slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, side: Side, waker: &Waker) {
        let mut slot = self.slot(side);
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }
}

impl Wake for WriteWakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        for side in [Side::Read, Side::Write] {
            if let Some(w) = self.slot(side).take() {
                w.wake();
            }
        }
    }
}

/// A WebSocket connection over `T`: a [`Stream`] of received [`Message`]s and a
/// [`Sink`] of messages to send.
///
/// It answers pings by itself, runs the closing handshake in both directions,
/// and fails the connection with the right close code when the peer breaks the
/// protocol. The stream ends (`None`) once the connection is closed; the last
/// item before that is the peer's `Close` message or the error that failed the
/// connection.
///
/// # Batching
///
/// Sending only appends to a write queue; the queue goes to the socket on
/// `poll_flush` (which `SinkExt::send` calls), when it exceeds
/// [`Config::write_buffer_limit`], and whenever the stream is about to wait for
/// input. With [`Config::batch_writes`] (the default), `poll_flush` also waits
/// while a complete frame is already in the read buffer, since the stream will
/// hand it over without waiting and write everything queued before it next
/// waits. So the obvious echo loop
///
/// ```ignore
/// while let Some(message) = ws.next().await {
///     ws.send(message?).await?;
/// }
/// ```
///
/// answers a burst of pipelined messages with one write, not one per message.
/// The price: if you stop polling the stream while messages it has read are
/// still unread, what you sent since waits for your next poll (or for
/// `close`). Set `batch_writes` to `false` to make every flush write.
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
    role: Role,
    codec: MessageCodec,
    config: Config,
    read_buf: BytesMut,
    /// How much the next read reserves room for; see [`MAX_READ_CHUNK`].
    read_chunk: usize,
    writes: WriteQueue,
    phase: Phase,
    /// We queued a Close frame: no more messages may be sent.
    close_sent: bool,
    /// Whether we sent FIN.
    shut_down: bool,
    /// What the stream yields when Closing completes.
    final_item: Option<Result<Message, Error>>,
    close_timer: Option<Pin<Box<Sleep>>>,
    keepalive_timer: Option<Pin<Box<Sleep>>>,
    idle_timer: Option<Pin<Box<Sleep>>>,
    /// Present once split; see [`WriteWakers`].
    wakers: Option<Arc<WriteWakers>>,
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
        let timer = |d: Option<std::time::Duration>| d.map(|d| Box::pin(sleep(d)));
        WebSocket {
            codec: MessageCodec::with_limits(role, &config.limits),
            keepalive_timer: timer(config.keepalive_interval),
            idle_timer: timer(config.idle_timeout),
            io,
            role,
            config,
            read_buf,
            read_chunk: READ_CHUNK,
            writes: WriteQueue::default(),
            phase: Phase::Open,
            close_sent: false,
            shut_down: false,
            final_item: None,
            close_timer: None,
            wakers: None,
        }
    }

    /// The role this side plays.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Turns on permessage-deflate with parameters agreed in a handshake done
    /// elsewhere (a hyper upgrade, say); `accept_with` and `connect_with` do
    /// this themselves when [`Config::deflate`] is set.
    #[cfg(feature = "deflate")]
    pub fn set_deflate(&mut self, params: &crate::deflate::DeflateParams) {
        self.codec.set_deflate(params);
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
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
        self.writes.len()
    }

    /// Whether the stream has ended.
    pub fn is_terminated(&self) -> bool {
        self.phase == Phase::Done
    }

    fn queue(&mut self, message: &Message) -> Result<(), Error> {
        let fragment_size = self.config.fragment_size.unwrap_or(usize::MAX);
        encode_message(
            self.role,
            message,
            fragment_size,
            self.codec.compressor(),
            &mut self.writes,
        )
    }

    fn queue_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        match self.role {
            // The same unmasked bytes suit every server connection.
            Role::Server => {
                self.writes.push_shared(prepared.encoded().clone());
                Ok(())
            }
            Role::Client => self.queue(prepared.message()),
        }
    }

    /// Queues our Close frame (once) and starts the close timer.
    fn queue_close(&mut self, frame: Option<CloseFrame>) {
        if self.close_sent {
            return;
        }
        // A frame that cannot be encoded (reason too long) was rejected before.
        let _ = self.queue(&Message::Close(frame));
        self.close_sent = true;
        self.start_close_timer();
    }

    fn start_close_timer(&mut self) {
        if self.close_timer.is_none() {
            self.close_timer = Some(Box::pin(sleep(self.config.close_timeout)));
        }
    }

    /// Fails the connection: queue a Close with the error's code, then close.
    fn fail(&mut self, error: Error) {
        match error.close_code() {
            Some(code) => {
                let reason = truncate_reason(error.to_string());
                self.queue_close(Some(CloseFrame::new(code, reason)));
                self.enter_closing(Err(error));
            }
            // An I/O error: the transport is gone, nothing more to say on it.
            None => {
                self.final_item = Some(Err(error));
                self.phase = Phase::Done;
                self.wake_writer();
            }
        }
    }

    fn enter_closing(&mut self, item: Result<Message, Error>) {
        self.final_item = Some(item);
        self.phase = Phase::Closing;
        self.start_close_timer();
        self.wake_writer();
    }

    /// A sender blocked in `poll_ready` learns that the connection is closing.
    fn wake_writer(&self) {
        if let Some(wakers) = &self.wakers {
            if let Some(w) = wakers.slot(Side::Write).take() {
                w.wake();
            }
        }
    }

    fn received_activity(&mut self) {
        let now = Instant::now();
        if let (Some(t), Some(d)) = (&mut self.keepalive_timer, self.config.keepalive_interval) {
            t.as_mut().reset(now + d);
        }
        if let (Some(t), Some(d)) = (&mut self.idle_timer, self.config.idle_timeout) {
            t.as_mut().reset(now + d);
        }
    }
}

fn truncate_reason(mut reason: String) -> String {
    let max = MAX_CONTROL_PAYLOAD - 2;
    if reason.len() > max {
        let mut cut = max;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    reason
}

impl<T: AsyncRead + AsyncWrite + Unpin> WebSocket<T> {
    /// Writes queued bytes until at most `limit` remain. `Pending` means more
    /// than `limit` remain and the transport is not writable yet.
    fn poll_write_down_to(
        &mut self,
        cx: &mut Context<'_>,
        side: Side,
        limit: usize,
    ) -> Poll<io::Result<()>> {
        while self.writes.len() > limit {
            let (slices, count) = self.writes.slices();
            let slices = &slices[..count];
            let n = match &self.wakers {
                None => ready!(Pin::new(&mut self.io).poll_write_vectored(cx, slices))?,
                Some(wakers) => {
                    wakers.register(side, cx.waker());
                    let waker = Waker::from(wakers.clone());
                    let mut shared_cx = Context::from_waker(&waker);
                    ready!(Pin::new(&mut self.io).poll_write_vectored(&mut shared_cx, slices))?
                }
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.writes.advance(n);
        }
        self.writes.shrink_if_idle();
        Poll::Ready(Ok(()))
    }

    /// Writes everything queued and flushes the transport.
    fn poll_write_all(&mut self, cx: &mut Context<'_>, side: Side) -> Poll<io::Result<()>> {
        ready!(self.poll_write_down_to(cx, side, 0))?;
        match &self.wakers {
            None => Pin::new(&mut self.io).poll_flush(cx),
            Some(wakers) => {
                wakers.register(side, cx.waker());
                let waker = Waker::from(wakers.clone());
                Pin::new(&mut self.io).poll_flush(&mut Context::from_waker(&waker))
            }
        }
    }

    /// Reads more bytes into the read buffer; `Ok(0)` is EOF.
    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let spare = self.read_buf.capacity() - self.read_buf.len();
        if spare < self.read_chunk / 4 {
            // Grow by the read size, or with what is buffered (amortised doubling
            // for a large frame), never by what a header merely declares.
            let grow = self.read_chunk.max(self.read_buf.len().min(1 << 20));
            self.read_buf.reserve(grow);
        }
        let spare = self.read_buf.capacity() - self.read_buf.len();
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.read_buf
        ))?;
        if n == spare && self.read_chunk < MAX_READ_CHUNK {
            // The read filled the buffer: more is probably waiting.
            self.read_chunk *= 2;
        }
        Poll::Ready(Ok(n))
    }

    /// Fires the keepalive, idle and close timers that are due.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(t) = &mut self.close_timer {
            if t.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        if self.phase == Phase::Open {
            if let Some(t) = &mut self.idle_timer {
                if t.as_mut().poll(cx).is_ready() {
                    self.idle_timer = None;
                    self.fail(Error::IdleTimeout);
                    return Poll::Pending;
                }
            }
            if let (Some(t), Some(d)) = (&mut self.keepalive_timer, self.config.keepalive_interval)
            {
                if t.as_mut().poll(cx).is_ready() {
                    t.as_mut().reset(Instant::now() + d);
                    let _ = t.as_mut().poll(cx);
                    if !self.close_sent {
                        let _ = self.queue(&Message::Ping(Default::default()));
                    }
                }
            }
        }
        Poll::Pending
    }

    fn poll_next_open(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        loop {
            // Every ping decoded queues a pong, and a large read buffer can hold
            // thousands of pings: while our output is over its limit, decode
            // nothing more, so a peer that pings without reading cannot grow the
            // queue past the limit.
            let limit = self.config.write_buffer_limit;
            if self.writes.len() > limit {
                match self.poll_write_down_to(cx, Side::Read, limit) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => {
                        self.fail(e.into());
                        return Poll::Pending;
                    }
                    Poll::Pending => {
                        if self.poll_timers(cx).is_ready() {
                            self.phase = Phase::Done;
                            return Poll::Ready(None);
                        }
                        return Poll::Pending;
                    }
                }
            }
            match self.codec.decode(&mut self.read_buf) {
                Ok(Some(message)) => {
                    self.received_activity();
                    match message {
                        Message::Ping(payload) => {
                            // §5.5.2: answer with the same application data, unless
                            // we already said Close. The pong goes out with the next
                            // flush, or before the stream next waits for input.
                            if !self.close_sent {
                                // The decoder bounds a ping to 125 bytes, so this fits.
                                let _ = self.queue(&Message::Pong(payload.clone()));
                            }
                            return Poll::Ready(Some(Ok(Message::Ping(payload))));
                        }
                        Message::Close(frame) => {
                            // §5.5.1: reply with a Close echoing the status code.
                            let reply = frame
                                .as_ref()
                                .map(|f| CloseFrame::new(f.code, Utf8Bytes::default()));
                            self.queue_close(reply);
                            self.enter_closing(Ok(Message::Close(frame)));
                            return Poll::Pending;
                        }
                        other => return Poll::Ready(Some(Ok(other))),
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    self.fail(e);
                    return Poll::Pending;
                }
            }
            if self.read_buf.is_empty() && self.read_buf.capacity() > SHRINK_ABOVE {
                self.read_buf = BytesMut::new();
            }
            if self.poll_timers(cx).is_ready() {
                // Our Close went unanswered for close_timeout.
                self.phase = Phase::Done;
                return Poll::Ready(None);
            }
            if self.phase != Phase::Open {
                return Poll::Pending;
            }
            // Send what is queued (pongs, keepalive pings, unflushed data) before
            // waiting for input; while too much is queued, stop reading, so a peer
            // that pings without reading our pongs cannot grow our buffer.
            match self.poll_write_all(cx, Side::Read) {
                Poll::Ready(Err(e)) => {
                    self.fail(e.into());
                    return Poll::Pending;
                }
                Poll::Pending if self.writes.len() > self.config.write_buffer_limit => {
                    return Poll::Pending;
                }
                _ => {}
            }
            match self.poll_read_more(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    self.phase = Phase::Done;
                    self.wake_writer();
                    if self.close_sent {
                        return Poll::Ready(None);
                    }
                    let eof = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection without a close frame",
                    );
                    return Poll::Ready(Some(Err(eof.into())));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    self.fail(e.into());
                    return Poll::Pending;
                }
            }
        }
    }

    /// Closing: flush our Close, send FIN where it is ours to send first, read to
    /// EOF, all bounded by the close timer.
    fn poll_closing(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let timed_out = self.poll_timers(cx).is_ready();
        if timed_out {
            return Poll::Ready(());
        }
        match ready!(self.poll_write_all(cx, Side::Read)) {
            Ok(()) => {}
            Err(_) => return Poll::Ready(()),
        }
        // §7.1.1: the server closes the TCP connection first; a client waits for
        // it, unless it is failing the connection.
        let failing = matches!(self.final_item, Some(Err(_)));
        if !self.shut_down && (self.role == Role::Server || failing) {
            if ready!(Pin::new(&mut self.io).poll_shutdown(cx)).is_err() {
                return Poll::Ready(());
            }
            self.shut_down = true;
        }
        loop {
            self.read_buf.clear();
            match ready!(self.poll_read_more(cx)) {
                Ok(0) => break,
                Err(_) => return Poll::Ready(()),
                Ok(_) => {}
            }
        }
        // The peer has closed its side; close ours so it sees EOF too.
        if !self.shut_down {
            let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
            self.shut_down = true;
        }
        Poll::Ready(())
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<T> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.poll_next_side(cx)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> WebSocket<T> {
    fn poll_next_side(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        loop {
            match self.phase {
                Phase::Open => match self.poll_next_open(cx) {
                    Poll::Pending if self.phase != Phase::Open => continue,
                    other => return other,
                },
                Phase::Closing => {
                    ready!(self.poll_closing(cx));
                    self.phase = Phase::Done;
                    self.read_buf = BytesMut::new();
                    self.writes = WriteQueue::default();
                    self.wake_writer();
                }
                Phase::Done => return Poll::Ready(self.final_item.take()),
            }
        }
    }

    fn poll_ready_side(&mut self, cx: &mut Context<'_>, side: Side) -> Poll<Result<(), Error>> {
        if self.close_sent || self.phase != Phase::Open {
            // start_send refuses data and takes a repeated Close as a no-op.
            return Poll::Ready(Ok(()));
        }
        let limit = self.config.write_buffer_limit;
        ready!(self.poll_write_down_to(cx, side, limit))?;
        Poll::Ready(Ok(()))
    }

    fn start_send_side(&mut self, message: Message) -> Result<(), Error> {
        if self.close_sent || self.phase != Phase::Open {
            // A second Close (an echo loop sending back the peer's Close, say) is
            // a no-op; anything else is too late.
            return match message {
                Message::Close(_) => Ok(()),
                _ => Err(Error::Closed),
            };
        }
        self.queue(&message)?;
        if message.is_close() {
            self.close_sent = true;
            self.start_close_timer();
        }
        Ok(())
    }

    fn start_send_prepared_side(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        if self.close_sent || self.phase != Phase::Open || prepared.message().is_close() {
            // Closing has its own bookkeeping; a Close is small.
            return self.start_send_side(prepared.message().clone());
        }
        self.queue_prepared(prepared)
    }

    fn poll_flush_side(&mut self, cx: &mut Context<'_>, side: Side) -> Poll<Result<(), Error>> {
        if self.phase == Phase::Done {
            // Whatever was queued went out while closing, or cannot any more.
            return Poll::Ready(Ok(()));
        }
        if self.config.batch_writes && self.phase == Phase::Open && self.frame_buffered() {
            // The next poll_next returns at once, and the stream writes all that
            // is queued before it waits for input: an echo loop's replies to one
            // read leave in one write.
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_write_all(cx, side))?;
        Poll::Ready(Ok(()))
    }

    /// Whether a whole frame waits in the read buffer (a frame being decoded
    /// still starts at its front).
    fn frame_buffered(&self) -> bool {
        match FrameHeader::parse(&self.read_buf) {
            Ok(Some((header, header_len))) => {
                (self.read_buf.len() - header_len) as u64 >= header.payload_len
            }
            // A bad header is an error the next poll_next reports at once.
            Err(_) => true,
            Ok(None) => false,
        }
    }

    fn poll_close_side(&mut self, cx: &mut Context<'_>, side: Side) -> Poll<Result<(), Error>> {
        if self.phase == Phase::Open {
            self.queue_close(Some(CloseFrame::new(CloseCode::NORMAL, "")));
        }
        if self.phase == Phase::Done {
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_write_all(cx, side))?;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> WebSocket<T> {
    /// Splits into a reading and a writing half that two tasks can use at once.
    /// Each half locks the connection only while it is being polled.
    ///
    /// ```
    /// use futures::{SinkExt, StreamExt};
    /// use wscodec::{Config, Message, Role, WebSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), wscodec::Error> {
    /// let (a, b) = tokio::io::duplex(4096);
    /// let (mut tx, mut rx) = WebSocket::from_upgraded(a, Role::Client, Config::default()).split();
    /// let mut server = WebSocket::from_upgraded(b, Role::Server, Config::default());
    /// let writer = tokio::spawn(async move { tx.send(Message::text("from a task")).await });
    /// let echo = server.next().await.unwrap()?;
    /// server.send(echo).await?;
    /// writer.await.unwrap()?;
    /// assert_eq!(rx.next().await.unwrap()?, Message::text("from a task"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn split(mut self) -> (WriteHalf<T>, ReadHalf<T>) {
        self.wakers = Some(Arc::default());
        let shared = Arc::new(Mutex::new(self));
        (
            WriteHalf {
                shared: shared.clone(),
            },
            ReadHalf { shared },
        )
    }
}

fn lock<T>(shared: &Mutex<WebSocket<T>>) -> MutexGuard<'_, WebSocket<T>> {
    // The lock is held only inside a poll; a panic there leaves the state as
    // consistent as any other interrupted poll.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The receiving half of a split [`WebSocket`]: a [`Stream`] of messages. It also
/// answers pings and completes the closing handshake, so keep polling it.
#[derive(Debug)]
pub struct ReadHalf<T> {
    shared: Arc<Mutex<WebSocket<T>>>,
}

/// The sending half of a split [`WebSocket`]: a [`Sink`] of messages.
#[derive(Debug)]
pub struct WriteHalf<T> {
    shared: Arc<Mutex<WebSocket<T>>>,
}

impl<T> ReadHalf<T> {
    /// Puts the halves back together; gives them back if they are not a pair.
    pub fn reunite(self, other: WriteHalf<T>) -> Result<WebSocket<T>, (ReadHalf<T>, WriteHalf<T>)> {
        if !Arc::ptr_eq(&self.shared, &other.shared) {
            return Err((self, other));
        }
        drop(other);
        let mutex = Arc::into_inner(self.shared).expect("both halves were given");
        let mut ws = mutex.into_inner().unwrap_or_else(|e| e.into_inner());
        ws.wakers = None;
        Ok(ws)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Stream for ReadHalf<T> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut ws = lock(&self.shared);
        let poll = ws.poll_next_side(cx);
        if poll.is_pending() {
            // So that WriteHalf::start_close can wake us.
            if let Some(w) = &ws.wakers {
                w.register(Side::Read, cx.waker());
            }
        }
        poll
    }
}

/// Sending: see [`WebSocket`]'s docs on batching. `poll_close` sends a Close
/// (1000) and flushes; keep reading the stream until it ends to complete the
/// closing handshake.
impl<T: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_ready_side(cx, Side::Write)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        self.get_mut().start_send_side(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush_side(cx, Side::Write)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_close_side(cx, Side::Write)
    }
}

/// See the `Sink` impl of [`WebSocket`].
impl<T: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WriteHalf<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        lock(&self.shared).poll_ready_half(cx)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        lock(&self.shared).start_send_side(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        lock(&self.shared).poll_flush_side(cx, Side::Write)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        lock(&self.shared).poll_close_side(cx, Side::Write)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> WebSocket<T> {
    /// Queues a [`PreparedMessage`] (waiting while the write buffer is over its
    /// limit) without flushing. A server connection queues the shared encoded
    /// bytes as they are: no copy per recipient.
    pub async fn feed_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_ready_side(cx, Side::Write)).await?;
        self.start_send_prepared_side(message)
    }

    /// Sends a [`PreparedMessage`] and flushes.
    pub async fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.feed_prepared(message).await?;
        std::future::poll_fn(|cx| self.poll_flush_side(cx, Side::Write)).await
    }

    /// `poll_ready` of a write half: also woken when the reader moves the
    /// connection to closing.
    fn poll_ready_half(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let result = self.poll_ready_side(cx, Side::Write);
        if result.is_pending() {
            if let Some(w) = &self.wakers {
                w.register(Side::Write, cx.waker());
            }
        }
        result
    }
}

impl<T> WebSocket<T> {
    /// Starts the closing handshake without waiting: queues our Close (with
    /// `frame`, or no status) behind what is already queued, even past
    /// `write_buffer_limit`, and starts the close timer. Keep polling the
    /// stream: it writes the queue out and ends when the peer answers, or
    /// after `close_timeout` at the latest, so even a peer that has stopped
    /// reading cannot hold the connection open. Does nothing if a Close was
    /// already sent.
    ///
    /// Compare `SinkExt::close`, which waits until our Close is written: it
    /// waits as long as the peer does not read.
    ///
    /// Fails with [`Error::Protocol`] if the frame cannot be sent (a reason
    /// over 123 bytes) and with [`Error::Closed`] once the connection is done.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use wscodec::{CloseCode, CloseFrame, Config, Role, WebSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), wscodec::Error> {
    /// let (a, _peer) = tokio::io::duplex(4096);
    /// let mut ws = WebSocket::from_upgraded(a, Role::Server, Config::default());
    /// ws.start_close(Some(CloseFrame::new(CloseCode::POLICY_VIOLATION, "too slow")))?;
    /// // A peer that never answers: the stream ends after `close_timeout`.
    /// # tokio::time::pause();
    /// while ws.next().await.is_some() {}
    /// # Ok(())
    /// # }
    /// ```
    pub fn start_close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        if self.phase == Phase::Done {
            return Err(Error::Closed);
        }
        if self.close_sent {
            return Ok(());
        }
        self.queue(&Message::Close(frame))?;
        self.close_sent = true;
        self.start_close_timer();
        Ok(())
    }
}

impl<T> WriteHalf<T> {
    /// [`WebSocket::start_close`] on the write half; the read half completes
    /// the close.
    pub fn start_close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        let mut ws = lock(&self.shared);
        ws.start_close(frame)?;
        // The reader may be waiting for input with no timer armed: wake it to
        // write our Close out and to arm the close timer.
        if let Some(w) = ws.wakers.as_ref().and_then(|w| w.slot(Side::Read).take()) {
            w.wake();
        }
        Ok(())
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> WriteHalf<T> {
    /// [`WebSocket::feed_prepared`] on the write half.
    pub async fn feed_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        std::future::poll_fn(|cx| lock(&self.shared).poll_ready_half(cx)).await?;
        lock(&self.shared).start_send_prepared_side(message)
    }

    /// [`WebSocket::send_prepared`] on the write half.
    pub async fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.feed_prepared(message).await?;
        std::future::poll_fn(|cx| lock(&self.shared).poll_flush_side(cx, Side::Write)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::codec::SHARE_MIN;

    fn drain(queue: &mut WriteQueue, max_per_write: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while !queue.is_empty() {
            let (slices, n) = queue.slices();
            let mut budget = max_per_write;
            for slice in &slices[..n] {
                let take = slice.len().min(budget);
                out.extend_from_slice(&slice[..take]);
                budget -= take;
            }
            let written = max_per_write - budget;
            queue.advance(written);
        }
        out
    }

    #[test]
    fn write_queue_keeps_order_across_shared_and_copied_segments_whatever_the_write_sizes() {
        for max_per_write in [1, 3, 7, 1000, usize::MAX] {
            let mut queue = WriteQueue::default();
            queue.tail.extend_from_slice(b"ab");
            queue.push_shared(Bytes::from_static(b"cde"));
            queue.tail.extend_from_slice(b"f");
            queue.push_shared(Bytes::from_static(b"gh"));
            queue.push_shared(Bytes::from_static(b""));
            queue.tail.extend_from_slice(b"ij");
            assert_eq!(queue.len(), 10);
            assert_eq!(
                drain(&mut queue, max_per_write),
                b"abcdefghij",
                "{max_per_write}"
            );
            assert_eq!(queue.len(), 0);
        }
    }

    #[test]
    fn server_queues_large_payload_without_copying_it() {
        let (io, _peer) = tokio::io::duplex(16);
        let mut ws = WebSocket::from_upgraded(io, Role::Server, Config::default());
        let payload = Bytes::from(vec![7u8; SHARE_MIN]);
        ws.queue(&Message::Binary(payload.clone())).unwrap();
        let queued = ws.writes.shared.back().unwrap();
        assert_eq!(queued.as_ptr(), payload.as_ptr());
        // A small one is copied: one more I/O slice would cost more than the copy.
        ws.queue(&Message::binary(vec![1u8; 10])).unwrap();
        assert_eq!(ws.writes.tail.len(), 2 + 10);
    }

    #[test]
    fn prepared_message_is_shared_by_every_server_connection() {
        let prepared = PreparedMessage::new(Message::text("to all")).unwrap();
        for _ in 0..3 {
            let (io, _peer) = tokio::io::duplex(16);
            let mut ws = WebSocket::from_upgraded(io, Role::Server, Config::default());
            ws.start_send_prepared_side(&prepared).unwrap();
            assert_eq!(
                ws.writes.shared.back().unwrap().as_ptr(),
                prepared.encoded().as_ptr()
            );
        }
    }

    #[test]
    fn client_encodes_prepared_message_anew_with_its_own_mask() {
        let prepared = PreparedMessage::new(Message::binary(vec![0u8; 2000])).unwrap();
        let (io, _peer) = tokio::io::duplex(16);
        let mut ws = WebSocket::from_upgraded(io, Role::Client, Config::default());
        ws.start_send_prepared_side(&prepared).unwrap();
        assert!(ws.writes.shared.is_empty());
        assert_eq!(ws.writes.tail.len(), 4 + 4 + 2000);
    }

    #[test]
    fn close_reason_is_cut_at_a_char_boundary_within_123_bytes() {
        let reason = truncate_reason("é".repeat(100));
        assert!(reason.len() <= 123);
        assert_eq!(reason.len() % 2, 0);
    }
}
