//! The split halves of a [`WebSocket`]: [`ReadHalf`] and [`WriteHalf`].
//!
//! Both halves share one connection behind a lock that never blocks a thread
//! (`lock.rs`): a half that finds it taken registers its waker and returns
//! `Pending`, and the holder wakes it on release. So a reader inflating a large message
//! holds up the writer's task, never a runtime thread. `Sink::start_send`
//! cannot wait; when the lock is taken it hands its message over through a
//! one-message slot that the next holder queues first, in order.
//!
//! The transport's write side and the timer keep one waker each, and both
//! halves may wait on them (the reader to send a Pong or run the close, the
//! writer its data). They are polled with a waker that wakes whichever halves
//! are waiting, so neither loses its wake-up (the failure tokio-websockets #92
//! and #106 describe). Only the reader reads, with its own waker.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Wake, Waker};

use bytes::BytesMut;
use futures_core::stream::FusedStream;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use super::lock::{WakeGuard, WakeLock};
use super::WebSocket;
use crate::codec::{encode_message, PreparedMessage};
use crate::config::Role;
use crate::error::Error;
use crate::message::{CloseFrame, Message};

/// What a write half hands over: a message, or a prepared one, which keeps
/// its shared encoding on the way.
#[derive(Debug)]
pub(super) enum Outgoing {
    Message(Message),
    Prepared(PreparedMessage),
}

impl Outgoing {
    fn queue<T>(self, ws: &mut WebSocket<T>) -> Result<(), Error> {
        match self {
            Outgoing::Message(message) => ws.core.start_send(message),
            Outgoing::Prepared(prepared) => ws.core.start_send_prepared(&prepared),
        }
    }
}

/// Which half is polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Read,
    Write,
}

