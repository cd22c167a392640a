//! The server's handshake over a transport: read the request, let the
//! caller decide, write the answer, hand over a [`WebSocket`].
//!
//! Thin async drivers of the sans-IO [`handshake`](crate::handshake); every
//! decision is made there. Each public function boxes its state, so the
//! handshake's buffers do not stay in the connection's task once it is done.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::{Config, Limits, Role};
use crate::error::{Error, HandshakeError};
use crate::handshake::{Accept, Agreed, HeadScanner, Reject, Request};
use crate::websocket::WebSocket;

/// Reads an HTTP head from `io` into `buf`; returns its length. Bytes after the
/// head stay in `buf`.
pub(crate) async fn read_head<T: AsyncRead + Unpin>(
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
        // (saturating: a limit of usize::MAX must not overflow)
        let room = limits
            .max_header_bytes
            .saturating_add(1)
            .saturating_sub(buf.len());
        buf.reserve(1024.min(room).max(1));
        if io.read_buf(buf).await? == 0 {
            return Err(HandshakeError::ConnectionClosed.into());
        }
    }
}

pub(crate) async fn with_timeout<F, R>(
    timeout: Option<std::time::Duration>,
    fut: F,
) -> Result<R, Error>
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
        Err(Error::Handshake(e)) if e.status().is_some() => {
            return refuse(io, &config, Reject::from_error(&e), e).await;
        }
        Err(e) => return Err(e),
    };
    let key = match request.validate() {
        Ok(key) => key,
        Err(e) => return refuse(io, &config, Reject::from_error(&e), e).await,
    };
    match callback(&request) {
        Ok(accept) => {
            let agreed = Agreed::for_validated(&request, key, accept, &config);
            answer(io, agreed, rest, config).await
        }
        Err(reject) => {
            let status = reject.status();
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
/// error with a status ([`HandshakeError::status`] is `Some`) deserves
/// that response, e.g. via [`Reject::from_error`]. Apply your own timeout.
///
/// ```no_run
/// use wscodec::handshake::Accept;
/// use wscodec::{accept_request, read_request};
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
    let agreed = Agreed::negotiate(request, accept, &config);
    answer(io, agreed, rest, config).await
}

/// Writes the `101` for what was agreed and starts the connection, or
/// refuses with the negotiation's error: its own status for a bad request,
/// 500 for a bad answer of ours (the client still deserves a response).
async fn answer<T>(
    mut io: T,
    agreed: Result<Agreed, HandshakeError>,
    rest: BytesMut,
    config: Config,
) -> Result<WebSocket<T>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let agreed = match agreed {
        Ok(agreed) => agreed,
        Err(e) if e.status() == Some(500) => return refuse(io, &config, Reject::new(500), e).await,
        Err(e) => return refuse(io, &config, Reject::from_error(&e), e).await,
    };
    let mut out = BytesMut::new();
    agreed.write_response(&mut out);
    let write = async {
        io.write_all(&out).await?;
        io.flush().await?;
        Ok(())
    };
    with_timeout(config.handshake_timeout, write).await?;
    Ok(WebSocket::with_extensions(
        io,
        Role::Server,
        config,
        rest,
        agreed.extensions(),
    ))
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
