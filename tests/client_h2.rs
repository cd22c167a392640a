//! `Connector::http2`: `wss://` offered as ALPN `h2` first, the WebSocket
//! opened as an RFC 8441 extended CONNECT when the server picks it, HTTP/1.1
//! when it does not, and a clear error (never a silent fallback) when an h2
//! server has not enabled extended CONNECT. The server here is the crate's
//! own (`wscodec::h2::accept_with` over h2, `wscodec::accept_with` over
//! HTTP/1.1) behind tokio-rustls, with a CA made by rcgen.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use wscodec::client::Connector;
use wscodec::handshake::{Accept, Reject, Request};
use wscodec::{ClientRequest, Config, Error, HandshakeError, Message};

const WATCHDOG: Duration = Duration::from_secs(20);

/// What the server saw: the ALPN protocol of each connection, and the
/// `:authority` of each extended CONNECT.
#[derive(Debug, PartialEq)]
enum Seen {
    Connection(String),
    Authority(String),
    /// An h2 connection's accept loop returned: the client's side is gone.
    H2Closed,
}

struct Server {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    ca: CertificateDer<'static>,
}

impl Server {
    /// A connector that trusts this server's CA only.
    fn connector(&self) -> Connector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        Connector::new().tls_config(wscodec::client::tls::client_config(roots))
    }

    /// `connect` with [`Connector::http2`] on.
    async fn connect_h2(
        &self,
        path: &str,
    ) -> Result<
        (
            wscodec::WebSocket<wscodec::ClientStream>,
            wscodec::handshake::Response,
        ),
        Error,
    > {
        self.connector().http2(true).connect(&self.url(path)).await
    }

    fn url(&self, path: &str) -> String {
        format!("wss://localhost:{}{path}", self.addr.port())
    }

    async fn next(&mut self) -> Seen {
        timeout(WATCHDOG, self.seen.recv())
            .await
            .expect("the server reports within the watchdog")
            .expect("the server is running")
    }
}

/// `/echo` accepts (choosing subprotocol `chat` when offered) and echoes,
/// `/deny` refuses with 401, a challenge and a JSON body, `/moved` redirects
/// to `/echo` with 302.
fn route(request: &Request) -> Result<Accept, Reject> {
    match request.path() {
        "/echo" => match request.subprotocols().find(|p| *p == "chat") {
            Some(p) => Ok(Accept::new().subprotocol(p)),
            None => Ok(Accept::new()),
        },
        "/deny" => Err(Reject::new(401)
            .header("www-authenticate", "Bearer realm=\"chat\"")
            .header("content-type", "application/json")
            .body(r#"{"error":"token expired"}"#)),
        "/moved" => Err(Reject::new(302).header("location", "/echo")),
        _ => Err(Reject::new(404)),
    }
}

async fn echo<T>(mut ws: wscodec::WebSocket<T>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(message)) = ws.next().await {
        if !message.is_control() && ws.send(message).await.is_err() {
            break;
        }
    }
}

/// A TLS server offering `alpn`; on h2 it advertises extended CONNECT only
/// when `connect_protocol`.
async fn server(alpn: &[&[u8]], connect_protocol: bool) -> Server {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
        .unwrap();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = TlsAcceptor::from(Arc::new(tls));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let report = report.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    let _ = report.send(Seen::Connection("tls failed".into()));
                    return;
                };
                let protocol = tls.get_ref().1.alpn_protocol().unwrap_or(b"none");
                let protocol = String::from_utf8_lossy(protocol).into_owned();
                let _ = report.send(Seen::Connection(protocol.clone()));
                if protocol != "h2" {
                    if let Ok(ws) = wscodec::accept_with(tls, Config::default(), route).await {
                        echo(ws).await;
                    }
                    return;
                }
                let mut builder = h2::server::Builder::new();
                if connect_protocol {
                    builder.enable_connect_protocol();
                }
                let mut connection = builder.handshake::<_, Bytes>(tls).await.unwrap();
                while let Some(Ok((request, respond))) = connection.accept().await {
                    let authority = request.uri().authority().map(|a| a.to_string());
                    let _ = report.send(Seen::Authority(authority.unwrap_or_default()));
                    if let Ok(ws) =
                        wscodec::h2::accept_with(request, respond, Config::default(), route)
                    {
                        tokio::spawn(echo(ws));
                    }
                }
                let _ = report.send(Seen::H2Closed);
            });
        }
    });
    Server {
        addr,
        seen,
        ca: ca.der().clone(),
    }
}

async fn echo_both_kinds(ws: &mut wscodec::WebSocket<wscodec::ClientStream>) {
    for message in [
        Message::text("over h2?"),
        Message::binary(vec![7u8; 70_000]),
    ] {
        ws.send(message.clone()).await.unwrap();
        let back = timeout(WATCHDOG, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back, message);
    }
}

