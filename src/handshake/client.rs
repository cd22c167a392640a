//! The client's side of the handshake (RFC 6455 §4.1): the [`ClientRequest`]
//! it writes and the server's [`Response`] it checks. No I/O: `connect*` in
//! the crate root drive this over a transport.

use bytes::{BufMut, BytesMut};

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
/// assert_eq!(request.path(), "/chat?x=1");
/// # Ok::<(), wscodec::HandshakeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// A `Sec-WebSocket-Extensions` offer `connect_with` adds from its config.
    pub(crate) extensions: Option<String>,
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
