//! The client's handshake over a transport: write the request, read and
//! check the response, hand over a [`WebSocket`].
//!
//! A thin async driver of the sans-IO [`handshake`](crate::handshake). TLS is
//! the transport's business: this writes and reads whatever `io` is, and so
//! refuses a `wss://` request unless the caller declared the transport secure
//! ([`ClientRequest::secure_transport`]). [`connect_url`](crate::connect_url)
//! does the TLS itself.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::accept::read_head;
use crate::config::{Config, Role};
use crate::error::{Error, HandshakeError};
use crate::extension::Extensions;
use crate::handshake::{generate_key, ClientRequest, Headers, Response};
use crate::websocket::WebSocket;

/// Connects as a client over `io` (already connected to the server) with the
/// default [`Config`].
///
/// TLS is the caller's business: `io` is used as it is. A `wss://` URI fails
/// with [`HandshakeError::TlsRequired`], since this function cannot know that
/// `io` is secure; use [`connect_with`] and
/// [`ClientRequest::secure_transport`] over your own TLS stream, or
/// [`connect_url`](crate::connect_url), which does TLS (feature `rustls`).
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
///
/// A `wss://` request must be marked with
/// [`ClientRequest::secure_transport`], or it fails with
/// [`HandshakeError::TlsRequired`] before anything is written: this function
/// does no TLS, and never sends a `wss://` request in plaintext.
///
/// A status other than 101 fails with [`HandshakeError::UnexpectedStatus`],
/// which keeps the response: headers and the first
/// [`Limits::max_response_body`](crate::Limits::max_response_body) bytes of
/// the body. [`Config::handshake_timeout`] bounds writing the request and
/// reading the response, body included (a body cut short by it is kept as
/// far as it came).
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
    if request.is_secure() && !request.is_transport_secure() {
        return Err(HandshakeError::TlsRequired.into());
    }
    let mut request = request;
    request.extensions = Extensions::offer(&config);
    let key = generate_key();
    let mut out = BytesMut::new();
    request.write(&key, &mut out)?;
    let limits = config.limits.clone();
    let deadline = config.handshake_timeout.map(|t| Instant::now() + t);
    let mut buf = BytesMut::new();
    let exchange = async {
        io.write_all(&out).await?;
        io.flush().await?;
        read_head(&mut io, &mut buf, &limits).await
    };
    let head_len = until(deadline, exchange)
        .await
        .unwrap_or(Err(HandshakeError::Timeout.into()))?;
    let (mut response, _) = Response::parse(&buf[..head_len], &limits)?;
    let _ = buf.split_to(head_len);
    if response.status() != 101 {
        let mut body = BodyReader::new(buf, limits.max_response_body);
        let complete = until(
            deadline,
            body.read(&mut io, response.status(), response.headers()),
        )
        .await
        .unwrap_or(false);
        let (body, truncated) = body.finish(complete);
        response.set_body(body, truncated);
        crate::trace::debug!(
            status = response.status(),
            location = response.headers().get("location"),
            "client handshake refused"
        );
        return Err(HandshakeError::UnexpectedStatus(Box::new(response)).into());
    }
    request.validate_response(&response, &key)?;
    let answers = response.headers().get_all("sec-websocket-extensions");
    let extensions = Extensions::accept_answer(&config, answers)?;
    crate::trace::debug!(
        status = response.status(),
        subprotocol = response.subprotocol(),
        extensions = ?extensions,
        "client handshake complete"
    );
    let ws = WebSocket::with_extensions(io, Role::Client, config, buf, &extensions);
    Ok((ws, response))
}

/// Runs `fut` until `deadline` (if any); `None` when the deadline passed.
async fn until<F: std::future::Future>(deadline: Option<Instant>, fut: F) -> Option<F::Output> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// Reads at most `limit` bytes of a refused response's body (RFC 9112 §6.3),
/// keeping what it has if it is stopped (the timeout drops the future of
/// [`read`](Self::read), not the reader).
struct BodyReader {
    /// Received bytes not yet taken into `body` (chunk framing included).
    raw: BytesMut,
    body: BytesMut,
    limit: usize,
    /// More body exists than `body` holds.
    truncated: bool,
}

/// How much is read from the transport at a time: never what the server
/// declares.
const READ_STEP: usize = 8 << 10;

/// The longest chunk-size line accepted (size, extensions, CRLF).
const MAX_CHUNK_LINE: usize = 1024;

