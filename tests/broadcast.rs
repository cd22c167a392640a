//! The chat server of `examples/broadcast` with the crate's own client: rooms,
//! fan-out, slow clients, limits, refusals and shutdown.
// The example's items are `pub` for this file, which includes it as a module.
#![allow(unreachable_pub)]

#[allow(dead_code)]
#[path = "../examples/broadcast/main.rs"]
mod broadcast;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use broadcast::{Options, Origins};
use futures::{SinkExt, StreamExt};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use wscodec::{ClientRequest, CloseCode, Config, Error, HandshakeError, Message, WebSocket};

type Client = WebSocket<TcpStream>;

/// Nothing in these tests should take this long; a stall fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(30);

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn start(options: Options) -> Running {
        let listener = broadcast::listen("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(broadcast::serve(listener, options, async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            stop: Some(stop),
            server,
        }
    }

    fn url(&self, room: &str, name: &str) -> String {
        format!("ws://{}/ws/{room}?name={name}", self.addr)
    }

    /// Connects and waits for the welcome, after which the member is in the room.
    async fn join(&self, room: &str, name: &str) -> Client {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        self.join_over(tcp, room, name).await
    }

    async fn join_over(&self, tcp: TcpStream, room: &str, name: &str) -> Client {
        let (mut ws, _) = wscodec::connect(tcp, &self.url(room, name)).await.unwrap();
        let welcome = next_text(&mut ws).await;
        assert_eq!(field(&welcome, "type"), Some("welcome"), "{welcome}");
        ws
    }

    async fn try_join(&self, room: &str, origin: Option<&str>) -> Result<Client, Error> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let mut request = ClientRequest::new(&self.url(room, "x")).unwrap();
        if let Some(origin) = origin {
            request = request.origin(origin);
        }
        wscodec::connect_with(tcp, request, Config::default())
            .await
            .map(|(ws, _)| ws)
    }

    /// Stops the server and waits for it. Members still connected are sent
    /// 1001 and given the close grace to answer: drop or read them first.
    async fn shut_down(mut self) {
        let _ = self.stop.take().unwrap().send(());
        timeout(DEADLINE, self.server)
            .await
            .expect("the server stops within its close grace")
            .unwrap()
            .unwrap();
    }
}

