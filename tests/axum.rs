//! `wscodec::axum::WebSocketUpgrade` in a real axum server on loopback,
//! spoken to by the crate's client and by hand: echo, subprotocols,
//! permessage-deflate on the wire, refusals with their statuses, and the
//! `axum_chat` example.
// The example's items are `pub` for this file, which includes it as a module.
#![allow(unreachable_pub)]

#[allow(dead_code)]
#[path = "../examples/axum_chat/main.rs"]
mod axum_chat;

use std::net::SocketAddr;
use std::time::Duration;

use axum::response::Response;
use axum::routing::{any, get};
use axum::Router;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wscodec::axum::{WebSocket, WebSocketUpgrade};
use wscodec::deflate::DeflateConfig;
use wscodec::handshake::Reject;
use wscodec::{ClientRequest, Config, Error, HandshakeError, Message};

/// Nothing here should take this long; a stall fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(20);

async fn echo(mut ws: WebSocket) {
    while let Some(Ok(message)) = ws.next().await {
        if !message.is_control() && ws.send(message).await.is_err() {
            break;
        }
    }
}

fn deflate() -> Config {
    Config::default().deflate(Some(DeflateConfig::default()))
}

/// The routes under test: plain echo, subprotocol preference, deflate,
/// a handler that refuses without a token, one that answers a subprotocol
/// nobody offered.
fn routes() -> Router {
    Router::new()
        .route(
            "/echo",
            any(|up: WebSocketUpgrade| async { up.on_upgrade(echo) }),
        )
        .route(
            "/protocols",
            get(|up: WebSocketUpgrade| async {
                let offered: Vec<String> = up.offered_subprotocols().map(str::to_owned).collect();
                up.protocols(["chat.v2", "chat.v1"])
                    .header("X-Offered", offered.join(" "))
                    .on_upgrade(echo)
            }),
        )
        .route(
            "/deflate",
            get(|up: WebSocketUpgrade| async { up.config(deflate()).on_upgrade(echo) }),
        )
        .route(
            "/private",
            get(|up: WebSocketUpgrade| async move {
                if up.request().header("authorization") != Some("Bearer letmein") {
                    return Err(Reject::new(401)
                        .header("WWW-Authenticate", "Bearer realm=\"test\"")
                        .body("{\"error\":\"token\"}"));
                }
                Ok::<Response, Reject>(up.on_upgrade(echo))
            }),
        )
        .route(
            "/teapot",
            get(|up: WebSocketUpgrade| async move {
                let _ = up; // dropped: nothing is upgraded
                let mut response = Response::new(axum::body::Body::from("short and stout"));
                *response.status_mut() = axum::http::StatusCode::IM_A_TEAPOT;
                response
            }),
        )
        .route(
            "/both",
            get(|up: Option<WebSocketUpgrade>| async {
                match up {
                    Some(up) => up.on_upgrade(echo),
                    None => Response::new(axum::body::Body::from("the page")),
                }
            }),
        )
        .route(
            "/unoffered",
            get(|up: WebSocketUpgrade| async { up.subprotocol("never-offered").on_upgrade(echo) }),
        )
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn connect(
    addr: SocketAddr,
    request: ClientRequest,
    config: Config,
) -> Result<(wscodec::WebSocket<TcpStream>, wscodec::handshake::Response), Error> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(DEADLINE, wscodec::connect_with(tcp, request, config))
        .await
        .expect("handshake stalled")
}

fn request(addr: SocketAddr, path: &str) -> ClientRequest {
    ClientRequest::new(&format!("ws://{addr}{path}")).unwrap()
}

/// Sends `head` raw and returns the whole answer up to the server's close
/// (or what came within the deadline, for a kept-alive connection).
async fn raw(addr: SocketAddr, head: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // hyper keeps a refused connection alive: read until a whole head and
    // its Content-Length of body have come.
    loop {
        let n = tokio::time::timeout(DEADLINE, tcp.read(&mut buf))
            .await
            .expect("no answer")
            .unwrap();
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if n == 0 {
            return text;
        }
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok());
            match length {
                Some(length) if body.len() >= length => return text,
                None if head.starts_with("HTTP/1.1 101") => return text,
                _ => {}
            }
        }
    }
}

fn upgrade_head(method: &str, path: &str, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}\r\n"
    )
}

const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
const V13: &str = "Sec-WebSocket-Version: 13\r\n";

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn extractor_echoes_text_and_binary_to_the_crates_client() {
    let addr = serve(routes()).await;
    let (mut ws, response) = connect(addr, request(addr, "/echo"), Config::default())
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers().get("sec-websocket-extensions"), None);
    for message in [
        Message::text("through axum"),
        Message::binary(vec![7u8; 100_000]),
        Message::text(""),
    ] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), message);
    }
    ws.close().await.unwrap();
    while ws.next().await.is_some() {}
}

