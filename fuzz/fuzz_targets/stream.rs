//! `WebSocket<T>` over an in-memory `tokio::io::duplex`, driven by an arbitrary
//! script: the peer sends numbered messages (fragmented, with pings between
//! fragments) and lets its bytes through in arbitrary pieces; we poll `next()`,
//! `send()`, `feed()`, `flush()` and `close()`, often once and then drop the
//! future (cancellation), and move paused time forward. Half the inputs split
//! the connection and drive the halves as two tasks would: the reader is polled
//! while a writer's future is pending, whenever its waker was woken.
//!
//! Every poll uses a waker that counts its wake-ups: one for a whole
//! `WebSocket` (one task), one per half when split. After something outside
//! the WebSocket happens (the peer writes, reads or shuts down, time passes),
//! a `Pending` whose waker was not woken, while no other task's was either, is
//! polled once more: if that poll yields an item, completes, or moves bytes
//! it was waiting for, nothing would ever have woken it, and that is a finding
//! (a lost wake-up). So is a writer left pending, unwoken, when the stream
//! ends.
//!
//! Checks: every message the peer sent is yielded exactly once and in order,
//! followed by the peer's Close (or the protocol error a violation causes) and
//! the end of the stream; every send that completed arrives at the peer, a
//! cancelled one at most once, all in order and before our single Close frame;
//! every ping is answered once, in order, until we close; and the closing
//! handshake completes without a timer when the peer cooperates.
#![no_main]

mod common;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use common::{read_text, write_frame};
use futures::task::noop_waker_ref;
use futures::{Sink, SinkExt, StreamExt};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio_util::codec::Decoder;
use wscodec::{
    CloseCode, Config, Error, Limits, Message, MessageCodec, ProtocolError, ReadHalf, Role,
    WebSocket, WriteHalf,
};

#[derive(Arbitrary, Debug)]
enum Op {
    /// The peer queues its next numbered data message.
    PeerMessage {
        text: bool,
        len: u8,
        /// Fragments of 64 KiB or more (see `large_len`), at most two.
        large: bool,
        fragments: u8,
        ping_between: bool,
    },
    PeerPing(Vec<u8>),
    PeerPong(Vec<u8>),
    /// The peer writes up to this many queued bytes into the pipe.
    PeerWrite(u16),
    /// The peer reads whatever we wrote.
    PeerRead,
    /// The peer queues a frame with a reserved opcode: we must fail with 1002.
    PeerViolation,
    /// The peer queues its Close (1000).
    PeerClose,
    /// Poll `next()` once and drop it.
    Next,
    /// Poll `next()` up to this many times, pumping the peer in between.
    NextUntil(u8),
    /// `send()` of our next numbered message, polled this many times (pumping
    /// the peer in between) and dropped if still pending.
    Send {
        len: u8,
        large: bool,
        text: bool,
        polls: u8,
    },
    /// `feed()`, likewise.
    Feed {
        len: u8,
        large: bool,
        text: bool,
        polls: u8,
    },
    Flush {
        polls: u8,
    },
    Close {
        polls: u8,
    },
    /// Move paused time forward.
    Advance(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    server: bool,
    pipe_capacity: u16,
    write_buffer_limit: u16,
    fragment_size: Option<u8>,
    keepalive_secs: Option<u8>,
    /// `Limits::max_frame_reserve` in units of 16 bytes (else the default,
    /// 1 MiB): how far ahead of its bytes a large frame gets room.
    frame_reserve: Option<u16>,
    /// Split into halves, driven as two tasks.
    split: bool,
    ops: Vec<Op>,
}

/// Deterministic content for numbered message `n` of about `len` bytes, with
/// multi-byte characters so that fragments cut code points.
fn content(prefix: char, n: usize, len: usize) -> String {
    let mut s = format!("{prefix}{n}:");
    let filler = ['a', 'é', 'b', '€', 'c', '😀'];
    let mut i = n;
    // Whole turns of the filler first (the same characters as one at a
    // time, much faster for large messages under the sanitizer).
    let turn: String = (0..filler.len())
        .map(|k| filler[(i + k) % filler.len()])
        .collect();
    if s.len() < len {
        let turns = (len - s.len()) / turn.len();
        s.push_str(&turn.repeat(turns));
    }
    while s.len() < len {
        s.push(filler[i % filler.len()]);
        i += 1;
    }
    s
}

/// About the size of a large frame, from a fuzzed byte: from 64 KiB, where
/// the codec takes a frame out of the read buffer as it arrives (and makes
/// room for its rest), and the write queue sends a payload without a copy
/// and shrinks once idle, to 68 KiB.
fn large_len(len: u8) -> usize {
    (64 << 10) + usize::from(len) * 16
}

/// Whether a message asked to be large is, while `left` allows one more.
fn take_large(left: &mut usize, wanted: bool) -> bool {
    let large = wanted && *left > 0;
    *left -= usize::from(large);
    large
}

fn numbered(prefix: char, n: usize, len: usize, text: bool) -> Message {
    let s = content(prefix, n, len);
    if text {
        Message::text(s)
    } else {
        Message::binary(s.into_bytes())
    }
}

struct Peer {
    io: DuplexStream,
    role: Role,
    outbox: VecDeque<u8>,
    inbox: Vec<u8>,
    eof: bool,
    shut_down: bool,
    frames: u32,
}

impl Peer {
    fn queue_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.frames += 1;
        let key = (self.role == Role::Client)
            .then(|| self.frames.wrapping_mul(0x9E37_79B9).to_be_bytes());
        let mut out = Vec::new();
        write_frame(&mut out, fin, 0, opcode, key, payload);
        self.outbox.extend(out);
    }