/// The next text message, skipping nothing else.
async fn next_text(
    ws: &mut (impl futures::Stream<Item = Result<Message, Error>> + Unpin),
) -> String {
    match timeout(DEADLINE, ws.next())
        .await
        .expect("a message in time")
    {
        Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// The raw value of `key` in a flat JSON object from the server: a string's
/// contents (the tests use no characters that need escaping) or a number.
fn field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[start..];
    match rest.strip_prefix('"') {
        Some(string) => string.split('"').next(),
        None => rest.split([',', '}']).next(),
    }
}

/// What a member has received: checks that chat messages arrive in order,
/// once each, and only from the members of its room; keeps the notices.
struct Inbox {
    me: String,
    next_seq: HashMap<String, usize>,
    notices: Vec<String>,
}

impl Inbox {
    fn new(me: &str, senders: &[String]) -> Inbox {
        Inbox {
            me: me.to_owned(),
            next_seq: senders.iter().map(|s| (s.clone(), 0)).collect(),
            notices: Vec::new(),
        }
    }

    /// Reads until every sender's first `count` messages have arrived.
    async fn receive_until(
        &mut self,
        rx: &mut (impl futures::Stream<Item = Result<Message, Error>> + Unpin),
        count: usize,
        padding: &str,
    ) {
        let me = &self.me;
        while self.next_seq.values().any(|&n| n < count) {
            let text = match timeout(DEADLINE, rx.next()).await.expect("no stall") {
                Some(Ok(Message::Text(text))) => text,
                other => panic!("{me}: expected text, got {other:?}"),
            };
            if field(&text, "type") != Some("message") {
                self.notices.push(text.as_str().to_owned());
                continue;
            }
            let name = field(&text, "name").unwrap();
            let body = field(&text, "text").unwrap();
            let Some(expected) = self.next_seq.get_mut(name) else {
                panic!("{me} got a message from {name}, who is not in its room");
            };
            assert_eq!(
                body,
                format!("{name} {expected} {padding}"),
                "{me}: {name}'s messages out of order or repeated"
            );
            *expected += 1;
        }
    }
}

/// Reads what is left until the stream ends; returns the chat messages seen and
/// the close frame's code, if a close frame came.
async fn read_to_end(ws: &mut Client) -> (usize, Option<CloseCode>) {
    let mut messages = 0;
    let mut code = None;
    while let Some(item) = timeout(DEADLINE, ws.next()).await.expect("the stream ends") {
        match item {
            Ok(Message::Text(text)) if field(&text, "type") == Some("message") => messages += 1,
            Ok(Message::Close(frame)) => code = frame.map(|f| f.code),
            Ok(_) => {}
            Err(_) => break, // the connection ended without a close frame
        }
    }
    (messages, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_reaches_each_member_of_its_room_once_in_order_while_a_slow_member_is_dropped(
) {
    const MEMBERS: usize = 5;
    const COUNT: usize = 40;
    let options = Options {
        queue_capacity: 16,
        ..Options::default()
    };
    let server = Running::start(options).await;

    // A member of "red" that never reads, with a small receive buffer so that
    // its backlog piles up in the server quickly.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.addr).await.unwrap();
    let mut slow = server.join_over(tcp, "red", "slow").await;

    let padding = "x".repeat(4000);
    let mut members = Vec::new();
    for room in ["red", "blue"] {
        let names: Vec<String> = (0..MEMBERS).map(|i| format!("{room}{i}")).collect();
        for name in &names {
            members.push((
                room,
                name.clone(),
                names.clone(),
                server.join(room, name).await,
            ));
        }
    }

    // Each member sends its messages in rounds: the next one once it has
    // received everyone's previous one. This keeps the test's own readers
    // (unoptimized builds decode slowly) within a round of each other, so
    // only the member that never reads falls behind.
    let tasks: Vec<_> = members
        .into_iter()
        .map(|(room, me, senders, mut ws)| {
            let padding = padding.clone();
            tokio::spawn(async move {
                let mut inbox = Inbox::new(&me, &senders);
                for round in 0..COUNT {
                    ws.send(Message::text(format!("{me} {round} {padding}")))
                        .await
                        .unwrap();
                    inbox.receive_until(&mut ws, round + 1, &padding).await;
                }
                ws.close().await.unwrap();
                let (extra, _) = read_to_end(&mut ws).await;
                assert_eq!(extra, 0, "{me} got messages after all of its room's");
                (room, me, inbox.notices)
            })
        })
        .collect();
    for task in tasks {
        let (room, me, notices) = timeout(DEADLINE, task).await.unwrap().unwrap();
        let dropped_slow = notices.iter().any(|n| {
            field(n, "type") == Some("leave")
                && field(n, "name") == Some("slow")
                && field(n, "reason") == Some("too slow")
        });
        assert_eq!(dropped_slow, room == "red", "{me}: {notices:?}");
    }

    // Everyone else finished while the slow member had not read a byte: it
    // holds no one up. Its connection ends before it got everything, with
    // 1008 if it is still there to receive the close frame.
    let (messages, code) = read_to_end(&mut slow).await;
    assert!(messages < MEMBERS * COUNT, "got all {messages} messages");
    assert!(matches!(code, None | Some(broadcast::TOO_SLOW)), "{code:?}");
    server.shut_down().await;
}

#[tokio::test]
async fn a_member_that_falls_behind_gets_its_backlog_then_close_1008() {
    let options = Options {
        queue_capacity: 4,
        ..Options::default()
    };
    let server = Running::start(options).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.addr).await.unwrap();
    let mut slow = server.join_over(tcp, "room", "slow").await;
    let mut fast = server.join("room", "fast").await;

    // The fast member sends to the room and reads its own message back, again
    // and again, until it hears that the slow one was dropped.
    let chunk = "y".repeat(8000);
    let dropped = timeout(DEADLINE, async {
        loop {
            fast.send(Message::text(chunk.as_str())).await.unwrap();
            loop {
                let text = next_text(&mut fast).await;
                match field(&text, "type") {
                    Some("message") => break,
                    Some("leave") => return text,
                    _ => {}
                }
            }
        }
    })
    .await
    .expect("the slow member is dropped");
    assert_eq!(field(&dropped, "name"), Some("slow"));
    assert_eq!(field(&dropped, "reason"), Some("too slow"));
    assert_eq!(field(&dropped, "members"), Some("1"));

    let (messages, code) = read_to_end(&mut slow).await;
    assert!(messages > 0);
    assert_eq!(code, Some(CloseCode::POLICY_VIOLATION));
    fast.send(Message::text("still here")).await.unwrap();
    loop {
        let text = next_text(&mut fast).await;
        if field(&text, "text") == Some("still here") {
            break;
        }
    }
    drop(fast);
    server.shut_down().await;
}

#[tokio::test]
async fn binary_messages_are_relayed_as_binary_to_the_whole_room() {
    let server = Running::start(Options::default()).await;
    let mut alice = server.join("bin", "alice").await;
    let mut bob = server.join("bin", "bob").await;
    let mut other = server.join("elsewhere", "eve").await;
    let _ = next_text(&mut alice).await; // bob joined

    let payload = vec![0u8, 159, 146, 150, 255];
    alice.send(Message::binary(payload.clone())).await.unwrap();
    for ws in [&mut alice, &mut bob] {
        let got = timeout(DEADLINE, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got, Message::binary(payload.clone()));
    }
    other.send(Message::text("ping")).await.unwrap();
    let text = next_text(&mut other).await;
    assert_eq!(field(&text, "text"), Some("ping"), "no binary leaked here");
    drop((alice, bob, other));
    server.shut_down().await;
}

#[tokio::test]
async fn joins_renames_and_leaves_are_announced_with_names_and_counts() {
    let server = Running::start(Options::default()).await;
    let mut alice = server.join("hall", "alice").await;
    let (mut bob, _) = wscodec::connect(
        TcpStream::connect(server.addr).await.unwrap(),
        &server.url("hall", "Bob%20B"),
    )
    .await
    .unwrap();
    let welcome = next_text(&mut bob).await;
    assert!(
        welcome.starts_with(
            r#"{"type":"welcome","room":"hall","name":"Bob B","members":["alice","Bob B"],"time":"#
        ),
        "{welcome}"
    );

    let joined = next_text(&mut alice).await;
    assert_eq!(field(&joined, "type"), Some("join"));
    assert_eq!(field(&joined, "name"), Some("Bob B"));
    assert_eq!(field(&joined, "members"), Some("2"));

    bob.send(Message::text("hi \"all\"")).await.unwrap();
    let said = next_text(&mut alice).await;
    assert!(
        said.starts_with(r#"{"type":"message","name":"Bob B","text":"hi \"all\"","time":"#),
        "{said}"
    );
    assert!(field(&said, "time").unwrap().parse::<u64>().unwrap() > 1_600_000_000_000);

    assert_eq!(next_text(&mut bob).await, said, "the sender gets it too");

    bob.send(Message::text("/name Robert")).await.unwrap();
    for ws in [&mut alice, &mut bob] {
        let renamed = next_text(ws).await;
        assert!(
            renamed.starts_with(r#"{"type":"rename","from":"Bob B","name":"Robert","time":"#),
            "{renamed}"
        );
    }
    bob.send(Message::text("it's me")).await.unwrap();
    let said = next_text(&mut alice).await;
    assert_eq!(field(&said, "name"), Some("Robert"));

    bob.close().await.unwrap();
    while bob.next().await.is_some() {}
    let left = next_text(&mut alice).await;
    assert_eq!(field(&left, "type"), Some("leave"));
    assert_eq!(field(&left, "name"), Some("Robert"));
    assert_eq!(field(&left, "members"), Some("1"));
    assert_eq!(field(&left, "reason"), None);
    drop(alice);
    server.shut_down().await;
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_1001() {
    let server = Running::start(Options::default()).await;
    let mut readers = Vec::new();
    for (room, name) in [("a", "one"), ("a", "two"), ("b", "three")] {
        let mut ws = server.join(room, name).await;
        readers.push(tokio::spawn(async move { read_to_end(&mut ws).await }));
    }
    let started = tokio::time::Instant::now();
    server.shut_down().await;
    assert!(
        started.elapsed() < broadcast::CLOSE_GRACE,
        "members that answer the close do not keep the server waiting"
    );
    for reader in readers {
        let (_, code) = reader.await.unwrap();
        assert_eq!(code, Some(CloseCode::GOING_AWAY));
    }
}

#[tokio::test]
async fn origins_other_than_the_servers_own_are_refused_with_403() {
    let server = Running::start(Options::default()).await;
    let own = format!("http://{}", server.addr);
    assert!(server.try_join("r", Some(&own)).await.is_ok());
    assert!(server.try_join("r", None).await.is_ok(), "not a browser");
    let refused = server.try_join("r", Some("http://evil.example")).await;
    assert!(matches!(
        refused,
        Err(Error::Handshake(HandshakeError::UnexpectedStatus(ref r))) if r.status() == 403
    ));
    server.shut_down().await;

    let options = Options {
        origins: Origins::List(vec!["https://chat.example".into()]),
        ..Options::default()
    };
    let server = Running::start(options).await;
    assert!(server
        .try_join("r", Some("https://chat.example"))
        .await
        .is_ok());
    let own = format!("http://{}", server.addr);
    assert!(server.try_join("r", Some(&own)).await.is_err());
    server.shut_down().await;
}

#[tokio::test]
async fn connections_beyond_the_maximum_are_refused_with_503_until_one_leaves() {
    let options = Options {
        max_connections: 2,
        ..Options::default()
    };
    let server = Running::start(options).await;
    let mut first = server.join("r", "one").await;
    let _second = server.join("r", "two").await;
    let refused = server.try_join("r", None).await;
    assert!(matches!(
        refused,
        Err(Error::Handshake(HandshakeError::UnexpectedStatus(ref r))) if r.status() == 503
    ));

    first.close().await.unwrap();
    while first.next().await.is_some() {}
    // The server frees the slot once it has seen the connection end.
    let accepted = timeout(DEADLINE, async {
        loop {
            if let Ok(ws) = server.try_join("r", None).await {
                return ws;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(accepted.is_ok());
    drop((accepted, _second));
    server.shut_down().await;
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    http(addr, "GET", path).await
}

async fn http(addr: SocketAddr, method: &str, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    timeout(DEADLINE, tcp.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    response
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_and_other_paths_get_404() {
    let server = Running::start(Options::default()).await;
    let page = http_get(server.addr, "/").await;
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("Content-Type: text/html; charset=utf-8\r\n"));
    assert!(page.contains(r#"<script src="/chat.js" defer></script>"#));
    let (head, body) = page.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
    assert!(head.contains("Content-Security-Policy: default-src 'self'"));
    let head_only = http(server.addr, "HEAD", "/").await;
    assert_eq!(
        head_only,
        format!("{head}\r\n\r\n"),
        "HEAD: the same head, no body"
    );
    let post = http(server.addr, "POST", "/").await;
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");

    let script = http_get(server.addr, "/chat.js").await;
    assert!(script.contains("Content-Type: text/javascript"));
    assert!(script.contains("new WebSocket("));
    assert!(http_get(server.addr, "/chat.css")
        .await
        .contains("Content-Type: text/css"));

    for path in ["/nope", "/ws/", "/ws/bad%20room", "/ws/a/b"] {
        let response = http_get(server.addr, path).await;
        assert!(response.starts_with("HTTP/1.1 404 "), "{path}: {response}");
    }
    // A room's path without an upgrade is not a WebSocket handshake.
    let response = http_get(server.addr, "/ws/lobby").await;
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    server.shut_down().await;
}

/// A self-signed certificate for 127.0.0.1 in PEM files named after `test`
/// (tests run at once): the files' names, and the certificate.
fn tls_files(test: &str) -> (broadcast::TlsFiles, CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("broadcast-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = broadcast::TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, certified.cert.pem()).unwrap();
    std::fs::write(&files.key, certified.key_pair.serialize_pem()).unwrap();
    (files, certified.cert.der().clone())
}

/// A client configuration that trusts `cert` and offers `alpn`.
fn tls_client(cert: &CertificateDer<'static>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

type TlsClient = WebSocket<tokio_rustls::client::TlsStream<TcpStream>>;

async fn tls_connect(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Joins over TLS and HTTP/1.1 as a page of the server would; returns the
/// welcome too.
async fn join_tls(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    room: &str,
    name: &str,
) -> (TlsClient, String) {
    let tls = tls_connect(addr, config).await;
    let url = format!("wss://{addr}/ws/{room}?name={name}");
    let request = ClientRequest::new(&url)
        .unwrap()
        .origin(format!("https://{addr}"))
        .secure_transport();
    let (mut ws, _) = wscodec::connect_with(tls, request, Config::default())
        .await
        .unwrap();
    let welcome = next_text(&mut ws).await;
    assert_eq!(field(&welcome, "type"), Some("welcome"), "{welcome}");
    (ws, welcome)
}

#[tokio::test]
async fn over_tls_an_http11_client_gets_the_page_and_a_websocket_as_over_tcp() {
    let (files, cert) = tls_files("http11");
    let client = tls_client(&cert, &[b"http/1.1"]);
    let server = Running::start(Options {
        tls: Some(files),
        ..Options::default()
    })
    .await;
    let mut tls = tls_connect(server.addr, &client).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let request = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut page = Vec::new();
    // The server closes after the response, with or without close_notify.
    let _ = timeout(DEADLINE, tls.read_to_end(&mut page)).await.unwrap();
    let page = String::from_utf8(page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("X-Broadcast-Connection: 1\r\n"), "{page}");

    let (mut ws, welcome) = join_tls(server.addr, &client, "lobby", "tls").await;
    assert_eq!(field(&welcome, "transport"), Some("http/1.1"), "{welcome}");
    assert_eq!(field(&welcome, "connection"), Some("2"), "{welcome}");
    assert_eq!(field(&welcome, "deflate"), Some("false"), "{welcome}");
    ws.send(Message::text("over TLS")).await.unwrap();
    assert_eq!(field(&next_text(&mut ws).await, "text"), Some("over TLS"));
    ws.close().await.unwrap();
    while ws.next().await.is_some() {}
    server.shut_down().await;
}

#[cfg(feature = "http2")]
mod over_h2 {
    //! The same over HTTP/2: the page and the WebSockets on streams of one
    //! connection, through the crate's own client (`wscodec::h2::connect`).

    use super::*;

    use ::h2::client::SendRequest;
    use bytes::Bytes;
    use wscodec::h2::{H2Error, H2Stream};

    /// An HTTP/2 connection to the server, driven by a task of its own.
    async fn h2_connect(
        addr: SocketAddr,
        config: &Arc<rustls::ClientConfig>,
    ) -> SendRequest<Bytes> {
        let tls = tls_connect(addr, config).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        // No streams before the server's SETTINGS: then `connect` knows at
        // once whether they allow extended CONNECT.
        let (send, connection) = ::h2::client::Builder::new()
            .initial_max_send_streams(0)
            .handshake::<_, Bytes>(tls)
            .await
            .unwrap();
        tokio::spawn(connection);
        send
    }

    /// GET `path`: the status, the `x-broadcast-connection` and the body.
    async fn get(
        send: &mut SendRequest<Bytes>,
        addr: SocketAddr,
        path: &str,
    ) -> (u16, u64, String) {
        let request = http::Request::get(format!("https://{addr}{path}"))
            .body(())
            .unwrap();
        let (response, _) = send
            .clone()
            .ready()
            .await
            .unwrap()
            .send_request(request, true)
            .unwrap();
        let response = timeout(DEADLINE, response).await.unwrap().unwrap();
        let status = response.status().as_u16();
        let connection = response
            .headers()
            .get("x-broadcast-connection")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = timeout(DEADLINE, body.data()).await.unwrap() {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        (status, connection, String::from_utf8(bytes).unwrap())
    }

    fn client_config() -> Config {
        #[cfg(feature = "deflate")]
        return Config::default().deflate(Some(wscodec::deflate::DeflateConfig::default()));
        #[cfg(not(feature = "deflate"))]
        Config::default()
    }

    async fn join_h2(
        send: &mut SendRequest<Bytes>,
        addr: SocketAddr,
        room: &str,
        name: &str,
        origin: &str,
    ) -> Result<(WebSocket<H2Stream>, String), H2Error> {
        let request = http::Request::get(format!("wss://{addr}/ws/{room}?name={name}"))
            .header("origin", origin)
            .body(())
            .unwrap();
        let (mut ws, _) = wscodec::h2::connect(send, request, client_config()).await?;
        let welcome = match timeout(DEADLINE, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
            other => panic!("expected the welcome, got {other:?}"),
        };
        Ok((ws, welcome))
    }

    #[tokio::test]
    async fn the_page_and_its_websockets_share_one_http2_connection_and_chat_with_tcp_members() {
        let (files, cert) = tls_files("h2");
        let client = tls_client(&cert, &[b"h2", b"http/1.1"]);
        let server = Running::start(Options {
            tls: Some(files),
            ..Options::default()
        })
        .await;
        let addr = server.addr;
        let origin = format!("https://{addr}");
        let mut send = h2_connect(addr, &client).await;
        let (status, connection, page) = get(&mut send, addr, "/").await;
        assert_eq!(status, 200);
        assert!(page.contains(r#"<script src="/chat.js" defer></script>"#));
        assert_eq!(
            get(&mut send, addr, "/chat.js").await.1,
            connection,
            "one connection"
        );
        assert_eq!(get(&mut send, addr, "/nope").await.0, 404);

        // Two sockets on the page's connection.
        let (mut alice, welcome) = join_h2(&mut send, addr, "lobby", "alice", &origin)
            .await
            .unwrap();
        assert_eq!(field(&welcome, "transport"), Some("h2"), "{welcome}");
        assert_eq!(
            field(&welcome, "connection"),
            Some(connection.to_string().as_str())
        );
        let deflate = if cfg!(feature = "deflate") {
            "true"
        } else {
            "false"
        };
        assert_eq!(field(&welcome, "deflate"), Some(deflate), "{welcome}");
        let (mut bob, _) = join_h2(&mut send, addr, "lobby", "bob", &origin)
            .await
            .unwrap();
        assert_eq!(field(&next_text(&mut alice).await, "type"), Some("join"));
        // And one over HTTP/1.1, in the same room.
        let http11 = tls_client(&cert, &[b"http/1.1"]);
        let (mut carol, welcome) = join_tls(addr, &http11, "lobby", "carol").await;
        assert_eq!(field(&welcome, "transport"), Some("http/1.1"), "{welcome}");
        for ws in [&mut alice, &mut bob] {
            assert_eq!(field(&next_text(ws).await, "type"), Some("join"));
        }

        // Long enough to be compressed for the deflate members.
        let line = "over one HTTP/2 stream of many. ".repeat(100);
        alice.send(Message::text(line.clone())).await.unwrap();
        for ws in [&mut alice, &mut bob] {
            assert_eq!(field(&next_text(ws).await, "text"), Some(line.as_str()));
        }
        assert_eq!(
            field(&next_text(&mut carol).await, "text"),
            Some(line.as_str())
        );
        carol.send(Message::text("from TCP")).await.unwrap();
        for ws in [&mut alice, &mut bob] {
            assert_eq!(field(&next_text(ws).await, "text"), Some("from TCP"));
        }

        // The same refusals as over HTTP/1.1, as statuses on the stream.
        let refused = join_h2(&mut send, addr, "lobby", "eve", "https://evil.example").await;
        assert_eq!(refused.err().and_then(|e| e.status()), Some(403));

        // Bob closes; the connection and Alice carry on.
        bob.close().await.unwrap();
        while bob.next().await.is_some() {}
        let leave = next_text(&mut alice).await;
        assert_eq!(field(&leave, "type"), Some("leave"), "{leave}");
        assert_eq!(get(&mut send, addr, "/").await.1, connection);

        // Shutdown: 1001 on the stream, after which it ends.
        let _ = next_text(&mut carol).await; // bob's leave
        drop(carol);
        let stop = tokio::spawn(server.shut_down());
        let mut code = None;
        while let Some(message) = timeout(DEADLINE, alice.next()).await.unwrap() {
            if let Ok(Message::Close(frame)) = message {
                code = frame.map(|f| f.code);
            }
        }
        assert_eq!(code, Some(CloseCode::GOING_AWAY));
        stop.await.unwrap();
    }

    #[tokio::test]
    async fn with_no_h2_websocket_the_server_does_not_allow_extended_connect() {
        let (files, cert) = tls_files("no-h2-ws");
        let client = tls_client(&cert, &[b"h2"]);
        let server = Running::start(Options {
            tls: Some(files),
            h2_websocket: false,
            ..Options::default()
        })
        .await;
        let mut send = h2_connect(server.addr, &client).await;
        assert_eq!(get(&mut send, server.addr, "/").await.0, 200);
        let origin = format!("https://{}", server.addr);
        let refused = join_h2(&mut send, server.addr, "lobby", "x", &origin).await;
        assert!(
            matches!(refused, Err(H2Error::ExtendedConnectDisabled)),
            "{:?}",
            refused.err()
        );
        server.shut_down().await;
    }
}
