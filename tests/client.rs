//! The one-call client (`connect_url`, `client::Connector`) against servers
//! this project did not write: Python's `websockets` (tests/python/tls_server.py)
//! over TLS and plain TCP, with its redirects and refusals, and Node's `ws`
//! over `https` (tests/node/https_echo.mjs). The TLS servers use a CA made
//! here with rcgen, which the client trusts through the caller-supplied
//! rustls config.
//!
//! Python comes from `WSCODEC_PYTHON` (default `python3`) and needs
//! `websockets`; Node from `WSCODEC_NODE` (default `node`) with
//! tests/node/node_modules/ws (scripts/install-test-deps.sh). Without them
//! the tests that need them are skipped with a notice on stderr, except under
//! CI (`CI` set), where they fail.

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;
use wscodec::client::Connector;
use wscodec::{ClientRequest, ClientStream, Error, HandshakeError, Message, WebSocket};

/// Every step of a test finishes well within this, or the test fails.
const TIMEOUT: Duration = Duration::from_secs(30);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A missing third party: a notice locally, a failure under CI.
fn missing(what: &str, why: &str, hint: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("client: {what}: {why}; under CI this is a failure: {hint}");
    }
    let _ = writeln!(std::io::stderr(), "client: SKIPPED: {what}: {why}; {hint}");
}

/// The Python to run tls_server.py with, or `None` to skip.
fn python() -> Option<String> {
    let python = std::env::var("WSCODEC_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import websockets"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Some(python),
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = format!(
                "`{python} -c 'import websockets'` failed: {}",
                stderr.lines().last().unwrap_or_default()
            );
            missing(
                "Python websockets",
                &why,
                "set WSCODEC_PYTHON (scripts/python-interop.sh makes a venv)",
            );
            None
        }
        Err(e) => {
            let why = format!("cannot run `{python}`: {e}");
            missing(
                "Python websockets",
                &why,
                "set WSCODEC_PYTHON (scripts/python-interop.sh makes a venv)",
            );
            None
        }
    }
}

/// Node with `ws` installed, or `None` to skip.
#[cfg(feature = "rustls")]
fn node() -> Option<String> {
    let node = std::env::var("WSCODEC_NODE").unwrap_or_else(|_| "node".into());
    let hint = "run scripts/install-test-deps.sh, or set WSCODEC_NODE";
    if !root().join("tests/node/node_modules/ws").is_dir() {
        missing(
            "Node ws",
            "tests/node/node_modules/ws is not installed",
            hint,
        );
        return None;
    }
    match std::process::Command::new(&node).arg("--version").output() {
        Ok(out) if out.status.success() => Some(node),
        other => {
            missing("Node ws", &format!("cannot run `{node}`: {other:?}"), hint);
            None
        }
    }
}

/// A third-party server the test started: killed when dropped.
struct Server {
    _child: Child,
    port: u16,
}

/// Starts `program args`, waits for its "listening on PORT" line, and hands
/// back the rest of its stdout (Node reports its connections there).
async fn start(program: &str, args: &[&str]) -> (Server, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = timeout(TIMEOUT, lines.next_line())
        .await
        .expect("the server did not start in time")
        .unwrap()
        .expect("the server exited before listening");
    let port = line
        .strip_prefix("listening on ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from {program}: {line}"));
    (
        Server {
            _child: child,
            port,
        },
        lines,
    )
}

#[cfg(feature = "rustls")]
/// A CA, and a certificate for `localhost` and `127.0.0.1` it signed,
/// written as PEM files in a fresh directory.
struct Pki {
    dir: PathBuf,
    ca: rustls::pki_types::CertificateDer<'static>,
}

