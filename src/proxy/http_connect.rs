//! HTTP `CONNECT` (RFC 9110 §9.3.6): the request, the reply's parser, and
//! the exchange over a [`TcpStream`] that stops at the reply head's last byte.

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{authority, MalformedReply, Proxy, ProxyError};
use crate::handshake::HeadScanner;

/// A complete reply head of an HTTP proxy to `CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectReply {
    /// The status code: any 2xx means the tunnel is open (RFC 9110 §9.3.6).
    pub status: u16,
    /// The reason phrase, lossily decoded as UTF-8.
    pub reason: String,
    /// Every `Proxy-Authenticate` value (RFC 9110 §11.7.1), lossily decoded.
    pub proxy_authenticate: Vec<String>,
    /// The head's length through its blank line: the tunnel's bytes (or the
    /// body of a refusal) start here.
    pub head_len: usize,
}

/// Parses an HTTP/1.x reply head at the start of `buf`: `Ok(None)` while it
/// is incomplete, the reply once its blank line is in `buf` (bytes after it
/// are not looked at), an error if it is not HTTP/1.x or has more than
/// `max_headers` header lines.
///
/// Pure and total: any input gives one of these, never a panic.
///
/// ```
/// use wscodec::proxy::parse_connect_reply;
///
/// let reply = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03";
/// let parsed = parse_connect_reply(reply, 64).unwrap().unwrap();
/// assert_eq!((parsed.status, parsed.head_len), (200, reply.len() - 2));
/// assert_eq!(parse_connect_reply(b"HTTP/1.1 200 OK\r\n", 64), Ok(None));
/// ```
pub fn parse_connect_reply(
    buf: &[u8],
    max_headers: usize,
) -> Result<Option<ConnectReply>, MalformedReply> {
    // A header line takes at least three bytes ("a:\n"), so slots beyond
    // buf.len() / 3 are never filled: a huge max_headers allocates nothing.
    let slots = max_headers.min(buf.len() / 3 + 1);
    let mut headers = vec![httparse::EMPTY_HEADER; slots];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(MalformedReply(format!(
                "more than {max_headers} header lines"
            )))
        }
        Err(e) => return Err(MalformedReply(format!("not an HTTP/1.x reply: {e}"))),
    };
    // httparse fills these in for any complete head.
    let (Some(status), Some(reason)) = (response.code, response.reason) else {
        return Err(MalformedReply("no status line".to_owned()));
    };
    let proxy_authenticate = response
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("proxy-authenticate"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
        .collect();
    Ok(Some(ConnectReply {
        status,
        reason: reason.to_owned(),
        proxy_authenticate,
        head_len,
    }))
}

/// The request: `CONNECT host:port HTTP/1.1`, `Host` with the same
/// authority (RFC 9110 §9.3.6, §7.2), and Basic credentials (RFC 7617 §2).
pub(super) fn request(proxy: &Proxy, host: &str, port: u16) -> Result<Vec<u8>, ProxyError> {
    let target = authority(host, port);
    let mut out = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(c) = &proxy.credentials {
        if c.username.contains(':') {
            return Err(ProxyError::InvalidCredentials {
                proxy: proxy.to_string(),
                reason: "a Basic user-id cannot contain ':' (RFC 7617 §2)",
            });
        }
        // RFC 7617 §2.1: the charset is UTF-8, which a Rust String already is.
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", c.username, c.password));
        out.push_str("Proxy-Authorization: Basic ");
        out.push_str(&token);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    Ok(out.into_bytes())
}

pub(super) async fn handshake(
    proxy: &Proxy,
    stream: &mut TcpStream,
    host: &str,
    port: u16,
) -> Result<(), ProxyError> {
    let io = |error| ProxyError::Io {
        proxy: proxy.to_string(),
        error,
    };
    stream
        .write_all(&request(proxy, host, port)?)
        .await
        .map_err(io)?;
    // The bound covers every head read, interim 1xx ones included.
    let mut budget = proxy.max_reply_head;
    loop {
        let reply = read_head(proxy, stream, budget).await?;
        budget -= reply.head_len;
        match reply.status {
            200..=299 => return Ok(()),
            // RFC 9110 §15.2: interim responses come before the final one and
            // are skipped. 101 would be a protocol switch, not a tunnel.
            100 | 102..=199 => continue,
            status => {
                return Err(ProxyError::HttpStatus {
                    proxy: proxy.to_string(),
                    status,
                    reason: reply.reason,
                    proxy_authenticate: reply.proxy_authenticate,
                    credentials_sent: proxy.credentials.is_some(),
                })
            }
        }
    }
}

/// Reads one reply head and not a byte more: it peeks at what has arrived,
/// finds the head's end in it, and consumes exactly up to there, so whatever
/// the proxy sent after the head stays in the socket for the tunnel's user.
async fn read_head(
    proxy: &Proxy,
    stream: &mut TcpStream,
    limit: usize,
) -> Result<ConnectReply, ProxyError> {
    let io = |error| ProxyError::Io {
        proxy: proxy.to_string(),
        error,
    };
    let mut head = Vec::new();
    let mut chunk = vec![0u8; 4096.min(limit.saturating_add(1))];
    let mut scanner = HeadScanner::new();
    loop {
        // At most one byte past the limit, to tell "too large" from "exactly".
        let want = chunk.len().min(limit.saturating_add(1) - head.len());
        let n = stream.peek(&mut chunk[..want]).await.map_err(io)?;
        if n == 0 {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the proxy closed the connection before its reply was complete",
            )));
        }
        let before = head.len();
        head.extend_from_slice(&chunk[..n]);
        let end = scanner
            .scan(&head, limit)
            .map_err(|_| ProxyError::ReplyTooLarge {
                proxy: proxy.to_string(),
                limit: proxy.max_reply_head,
            })?;
        let take = match end {
            Some(end) => end - before,
            None => n,
        };
        // What was peeked is in the socket's buffer: this returns at once.
        stream.read_exact(&mut chunk[..take]).await.map_err(io)?;
        if let Some(end) = end {
            head.truncate(end);
            let malformed = |e: MalformedReply| ProxyError::Malformed {
                proxy: proxy.to_string(),
                reason: e.0,
            };
            return match parse_connect_reply(&head, proxy.max_reply_headers).map_err(malformed)? {
                Some(reply) => Ok(reply),
                // The scanner found a blank line where httparse sees none.
                None => Err(malformed(MalformedReply(
                    "the reply head ends early".to_owned(),
                ))),
            };
        }
    }
}
