//! The client's side of the handshake (RFC 6455 §4.1): the [`ClientRequest`]
//! it writes and the server's [`Response`] it checks. No I/O: `connect*` in
//! the crate root drive this over a transport.

use bytes::{BufMut, Bytes, BytesMut};

use super::head::{is_token, put_header, valid_header, Headers};
use super::key::derive_accept_key;
use crate::config::Limits;
use crate::error::HandshakeError;

/// A client's handshake request: URI, Origin, subprotocols and extra headers.
///
/// ```
/// use wscodec::handshake::ClientRequest;
/// let request = ClientRequest::new("ws://example.com:8080/chat?x=1")?
///     .origin("https://example.com")
///     .subprotocol("chat.v2")
///     .header("Authorization", "Bearer t0ken");
/// assert_eq!(request.host(), "example.com:8080");
/// assert_eq!((request.server_name(), request.port()), ("example.com", 8080));
/// assert_eq!(request.path(), "/chat?x=1");
/// # Ok::<(), wscodec::HandshakeError>(())
/// ```
///
/// # TLS
///
/// A `wss://` request says that the connection must be TLS, but
/// [`connect`](crate::connect) and [`connect_with`](crate::connect_with) do
/// no TLS: they speak over whatever transport they are given. So they refuse a
/// `wss://` request with [`HandshakeError::TlsRequired`] unless the caller
/// says that its transport is secure with
/// [`secure_transport`](Self::secure_transport). For TLS done for you, use
/// [`connect_url`](crate::connect_url) (feature `rustls`).
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// A `Sec-WebSocket-Extensions` offer `connect_with` adds from its config.
    pub(crate) extensions: Option<String>,
    secure: bool,
    /// The caller vouches that the transport is TLS (or otherwise secure).
    transport_secure: bool,
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
        // RFC 3986 §3.2.3: the port is digits, possibly none (then the
        // scheme's default applies).
        let (name, port) = split_host_port(host);
        let unbracketed_colon = !name.starts_with('[') && name.contains(':');
        if name.is_empty()
            || unbracketed_colon
            || port.is_some_and(|p| !p.is_empty() && p.parse::<u16>().is_err())
        {
            return Err(invalid("invalid host or port"));
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
            transport_secure: false,
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

    /// Adds a request header (e.g. `Authorization`). A `Host` header replaces
    /// the URI's authority as the `Host` sent (it is sent once, with this
    /// value), for a server reached by address or through a tunnel under
    /// another name.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Declares that the transport given to [`connect_with`](crate::connect_with)
    /// is secure (TLS done by the caller, or a trusted local socket), so that a
    /// `wss://` request may go over it. Without it such a request fails with
    /// [`HandshakeError::TlsRequired`] before a byte is written.
    ///
    /// ```no_run
    /// # async fn run(tls: tokio::net::TcpStream) -> Result<(), wscodec::Error> {
    /// // `tls`: a stream the caller wrapped in TLS, e.g. with tokio-rustls
    /// let request = wscodec::ClientRequest::new("wss://example.com/")?.secure_transport();
    /// let (ws, _) = wscodec::connect_with(tls, request, wscodec::Config::default()).await?;
    /// # Ok(()) }
    /// ```
    pub fn secure_transport(mut self) -> Self {
        self.transport_secure = true;
        self
    }

    /// Whether [`secure_transport`](Self::secure_transport) was called.
    pub fn is_transport_secure(&self) -> bool {
        self.transport_secure
    }

    /// The URI's authority (`host[:port]`), which is the `Host` header sent
    /// unless a `Host` header was added with [`header`](Self::header).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host without port and without an IPv6 literal's brackets: the name
    /// to resolve, and the name TLS checks the certificate against (SNI).
    ///
    /// ```
    /// use wscodec::ClientRequest;
    /// assert_eq!(ClientRequest::new("wss://[::1]:9443/")?.server_name(), "::1");
    /// assert_eq!(ClientRequest::new("wss://example.com/")?.server_name(), "example.com");
    /// # Ok::<(), wscodec::HandshakeError>(())
    /// ```
    pub fn server_name(&self) -> &str {
        let name = split_host_port(&self.host).0;
        name.strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name)
    }

    /// The port: the URI's, or the scheme's default (80, or 443 for `wss`).
    pub fn port(&self) -> u16 {
        match split_host_port(&self.host).1 {
            Some(p) if !p.is_empty() => p.parse().unwrap_or_default(),
            _ if self.secure => 443,
            _ => 80,
        }
    }

    /// The request's URI, rebuilt from its parts (without credentials or
    /// fragment): what a relative redirect is resolved against.
    pub fn uri(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.host, self.path)
    }

    /// The same request for another URI (a redirect's target), keeping origin,
    /// subprotocols and headers; with `drop_credentials`, without
    /// `Authorization`, `Cookie` and a custom `Host` (the target is another
    /// origin).
    pub(crate) fn retarget(
        &self,
        uri: &str,
        drop_credentials: bool,
    ) -> Result<ClientRequest, HandshakeError> {
        let mut next = ClientRequest::new(uri)?;
        next.transport_secure = false;
        next.origin.clone_from(&self.origin);
        next.subprotocols.clone_from(&self.subprotocols);
        next.headers = self
            .headers
            .iter()
            .filter(|(n, _)| {
                !drop_credentials
                    || !["authorization", "cookie", "host"]
                        .iter()
                        .any(|c| n.eq_ignore_ascii_case(c))
            })
            .cloned()
            .collect();
        Ok(next)
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
        let name = split_host_port(&self.host).0;
        format!("{name}:{}", self.port())
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
        // A caller's Host replaces the authority, and is not written twice.
        let host = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map_or(self.host.as_str(), |(_, v)| v.as_str());
        put_header(dst, "Host", host);
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
        for (n, v) in self
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
        {
            put_header(dst, n, v);
        }
        dst.put_slice(b"\r\n");
        Ok(())
    }

    /// The same request as an extended CONNECT's head for
    /// [`h2::connect`](crate::h2::connect) (feature `http2`): the URI with a
    /// caller's `Host` as its authority (HTTP/2 sends `:authority`, RFC 9113
    /// §8.3.1), `Origin`, the subprotocols and the extra headers.
    /// `h2::connect` adds the version and the extension offer.
    #[cfg(all(feature = "http2", feature = "rustls"))]
    pub(crate) fn to_h2_request(&self) -> Result<::http::Request<()>, HandshakeError> {
        let invalid = || HandshakeError::Malformed("invalid request header".into());
        let authority = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map_or(self.host.as_str(), |(_, v)| v.as_str());
        let scheme = if self.secure { "wss" } else { "ws" };
        let mut request = ::http::Request::connect(format!("{scheme}://{authority}{}", self.path));
        if let Some(origin) = &self.origin {
            request = request.header("origin", origin);
        }
        if !self.subprotocols.is_empty() {
            if !self.subprotocols.iter().all(|p| is_token(p)) {
                return Err(invalid());
            }
            request = request.header("sec-websocket-protocol", self.subprotocols.join(", "));
        }
        for (n, v) in self
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
        {
            request = request.header(n, v);
        }
        request.body(()).map_err(|_| invalid())
    }

    /// Checks the server's response against §4.1 (status 101, `Upgrade`,
    /// `Connection`, `Sec-WebSocket-Accept` for `key`, no subprotocol or extension
    /// that was not offered).
    pub fn validate_response(&self, response: &Response, key: &str) -> Result<(), HandshakeError> {
        if response.status != 101 {
            return Err(HandshakeError::UnexpectedStatus(Box::new(response.clone())));
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

/// The server's handshake response, as the client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Headers,
    body: Bytes,
    body_truncated: bool,
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

    /// The first part of the body of a refused handshake (a 101 has none),
    /// at most [`Limits::max_response_body`] bytes, as `connect` read it: by
    /// `Content-Length`, by chunks (decoded), or until the server closed, all
    /// within the handshake timeout. [`parse`](Self::parse) leaves it empty.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Whether the server sent more body than [`body`](Self::body) holds:
    /// more than the limit, or a body cut short by the timeout or the
    /// connection's end.
    pub fn is_body_truncated(&self) -> bool {
        self.body_truncated
    }

    /// An HTTP/2 answer's head as the same type (feature `http2`), so that a
    /// refusal reads alike over either version.
    #[cfg(feature = "http2")]
    pub(crate) fn from_http_head(head: &::http::response::Parts) -> Response {
        Response {
            status: head.status.as_u16(),
            headers: Headers(
                head.headers
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), Bytes::copy_from_slice(v.as_bytes())))
                    .collect(),
            ),
            body: Bytes::new(),
            body_truncated: false,
        }
    }

    pub(crate) fn set_body(&mut self, body: Bytes, truncated: bool) {
        self.body = body;
        self.body_truncated = truncated;
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
            body: Bytes::new(),
            body_truncated: false,
        };
        Ok((response, len))
    }
}

/// Splits an authority's `host[:port]` (userinfo already removed), keeping
/// an IPv6 literal's brackets on the host.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    let colon = match authority.rfind(']') {
        Some(bracket) => authority[bracket..].find(':').map(|i| bracket + i),
        None => authority.rfind(':'),
    };
    match colon {
        Some(i) => (&authority[..i], Some(&authority[i + 1..])),
        None => (authority, None),
    }
}
