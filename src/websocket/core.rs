//! The connection core: every protocol decision of a [`WebSocket`](super::WebSocket),
//! with no transport and no timer in it.
//!
//! It owns the state machine (see the table in the module above), the codec, the
//! read buffer and the write queue, the deadlines, the pending Pong and what the
//! stream yields last. Events come in as method calls (bytes read, end of
//! input, a transport error, a deadline due, a message to send, a Close to
//! send) and leave as state: bytes in the write queue, a message decoded, and
//! `changed`, which tells the driver to wake the other half. It never does I/O
//! and never reads the clock except to stamp received bytes, so the driver in
//! `mod.rs` and the split halves in `split.rs` stay thin.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use super::timers::{Deadlines, Due};
use super::write_queue::{WriteQueue, SHRINK_ABOVE};
use crate::codec::{MessageCodec, PreparedMessage};
use crate::config::{Config, Role};
use crate::error::{AbnormalClosure, Error};
use crate::extension::Extensions;
use crate::frame::MAX_CONTROL_PAYLOAD;
use crate::message::{CloseFrame, Message, Utf8Bytes};
use crate::trace;

/// The first read reserves this much, so an idle connection holds little.
pub(super) const READ_CHUNK: usize = 1024;
/// While reads keep filling the buffer (a busy peer, pipelined messages), the
/// read size doubles up to this, so a burst costs few system calls.
pub(super) const MAX_READ_CHUNK: usize = 64 << 10;

/// The most bytes of Pongs and keepalive Pings we queue while earlier ones are
/// still unwritten (about 32 Pongs of the largest size). Past it, pings are
/// answered by one Pong for the latest (RFC 6455 §5.5.3) once the peer reads.
pub(super) const MAX_UNWRITTEN_CONTROL: usize = 4 << 10;

/// Where the connection is; see the state table in the module above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Messages flow both ways.
    Open,
    /// We queued our Close (§5.5.1); messages still arrive until the peer's.
    CloseSent,
    /// The closing handshake is complete or we are failing the connection:
    /// write out the queue, send FIN where it is ours to send first, read to
    /// EOF, all within `close_timeout`.
    Closing(Ending),
    /// The transport is done with: the stream yields its last item, then ends.
    Done(Ending),
}

/// How the connection ended, or is ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// Both Close frames were exchanged (§7.1.5 "cleanly", once the transport
    /// closes); `started_by_us` if ours went first.
    Handshake {
        /// Whether we sent the first Close.
        started_by_us: bool,
    },
    /// We failed the connection (§7.1.7): a protocol violation, a limit, or
    /// the idle timeout. Our Close carries the code.
    Failed,
    /// No closing handshake: close code 1006 (§7.1.5).
    Abnormal(AbnormalClosure),
    /// The transport failed.
    Io(io::ErrorKind),
}

/// What one decode step gave.
#[derive(Debug)]
pub(super) enum Decoded {
    /// A message for the stream to yield.
    Message(Message),
    /// The buffered bytes hold no complete message.
    NeedInput,
    /// The state changed (a Close arrived, or the connection failed).
    Changed,
}

#[derive(Debug)]
pub(super) struct Core {
    pub(super) role: Role,
    pub(super) config: Config,
    codec: MessageCodec,
    pub(super) read_buf: BytesMut,
    /// How much the next read reserves room for; see [`MAX_READ_CHUNK`].
    pub(super) read_chunk: usize,
    pub(super) writes: WriteQueue,
    pub(super) state: State,
    pub(super) deadlines: Deadlines,
    /// The payload of the latest Ping not yet answered. Every Ping gets its
    /// Pong while the peer reads them; once [`MAX_UNWRITTEN_CONTROL`] bytes of
    /// ours wait unwritten, only the latest Ping is kept to answer (§5.5.3
    /// allows that). So a peer that pings without reading makes us hold a
    /// bounded amount, and the reader never has to stop reading because of
    /// what it generates.
    pong: Option<Bytes>,
    /// Where in the write stream the last Pong or keepalive Ping we queued
    /// ends; once `writes.written()` reaches it, all of them have left.
    control_end: u64,
    /// Bytes of Pongs and Pings queued since they last all left: an upper
    /// bound of what of ours waits unwritten.
    control_unwritten: usize,
    /// Our FIN is sent.
    pub(super) shut_down: bool,
    /// Bytes were written to the transport since its last flush.
    pub(super) needs_flush: bool,
    /// Queued bytes were thrown away when the connection ended: a pending
    /// flush must fail, not report them sent.
    pub(super) dropped: bool,
    /// What the stream yields last, once `Done`.
    pub(super) final_item: Option<Result<Message, Error>>,
    /// A message handed over by a split write half was refused (the
    /// connection was closing); its next `poll_*` reports this.
    pub(super) refused: Option<Error>,
    /// The state changed, or a Close was queued, since the driver last
    /// looked: the other half may have to act.
    changed: bool,
    /// The connection's span; without the `tracing` feature there is no
    /// field at all, so a connection costs what it did.
    #[cfg(feature = "tracing")]
    pub(super) span: tracing::Span,
}

