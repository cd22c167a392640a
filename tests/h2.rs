//! WebSockets over HTTP/2 (RFC 8441): the crate's client against the crate's
//! server on one h2c connection over loopback TCP (prior knowledge), and bad
//! extended CONNECTs sent with h2's client directly.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wscodec::h2::{H2Error, H2Stream, RequestError};
use wscodec::handshake::{Accept, Request};
use wscodec::{CloseCode, Config, Error, Message, WebSocket};

/// What the server's accept said for one stream: `Ok` or the error.
type Outcome = Result<(), H2Error>;

/// An h2c server that accepts WebSockets (choosing subprotocol `chat` when
/// offered) and echoes on split halves. `close-me` makes it close, `reset-me`
/// makes it drop the stream (RST_STREAM). Each accept's outcome goes to the
/// returned channel.
async fn server(
    builder: h2::server::Builder,
    config: Config,
) -> (SocketAddr, mpsc::UnboundedReceiver<Outcome>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (outcomes, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut connection = builder.handshake::<_, Bytes>(tcp).await.unwrap();
            let config = config.clone();
            let outcomes = outcomes.clone();
            tokio::spawn(async move {
                while let Some(next) = connection.accept().await {
                    let (request, respond) = match next {
                        Ok(next) => next,
                        Err(e) => {
                            eprintln!("server connection failed: {e}");
                            break;
                        }
                    };
                    let outcomes = outcomes.clone();
                    let config = config.clone();
                    tokio::spawn(async move {
                        let accepted =
                            wscodec::h2::accept_with(request, respond, config, |r: &Request| {
                                Ok(match r.subprotocols().any(|p| p == "chat") {
                                    true => Accept::new().subprotocol("chat"),
                                    false => Accept::new(),
                                })
                            });
                        match accepted {
                            Ok(ws) => {
                                let _ = outcomes.send(Ok(()));
                                echo(ws).await;
                            }
                            Err(e) => {
                                let _ = outcomes.send(Err(e));
                            }
                        }
                    });
                }
            });
        }
    });
    (addr, rx)
}

async fn echo(ws: WebSocket<H2Stream>) {
    let (mut tx, mut rx) = ws.split();
    let (queue, mut queued) = mpsc::channel::<Option<Message>>(4);
    let writer = tokio::spawn(async move {
        while let Some(message) = queued.recv().await {
            match message {
                Some(m) => {
                    if tx.send(m).await.is_err() {
                        break;
                    }
                }
                None => return Some(tx), // reset: hand the half back to drop both
            }
        }
        None
    });
    while let Some(message) = rx.next().await {
        match message {
            Ok(Message::Text(t)) if t.as_str() == "close-me" => {
                let _ = queue
                    .send(Some(Message::close(CloseCode(4001), "asked")))
                    .await;
            }
            Ok(Message::Text(t)) if t.as_str() == "reset-me" => {
                let _ = queue.send(None).await;
                let tx = writer.await.unwrap().unwrap();
                // Dropping both halves mid-stream resets it (RFC 8441 §6).
                drop((tx, rx));
                return;
            }
            Ok(m) if m.is_control() => {}
            Ok(m) => {
                if queue.send(Some(m)).await.is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    drop(queue);
    let _ = writer.await;
}

/// h2 counts small DATA frames that wait to be read against a budget and
/// ends the connection (ENHANCE_YOUR_CALM) when it runs out: a thousand
/// sockets each sending a short message at once need more than the default.
const DATA_FRAME_BUDGET: usize = 1 << 20;

fn enabled() -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.enable_connect_protocol()
        .data_frame_budget(DATA_FRAME_BUDGET);
    b
}

async fn client(addr: SocketAddr, builder: h2::client::Builder) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = builder.handshake::<_, Bytes>(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

fn quick_client() -> h2::client::Builder {
    let mut b = h2::client::Builder::new();
    b.initial_max_send_streams(0)
        .data_frame_budget(DATA_FRAME_BUDGET);
    b
}

fn ws_request(addr: SocketAddr) -> http::Request<()> {
    http::Request::get(format!("ws://{addr}/echo"))
        .body(())
        .unwrap()
}

async fn open(
    send: &mut h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    config: Config,
) -> (WebSocket<H2Stream>, http::Response<()>) {
    wscodec::h2::connect(send, ws_request(addr), config)
        .await
        .unwrap()
}

/// A watchdog: every test ends, pass or fail.
async fn within<F: std::future::Future>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("watchdog: the test hung")
}

#[tokio::test]
async fn echoes_text_and_binary_of_every_length_form_fragments_and_pings() {
    within(60, async {
        let (addr, mut outcomes) = server(enabled(), Config::default()).await;
        let mut send = client(addr, quick_client()).await;
        let (mut ws, response) = open(&mut send, addr, Config::default()).await;
        assert_eq!(response.status(), 200);
        assert!(!response.headers().contains_key("sec-websocket-accept"));
        assert!(outcomes.recv().await.unwrap().is_ok());
        for len in [0usize, 125, 126, 65535, 65536, 1 << 20] {
            let text = "é".repeat(len / 2) + &"x".repeat(len % 2);
            ws.send(Message::text(text.clone())).await.unwrap();
            assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            ws.send(Message::binary(data.clone())).await.unwrap();
            assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(data));
        }
        ws.send(Message::Ping(Bytes::from_static(b"p")))
            .await
            .unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Pong(Bytes::from_static(b"p"))
        );
        // A fragmenting client: the server reassembles, echoes whole.
        let (mut frag, _) =
            open(&mut send, addr, Config::default().fragment_size(Some(1000))).await;
        let data = vec![9u8; 10_000];
        frag.send(Message::binary(data.clone())).await.unwrap();
        assert_eq!(frag.next().await.unwrap().unwrap(), Message::binary(data));
    })
    .await;
}

