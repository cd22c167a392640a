//! The server's side of the handshake (RFC 6455 §4.2): the [`Request`] as
//! received and its validation (§4.2.1), and the server's answer, [`Accept`]
//! or [`Reject`], written as HTTP/1.1. No I/O: `accept*` in the crate root
//! drive this over a transport.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};

use super::head::{is_token, put_header, valid_header, Headers};
use super::key::derive_accept_key;
use crate::config::{Config, Limits};
use crate::error::HandshakeError;
use crate::extension::Extensions;

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
    /// (see [`HeadScanner`](super::HeadScanner)). Returns the request and the head's length.
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

    /// Writes the `101 Switching Protocols` response for `request` into
    /// `dst`, with no extension. Fails, writing nothing, if the request breaks
    /// §4.2.1, the subprotocol was not offered or a header is not valid HTTP.
    /// [`Agreed::negotiate`] is the same with extensions.
    pub fn write_response(
        &self,
        request: &Request,
        dst: &mut BytesMut,
    ) -> Result<(), HandshakeError> {
        Agreed::negotiate(request, self.clone(), &Config::default())?.write_response(dst);
        Ok(())
    }
}

/// What the server agreed to: the outcome of the one negotiation every
/// answer is written from, the HTTP/1.1 bytes ([`Agreed::write_response`])
/// and the `http` crate's response (`to_http_response`, feature `http`)
/// alike, and what builds the connection
/// ([`WebSocket::from_agreed`](crate::WebSocket::from_agreed)).
///
/// ```
/// use wscodec::handshake::{Accept, Agreed, HeadScanner, Request};
/// let head = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
/// let (request, _) = Request::parse(head, &wscodec::Limits::default())?;
/// let agreed = Agreed::negotiate(&request, Accept::new().subprotocol("chat"), &wscodec::Config::default())?;
/// assert_eq!(agreed.subprotocol(), Some("chat"));
/// let mut response = bytes::BytesMut::new();
/// agreed.write_response(&mut response);
/// assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
/// # Ok::<(), wscodec::HandshakeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreed {
    accept_key: String,
    subprotocol: Option<String>,
    extensions: Extensions,
    extensions_header: Option<String>,
    headers: Vec<(String, String)>,
}

impl Agreed {
    /// Validates `request` (§4.2.1), checks the server's `accept` against it
    /// (a subprotocol the client offered, valid headers) and negotiates the
    /// extensions `config` enables.
    pub fn negotiate(
        request: &Request,
        accept: Accept,
        config: &Config,
    ) -> Result<Agreed, HandshakeError> {
        let key = request.validate()?;
        Self::for_validated(request, key, accept, config)
    }

    /// [`Agreed::negotiate`] for a request already validated, whose key is
    /// `key`.
    pub(crate) fn for_validated(
        request: &Request,
        key: &str,
        accept: Accept,
        config: &Config,
    ) -> Result<Agreed, HandshakeError> {
        if let Some(p) = &accept.subprotocol {
            if !is_token(p) {
                return Err(HandshakeError::InvalidAnswer("subprotocol is not a token"));
            }
            if !request.subprotocols().any(|offered| offered == p) {
                return Err(HandshakeError::SubprotocolNotOffered);
            }
        }
        if !accept.headers.iter().all(|(n, v)| valid_header(n, v)) {
            return Err(HandshakeError::InvalidAnswer("header is not valid HTTP"));
        }
        let offers = request.headers().get_all("sec-websocket-extensions");
        let (extensions, extensions_header) = Extensions::answer(config, offers);
        Ok(Agreed {
            accept_key: derive_accept_key(key.as_bytes()),
            subprotocol: accept.subprotocol,
            extensions,
            extensions_header,
            headers: accept.headers,
        })
    }

    /// The subprotocol selected, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// The extensions agreed, with their parameters.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// The headers of the `101` response after its status line, in order:
    /// the one list both serializers write, so they cannot disagree.
    pub fn response_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        let fixed = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", self.accept_key.as_str()),
        ];
        let negotiated = [
            ("Sec-WebSocket-Protocol", self.subprotocol.as_deref()),
            (
                "Sec-WebSocket-Extensions",
                self.extensions_header.as_deref(),
            ),
        ];
        fixed
            .into_iter()
            .chain(negotiated.into_iter().filter_map(|(n, v)| Some((n, v?))))
            .chain(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }

    /// Writes the `101 Switching Protocols` response into `dst`.
    pub fn write_response(&self, dst: &mut BytesMut) {
        dst.put_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
        for (name, value) in self.response_headers() {
            put_header(dst, name, value);
        }
        dst.put_slice(b"\r\n");
    }
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
    /// Refuse with `status`: an error (e.g. 401, 403, 404) or a redirect
    /// (301, 302, 307, 308 with a `Location` header; RFC 6455 §4.1 lets a
    /// client follow it). A status that would not be a refusal (1xx, 2xx) or
    /// is no status at all (outside 100–599) is sent as 500.
    ///
    /// ```
    /// use wscodec::handshake::Reject;
    /// assert_eq!(Reject::new(308).header("Location", "/v2/chat").status(), 308);
    /// assert_eq!(Reject::new(200).status(), 500);
    /// ```
    pub fn new(status: u16) -> Self {
        Reject {
            status: if (300..=599).contains(&status) {
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
        let reject = Reject::new(error.status().unwrap_or(500)).body(error.to_string());
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
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        300..=399 => "Redirect",
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

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.target)
    }
}
