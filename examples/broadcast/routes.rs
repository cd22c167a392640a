//! HTTP routing: one TCP connection from its TLS handshake (with
//! `--tls-cert`) and request head until it is answered or upgraded.
//!
//! This module owns the routes, the page's files and the headers they go out
//! with, every refusal (the handshake's own, 403, 404, 405, 503) and what is
//! checked before an upgrade: the handshake, the Origin, the connection limit.
//! A TLS connection whose ALPN chose `h2` goes to [`http2`](super::http2),
//! which serves the same routes, files and checks over HTTP/2.
//! It never reads or writes a WebSocket message: an accepted upgrade is handed
//! to [`session`](super::session).

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use wscodec::handshake::{Accept, Agreed, Reject, Request};
use wscodec::{accept_request, read_request, Error, Limits};

use super::session::{chat, websocket_config, Link};
use super::text::name_from_query;
use super::Server;

const INDEX_HTML: &str = include_str!("index.html");
const CHAT_CSS: &str = include_str!("chat.css");
const CHAT_JS: &str = include_str!("chat.js");

/// How long a client has to send its request head (or, with TLS, to finish
/// the TLS handshake; over HTTP/2, its connection preface).
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The headers every file of the page goes out with, after its type and
/// length: the page's own files are all it may load or connect to.
pub(crate) const PAGE_HEADERS: [(&str, &str); 4] = [
    ("Cache-Control", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    (
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    ),
    ("Referrer-Policy", "no-referrer"),
];

/// The header that carries the connection's number on every file of the
/// page served over TLS (its WebSocket's welcome says it too, see
/// `main.rs`). Plain HTTP goes without: there every response closes its
/// connection, so there is no sharing to show.
pub(crate) const CONNECTION_HEADER: &str = "X-Broadcast-Connection";

/// One TCP connection, the `connection`th accepted: with TLS, its handshake
/// and ALPN's choice; then HTTP/1.1 here or HTTP/2 in
/// [`http2`](super::http2).
pub(crate) async fn handle(tcp: TcpStream, peer: SocketAddr, server: Arc<Server>, connection: u64) {
    let _ = tcp.set_nodelay(true);
    let Some(acceptor) = &server.tls else {
        return http1(tcp, peer, server, connection).await;
    };
    let handshake = tokio::select! {
        tls = timeout(HEAD_TIMEOUT, acceptor.accept(tcp)) => tls,
        () = server.shutdown.cancelled() => return,
    };
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            // A client that does not trust the certificate says so here.
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    #[cfg(feature = "http2")]
    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
        return super::http2::serve(tls, peer, server, connection).await;
    }
    // ALPN chose http/1.1, or the client offered nothing (RFC 7301 §3.1:
    // then HTTP/1.1 is what it speaks).
    http1(tls, peer, server, connection).await
}

/// An HTTP/1.1 connection: read the request head, then serve the page or
/// upgrade.
async fn http1<T>(mut tcp: T, peer: SocketAddr, server: Arc<Server>, connection: u64)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = Limits::default();
    let head = tokio::select! {
        head = timeout(HEAD_TIMEOUT, read_request(&mut tcp, &limits)) => head,
        () = server.shutdown.cancelled() => return,
    };
    let (request, rest) = match head {
        Ok(Ok(head)) => head,
        Ok(Err(Error::Handshake(e))) if e.status().is_some() => {
            return reject(tcp, Reject::from_error(&e)).await;
        }
        Ok(Err(_)) | Err(_) => return, // closed, or too slow to send a head
    };
    let result = match route(request.path()) {
        Route::Asset(content_type, body) if matches!(request.method(), "GET" | "HEAD") => {
            let head_only = request.method() == "HEAD";
            let numbered = server.tls.is_some().then_some(connection);
            respond(tcp, content_type, body, head_only, numbered).await
        }
        Route::Asset(..) => {
            reject(tcp, Reject::new(405).header("Allow", "GET, HEAD")).await;
            Ok(())
        }
        Route::Room(room) => upgrade(tcp, &request, rest, room, &server, connection).await,
        Route::NotFound => {
            reject(tcp, Reject::new(404).body("not found")).await;
            Ok(())
        }
    };
    match result {
        Ok(()) => {}
        // A peer that goes away mid-request is its own business, not the
        // server's: seen with RUST_LOG=debug only.
        Err(Error::Io(e))
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
                    | ErrorKind::UnexpectedEof
            ) =>
        {
            tracing::debug!(%peer, error = %e, "connection reset");
        }
        Err(e) => tracing::info!(%peer, error = %e, "connection failed"),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    Asset(&'static str, &'static str),
    Room(&'a str),
    NotFound,
}

