//! WebSockets over HTTP/2 (RFC 8441), feature `http2`.
//!
//! A WebSocket on HTTP/2 is one stream of a connection that may carry many:
//! the client opens it with an *extended CONNECT* (`:method = CONNECT`,
//! `:protocol = websocket`), the server answers `200`, and the stream's DATA
//! frames then carry the same RFC 6455 frames as a TCP connection would. Only
//! the handshake and the end of the transport differ (§5, §6).
//!
//! This module owns those differences and nothing else: the frames, pings,
//! closing handshake and close codes are [`WebSocket`](crate::WebSocket)'s,
//! which runs unchanged on an [`H2Stream`].
//!
//! | file | owns |
//! |---|---|
//! | `validate.rs` | sans-IO: the extended CONNECT's checks ([`validate`], [`RequestError`]), the `200` ([`response`]) and refusals ([`reject_response`]) |
//! | `stream.rs` | [`H2Stream`]: `AsyncRead + AsyncWrite` over an h2 stream, with HTTP/2 flow control |
//! | `server.rs` | [`accept`], [`accept_with`]: answer a request from `h2::server` and start the WebSocket |
//! | `client.rs` | [`connect`]: send the extended CONNECT on an `h2::client::SendRequest` |
//!
//! Subprotocols and permessage-deflate are negotiated by the same code as
//! HTTP/1.1 ([`Agreed`](crate::handshake::Agreed)); only the serialization of
//! the answer differs (no `Sec-WebSocket-Accept`, no `Upgrade`).
//!
//! # Server
//!
//! ```no_run
//! use futures::{SinkExt, StreamExt};
//! # async fn run(tcp: tokio::net::TcpStream) -> Result<(), Box<dyn std::error::Error>> {
//! // RFC 8441 §3: advertise SETTINGS_ENABLE_CONNECT_PROTOCOL.
//! let mut connection = h2::server::Builder::new()
//!     .enable_connect_protocol()
//!     .handshake::<_, bytes::Bytes>(tcp)
//!     .await?;
//! while let Some(next) = connection.accept().await {
//!     let (request, respond) = next?;
//!     tokio::spawn(async move {
//!         let mut ws = wscodec::h2::accept(request, respond, wscodec::Config::default())?;
//!         while let Some(message) = ws.next().await {
//!             let message = message?;
//!             if !message.is_control() {
//!                 ws.send(message).await?;
//!             }
//!         }
//!         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//!     });
//! }
//! # Ok(()) }
//! ```
//!
//! The connection is driven by polling `accept` (or `poll_closed`); keep
//! that loop running while its WebSockets live.
//!
//! # Many sockets on one connection
//!
//! h2 counts small DATA frames that wait to be read against a budget and
//! ends the connection with ENHANCE_YOUR_CALM when it runs out: hundreds of
//! sockets each sending a short message at once exhaust the default. Raise
//! it with `Builder::data_frame_budget` (server and client) for such loads.
//! Each write of the WebSocket is one DATA frame (messages queued together
//! share one; one larger than the peer's maximum frame size, 16 KiB unless
//! raised, is split into several), so the budget counts writes, not bytes.

mod client;
mod server;
mod stream;
#[cfg(test)]
mod tests;
mod validate;

use std::fmt;

pub use client::connect;
#[cfg(feature = "rustls")]
pub(crate) use client::open as client_open;
pub use server::{accept, accept_with};
pub use stream::H2Stream;
#[cfg(feature = "axum")]
pub(crate) use validate::agree;
pub use validate::{negotiate, reject_response, response, validate, RequestError, PROTOCOL};

use crate::error::HandshakeError;

/// Why a WebSocket over HTTP/2 could not be set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum H2Error {
    /// Server: the request is not a valid extended CONNECT for a WebSocket;
    /// it was answered with [`RequestError::status`].
    Request(RequestError),
    /// The negotiation failed: the accept callback refused
    /// ([`HandshakeError::Rejected`]), our own answer was invalid (answered
    /// with 500), the server answered a status that is not 2xx
    /// ([`HandshakeError::UnexpectedStatus`], with its headers and the first
    /// [`Limits::max_response_body`](crate::Limits::max_response_body) bytes
    /// of its body, as over HTTP/1.1), the server chose something we did not
    /// offer, or the response did not come within
    /// [`Config::handshake_timeout`](crate::Config::handshake_timeout).
    Handshake(HandshakeError),
    /// Client: the server has not advertised `SETTINGS_ENABLE_CONNECT_PROTOCOL`
    /// (RFC 8441 §3), so no extended CONNECT may be sent on this connection.
    /// Nothing was sent; there is no silent fallback to HTTP/1.1.
    ExtendedConnectDisabled,
    /// HTTP/2 failed: the stream was reset or the connection is gone.
    H2(::h2::Error),
}

impl H2Error {
    /// The HTTP status of the failure: what a server answered, or what a
    /// client received; `None` where no status describes it.
    pub fn status(&self) -> Option<u16> {
        match self {
            H2Error::Request(e) => Some(e.status()),
            H2Error::Handshake(e) => e.status(),
            H2Error::ExtendedConnectDisabled | H2Error::H2(_) => None,
        }
    }
}

impl fmt::Display for H2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            H2Error::Request(e) => write!(f, "invalid extended CONNECT: {e}"),
            H2Error::Handshake(e) => write!(f, "handshake failed: {e}"),
            H2Error::ExtendedConnectDisabled => f.write_str(
                "the HTTP/2 server did not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441)",
            ),
            H2Error::H2(e) => write!(f, "HTTP/2: {e}"),
        }
    }
}

impl std::error::Error for H2Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            H2Error::Request(e) => Some(e),
            H2Error::Handshake(e) => Some(e),
            H2Error::H2(e) => Some(e),
            _ => None,
        }
    }
}

impl From<RequestError> for H2Error {
    fn from(e: RequestError) -> Self {
        H2Error::Request(e)
    }
}

impl From<HandshakeError> for H2Error {
    fn from(e: HandshakeError) -> Self {
        H2Error::Handshake(e)
    }
}

impl From<::h2::Error> for H2Error {
    fn from(e: ::h2::Error) -> Self {
        H2Error::H2(e)
    }
}