    /// Writes up to `max` queued bytes; returns how many went in.
    fn write(&mut self, max: usize) -> usize {
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut moved = 0;
        while moved < max && !self.outbox.is_empty() {
            let (front, _) = self.outbox.as_slices();
            let n = front.len().min(max - moved);
            match Pin::new(&mut self.io).poll_write(&mut cx, &front[..n]) {
                Poll::Ready(Ok(0)) | Poll::Pending => break,
                Poll::Ready(Ok(k)) => {
                    self.outbox.drain(..k);
                    moved += k;
                }
                Poll::Ready(Err(e)) => panic!("peer write failed: {e}"),
            }
        }
        moved
    }

    fn read(&mut self) -> usize {
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut moved = 0;
        let mut buf = [0u8; 4096];
        while !self.eof {
            let mut rb = ReadBuf::new(&mut buf);
            match Pin::new(&mut self.io).poll_read(&mut cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => self.eof = true,
                Poll::Ready(Ok(())) => {
                    moved += rb.filled().len();
                    self.inbox.extend_from_slice(rb.filled());
                }
                Poll::Ready(Err(e)) => panic!("peer read failed: {e}"),
                Poll::Pending => break,
            }
        }
        moved
    }

    /// Moves everything that can move; with `finish`, shuts the write side once
    /// the outbox is empty. Returns whether anything moved.
    fn pump(&mut self, finish: bool) -> bool {
        let mut progress = self.write(usize::MAX) > 0;
        progress |= self.read() > 0;
        if finish && self.outbox.is_empty() && !self.shut_down {
            let mut cx = Context::from_waker(noop_waker_ref());
            if let Poll::Ready(r) = Pin::new(&mut self.io).poll_shutdown(&mut cx) {
                r.unwrap();
                self.shut_down = true;
                progress = true;
            }
        }
        progress
    }
}

/// What happened to a message we sent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sent {
    Completed,
    Refused,
    Cancelled,
}

/// A waker that counts its wake-ups: one per task.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A task as an executor sees it: a waker, and how often it was woken.
#[derive(Clone)]
struct Task {
    counter: Arc<Counter>,
    waker: Waker,
}

impl Task {
    fn new() -> Task {
        let counter = Arc::new(Counter::default());
        Task {
            waker: Waker::from(counter.clone()),
            counter,
        }
    }

    fn wakes(&self) -> usize {
        self.counter.0.load(Ordering::SeqCst)
    }

    /// Whether it was woken since a poll that started at `wakes`.
    fn woken_since(&self, wakes: Option<usize>) -> bool {
        wakes.is_some_and(|w| self.wakes() != w)
    }
}