impl Side {
    pub(super) fn other(self) -> Side {
        match self {
            Side::Read => Side::Write,
            Side::Write => Side::Read,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A waker slot per half, and a waker that wakes both.
#[derive(Debug, Default)]
struct Halves {
    slots: [Mutex<Option<Waker>>; 2],
}

impl Halves {
    fn slot(&self, side: Side) -> MutexGuard<'_, Option<Waker>> {
        self.slots[side.index()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl Wake for Halves {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        for side in [Side::Read, Side::Write] {
            if let Some(waker) = self.slot(side).take() {
                waker.wake();
            }
        }
    }
}

/// The wakers of a split connection's halves.
#[derive(Debug, Clone)]
pub(super) struct SplitWakers {
    halves: Arc<Halves>,
    /// Wakes every half waiting; made once, cloned per poll.
    both: Waker,
}

impl SplitWakers {
    fn new() -> Self {
        let halves = Arc::new(Halves::default());
        SplitWakers {
            both: Waker::from(halves.clone()),
            halves,
        }
    }

    /// The waker to poll shared resources with.
    pub(super) fn waker(&self) -> Waker {
        self.both.clone()
    }

    /// `side` is polling with `waker`: it is the one to wake. Registered
    /// before anything is polled, so no wake-up can fall in between.
    pub(super) fn register(&self, side: Side, waker: &Waker) {
        let mut slot = self.halves.slot(side);
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    pub(super) fn wake(&self, side: Side) {
        if let Some(waker) = self.halves.slot(side).take() {
            waker.wake();
        }
    }
}

#[derive(Debug)]
struct Shared<T> {
    ws: WakeLock<WebSocket<T>>,
    /// A message `WriteHalf::start_send` handed over while the lock was taken.
    handoff: Mutex<Option<Outgoing>>,
    handoff_full: AtomicBool,
    wakers: SplitWakers,
}

type Guard<'a, T> = WakeGuard<'a, WebSocket<T>>;

impl<T> Shared<T> {
    /// Every way in queues a handed-over message first, so it keeps its place.
    fn locked<'a>(&'a self, mut guard: Guard<'a, T>) -> Guard<'a, T> {
        if self.handoff_full.load(Ordering::Acquire) {
            self.take_handoff(&mut guard);
        }
        guard
    }

    fn try_lock(&self) -> Option<Guard<'_, T>> {
        self.ws.try_lock().map(|guard| self.locked(guard))
    }

    fn poll_lock(&self, side: Side, cx: &mut Context<'_>) -> Poll<Guard<'_, T>> {
        let guard = ready!(self.ws.poll_lock(side.index(), cx));
        Poll::Ready(self.locked(guard))
    }

    /// The blocking lock, for a `start_send` that found the handoff slot full:
    /// only a caller that skipped `poll_ready` gets here.
    fn lock(&self) -> Guard<'_, T> {
        self.locked(self.ws.lock())
    }

    /// Queues the handed-over message ahead of anything else.
    fn take_handoff(&self, ws: &mut WebSocket<T>) {
        let message = self
            .handoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.handoff_full.store(false, Ordering::Release);
        if let Some(message) = message {
            if let Err(error) = message.queue(ws) {
                // Sent after our Close: the writer hears of it next time.
                ws.core.refused = Some(error);
            }
        }
    }

    /// `start_send` without waiting: queue `message` now if the lock is free,
    /// else hand it over. Either way a message that cannot be sent fails here.
    fn send_now_or_hand_over(&self, message: Outgoing) -> Result<(), Error> {
        if let Some(mut ws) = self.try_lock() {
            let result = message.queue(&mut ws);
            ws.wake_other(Side::Write);
            return result;
        }
        if let Outgoing::Message(message) = &message {
            if message.is_control() {
                // Control frames are small: encoding one is the check. (A
                // prepared message was checked when it was encoded.)
                encode_message(
                    Role::Server,
                    message,
                    usize::MAX,
                    None,
                    &mut BytesMut::new(),
                )?;
            }
        }
        let mut slot = self.handoff.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            drop(slot);
            let mut ws = self.lock();
            let result = message.queue(&mut ws);
            ws.wake_other(Side::Write);
            return result;
        }
        *slot = Some(message);
        self.handoff_full.store(true, Ordering::Release);
        Ok(())
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> WebSocket<T> {
    /// Splits into a reading and a writing half that two tasks can use at once.
    /// Each half holds the connection only while it is being polled, and
    /// never blocks a thread waiting for the other.
    ///
    /// Keep polling the read half: it answers pings and completes the closing
    /// handshake, even one the write half started.
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
        let wakers = SplitWakers::new();
        self.split = Some(wakers.clone());
        let shared = Arc::new(Shared {
            ws: WakeLock::new(self),
            handoff: Mutex::new(None),
            handoff_full: AtomicBool::new(false),
            wakers,
        });
        (
            WriteHalf {
                shared: shared.clone(),
            },
            ReadHalf {
                shared,
                terminated: false,
            },
        )
    }
}

/// The receiving half of a split [`WebSocket`]: a [`Stream`] of messages. It also
/// answers pings and completes the closing handshake, so keep polling it.
#[derive(Debug)]
pub struct ReadHalf<T> {
    shared: Arc<Shared<T>>,
    /// The stream has yielded its last item. Kept here, not read through the
    /// lock, so `is_terminated` answers even while the write half holds it;
    /// only this half polls the stream, so only this half can end it.
    terminated: bool,
}

/// The sending half of a split [`WebSocket`]: a [`Sink`] of messages.
#[derive(Debug)]
pub struct WriteHalf<T> {
    shared: Arc<Shared<T>>,
}

impl<T> ReadHalf<T> {
    /// Puts the halves back together; gives them back if they are not a pair.
    pub fn reunite(self, other: WriteHalf<T>) -> Result<WebSocket<T>, (ReadHalf<T>, WriteHalf<T>)> {
        if !Arc::ptr_eq(&self.shared, &other.shared) {
            return Err((self, other));
        }
        drop(other);
        let shared = Arc::into_inner(self.shared).expect("both halves were given");
        let mut ws = shared.ws.into_inner();
        let handed_over = shared
            .handoff
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(message) = handed_over {
            if let Err(error) = message.queue(&mut ws) {
                ws.core.refused = Some(error);
            }
        }
        ws.split = None;
        Ok(ws)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Stream for ReadHalf<T> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let mut ws = ready!(this.shared.poll_lock(Side::Read, cx));
        let item = ws.poll_as(Side::Read, cx, WebSocket::poll_next_inner);
        this.terminated = ws.is_terminated();
        item
    }
}

/// As for [`WebSocket`]: `true` once the stream has yielded its last item.
impl<T: AsyncRead + AsyncWrite + Unpin> FusedStream for ReadHalf<T> {
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

/// See the `Sink` impl of [`WebSocket`].
impl<T: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WriteHalf<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut ws = ready!(self.shared.poll_lock(Side::Write, cx));
        ws.poll_as(Side::Write, cx, WebSocket::poll_ready_inner)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        self.start_send_outgoing(Outgoing::Message(message))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut ws = ready!(self.shared.poll_lock(Side::Write, cx));
        ws.poll_as(Side::Write, cx, WebSocket::poll_flush_inner)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut ws = ready!(self.shared.poll_lock(Side::Write, cx));
        ws.poll_as(Side::Write, cx, WebSocket::poll_close_inner)
    }
}

impl<T> WriteHalf<T> {
    /// `Sink::start_send` of either kind of message.
    pub(super) fn start_send_outgoing(&self, message: Outgoing) -> Result<(), Error> {
        self.shared.send_now_or_hand_over(message)
    }

    /// [`WebSocket::start_close`] on the write half; the read half completes
    /// the close, and is woken to do it.
    pub fn start_close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        match self.shared.try_lock() {
            Some(mut ws) => ws.start_close(frame),
            None => {
                // The reader holds the lock: hand the Close over and wake it
                // to queue it and start the close deadline.
                self.start_send_outgoing(Outgoing::Message(Message::Close(frame)))?;
                self.shared.wakers.wake(Side::Read);
                Ok(())
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> WriteHalf<T> {
    /// [`WebSocket::feed_prepared`] on the write half.
    pub async fn feed_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.prepared_sink().feed(message).await
    }

    /// [`WebSocket::send_prepared`] on the write half.
    pub async fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.prepared_sink().send(message).await
    }
}
