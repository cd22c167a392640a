//! Errors: one public [`Error`] enum for every layer.
//!
//! Each error knows what it means on the wire: a [`ProtocolError`] or a
//! [`CapacityError`] carries the close code (RFC 6455 §7.4.1) the connection is failed
//! with, and a [`HandshakeError`] carries the HTTP status that was sent or received.

use std::fmt;
use std::io;

use crate::message::CloseCode;

/// Everything that can go wrong on a WebSocket connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed.
    Io(io::Error),
    /// The peer broke RFC 6455; the connection is failed with
    /// [`ProtocolError::close_code`].
    Protocol(ProtocolError),
    /// The peer sent more than a configured limit allows; the connection is failed
    /// with 1009 (message too big).
    Capacity(CapacityError),
    /// The opening handshake failed.
    Handshake(HandshakeError),
    /// The caller asked for something RFC 6455 does not allow us to send;
    /// nothing was sent and the connection goes on. Never the peer's doing.
    Usage(UsageError),
    /// Nothing more can be sent: we sent our Close frame, or the connection
    /// ended. Also what a pending flush fails with when the connection ended
    /// cleanly or failed with bytes of it still queued.
    Closed,
    /// No frame arrived from the peer within the configured idle timeout.
    IdleTimeout,
    /// The connection ended without a closing handshake: what RFC 6455
    /// §7.1.5 reports as close code 1006 ([`CloseCode::ABNORMAL`]), which is
    /// never sent on the wire. The stream yields it as its last item, and a
    /// pending `flush` or `close` whose bytes were dropped fails with it.
    AbnormalClosure(AbnormalClosure),
    /// A proxy did not give us a tunnel to the server. Boxed: the proxy's
    /// error names the proxy and the target, and unboxed it would make every
    /// `Result` on the hot path (each decoded frame and message) 80 bytes
    /// instead of 48.
    Proxy(Box<crate::proxy::ProxyError>),
    /// A WebSocket over HTTP/2 could not be opened for a reason HTTP/1.1 has
    /// no word for: the server did not allow extended CONNECT, or HTTP/2
    /// itself failed (feature `http2`). A refusal with a status, and every
    /// other handshake failure, is an [`Error::Handshake`] as over HTTP/1.1.
    #[cfg(feature = "http2")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
    Http2(crate::h2::H2Error),
}

/// How a connection ended without a closing handshake; see
/// [`Error::AbnormalClosure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbnormalClosure {
    /// The peer closed the transport (EOF) without sending a Close frame.
    PeerEof,
    /// The peer did not answer our Close frame within
    /// [`Config::close_timeout`](crate::Config::close_timeout), or the transport
    /// did not take our last bytes within it.
    CloseTimeout,
}

impl AbnormalClosure {
    /// 1006, the code RFC 6455 §7.1.5 gives a connection closed this way.
    pub fn close_code(&self) -> CloseCode {
        CloseCode::ABNORMAL
    }
}

impl fmt::Display for AbnormalClosure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbnormalClosure::PeerEof => {
                f.write_str("the peer closed the connection without a close frame")
            }
            AbnormalClosure::CloseTimeout => {
                f.write_str("the closing handshake did not complete within the close timeout")
            }
        }
    }
}

