//! The opening handshake over real I/O: negotiation, the accept callback,
//! rejections with the right HTTP status, limits, timeouts and pipelined bytes.

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wscodec::handshake::{derive_accept_key, Accept, Reject, Request};
use wscodec::{ClientRequest, Config, Error, HandshakeError, Limits, Message};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn request_with(extra: &str) -> String {
    format!(
        "GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Sends `request` raw to a server running `accept`, returns what the server
/// answered and how `accept` ended.
async fn raw_handshake(request: Vec<u8>, config: Config) -> (String, Result<(), Error>) {
    let (mut raw, io) = tokio::io::duplex(4 << 20);
    let server = tokio::spawn(async move {
        wscodec::accept_with(io, config, |_: &Request| Ok(Accept::new()))
            .await
            .map(|_| ())
    });
    // The server may answer and close before reading everything we send.
    let _ = raw.write_all(&request).await;
    let result = server.await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), raw.read_to_end(&mut answer)).await;
    (String::from_utf8_lossy(&answer).into_owned(), result)
}

#[tokio::test]
async fn client_and_server_negotiate_subprotocol_and_see_request() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(async move {
        wscodec::accept_with(b, Config::default(), |req: &Request| {
            assert_eq!(req.path(), "/room/7");
            assert_eq!(req.query(), Some("token=abc"));
            assert_eq!(req.header("Origin"), Some("http://app.example"));
            assert_eq!(req.header("x-trace"), Some("42"));
            let chosen = req.subprotocols().find(|p| *p == "v2").unwrap().to_owned();
            Ok(Accept::new()
                .subprotocol(chosen)
                .header("X-Served-By", "test"))
        })
        .await
    });
    let request = ClientRequest::new("ws://localhost/room/7?token=abc")
        .unwrap()
        .origin("http://app.example")
        .subprotocol("v3")
        .subprotocol("v2")
        .header("X-Trace", "42");
    let (mut client, response) = wscodec::connect_with(a, request, Config::default())
        .await
        .unwrap();
    assert_eq!(response.subprotocol(), Some("v2"));
    assert_eq!(response.headers().get("x-served-by"), Some("test"));
    let mut server = server.await.unwrap().unwrap();
    client.send(Message::text("hi")).await.unwrap();
    assert_eq!(server.next().await.unwrap().unwrap(), Message::text("hi"));
}

#[tokio::test]
async fn frames_pipelined_behind_the_request_are_not_lost() {
    let mut bytes = request_with("").into_bytes();
    bytes.extend(client_frame(true, 0x1, b"early"));
    bytes.extend(client_frame(true, 0x2, b"bird"));
    let (mut raw, io) = tokio::io::duplex(1 << 16);
    raw.write_all(&bytes).await.unwrap();
    let mut ws = wscodec::accept(io).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("early"));
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(&b"bird"[..])
    );
}

#[tokio::test]
async fn frames_pipelined_behind_the_101_response_are_not_lost() {
    let (mut raw, io) = tokio::io::duplex(1 << 16);
    let client = tokio::spawn(wscodec::connect(io, "ws://localhost/"));
    // Read the client's request, then answer with 101 and a frame in one write.
    let mut buf = vec![0u8; 4096];
    let n = raw.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap()
        .trim()
        .to_owned();
    let mut answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    )
    .into_bytes();
    answer.extend(raw_frame(wscodec::Role::Server, true, 0x1, b"welcome"));
    raw.write_all(&answer).await.unwrap();
    let (mut ws, _) = client.await.unwrap().unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("welcome"));
}

#[tokio::test]
async fn callback_rejection_sends_status_and_body() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(async move {
        wscodec::accept_with(b, Config::default(), |req: &Request| {
            if req.header("authorization").is_none() {
                return Err(Reject::new(401)
                    .header("WWW-Authenticate", "Bearer")
                    .body("token required"));
            }
            Ok(Accept::new())
        })
        .await
    });
    let err = wscodec::connect(a, "ws://localhost/").await.unwrap_err();
    let Error::Handshake(HandshakeError::UnexpectedStatus(response)) = err else {
        panic!("{err:?}");
    };
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers().get("www-authenticate"), Some("Bearer"));
    assert_eq!(response.body(), b"token required");
    assert!(!response.is_body_truncated());
    let server_err = server.await.unwrap().unwrap_err();
    assert!(matches!(
        server_err,
        Error::Handshake(HandshakeError::Rejected(401))
    ));
}

