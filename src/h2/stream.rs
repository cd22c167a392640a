//! [`H2Stream`]: one HTTP/2 stream as an `AsyncRead + AsyncWrite`, the
//! transport of one WebSocket (RFC 8441 §5–§6).
//!
//! Flow control is what makes this more than a copy: received data keeps
//! its window until the reader has taken it (so a slow reader slows the
//! peer, as a full TCP buffer would), and a write waits for send window
//! instead of handing h2 more than it may send.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::h2::{Reason, RecvStream, SendStream};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most send window one write asks for: enough for large frames, not so
/// much that one busy stream holds the connection's window from the others.
const MAX_RESERVE: usize = 64 << 10;

/// An HTTP/2 stream pair (h2's [`SendStream`] and [`RecvStream`]) as one
/// byte stream, for a [`WebSocket`](crate::WebSocket) to run on.
///
/// | transport event | HTTP/2 (RFC 8441 §6) |
/// |---|---|
/// | `poll_shutdown` | END_STREAM (an empty DATA frame with the flag) |
/// | dropped before both sides ended the stream | RST_STREAM (CANCEL) |
/// | the peer's END_STREAM | EOF: a read of 0 bytes |
/// | the peer's RST_STREAM, or the connection failing | an `io::Error` (`ConnectionReset` for a reset) |
///
/// So the WebSocket's close rules (RFC 6455 §7) apply unchanged: the peer's
/// END_STREAM without a Close frame is an abnormal closure (1006).
///
/// Reading releases flow-control capacity for exactly the bytes handed to
/// the caller. Writing reserves capacity (at most 64 KiB at a time) and
/// waits for it, so h2 never buffers more than the window allows; a write
/// returns as soon as some of it fits.
#[derive(Debug)]
pub struct H2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received, not yet read: a view of h2's DATA payload, no copy.
    unread: Bytes,
    /// The peer's END_STREAM was read.
    eof: bool,
    /// We sent END_STREAM.
    ended: bool,
}

impl H2Stream {
    /// The stream of `send` (our direction) and `recv` (the peer's), as h2's
    /// client (`send_request` and its response's body) or server
    /// (`send_response` and the request's body) hands them over.
    pub fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
        H2Stream {
            send,
            recv,
            unread: Bytes::new(),
            eof: false,
            ended: false,
        }
    }

    /// The stream's id on its connection.
    pub fn stream_id(&self) -> u32 {
        self.send.stream_id().as_u32()
    }

    /// Whether the peer's END_STREAM has been read: it ended its direction
    /// in order.
    pub fn peer_ended(&self) -> bool {
        self.eof
    }

    /// Whether we sent END_STREAM ([`AsyncWrite::poll_shutdown`]).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Waits until some send capacity, at most `want` bytes, is assigned to
    /// the stream; returns how much.
    fn poll_capacity(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        if self.ended {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the HTTP/2 stream was ended (END_STREAM sent)",
            )));
        }
        let want = want.min(MAX_RESERVE);
        // The request is a total, not an increment: asking for exactly what
        // this write needs returns any excess held from an earlier, larger
        // write to the connection for the other streams.
        self.send.reserve_capacity(want);
        loop {
            let capacity = self.send.capacity();
            if capacity > 0 {
                return Poll::Ready(Ok(capacity.min(want)));
            }
            match ready!(self.send.poll_capacity(cx)) {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Poll::Ready(Err(into_io(e))),
                // The stream is closed for sending: reset, or its connection gone.
                None => return Poll::Ready(Err(self.closed_error(cx))),
            }
        }
    }

    /// Why the stream can no longer send, as an `io::Error`.
    fn closed_error(&mut self, cx: &mut Context<'_>) -> io::Error {
        match self.send.poll_reset(cx) {
            Poll::Ready(Ok(reason)) => reset_error(reason),
            Poll::Ready(Err(e)) => into_io(e),
            Poll::Pending => io::Error::new(io::ErrorKind::BrokenPipe, "the HTTP/2 stream closed"),
        }
    }

    fn send(&mut self, data: Bytes) -> io::Result<()> {
        self.send.send_data(data, false).map_err(into_io)
    }
}

fn reset_error(reason: Reason) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        format!("the HTTP/2 stream was reset: {reason}"),
    )
}

/// h2's error as an `io::Error`: its I/O error if it is one, a reset as
/// `ConnectionReset`, a GOAWAY as `ConnectionAborted`.
pub(super) fn into_io(e: ::h2::Error) -> io::Error {
    if e.is_io() {
        return e
            .into_io()
            .unwrap_or_else(|| io::Error::other("HTTP/2 I/O error"));
    }
    let kind = if e.is_reset() {
        io::ErrorKind::ConnectionReset
    } else if e.is_go_away() {
        io::ErrorKind::ConnectionAborted
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, e)
}

impl AsyncRead for H2Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.unread.is_empty() {
                let n = this.unread.len().min(buf.remaining());
                buf.put_slice(&this.unread[..n]);
                this.unread.advance(n);
                // The window reopens for what the reader took, not for what
                // arrived: a reader that stops stops the peer.
                // Failing means the stream is gone: the next poll says how.
                let _ = this.recv.flow_control().release_capacity(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => this.unread = data,
                Some(Err(e)) => return Poll::Ready(Err(into_io(e))),
                None => this.eof = true,
            }
        }
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = ready!(this.poll_capacity(cx, buf.len()))?;
        this.send(Bytes::copy_from_slice(&buf[..n]))?;
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total = bufs.iter().fold(0usize, |n, b| n.saturating_add(b.len()));
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        // One DATA frame for a header and its payload, not one each.
        let n = ready!(this.poll_capacity(cx, total))?;
        let mut data = BytesMut::with_capacity(n);
        for b in bufs {
            let take = b.len().min(n - data.len());
            data.extend_from_slice(&b[..take]);
            if data.len() == n {
                break;
            }
        }
        this.send(data.freeze())?;
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// h2 writes what it was given as its connection task runs; there is
    /// nothing per stream to flush.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// END_STREAM (RFC 8441 §6: the orderly close of TCP is END_STREAM),
    /// after everything written before it.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.ended {
            this.ended = true;
            this.send.reserve_capacity(0);
            this.send.send_data(Bytes::new(), true).map_err(into_io)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for H2Stream {
    /// RFC 8441 §6: a stream not ended in both directions ends abnormally,
    /// with RST_STREAM (CANCEL); h2 ignores it on a stream already closed.
    fn drop(&mut self) {
        if !(self.ended && (self.eof || self.recv.is_end_stream())) {
            self.send.send_reset(Reason::CANCEL);
        }
    }
}