#[tokio::test]
async fn client_close_completes_with_end_stream_both_ways() {
    within(30, async {
        let (addr, _outcomes) = server(enabled(), Config::default()).await;
        let mut send = client(addr, quick_client()).await;
        let (mut ws, _) = open(&mut send, addr, Config::default()).await;
        ws.send(Message::close(CloseCode::NORMAL, "done"))
            .await
            .unwrap();
        // The client's Close completes only once the server's END_STREAM is
        // read: an unanswered one would end with CloseTimeout instead.
        match ws.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::NORMAL),
            other => panic!("expected the server's Close, got {other:?}"),
        }
        assert!(ws.next().await.is_none());
        assert!(
            ws.get_ref().peer_ended(),
            "the server's END_STREAM was read"
        );
        assert!(ws.get_ref().ended(), "we sent END_STREAM");
    })
    .await;
}

#[tokio::test]
async fn server_close_completes_with_end_stream_both_ways() {
    within(30, async {
        let (addr, _outcomes) = server(enabled(), Config::default()).await;
        let mut send = client(addr, quick_client()).await;
        let (mut ws, _) = open(&mut send, addr, Config::default()).await;
        ws.send(Message::text("close-me")).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::close(CloseCode(4001), "asked")
        );
        assert!(ws.next().await.is_none());
        assert!(ws.get_ref().peer_ended());
        assert!(ws.get_ref().ended());
    })
    .await;
}

#[tokio::test]
async fn a_thousand_sockets_share_one_connection_and_closing_some_spares_the_rest() {
    within(120, async {
        let (addr, _outcomes) = server(enabled(), Config::default()).await;
        let send = client(addr, quick_client()).await;
        let mut tasks = Vec::new();
        for i in 0..1000usize {
            let mut send = send.clone();
            tasks.push(tokio::spawn(async move {
                let (mut ws, _) = open(&mut send, addr, Config::default()).await;
                let hello = format!("hello {i}");
                ws.send(Message::text(hello.clone())).await.unwrap();
                assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(hello));
                ws
            }));
        }
        let mut sockets = Vec::new();
        for t in tasks {
            sockets.push(t.await.unwrap());
        }
        // Close every even one; the odd ones go on on the same connection.
        let mut rest = Vec::new();
        let mut closes = Vec::new();
        for (i, mut ws) in sockets.into_iter().enumerate() {
            if i % 2 == 0 {
                closes.push(tokio::spawn(async move {
                    ws.send(Message::close(CloseCode::NORMAL, ""))
                        .await
                        .unwrap();
                    assert!(matches!(ws.next().await, Some(Ok(Message::Close(_)))));
                }));
            } else {
                rest.push((i, ws));
            }
        }
        for c in closes {
            c.await.unwrap();
        }
        for (i, ws) in &mut rest {
            let again = format!("still here {i}");
            ws.send(Message::text(again.clone())).await.unwrap();
            assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(again));
        }
    })
    .await;
}