impl Error {
    /// The close code this error fails the connection with, if it is one the peer
    /// caused. An [`Error::AbnormalClosure`] sends none: its 1006 is only ever
    /// reported locally ([`AbnormalClosure::close_code`]).
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Error::Protocol(e) => Some(e.close_code()),
            Error::Capacity(_) => Some(CloseCode::MESSAGE_TOO_BIG),
            Error::IdleTimeout => Some(CloseCode::GOING_AWAY),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Capacity(e) => write!(f, "limit exceeded: {e}"),
            Error::Handshake(e) => write!(f, "handshake failed: {e}"),
            Error::Usage(e) => write!(f, "not sendable: {e}"),
            Error::Closed => f.write_str("the WebSocket connection is closed"),
            Error::IdleTimeout => f.write_str("no frame arrived within the idle timeout"),
            Error::AbnormalClosure(e) => write!(f, "abnormal closure (1006): {e}"),
            Error::Proxy(e) => write!(f, "proxy: {e}"),
            #[cfg(feature = "http2")]
            Error::Http2(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Capacity(e) => Some(e),
            Error::Handshake(e) => Some(e),
            Error::Usage(e) => Some(e),
            // The error itself, not its box: callers downcast to `ProxyError`.
            Error::Proxy(e) => Some(&**e),
            #[cfg(feature = "http2")]
            Error::Http2(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::proxy::ProxyError> for Error {
    fn from(e: crate::proxy::ProxyError) -> Self {
        Error::Proxy(Box::new(e))
    }
}

/// A handshake failure stays an [`Error::Handshake`] (so a 401 or a redirect
/// matches the same way over HTTP/1.1 and HTTP/2); the rest is
/// [`Error::Http2`].
#[cfg(feature = "http2")]
impl From<crate::h2::H2Error> for Error {
    fn from(e: crate::h2::H2Error) -> Self {
        match e {
            crate::h2::H2Error::Handshake(e) => Error::Handshake(e),
            e => Error::Http2(e),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<CapacityError> for Error {
    fn from(e: CapacityError) -> Self {
        Error::Capacity(e)
    }
}

impl From<UsageError> for Error {
    fn from(e: UsageError) -> Self {
        Error::Usage(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Error::Handshake(e)
    }
}

/// A violation of RFC 6455 by the peer. (What the caller may not send is a
/// [`UsageError`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An RSV bit is set but no extension that defines it was negotiated (§5.2).
    ReservedBitsSet,
    /// The opcode is one of the reserved values 3–7 or 11–15 (§5.2).
    ReservedOpCode(u8),
    /// A control frame carries more than 125 bytes (§5.5).
    ControlFrameTooLong,
    /// A control frame has FIN clear (§5.5: control frames MUST NOT be fragmented).
    FragmentedControlFrame,
    /// A 64-bit payload length has its most significant bit set (§5.2).
    InvalidPayloadLength,
    /// A client sent a frame without a mask (§5.1).
    UnmaskedFrameFromClient,
    /// A server sent a masked frame (§5.1).
    MaskedFrameFromServer,
    /// A continuation frame arrived with no fragmented message in progress (§5.4).
    UnexpectedContinuation,
    /// A new text or binary frame arrived while a fragmented message was still
    /// in progress (§5.4).
    ExpectedContinuation,
    /// A text message (or a close reason) is not valid UTF-8 (§8.1).
    InvalidUtf8,
    /// A close frame carries a one-byte payload (§5.5.1).
    InvalidClosePayload,
    /// A close frame carries a status code that may not be sent on the wire (§7.4).
    InvalidCloseCode(u16),
    /// A compressed message does not inflate (RFC 7692 §6.2).
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code the connection is failed with (§7.4.1): 1007 for invalid
    /// UTF-8 or compressed data that does not inflate, 1002 for everything else.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedBitsSet => f.write_str("RSV bit set with no extension"),
            ProtocolError::ReservedOpCode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::ControlFrameTooLong => {
                f.write_str("control frame payload longer than 125 bytes")
            }
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::InvalidPayloadLength => {
                f.write_str("64-bit payload length with the most significant bit set")
            }
            ProtocolError::UnmaskedFrameFromClient => f.write_str("unmasked frame from a client"),
            ProtocolError::MaskedFrameFromServer => f.write_str("masked frame from a server"),
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame with no message in progress")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new data frame while a fragmented message is in progress")
            }
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            ProtocolError::InvalidClosePayload => f.write_str("close frame with a 1-byte payload"),
            ProtocolError::InvalidCloseCode(c) => write!(f, "invalid close code {c}"),
            ProtocolError::InvalidCompressedData => f.write_str("compressed data does not inflate"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Something the caller asked to send that RFC 6455 forbids: refused before
/// any byte is written, so the connection is unharmed. h2 keeps its
/// `UserError` apart from peer errors the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// A Ping, Pong or Close payload over 125 bytes (§5.5), counting a Close's
    /// two code bytes.
    ControlFrameTooLong,
    /// A control frame with FIN clear (§5.5: control frames are never
    /// fragmented).
    FragmentedControlFrame,
    /// A close code that may not be sent (§7.4.1: 1005, 1006 and 1015 are
    /// only ever reported locally; 0-999 and 5000+ are not codes).
    UnsendableCloseCode(u16),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::ControlFrameTooLong => {
                f.write_str("control frame payload longer than 125 bytes")
            }
            UsageError::FragmentedControlFrame => f.write_str("control frame without FIN"),
            UsageError::UnsendableCloseCode(c) => write!(f, "close code {c} may not be sent"),
        }
    }
}

impl std::error::Error for UsageError {}

/// A configured limit was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CapacityError {
    /// A frame header declared a payload longer than `max_frame_size`.
    FrameTooLarge {
        /// The declared payload length.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A message (all its fragments together) would exceed `max_message_size`.
    MessageTooLarge {
        /// The size the message would reach.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapacityError::FrameTooLarge { size, limit } => {
                write!(f, "frame of {size} bytes exceeds the limit of {limit}")
            }
            CapacityError::MessageTooLarge { size, limit } => {
                write!(f, "message of {size} bytes exceeds the limit of {limit}")
            }
        }
    }
}

impl std::error::Error for CapacityError {}

/// Why an opening handshake (RFC 6455 §4) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The request or response is not valid HTTP/1.1.
    Malformed(String),
    /// The request's head exceeded `max_header_bytes`.
    HeaderTooLarge,
    /// The request had more than `max_headers` header lines.
    TooManyHeaders,
    /// The request method is not GET.
    MethodNotAllowed,
    /// The HTTP version is older than 1.1.
    UnsupportedHttpVersion,
    /// A required header is missing or has the wrong value; names the header.
    MissingOrInvalidHeader(&'static str),
    /// `Sec-WebSocket-Version` is not 13.
    UnsupportedVersion,
    /// The server's accept callback rejected the request with this status.
    Rejected(u16),
    /// The server's accept callback chose a subprotocol the client did not offer.
    SubprotocolNotOffered,
    /// The server's own answer is not valid (a subprotocol that is not a
    /// token, a header that is not valid HTTP): a mistake of the caller's,
    /// answered with 500.
    InvalidAnswer(&'static str),
    /// The server answered with a status other than 101. The response is kept:
    /// status, headers (`WWW-Authenticate`, `Location`, ...) and the first
    /// [`Limits::max_response_body`](crate::Limits::max_response_body) bytes of
    /// its body ([`Response::body`](crate::handshake::Response::body)).
    ///
    /// ```
    /// # fn show(err: wscodec::HandshakeError) {
    /// if let wscodec::HandshakeError::UnexpectedStatus(response) = &err {
    ///     if response.status() == 401 {
    ///         let challenge = response.headers().get("www-authenticate");
    ///         let body = String::from_utf8_lossy(response.body());
    ///         eprintln!("refused: {challenge:?} {body}");
    ///     }
    /// }
    /// # }
    /// ```
    UnexpectedStatus(Box<crate::handshake::Response>),
    /// A `wss://` URI over a transport not marked secure
    /// ([`ClientRequest::secure_transport`](crate::ClientRequest::secure_transport)):
    /// `connect` and `connect_with` do no TLS themselves, and refuse to send a
    /// `wss://` request in plaintext.
    TlsRequired,
    /// A `wss://` URI given to [`connect_url`](crate::connect_url) or a
    /// `client::Connector` in a build without the `rustls` feature.
    TlsUnavailable,
    /// More redirects than the connector follows
    /// (`client::Connector::max_redirects`): `hops` were followed, and `last`
    /// is the redirect that would have been one too many.
    TooManyRedirects {
        /// How many redirects were followed before giving up.
        hops: usize,
        /// The last redirect response received.
        last: Box<crate::handshake::Response>,
    },
    /// A redirect from `wss://` to `ws://` (or `http://`): refused, it would
    /// downgrade the connection to plaintext. Holds the `Location`.
    InsecureRedirect(String),
    /// The server's `Sec-WebSocket-Accept` does not match our key.
    InvalidAccept,
    /// The server selected a subprotocol or extension that the client did not offer.
    UnexpectedNegotiation(&'static str),
    /// The URI is not a valid `ws://` or `wss://` URI.
    InvalidUri(String),
    /// The peer closed the connection before the handshake completed.
    ConnectionClosed,
    /// The handshake did not complete within the configured timeout.
    Timeout,
}

impl HandshakeError {
    /// The HTTP status of this failure: for a server, the status it answers
    /// with (a request that is not valid HTTP gets 400); for a client, the
    /// non-101 status it received. `None` where no status describes it: a
    /// 101 that failed our checks, a timeout, a closed connection, a bad URI.
    pub fn status(&self) -> Option<u16> {
        match self {
            HandshakeError::Malformed(_) => Some(400),
            HandshakeError::HeaderTooLarge | HandshakeError::TooManyHeaders => Some(431),
            HandshakeError::MethodNotAllowed => Some(405),
            HandshakeError::UnsupportedHttpVersion => Some(505),
            HandshakeError::MissingOrInvalidHeader(_) => Some(400),
            HandshakeError::UnsupportedVersion => Some(426),
            HandshakeError::Rejected(status) => Some(*status),
            HandshakeError::SubprotocolNotOffered | HandshakeError::InvalidAnswer(_) => Some(500),
            HandshakeError::UnexpectedStatus(response) => Some(response.status()),
            HandshakeError::TooManyRedirects { last, .. } => Some(last.status()),
            HandshakeError::InvalidAccept
            | HandshakeError::TlsRequired
            | HandshakeError::TlsUnavailable
            | HandshakeError::InsecureRedirect(_)
            | HandshakeError::UnexpectedNegotiation(_)
            | HandshakeError::InvalidUri(_)
            | HandshakeError::ConnectionClosed
            | HandshakeError::Timeout => None,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Malformed(why) => write!(f, "malformed HTTP: {why}"),
            HandshakeError::HeaderTooLarge => f.write_str("request header too large"),
            HandshakeError::TooManyHeaders => f.write_str("too many header lines"),
            HandshakeError::MethodNotAllowed => f.write_str("method is not GET"),
            HandshakeError::UnsupportedHttpVersion => f.write_str("HTTP version below 1.1"),
            HandshakeError::MissingOrInvalidHeader(h) => write!(f, "missing or invalid {h}"),
            HandshakeError::UnsupportedVersion => f.write_str("Sec-WebSocket-Version is not 13"),
            HandshakeError::Rejected(s) => write!(f, "rejected by the server with status {s}"),
            HandshakeError::SubprotocolNotOffered => {
                f.write_str("selected a subprotocol the client did not offer")
            }
            HandshakeError::InvalidAnswer(why) => write!(f, "invalid answer: {why}"),
            HandshakeError::UnexpectedStatus(r) => {
                write!(f, "server answered status {}", r.status())
            }
            HandshakeError::TlsRequired => f.write_str(
                "wss:// over a transport not marked secure (TLS is the caller's business; \
                 see ClientRequest::secure_transport)",
            ),
            HandshakeError::TlsUnavailable => {
                f.write_str("wss:// needs TLS: build wscodec with the `rustls` feature")
            }
            HandshakeError::TooManyRedirects { hops, last } => write!(
                f,
                "gave up after {hops} redirects (the next, status {}, to {:?})",
                last.status(),
                last.headers().get("location").unwrap_or_default()
            ),
            HandshakeError::InsecureRedirect(location) => {
                write!(f, "refused a redirect from wss:// to plaintext {location}")
            }
            HandshakeError::InvalidAccept => f.write_str("wrong Sec-WebSocket-Accept"),
            HandshakeError::UnexpectedNegotiation(h) => write!(f, "{h} that was not offered"),
            HandshakeError::InvalidUri(why) => write!(f, "invalid URI: {why}"),
            HandshakeError::ConnectionClosed => f.write_str("connection closed during handshake"),
            HandshakeError::Timeout => f.write_str("handshake timed out"),
        }
    }
}

impl std::error::Error for HandshakeError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::ProxyError;
    use crate::Message;
    use std::time::Duration;

    /// Every decoded frame and message comes back in a `Result` with this
    /// error; a large variant makes each of them that large, and their moves
    /// showed in the decode benchmark (16-byte frames 12-22% slower when a
    /// proxy error made `Error` 80 bytes). Box what would grow it.
    #[test]
    fn error_stays_small_so_a_decoded_message_result_is_no_larger_than_a_message() {
        assert!(std::mem::size_of::<Error>() <= 40);
        assert_eq!(
            std::mem::size_of::<Result<Option<Message>, Error>>(),
            std::mem::size_of::<Message>()
        );
    }

    #[test]
    fn boxed_proxy_error_is_its_source_so_it_downcasts() {
        let error = Error::from(ProxyError::Timeout {
            proxy: "http://proxy:3128".into(),
            after: Duration::from_secs(1),
        });
        let source = std::error::Error::source(&error).expect("a source");
        assert!(matches!(
            source.downcast_ref::<ProxyError>(),
            Some(ProxyError::Timeout { .. })
        ));
    }
}
