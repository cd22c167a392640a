//! The opening handshake (RFC 6455 §4), sans-IO, with thin async drivers.
//!
//! The pure half parses and validates HTTP heads with `httparse`, computes
//! `Sec-WebSocket-Accept` and writes replies into a buffer; it never touches a
//! socket, so it serves any transport and the fuzzers drive it directly. The async
//! half ([`accept`], [`accept_with`], [`connect`], [`connect_with`]) reads and writes
//! the head over an `AsyncRead + AsyncWrite` and hands any bytes that arrived
//! behind it to the [`WebSocket`].
//!
//! A head is parsed once: incoming bytes are scanned for the blank line that ends
//! it, each byte once, and only then handed to `httparse`, so a head dribbled one
//! byte at a time costs linear time (tungstenite's CVE-2023-43669 was quadratic
//! re-parsing). Its size and header count are bounded by [`Limits`].

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::{Config, Limits, Role};
use crate::error::{Error, HandshakeError};
use crate::websocket::WebSocket;

/// The GUID every server appends to the client's key (§1.3).
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (§4.2.2, step 5.4).
///
/// ```
/// // The example of RFC 6455 §1.3.
/// assert_eq!(
///     wscodec::handshake::derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn derive_accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID);
    BASE64.encode(sha1.finalize())
}

/// Finds the end of an HTTP head in a growing buffer, looking at each byte once.
#[derive(Debug, Default, Clone)]
pub struct HeadScanner {
    scanned: usize,
}

impl HeadScanner {
    /// A scanner at the start of a head.
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks at the bytes of `buf` not seen before. Returns the length of the head
    /// (through its blank line) once `buf` holds all of it; fails with
    /// [`HandshakeError::HeaderTooLarge`] once it exceeds `max_bytes`.
    pub fn scan(&mut self, buf: &[u8], max_bytes: usize) -> Result<Option<usize>, HandshakeError> {
        // A blank line is "\n\n" or "\n\r\n" (httparse takes bare LF too). Back
        // up two bytes so a terminator split across calls is still found.
        let from = self.scanned.saturating_sub(2);
        let end = buf[from..]
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| from + i)
            .find(|&i| {
                i >= 1
                    && (buf[i - 1] == b'\n'
                        || (i >= 2 && buf[i - 1] == b'\r' && buf[i - 2] == b'\n'))
            })
            .map(|i| i + 1);
        self.scanned = buf.len();
        match end {
            Some(end) if end <= max_bytes => Ok(Some(end)),
            Some(_) => Err(HandshakeError::HeaderTooLarge),
            None if buf.len() > max_bytes => Err(HandshakeError::HeaderTooLarge),
            None => Ok(None),
        }
    }
}

/// Header names and values, as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, Bytes)>);

impl Headers {
    fn from_httparse(headers: &[httparse::Header<'_>]) -> Self {
        Headers(
            headers
                .iter()
                .map(|h| (h.name.to_owned(), Bytes::copy_from_slice(h.value)))
                .collect(),
        )
    }

    /// The first value of header `name` (case-insensitive), if it is UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Every value of header `name` (case-insensitive) that is UTF-8, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Whether any value of header `name` is a comma-separated list containing
    /// `token` (both case-insensitive), as `Connection: keep-alive, Upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Every header as (name, raw value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(n, v)| (n.as_str(), &v[..]))
    }

    /// How many header lines there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An HTTP request as the server received it: what an accept callback inspects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    target: String,
    http_minor: u8,
    headers: Headers,
}

impl Request {
    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target as sent: path and query, e.g. `/chat?room=1`.
    pub fn uri(&self) -> &str {
        &self.target
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The subprotocols the client offered in `Sec-WebSocket-Protocol`, in its
    /// order of preference.
    pub fn subprotocols(&self) -> impl Iterator<Item = &str> {
        self.headers
            .get_all("sec-websocket-protocol")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
    }

    /// Parses a request head from the front of `buf`, which must hold all of it
    /// (see [`HeadScanner`]). Returns the request and the head's length.
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<(Request, usize), HandshakeError> {
        let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut req = httparse::Request::new(&mut headers);
        let len = match req.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                return Err(HandshakeError::Malformed("incomplete request head".into()))
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
            Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
        };
        let request = Request {
            method: req.method.unwrap_or_default().to_owned(),
            target: req.path.unwrap_or_default().to_owned(),
            http_minor: req.version.unwrap_or(0),
            headers: Headers::from_httparse(req.headers),
        };
        Ok((request, len))
    }