#[tokio::test]
async fn http2_connector_opens_wss_as_an_extended_connect_when_the_server_picks_h2() {
    let mut server = server(&[b"h2", b"http/1.1"], true).await;
    let request = ClientRequest::new(&server.url("/echo"))
        .unwrap()
        .subprotocol("chat");
    let (mut ws, response) = server
        .connector()
        .http2(true)
        .connect_request(request)
        .await
        .unwrap();
    assert_eq!(server.next().await, Seen::Connection("h2".into()));
    assert_eq!(
        server.next().await,
        Seen::Authority(format!("localhost:{}", server.addr.port()))
    );
    assert!(ws.get_ref().is_http2() && ws.get_ref().is_tls());
    assert!(ws.get_ref().tcp().is_none());
    assert_eq!(response.status(), 200, "RFC 8441 §5: a 2xx, not 101");
    assert_eq!(response.subprotocol(), Some("chat"));
    echo_both_kinds(&mut ws).await;
    ws.close().await.unwrap();
    // The server's Close, then the end: END_STREAM both ways.
    let last = timeout(WATCHDOG, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(&last, Message::Close(Some(f)) if u16::from(f.code) == 1000),
        "{last:?}"
    );
    assert!(timeout(WATCHDOG, ws.next()).await.unwrap().is_none());
}

#[tokio::test]
async fn the_connection_task_ends_once_the_websocket_is_closed_and_dropped() {
    let mut server = server(&[b"h2"], true).await;
    let (mut ws, _) = server.connect_h2("/echo").await.unwrap();
    assert_eq!(server.next().await, Seen::Connection("h2".into()));
    assert!(matches!(server.next().await, Seen::Authority(_)));
    ws.close().await.unwrap();
    drop(ws);
    // No stream and no SendRequest are left: h2's client connection goes
    // away, and the server's accept loop sees the end.
    assert_eq!(server.next().await, Seen::H2Closed);
}

#[tokio::test]
async fn a_custom_host_header_is_the_authority_over_h2() {
    let mut server = server(&[b"h2"], true).await;
    let request = ClientRequest::new(&server.url("/echo"))
        .unwrap()
        .header("Host", "chat.example:8443");
    let (mut ws, _) = server
        .connector()
        .http2(true)
        .connect_request(request)
        .await
        .unwrap();
    assert_eq!(server.next().await, Seen::Connection("h2".into()));
    assert_eq!(
        server.next().await,
        Seen::Authority("chat.example:8443".into())
    );
    echo_both_kinds(&mut ws).await;
}

#[tokio::test]
async fn http2_connector_upgrades_over_http1_when_the_server_picks_http1() {
    let mut server = server(&[b"http/1.1"], true).await;
    let (mut ws, response) = server.connect_h2("/echo").await.unwrap();
    assert_eq!(server.next().await, Seen::Connection("http/1.1".into()));
    assert!(!ws.get_ref().is_http2() && ws.get_ref().is_tls());
    assert_eq!(response.status(), 101);
    echo_both_kinds(&mut ws).await;
}

#[tokio::test]
async fn without_http2_the_connector_offers_http1_only() {
    // A server that speaks only h2 finds no protocol in common.
    let mut server = server(&[b"h2"], true).await;
    let err = server
        .connector()
        .connect(&server.url("/echo"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
    assert_eq!(server.next().await, Seen::Connection("tls failed".into()));

    let mut server = self::server(&[b"h2", b"http/1.1"], true).await;
    let (ws, _) = server
        .connector()
        .connect(&server.url("/echo"))
        .await
        .unwrap();
    assert_eq!(server.next().await, Seen::Connection("http/1.1".into()));
    assert!(!ws.get_ref().is_http2());
}

#[tokio::test]
async fn an_h2_server_without_extended_connect_is_an_error_not_a_fallback() {
    let mut server = server(&[b"h2", b"http/1.1"], false).await;
    let err = server.connect_h2("/echo").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Http2(wscodec::h2::H2Error::ExtendedConnectDisabled)
        ),
        "{err:?}"
    );
    assert_eq!(server.next().await, Seen::Connection("h2".into()));
    // Nothing was sent on that connection, and no second connection came.
    assert_eq!(server.next().await, Seen::H2Closed);
    assert!(server.seen.try_recv().is_err());
}

#[tokio::test]
async fn a_refusal_over_h2_keeps_its_status_challenge_and_body() {
    let mut server = server(&[b"h2"], true).await;
    let err = server.connect_h2("/deny").await.unwrap_err();
    let Error::Handshake(HandshakeError::UnexpectedStatus(response)) = err else {
        panic!("not a refusal: {err:?}");
    };
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers().get("www-authenticate"),
        Some("Bearer realm=\"chat\"")
    );
    assert_eq!(response.body(), br#"{"error":"token expired"}"#);
    assert!(!response.is_body_truncated());
    assert_eq!(server.next().await, Seen::Connection("h2".into()));
}

#[tokio::test]
async fn a_refusals_body_over_h2_is_cut_at_the_limit() {
    let server = server(&[b"h2"], true).await;
    let config = Config::default().limits(wscodec::Limits::default().max_response_body(8));
    let err = server
        .connector()
        .config(config)
        .http2(true)
        .connect(&server.url("/deny"))
        .await
        .unwrap_err();
    let Error::Handshake(HandshakeError::UnexpectedStatus(response)) = err else {
        panic!("not a refusal: {err:?}");
    };
    assert_eq!(response.body(), br#"{"error""#);
    assert!(response.is_body_truncated());
}

#[tokio::test]
async fn redirects_over_h2_are_followed_when_allowed() {
    let mut server = server(&[b"h2"], true).await;
    let (mut ws, response) = server
        .connector()
        .http2(true)
        .max_redirects(1)
        .connect(&server.url("/moved"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // One connection per hop (the first one's end may come in between).
    let mut connections = 0;
    while connections < 2 {
        if let Seen::Connection(protocol) = server.next().await {
            assert_eq!(protocol, "h2");
            connections += 1;
        }
    }
    echo_both_kinds(&mut ws).await;
}