impl BodyReader {
    fn new(raw: BytesMut, limit: usize) -> Self {
        BodyReader {
            raw,
            body: BytesMut::new(),
            limit,
            truncated: false,
        }
    }

    fn finish(self, complete: bool) -> (Bytes, bool) {
        (self.body.freeze(), self.truncated || !complete)
    }

    /// Reads more into `raw`; false at the end of input (or on an error:
    /// the body is only ever a best effort).
    async fn fill<T: AsyncRead + Unpin>(&mut self, io: &mut T) -> bool {
        self.raw.reserve(READ_STEP);
        matches!(io.read_buf(&mut self.raw).await, Ok(n) if n > 0)
    }

    /// Moves up to `n` bytes of `raw` into the body (what fits under the
    /// limit; the rest is dropped and marks the body truncated). Returns how
    /// many bytes of `raw` were consumed.
    fn take(&mut self, n: usize) -> usize {
        let n = n.min(self.raw.len());
        let room = self.limit - self.body.len();
        let kept = n.min(room);
        self.body.extend_from_slice(&self.raw[..kept]);
        if n > kept {
            self.truncated = true;
        }
        let _ = self.raw.split_to(n);
        n
    }

    fn full(&self) -> bool {
        self.body.len() >= self.limit
    }

    /// Reads the body; true when it was read to its end (or to the limit,
    /// with `truncated` set then if more was declared).
    async fn read<T: AsyncRead + Unpin>(
        &mut self,
        io: &mut T,
        status: u16,
        headers: &Headers,
    ) -> bool {
        // RFC 9112 §6.3: 1xx, 204 and 304 have no body.
        if (100..200).contains(&status) || status == 204 || status == 304 {
            return true;
        }
        let chunked = headers
            .get_all("transfer-encoding")
            .flat_map(|v| v.split(','))
            .last()
            .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
        if chunked {
            return self.read_chunked(io).await;
        }
        // Several Content-Length values must agree (RFC 9112 §6.3 item 5);
        // otherwise the body is read until the end, bounded all the same.
        let mut lengths = headers
            .get_all("content-length")
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().parse::<u64>().ok());
        let first = lengths.next().flatten();
        let length = first.filter(|&first| lengths.all(|l| l == Some(first)));
        match length {
            Some(length) => {
                let want = usize::try_from(length).unwrap_or(usize::MAX);
                if want > self.limit {
                    self.truncated = true;
                }
                let want = want.min(self.limit);
                while self.body.len() < want {
                    if self.raw.is_empty() && !self.fill(io).await {
                        return false;
                    }
                    let _ = self.take(want - self.body.len());
                }
                true
            }
            None => {
                loop {
                    let _ = self.take(self.raw.len());
                    if self.full() {
                        // Stopped at the limit: whether more would have come
                        // is unknown, so say the body may be cut.
                        self.truncated = true;
                        return true;
                    }
                    if !self.fill(io).await {
                        return true; // the server closed: that was all
                    }
                }
            }
        }
    }

    /// RFC 9112 §7.1: `size[;ext]CRLF data CRLF` ... `0 CRLF`; trailers are
    /// not read (the body is complete at the last chunk).
    async fn read_chunked<T: AsyncRead + Unpin>(&mut self, io: &mut T) -> bool {
        loop {
            let line_end = loop {
                if let Some(i) = self.raw.iter().position(|&b| b == b'\n') {
                    break i;
                }
                if self.raw.len() > MAX_CHUNK_LINE || !self.fill(io).await {
                    return false;
                }
            };
            let line = &self.raw[..line_end];
            let size = line.split(|&b| b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(size).unwrap_or_default().trim();
            let Ok(size) = u64::from_str_radix(size, 16) else {
                return false;
            };
            let _ = self.raw.split_to(line_end + 1);
            if size == 0 {
                return true;
            }
            let mut left = size;
            while left > 0 {
                if self.raw.is_empty() && !self.fill(io).await {
                    return false;
                }
                let n = usize::try_from(left).unwrap_or(usize::MAX);
                left -= self.take(n) as u64;
                if self.full() && left > 0 {
                    self.truncated = true;
                    return true;
                }
            }
            // The CRLF after the data.
            while self.raw.len() < 2 {
                if !self.fill(io).await {
                    return false;
                }
            }
            if &self.raw[..2] != b"\r\n" {
                return false;
            }
            let _ = self.raw.split_to(2);
            if self.full() {
                // More chunks may follow; the limit is reached either way.
                self.truncated |= self.raw.first() != Some(&b'0');
                return true;
            }
        }
    }
}
