//! The extended CONNECT of RFC 8441, sans-IO: what a server checks in the
//! request (§4, §5), the `200` it answers and the refusals. No I/O and no h2
//! type beyond `http`'s: any HTTP/2 server that hands over an
//! `http::Request` and the `:protocol` value can use it (h2, hyper).

use std::fmt;

use ::http::header::{HeaderMap, HeaderName, HeaderValue};
use ::http::{Method, StatusCode};
use bytes::Bytes;

use crate::config::{Config, Limits};
use crate::error::HandshakeError;
use crate::handshake::{Accept, Agreed, Reject, Request};

/// The `:protocol` value of a WebSocket (RFC 8441 §4).
pub const PROTOCOL: &str = "websocket";

/// Headers that are specific to one HTTP/1.1 connection and malformed in an
/// HTTP/2 message (RFC 9113 §8.2.2); `te` is allowed as `trailers` only.
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
];

/// Why an HTTP/2 request is not a valid WebSocket extended CONNECT; each has
/// the status a server answers with ([`RequestError::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The method is not CONNECT: over HTTP/2 a WebSocket is only ever an
    /// extended CONNECT (RFC 8441 §4). 405, with `Allow: CONNECT`.
    NotConnect,
    /// A CONNECT without `:protocol`: a plain tunnel request, which a
    /// WebSocket endpoint does not serve (RFC 8441 §4). 400.
    MissingProtocol,
    /// A `:protocol` other than `websocket`. 501, as RFC 9220 §3 words it for
    /// an unknown or unsupported protocol.
    UnknownProtocol(String),
    /// `:scheme` (`http` or `https`), `:authority` or `:path` is missing or
    /// invalid (RFC 8441 §4: an extended CONNECT carries all three). 400.
    MissingPseudoHeader(&'static str),
    /// `Sec-WebSocket-Version` is missing or not `13` (RFC 8441 §5, RFC 6455
    /// §4.4). 426, with `Sec-WebSocket-Version: 13`, as over HTTP/1.1.
    UnsupportedVersion,
    /// A header that has no place here: `Sec-WebSocket-Key` (RFC 8441 §5:
    /// the key and accept exchange is not used) or a connection-specific
    /// header such as `Upgrade` or `Connection` (RFC 9113 §8.2.2). 400.
    ForbiddenHeader(&'static str),
    /// More header fields than [`Limits::max_headers`]. 431.
    TooManyHeaders,
    /// Header fields larger than [`Limits::max_header_bytes`], counted as
    /// HTTP/2 counts them (name + value + 32 each, RFC 9113 §6.5.2). 431.
    HeaderTooLarge,
}

impl RequestError {
    /// The status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::NotConnect => 405,
            RequestError::MissingProtocol
            | RequestError::MissingPseudoHeader(_)
            | RequestError::ForbiddenHeader(_) => 400,
            RequestError::UnknownProtocol(_) => 501,
            RequestError::UnsupportedVersion => 426,
            RequestError::TooManyHeaders | RequestError::HeaderTooLarge => 431,
        }
    }

    /// The refusal to answer with: the status, the error as the body, and
    /// the header the status asks for (`Sec-WebSocket-Version: 13` on a 426,
    /// `Allow: CONNECT` on a 405).
    pub fn to_reject(&self) -> Reject {
        let reject = Reject::new(self.status()).body(self.to_string());
        match self {
            RequestError::UnsupportedVersion => reject.header("Sec-WebSocket-Version", "13"),
            RequestError::NotConnect => reject.header("Allow", "CONNECT"),
            _ => reject,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::NotConnect => f.write_str("method is not CONNECT"),
            RequestError::MissingProtocol => f.write_str("CONNECT without :protocol"),
            RequestError::UnknownProtocol(p) => write!(f, "unsupported :protocol {p:?}"),
            RequestError::MissingPseudoHeader(h) => write!(f, "missing or invalid {h}"),
            RequestError::UnsupportedVersion => f.write_str("Sec-WebSocket-Version is not 13"),
            RequestError::ForbiddenHeader(h) => write!(f, "{h} is not allowed over HTTP/2"),
            RequestError::TooManyHeaders => f.write_str("too many header fields"),
            RequestError::HeaderTooLarge => f.write_str("header fields too large"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Checks that `request`, whose `:protocol` is `protocol`, is a WebSocket
/// extended CONNECT (RFC 8441 §4–§5) within `limits`, and returns the crate's
/// view of it, which an accept callback inspects (path, query, headers,
/// offered subprotocols).
///
/// `protocol` is the value of the `h2::ext::Protocol` extension (h2's
/// server) or `hyper::ext::Protocol` (hyper's): pass
/// `ext.as_str()`; `None` when the request had no `:protocol`.
///
/// ```
/// let request = http::Request::connect("https://example.com/chat")
///     .header("sec-websocket-version", "13")
///     .header("sec-websocket-protocol", "chat")
///     .body(())
///     .unwrap();
/// let view = wscodec::h2::validate(&request, Some("websocket"), &wscodec::Limits::default())?;
/// assert_eq!(view.path(), "/chat");
/// assert_eq!(view.subprotocols().collect::<Vec<_>>(), ["chat"]);
/// let wrong = wscodec::h2::validate(&request, Some("webtransport"), &wscodec::Limits::default());
/// assert_eq!(wrong.unwrap_err().status(), 501);
/// # Ok::<(), wscodec::h2::RequestError>(())
/// ```
pub fn validate<B>(
    request: &::http::Request<B>,
    protocol: Option<&str>,
    limits: &Limits,
) -> Result<Request, RequestError> {
    check_limits(request.headers(), limits)?;
    if request.method() != Method::CONNECT {
        return Err(RequestError::NotConnect);
    }
    match protocol {
        None => return Err(RequestError::MissingProtocol),
        // RFC 8441 §4: :protocol names a protocol token, compared as sent;
        // the registered name is lower case.
        Some(p) if p != PROTOCOL => return Err(RequestError::UnknownProtocol(p.to_owned())),
        Some(_) => {}
    }
    let uri = request.uri();
    if uri.authority().is_none_or(|a| a.as_str().is_empty()) {
        return Err(RequestError::MissingPseudoHeader(":authority"));
    }
    // RFC 8441 §5: `http` for ws://, `https` for wss://.
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(RequestError::MissingPseudoHeader(":scheme"));
    }
    if uri.path_and_query().is_none_or(|pq| pq.path().is_empty()) {
        return Err(RequestError::MissingPseudoHeader(":path"));
    }
    let headers = request.headers();
    if headers.contains_key("sec-websocket-key") {
        return Err(RequestError::ForbiddenHeader("Sec-WebSocket-Key"));
    }
    for (name, shown) in CONNECTION_SPECIFIC.iter().zip([
        "Connection",
        "Upgrade",
        "Keep-Alive",
        "Proxy-Connection",
        "Transfer-Encoding",
    ]) {
        if headers.contains_key(*name) {
            return Err(RequestError::ForbiddenHeader(shown));
        }
    }
    if headers.get_all("te").iter().any(|v| v != "trailers") {
        return Err(RequestError::ForbiddenHeader("TE"));
    }
    let mut versions = headers.get_all("sec-websocket-version").iter();
    match (versions.next(), versions.next()) {
        (Some(v), None) if v.as_bytes().trim_ascii() == b"13" => {}
        _ => return Err(RequestError::UnsupportedVersion),
    }
    Ok(Request::from_http(request))
}

/// RFC 9113 §6.5.2 counts a field as its name, its value and 32 bytes.
fn check_limits(headers: &HeaderMap, limits: &Limits) -> Result<(), RequestError> {
    if headers.len() > limits.max_headers {
        return Err(RequestError::TooManyHeaders);
    }
    let size = headers.iter().fold(0usize, |sum, (n, v)| {
        sum.saturating_add(n.as_str().len() + v.len() + 32)
    });
    if size > limits.max_header_bytes {
        return Err(RequestError::HeaderTooLarge);
    }
    Ok(())
}

/// Negotiates the answer to a request [`validate`] accepted: `accept`'s
/// subprotocol (one the client offered) and headers, and the extensions
/// `config` enables, by the same code as over HTTP/1.1.
pub(crate) fn agree(
    view: &Request,
    accept: Accept,
    config: &Config,
) -> Result<Agreed, HandshakeError> {
    // There is no key over HTTP/2 (RFC 8441 §5): the accept key `Agreed`
    // derives from it is never written, since `response` leaves it out.
    Agreed::for_validated(view, "", accept, config)
}

/// [`validate`], then the negotiation of [`Agreed::negotiate`]: for a server
/// other than h2's (hyper's `enable_connect_protocol`, say), which answers
/// with [`response`], takes the upgraded stream itself and starts the
/// connection with [`WebSocket::from_agreed`](crate::WebSocket::from_agreed).
///
/// The `Agreed` is for that: its HTTP/1.1 serializations
/// ([`Agreed::write_response`], `to_http_response`) are not a valid answer
/// over HTTP/2.
///
/// ```
/// use wscodec::handshake::Accept;
/// let request = http::Request::connect("https://example.com/chat")
///     .header("sec-websocket-version", "13")
///     .header("sec-websocket-protocol", "a, b")
///     .body(())
///     .unwrap();
/// let config = wscodec::Config::default();
/// let agreed = wscodec::h2::negotiate(&request, Some("websocket"), Accept::new().subprotocol("b"), &config)?;
/// let response = wscodec::h2::response(&agreed);
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["sec-websocket-protocol"], "b");
/// assert!(!response.headers().contains_key("sec-websocket-accept"));
/// # Ok::<(), wscodec::h2::H2Error>(())
/// ```
pub fn negotiate<B>(
    request: &::http::Request<B>,
    protocol: Option<&str>,
    accept: Accept,
    config: &Config,
) -> Result<Agreed, super::H2Error> {
    let view = validate(request, protocol, &config.limits)?;
    Ok(agree(&view, accept, config)?)
}

/// The `200` that accepts an extended CONNECT (RFC 8441 §5): the negotiated
/// `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` and the accept's
/// extra headers; never `Sec-WebSocket-Accept`, `Upgrade` or `Connection`,
/// nor any other connection-specific header (RFC 9113 §8.2.2), which an
/// HTTP/2 message may not carry.
pub fn response(agreed: &Agreed) -> ::http::Response<()> {
    let mut response = ::http::Response::new(());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    for (name, value) in agreed.response_headers() {
        if name.eq_ignore_ascii_case("sec-websocket-accept") {
            continue;
        }
        append_h2_header(headers, name, value);
    }
    response
}

/// `reject` as an HTTP/2 response: [`Reject::to_http_response`] without the
/// connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2).
pub fn reject_response(reject: &Reject) -> ::http::Response<Bytes> {
    let mut response = reject.to_http_response();
    let headers = response.headers_mut();
    for name in CONNECTION_SPECIFIC {
        headers.remove(name);
    }
    if headers.get_all("te").iter().any(|v| v != "trailers") {
        headers.remove("te");
    }
    response
}

fn append_h2_header(headers: &mut HeaderMap, name: &str, value: &str) {
    let lower = name.to_ascii_lowercase();
    if CONNECTION_SPECIFIC.contains(&lower.as_str()) || (lower == "te" && value != "trailers") {
        return;
    }
    if let (Ok(n), Ok(v)) = (
        HeaderName::from_bytes(lower.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        headers.append(n, v);
    }
}
