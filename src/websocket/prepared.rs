//! [`PreparedSink`]: sending [`PreparedMessage`]s through the `Sink` API.
//!
//! `WebSocket` and `WriteHalf` implement `Sink<Message>` only. A second impl,
//! `Sink<&PreparedMessage>`, would make every `ws.flush()` and `ws.close()`
//! from `SinkExt` ambiguous (the item type is then a free parameter that the
//! call does not fix), breaking the most common calls in user code. So the
//! prepared path is a borrowing adapter with its own `Sink` impl, and
//! `feed_prepared`/`send_prepared` are thin wrappers over it.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use super::split::{Outgoing, Side};
use super::{WebSocket, WriteHalf};
use crate::codec::PreparedMessage;
use crate::error::Error;
use crate::message::Message;

/// A [`Sink`] of `&`[`PreparedMessage`] over a [`WebSocket`] or a
/// [`WriteHalf`], from [`WebSocket::prepared_sink`] or
/// [`WriteHalf::prepared_sink`].
///
/// It behaves as the connection's own `Sink<Message>` does (the same
/// backpressure, batching and flush; `poll_close` sends a Close), except
/// that a server queues the prepared frame's shared bytes as they are, with
/// no encoding and no copy per connection.
///
/// ```
/// use futures::{stream, SinkExt, StreamExt};
/// use wscodec::{Config, Message, PreparedMessage, Role, WebSocket};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), wscodec::Error> {
/// let (a, b) = tokio::io::duplex(4096);
/// let mut server = WebSocket::from_upgraded(a, Role::Server, Config::default());
/// let mut client = WebSocket::from_upgraded(b, Role::Client, Config::default());
/// let news = PreparedMessage::new(Message::text("news"))?;
/// server.prepared_sink().send(&news).await?;
/// // Many at once: queued together, flushed once.
/// let more = [PreparedMessage::new(Message::text("more"))?, news.clone()];
/// server.prepared_sink().send_all(&mut stream::iter(more.iter().map(Ok))).await?;
/// assert_eq!(client.next().await.unwrap()?, Message::text("news"));
/// assert_eq!(client.next().await.unwrap()?, Message::text("more"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PreparedSink<'a, T> {
    target: Target<'a, T>,
}

#[derive(Debug)]
enum Target<'a, T> {
    Whole(&'a mut WebSocket<T>),
    Half(&'a mut WriteHalf<T>),
}

impl<T> WebSocket<T> {
    /// A [`Sink`] of `&`[`PreparedMessage`] over this connection, for
    /// `SinkExt::send`, `feed` and `send_all` of prepared messages.
    pub fn prepared_sink(&mut self) -> PreparedSink<'_, T> {
        PreparedSink {
            target: Target::Whole(self),
        }
    }
}

impl<T> WriteHalf<T> {
    /// [`WebSocket::prepared_sink`] on the write half.
    pub fn prepared_sink(&mut self) -> PreparedSink<'_, T> {
        PreparedSink {
            target: Target::Half(self),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> PreparedSink<'_, T> {
    /// `SinkExt::feed`, without depending on `futures`.
    pub(super) async fn feed(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        poll_fn(|cx| Sink::<&PreparedMessage>::poll_ready(Pin::new(&mut *self), cx)).await?;
        Pin::new(self).start_send(message)
    }

    /// `SinkExt::send`, without depending on `futures`.
    pub(super) async fn send(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.feed(message).await?;
        poll_fn(|cx| Sink::<&PreparedMessage>::poll_flush(Pin::new(&mut *self), cx)).await
    }
}

impl<'m, T: AsyncRead + AsyncWrite + Unpin> Sink<&'m PreparedMessage> for PreparedSink<'_, T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match &mut self.get_mut().target {
            Target::Whole(ws) => Sink::<Message>::poll_ready(Pin::new(&mut **ws), cx),
            Target::Half(half) => Sink::<Message>::poll_ready(Pin::new(&mut **half), cx),
        }
    }

    fn start_send(self: Pin<&mut Self>, message: &'m PreparedMessage) -> Result<(), Error> {
        match &mut self.get_mut().target {
            Target::Whole(ws) => {
                let result = ws.core.start_send_prepared(message);
                ws.wake_other(Side::Write);
                result
            }
            Target::Half(half) => half.start_send_outgoing(Outgoing::Prepared(message.clone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match &mut self.get_mut().target {
            Target::Whole(ws) => Sink::<Message>::poll_flush(Pin::new(&mut **ws), cx),
            Target::Half(half) => Sink::<Message>::poll_flush(Pin::new(&mut **half), cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match &mut self.get_mut().target {
            Target::Whole(ws) => Sink::<Message>::poll_close(Pin::new(&mut **ws), cx),
            Target::Half(half) => Sink::<Message>::poll_close(Pin::new(&mut **half), cx),
        }
    }
}