pub(crate) fn route(path: &str) -> Route<'_> {
    match path {
        "/" | "/index.html" => Route::Asset("text/html; charset=utf-8", INDEX_HTML),
        "/chat.css" => Route::Asset("text/css; charset=utf-8", CHAT_CSS),
        "/chat.js" => Route::Asset("text/javascript; charset=utf-8", CHAT_JS),
        _ => match path.strip_prefix("/ws/") {
            Some(room) if valid_room(room) => Route::Room(room),
            _ => Route::NotFound,
        },
    }
}

fn valid_room(room: &str) -> bool {
    (1..=32).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Writes a 200 with `body` (only its head for a HEAD request), and
/// `connection` as [`CONNECTION_HEADER`], and closes the connection.
async fn respond<T: AsyncRead + AsyncWrite + Unpin>(
    mut tcp: T,
    content_type: &str,
    body: &str,
    head_only: bool,
    connection: Option<u64>,
) -> Result<(), Error> {
    let mut head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in PAGE_HEADERS {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if let Some(connection) = connection {
        let _ = write!(head, "{CONNECTION_HEADER}: {connection}\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).await?;
    if !head_only {
        tcp.write_all(body.as_bytes()).await?;
    }
    linger(tcp).await;
    Ok(())
}

async fn reject<T: AsyncRead + AsyncWrite + Unpin>(mut tcp: T, reject: Reject) {
    let mut out = BytesMut::new();
    reject.write_response(&mut out);
    if tcp.write_all(&out).await.is_ok() {
        linger(tcp).await;
    }
}

/// Sends FIN and reads what the client still sends for a moment: closing a
/// socket with unread bytes makes the kernel send RST, which can destroy the
/// response before the client reads it.
async fn linger<T: AsyncRead + AsyncWrite + Unpin>(mut tcp: T) {
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 1024];
    let _ = timeout(Duration::from_secs(1), async {
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Checks a `/ws/ROOM` request, answers 101 and runs the chat session.
async fn upgrade<T>(
    tcp: T,
    request: &Request,
    rest: BytesMut,
    room: &str,
    server: &Server,
    connection: u64,
) -> Result<(), Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if let Err(e) = request.validate() {
        reject(tcp, Reject::from_error(&e)).await;
        return Ok(());
    }
    if !server
        .options
        .origin_allowed(request, request.header("host"))
    {
        reject(tcp, Reject::new(403).body("origin not allowed")).await;
        return Ok(());
    }
    let Ok(slot) = server.slots.clone().try_acquire_owned() else {
        let full = Reject::new(503)
            .header("Retry-After", "5")
            .body("too many connections");
        reject(tcp, full).await;
        return Ok(());
    };
    let config = websocket_config();
    // What `accept_request` will agree, for the welcome and the session:
    // the same pure negotiation on the same request and settings, since a
    // `WebSocket` does not say which extensions it runs.
    let deflate = Agreed::negotiate(request, Accept::new(), &config)
        .is_ok_and(|agreed| !agreed.extensions().is_empty());
    let ws = accept_request(tcp, request, rest, config, Accept::new()).await?;
    let name = name_from_query(request.query().unwrap_or_default());
    let link = Link {
        transport: "http/1.1",
        connection,
        deflate,
    };
    chat(ws, room, name, link, server, slot).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_serve_the_page_and_rooms_with_valid_names_only() {
        assert!(matches!(
            route("/"),
            Route::Asset("text/html; charset=utf-8", _)
        ));
        assert_eq!(route("/ws/lobby-2_b"), Route::Room("lobby-2_b"));
        assert_eq!(route("/ws/"), Route::NotFound);
        assert_eq!(route("/ws/a/b"), Route::NotFound);
        assert_eq!(route(&format!("/ws/{}", "r".repeat(33))), Route::NotFound);
        assert_eq!(route("/etc/passwd"), Route::NotFound);
    }
}
