//! The client's handshake over a transport: write the request, read and
//! check the response, hand over a [`WebSocket`].
//!
//! A thin async driver of the sans-IO [`handshake`](crate::handshake). TLS is
//! the transport's business: this writes and reads whatever `io` is.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::accept::{read_head, with_timeout};
use crate::config::{Config, Role};
use crate::error::Error;
use crate::extension::Extensions;
use crate::handshake::{generate_key, ClientRequest, Response};
use crate::websocket::WebSocket;

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
    let mut request = request;
    request.extensions = Extensions::offer(&config);
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
    let answers = response.headers().get_all("sec-websocket-extensions");
    let extensions = Extensions::accept_answer(&config, answers)?;
    let _ = buf.split_to(head_len);
    let ws = WebSocket::with_extensions(io, Role::Client, config, buf, &extensions);
    Ok((ws, response))
}