/// What the WebSocket did with its end of the pipe.
#[derive(Default)]
struct Moved {
    read: AtomicUsize,
    written: AtomicUsize,
    eof: AtomicBool,
    /// The last write (or flush or shutdown) returned Pending.
    write_blocked: AtomicBool,
}

impl Moved {
    fn snapshot(&self) -> (usize, usize, bool) {
        (
            self.read.load(Ordering::SeqCst),
            self.written.load(Ordering::SeqCst),
            self.eof.load(Ordering::SeqCst),
        )
    }

    fn note_write<T>(&self, poll: &Poll<std::io::Result<T>>, n: impl FnOnce(&T) -> usize) {
        self.write_blocked
            .store(poll.is_pending(), Ordering::SeqCst);
        if let Poll::Ready(Ok(v)) = poll {
            self.written.fetch_add(n(v), Ordering::SeqCst);
        }
    }
}

/// Our end of the pipe, counting what the WebSocket reads and writes.
struct Tracked {
    io: DuplexStream,
    moved: Arc<Moved>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            match buf.filled().len() - before {
                0 => self.moved.eof.store(true, Ordering::SeqCst),
                n => {
                    self.moved.read.fetch_add(n, Ordering::SeqCst);
                }
            }
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.moved.note_write(&poll, |n| *n);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.moved.note_write(&poll, |n| *n);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.moved.note_write(&poll, |_| 0);
        poll
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.moved.note_write(&poll, |_| 0);
        poll
    }
}

/// The connection: whole (one task), or split into halves (two tasks).
enum Ws {
    Whole(WebSocket<Tracked>),
    Split(WriteHalf<Tracked>, ReadHalf<Tracked>),
}

type DynSink<'a> = &'a mut (dyn Sink<Message, Error = Error> + Unpin);
type DynStream<'a> = &'a mut (dyn futures::Stream<Item = Result<Message, Error>> + Unpin);

impl Ws {
    /// The sink, and the stream when it can be polled while the sink is
    /// borrowed (split).
    fn parts(&mut self) -> (DynSink<'_>, Option<DynStream<'_>>) {
        match self {
            Ws::Whole(ws) => (ws, None),
            Ws::Split(tx, rx) => (tx, Some(rx)),
        }
    }

    fn stream(&mut self) -> DynStream<'_> {
        match self {
            Ws::Whole(ws) => ws,
            Ws::Split(_, rx) => rx,
        }
    }
}

/// What the stream yielded, checked against what the peer sent.
struct Yielded {
    /// What the peer sent that we must yield, in order.
    expected: VecDeque<Message>,
    violated: bool,
    peer_closed: bool,
    /// What the stream yielded at its end: the Close or the error.
    terminal: Option<Result<Message, String>>,
    ended: bool,
}

impl Yielded {
    fn on_item(&mut self, item: Option<Result<Message, Error>>) {
        assert!(!self.ended, "polled after the end yielded {item:?}");
        match item {
            None => {
                assert!(self.terminal.is_some(), "ended without a Close or an error");
                self.ended = true;
            }
            Some(Ok(Message::Close(frame))) => {
                assert!(self.terminal.is_none(), "two terminal items");
                assert!(
                    self.peer_closed && !self.violated,
                    "a Close the peer never sent"
                );
                assert!(self.expected.is_empty(), "Close before {:?}", self.expected);
                assert_eq!(
                    Message::Close(frame.clone()),
                    Message::close(CloseCode::NORMAL, "")
                );
                self.terminal = Some(Ok(Message::Close(frame)));
            }
            Some(Ok(m)) => {
                read_text(&m);
                assert!(self.terminal.is_none(), "{m:?} after the end");
                assert_eq!(
                    Some(&m),
                    self.expected.front(),
                    "lost, duplicated or reordered"
                );
                self.expected.pop_front();
            }
            Some(Err(e)) => {
                assert!(self.terminal.is_none(), "{e:?} after the end");
                assert!(
                    matches!(e, Error::Protocol(ProtocolError::ReservedOpCode(3))),
                    "unexpected error {e:?}"
                );
                assert!(self.violated && self.expected.is_empty(), "{e:?} too early");
                self.terminal = Some(Err(e.to_string()));
            }
        }
    }
}