    /// A request from its parts, for conversions from other HTTP types.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn from_raw_parts(
        method: String,
        target: String,
        http_minor: u8,
        headers: Vec<(String, Bytes)>,
    ) -> Request {
        Request {
            method,
            target,
            http_minor,
            headers: Headers(headers),
        }
    }

    /// Checks the rules of §4.2.1 and returns the client's key.
    pub fn validate(&self) -> Result<&str, HandshakeError> {
        if self.method != "GET" {
            return Err(HandshakeError::MethodNotAllowed);
        }
        if self.http_minor < 1 {
            return Err(HandshakeError::UnsupportedHttpVersion);
        }
        if self.header("host").is_none() {
            return Err(HandshakeError::MissingOrInvalidHeader("Host"));
        }
        if !self.headers.has_token("upgrade", "websocket") {
            return Err(HandshakeError::MissingOrInvalidHeader("Upgrade"));
        }
        if !self.headers.has_token("connection", "upgrade") {
            return Err(HandshakeError::MissingOrInvalidHeader("Connection"));
        }
        if self.header("sec-websocket-version").map(str::trim) != Some("13") {
            return Err(HandshakeError::UnsupportedVersion);
        }
        let mut keys = self.headers.get_all("sec-websocket-key");
        let key = match (keys.next(), keys.next()) {
            (Some(key), None) => key.trim(),
            _ => return Err(HandshakeError::MissingOrInvalidHeader("Sec-WebSocket-Key")),
        };
        match BASE64.decode(key) {
            Ok(nonce) if nonce.len() == 16 => Ok(key),
            _ => Err(HandshakeError::MissingOrInvalidHeader("Sec-WebSocket-Key")),
        }
    }
}

/// An RFC 9110 §5.6.2 token: header names and subprotocol names (§4.1 of RFC
/// 6455 requires each `Sec-WebSocket-Protocol` element to be one).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn valid_header(name: &str, value: &str) -> bool {
    is_token(name)
        // RFC 9110 §5.5: field values are visible characters, spaces, tabs and
        // obs-text; any other control character makes a head peers refuse.
        && value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}

/// The server's decision to accept: a subprotocol and extra response headers.
///
/// ```
/// use wscodec::handshake::Accept;
/// let accept = Accept::new().subprotocol("chat.v2").header("X-Server", "demo");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Accept {
    subprotocol: Option<String>,
    headers: Vec<(String, String)>,
}

impl Accept {
    /// Accept with no subprotocol and no extra headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Select `protocol`, which must be one the client offered.
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.subprotocol = Some(protocol.into());
        self
    }

    /// Add a response header (e.g. `Set-Cookie`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The subprotocol selected, if any.
    pub fn selected_subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// The extra response headers, in order.
    pub fn extra_headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// Writes the `101 Switching Protocols` response for `request` (already
    /// validated) into `dst`. Fails, writing nothing, if the subprotocol was not
    /// offered or a header is not valid HTTP.
    pub fn write_response(
        &self,
        request: &Request,
        dst: &mut BytesMut,
    ) -> Result<(), HandshakeError> {
        let key = request.validate()?;
        if let Some(p) = &self.subprotocol {
            if !is_token(p) {
                return Err(HandshakeError::Malformed(
                    "subprotocol is not a token".into(),
                ));
            }
            if !request.subprotocols().any(|offered| offered == p) {
                return Err(HandshakeError::SubprotocolNotOffered);
            }
        }
        if !self.headers.iter().all(|(n, v)| valid_header(n, v)) {
            return Err(HandshakeError::Malformed("invalid response header".into()));
        }
        dst.put_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
        dst.put_slice(derive_accept_key(key.as_bytes()).as_bytes());
        dst.put_slice(b"\r\n");
        if let Some(p) = &self.subprotocol {
            put_header(dst, "Sec-WebSocket-Protocol", p);
        }
        for (n, v) in &self.headers {
            put_header(dst, n, v);
        }
        dst.put_slice(b"\r\n");
        Ok(())
    }
}

fn put_header(dst: &mut BytesMut, name: &str, value: &str) {
    dst.put_slice(name.as_bytes());
    dst.put_slice(b": ");
    dst.put_slice(value.as_bytes());
    dst.put_slice(b"\r\n");
}