#[cfg(feature = "rustls")]
impl Pki {
    fn new(name: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let dir =
            std::env::temp_dir().join(format!("wscodec-client-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wscodec test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join("chain.pem"), format!("{}{}", leaf.pem(), ca.pem())).unwrap();
        std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki {
            dir,
            ca: ca.der().clone(),
        }
    }

    fn chain(&self) -> String {
        self.dir.join("chain.pem").display().to_string()
    }

    fn key(&self) -> String {
        self.dir.join("key.pem").display().to_string()
    }

    /// A connector that trusts this CA (and nothing else).
    #[cfg(feature = "rustls")]
    fn connector(&self) -> Connector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        Connector::new().tls_config(wscodec::client::tls::client_config(roots))
    }
}

#[cfg(feature = "rustls")]
impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// tls_server.py, plain.
async fn python_server(python: &str) -> Server {
    let script = root()
        .join("tests/python/tls_server.py")
        .display()
        .to_string();
    start(python, &[&script]).await.0
}

/// tls_server.py over TLS with `pki`'s certificate.
#[cfg(feature = "rustls")]
async fn python_tls_server(python: &str, pki: &Pki) -> Server {
    let script = root()
        .join("tests/python/tls_server.py")
        .display()
        .to_string();
    let (chain, key) = (pki.chain(), pki.key());
    start(python, &[&script, "--cert", &chain, "--key", &key])
        .await
        .0
}

#[cfg(feature = "rustls")]
/// Sends text and binary messages, checks each echo, closes with 1000 and
/// waits for the server's Close.
async fn echo_and_close(ws: &mut WebSocket<ClientStream>) {
    for message in [
        Message::text("hello over the one-call client"),
        Message::binary((0..=255u8).cycle().take(70_000).collect::<Vec<u8>>()),
        Message::text("ça va — ünïcödé"),
    ] {
        timeout(TIMEOUT, ws.send(message.clone()))
            .await
            .unwrap()
            .unwrap();
        let echo = timeout(TIMEOUT, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echo, message);
    }
    timeout(TIMEOUT, ws.close()).await.unwrap().unwrap();
    let mut last = None;
    while let Some(m) = timeout(TIMEOUT, ws.next()).await.unwrap() {
        last = Some(m.unwrap());
    }
    match last {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("no clean close from the server: {other:?}"),
    }
}

/// The request headers the Python server saw, from its first message.
async fn seen_headers(ws: &mut WebSocket<ClientStream>) -> serde_like::Map {
    let first = timeout(TIMEOUT, ws.next()).await.unwrap().unwrap().unwrap();
    let Message::Text(text) = first else {
        panic!("expected the headers as text, got {first:?}");
    };
    serde_like::parse(text.as_str())
}

/// Just enough JSON for `{"name": ["value", ...], ...}` of plain strings.
mod serde_like {
    pub(crate) type Map = Vec<(String, Vec<String>)>;

    pub(crate) fn parse(text: &str) -> Map {
        let mut out = Map::new();
        let mut strings = Vec::new();
        let mut chars = text.chars();
        // Collect every JSON string with its nesting depth; names are at
        // depth 1, values at depth 2 (inside their list).
        let mut depth = 0;
        while let Some(c) = chars.next() {
            match c {
                '{' | '[' => depth += 1,
                '}' | ']' => depth -= 1,
                '"' => {
                    let mut s = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '"' => break,
                            '\\' => s.push(chars.next().unwrap_or_default()),
                            c => s.push(c),
                        }
                    }
                    strings.push((depth, s));
                }
                _ => {}
            }
        }
        for (depth, s) in strings {
            if depth == 1 {
                out.push((s, Vec::new()));
            } else if let Some(last) = out.last_mut() {
                last.1.push(s);
            }
        }
        out
    }

    pub(crate) fn get<'a>(map: &'a Map, name: &str) -> Option<&'a [String]> {
        map.iter().find(|(n, _)| n == name).map(|(_, v)| &v[..])
    }
}

fn handshake_error(
    result: Result<(WebSocket<ClientStream>, wscodec::handshake::Response), Error>,
) -> HandshakeError {
    match result {
        Err(Error::Handshake(e)) => e,
        Err(e) => panic!("expected a handshake error, got {e:?}"),
        Ok((_, response)) => panic!("expected a handshake error, got {response:?}"),
    }
}

