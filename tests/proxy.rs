//! Tunnels through real proxies, each started by its test on a free loopback
//! port with a config file in a temporary directory: tinyproxy (HTTP
//! `CONNECT`, Basic auth), microsocks (SOCKS5, username/password) and dante
//! (SOCKS5). Through each tunnel runs a whole WebSocket echo against a
//! wscodec server, and once TLS end to end, with a relay behind the proxy
//! checking that the proxy passed on only ciphertext.
//!
//! The proxies come from Debian's packages (scripts/install-test-deps.sh).
//! A missing one skips its tests with a notice on stderr, except under CI
//! (`CI` set), where it fails them.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wscodec::proxy::{Proxy, ProxyError, ProxyKind, Socks5ReplyCode};
use wscodec::{ClientRequest, Config, Error, Message};

/// Every step finishes well within this, or the test fails.
const TIMEOUT: Duration = Duration::from_secs(20);

/// The path of a third party's binary, or `None` to skip (outside CI only).
fn third_party(path: &str) -> Option<PathBuf> {
    let path = PathBuf::from(path);
    if path.exists() {
        return Some(path);
    }
    let why = format!("{} is not installed", path.display());
    let hint = "run scripts/install-test-deps.sh";
    if std::env::var_os("CI").is_some() {
        panic!("proxy tests: {why}; under CI this is a failure: {hint}");
    }
    // Straight to stderr: the test harness captures eprintln!.
    let _ = writeln!(std::io::stderr(), "proxy tests: SKIPPED: {why}; {hint}");
    None
}

/// A fresh directory for one daemon's config and log.
fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wscodec-proxy-{}-{name}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback port nothing listens on (bound, then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A proxy process this test started; killed (by its pid, or its own
/// process group's id for dante, which forks) and cleaned up on drop.
struct Daemon {
    name: &'static str,
    child: Child,
    group: bool,
    dir: PathBuf,
    port: u16,
}

impl Daemon {
    fn spawn(
        name: &'static str,
        mut command: Command,
        dir: PathBuf,
        port: u16,
        group: bool,
    ) -> Daemon {
        let out = std::fs::File::create(dir.join(format!("{name}.out"))).unwrap();
        command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        if group {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("{name}: {e}"));
        Daemon {
            name,
            child,
            group,
            dir,
            port,
        }
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if entry
                .path()
                .extension()
                .is_some_and(|e| e == "out" || e == "log")
            {
                text += &std::fs::read_to_string(entry.path()).unwrap_or_default();
            }
        }
        text
    }

    /// Waits until the daemon accepts connections on its port.
    async fn ready(mut self) -> Daemon {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return self;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}: {}", self.name, self.logs());
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{} does not listen on {}: {}",
                    self.name,
                    self.port,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.group {
            // dante's children share the group we gave it: its id is the pid.
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", self.child.id())])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// tinyproxy in the foreground, allowing `CONNECT` to `connect_port` only,
/// with Basic credentials if given.
async fn tinyproxy(connect_port: u16, auth: Option<(&str, &str)>) -> Option<Daemon> {
    let binary = third_party("/usr/bin/tinyproxy")?;
    let dir = temp_dir("tinyproxy");
    let port = free_port();
    let mut conf = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\nAllow 127.0.0.1\n\
         ConnectPort {connect_port}\nLogLevel Info\nLogFile \"{}\"\n",
        dir.join("tinyproxy.log").display()
    );
    if let Some((user, password)) = auth {
        conf += &format!("BasicAuth {user} {password}\n");
    }
    let conf_path = dir.join("tinyproxy.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut command = Command::new(binary);
    command.arg("-d").arg("-c").arg(&conf_path);
    Some(
        Daemon::spawn("tinyproxy", command, dir, port, false)
            .ready()
            .await,
    )
}

/// microsocks on loopback, with a username and password if given.
async fn microsocks(auth: Option<(&str, &str)>) -> Option<Daemon> {
    let binary = third_party("/usr/bin/microsocks")?;
    let dir = temp_dir("microsocks");
    let port = free_port();
    let mut command = Command::new(binary);
    command.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
    if let Some((user, password)) = auth {
        command.args(["-u", user, "-P", password]);
    }
    Some(
        Daemon::spawn("microsocks", command, dir, port, false)
            .ready()
            .await,
    )
}

/// dante in the foreground, no authentication, loopback to loopback.
async fn dante() -> Option<Daemon> {
    let binary = third_party("/usr/sbin/danted")?;
    let dir = temp_dir("dante");
    let port = free_port();
    let conf = format!(
        "logoutput: {log}\n\
         internal: 127.0.0.1 port = {port}\n\
         external: 127.0.0.1\n\
         clientmethod: none\n\
         socksmethod: none\n\
         user.privileged: root\n\
         user.unprivileged: nobody\n\
         client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}\n\
         socks pass {{ from: 127.0.0.0/8 to: 127.0.0.0/8 command: connect }}\n",
        log = dir.join("danted.log").display()
    );
    let conf_path = dir.join("danted.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut command = Command::new(binary);
    command.arg("-f").arg(&conf_path).args(["-N", "1"]);
    Some(
        Daemon::spawn("danted", command, dir, port, true)
            .ready()
            .await,
    )
}

/// squid in the foreground (-N), no cache, with Basic authentication for
/// `user`/`password` checked by its own `basic_ncsa_auth` helper against an
/// htpasswd file (apr1 hash made by openssl).
async fn squid(user: &str, password: &str) -> Option<Daemon> {
    let binary = third_party("/usr/sbin/squid")?;
    let helper = third_party("/usr/lib/squid/basic_ncsa_auth")?;
    let dir = temp_dir("squid");
    // squid drops root for its `proxy` user, which must read the files.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let hash = Command::new("openssl")
        .args(["passwd", "-apr1", password])
        .output()
        .expect("openssl passwd");
    let hash = String::from_utf8(hash.stdout).unwrap();
    let passwd = dir.join("passwd");
    std::fs::write(&passwd, format!("{user}:{}", hash.trim())).unwrap();
    let port = free_port();
    let conf = format!(
        "http_port 127.0.0.1:{port}\n\
         pid_filename {dir}/squid.pid\n\
         cache_log {dir}/cache.log\n\
         access_log none\n\
         cache deny all\n\
         cache_mem 8 MB\n\
         shutdown_lifetime 0 seconds\n\
         auth_param basic program {helper} {passwd}\n\
         auth_param basic realm wscodec-test\n\
         acl authed proxy_auth REQUIRED\n\
         http_access allow authed\n\
         http_access deny all\n",
        dir = dir.display(),
        helper = helper.display(),
        passwd = passwd.display(),
    );
    let conf_path = dir.join("squid.conf");
    std::fs::write(&conf_path, conf).unwrap();
    for path in [&conf_path, &passwd] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut command = Command::new(binary);
    command.arg("-N").arg("-f").arg(&conf_path);
    Some(
        Daemon::spawn("squid", command, dir, port, true)
            .ready()
            .await,
    )
}

/// A wscodec echo server on loopback.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(echo(tcp));
        }
    });
    port
}