impl Core {
    pub(super) fn new(
        role: Role,
        config: Config,
        read_buf: BytesMut,
        extensions: &Extensions,
    ) -> Self {
        let mut codec = MessageCodec::with_limits(role, &config.limits);
        codec.set_extensions(extensions);
        // The codec holds the fragment size; the config only sets it.
        if let Some(bytes) = config.fragment_size {
            codec.set_fragment_size(bytes);
        }
        Core {
            #[cfg(feature = "tracing")]
            span: trace::connection_span!(role),
            deadlines: Deadlines::new(config.keepalive_interval, config.idle_timeout),
            codec,
            role,
            config,
            read_buf,
            read_chunk: READ_CHUNK,
            writes: WriteQueue::default(),
            state: State::Open,
            pong: None,
            control_end: 0,
            control_unwritten: 0,
            shut_down: false,
            needs_flush: false,
            dropped: false,
            final_item: None,
            refused: None,
            changed: false,
        }
    }

    #[cfg(feature = "deflate")]
    pub(super) fn set_deflate(&mut self, params: &crate::deflate::DeflateParams) {
        self.codec.set_deflate(params);
    }

    /// Whether the state changed since the last call.
    pub(super) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    // ----- events from the reading side -----

    /// Decodes the next message from the read buffer, answering what the
    /// protocol answers by itself.
    pub(super) fn decode(&mut self) -> Decoded {
        match self.codec.decode(&mut self.read_buf) {
            Ok(Some(Message::Ping(payload))) => {
                // §5.5.2: a Pong with the same application data, unless we
                // already sent Close (§5.5.1: nothing after it), or the
                // application answers pings itself (`Config::auto_pong`).
                if self.state == State::Open && self.config.auto_pong {
                    trace::event!(
                        self.span,
                        TRACE,
                        len = payload.len(),
                        replaces_unanswered = self.pong.is_some(),
                        "ping received, pong queued"
                    );
                    self.pong = Some(payload.clone());
                    self.queue_control();
                } else {
                    trace::event!(self.span, TRACE, len = payload.len(), "ping received");
                }
                Decoded::Message(Message::Ping(payload))
            }
            Ok(Some(Message::Close(frame))) => {
                // §5.5.1: answer with a Close echoing the status code, unless
                // this Close is the answer to ours.
                let started_by_us = self.state == State::CloseSent;
                trace::event!(
                    self.span,
                    DEBUG,
                    initiator = if started_by_us { "local" } else { "peer" },
                    code = frame.as_ref().map(|f| f.code.0),
                    reason = frame.as_ref().map(|f| f.reason.as_str()),
                    "close received"
                );
                if !started_by_us {
                    let reply = frame
                        .as_ref()
                        .map(|f| CloseFrame::new(f.code, Utf8Bytes::default()));
                    self.queue_close(reply);
                }
                self.enter_closing(
                    Ending::Handshake { started_by_us },
                    Ok(Message::Close(frame)),
                );
                Decoded::Changed
            }
            Ok(Some(message)) => {
                trace::event!(
                    self.span,
                    TRACE,
                    kind = kind(&message),
                    len = message.len(),
                    "message received"
                );
                Decoded::Message(message)
            }
            Ok(None) => {
                // Kept while a frame is taken out of it: its room is that
                // frame's, where the rest joins it without a copy.
                if self.read_buf.is_empty()
                    && self.read_buf.capacity() > SHRINK_ABOVE
                    && !self.codec.taking()
                {
                    self.read_buf = BytesMut::new();
                }
                Decoded::NeedInput
            }
            Err(error) => {
                self.fail(error);
                Decoded::Changed
            }
        }
    }