/// The stream's side of the wake-up bookkeeping: its task, and whether its
/// last poll was Pending (with the task's wake count before that poll, and
/// whether it was then waiting to write).
struct Reader {
    task: Task,
    pending: Option<usize>,
    waits_to_write: bool,
}

impl Reader {
    /// Polls the stream once; returns whether it was ready.
    fn poll(&mut self, stream: DynStream<'_>, moved: &Moved, y: &mut Yielded) -> bool {
        let wakes = self.task.wakes();
        moved.write_blocked.store(false, Ordering::SeqCst);
        match stream.poll_next_unpin(&mut Context::from_waker(&self.task.waker)) {
            Poll::Pending => {
                self.pending = Some(wakes);
                self.waits_to_write = moved.write_blocked.load(Ordering::SeqCst);
                false
            }
            Poll::Ready(item) => {
                self.pending = None;
                y.on_item(item);
                true
            }
        }
    }

    /// After `event` (outside the WebSocket) woke no task: if the stream is
    /// Pending and polling it again gets anywhere, its wake-up was lost.
    fn probe(&mut self, stream: DynStream<'_>, moved: &Moved, y: &mut Yielded, event: &str) {
        if self.pending.is_none() || y.ended {
            return;
        }
        let waits_to_write = self.waits_to_write;
        let (read, written, eof) = moved.snapshot();
        let ready = self.poll(stream, moved, y);
        let (read2, written2, eof2) = moved.snapshot();
        let progress = if ready {
            Some("yields an item")
        } else if read2 != read || eof2 != eof {
            Some("reads input")
        } else if waits_to_write && written2 != written {
            Some("writes what it was waiting to write")
        } else {
            None
        };
        if let Some(progress) = progress {
            panic!(
                "lost wake-up: the stream returned Pending, then {event}, and no waker was \
                 woken, yet polling it again {progress}"
            );
        }
    }
}

struct Harness {
    ws: Ws,
    peer: Peer,
    y: Yielded,
    reader: Reader,
    /// The writer's task: the reader's own when the connection is whole.
    writer: Task,
    moved: Arc<Moved>,
    peer_pings: Vec<Bytes>,
    peer_msgs: usize,
    /// The peer sent a violation or its Close: it sends nothing more.
    peer_done: bool,
    /// We called `close()` while the stream was open.
    we_closed: bool,
    /// ...after the violation had reached the pipe: whether we had already
    /// decoded it (and failed with 1002) is not visible from outside.
    close_raced_violation: bool,
    sent: Vec<(Message, Sent)>,
    /// Large messages still allowed: the peer's, then ours.
    large_budget: (usize, usize),
}

impl Harness {
    fn poll_next_once(&mut self) -> bool {
        self.reader.poll(self.ws.stream(), &self.moved, &mut self.y)
    }

    /// After the peer or the clock did something (`moved`: it moved bytes):
    /// no writer is pending here, so only the stream can have lost a wake-up.
    fn after_external(&mut self, moved: bool, event: &str) {
        if moved && !self.reader.task.woken_since(self.reader.pending) {
            self.reader
                .probe(self.ws.stream(), &self.moved, &mut self.y, event);
        }
    }