#[tokio::test]
async fn callback_rejection_reaches_the_wire_intact() {
    let (mut raw, io) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(wscodec::accept_with(
        io,
        Config::default(),
        |_: &Request| Err(Reject::new(403).body("origin not allowed")),
    ));
    raw.write_all(request_with("").as_bytes()).await.unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
    assert!(answer.contains("Content-Length: 18\r\n"));
    assert!(answer.ends_with("\r\n\r\norigin not allowed"));
    assert!(server.await.unwrap().is_err());
}

#[tokio::test]
async fn unsupported_version_gets_426_naming_version_13() {
    let request = request_with("").replace("Version: 13", "Version: 8");
    let (answer, result) = raw_handshake(request.into_bytes(), Config::default()).await;
    assert!(answer.starts_with("HTTP/1.1 426 "), "{answer}");
    assert!(answer.contains("Sec-WebSocket-Version: 13\r\n"));
    assert!(matches!(
        result,
        Err(Error::Handshake(HandshakeError::UnsupportedVersion))
    ));
}

#[tokio::test]
async fn missing_upgrade_gets_400() {
    let request = request_with("").replace("Upgrade: websocket\r\n", "");
    let (answer, _) = raw_handshake(request.into_bytes(), Config::default()).await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
}

#[tokio::test]
async fn one_mebibyte_of_headers_gets_431_without_buffering_it() {
    let mut request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Junk: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 1 << 20));
    let (answer, result) = raw_handshake(request, Config::default()).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    assert!(matches!(
        result,
        Err(Error::Handshake(HandshakeError::HeaderTooLarge))
    ));
}

#[tokio::test]
async fn ten_thousand_header_lines_get_431() {
    let mut extra = String::new();
    for i in 0..10_000 {
        extra.push_str(&format!("X-{i}: v\r\n"));
    }
    let config = Config::default().limits(Limits::default().max_header_bytes(1 << 20));
    let (answer, result) = raw_handshake(request_with(&extra).into_bytes(), config).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    assert!(matches!(
        result,
        Err(Error::Handshake(HandshakeError::TooManyHeaders))
    ));
}

#[tokio::test]
async fn handshake_dribbled_one_byte_at_a_time_completes() {
    let (mut raw, io) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(wscodec::accept(io));
    for byte in request_with("").bytes() {
        raw.write_all(&[byte]).await.unwrap();
        tokio::task::yield_now().await;
    }
    let mut ws = server.await.unwrap().unwrap();
    raw.write_all(&client_frame(true, 0x1, b"done"))
        .await
        .unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("done"));
}

#[tokio::test(start_paused = true)]
async fn stalled_handshake_times_out() {
    let (mut raw, io) = tokio::io::duplex(1 << 16);
    let config = Config::default().handshake_timeout(Some(Duration::from_secs(5)));
    let server = tokio::spawn(wscodec::accept_with(io, config, |_: &Request| {
        Ok(Accept::new())
    }));
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let err = server.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Handshake(HandshakeError::Timeout)));
}

#[tokio::test]
async fn echo_over_loopback_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wscodec::accept(tcp).await.unwrap();
        while let Some(Ok(m)) = ws.next().await {
            if !m.is_control() {
                ws.send(m).await.unwrap();
            }
        }
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, _) = wscodec::connect(tcp, &format!("ws://{addr}/"))
        .await
        .unwrap();
    for len in [0usize, 125, 126, 65535, 65536, 1 << 20] {
        let m = Message::binary(vec![len as u8; len]);
        ws.send(m.clone()).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), m);
    }
    ws.close().await.unwrap();
    while ws.next().await.is_some() {}
    server.await.unwrap();
}

/// A raw server on the other end of a pipe: reads the client's request head,
/// writes `answer`, then keeps the pipe open (`hold`) or closes it. Returns
/// the request as read.
fn raw_server(
    io: tokio::io::DuplexStream,
    answer: Vec<u8>,
    hold: bool,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut io = io;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && io.read(&mut byte).await.unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let _ = io.write_all(&answer).await;
        if hold {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        String::from_utf8_lossy(&head).into_owned()
    })
}

async fn refused(answer: Vec<u8>, hold: bool, config: Config) -> Box<wscodec::handshake::Response> {
    let (a, b) = tokio::io::duplex(1 << 20);
    let _server = raw_server(b, answer, hold);
    let request = ClientRequest::new("ws://localhost/").unwrap();
    match wscodec::connect_with(a, request, config).await {
        Err(Error::Handshake(HandshakeError::UnexpectedStatus(response))) => response,
        other => panic!("{:?}", other.map(|(_, r)| r)),
    }
}

