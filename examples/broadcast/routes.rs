//! HTTP routing: one TCP connection from its request head until it is
//! answered or upgraded.
//!
//! This module owns the routes, the page's files and the headers they go out
//! with, every refusal (the handshake's own, 403, 404, 405, 503) and what is
//! checked before an upgrade: the handshake, the Origin, the connection limit.
//! It never reads or writes a WebSocket message: an accepted upgrade is handed
//! to [`session`](super::session).

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use wscodec::handshake::{Accept, Reject, Request};
use wscodec::{accept_request, read_request, Error, Limits};

use super::session::{chat, websocket_config};
use super::text::name_from_query;
use super::Server;

const INDEX_HTML: &str = include_str!("index.html");
const CHAT_CSS: &str = include_str!("chat.css");
const CHAT_JS: &str = include_str!("chat.js");

/// How long a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// One TCP connection: read the request head, then serve the page or upgrade.
pub(crate) async fn handle(mut tcp: TcpStream, peer: SocketAddr, server: Arc<Server>) {
    let _ = tcp.set_nodelay(true);
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
            respond(tcp, content_type, body, request.method() == "HEAD").await
        }
        Route::Asset(..) => {
            reject(tcp, Reject::new(405).header("Allow", "GET, HEAD")).await;
            Ok(())
        }
        Route::Room(room) => upgrade(tcp, &request, rest, room, &server).await,
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
enum Route<'a> {
    Asset(&'static str, &'static str),
    Room(&'a str),
    NotFound,
}

fn route(path: &str) -> Route<'_> {
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

/// Writes a 200 with `body` (only its head for a HEAD request) and closes the
/// connection. The page's own files are all it may load or connect to.
async fn respond(
    mut tcp: TcpStream,
    content_type: &str,
    body: &str,
    head_only: bool,
) -> Result<(), Error> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Security-Policy: default-src 'self'; connect-src 'self'; img-src 'self' data:; \
         frame-ancestors 'none'\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await?;
    if !head_only {
        tcp.write_all(body.as_bytes()).await?;
    }
    linger(tcp).await;
    Ok(())
}

async fn reject(mut tcp: TcpStream, reject: Reject) {
    let mut out = BytesMut::new();
    reject.write_response(&mut out);
    if tcp.write_all(&out).await.is_ok() {
        linger(tcp).await;
    }
}

/// Sends FIN and reads what the client still sends for a moment: closing a
/// socket with unread bytes makes the kernel send RST, which can destroy the
/// response before the client reads it.
async fn linger(mut tcp: TcpStream) {
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 1024];
    let _ = timeout(Duration::from_secs(1), async {
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Checks a `/ws/ROOM` request, answers 101 and runs the chat session.
async fn upgrade(
    tcp: TcpStream,
    request: &Request,
    rest: BytesMut,
    room: &str,
    server: &Server,
) -> Result<(), Error> {
    if let Err(e) = request.validate() {
        reject(tcp, Reject::from_error(&e)).await;
        return Ok(());
    }
    if !server.options.origin_allowed(request) {
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
    let ws = accept_request(tcp, request, rest, websocket_config(), Accept::new()).await?;
    let name = name_from_query(request.query().unwrap_or_default());
    chat(ws, room, name, server, slot).await;
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