#[tokio::test]
async fn extractor_selects_the_servers_first_preference_the_client_offered() {
    let addr = serve(routes()).await;
    let offered = request(addr, "/protocols")
        .subprotocol("chat.v1")
        .subprotocol("chat.v2")
        .subprotocol("other");
    let (mut ws, response) = connect(addr, offered, Config::default()).await.unwrap();
    assert_eq!(response.subprotocol(), Some("chat.v2"));
    assert_eq!(
        response.headers().get("x-offered"),
        Some("chat.v1 chat.v2 other")
    );
    ws.send(Message::text("v2")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("v2"));

    // Nothing in common: no subprotocol, and the connection still opens.
    let (_, response) = connect(
        addr,
        request(addr, "/protocols").subprotocol("x"),
        Config::default(),
    )
    .await
    .unwrap();
    assert_eq!(response.subprotocol(), None);
}

#[tokio::test]
async fn extractor_negotiates_deflate_with_the_crates_client() {
    let addr = serve(routes()).await;
    let (mut ws, response) = connect(addr, request(addr, "/deflate"), deflate())
        .await
        .unwrap();
    let answer = response.headers().get("sec-websocket-extensions").unwrap();
    assert!(answer.starts_with("permessage-deflate"), "{answer}");
    let text = Message::text("{\"user\":\"alice\",\"text\":\"hello\"} ".repeat(2000));
    ws.send(text.clone()).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), text);

    // A client that offers nothing gets nothing, from the same route.
    let (_, response) = connect(addr, request(addr, "/deflate"), Config::default())
        .await
        .unwrap();
    assert_eq!(response.headers().get("sec-websocket-extensions"), None);
}

/// One frame header and payload as a server sends it: (first byte, payload).
async fn read_server_frame<R: AsyncRead + Unpin>(io: &mut R) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await.unwrap();
    assert_eq!(head[1] & 0x80, 0, "a server must not mask");
    let len = match head[1] & 0x7F {
        126 => u64::from(io.read_u16().await.unwrap()),
        127 => io.read_u64().await.unwrap(),
        n => u64::from(n),
    };
    assert!(len < 1 << 20, "frame of {len} bytes");
    let mut payload = vec![0u8; len as usize];
    io.read_exact(&mut payload).await.unwrap();
    (head[0], payload)
}

/// RFC 7692 §6: a compressed message has RSV1 set on its first frame; the
/// echo of 70 KB of repetitive JSON must come back that way and small.
#[tokio::test]
async fn extractor_sends_compressed_frames_with_rsv1_when_deflate_is_agreed() {
    let addr = serve(routes()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let head = upgrade_head(
        "GET",
        "/deflate",
        &format!(
            "{KEY}{V13}Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        ),
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        let byte = tcp.read_u8().await.unwrap();
        answer.push(byte);
    }
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    let extensions = header(&answer, "sec-websocket-extensions").unwrap();
    assert!(extensions.starts_with("permessage-deflate"), "{answer}");

    // Sent uncompressed (RSV1 clear is allowed per message), masked.
    let text = "{\"user\":\"alice\",\"text\":\"hello\"} ".repeat(2000);
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&(text.len() as u64).to_be_bytes());
    let key = [1u8, 2, 3, 4];
    frame.extend_from_slice(&key);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ key[i % 4]));
    tcp.write_all(&frame).await.unwrap();

    let (first, payload) = tokio::time::timeout(DEADLINE, read_server_frame(&mut tcp))
        .await
        .expect("no echo");
    assert_eq!(first & 0x0F, 0x1, "a text frame");
    assert_eq!(first & 0x80, 0x80, "one frame");
    assert_eq!(first & 0x40, 0x40, "RSV1: compressed");
    assert!(
        payload.len() * 20 < text.len(),
        "{} bytes on the wire for {}",
        payload.len(),
        text.len()
    );
}

#[tokio::test]
async fn invalid_upgrades_get_the_crates_status_and_no_upgrade() {
    let addr = serve(routes()).await;

    let answer = raw(addr, &upgrade_head("GET", "/echo", V13)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "missing key: {answer}");
    assert!(answer.contains("Sec-WebSocket-Key"), "{answer}");

    let answer = raw(
        addr,
        &upgrade_head(
            "GET",
            "/echo",
            &format!("{KEY}Sec-WebSocket-Version: 8\r\n"),
        ),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 426"),
        "wrong version: {answer}"
    );
    assert_eq!(
        header(&answer, "sec-websocket-version"),
        Some("13"),
        "{answer}"
    );

    // `/echo` is routed for any method, so this 405 is the extractor's.
    let answer = raw(
        addr,
        &upgrade_head("POST", "/echo", &format!("{KEY}{V13}Content-Length: 0\r\n")),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "POST: {answer}");
    assert_eq!(header(&answer, "allow"), Some("GET"), "{answer}");

    let plain = "GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let answer = raw(addr, plain).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "plain GET: {answer}");
    assert!(
        header(&answer, "sec-websocket-accept").is_none(),
        "{answer}"
    );
}