/// The server's decision to refuse: an HTTP status, headers and a body.
///
/// ```
/// use wscodec::handshake::Reject;
/// let reject = Reject::new(403).body("origin not allowed");
/// assert_eq!(reject.status(), 403);
/// ```
#[derive(Debug, Clone)]
pub struct Reject {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Reject {
    /// Refuse with `status` (e.g. 401, 403, 404); an invalid status (outside
    /// 400–599) is sent as 500.
    pub fn new(status: u16) -> Self {
        Reject {
            status: if (400..=599).contains(&status) {
                status
            } else {
                500
            },
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Add a response header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the body (sent as `text/plain; charset=utf-8`).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The extra response headers, in order.
    pub fn extra_headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body.
    pub fn body_bytes(&self) -> &Bytes {
        &self.body
    }

    /// The response for a handshake that failed with `error`: its status, its
    /// message as the body, and `Sec-WebSocket-Version: 13` for a 426 (§4.4).
    pub fn from_error(error: &HandshakeError) -> Self {
        let reject = Reject::new(error.status()).body(error.to_string());
        match error {
            HandshakeError::UnsupportedVersion => reject.header("Sec-WebSocket-Version", "13"),
            HandshakeError::MethodNotAllowed => reject.header("Allow", "GET"),
            _ => reject,
        }
    }

    /// Writes the response into `dst`; headers that are not valid HTTP are left
    /// out.
    pub fn write_response(&self, dst: &mut BytesMut) {
        dst.put_slice(b"HTTP/1.1 ");
        dst.put_slice(self.status.to_string().as_bytes());
        dst.put_slice(b" ");
        dst.put_slice(reason_phrase(self.status).as_bytes());
        dst.put_slice(
            b"\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ",
        );
        dst.put_slice(self.body.len().to_string().as_bytes());
        dst.put_slice(b"\r\n");
        for (n, v) in self.headers.iter().filter(|(n, v)| valid_header(n, v)) {
            put_header(dst, n, v);
        }
        dst.put_slice(b"\r\n");
        dst.put_slice(&self.body);
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// A client's handshake request: URI, Origin, subprotocols and extra headers.
///
/// ```
/// use wscodec::handshake::ClientRequest;
/// let request = ClientRequest::new("ws://example.com:8080/chat?x=1")?
///     .origin("https://example.com")
///     .subprotocol("chat.v2")
///     .header("Authorization", "Bearer t0ken");
/// assert_eq!(request.host(), "example.com:8080");
/// assert_eq!(request.path(), "/chat?x=1");
/// # Ok::<(), wscodec::HandshakeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// A `Sec-WebSocket-Extensions` offer `connect_with` adds from its config.
    extensions: Option<String>,
    secure: bool,
    host: String,
    path: String,
    origin: Option<String>,
    subprotocols: Vec<String>,
    headers: Vec<(String, String)>,
}

impl ClientRequest {
    /// A request for `uri`, which is `ws://` or `wss://` (the scheme only decides
    /// the default port; TLS, if any, is the transport's business).
    pub fn new(uri: &str) -> Result<Self, HandshakeError> {
        let invalid = |why: &str| HandshakeError::InvalidUri(format!("{why}: {uri}"));
        let (scheme, rest) = uri.split_once("://").ok_or_else(|| invalid("no scheme"))?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            _ => return Err(invalid("scheme is not ws or wss")),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        // Credentials in the URI are not sent: there is no header for them here.
        let host = authority.rsplit('@').next().unwrap_or_default();
        if host.is_empty() || !valid_header("Host", host) || host.contains(char::is_whitespace) {
            return Err(invalid("no host"));
        }
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(invalid("path has spaces or control characters"));
        }
        Ok(ClientRequest {
            extensions: None,
            secure,
            host: host.to_owned(),
            path,
            origin: None,
            subprotocols: Vec::new(),
            headers: Vec::new(),
        })
    }

    /// Sends `Origin` (browsers always do; servers may check it).
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Offers a subprotocol; call again to offer more, most preferred first.
    /// Each must be an HTTP token (no spaces, commas or separators, §4.1), or
    /// [`write`](Self::write) fails.
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.subprotocols.push(protocol.into());
        self
    }

    /// Adds a request header (e.g. `Authorization`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The `Host` header: the URI's authority.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The request target: path and query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the URI asked for TLS (`wss://`).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// `host:port` to open a TCP connection to, with the scheme's default port
    /// (80, or 443 for `wss`) when the URI names none.
    ///
    /// ```
    /// use wscodec::ClientRequest;
    /// assert_eq!(ClientRequest::new("wss://example.com/")?.connect_addr(), "example.com:443");
    /// assert_eq!(ClientRequest::new("ws://[::1]:9001/")?.connect_addr(), "[::1]:9001");
    /// # Ok::<(), wscodec::HandshakeError>(())
    /// ```
    pub fn connect_addr(&self) -> String {
        let has_port = match self.host.rfind(']') {
            Some(bracket) => self.host[bracket..].contains(':'),
            None => self.host.contains(':'),
        };
        if has_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, if self.secure { 443 } else { 80 })
        }
    }

