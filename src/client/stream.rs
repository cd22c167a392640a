//! The transport [`connect_url`](crate::connect_url) returns: TCP, TLS over
//! TCP, or a stream of an HTTP/2 connection over TLS, as one type.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The connection under a [`WebSocket`](crate::WebSocket) opened by
/// [`connect_url`](crate::connect_url) or
/// [`Connector`](crate::client::Connector): plain TCP for `ws://`, TLS over
/// TCP for `wss://` (feature `rustls`). Through a proxy, the TCP stream is
/// the tunnel, and TLS runs end to end inside it. With
/// [`Connector::http2`](crate::client::Connector::http2), a server that
/// picks `h2` by ALPN carries the WebSocket on one HTTP/2 stream (RFC 8441).
///
/// Reads, writes (vectored ones too) and shutdown go to the variant.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientStream {
    /// `ws://`: TCP as it is.
    Plain(TcpStream),
    /// `wss://`: TLS (rustls) over TCP. Boxed: a TLS session is large, and
    /// a `ClientStream` moves into the connection's future.
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// `wss://` over HTTP/2 (features `http2` and `rustls`): one stream of
    /// an HTTP/2 connection over TLS, which a task of its own drives until
    /// the stream ends.
    #[cfg(all(feature = "http2", feature = "rustls"))]
    #[cfg_attr(docsrs, doc(cfg(all(feature = "http2", feature = "rustls"))))]
    Http2(crate::h2::H2Stream),
}

impl ClientStream {
    /// The TCP stream underneath (to the server, or to the proxy): for
    /// `peer_addr`, `local_addr` or socket options. `None` over HTTP/2,
    /// where the connection's task owns it.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            ClientStream::Plain(tcp) => Some(tcp),
            #[cfg(feature = "rustls")]
            ClientStream::Tls(tls) => Some(tls.get_ref().0),
            #[cfg(all(feature = "http2", feature = "rustls"))]
            ClientStream::Http2(_) => None,
        }
    }

    /// Whether the connection is TLS (HTTP/2 here is always over TLS).
    pub fn is_tls(&self) -> bool {
        !matches!(self, ClientStream::Plain(_))
    }

    /// Whether the WebSocket runs on an HTTP/2 stream (RFC 8441).
    pub fn is_http2(&self) -> bool {
        #[cfg(all(feature = "http2", feature = "rustls"))]
        if let ClientStream::Http2(_) = self {
            return true;
        }
        false
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            #[cfg(feature = "rustls")]
            ClientStream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
            #[cfg(all(feature = "http2", feature = "rustls"))]
            ClientStream::Http2(h2) => Pin::new(h2).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            #[cfg(feature = "rustls")]
            ClientStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
            #[cfg(all(feature = "http2", feature = "rustls"))]
            ClientStream::Http2(h2) => Pin::new(h2).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            #[cfg(feature = "rustls")]
            ClientStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
            #[cfg(all(feature = "http2", feature = "rustls"))]
            ClientStream::Http2(h2) => Pin::new(h2).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Plain(tcp) => tcp.is_write_vectored(),
            #[cfg(feature = "rustls")]
            ClientStream::Tls(tls) => tls.is_write_vectored(),
            #[cfg(all(feature = "http2", feature = "rustls"))]
            ClientStream::Http2(h2) => h2.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            #[cfg(feature = "rustls")]
            ClientStream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            #[cfg(all(feature = "http2", feature = "rustls"))]
            ClientStream::Http2(h2) => Pin::new(h2).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            #[cfg(feature = "rustls")]
            ClientStream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            #[cfg(all(feature = "http2", feature = "rustls"))]
            ClientStream::Http2(h2) => Pin::new(h2).poll_shutdown(cx),
        }
    }
}