    /// Polls the operation that `make` builds on the sink `polls` times,
    /// pumping the peer between polls; `None` if it was still pending and got
    /// dropped. When split, the reader runs between polls whenever it was
    /// woken, as its task would. A poll after the peer moved bytes while no
    /// task was woken is a probe: it must get nowhere.
    fn drive<R>(
        &mut self,
        polls: u8,
        make: impl FnOnce(DynSink<'_>) -> Pin<Box<dyn Future<Output = R> + '_>>,
    ) -> Option<R> {
        let Harness {
            ws,
            peer,
            y,
            reader,
            writer,
            moved,
            ..
        } = self;
        let (sink, mut stream) = ws.parts();
        let mut fut = make(sink);
        let mut pending = None;
        for i in 0..=polls % 8 {
            let mut lost = None;
            if i > 0 {
                let peer_moved = peer.pump(false);
                // Whole, the reader's task is the writer's: the writer's
                // latest poll is what counts.
                let reader_woken = stream.is_some() && reader.task.woken_since(reader.pending);
                if let Some(rx) = stream.as_mut() {
                    if reader_woken && !y.ended {
                        reader.poll(&mut **rx, moved, y);
                        if y.ended && !writer.woken_since(pending) {
                            lost = Some("the stream ended");
                        }
                    }
                }
                if peer_moved && !reader_woken && !writer.woken_since(pending) {
                    if let Some(rx) = stream.as_mut() {
                        reader.probe(&mut **rx, moved, y, "the peer moved bytes");
                    }
                    lost = Some("the peer moved bytes");
                }
            }
            let wakes = writer.wakes();
            moved.write_blocked.store(false, Ordering::SeqCst);
            let written = moved.snapshot().1;
            let poll = fut.as_mut().poll(&mut Context::from_waker(&writer.waker));
            if let Some(event) = lost {
                let progress = if poll.is_ready() {
                    Some("completes")
                } else if moved.snapshot().1 != written {
                    Some("writes")
                } else {
                    None
                };
                if let Some(progress) = progress {
                    panic!(
                        "lost wake-up: a sink operation returned Pending, then {event}, and \
                         no waker was woken, yet polling it again {progress}"
                    );
                }
            }
            match poll {
                Poll::Ready(r) => return Some(r),
                Poll::Pending => pending = Some(wakes),
            }
        }
        None
    }

    fn send(&mut self, len: u8, large: bool, text: bool, polls: u8, feed: bool) {
        let large = take_large(&mut self.large_budget.1, large);
        let len = if large {
            large_len(len)
        } else {
            usize::from(len)
        };
        let message = numbered('w', self.sent.len(), len, text);
        let m = message.clone();
        let outcome = self.drive(polls, move |ws| {
            if feed {
                Box::pin(ws.feed(m))
            } else {
                Box::pin(ws.send(m))
            }
        });
        let status = match outcome {
            None => Sent::Cancelled,
            Some(Ok(())) => Sent::Completed,
            Some(Err(e)) => {
                assert!(matches!(e, Error::Closed), "send failed with {e:?}");
                Sent::Refused
            }
        };
        self.sent.push((message, status));
    }
}

fn run(input: Input, rt: &tokio::runtime::Runtime) {
    let role = if input.server {
        Role::Server
    } else {
        Role::Client
    };
    let peer_role = if input.server {
        Role::Client
    } else {
        Role::Server
    };
    // Long enough that no Advance op reaches it: only a stall does.
    let close_timeout = Duration::from_secs(1 << 20);
    let mut config = Config::default()
        .write_buffer_limit(usize::from(input.write_buffer_limit))
        .close_timeout(close_timeout)
        .keepalive_interval(
            input
                .keepalive_secs
                .map(|s| Duration::from_secs(u64::from(s) + 1)),
        );
    if let Some(size) = input.fragment_size {
        config = config.fragment_size(Some(usize::from(size) + 1));
    }
    if let Some(units) = input.frame_reserve {
        config = config.limits(Limits::default().max_frame_reserve(usize::from(units) * 16));
    }
    // A large message through a pipe of a few bytes is thousands of polls,
    // each probed for lost wake-ups: runs with large messages get a pipe of
    // at least 4 KiB (still partial reads of every large frame) and at most
    // one large message each way: every byte of one is a few compares traced
    // for coverage, so more would slow the target tenfold.
    let large = input.ops.iter().any(|op| {
        matches!(
            op,
            Op::PeerMessage { large: true, .. }
                | Op::Send { large: true, .. }
                | Op::Feed { large: true, .. }
        )
    });
    let min_pipe = if large { 4 << 10 } else { 16 };
    let (ours, theirs) = tokio::io::duplex(usize::from(input.pipe_capacity).max(min_pipe));
    let moved = Arc::new(Moved::default());
    let ours = Tracked {
        io: ours,
        moved: moved.clone(),
    };
    let ws = WebSocket::from_upgraded(ours, role, config);
    let reader = Task::new();
    let (ws, writer) = if input.split {
        let (tx, rx) = ws.split();
        (Ws::Split(tx, rx), Task::new())
    } else {
        (Ws::Whole(ws), reader.clone())
    };
    let mut h = Harness {
        ws,
        reader: Reader {
            task: reader,
            pending: None,
            waits_to_write: false,
        },
        writer,
        moved,
        peer: Peer {
            io: theirs,
            role: peer_role,
            outbox: VecDeque::new(),
            inbox: Vec::new(),
            eof: false,
            shut_down: false,
            frames: 0,
        },
        y: Yielded {
            expected: VecDeque::new(),
            violated: false,
            peer_closed: false,
            terminal: None,
            ended: false,
        },
        peer_pings: Vec::new(),
        peer_msgs: 0,
        peer_done: false,
        we_closed: false,
        close_raced_violation: false,
        sent: Vec::new(),
        large_budget: (1, 1),
    };

    for op in input.ops.into_iter().take(256) {
        match op {
            Op::PeerMessage {
                text,
                len,
                large,
                fragments,
                ping_between,
            } if !h.peer_done => {
                let n = h.peer_msgs;
                h.peer_msgs += 1;
                let large = take_large(&mut h.large_budget.0, large);
                let (len, pieces) = if large {
                    let pieces = usize::from(fragments % 2) + 1;
                    (large_len(len) * pieces, pieces)
                } else {
                    (usize::from(len), usize::from(fragments % 8) + 1)
                };
                let message = numbered('p', n, len, text);
                let bytes = match &message {
                    Message::Text(t) => t.as_bytes().clone(),
                    Message::Binary(b) => b.clone(),
                    _ => unreachable!(),
                };
                let size = bytes.len().div_ceil(pieces).max(1);
                let parts: Vec<&[u8]> = if bytes.is_empty() {
                    vec![&[]]
                } else {
                    bytes.chunks(size).collect()
                };
                for (i, part) in parts.iter().enumerate() {
                    let opcode = match (i, text) {
                        (0, true) => 1,
                        (0, false) => 2,
                        _ => 0,
                    };
                    let last = i + 1 == parts.len();
                    h.peer.queue_frame(last, opcode, part);
                    if ping_between && !last {
                        let ping = Bytes::from(format!("b{n}.{i}"));
                        h.peer.queue_frame(true, 9, &ping);
                        h.y.expected.push_back(Message::Ping(ping.clone()));
                        h.peer_pings.push(ping);
                    }
                }
                h.y.expected.push_back(message);
            }
            Op::PeerPing(mut p) if !h.peer_done => {
                p.truncate(125);
                h.peer.queue_frame(true, 9, &p);
                h.y.expected
                    .push_back(Message::Ping(Bytes::from(p.clone())));
                h.peer_pings.push(Bytes::from(p));
            }
            Op::PeerPong(mut p) if !h.peer_done => {
                p.truncate(125);
                h.peer.queue_frame(true, 10, &p);
                h.y.expected.push_back(Message::Pong(Bytes::from(p)));
            }
            Op::PeerViolation if !h.peer_done => {
                h.peer.queue_frame(true, 3, b"");
                h.peer_done = true;
                h.y.violated = true;
            }
            Op::PeerClose if !h.peer_done => {
                h.peer.queue_frame(true, 8, &1000u16.to_be_bytes());
                h.peer_done = true;
                h.y.peer_closed = true;
            }
            Op::PeerMessage { .. } | Op::PeerPing(_) | Op::PeerPong(_) => {}
            Op::PeerViolation | Op::PeerClose => {}
            Op::PeerWrite(max) => {
                let moved = h.peer.write(usize::from(max)) > 0;
                h.after_external(moved, "the peer wrote");
            }
            Op::PeerRead => {
                let moved = h.peer.read() > 0;
                h.after_external(moved, "the peer read");
            }
            Op::Next if !h.y.ended => {
                h.poll_next_once();
            }
            Op::NextUntil(polls) if !h.y.ended => {
                for _ in 0..=polls % 16 {
                    if h.poll_next_once() {
                        break;
                    }
                    let moved = h.peer.pump(false);
                    h.after_external(moved, "the peer moved bytes");
                }
            }
            Op::Next | Op::NextUntil(_) => {}
            Op::Send {
                len,
                large,
                text,
                polls,
            } => h.send(len, large, text, polls, false),
            Op::Feed {
                len,
                large,
                text,
                polls,
            } => h.send(len, large, text, polls, true),
            Op::Flush { polls } => {
                let r = h.drive(polls, |ws| Box::pin(ws.flush()));
                assert!(!matches!(r, Some(Err(_))), "flush failed: {r:?}");
            }
            Op::Close { polls } => {
                if !h.we_closed && !h.y.ended && h.y.terminal.is_none() {
                    h.we_closed = true;
                    // The violation is the last frame the peer queued, and its
                    // first two bytes are enough to fail: once they left the
                    // outbox, it may have been decoded.
                    let frame_len = if peer_role == Role::Client { 6 } else { 2 };
                    h.close_raced_violation = h.y.violated && h.peer.outbox.len() + 2 <= frame_len;
                }
                let r = h.drive(polls, |ws| Box::pin(ws.close()));
                assert!(!matches!(r, Some(Err(_))), "close failed: {r:?}");
            }
            Op::Advance(ms) => {
                rt.block_on(tokio::time::advance(Duration::from_millis(u64::from(ms))));
                // Only reads and items count as progress here: a poll may write
                // what was fed earlier without having been asked to.
                h.after_external(true, "time passed");
            }
        }
    }

    // The peer ends the conversation, then both sides run to the end.
    if !h.peer_done {
        h.peer.queue_frame(true, 8, &1000u16.to_be_bytes());
        h.peer_done = true;
        h.y.peer_closed = true;
    }
    let mut idle = 0;
    while !h.y.ended {
        let moved = h.peer.pump(true);
        // A stream that was not woken must have had nothing to do.
        h.after_external(moved, "the peer moved bytes");
        let yielded = !h.y.ended && h.poll_next_once();
        if moved || yielded {
            idle = 0;
            continue;
        }
        idle += 1;
        assert!(
            idle < 4,
            "the closing handshake stalled although the peer cooperates"
        );
    }
    while !h.peer.eof {
        assert!(
            h.peer.read() > 0 || h.peer.eof,
            "we ended without closing our side"
        );
    }
    assert!(h.y.expected.is_empty());

    // What we sent, as the peer decodes it.
    let limits = Limits::default()
        .max_frame_size(1 << 30)
        .max_message_size(1 << 30);
    let mut codec = MessageCodec::with_limits(peer_role, &limits);
    let mut inbox = BytesMut::from(&h.peer.inbox[..]);
    let mut data = Vec::new();
    let mut pongs = Vec::new();
    let mut close = None;
    while let Some(m) = codec.decode(&mut inbox).expect("we send valid frames") {
        assert!(close.is_none(), "{m:?} after our Close");
        match m {
            Message::Ping(p) => assert!(p.is_empty(), "only keepalive pings"),
            Message::Pong(p) => pongs.push(p),
            Message::Close(c) => close = Some(c),
            m => data.push(m),
        }
    }
    assert!(inbox.is_empty(), "a partial frame after our Close");
    let code = close.expect("we sent a Close").map(|c| c.code);
    if h.close_raced_violation {
        assert!(matches!(code, Some(CloseCode(1000 | 1002))), "{code:?}");
    } else {
        let expected_code = if h.we_closed || !h.y.violated {
            1000
        } else {
            1002
        };
        assert_eq!(code, Some(CloseCode(expected_code)));
    }
    // Sends: in order, at most once, the completed ones all there.
    let mut next = 0;
    for m in data {
        let i = (next..h.sent.len())
            .find(|&i| h.sent[i].0 == m)
            .unwrap_or_else(|| panic!("{m:?} lost order or was never sent"));
        assert!(
            h.sent[next..i].iter().all(|(_, s)| *s != Sent::Completed),
            "a completed send was lost"
        );
        assert_ne!(h.sent[i].1, Sent::Refused, "a refused send went out");
        next = i + 1;
    }
    assert!(
        h.sent[next..].iter().all(|(_, s)| *s != Sent::Completed),
        "a completed send was lost"
    );
    // Pings: each answered once, in order; all of them unless we closed first.
    assert!(pongs.len() <= h.peer_pings.len());
    assert_eq!(pongs[..], h.peer_pings[..pongs.len()]);
    if !h.we_closed {
        assert_eq!(pongs.len(), h.peer_pings.len(), "a ping went unanswered");
    }
}

fuzz_target!(|input: Input| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _guard = rt.enter();
    run(input, &rt);
});
