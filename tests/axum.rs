//! `wscodec::axum::WebSocketUpgrade` in a real axum server on loopback,
//! spoken to by the crate's client and by hand: echo, subprotocols,
//! permessage-deflate on the wire, refusals with their statuses, and the
//! `axum_chat` example. With feature `http2`, the same handlers over h2c
//! (`axum::serve` speaks HTTP/2 by prior knowledge): the crate's h2 client
//! and raw extended CONNECTs (RFC 8441).
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
            any(|up: Option<WebSocketUpgrade>| async {
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
        .route("/shared", any(shared))
        .route("/shared-get-only", get(shared))
}

/// One handler for every HTTP version: a token or 401, the server's
/// preferred subprotocol, deflate, a header naming the version it came by
/// (`is_http2`), and echo.
async fn shared(up: WebSocketUpgrade) -> Result<Response, Reject> {
    if up.request().header("authorization") != Some("Bearer letmein") {
        return Err(Reject::new(401)
            .header("WWW-Authenticate", "Bearer realm=\"test\"")
            .body("{\"error\":\"token\"}"));
    }
    let over = if up.is_http2() { "h2" } else { "http/1.1" };
    Ok(up
        .protocols(["chat.v2", "chat.v1"])
        .config(deflate())
        .header("X-Over", over)
        .on_upgrade(echo))
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

/// The same handler over HTTP/2 (RFC 8441): `axum::serve` with axum's
/// `http2` feature speaks h2c and advertises SETTINGS_ENABLE_CONNECT_PROTOCOL.
#[cfg(feature = "http2")]
mod over_http2 {
    use super::*;

    use bytes::Bytes;
    use tokio::io::AsyncWriteExt;
    use wscodec::h2::{H2Error, H2Stream};

    const TOKEN: &str = "Bearer letmein";

    /// An h2c connection by prior knowledge, driven by its own task. A
    /// stream limit starting at 0 lets `wscodec::h2::connect` see at once
    /// when the server's SETTINGS have come.
    async fn h2_client(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (send, connection) = h2::client::Builder::new()
            .initial_max_send_streams(0)
            .handshake::<_, Bytes>(tcp)
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        send
    }

    async fn h2_connect(
        send: &mut h2::client::SendRequest<Bytes>,
        request: http::Request<()>,
        config: Config,
    ) -> Result<(wscodec::WebSocket<H2Stream>, http::Response<()>), H2Error> {
        tokio::time::timeout(DEADLINE, wscodec::h2::connect(send, request, config))
            .await
            .expect("h2 handshake stalled")
    }

    fn ws_get(addr: SocketAddr, path: &str) -> http::request::Builder {
        http::Request::get(format!("ws://{addr}{path}"))
    }

    /// An extended CONNECT as it is, sent on a new stream of `send`: the
    /// response and our half of the stream.
    async fn raw_h2(
        send: &mut h2::client::SendRequest<Bytes>,
        request: http::Request<()>,
    ) -> (http::Response<h2::RecvStream>, h2::SendStream<Bytes>) {
        let mut send = send.clone().ready().await.unwrap();
        let (response, stream) = send.send_request(request, false).unwrap();
        let response = tokio::time::timeout(DEADLINE, response)
            .await
            .expect("no h2 response")
            .unwrap();
        (response, stream)
    }

    async fn body(response: http::Response<h2::RecvStream>) -> String {
        let mut recv = response.into_body();
        let mut body = Vec::new();
        while let Some(chunk) = tokio::time::timeout(DEADLINE, recv.data())
            .await
            .expect("body stalled")
        {
            let chunk = chunk.unwrap();
            let _ = recv.flow_control().release_capacity(chunk.len());
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).unwrap()
    }

    fn extended_connect(addr: SocketAddr, path: &str, protocol: &str) -> http::request::Builder {
        http::Request::builder()
            .method("CONNECT")
            .uri(format!("http://{addr}{path}"))
            .extension(h2::ext::Protocol::from(protocol))
    }

    async fn echoes<T>(ws: &mut wscodec::WebSocket<T>, over: &str)
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        for message in [
            Message::text(format!("over {over}")),
            Message::binary(vec![7u8; 100_000]),
            Message::text("{\"user\":\"alice\",\"text\":\"hello\"} ".repeat(2000)),
            Message::text(""),
        ] {
            ws.send(message.clone()).await.unwrap();
            let echoed = tokio::time::timeout(DEADLINE, ws.next())
                .await
                .expect("no echo")
                .unwrap()
                .unwrap();
            assert_eq!(echoed, message, "over {over}");
        }
    }

    /// The "one handler serves both": the crate's HTTP/1.1 client
    /// and its HTTP/2 client reach the same `any` route, each gets the
    /// server's subprotocol and permessage-deflate from the one negotiation,
    /// and echo works on both at once.
    #[tokio::test]
    async fn one_handler_serves_http1_and_http2_with_deflate_and_a_subprotocol() {
        let addr = serve(routes()).await;

        let offer = request(addr, "/shared")
            .subprotocol("chat.v1")
            .subprotocol("chat.v2")
            .header("Authorization", TOKEN);
        let (mut h1, response) = connect(addr, offer, deflate()).await.unwrap();
        assert_eq!(response.status(), 101);
        assert_eq!(response.subprotocol(), Some("chat.v2"));
        assert_eq!(response.headers().get("x-over"), Some("http/1.1"));
        let answer = response.headers().get("sec-websocket-extensions").unwrap();
        assert!(answer.starts_with("permessage-deflate"), "{answer}");

        let mut send = h2_client(addr).await;
        let offer = ws_get(addr, "/shared")
            .header("sec-websocket-protocol", "chat.v1, chat.v2")
            .header("authorization", TOKEN)
            .body(())
            .unwrap();
        let (mut h2, response) = h2_connect(&mut send, offer, deflate()).await.unwrap();
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        assert_eq!(headers["sec-websocket-protocol"], "chat.v2");
        assert_eq!(headers["x-over"], "h2");
        let answer = headers["sec-websocket-extensions"].to_str().unwrap();
        assert!(answer.starts_with("permessage-deflate"), "{answer}");
        // RFC 8441 §5: no key exchange, and nothing connection-specific.
        for absent in ["sec-websocket-accept", "upgrade", "connection"] {
            assert!(!headers.contains_key(absent), "{absent} in {headers:?}");
        }

        // A second socket on the same HTTP/2 connection, interleaved.
        let offer = ws_get(addr, "/shared")
            .header("authorization", TOKEN)
            .body(())
            .unwrap();
        let (mut other, response) = h2_connect(&mut send, offer, Config::default())
            .await
            .unwrap();
        assert!(!response.headers().contains_key("sec-websocket-extensions"));

        echoes(&mut h1, "http/1.1").await;
        echoes(&mut h2, "h2").await;
        echoes(&mut other, "h2, uncompressed").await;

        // Both close directions complete over the stream.
        h2.close().await.unwrap();
        while tokio::time::timeout(DEADLINE, h2.next())
            .await
            .expect("close stalled")
            .is_some()
        {}
        h1.close().await.unwrap();
        while h1.next().await.is_some() {}
        echoes(&mut other, "h2, after the others closed").await;
    }

    /// RFC 7692 §6 over the stream: the echo of 70 KB of JSON comes back
    /// with RSV1 set and small, so deflate is in effect, not only agreed.
    #[tokio::test]
    async fn extractor_sends_compressed_frames_over_http2_when_deflate_is_agreed() {
        let addr = serve(routes()).await;
        let mut send = h2_client(addr).await;
        let request = extended_connect(addr, "/shared", "websocket")
            .header("sec-websocket-version", "13")
            .header(
                "sec-websocket-extensions",
                "permessage-deflate; client_max_window_bits",
            )
            .header("authorization", TOKEN)
            .body(())
            .unwrap();
        let (response, stream) = raw_h2(&mut send, request).await;
        assert_eq!(response.status(), 200);
        let extensions = response.headers()["sec-websocket-extensions"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(extensions.starts_with("permessage-deflate"), "{extensions}");
        let mut io = H2Stream::new(stream, response.into_body());

        let text = "{\"user\":\"alice\",\"text\":\"hello\"} ".repeat(2000);
        let mut frame = vec![0x81, 0x80 | 127];
        frame.extend_from_slice(&(text.len() as u64).to_be_bytes());
        let key = [1u8, 2, 3, 4];
        frame.extend_from_slice(&key);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ key[i % 4]));
        io.write_all(&frame).await.unwrap();
        io.flush().await.unwrap();

        let (first, payload) = tokio::time::timeout(DEADLINE, read_server_frame(&mut io))
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

    /// A handler's `Reject` reaches an HTTP/2 client as it is: status,
    /// headers, body, and the crate's client reports the refusal.
    #[tokio::test]
    async fn handler_rejection_reaches_an_http2_client_with_status_headers_and_body() {
        let addr = serve(routes()).await;
        let mut send = h2_client(addr).await;
        let no_token = ws_get(addr, "/shared").body(()).unwrap();
        match h2_connect(&mut send, no_token, Config::default()).await {
            Err(H2Error::Handshake(HandshakeError::UnexpectedStatus(response))) => {
                assert_eq!(response.status(), 401);
                assert_eq!(
                    response.headers().get("www-authenticate"),
                    Some("Bearer realm=\"test\"")
                );
                assert_eq!(response.body(), b"{\"error\":\"token\"}");
            }
            Err(other) => panic!("expected a 401 refusal, got {other}"),
            Ok(_) => panic!("expected a 401 refusal, got a WebSocket"),
        }

        let request = extended_connect(addr, "/shared", "websocket")
            .header("sec-websocket-version", "13")
            .body(())
            .unwrap();
        let (response, _stream) = raw_h2(&mut send, request).await;
        assert_eq!(response.status(), 401);
        assert_eq!(body(response).await, "{\"error\":\"token\"}");

        // The connection carries on: the same route with the token opens.
        let with_token = ws_get(addr, "/shared")
            .header("authorization", TOKEN)
            .body(())
            .unwrap();
        let (mut ws, _) = h2_connect(&mut send, with_token, Config::default())
            .await
            .unwrap();
        echoes(&mut ws, "h2 after a refusal").await;
    }

    /// RFC 8441 §4–§5 and RFC 9220 §3 through the extractor: each bad
    /// extended CONNECT gets the crate's h2 status, and the handler never
    /// runs (no `X-Over`, no 200).
    #[tokio::test]
    async fn bad_extended_connects_get_the_crates_h2_status() {
        let addr = serve(routes()).await;
        let mut send = h2_client(addr).await;
        let ok = || {
            extended_connect(addr, "/shared", "websocket")
                .header("sec-websocket-version", "13")
                .header("authorization", TOKEN)
        };
        let cases = [
            (
                "unknown :protocol",
                extended_connect(addr, "/shared", "webtransport")
                    .header("sec-websocket-version", "13")
                    .header("authorization", TOKEN)
                    .body(())
                    .unwrap(),
                501,
            ),
            (
                "version 8",
                extended_connect(addr, "/shared", "websocket")
                    .header("sec-websocket-version", "8")
                    .header("authorization", TOKEN)
                    .body(())
                    .unwrap(),
                426,
            ),
            (
                "no version",
                extended_connect(addr, "/shared", "websocket")
                    .header("authorization", TOKEN)
                    .body(())
                    .unwrap(),
                426,
            ),
            (
                "Sec-WebSocket-Key",
                ok().header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                    .body(())
                    .unwrap(),
                400,
            ),
            (
                "a GET over HTTP/2",
                http::Request::get(format!("http://{addr}/shared"))
                    .header("sec-websocket-version", "13")
                    .header("authorization", TOKEN)
                    .body(())
                    .unwrap(),
                405,
            ),
        ];
        for (case, request, status) in cases {
            let (response, _stream) = raw_h2(&mut send, request).await;
            assert_eq!(response.status(), status, "{case}");
            let headers = response.headers().clone();
            assert!(!headers.contains_key("x-over"), "{case}: the handler ran");
            match status {
                426 => assert_eq!(headers["sec-websocket-version"], "13", "{case}"),
                405 => assert_eq!(headers["allow"], "CONNECT", "{case}"),
                _ => {}
            }
            let text = body(response).await;
            assert!(!text.is_empty(), "{case}: the reason is in the body");
        }

        // After all that, a good one on the same connection still opens.
        let (response, _stream) = raw_h2(&mut send, ok().body(()).unwrap()).await;
        assert_eq!(response.status(), 200);
    }

    /// What the module docs say about routing: axum's `get` does not match
    /// the extended CONNECT, so its router answers 405 before the extractor
    /// runs; `any` (above) does. Over HTTP/1.1 the `get` route works.
    #[tokio::test]
    async fn a_get_only_route_is_refused_by_axum_over_http2() {
        let addr = serve(routes()).await;
        let mut send = h2_client(addr).await;
        let over_h2 = ws_get(addr, "/shared-get-only")
            .header("authorization", TOKEN)
            .body(())
            .unwrap();
        match h2_connect(&mut send, over_h2, Config::default()).await {
            Err(H2Error::Handshake(HandshakeError::UnexpectedStatus(response))) => {
                assert_eq!(response.status(), 405)
            }
            Err(other) => panic!("expected the router's 405, got {other}"),
            Ok(_) => panic!("expected the router's 405, got a WebSocket"),
        }
        let offer = request(addr, "/shared-get-only").header("Authorization", TOKEN);
        let (mut ws, _) = connect(addr, offer, Config::default()).await.unwrap();
        echoes(&mut ws, "http/1.1 on a get route").await;
    }

    /// `Option<WebSocketUpgrade>` over HTTP/2: a GET is the page, an
    /// extended CONNECT the WebSocket, a CONNECT for another protocol its
    /// 501 (never the page: a 2xx to a CONNECT would open a tunnel).
    #[tokio::test]
    async fn optional_extractor_serves_the_page_and_the_websocket_over_http2() {
        let addr = serve(routes()).await;
        let mut send = h2_client(addr).await;
        let page = http::Request::get(format!("http://{addr}/both"))
            .body(())
            .unwrap();
        let (response, _stream) = raw_h2(&mut send, page).await;
        assert_eq!(response.status(), 200);
        assert_eq!(body(response).await, "the page");

        let (mut ws, _) = h2_connect(
            &mut send,
            ws_get(addr, "/both").body(()).unwrap(),
            Config::default(),
        )
        .await
        .unwrap();
        echoes(&mut ws, "h2 on a shared route").await;

        let other = extended_connect(addr, "/both", "webtransport")
            .header("sec-websocket-version", "13")
            .body(())
            .unwrap();
        let (response, _stream) = raw_h2(&mut send, other).await;
        assert_eq!(response.status(), 501);
    }
}

/// The example's one `join` handler takes a member over HTTP/2 and one over
/// HTTP/1.1 into the same room.
#[cfg(feature = "http2")]
#[tokio::test]
async fn axum_chat_example_takes_members_over_http1_and_http2() {
    use bytes::Bytes;
    let addr = serve(axum_chat::app()).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, connection) = h2::client::Builder::new()
        .initial_max_send_streams(0)
        .handshake::<_, Bytes>(tcp)
        .await
        .unwrap();
    tokio::spawn(connection);
    let offer = http::Request::get(format!("ws://{addr}/ws?name=carol"))
        .header("sec-websocket-protocol", axum_chat::PROTOCOL)
        .body(())
        .unwrap();
    let (mut carol, response) =
        tokio::time::timeout(DEADLINE, wscodec::h2::connect(&mut send, offer, deflate()))
            .await
            .expect("h2 handshake stalled")
            .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        axum_chat::PROTOCOL
    );
    let answer = response.headers()["sec-websocket-extensions"]
        .to_str()
        .unwrap();
    assert!(answer.starts_with("permessage-deflate"), "{answer}");
    assert_eq!(
        carol.next().await.unwrap().unwrap(),
        Message::text("* carol joined")
    );

    let (mut dave, _) = connect(addr, request(addr, "/ws?name=dave"), deflate())
        .await
        .unwrap();
    assert_eq!(
        dave.next().await.unwrap().unwrap(),
        Message::text("* dave joined")
    );
    assert_eq!(
        carol.next().await.unwrap().unwrap(),
        Message::text("* dave joined")
    );

    carol.send(Message::text("hi from h2")).await.unwrap();
    let said = Message::text("carol: hi from h2");
    assert_eq!(dave.next().await.unwrap().unwrap(), said);
    assert_eq!(carol.next().await.unwrap().unwrap(), said);
    dave.send(Message::text("hi from http/1.1")).await.unwrap();
    let said = Message::text("dave: hi from http/1.1");
    assert_eq!(carol.next().await.unwrap().unwrap(), said);
    assert_eq!(dave.next().await.unwrap().unwrap(), said);

    carol.close().await.unwrap();
    while carol.next().await.is_some() {}
    assert_eq!(
        dave.next().await.unwrap().unwrap(),
        Message::text("* carol left")
    );
}
