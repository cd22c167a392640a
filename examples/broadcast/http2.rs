//! HTTP/2: one TLS connection whose ALPN chose `h2` (feature `http2`).
//!
//! This module owns what differs over HTTP/2: the connection (h2's server,
//! advertising `SETTINGS_ENABLE_CONNECT_PROTOCOL` unless
//! `--no-h2-websocket`), its streams, the page's files as HTTP/2 responses,
//! and the chat's WebSocket as an extended CONNECT (RFC 8441), accepted with
//! [`wscodec::h2::accept_with`]. The routes, the files, the Origin check and
//! the connection limit are [`routes`](super::routes)' and
//! [`options`](super::options)', as over HTTP/1.1; the WebSocket then runs
//! the same [`session`](super::session).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;
use tokio::time::timeout;
use wscodec::h2::reject_response;
use wscodec::handshake::{Accept, Reject};

use super::routes::{route, Route, CONNECTION_HEADER, HEAD_TIMEOUT, PAGE_HEADERS};
use super::session::{chat, websocket_config, Link};
use super::text::name_from_query;
use super::Server;

/// Serves the HTTP/2 connection `io`, the `connection`th accepted, until
/// the client closes it or, on shutdown, until its streams are done.
pub(crate) async fn serve<T>(io: T, peer: SocketAddr, server: Arc<Server>, connection: u64)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = h2::server::Builder::new();
    if server.options.h2_websocket {
        // RFC 8441 §3: the setting that allows extended CONNECT. Chromium
        // opens a WebSocket on an HTTP/2 connection it holds only when the
        // server sent it, and over HTTP/1.1 otherwise.
        builder.enable_connect_protocol();
    }
    let handshake = tokio::select! {
        h = timeout(HEAD_TIMEOUT, builder.handshake::<_, Bytes>(io)) => h,
        () = server.shutdown.cancelled() => return,
    };
    let mut h2 = match handshake {
        Ok(Ok(h2)) => h2,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "HTTP/2 handshake failed");
            return;
        }
        Err(_) => return,
    };
    let mut streams = JoinSet::new();
    let mut closing = false;
    loop {
        tokio::select! {
            // The connection only moves (sends responses and DATA, reads
            // frames for every stream) while `accept` is polled.
            next = h2.accept() => match next {
                Some(Ok((request, respond))) => {
                    streams.spawn(stream(request, respond, server.clone(), connection));
                }
                Some(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "HTTP/2 connection failed");
                    break;
                }
                None => break,
            },
            // GOAWAY: no new streams; the open ones (WebSockets closing with
            // 1001 on the same signal) finish, then `accept` ends.
            () = server.shutdown.cancelled(), if !closing => {
                closing = true;
                h2.graceful_shutdown();
            }
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
    drop(h2);
    // Their streams fail with the connection: each session then leaves its
    // room. Aborting them instead would skip that.
    while streams.join_next().await.is_some() {}
}

/// One stream: a file of the page, the chat's WebSocket, or a refusal.
async fn stream(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    server: Arc<Server>,
    connection: u64,
) {
    let path = request.uri().path().to_owned();
    match route(&path) {
        Route::Asset(content_type, body) => match *request.method() {
            Method::GET | Method::HEAD => {
                let head_only = request.method() == Method::HEAD;
                send_file(&mut respond, content_type, body, head_only, connection);
            }
            _ => refuse(&mut respond, &Reject::new(405).header("Allow", "GET, HEAD")),
        },
        Route::Room(room) => {
            let room = room.to_owned();
            websocket(request, respond, &room, &server, connection).await;
        }
        Route::NotFound => refuse(&mut respond, &Reject::new(404).body("not found")),
    }
}

/// Answers with a file of the page. No `Connection` header: HTTP/2 forbids
/// it (RFC 9113 §8.2.2), and the connection stays open for the WebSocket.
fn send_file(
    respond: &mut SendResponse<Bytes>,
    content_type: &str,
    body: &'static str,
    head_only: bool,
    connection: u64,
) {
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header(CONNECTION_HEADER, connection);
    for (name, value) in PAGE_HEADERS {
        response = response.header(name, value);
    }
    let Ok(response) = response.body(()) else {
        return; // not reached: every header above is valid
    };
    // h2 queues the body and sends it as the stream's flow-control window
    // allows, while the connection task runs.
    if let Ok(mut send) = respond.send_response(response, head_only) {
        if !head_only {
            let _ = send.send_data(Bytes::from_static(body.as_bytes()), true);
        }
    }
}

/// Answers with `reject` and its body, best effort: the client may have
/// reset the stream already.
fn refuse(respond: &mut SendResponse<Bytes>, reject: &Reject) {
    let (parts, body) = reject_response(reject).into_parts();
    let Ok(mut send) = respond.send_response(Response::from_parts(parts, ()), body.is_empty())
    else {
        return;
    };
    if !body.is_empty() {
        let _ = send.send_data(body, true);
    }
}

/// A request for `/ws/ROOM`: the extended CONNECT is validated (RFC 8441
/// §4–§5) and answered by [`wscodec::h2::accept_with`], after the same
/// Origin check and connection limit as an HTTP/1.1 upgrade; then the chat.
async fn websocket(
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
    room: &str,
    server: &Server,
    connection: u64,
) {
    let config = websocket_config();
    let protocol = request
        .extensions()
        .get::<h2::ext::Protocol>()
        .map(|p| p.as_str());
    // What `accept_with` will agree, for the welcome and the session: the
    // same pure negotiation on the same request and settings, since a
    // `WebSocket` does not say which extensions it runs.
    let deflate = wscodec::h2::negotiate(&request, protocol, Accept::new(), &config)
        .is_ok_and(|agreed| !agreed.extensions().is_empty());
    // HTTP/2 has no Host header: the authority is the `:authority`
    // pseudo-header (RFC 9113 §8.3.1), which h2 puts in the URI.
    let authority = request.uri().authority().map(|a| a.as_str().to_owned());
    let name = name_from_query(request.uri().query().unwrap_or_default());
    let mut slot = None;
    let accepted = wscodec::h2::accept_with(request, respond, config, |view| {
        if !server.options.origin_allowed(view, authority.as_deref()) {
            return Err(Reject::new(403).body("origin not allowed"));
        }
        match server.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                slot = Some(permit);
                Ok(Accept::new())
            }
            Err(_) => Err(Reject::new(503)
                .header("Retry-After", "5")
                .body("too many connections")),
        }
    });
    let ws = match accepted {
        Ok(ws) => ws,
        // Answered already, with the status the error names.
        Err(e) => {
            tracing::debug!(error = %e, status = ?e.status(), "WebSocket over HTTP/2 refused");
            return;
        }
    };
    let Some(slot) = slot else {
        return; // not reached: accepted only with a slot
    };
    let link = Link {
        transport: "h2",
        connection,
        deflate,
    };
    chat(ws, room, name, link, server, slot).await;
}