#[tokio::test]
async fn a_refused_body_is_bounded_by_the_limit_not_by_its_declared_length() {
    let mut answer = b"HTTP/1.1 500 Oops\r\nContent-Length: 1000000000000000\r\n\r\n".to_vec();
    answer.extend(vec![b'x'; 100 << 10]);
    let config = Config::default().limits(Limits::default().max_response_body(1024));
    // The server holds the connection open: the client stops at the limit
    // instead of waiting for the petabyte it was promised.
    let response = tokio::time::timeout(Duration::from_secs(5), refused(answer, true, config))
        .await
        .expect("stopped reading at the limit");
    assert_eq!(response.status(), 500);
    assert_eq!(response.body(), &[b'x'; 1024][..]);
    assert!(response.is_body_truncated());
}

#[tokio::test]
async fn a_chunked_refused_body_is_decoded() {
    let answer = b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n\
        4;ext=1\r\n{\"er\r\na\r\nror\":\"no\"}\r\n0\r\n\r\n"
        .to_vec();
    let response = refused(answer, true, Config::default()).await;
    assert_eq!(response.body(), br#"{"error":"no"}"#);
    assert!(!response.is_body_truncated());
    let config = Config::default().limits(Limits::default().max_response_body(3));
    let answer = b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n\
        a\r\n0123456789\r\n0\r\n\r\n"
        .to_vec();
    let response = refused(answer, true, config).await;
    assert_eq!(
        (response.body(), response.is_body_truncated()),
        (&b"012"[..], true)
    );
}

#[tokio::test]
async fn a_refused_body_without_length_is_read_until_the_server_closes() {
    let answer = b"HTTP/1.1 404 Not Found\r\n\r\nno such room".to_vec();
    let response = refused(answer, false, Config::default()).await;
    assert_eq!(response.body(), b"no such room");
    assert!(!response.is_body_truncated());
}

#[tokio::test]
async fn a_refused_body_cut_by_the_handshake_timeout_keeps_what_came() {
    let answer = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 100\r\n\r\npartial".to_vec();
    let config = Config::default().handshake_timeout(Some(Duration::from_millis(300)));
    let response = refused(answer, true, config).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.body(), b"partial");
    assert!(response.is_body_truncated());
}

#[tokio::test]
async fn wss_over_a_transport_not_marked_secure_is_refused_before_a_byte_is_written() {
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let err = wscodec::connect(a, "wss://localhost/").await.unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::TlsRequired)),
        "{err:?}"
    );
    let mut sent = Vec::new();
    b.read_to_end(&mut sent).await.unwrap();
    assert!(sent.is_empty(), "{}", String::from_utf8_lossy(&sent));

    // Marked secure, the same request goes out (and gets its answer).
    let (a, b) = tokio::io::duplex(1 << 16);
    let server = raw_server(b, b"HTTP/1.1 418 Teapot\r\n\r\n".to_vec(), false);
    let request = ClientRequest::new("wss://localhost/")
        .unwrap()
        .secure_transport();
    let err = wscodec::connect_with(a, request, Config::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::UnexpectedStatus(ref r)) if r.status() == 418)
    );
    assert!(server.await.unwrap().starts_with("GET / HTTP/1.1\r\n"));
}

#[tokio::test]
async fn a_custom_host_header_is_sent_once_in_place_of_the_authority() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let server = raw_server(b, b"HTTP/1.1 404 Not Found\r\n\r\n".to_vec(), false);
    let request = ClientRequest::new("ws://127.0.0.1:9/")
        .unwrap()
        .header("host", "chat.example");
    let _ = wscodec::connect_with(a, request, Config::default()).await;
    let head = server.await.unwrap();
    let hosts: Vec<&str> = head
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("host:"))
        .collect();
    assert_eq!(hosts, ["Host: chat.example"], "{head}");
}

/// Regression: `Reject::new` used to turn every status outside 400–599 into
/// 500, so a wscodec server could not redirect a WebSocket (RFC 6455 §4.1).
#[tokio::test]
async fn a_server_redirects_with_a_3xx_reject_and_the_connector_follows_it() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let ws =
                    wscodec::accept_with(tcp, wscodec::Config::default(), |r| match r.path() {
                        "/old" => {
                            Err(wscodec::handshake::Reject::new(307).header("Location", "/new"))
                        }
                        _ => Ok(wscodec::handshake::Accept::new()),
                    })
                    .await;
                if let Ok(mut ws) = ws {
                    while let Some(Ok(m)) = ws.next().await {
                        if !m.is_control() && ws.send(m).await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
    let url = format!("ws://{addr}/old");
    let refused = wscodec::client::Connector::new()
        .connect(&url)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::Handshake(HandshakeError::UnexpectedStatus(r))
            if r.status() == 307 && r.headers().get("location") == Some("/new")),
        "{refused:?}"
    );
    let (mut ws, response) = wscodec::client::Connector::new()
        .max_redirects(1)
        .connect(&url)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    ws.send(Message::text("moved")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("moved"));
}
