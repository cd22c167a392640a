//! The client's side over h2: send the extended CONNECT (RFC 8441 §4) on a
//! connection whose server allows it, check the answer, start the WebSocket.

use std::future::poll_fn;
use std::time::Duration;

use ::h2::client::SendRequest;
use ::http::header::HeaderValue;
use ::http::uri::{Parts, Scheme};
use ::http::{Method, Uri, Version};
use bytes::{Bytes, BytesMut};
use tokio::time::{sleep, Instant};

use super::stream::H2Stream;
use super::validate::PROTOCOL;
use super::H2Error;
use crate::config::{Config, Role};
use crate::error::HandshakeError;
use crate::extension::Extensions;
use crate::handshake::Response;
use crate::websocket::WebSocket;

/// How long [`connect`] waits for the server's first SETTINGS when they
/// have not arrived yet (at most: the handshake timeout if shorter).
const SETTINGS_WAIT: Duration = Duration::from_secs(1);

/// Opens a WebSocket on a new stream of an HTTP/2 connection: sends the
/// extended CONNECT for `request`, checks the `2xx` answer and returns the
/// WebSocket and the response's head.
///
/// `request`'s URI is absolute: `ws://` or `http://` (sent as `:scheme
/// http`), `wss://` or `https://` (`:scheme https`), as RFC 8441 §5 maps
/// them. Its headers go along (`Origin`, `Authorization`, and
/// `Sec-WebSocket-Protocol` for the subprotocols offered); the handshake
/// adds `Sec-WebSocket-Version: 13` and the extension offer of `config`
/// (permessage-deflate). It refuses `Sec-WebSocket-Key`,
/// `Sec-WebSocket-Extensions`, `Upgrade` and `Connection`, which have no
/// place in an HTTP/2 WebSocket request.
///
/// The server must have advertised `SETTINGS_ENABLE_CONNECT_PROTOCOL`
/// (RFC 8441 §3), else this fails with [`H2Error::ExtendedConnectDisabled`]
/// before sending anything: no fallback. h2's client handshake returns
/// before the server's SETTINGS arrive, so a first call on a new connection
/// waits for them for up to a second (or the handshake timeout, if
/// shorter), checking every few milliseconds; it knows at once that they
/// arrived when the connection was built with
/// `h2::client::Builder::initial_max_send_streams(0)` (the stream limit then
/// changes from 0 when they do).
///
/// Each call opens its own stream: many WebSockets share one connection
/// (clone the `SendRequest`), and one that closes or is reset leaves the
/// others alone. The response must come within `config.handshake_timeout`.
///
/// ```no_run
/// use futures::{SinkExt, StreamExt};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let tcp = tokio::net::TcpStream::connect("127.0.0.1:8080").await?;
/// let (mut send_request, connection) = h2::client::Builder::new()
///     .initial_max_send_streams(0)
///     .handshake::<_, bytes::Bytes>(tcp)
///     .await?;
/// tokio::spawn(connection);
/// let request = http::Request::get("ws://127.0.0.1:8080/chat")
///     .header("sec-websocket-protocol", "chat.v2")
///     .body(())?;
/// let (mut ws, response) =
///     wscodec::h2::connect(&mut send_request, request, wscodec::Config::default()).await?;
/// ws.send(wscodec::Message::text("hello")).await?;
/// # Ok(()) }
/// ```
pub async fn connect(
    send_request: &mut SendRequest<Bytes>,
    request: ::http::Request<()>,
    config: Config,
) -> Result<(WebSocket<H2Stream>, ::http::Response<()>), H2Error> {
    let (stream, head, extensions) = open(send_request, request, &config).await?;
    let ws = WebSocket::with_extensions(stream, Role::Client, config, BytesMut::new(), &extensions);
    Ok((ws, head))
}

/// [`connect`] up to the WebSocket: the stream, the `2xx` head and the
/// extensions agreed, for a caller that puts the stream in a type of its
/// own ([`Connector`](crate::client::Connector)'s `ClientStream`).
pub(crate) async fn open(
    send_request: &mut SendRequest<Bytes>,
    request: ::http::Request<()>,
    config: &Config,
) -> Result<(H2Stream, ::http::Response<()>, Extensions), H2Error> {
    let (request, offered) = extended_connect(request, config)?;
    poll_fn(|cx| send_request.poll_ready(cx)).await?;
    let wait = config
        .handshake_timeout
        .map_or(SETTINGS_WAIT, |t| t.min(SETTINGS_WAIT));
    if !settings_allow_connect(send_request, wait).await {
        return Err(H2Error::ExtendedConnectDisabled);
    }
    let started = Instant::now();
    let (response, mut send) = send_request.send_request(request, false)?;
    let response = match config.handshake_timeout {
        Some(t) => match tokio::time::timeout(t, response).await {
            Ok(response) => response?,
            Err(_) => {
                send.send_reset(::h2::Reason::CANCEL);
                return Err(HandshakeError::Timeout.into());
            }
        },
        None => response.await?,
    };
    let (parts, mut recv) = response.into_parts();
    // RFC 9110 §9.3.6: any 2xx to a CONNECT opens the tunnel.
    if !parts.status.is_success() {
        let mut refused = Response::from_http_head(&parts);
        let deadline = config.handshake_timeout.map(|t| started + t);
        let (body, truncated) =
            read_body(&mut recv, config.limits.max_response_body, deadline).await;
        refused.set_body(body, truncated);
        send.send_reset(::h2::Reason::CANCEL);
        return Err(HandshakeError::UnexpectedStatus(Box::new(refused)).into());
    }
    let head = ::http::Response::from_parts(parts, ());
    let extensions = match check_answer(&head, &offered, config) {
        Ok(extensions) => extensions,
        Err(e) => {
            send.send_reset(::h2::Reason::CANCEL);
            return Err(e.into());
        }
    };
    Ok((H2Stream::new(send, recv), head, extensions))
}