async fn echo<T: AsyncRead + AsyncWrite + Unpin>(io: T) {
    let Ok(mut ws) = wscodec::accept(io).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if !message.is_control() && ws.send(message).await.is_err() {
            return;
        }
    }
}

/// The WebSocket handshake and an echo of a text and a large binary
/// message, then a clean close, over `io`.
async fn exchange<T: AsyncRead + AsyncWrite + Unpin>(io: T, uri: &str) {
    // A wss:// URI here runs over a TLS stream the test made itself.
    let request = ClientRequest::new(uri).unwrap().secure_transport();
    let (ws, response) = tokio::time::timeout(
        TIMEOUT,
        wscodec::connect_with(io, request, Config::default()),
    )
    .await
    .expect("handshake timed out")
    .expect("handshake");
    assert_eq!(response.status(), 101);
    echo_and_close(ws).await;
}

/// An echo of a text and a large binary message, then a clean close.
async fn echo_and_close<T: AsyncRead + AsyncWrite + Unpin>(mut ws: wscodec::WebSocket<T>) {
    for message in [
        Message::text("through the proxy"),
        Message::binary(vec![0x5a; 200_000]),
    ] {
        ws.send(message.clone()).await.unwrap();
        let echoed = tokio::time::timeout(TIMEOUT, ws.next()).await.unwrap();
        assert_eq!(echoed.unwrap().unwrap(), message);
    }
    ws.close().await.unwrap();
    let mut last = None;
    while let Some(m) = ws.next().await {
        last = Some(m.unwrap());
    }
    assert!(matches!(last, Some(Message::Close(_))), "{last:?}");
}

fn proxy_error(result: Result<TcpStream, Error>) -> ProxyError {
    match result {
        Ok(_) => panic!("the proxy gave a tunnel"),
        Err(Error::Proxy(e)) => *e,
        Err(e) => panic!("not a proxy error: {e}"),
    }
}