    /// `n > 0` bytes arrived.
    pub(super) fn on_read(&mut self, n: usize) {
        let filled = self.read_buf.capacity() == self.read_buf.len();
        if filled && self.read_chunk < MAX_READ_CHUNK {
            // The read filled the buffer: more is probably waiting.
            self.read_chunk *= 2;
        }
        if n > 0 && self.deadlines.watches_input() {
            self.deadlines.received(Instant::now());
        }
    }

    /// Room for the next read: grows by the read size, or with what is
    /// buffered (amortised doubling for a frame larger than
    /// `max_frame_reserve`). Nothing while a frame taken out of the buffer
    /// still fits the room the codec made for it: its bytes go straight
    /// there, where they join it without a copy. (A smaller frame still in
    /// the buffer grows it as usual, so one read takes the frames queued
    /// behind it too.)
    pub(super) fn reserve_read(&mut self) {
        let spare = self.read_buf.capacity() - self.read_buf.len();
        if self
            .codec
            .large_frame_rest()
            .is_some_and(|rest| rest <= spare)
        {
            return;
        }
        if spare < self.read_chunk / 4 {
            let grow = self.read_chunk.max(self.read_buf.len().min(1 << 20));
            self.read_buf.reserve(grow);
        }
    }

    /// A read found nothing to read. An empty buffer is given back while the
    /// connection waits (unless a frame is taken out of it: its room is that
    /// frame's), so an idle connection holds no read buffer and a burst's
    /// memory (and the allocation a frame's tail shares with a payload still
    /// queued) goes once the burst is over; the next read reserves
    /// `read_chunk` again.
    pub(super) fn on_read_pending(&mut self) {
        if self.read_buf.is_empty() && self.read_buf.capacity() > 0 && !self.codec.taking() {
            self.read_buf = BytesMut::new();
        }
    }

    /// The peer closed its side of the transport.
    pub(super) fn on_eof(&mut self) {
        match self.state {
            State::Open | State::CloseSent => {
                let why = AbnormalClosure::PeerEof;
                trace::event!(
                    self.span,
                    DEBUG,
                    code = why.close_code().0,
                    close_sent = self.state == State::CloseSent,
                    "abnormal closure: the peer closed the transport without a Close"
                );
                self.end(Ending::Abnormal(why), Error::AbnormalClosure(why));
            }
            State::Closing(_) => self.finish(),
            State::Done(_) => {}
        }
    }

    /// The transport failed; returns the error for the caller that saw it (the
    /// stream keeps a copy as its last item).
    pub(super) fn on_io_error(&mut self, error: io::Error) -> Error {
        let copy = io::Error::new(error.kind(), error.to_string());
        trace::event!(
            self.span,
            DEBUG,
            error = %error,
            state = ?self.state,
            "transport error"
        );
        match self.state {
            // The handshake's outcome stands: the stream still yields it.
            State::Closing(_) => self.finish(),
            State::Open | State::CloseSent => self.end(Ending::Io(error.kind()), Error::Io(copy)),
            State::Done(_) => {}
        }
        Error::Io(error)
    }

    /// Deadlines that fell due.
    pub(super) fn on_time(&mut self, due: Due) {
        if due.close {
            match self.state {
                State::CloseSent | State::Open => {
                    let why = AbnormalClosure::CloseTimeout;
                    trace::event!(
                        self.span,
                        DEBUG,
                        code = why.close_code().0,
                        timeout = ?self.config.close_timeout,
                        "close timeout: the peer did not answer our Close"
                    );
                    self.end(Ending::Abnormal(why), Error::AbnormalClosure(why));
                }
                State::Closing(_) => {
                    // The handshake's outcome stands; only the transport's
                    // end was cut short.
                    trace::event!(
                        self.span,
                        DEBUG,
                        timeout = ?self.config.close_timeout,
                        "close timeout: the transport did not close in time"
                    );
                    self.finish();
                }
                State::Done(_) => {}
            }
            return;
        }
        if due.idle {
            self.fail(Error::IdleTimeout);
            return;
        }
        if due.keepalive {
            self.deadlines.pinged(Instant::now());
            // A peer that has not read our last control frames gets no more.
            if self.control_room() == MAX_UNWRITTEN_CONTROL {
                trace::event!(self.span, TRACE, "keepalive ping queued");
                self.push_control(&Message::Ping(Bytes::new()));
            } else {
                trace::event!(
                    self.span,
                    DEBUG,
                    unwritten = self.control_unwritten,
                    "keepalive ping skipped: the peer has not read our last control frames"
                );
            }
        }
    }