    /// Writes the request head with `key` (base64 of 16 random bytes) into `dst`.
    /// Fails if an extra header is not valid HTTP.
    pub fn write(&self, key: &str, dst: &mut BytesMut) -> Result<(), HandshakeError> {
        let extra_ok = self.headers.iter().all(|(n, v)| valid_header(n, v))
            && self
                .origin
                .as_deref()
                .is_none_or(|o| valid_header("Origin", o))
            && self.subprotocols.iter().all(|p| is_token(p));
        if !extra_ok {
            return Err(HandshakeError::Malformed("invalid request header".into()));
        }
        dst.put_slice(b"GET ");
        dst.put_slice(self.path.as_bytes());
        dst.put_slice(b" HTTP/1.1\r\n");
        put_header(dst, "Host", &self.host);
        dst.put_slice(
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
        );
        put_header(dst, "Sec-WebSocket-Key", key);
        if let Some(origin) = &self.origin {
            put_header(dst, "Origin", origin);
        }
        if !self.subprotocols.is_empty() {
            put_header(dst, "Sec-WebSocket-Protocol", &self.subprotocols.join(", "));
        }
        if let Some(offer) = &self.extensions {
            put_header(dst, "Sec-WebSocket-Extensions", offer);
        }
        for (n, v) in &self.headers {
            put_header(dst, n, v);
        }
        dst.put_slice(b"\r\n");
        Ok(())
    }

    /// Checks the server's response against §4.1 (status 101, `Upgrade`,
    /// `Connection`, `Sec-WebSocket-Accept` for `key`, no subprotocol or extension
    /// that was not offered).
    pub fn validate_response(&self, response: &Response, key: &str) -> Result<(), HandshakeError> {
        if response.status != 101 {
            return Err(HandshakeError::UnexpectedStatus(response.status));
        }
        if !response.headers.has_token("upgrade", "websocket") {
            return Err(HandshakeError::MissingOrInvalidHeader("Upgrade"));
        }
        if !response.headers.has_token("connection", "upgrade") {
            return Err(HandshakeError::MissingOrInvalidHeader("Connection"));
        }
        let expected = derive_accept_key(key.as_bytes());
        if response.headers.get("sec-websocket-accept").map(str::trim) != Some(expected.as_str()) {
            return Err(HandshakeError::InvalidAccept);
        }
        if let Some(p) = response.subprotocol() {
            if !self.subprotocols.iter().any(|offered| offered == p) {
                return Err(HandshakeError::UnexpectedNegotiation(
                    "Sec-WebSocket-Protocol",
                ));
            }
        }
        // §4.1: an extension we did not offer fails the connection; one we did
        // is checked by its own negotiation.
        if self.extensions.is_none() && response.headers.get("sec-websocket-extensions").is_some() {
            return Err(HandshakeError::UnexpectedNegotiation(
                "Sec-WebSocket-Extensions",
            ));
        }
        Ok(())
    }
}

/// A fresh `Sec-WebSocket-Key`: base64 of 16 random bytes (§4.1).
pub fn generate_key() -> String {
    BASE64.encode(rand::random::<[u8; 16]>())
}

/// The server's handshake response, as the client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Headers,
}

impl Response {
    /// The HTTP status (101 on success).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The subprotocol the server selected, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.headers.get("sec-websocket-protocol").map(str::trim)
    }

    /// Parses a response head from the front of `buf`, which must hold all of it.
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<(Response, usize), HandshakeError> {
        let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut resp = httparse::Response::new(&mut headers);
        let len = match resp.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                return Err(HandshakeError::Malformed("incomplete response head".into()))
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
            Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
        };
        let response = Response {
            status: resp.code.unwrap_or(0),
            headers: Headers::from_httparse(resp.headers),
        };
        Ok((response, len))
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.target)
    }
}

/// Reads an HTTP head from `io` into `buf`; returns its length. Bytes after the
/// head stay in `buf`.
async fn read_head<T: AsyncRead + Unpin>(
    io: &mut T,
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<usize, Error> {
    let mut scanner = HeadScanner::new();
    loop {
        if let Some(len) = scanner.scan(buf, limits.max_header_bytes)? {
            return Ok(len);
        }
        // Grow by small steps: never more than the head limit allows.
        buf.reserve(1024.min(limits.max_header_bytes + 1 - buf.len()).max(1));
        if io.read_buf(buf).await? == 0 {
            return Err(HandshakeError::ConnectionClosed.into());
        }
    }
}

async fn with_timeout<F, R>(timeout: Option<std::time::Duration>, fut: F) -> Result<R, Error>
where
    F: std::future::Future<Output = Result<R, Error>>,
{
    match timeout {
        Some(t) => tokio::time::timeout(t, fut)
            .await
            .unwrap_or(Err(HandshakeError::Timeout.into())),
        None => fut.await,
    }
}

/// Accepts a WebSocket connection on `io` with the default [`Config`], taking any
/// subprotocol offer as declined.
///
/// ```no_run
/// # async fn run() -> Result<(), wscodec::Error> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
/// let (tcp, _) = listener.accept().await?;
/// let ws = wscodec::accept(tcp).await?;
/// # Ok(()) }
/// ```
pub async fn accept<T>(io: T) -> Result<WebSocket<T>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    accept_with(io, Config::default(), |_: &Request| Ok(Accept::new())).await
}