#[tokio::test]
async fn http_connect_through_tinyproxy_carries_a_websocket_echo() {
    let echo_port = echo_server().await;
    let Some(daemon) = tinyproxy(echo_port, None).await else {
        return;
    };
    let proxy = Proxy::parse(&format!("http://127.0.0.1:{}", daemon.port)).unwrap();
    let tunnel = proxy.open("127.0.0.1", echo_port, TIMEOUT).await.unwrap();
    exchange(tunnel, &format!("ws://127.0.0.1:{echo_port}/")).await;

    // tinyproxy's ConnectPort refuses every other port: a 403, named.
    let other = free_port();
    let e = proxy_error(proxy.open("127.0.0.1", other, TIMEOUT).await);
    assert_eq!(e.http_status(), Some(403), "{e}");
    assert!(e.to_string().contains("refused CONNECT with 403"), "{e}");
}

#[tokio::test]
async fn tinyproxy_basic_auth_takes_the_password_and_answers_407_otherwise() {
    let echo_port = echo_server().await;
    let Some(daemon) = tinyproxy(echo_port, Some(("alice", "s3cret"))).await else {
        return;
    };
    let port = daemon.port;
    let proxy = Proxy::parse(&format!("http://alice:s3cret@127.0.0.1:{port}")).unwrap();
    let tunnel = proxy.open("127.0.0.1", echo_port, TIMEOUT).await.unwrap();
    exchange(tunnel, &format!("ws://127.0.0.1:{echo_port}/")).await;

    // Without credentials: 407 and tinyproxy's challenge.
    let proxy = Proxy::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let e = proxy_error(proxy.open("127.0.0.1", echo_port, TIMEOUT).await);
    assert_eq!(e.http_status(), Some(407), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("wants authentication") && text.contains("407"),
        "{text}"
    );
    assert!(text.contains("Proxy-Authenticate: Basic realm="), "{text}");
    let ProxyError::HttpStatus {
        proxy_authenticate, ..
    } = &e
    else {
        unreachable!()
    };
    assert!(
        proxy_authenticate[0].starts_with("Basic"),
        "{proxy_authenticate:?}"
    );

    // A wrong password: tinyproxy 1.11 answers 401 (with WWW-Authenticate),
    // not 407; either way the error says the credentials were rejected.
    let proxy = Proxy::parse(&format!("http://alice:wrong@127.0.0.1:{port}")).unwrap();
    let e = proxy_error(proxy.open("127.0.0.1", echo_port, TIMEOUT).await);
    assert!(matches!(e.http_status(), Some(401 | 407)), "{e}");
    let text = e.to_string();
    assert!(text.contains("rejected the credentials"), "{text}");
    assert!(
        text.contains(&e.http_status().unwrap().to_string()),
        "{text}"
    );
    assert!(!text.contains("wrong"), "the password leaked: {text}");
}

#[tokio::test]
async fn squid_basic_auth_tunnels_with_the_password_and_answers_a_wrong_one_with_407() {
    let echo_port = echo_server().await;
    let Some(daemon) = squid("alice", "s3cret").await else {
        return;
    };
    let port = daemon.port;
    let proxy = Proxy::parse(&format!("http://alice:s3cret@127.0.0.1:{port}")).unwrap();
    let tunnel = proxy.open("127.0.0.1", echo_port, TIMEOUT).await.unwrap();
    exchange(tunnel, &format!("ws://127.0.0.1:{echo_port}/")).await;

    // RFC 9110 §15.5.8: the proxy's 407, with its challenge, and an error
    // that says the credentials we sent were rejected.
    let proxy = Proxy::parse(&format!("http://alice:wrong@127.0.0.1:{port}")).unwrap();
    let e = proxy_error(proxy.open("127.0.0.1", echo_port, TIMEOUT).await);
    assert_eq!(e.http_status(), Some(407), "{e}");
    let text = e.to_string();
    assert!(text.contains("rejected the credentials"), "{text}");
    assert!(
        text.contains("Proxy-Authenticate: Basic realm=\"wscodec-test\""),
        "{text}"
    );
    assert!(
        !text.contains("wrong"),
        "the error shows the password: {text}"
    );
}

