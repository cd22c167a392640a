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
    // One driver for both: a sync callback is an async one that never waits.
    Box::pin(accept_with_async_inner(
        io,
        config,
        async move |request: &Request| callback(request),
    ))
    .await
}

/// Accepts a WebSocket connection on `io`, like [`accept_with`], with an
/// async `callback`: it may await a database, a token service or a rate
/// limiter before it accepts or rejects the request.
///
/// The callback runs inside [`Config::handshake_timeout`], which bounds reading
/// the request and the callback together, so a slow backend cannot hold a
/// connection open forever: when the time is up, the callback is dropped
/// where it waits, nothing is answered (no `101`) and the connection is
/// closed with [`HandshakeError::Timeout`]. Writing the answer has its own
/// timeout of the same length, as in [`accept_with`].
///
/// ```no_run
/// use wscodec::handshake::{Accept, Reject, Request};
/// # async fn check_token(token: Option<&str>) -> bool { token.is_some() }
/// # async fn run(tcp: tokio::net::TcpStream) -> Result<(), wscodec::Error> {
/// let config = wscodec::Config::default();
/// let ws = wscodec::accept_with_async(tcp, config, async |req: &Request| {
///     if !check_token(req.header("authorization")).await {
///         return Err(Reject::new(401).header("WWW-Authenticate", "Bearer"));
///     }
///     Ok(Accept::new())
/// })
/// .await?;
/// # Ok(()) }
/// ```
///
/// The future is `Send` when the callback's is, so it can be spawned:
/// capture owned or shared (`Arc`) state in the closure, not a borrow of
/// the accept loop's locals.
pub async fn accept_with_async<T, F>(
    io: T,
    config: Config,
    callback: F,
) -> Result<WebSocket<T>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
    F: AsyncFnOnce(&Request) -> Result<Accept, Reject>,
{
    // Boxed for the reason given in accept_with.
    Box::pin(accept_with_async_inner(io, config, callback)).await
}

async fn accept_with_async_inner<T, F>(
    mut io: T,
    config: Config,
    callback: F,
) -> Result<WebSocket<T>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
    F: AsyncFnOnce(&Request) -> Result<Accept, Reject>,
{
    // One deadline for reading and deciding: a client that sends its request
    // at the last moment does not get a whole second timeout for the backend.
    let deadline = config
        .handshake_timeout
        .map(|t| tokio::time::Instant::now() + t);
    let read = read_upgrade(&mut io, &config.limits);
    let (request, rest) = match until(deadline, read).await? {
        Ok(read) => read,
        Err(e) => return refuse(&mut io, &config, Reject::from_error(&e), e).await,
    };
    let decision = until(deadline, async { Ok(callback(&request).await) }).await;
    let decision = match decision {
        Ok(decision) => decision,
        Err(e) => {
            crate::trace::debug!(error = %e, "websocket accept callback timed out");
            return Err(e);
        }
    };
    decide(io, &request, rest, config, decision).await
}

/// `fut`, failed with [`HandshakeError::Timeout`] if it is not done by
/// `deadline`.
async fn until<F, R>(deadline: Option<tokio::time::Instant>, fut: F) -> Result<R, Error>
where
    F: std::future::Future<Output = Result<R, Error>>,
{
    match deadline {
        Some(at) => tokio::time::timeout_at(at, fut)
            .await
            .unwrap_or(Err(HandshakeError::Timeout.into())),
        None => fut.await,
    }
}

/// Reads the request and validates it as an upgrade (§4.2.1). The inner
/// error is a request to refuse with its status, which the caller answers
/// outside the read's timeout, as a refusal has a timeout of its own.
async fn read_upgrade<T>(
    io: &mut T,
    limits: &Limits,
) -> Result<Result<(Request, BytesMut), HandshakeError>, Error>
where
    T: AsyncRead + Unpin,
{
    match read_request(io, limits).await {
        Ok((request, rest)) => Ok(match request.validate() {
            Ok(_) => Ok((request, rest)),
            Err(e) => Err(e),
        }),
        Err(Error::Handshake(e)) if e.status().is_some() => Ok(Err(e)),
        Err(e) => Err(e),
    }
}