    /// The closing sequence is complete (or cut short): `Closing` → `Done`.
    pub(super) fn finish(&mut self) {
        if let State::Closing(ending) = self.state {
            self.set_done(ending);
        }
    }

    // ----- events from the sending side -----

    /// `Sink::start_send`: queues `message`, or refuses it once we sent Close
    /// (a repeated Close is a no-op, so an echo loop may send back the peer's).
    pub(super) fn start_send(&mut self, message: Message) -> Result<(), Error> {
        match (self.state, message) {
            (State::Open, Message::Close(frame)) => self.close_by_us(frame),
            (State::Open, message) => {
                trace::event!(
                    self.span,
                    TRACE,
                    kind = kind(&message),
                    len = message.len(),
                    "message queued"
                );
                self.queue(&message)
            }
            (_, Message::Close(_)) => Ok(()),
            _ => Err(Error::Closed),
        }
    }

    /// Queues a prepared message: a server queues the shared encoded bytes as
    /// they are; a client must mask with its own key, so it encodes anew.
    pub(super) fn start_send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        match self.role {
            Role::Server if self.state == State::Open && !prepared.message().is_close() => {
                trace::event!(
                    self.span,
                    TRACE,
                    kind = kind(prepared.message()),
                    len = prepared.message().len(),
                    "prepared message queued"
                );
                let frame = match self.codec.prepared_frame(prepared)? {
                    Some(transformed) => transformed,
                    None => prepared.encoded().clone(),
                };
                self.writes.push_shared(frame);
                Ok(())
            }
            _ => self.start_send(prepared.message().clone()),
        }
    }

    /// We start the closing handshake: queue our Close behind everything
    /// queued, even past the write limit, and start the close deadline. Fails
    /// only for a frame that cannot be sent (bad code, reason too long).
    pub(super) fn close_by_us(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        let _sent = self.send_close(frame)?;
        #[cfg(feature = "tracing")]
        if let Some(Message::Close(frame)) = &_sent {
            trace::event!(
                self.span,
                DEBUG,
                initiator = "local",
                code = frame.as_ref().map(|f| f.code.0),
                reason = frame.as_ref().map(|f| f.reason.as_str()),
                "close sent"
            );
        }
        Ok(())
    }

    /// Queues our Close and enters `CloseSent`; gives back the Close it
    /// queued, or `None` if one was sent already.
    fn send_close(&mut self, frame: Option<CloseFrame>) -> Result<Option<Message>, Error> {
        if self.state != State::Open {
            return Ok(None);
        }
        // The Pong we owe goes first; a Close that cannot be encoded fails
        // before it writes anything, and changes no state.
        self.flush_pong();
        let close = Message::Close(frame);
        self.queue(&close)?;
        self.state = State::CloseSent;
        self.deadlines.start_close(self.config.close_timeout);
        self.changed = true;
        Ok(Some(close))
    }

    /// Moves the pending Pong into the write queue if there is room for it
    /// (see [`MAX_UNWRITTEN_CONTROL`]); the driver calls this before and
    /// after each write.
    pub(super) fn queue_control(&mut self) {
        let pong_len = self.pong.as_ref().map_or(0, |p| 2 + p.len());
        if pong_len > 0 && pong_len <= self.control_room() {
            self.flush_pong();
        }
    }

    /// The error a flush gets when the bytes it waited for were dropped.
    pub(super) fn writer_error(&self) -> Error {
        match self.state {
            State::Done(Ending::Abnormal(why)) => Error::AbnormalClosure(why),
            State::Done(Ending::Io(kind)) => Error::Io(kind.into()),
            _ => Error::Closed,
        }
    }

    // ----- internals -----

    /// How many more bytes of Pongs and Pings we may queue now.
    fn control_room(&mut self) -> usize {
        if self.writes.written() >= self.control_end {
            self.control_unwritten = 0;
        }
        MAX_UNWRITTEN_CONTROL.saturating_sub(self.control_unwritten)
    }

    fn flush_pong(&mut self) {
        if let Some(payload) = self.pong.take() {
            self.push_control(&Message::Pong(payload));
        }
    }

    fn push_control(&mut self, message: &Message) {
        let before = self.writes.end();
        self.push(message);
        self.control_end = self.writes.end();
        self.control_unwritten += (self.control_end - before) as usize;
    }

    fn queue(&mut self, message: &Message) -> Result<(), Error> {
        self.codec.encode_into(message, &mut self.writes)
    }

    /// Queues a frame we generate ourselves, which is always sendable (a
    /// Ping or Pong of at most 125 bytes: the decoder bounds what it echoes).
    fn push(&mut self, message: &Message) {
        debug_assert!(!message.is_close());
        let queued = self.queue(message);
        debug_assert!(queued.is_ok(), "{queued:?}");
    }

    /// Queues the Close we answer or fail with (once) and starts the close
    /// deadline.
    fn queue_close(&mut self, frame: Option<CloseFrame>) {
        // Our own frames (a reason cut to fit, an echoed sendable code)
        // always encode.
        let _ = self.send_close(frame);
    }

    /// Fails the connection (§7.1.7): our Close carries the error's code.
    fn fail(&mut self, error: Error) {
        match error.close_code() {
            Some(code) => {
                let reason = truncate_reason(error.to_string());
                #[cfg(feature = "tracing")]
                self.trace_failure(&error, code, &reason);
                self.queue_close(Some(CloseFrame::new(code, reason)));
                self.enter_closing(Ending::Failed, Err(error));
            }
            None => {
                trace::event!(self.span, DEBUG, error = %error, "connection failed");
                self.end(Ending::Failed, error);
            }
        }
    }

    /// The event for failing the connection (§7.1.7), named by its cause.
    #[cfg(feature = "tracing")]
    fn trace_failure(&self, error: &Error, code: crate::message::CloseCode, reason: &str) {
        let code = code.0;
        match error {
            Error::Protocol(_) => trace::event!(
                self.span,
                DEBUG,
                initiator = "local",
                code,
                reason,
                "protocol error by the peer: failing the connection"
            ),
            Error::Capacity(_) => trace::event!(
                self.span,
                DEBUG,
                initiator = "local",
                code,
                reason,
                "limit exceeded: failing the connection"
            ),
            Error::IdleTimeout => trace::event!(
                self.span,
                DEBUG,
                initiator = "local",
                code,
                reason,
                timeout = ?self.config.idle_timeout,
                "idle timeout: failing the connection"
            ),
            _ => trace::event!(
                self.span,
                DEBUG,
                initiator = "local",
                code,
                reason,
                "failing the connection"
            ),
        }
    }

    fn enter_closing(&mut self, ending: Ending, item: Result<Message, Error>) {
        self.final_item = Some(item);
        self.state = State::Closing(ending);
        self.deadlines.start_close(self.config.close_timeout);
        self.changed = true;
    }

    /// Ends the connection at once with `error` as the stream's last item.
    fn end(&mut self, ending: Ending, error: Error) {
        self.final_item = Some(Err(error));
        self.set_done(ending);
    }

    fn set_done(&mut self, ending: Ending) {
        trace::event!(self.span, DEBUG, ending = ?ending, "connection done");
        self.state = State::Done(ending);
        self.dropped |= self.writes.discard();
        self.pong = None;
        self.read_buf = BytesMut::new();
        self.changed = true;
    }
}

/// A message's kind, for events.
#[cfg(feature = "tracing")]
fn kind(message: &Message) -> &'static str {
    match message {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        Message::Ping(_) => "ping",
        Message::Pong(_) => "pong",
        Message::Close(_) => "close",
    }
}

pub(super) fn truncate_reason(mut reason: String) -> String {
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