#[tokio::test]
async fn socks5_and_socks5h_through_microsocks_carry_a_websocket_echo() {
    let echo_port = echo_server().await;
    let Some(daemon) = microsocks(None).await else {
        return;
    };
    for scheme in ["socks5", "socks5h"] {
        let proxy = Proxy::parse(&format!("{scheme}://127.0.0.1:{}", daemon.port)).unwrap();
        // socks5: we resolve localhost and send its address; socks5h: we
        // send the name and microsocks resolves it (the bytes of each are
        // checked by the unit tests in src/proxy/tests.rs).
        let tunnel = proxy.open("localhost", echo_port, TIMEOUT).await.unwrap();
        exchange(tunnel, &format!("ws://localhost:{echo_port}/")).await;
    }
}

#[tokio::test]
async fn microsocks_with_a_password_takes_it_and_rejects_a_wrong_one() {
    let echo_port = echo_server().await;
    let Some(daemon) = microsocks(Some(("bob", "hunter2"))).await else {
        return;
    };
    let port = daemon.port;
    // Through the environment, as a curl user would write it.
    let url = format!("socks5h://bob:hunter2@127.0.0.1:{port}");
    let env = |name: &str| (name == "ALL_PROXY").then(|| url.clone());
    let proxy = Proxy::from_lookup(false, "127.0.0.1", env)
        .unwrap()
        .unwrap();
    let tunnel = proxy.open("127.0.0.1", echo_port, TIMEOUT).await.unwrap();
    exchange(tunnel, &format!("ws://127.0.0.1:{echo_port}/")).await;

    let proxy = Proxy::parse(&format!("socks5://bob:nope@127.0.0.1:{port}")).unwrap();
    let e = proxy_error(proxy.open("127.0.0.1", echo_port, TIMEOUT).await);
    assert!(matches!(e, ProxyError::SocksAuthRejected { .. }), "{e}");
    assert!(
        e.to_string().contains("rejected the username and password"),
        "{e}"
    );

    let proxy = Proxy::new(ProxyKind::Socks5, "127.0.0.1", port);
    let e = proxy_error(proxy.open("127.0.0.1", echo_port, TIMEOUT).await);
    assert!(
        matches!(e, ProxyError::SocksNoAcceptableMethod { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("requires authentication"), "{e}");
}

#[tokio::test]
async fn microsocks_names_connection_refused_for_a_closed_port() {
    let Some(daemon) = microsocks(None).await else {
        return;
    };
    let proxy = Proxy::new(ProxyKind::Socks5, "127.0.0.1", daemon.port);
    let e = proxy_error(proxy.open("127.0.0.1", free_port(), TIMEOUT).await);
    assert_eq!(
        e.socks_reply(),
        Some(Socks5ReplyCode::CONNECTION_REFUSED),
        "{e}"
    );
    assert!(
        e.to_string().contains("connection refused (reply 5)"),
        "{e}"
    );
}

#[tokio::test]
async fn dante_carries_a_websocket_echo_and_names_its_refusals() {
    let echo_port = echo_server().await;
    let Some(daemon) = dante().await else {
        return;
    };
    let proxy = Proxy::new(ProxyKind::Socks5h, "127.0.0.1", daemon.port);
    let tunnel = proxy.open("127.0.0.1", echo_port, TIMEOUT).await.unwrap();
    exchange(tunnel, &format!("ws://127.0.0.1:{echo_port}/")).await;

    let e = proxy_error(proxy.open("127.0.0.1", free_port(), TIMEOUT).await);
    assert_eq!(
        e.socks_reply(),
        Some(Socks5ReplyCode::CONNECTION_REFUSED),
        "{e}"
    );
    // The ruleset passes loopback targets only.
    let e = proxy_error(proxy.open("192.0.2.1", 80, TIMEOUT).await);
    assert_eq!(e.socks_reply(), Some(Socks5ReplyCode::NOT_ALLOWED), "{e}");
    assert!(
        e.to_string().contains("connection not allowed by ruleset"),
        "{e}"
    );
}

/// A CA and a certificate for `localhost` it signed, both fresh.
fn ca_and_server_config() -> (rustls::RootCertStore, rustls::ServerConfig) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    (roots, server)
}

/// A TCP relay from a loopback port to `to`, keeping every byte it carries
/// in either direction: what the proxy in front of it passed on.
async fn recording_relay(to: SocketAddr) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (from_proxy, _) = listener.accept().await.unwrap();
            let to_server = TcpStream::connect(to).await.unwrap();
            let (proxy_read, proxy_write) = from_proxy.into_split();
            let (server_read, server_write) = to_server.into_split();
            tokio::spawn(pump(proxy_read, server_write, record.clone()));
            tokio::spawn(pump(server_read, proxy_write, record.clone()));
        }
    });
    (port, seen)
}