/// Answers a validated `request` with the callback's decision.
async fn decide<T>(
    mut io: T,
    request: &Request,
    rest: BytesMut,
    config: Config,
    decision: Result<Accept, Reject>,
) -> Result<WebSocket<T>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    match decision {
        Ok(accept) => {
            let agreed = Agreed::negotiate(request, accept, &config);
            answer(io, agreed, rest, config).await
        }
        Err(reject) => {
            let status = reject.status();
            refuse(&mut io, &config, reject, HandshakeError::Rejected(status)).await
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
        Err(e) => return refuse(&mut io, &config, refusal(&e), e).await,
    };
    crate::trace::debug!(
        status = 101,
        subprotocol = agreed.subprotocol(),
        extensions = ?agreed.extensions(),
        "websocket handshake accepted"
    );
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

/// The response to a negotiation that failed with `error`: its own status
/// and message for a bad request, a bare 500 for a bad answer of ours (the
/// client still deserves a response, not our internals).
pub(crate) fn refusal(error: &HandshakeError) -> Reject {
    match error.status() {
        Some(500) => Reject::new(500),
        _ => Reject::from_error(error),
    }
}

/// Answers a refused handshake with `reject` (best effort: the peer may be
/// gone) and fails with `error`.
async fn refuse<T, W>(
    io: &mut T,
    config: &Config,
    reject: Reject,
    error: HandshakeError,
) -> Result<W, Error>
where
    T: AsyncWrite + Unpin,
{
    crate::trace::debug!(
        status = reject.status(),
        error = %error,
        "websocket handshake refused"
    );
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::Mutex;

    use super::*;
    use crate::handshake::ClientRequest;
    use crate::Message;

    /// A stand-in for a token service: answers after a delay, as a network
    /// call would, from a table shared by every connection.
    #[derive(Clone)]
    struct Tokens(Arc<Mutex<Vec<&'static str>>>);

    impl Tokens {
        async fn is_valid(&self, token: Option<&str>) -> bool {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let valid = self.0.lock().await;
            token.is_some_and(|t| valid.contains(&t))
        }
    }

    /// A server that spawns `accept_with_async` per connection (so its
    /// future must be `Send`) and echoes on what it accepts.
    async fn serve(config: Config) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tokens = Tokens(Arc::new(Mutex::new(vec!["good"])));
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let tokens = tokens.clone();
                let config = config.clone();
                tokio::spawn(async move {
                    let callback = async move |req: &Request| {
                        if req.query() == Some("slow") {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                        }
                        let token = req.header("authorization");
                        if tokens.is_valid(token).await {
                            Ok(Accept::new().header("X-User", "alice"))
                        } else {
                            Err(Reject::new(401)
                                .header("WWW-Authenticate", "Bearer realm=\"chat\"")
                                .body("bad token"))
                        }
                    };
                    let Ok(mut ws) = accept_with_async(tcp, config, callback).await else {
                        return;
                    };
                    while let Some(Ok(m)) = ws.next().await {
                        if !m.is_control() && ws.send(m).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn async_callback_awaits_then_accepts_one_request_and_rejects_another() {
        let addr = serve(Config::default()).await;

        let request = ClientRequest::new(&format!("ws://{addr}/"))
            .unwrap()
            .header("Authorization", "good");
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut ws, response) = crate::connect_with(tcp, request, Config::default())
            .await
            .unwrap();
        assert_eq!(response.headers().get("x-user"), Some("alice"));
        ws.send(Message::text("hi")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hi"));

        let request = ClientRequest::new(&format!("ws://{addr}/"))
            .unwrap()
            .header("Authorization", "forged");
        let tcp = TcpStream::connect(addr).await.unwrap();
        let err = crate::connect_with(tcp, request, Config::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Handshake(ref e) if e.status() == Some(401)),
            "{err:?}"
        );

        // The refusal's header and body, as they went over the wire.
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let head = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
            "{answer}"
        );
        assert!(
            answer.contains("\r\nWWW-Authenticate: Bearer realm=\"chat\"\r\n"),
            "{answer}"
        );
        assert!(answer.ends_with("\r\n\r\nbad token"), "{answer}");
    }

    #[tokio::test]
    async fn async_callback_slower_than_the_handshake_timeout_gets_no_101() {
        let config = Config::default().handshake_timeout(Some(Duration::from_millis(300)));
        let addr = serve(config).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let head =
            "GET /?slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        // The server closes at its deadline; this bound only keeps a broken
        // build from hanging the suite.
        tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
            .await
            .expect("the server did not close at the handshake timeout")
            .unwrap();
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }

    #[tokio::test(start_paused = true)]
    async fn async_callback_timeout_fails_with_handshake_timeout() {
        let (mut raw, io) = tokio::io::duplex(1 << 16);
        let config = Config::default().handshake_timeout(Some(Duration::from_secs(5)));
        let server = tokio::spawn(accept_with_async(io, config, async |_: &Request| {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(Accept::new())
        }));
        let head = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        raw.write_all(head.as_bytes()).await.unwrap();
        let err = server.await.unwrap().unwrap_err();
        assert!(
            matches!(err, Error::Handshake(HandshakeError::Timeout)),
            "{err:?}"
        );
        let mut answer = Vec::new();
        raw.read_to_end(&mut answer).await.unwrap();
        assert!(answer.is_empty());
    }

    #[tokio::test]
    async fn async_callback_never_sees_an_invalid_request() {
        let (mut raw, io) = tokio::io::duplex(1 << 16);
        let server = tokio::spawn(accept_with_async(
            io,
            Config::default(),
            async |_: &Request| -> Result<Accept, Reject> {
                panic!("called for an invalid request")
            },
        ));
        let head = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
        raw.write_all(head.as_bytes()).await.unwrap();
        let err = server.await.unwrap().unwrap_err();
        assert!(
            matches!(err, Error::Handshake(HandshakeError::UnsupportedVersion)),
            "{err:?}"
        );
        let mut answer = Vec::new();
        raw.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 426 "), "{answer}");
        assert!(
            answer.contains("\r\nSec-WebSocket-Version: 13\r\n"),
            "{answer}"
        );
    }
}