#[tokio::test]
async fn a_one_kib_window_carries_4_mib_messages_both_ways_on_split_halves() {
    within(120, async {
        let mut server_builder = enabled();
        server_builder
            .initial_window_size(1024)
            .initial_connection_window_size(1024);
        let (addr, _outcomes) = server(server_builder, Config::default()).await;
        let mut client_builder = quick_client();
        client_builder
            .initial_window_size(1024)
            .initial_connection_window_size(1024);
        let mut send = client(addr, client_builder).await;
        let (ws, _) = open(&mut send, addr, Config::default()).await;
        let (mut tx, mut rx) = ws.split();
        const N: usize = 2;
        let message = |i: usize| Message::binary(vec![i as u8; 4 << 20]);
        let writer = tokio::spawn(async move {
            for i in 0..N {
                tx.send(message(i)).await.unwrap();
            }
            tx
        });
        for i in 0..N {
            assert!(
                rx.next().await.unwrap().unwrap() == message(i),
                "message {i}"
            );
        }
        let _tx = writer.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_stream_reset_by_the_peer_ends_the_websocket_and_spares_the_others() {
    within(30, async {
        let (addr, _outcomes) = server(enabled(), Config::default()).await;
        let mut send = client(addr, quick_client()).await;
        let (mut doomed, _) = open(&mut send, addr, Config::default()).await;
        let (mut other, _) = open(&mut send, addr, Config::default()).await;
        doomed.send(Message::text("reset-me")).await.unwrap();
        match doomed.next().await {
            Some(Err(Error::Io(e))) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}")
            }
            other => panic!("expected the reset as an abnormal end, got {other:?}"),
        }
        assert!(doomed.next().await.is_none());
        other.send(Message::text("fine")).await.unwrap();
        assert_eq!(other.next().await.unwrap().unwrap(), Message::text("fine"));
    })
    .await;
}

/// Sends `request` as it is with h2's client; returns the response head.
async fn raw_request(
    send: &mut h2::client::SendRequest<Bytes>,
    request: http::Request<()>,
) -> http::Response<h2::RecvStream> {
    let mut send = send.clone().ready().await.unwrap();
    let (response, _stream) = send.send_request(request, false).unwrap();
    response.await.unwrap()
}

fn connect_request(addr: SocketAddr, protocol: Option<&str>) -> http::request::Builder {
    let mut b = http::Request::builder()
        .method("CONNECT")
        .uri(format!("http://{addr}/echo"))
        .header("sec-websocket-version", "13");
    if let Some(p) = protocol {
        b = b.extension(h2::ext::Protocol::from(p));
    }
    b
}

#[tokio::test]
async fn bad_extended_connects_get_their_status_and_no_websocket() {
    within(30, async {
        let (addr, mut outcomes) = server(enabled(), Config::default()).await;
        let mut send = client(addr, quick_client()).await;
        // A CONNECT with no :protocol is a plain tunnel request (authority form).
        let plain = http::Request::builder()
            .method("CONNECT")
            .uri(addr.to_string())
            .body(())
            .unwrap();
        let unknown = connect_request(addr, Some("webtransport"))
            .body(())
            .unwrap();
        let version = http::Request::builder()
            .method("CONNECT")
            .uri(format!("http://{addr}/echo"))
            .header("sec-websocket-version", "8")
            .extension(h2::ext::Protocol::from("websocket"))
            .body(())
            .unwrap();
        let key = connect_request(addr, Some("websocket"))
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .unwrap();
        let cases = [
            (plain, 400, RequestError::MissingProtocol),
            (
                unknown,
                501,
                RequestError::UnknownProtocol("webtransport".into()),
            ),
            (version, 426, RequestError::UnsupportedVersion),
            (key, 400, RequestError::ForbiddenHeader("Sec-WebSocket-Key")),
        ];
        for (request, status, error) in cases {
            let response = raw_request(&mut send, request).await;
            assert_eq!(response.status(), status, "{error:?}");
            if status == 426 {
                assert_eq!(response.headers()["sec-websocket-version"], "13");
            }
            match outcomes.recv().await.unwrap() {
                Err(H2Error::Request(e)) => assert_eq!(e, error),
                other => panic!("expected no WebSocket for {error:?}, got {other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_client_refuses_a_server_that_does_not_enable_extended_connect() {
    within(30, async {
        let (addr, mut outcomes) = server(h2::server::Builder::new(), Config::default()).await;
        // Both ways of learning the server's SETTINGS: at once (stream limit
        // starting at 0) and by the bounded wait.
        for builder in [quick_client(), h2::client::Builder::new()] {
            let mut send = client(addr, builder).await;
            let err = wscodec::h2::connect(&mut send, ws_request(addr), Config::default())
                .await
                .unwrap_err();
            assert!(matches!(err, H2Error::ExtendedConnectDisabled), "{err}");
        }
        // Nothing reached the server.
        assert!(outcomes.try_recv().is_err());
    })
    .await;
}

#[tokio::test]
async fn subprotocols_are_negotiated_over_h2() {
    within(30, async {
        let (addr, _outcomes) = server(enabled(), Config::default()).await;
        let mut send = client(addr, quick_client()).await;
        let request = http::Request::get(format!("ws://{addr}/echo"))
            .header("sec-websocket-protocol", "other, chat")
            .body(())
            .unwrap();
        let (_ws, response) = wscodec::h2::connect(&mut send, request, Config::default())
            .await
            .unwrap();
        assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    })
    .await;
}

#[cfg(feature = "deflate")]
#[tokio::test]
async fn permessage_deflate_is_negotiated_over_h2() {
    within(30, async {
        let config = Config::default().deflate(Some(wscodec::deflate::DeflateConfig::default()));
        let (addr, _outcomes) = server(enabled(), config.clone()).await;
        let mut send = client(addr, quick_client()).await;
        let (mut ws, response) = open(&mut send, addr, config).await;
        let answer = response.headers()["sec-websocket-extensions"]
            .to_str()
            .unwrap();
        assert!(answer.starts_with("permessage-deflate"), "{answer}");
        let text = "{\"compressible\": true} ".repeat(4000);
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
    })
    .await;
}

/// One HTTP/2 frame: length, type, flags, stream id, payload (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

/// Header fields as HPACK literals without indexing, no Huffman (RFC 7541
/// §6.2.2); every name and value here is under 127 bytes.
fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        out.push(name.len() as u8);
        out.extend(name.as_bytes());
        out.push(value.len() as u8);
        out.extend(value.as_bytes());
    }
    out
}

/// An extended CONNECT without :path, which h2's client cannot send: written
/// frame by frame. h2's server treats it as malformed (RFC 9113 §8.1.1) and
/// resets the stream with PROTOCOL_ERROR before the crate sees it; no
/// WebSocket is made.
#[tokio::test]
async fn an_extended_connect_without_path_is_reset_and_makes_no_websocket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    within(30, async {
        let (addr, mut outcomes) = server(enabled(), Config::default()).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let authority = addr.to_string();
        let block = hpack(&[
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "http"),
            (":authority", &authority),
            ("sec-websocket-version", "13"),
        ]);
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(frame(4, 0, 0, &[]));
        out.extend(frame(1, 0x4, 1, &block));
        tcp.write_all(&out).await.unwrap();
        let reason = loop {
            let mut head = [0u8; 9];
            tcp.read_exact(&mut head).await.unwrap();
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            tcp.read_exact(&mut payload).await.unwrap();
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            match (head[3], stream) {
                (4, 0) if head[4] & 1 == 0 => tcp.write_all(&frame(4, 1, 0, &[])).await.unwrap(),
                (3, 1) => break u32::from_be_bytes(payload[..4].try_into().unwrap()),
                (1, 1) => panic!("the request without :path got a response"),
                _ => {}
            }
        };
        assert_eq!(reason, 1, "PROTOCOL_ERROR");
        assert!(outcomes.try_recv().is_err(), "accept never ran");
    })
    .await;
}

/// hyper 1's HTTP/2 server with `enable_connect_protocol`: the sans-IO
/// `negotiate` and `response`, hyper's upgrade, and `WebSocket::from_agreed`
/// serve the crate's h2 client.
#[tokio::test]
async fn hyper_http2_server_accepts_through_negotiate_and_from_agreed() {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    within(30, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let service = service_fn(
                |mut request: http::Request<hyper::body::Incoming>| async move {
                    let config = Config::default();
                    let protocol = request
                        .extensions()
                        .get::<hyper::ext::Protocol>()
                        .map(|p| p.as_str().to_owned());
                    let agreed = match wscodec::h2::negotiate(
                        &request,
                        protocol.as_deref(),
                        Accept::new(),
                        &config,
                    ) {
                        Ok(agreed) => agreed,
                        Err(e) => {
                            let reject = match e {
                                H2Error::Request(e) => e.to_reject(),
                                _ => wscodec::handshake::Reject::new(500),
                            };
                            return Ok::<_, std::convert::Infallible>(
                                wscodec::h2::reject_response(&reject).map(Full::new),
                            );
                        }
                    };
                    let response = wscodec::h2::response(&agreed).map(|()| Full::new(Bytes::new()));
                    let upgrade = hyper::upgrade::on(&mut request);
                    tokio::spawn(async move {
                        let io = TokioIo::new(upgrade.await.unwrap());
                        let mut ws = WebSocket::from_agreed(io, &agreed, config);
                        while let Some(Ok(message)) = ws.next().await {
                            if !message.is_control() {
                                ws.send(message).await.unwrap();
                            }
                        }
                    });
                    Ok(response)
                },
            );
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .enable_connect_protocol()
                .serve_connection(TokioIo::new(tcp), service)
                .await
                .unwrap();
        });
        let mut send = client(addr, quick_client()).await;
        let (mut ws, response) = open(&mut send, addr, Config::default()).await;
        assert_eq!(response.status(), 200);
        ws.send(Message::text("via hyper")).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text("via hyper")
        );
        ws.send(Message::close(CloseCode::NORMAL, ""))
            .await
            .unwrap();
        assert!(matches!(ws.next().await, Some(Ok(Message::Close(_)))));
    })
    .await;
}