/// Accepts a WebSocket connection on `io`. `callback` sees the validated request
/// (path, query, headers such as `Origin` or a token) and accepts it, possibly
/// choosing a subprotocol and adding headers, or rejects it with any status.
///
/// A request that breaks §4.2.1 is answered with 400 (426 with
/// `Sec-WebSocket-Version: 13` for another version, 405 for another method, 431
/// for an oversized head) and fails with [`Error::Handshake`].
///
/// ```no_run
/// use wscodec::handshake::{Accept, Reject, Request};
/// # async fn run(tcp: tokio::net::TcpStream) -> Result<(), wscodec::Error> {
/// let ws = wscodec::accept_with(tcp, wscodec::Config::default(), |req: &Request| {
///     if req.header("origin") != Some("https://example.com") {
///         return Err(Reject::new(403).body("forbidden origin"));
///     }
///     match req.subprotocols().find(|p| *p == "chat.v2") {
///         Some(p) => Ok(Accept::new().subprotocol(p)),
///         None => Ok(Accept::new()),
///     }
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn accept_with<T, F>(io: T, config: Config, callback: F) -> Result<WebSocket<T>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Request) -> Result<Accept, Reject>,
{
    // The handshake's state (request, buffers, timer) lives in a box that is
    // freed once it completes, instead of inline in the caller's future for
    // the connection's whole life: with the echo loop in a spawned task, that
    // was 1.7 KB of the 2.3 KB task per idle connection.
    Box::pin(accept_with_inner(io, config, callback)).await
}

async fn accept_with_inner<T, F>(
    mut io: T,
    config: Config,
    callback: F,
) -> Result<WebSocket<T>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Request) -> Result<Accept, Reject>,
{
    let read = read_request(&mut io, &config.limits);
    let (request, rest) = match with_timeout(config.handshake_timeout, read).await {
        Ok(read) => read,
        Err(Error::Handshake(e)) if e.status() >= 400 => {
            return refuse(io, &config, Reject::from_error(&e), e).await;
        }
        Err(e) => return Err(e),
    };
    if let Err(e) = request.validate() {
        return refuse(io, &config, Reject::from_error(&e), e).await;
    }
    match callback(&request) {
        Ok(accept) => accept_request_inner(io, &request, rest, config, accept).await,
        Err(reject) => {
            let status = reject.status;
            refuse(io, &config, reject, HandshakeError::Rejected(status)).await
        }
    }
}

/// Reads one HTTP request head from `io`: for servers that route plain HTTP
/// and WebSocket upgrades themselves. Returns the request, not yet validated
/// as an upgrade, and the bytes that came after its head (the start of the
/// WebSocket stream, or a request body): pass both to [`accept_request`].
///
/// The head is bounded by `limits` (`max_header_bytes`, `max_headers`); an
/// error with a status of 400 or more ([`HandshakeError::status`]) deserves
/// that response, e.g. via [`Reject::from_error`]. Apply your own timeout.
///
/// ```no_run
/// use wscodec::handshake::{accept_request, read_request, Accept};
/// # async fn run(mut tcp: tokio::net::TcpStream) -> Result<(), wscodec::Error> {
/// let config = wscodec::Config::default();
/// let (request, rest) = read_request(&mut tcp, &config.limits).await?;
/// if request.path() == "/ws" {
///     let ws = accept_request(tcp, &request, rest, config, Accept::new()).await?;
/// } else {
///     // serve plain HTTP on `tcp`
/// }
/// # Ok(()) }
/// ```
pub async fn read_request<T: AsyncRead + Unpin>(
    io: &mut T,
    limits: &Limits,
) -> Result<(Request, BytesMut), Error> {
    let mut buf = BytesMut::new();
    let len = read_head(io, &mut buf, limits).await?;
    let (request, _) = Request::parse(&buf[..len], limits)?;
    let _ = buf.split_to(len);
    Ok((request, buf))
}