async fn pump<R, W>(mut from: R, mut to: W, record: Arc<Mutex<Vec<u8>>>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0; 16 << 10];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        record.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A TLS echo server (a private CA's `localhost` certificate) behind a
/// recording relay: the CA's roots, the relay's port, and what it carried.
async fn tls_echo_behind_a_recording_relay() -> (rustls::RootCertStore, u16, Arc<Mutex<Vec<u8>>>) {
    let (roots, server_config) = ca_and_server_config();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    echo(tls).await;
                }
            });
        }
    });
    let (relay_port, seen) = recording_relay(server_addr).await;
    (roots, relay_port, seen)
}

/// What the relay behind the proxy carried: more than `min` bytes, none of
/// them the handshake's or the messages' plaintext.
fn assert_only_ciphertext(seen: &[u8], min: usize) {
    assert!(
        seen.len() > min,
        "the relay carried only {} bytes",
        seen.len()
    );
    for plaintext in [
        &b"Upgrade: websocket"[..],
        b"through the proxy",
        &[0x5a; 64],
    ] {
        assert!(
            !contains(seen, plaintext),
            "the proxy passed on plaintext {plaintext:?}"
        );
    }
}

#[tokio::test]
async fn tls_runs_end_to_end_through_an_http_connect_tunnel() {
    let (roots, relay_port, seen) = tls_echo_behind_a_recording_relay().await;
    let Some(daemon) = tinyproxy(relay_port, None).await else {
        return;
    };

    let proxy = Proxy::new(ProxyKind::Http, "127.0.0.1", daemon.port);
    let tunnel = proxy.open("localhost", relay_port, TIMEOUT).await.unwrap();
    let client_config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client_config))
        .connect(ServerName::try_from("localhost").unwrap(), tunnel)
        .await
        .unwrap();
    exchange(tls, &format!("wss://localhost:{relay_port}/")).await;

    assert_only_ciphertext(&seen.lock().unwrap(), 200_000);
}

/// The one-call client through each kind of proxy: `Connector` opens the
/// tunnel, then runs TLS inside it to the server behind, so the proxy (and
/// the relay behind it) only ever carries ciphertext.
#[cfg(feature = "rustls")]
#[tokio::test]
async fn connector_runs_wss_end_to_end_through_http_connect_and_socks5h() {
    use wscodec::client::Connector;

    let (roots, relay_port, seen) = tls_echo_behind_a_recording_relay().await;
    let (Some(tinyproxy), Some(microsocks)) =
        (tinyproxy(relay_port, None).await, microsocks(None).await)
    else {
        return;
    };
    let mut client_config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_config.alpn_protocols.clear();
    let client_config = Arc::new(client_config);
    let url = format!("wss://localhost:{relay_port}/");
    for proxy in [
        format!("http://127.0.0.1:{}", tinyproxy.port),
        format!("socks5h://127.0.0.1:{}", microsocks.port),
    ] {
        let connector = Connector::new()
            .tls_config(client_config.clone())
            .proxy(Proxy::parse(&proxy).unwrap());
        let (ws, response) = tokio::time::timeout(TIMEOUT, connector.connect(&url))
            .await
            .expect("connect timed out")
            .unwrap_or_else(|e| panic!("through {proxy}: {e}"));
        assert_eq!(response.status(), 101);
        assert!(ws.get_ref().is_tls(), "through {proxy}");
        echo_and_close(ws).await;
    }
    assert_only_ciphertext(&seen.lock().unwrap(), 400_000);
}

/// A proxy that refuses the tunnel fails the one-call connect with the
/// proxy's own error, not a handshake error.
#[tokio::test]
async fn connector_reports_the_proxys_refusal() {
    use wscodec::client::Connector;

    let Some(daemon) = microsocks(None).await else {
        return;
    };
    let closed = free_port();
    let connector = Connector::new()
        .proxy(Proxy::parse(&format!("socks5://127.0.0.1:{}", daemon.port)).unwrap());
    match connector
        .connect(&format!("ws://127.0.0.1:{closed}/"))
        .await
    {
        Err(Error::Proxy(e)) => {
            assert_eq!(
                e.socks_reply(),
                Some(Socks5ReplyCode::CONNECTION_REFUSED),
                "{e}"
            )
        }
        Err(e) => panic!("not a proxy error: {e}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}