/// The first `limit` bytes of a refusal's body, read until the stream ends,
/// fails or `deadline` passes, and whether anything was left unread. Only
/// what arrives is kept: a declared `content-length` is not trusted.
async fn read_body(
    recv: &mut ::h2::RecvStream,
    limit: usize,
    deadline: Option<Instant>,
) -> (Bytes, bool) {
    let mut body = BytesMut::new();
    loop {
        if recv.is_end_stream() {
            return (body.freeze(), false);
        }
        let next = recv.data();
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, next).await {
                Ok(next) => next,
                Err(_) => return (body.freeze(), true),
            },
            None => next.await,
        };
        let chunk = match next {
            None => return (body.freeze(), false),
            Some(Ok(chunk)) => chunk,
            Some(Err(_)) => return (body.freeze(), true),
        };
        let _ = recv.flow_control().release_capacity(chunk.len());
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return (body.freeze(), true);
        }
        body.extend_from_slice(&chunk);
    }
}

/// Whether the server allows extended CONNECT, waiting up to `wait` for its
/// first SETTINGS if they may not have arrived.
async fn settings_allow_connect(send_request: &SendRequest<Bytes>, wait: Duration) -> bool {
    if send_request.is_extended_connect_protocol_enabled() {
        return true;
    }
    let before = send_request.current_max_send_streams();
    let deadline = Instant::now() + wait;
    let mut step = Duration::from_millis(1);
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        sleep(step.min(deadline - now)).await;
        if send_request.is_extended_connect_protocol_enabled() {
            return true;
        }
        // A changed stream limit means SETTINGS came, and the setting was
        // not in them.
        if send_request.current_max_send_streams() != before {
            return false;
        }
        step = (step * 2).min(Duration::from_millis(50));
    }
}

/// The extended CONNECT for `request` (RFC 8441 §4–§5), and the
/// subprotocols it offers.
fn extended_connect(
    request: ::http::Request<()>,
    config: &Config,
) -> Result<(::http::Request<()>, Vec<String>), HandshakeError> {
    let (mut parts, ()) = request.into_parts();
    for name in [
        "sec-websocket-key",
        "sec-websocket-extensions",
        "upgrade",
        "connection",
    ] {
        if parts.headers.contains_key(name) {
            return Err(HandshakeError::Malformed(format!(
                "header {name} is not sent over HTTP/2 (RFC 8441 §5)"
            )));
        }
    }
    parts.uri = target(parts.uri)?;
    parts.method = Method::CONNECT;
    parts.version = Version::HTTP_2;
    parts.extensions.insert(::h2::ext::Protocol::from(PROTOCOL));
    parts
        .headers
        .insert("sec-websocket-version", HeaderValue::from_static("13"));
    if let Some(offer) = Extensions::offer(config) {
        let value = HeaderValue::from_str(&offer)
            .map_err(|_| HandshakeError::Malformed("extension offer".into()))?;
        parts.headers.insert("sec-websocket-extensions", value);
    }
    let mut offered = Vec::new();
    for value in parts.headers.get_all("sec-websocket-protocol") {
        let value = value
            .to_str()
            .map_err(|_| HandshakeError::Malformed("Sec-WebSocket-Protocol is not text".into()))?;
        offered.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
        );
    }
    Ok((::http::Request::from_parts(parts, ()), offered))
}

/// The target URI with the scheme RFC 8441 §5 sends for it.
fn target(uri: Uri) -> Result<Uri, HandshakeError> {
    let invalid = |why: &str| HandshakeError::InvalidUri(format!("{why}: {uri}"));
    let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("ws" | "http") => Scheme::HTTP,
        Some("wss" | "https") => Scheme::HTTPS,
        _ => return Err(invalid("scheme is not ws, wss, http or https")),
    };
    if uri.authority().is_none() {
        return Err(invalid("no authority"));
    }
    let mut parts = Parts::from(uri.clone());
    parts.scheme = Some(scheme);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(::http::uri::PathAndQuery::from_static("/"));
    }
    Uri::from_parts(parts).map_err(|e| invalid(&e.to_string()))
}

/// The server's 2xx against what we offered: one subprotocol we offered, or
/// none (RFC 6455 §4.1), and the extensions our config accepts (§9.1).
fn check_answer(
    head: &::http::Response<()>,
    offered: &[String],
    config: &Config,
) -> Result<Extensions, HandshakeError> {
    let mut protocols = head.headers().get_all("sec-websocket-protocol").iter();
    match (protocols.next(), protocols.next()) {
        (None, _) => {}
        (Some(p), None)
            if offered
                .iter()
                .any(|o| o.as_bytes() == p.as_bytes().trim_ascii()) => {}
        _ => {
            return Err(HandshakeError::UnexpectedNegotiation(
                "Sec-WebSocket-Protocol",
            ))
        }
    }
    let mut answers = Vec::new();
    for value in head.headers().get_all("sec-websocket-extensions") {
        let value = value
            .to_str()
            .map_err(|_| HandshakeError::UnexpectedNegotiation("Sec-WebSocket-Extensions"))?;
        answers.push(value);
    }
    Extensions::accept_answer(config, answers)
}