/// Completes the server side of a handshake for a request read with
/// [`read_request`]: validates it (§4.2.1), negotiates the extensions `config`
/// enables, writes the `101` response with `accept`'s subprotocol and headers,
/// and returns the WebSocket, which starts with the already-read bytes `rest`.
///
/// A request that is not a valid upgrade is answered with its error status, as
/// [`accept_with`] does; writing the response is bounded by the handshake
/// timeout.
pub async fn accept_request<T>(
    io: T,
    request: &Request,
    rest: BytesMut,
    config: Config,
    accept: Accept,
) -> Result<WebSocket<T>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    // Boxed for the reason given in accept_with.
    Box::pin(accept_request_inner(io, request, rest, config, accept)).await
}

async fn accept_request_inner<T>(
    io: T,
    request: &Request,
    rest: BytesMut,
    config: Config,
    accept: Accept,
) -> Result<WebSocket<T>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(e) = request.validate() {
        return refuse(io, &config, Reject::from_error(&e), e).await;
    }
    #[cfg(feature = "deflate")]
    let (accept, deflate) = match config
        .deflate
        .as_ref()
        .and_then(|d| d.negotiate_server(request.headers().get_all("sec-websocket-extensions")))
    {
        Some((params, response)) => (
            accept.header("Sec-WebSocket-Extensions", response),
            Some(params),
        ),
        None => (accept, None),
    };
    let mut out = BytesMut::new();
    if let Err(e) = accept.write_response(request, &mut out) {
        // Our own mistake (a subprotocol not offered, a bad header): the
        // client still deserves an answer.
        return refuse(io, &config, Reject::new(500), e).await;
    }
    let mut io = io;
    let write = async {
        io.write_all(&out).await?;
        io.flush().await?;
        Ok(())
    };
    with_timeout(config.handshake_timeout, write).await?;
    #[allow(unused_mut)]
    let mut ws = WebSocket::from_parts(io, Role::Server, config, rest);
    #[cfg(feature = "deflate")]
    if let Some(params) = &deflate {
        ws.set_deflate(params);
    }
    Ok(ws)
}

/// Answers a refused handshake with `reject` (best effort: the peer may be
/// gone) and fails with `error`.
async fn refuse<T, W>(
    mut io: T,
    config: &Config,
    reject: Reject,
    error: HandshakeError,
) -> Result<W, Error>
where
    T: AsyncWrite + Unpin,
{
    let mut out = BytesMut::new();
    reject.write_response(&mut out);
    let write = async {
        io.write_all(&out).await?;
        io.flush().await?;
        io.shutdown().await?;
        Ok(())
    };
    let _ = with_timeout(config.handshake_timeout, write).await;
    Err(error.into())
}

/// Connects as a client over `io` (already connected to the server) with the
/// default [`Config`].
///
/// ```no_run
/// # async fn run() -> Result<(), wscodec::Error> {
/// let tcp = tokio::net::TcpStream::connect("127.0.0.1:9001").await?;
/// let (ws, response) = wscodec::connect(tcp, "ws://127.0.0.1:9001/").await?;
/// # Ok(()) }
/// ```
pub async fn connect<T>(io: T, uri: &str) -> Result<(WebSocket<T>, Response), Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    connect_with(io, ClientRequest::new(uri)?, Config::default()).await
}

/// Connects as a client over `io` with a [`ClientRequest`] and [`Config`].
pub async fn connect_with<T>(
    io: T,
    request: ClientRequest,
    config: Config,
) -> Result<(WebSocket<T>, Response), Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    // Boxed for the reason given in accept_with.
    Box::pin(connect_with_inner(io, request, config)).await
}