/// Served without hyper (the router called as a tower service, as some
/// tests and proxies do), there is no connection to upgrade: 500, not a
/// 101 that nothing would honour.
#[tokio::test]
async fn extractor_without_hyper_upgrade_answers_500() {
    use tower::ServiceExt;
    let request = axum::http::Request::get("/echo")
        .header("host", "localhost")
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = routes().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 500);
    assert!(!response.headers().contains_key("sec-websocket-accept"));
}

#[tokio::test]
async fn handler_rejects_with_its_own_status_headers_and_body() {
    let addr = serve(routes()).await;
    let err = connect(addr, request(addr, "/private"), Config::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(ref e) if e.status() == Some(401)),
        "{err:?}"
    );
    let answer = raw(
        addr,
        &upgrade_head("GET", "/private", &format!("{KEY}{V13}")),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert_eq!(
        header(&answer, "www-authenticate"),
        Some("Bearer realm=\"test\""),
        "{answer}"
    );
    assert!(answer.ends_with("{\"error\":\"token\"}"), "{answer}");

    // With the token, the same route upgrades.
    let with_token = request(addr, "/private").header("Authorization", "Bearer letmein");
    let (mut ws, _) = connect(addr, with_token, Config::default()).await.unwrap();
    ws.send(Message::text("in")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("in"));

    // Any response at all, not only a Reject.
    let err = connect(addr, request(addr, "/teapot"), Config::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(ref e) if e.status() == Some(418)),
        "{err:?}"
    );
}

#[tokio::test]
async fn optional_extractor_serves_a_page_and_upgrades_on_one_route() {
    let addr = serve(routes()).await;
    let page = raw(addr, "GET /both HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.ends_with("\r\n\r\nthe page"), "{page}");

    let (mut ws, _) = connect(addr, request(addr, "/both"), Config::default())
        .await
        .unwrap();
    ws.send(Message::text("both")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("both"));

    // Asks for a WebSocket but breaks §4.2.1: refused, not served the page.
    let answer = raw(
        addr,
        &upgrade_head(
            "GET",
            "/both",
            &format!("{KEY}Sec-WebSocket-Version: 8\r\n"),
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
}

#[tokio::test]
async fn a_subprotocol_the_client_did_not_offer_is_answered_with_500() {
    let addr = serve(routes()).await;
    let err = connect(
        addr,
        request(addr, "/unoffered").subprotocol("a"),
        Config::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::UnexpectedStatus(ref r)) if r.status() == 500),
        "{err:?}"
    );
}

/// The example: two members of the chat, deflate negotiated for the one
/// that offers it, each sees what the other says.
#[tokio::test]
async fn axum_chat_example_serves_the_crates_client() {
    let addr = serve(axum_chat::app()).await;
    let page = raw(addr, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("new WebSocket("), "{page}");

    let offer = request(addr, "/ws?name=alice").subprotocol(axum_chat::PROTOCOL);
    let (mut alice, response) = connect(addr, offer, deflate()).await.unwrap();
    assert_eq!(response.subprotocol(), Some(axum_chat::PROTOCOL));
    let answer = response.headers().get("sec-websocket-extensions").unwrap();
    assert!(answer.starts_with("permessage-deflate"), "{answer}");
    assert_eq!(
        alice.next().await.unwrap().unwrap(),
        Message::text("* alice joined")
    );

    let (mut bob, response) = connect(addr, request(addr, "/ws?name=bob"), Config::default())
        .await
        .unwrap();
    assert_eq!(response.subprotocol(), None);
    assert_eq!(
        bob.next().await.unwrap().unwrap(),
        Message::text("* bob joined")
    );
    assert_eq!(
        alice.next().await.unwrap().unwrap(),
        Message::text("* bob joined")
    );

    let long = "la ".repeat(1000);
    alice.send(Message::text(long.clone())).await.unwrap();
    let said = Message::text(format!("alice: {long}"));
    assert_eq!(bob.next().await.unwrap().unwrap(), said);
    assert_eq!(alice.next().await.unwrap().unwrap(), said);

    bob.close().await.unwrap();
    while bob.next().await.is_some() {}
    assert_eq!(
        alice.next().await.unwrap().unwrap(),
        Message::text("* bob left")
    );

    // No name: the handler's own refusal.
    let err = connect(addr, request(addr, "/ws"), Config::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(ref e) if e.status() == Some(400)),
        "{err:?}"
    );
}