#[tokio::test]
async fn a_refused_first_address_falls_through_to_the_next() {
    // A listener on 127.0.0.1 only: when `localhost` resolves to ::1 first,
    // that attempt is refused and the client must go on to 127.0.0.1.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let addrs: Vec<_> = tokio::net::lookup_host(("localhost", port))
        .await
        .unwrap()
        .collect();
    if !addrs.first().is_some_and(|a| a.is_ipv6()) {
        let _ = writeln!(
            std::io::stderr(),
            "client: note: localhost resolves to {addrs:?} here, so no address is refused first"
        );
    }
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wscodec::accept(tcp).await.unwrap();
        while let Some(Ok(m)) = ws.next().await {
            if !m.is_control() {
                ws.send(m).await.unwrap();
            }
        }
    });
    let (mut ws, response) = timeout(
        TIMEOUT,
        wscodec::connect_url(&format!("ws://localhost:{port}/")),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), 101);
    assert!(!ws.get_ref().is_tls());
    assert!(
        ws.get_ref().tcp().unwrap().nodelay().unwrap(),
        "TCP_NODELAY is set"
    );
    ws.send(Message::text("through")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("through"));
    ws.close().await.unwrap();
    while ws.next().await.is_some() {}
    server.await.unwrap();
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn wss_to_python_websockets_with_a_private_ca() {
    let Some(python) = python() else { return };
    let pki = Pki::new("python-wss");
    let server = python_tls_server(&python, &pki).await;
    // By name (SNI "localhost", checked against the certificate) ...
    let url = format!("wss://localhost:{}/echo", server.port);
    let (mut ws, response) = timeout(TIMEOUT, pki.connector().connect(&url))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 101);
    assert!(ws.get_ref().is_tls());
    echo_and_close(&mut ws).await;
    // ... and by IP literal (an IP name, no SNI).
    let url = format!("wss://127.0.0.1:{}/echo", server.port);
    let (mut ws, _) = timeout(TIMEOUT, pki.connector().connect(&url))
        .await
        .unwrap()
        .unwrap();
    echo_and_close(&mut ws).await;
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn wss_to_python_websockets_fails_without_trusting_its_ca() {
    let Some(python) = python() else { return };
    let pki = Pki::new("python-untrusted");
    let server = python_tls_server(&python, &pki).await;
    let url = format!("wss://localhost:{}/echo", server.port);
    // The default roots (Mozilla's or the platform's) do not include our CA.
    let err = timeout(TIMEOUT, wscodec::connect_url(&url))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn wss_to_node_ws_over_https_offers_alpn_and_sni() {
    let Some(node) = node() else { return };
    let pki = Pki::new("node-wss");
    let script = root()
        .join("tests/node/https_echo.mjs")
        .display()
        .to_string();
    let (server, mut stdout) = start(&node, &[&script, &pki.chain(), &pki.key()]).await;
    let url = format!("wss://localhost:{}/any/path", server.port);
    let (mut ws, _) = timeout(TIMEOUT, pki.connector().connect(&url))
        .await
        .unwrap()
        .unwrap();
    let report = timeout(TIMEOUT, stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(report, "connection alpn=http/1.1 servername=localhost");
    echo_and_close(&mut ws).await;
}

#[tokio::test]
async fn a_401_keeps_its_challenge_and_json_body() {
    let Some(python) = python() else { return };
    let server = python_server(&python).await;
    let url = format!("ws://127.0.0.1:{}/auth", server.port);
    let err = handshake_error(timeout(TIMEOUT, wscodec::connect_url(&url)).await.unwrap());
    assert_eq!(err.status(), Some(401));
    let HandshakeError::UnexpectedStatus(response) = err else {
        panic!("{err:?}");
    };
    assert_eq!(
        response.headers().get("www-authenticate"),
        Some(r#"Bearer realm="wscodec-test""#)
    );
    assert_eq!(
        response.headers().get("content-type"),
        Some("application/json")
    );
    assert_eq!(
        std::str::from_utf8(response.body()).unwrap(),
        r#"{"error": "token required", "code": 401}"#
    );
    assert!(!response.is_body_truncated());
}

#[tokio::test]
async fn redirects_are_off_by_default_and_the_location_is_readable() {
    let Some(python) = python() else { return };
    let server = python_server(&python).await;
    let url = format!("ws://127.0.0.1:{}/loop", server.port);
    let err = handshake_error(timeout(TIMEOUT, wscodec::connect_url(&url)).await.unwrap());
    let HandshakeError::UnexpectedStatus(response) = err else {
        panic!("{err:?}");
    };
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers().get("location"), Some("/loop"));
    assert_eq!(response.body(), b"moved to /loop\n");
}

#[tokio::test]
async fn a_chain_of_two_redirects_is_followed_keeping_credentials_on_the_same_origin() {
    let Some(python) = python() else { return };
    let server = python_server(&python).await;
    // /hop/2 -> "/hop/1" (absolute path) -> "0" (relative: /hop/0).
    let request = ClientRequest::new(&format!("ws://127.0.0.1:{}/hop/2", server.port))
        .unwrap()
        .header("Authorization", "Bearer same-origin")
        .header("X-Keep", "yes");
    let (mut ws, response) = timeout(
        TIMEOUT,
        Connector::new().max_redirects(2).connect_request(request),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), 101);
    let seen = seen_headers(&mut ws).await;
    assert_eq!(
        serde_like::get(&seen, "authorization"),
        Some(&["Bearer same-origin".to_owned()][..])
    );
    assert_eq!(
        serde_like::get(&seen, "x-keep"),
        Some(&["yes".to_owned()][..])
    );
    ws.close().await.unwrap();

    // One hop short of the chain: the limit names how many were followed.
    let url = format!("ws://127.0.0.1:{}/hop/2", server.port);
    let err = handshake_error(Connector::new().max_redirects(1).connect(&url).await);
    assert!(
        matches!(err, HandshakeError::TooManyRedirects { hops: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_redirect_loop_hits_the_limit_with_the_hop_count() {
    let Some(python) = python() else { return };
    let server = python_server(&python).await;
    let url = format!("ws://127.0.0.1:{}/loop", server.port);
    let err = handshake_error(
        timeout(TIMEOUT, Connector::new().max_redirects(5).connect(&url))
            .await
            .unwrap(),
    );
    let message = err.to_string();
    let HandshakeError::TooManyRedirects { hops, last } = err else {
        panic!("{err:?}");
    };
    assert_eq!(hops, 5);
    assert_eq!(last.headers().get("location"), Some("/loop"));
    assert!(message.contains("after 5 redirects"), "{message}");
}

#[tokio::test]
async fn a_redirect_to_another_host_drops_authorization_and_cookies() {
    let Some(python) = python() else { return };
    let server = python_server(&python).await;
    // 127.0.0.1 -> localhost: the same server under another host name, given
    // as http:// (taken as ws://).
    let target = format!("http://localhost:{}/headers", server.port);
    let url = format!("ws://127.0.0.1:{}/to?url={target}", server.port);
    let request = ClientRequest::new(&url)
        .unwrap()
        .header("Authorization", "Bearer for-127.0.0.1-only")
        .header("Cookie", "session=secret")
        .header("X-Keep", "yes");
    let (mut ws, _) = timeout(
        TIMEOUT,
        Connector::new().max_redirects(1).connect_request(request),
    )
    .await
    .unwrap()
    .unwrap();
    let seen = seen_headers(&mut ws).await;
    assert_eq!(serde_like::get(&seen, "authorization"), None, "{seen:?}");
    assert_eq!(serde_like::get(&seen, "cookie"), None, "{seen:?}");
    assert_eq!(
        serde_like::get(&seen, "x-keep"),
        Some(&["yes".to_owned()][..])
    );
    assert_eq!(
        serde_like::get(&seen, "host"),
        Some(&[format!("localhost:{}", server.port)][..])
    );
    ws.close().await.unwrap();
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn a_redirect_from_wss_to_plaintext_is_refused() {
    let Some(python) = python() else { return };
    let pki = Pki::new("python-downgrade");
    let server = python_tls_server(&python, &pki).await;
    // A plaintext server that must never be contacted.
    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    for scheme in ["ws", "http"] {
        let target = format!("{scheme}://127.0.0.1:{plain_port}/echo");
        let url = format!("wss://localhost:{}/to?url={target}", server.port);
        let err = handshake_error(
            timeout(TIMEOUT, pki.connector().max_redirects(3).connect(&url))
                .await
                .unwrap(),
        );
        assert!(
            matches!(err, HandshakeError::InsecureRedirect(ref to) if to.starts_with(scheme)),
            "{err:?}"
        );
    }
    let contacted = timeout(Duration::from_millis(200), plain.accept()).await;
    assert!(contacted.is_err(), "the plaintext server was contacted");
}

#[cfg(not(feature = "rustls"))]
#[tokio::test]
async fn wss_without_the_tls_feature_fails_before_connecting() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let err = handshake_error(wscodec::connect_url(&format!("wss://127.0.0.1:{port}/")).await);
    assert_eq!(err, HandshakeError::TlsUnavailable);
    let contacted = timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(
        contacted.is_err(),
        "a wss:// URL opened a plaintext connection"
    );
}

#[tokio::test]
async fn wss_over_a_callers_plain_tcp_is_refused_unless_marked_secure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut accepted, _) = listener.accept().await.unwrap();
    let err = wscodec::connect(tcp, &format!("wss://{addr}/"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::TlsRequired)),
        "{err:?}"
    );
    // Nothing went out in plaintext: the server sees the end of the stream.
    let mut sent = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut accepted, &mut sent)
        .await
        .unwrap();
    assert!(sent.is_empty(), "{}", String::from_utf8_lossy(&sent));
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn the_connect_timeout_bounds_a_tls_server_that_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts, then says nothing: the TLS handshake never completes.
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let pki = Pki::new("silent");
    let connector = pki
        .connector()
        .connect_timeout(Some(Duration::from_millis(300)));
    let result = timeout(
        TIMEOUT,
        connector.connect(&format!("wss://localhost:{port}/")),
    )
    .await;
    let err = result
        .expect("the connect timeout did not fire")
        .unwrap_err();
    let Error::Io(io) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("connect timeout"), "{err}");
}

#[tokio::test]
async fn the_handshake_timeout_bounds_a_server_that_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let config = wscodec::Config::default().handshake_timeout(Some(Duration::from_millis(300)));
    let connector = Connector::new().config(config);
    let result = timeout(
        TIMEOUT,
        connector.connect(&format!("ws://127.0.0.1:{port}/")),
    )
    .await;
    let err = handshake_error(result.expect("the handshake timeout did not fire"));
    assert_eq!(err, HandshakeError::Timeout);
}

#[tokio::test]
async fn a_custom_host_header_reaches_python_once() {
    let Some(python) = python() else { return };
    let server = python_server(&python).await;
    let request = ClientRequest::new(&format!("ws://127.0.0.1:{}/headers", server.port))
        .unwrap()
        .header("Host", "chat.example");
    let (mut ws, _) = timeout(TIMEOUT, Connector::new().connect_request(request))
        .await
        .unwrap()
        .unwrap();
    let seen = seen_headers(&mut ws).await;
    assert_eq!(
        serde_like::get(&seen, "host"),
        Some(&["chat.example".to_owned()][..])
    );
    ws.close().await.unwrap();
}