async fn connect_with_inner<T>(
    mut io: T,
    request: ClientRequest,
    config: Config,
) -> Result<(WebSocket<T>, Response), Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    #[allow(unused_mut)]
    let mut request = request;
    #[cfg(feature = "deflate")]
    if let Some(deflate) = &config.deflate {
        request.extensions = Some(deflate.offer());
    }
    let key = generate_key();
    let mut out = BytesMut::new();
    request.write(&key, &mut out)?;
    let limits = config.limits.clone();
    let mut buf = BytesMut::new();
    let exchange = async {
        io.write_all(&out).await?;
        io.flush().await?;
        read_head(&mut io, &mut buf, &limits).await
    };
    let head_len = with_timeout(config.handshake_timeout, exchange).await?;
    let (response, _) = Response::parse(&buf[..head_len], &limits)?;
    request.validate_response(&response, &key)?;
    #[cfg(feature = "deflate")]
    let deflate = match (
        &config.deflate,
        response.headers().get("sec-websocket-extensions"),
    ) {
        (Some(ours), Some(answer)) => Some(ours.negotiate_client(answer)?),
        _ => None,
    };
    let _ = buf.split_to(head_len);
    #[allow(unused_mut)]
    let mut ws = WebSocket::from_parts(io, Role::Client, config, buf);
    #[cfg(feature = "deflate")]
    if let Some(params) = &deflate {
        ws.set_deflate(params);
    }
    Ok((ws, response))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &str = "GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn parse(req: &str) -> Request {
        let limits = Limits::default();
        let len = HeadScanner::new()
            .scan(req.as_bytes(), 1 << 20)
            .unwrap()
            .unwrap();
        Request::parse(&req.as_bytes()[..len], &limits).unwrap().0
    }

    fn with_header(name: &str, value: Option<&str>) -> String {
        let mut out = String::new();
        for line in REQUEST.split("\r\n").filter(|l| !l.is_empty()) {
            let is_it = line
                .split_once(':')
                .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name));
            if !is_it {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        if let Some(v) = value {
            out.push_str(&format!("{name}: {v}\r\n"));
        }
        out + "\r\n"
    }

    #[test]
    fn accepts_rfc_example_request() {
        let req = parse(REQUEST);
        assert_eq!(req.validate(), Ok("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.query(), Some("room=1"));
        assert_eq!(
            req.subprotocols().collect::<Vec<_>>(),
            ["chat", "superchat"]
        );
        let mut out = BytesMut::new();
        Accept::new()
            .subprotocol("chat")
            .write_response(&req, &mut out)
            .unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: chat\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn upgrade_and_connection_are_case_insensitive_tokens() {
        let req = with_header("Upgrade", Some("WebSocket"));
        let req = req.replace("keep-alive, Upgrade", "UPGRADE");
        assert!(parse(&req).validate().is_ok());
    }

    #[test]
    fn rejects_each_missing_or_wrong_header_with_its_status() {
        let cases = [
            (with_header("Host", None), 400),
            (with_header("Upgrade", None), 400),
            (with_header("Upgrade", Some("h2c")), 400),
            (with_header("Connection", Some("keep-alive")), 400),
            (with_header("Sec-WebSocket-Key", None), 400),
            (with_header("Sec-WebSocket-Key", Some("c2hvcnQ=")), 400),
            (with_header("Sec-WebSocket-Version", Some("8")), 426),
            (with_header("Sec-WebSocket-Version", None), 426),
            (REQUEST.replace("GET", "POST"), 405),
            (REQUEST.replace("HTTP/1.1", "HTTP/1.0"), 505),
        ];
        for (req, status) in cases {
            let err = parse(&req).validate().unwrap_err();
            assert_eq!(err.status(), status, "{err} for {req}");
        }
    }

    #[test]
    fn version_426_response_names_supported_version() {
        let mut out = BytesMut::new();
        Reject::from_error(&HandshakeError::UnsupportedVersion).write_response(&mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn refuses_subprotocol_not_offered() {
        let req = parse(REQUEST);
        let err = Accept::new()
            .subprotocol("other")
            .write_response(&req, &mut BytesMut::new())
            .unwrap_err();
        assert_eq!(err, HandshakeError::SubprotocolNotOffered);
    }

    #[test]
    fn refuses_selecting_a_subprotocol_that_is_not_a_token() {
        // The offer itself is not a list of tokens; echoing an element of it
        // would still be a malformed response (RFC 6455 §4.1).
        let req = parse(&with_header("Sec-WebSocket-Protocol", Some("chat v2, ok")));
        let err = Accept::new()
            .subprotocol("chat v2")
            .write_response(&req, &mut BytesMut::new())
            .unwrap_err();
        assert!(matches!(err, HandshakeError::Malformed(_)), "{err:?}");
        let mut out = BytesMut::new();
        Accept::new()
            .subprotocol("ok")
            .write_response(&req, &mut out)
            .unwrap();
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .contains("Sec-WebSocket-Protocol: ok\r\n"));
    }

    #[test]
    fn client_refuses_to_offer_a_subprotocol_that_is_not_a_token() {
        for bad in [" chat", "chat,v2", "chat v2", "", "chat\"v2"] {
            let request = ClientRequest::new("ws://example.com/")
                .unwrap()
                .subprotocol(bad);
            assert!(
                request
                    .write("dGhlIHNhbXBsZSBub25jZQ==", &mut BytesMut::new())
                    .is_err(),
                "{bad:?}"
            );
        }
        let request = ClientRequest::new("ws://example.com/")
            .unwrap()
            .subprotocol("chat.v2");
        request
            .write("dGhlIHNhbXBsZSBub25jZQ==", &mut BytesMut::new())
            .unwrap();
    }

    #[test]
    fn refuses_response_header_injection() {
        let req = parse(REQUEST);
        let err = Accept::new()
            .header("X", "a\r\nSet-Cookie: evil")
            .write_response(&req, &mut BytesMut::new());
        assert!(err.is_err());
    }

    #[test]
    fn scanner_finds_head_end_fed_one_byte_at_a_time() {
        let bytes = REQUEST.as_bytes();
        let mut scanner = HeadScanner::new();
        let mut found = None;
        for i in 1..=bytes.len() {
            if let Some(len) = scanner.scan(&bytes[..i], 1 << 20).unwrap() {
                found = Some((i, len));
                break;
            }
        }
        assert_eq!(found, Some((bytes.len(), bytes.len())));
    }

    #[test]
    fn scanner_accepts_bare_lf_line_endings() {
        let req = "GET / HTTP/1.1\nHost: a\n\nrest";
        assert_eq!(
            HeadScanner::new().scan(req.as_bytes(), 100),
            Ok(Some(req.len() - 4))
        );
    }

    #[test]
    fn scanner_fails_past_the_byte_limit() {
        let mut scanner = HeadScanner::new();
        let junk = vec![b'a'; 101];
        assert_eq!(
            scanner.scan(&junk, 100),
            Err(HandshakeError::HeaderTooLarge)
        );
        assert_eq!(
            HeadScanner::new().scan(REQUEST.as_bytes(), 50),
            Err(HandshakeError::HeaderTooLarge)
        );
    }

    #[test]
    fn too_many_headers_is_431() {
        let mut req = String::from("GET / HTTP/1.1\r\n");
        for i in 0..100 {
            req.push_str(&format!("X-{i}: y\r\n"));
        }
        req.push_str("\r\n");
        let err = Request::parse(req.as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(
            (err.clone(), err.status()),
            (HandshakeError::TooManyHeaders, 431)
        );
    }

    #[test]
    fn client_request_parses_uris() {
        let r = ClientRequest::new("ws://[::1]:9001").unwrap();
        assert_eq!((r.host(), r.path()), ("[::1]:9001", "/"));
        let r = ClientRequest::new("wss://user:pw@example.com?x").unwrap();
        assert_eq!((r.host(), r.path()), ("example.com", "/?x"));
        assert!(ClientRequest::new("example.com/x").is_err());
        assert!(ClientRequest::new("ftp://example.com/").is_err());
        assert!(ClientRequest::new("ws:///path").is_err());
        assert!(ClientRequest::new("ws://host/a b").is_err());
    }

    #[test]
    fn client_request_round_trips_through_server_validation() {
        let request = ClientRequest::new("ws://localhost:1/p?q")
            .unwrap()
            .origin("http://localhost")
            .subprotocol("a")
            .subprotocol("b");
        let key = generate_key();
        let mut out = BytesMut::new();
        request.write(&key, &mut out).unwrap();
        let (req, len) = Request::parse(&out, &Limits::default()).unwrap();
        assert_eq!(len, out.len());
        assert_eq!(req.validate(), Ok(key.as_str()));
        assert_eq!(req.subprotocols().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(req.header("origin"), Some("http://localhost"));

        let mut resp = BytesMut::new();
        Accept::new()
            .subprotocol("b")
            .write_response(&req, &mut resp)
            .unwrap();
        let (response, _) = Response::parse(&resp, &Limits::default()).unwrap();
        assert_eq!(request.validate_response(&response, &key), Ok(()));
        assert_eq!(response.subprotocol(), Some("b"));
        // The same response does not fit another key.
        assert_eq!(
            request.validate_response(&response, &generate_key()),
            Err(HandshakeError::InvalidAccept)
        );
    }

    #[test]
    fn client_fails_on_subprotocol_it_did_not_offer() {
        let request = ClientRequest::new("ws://h/").unwrap();
        let key = generate_key();
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
            derive_accept_key(key.as_bytes())
        );
        let (response, _) = Response::parse(resp.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(
            request.validate_response(&response, &key),
            Err(HandshakeError::UnexpectedNegotiation(
                "Sec-WebSocket-Protocol"
            ))
        );
    }

    #[test]
    fn client_fails_on_non_101_status() {
        let request = ClientRequest::new("ws://h/").unwrap();
        let (response, _) =
            Response::parse(b"HTTP/1.1 403 Forbidden\r\n\r\n", &Limits::default()).unwrap();
        let err = request.validate_response(&response, "k").unwrap_err();
        assert_eq!(
            (err.status(), err),
            (403, HandshakeError::UnexpectedStatus(403))
        );
    }
}
