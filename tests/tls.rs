//! `wss://` by composition: the TLS echo example's server, and the crate's client
//! over tokio-rustls trusting the example's self-signed certificate.
// The example's items are `pub` for this file, which includes it as a module.
#![allow(unreachable_pub)]

#[allow(dead_code)]
#[path = "../examples/tls_echo.rs"]
mod tls_echo;

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use wscodec::{ClientRequest, Config, Message};

#[tokio::test]
async fn client_over_rustls_exchanges_messages_with_tls_echo() {
    let (acceptor, cert) = tls_echo::self_signed_acceptor().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(tls_echo::serve(listener, acceptor));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    // TLS is ours here, so we say so: a wss:// request is refused otherwise.
    let request = ClientRequest::new(&format!("wss://localhost:{port}/"))
        .unwrap()
        .secure_transport();
    assert!(request.is_secure());
    let (mut ws, _) = wscodec::connect_with(tls, request, Config::default())
        .await
        .unwrap();

    for message in [
        Message::text("over TLS"),
        Message::binary(vec![7u8; 100_000]),
    ] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), message);
    }
    ws.close().await.unwrap();
    let mut last = None;
    while let Some(m) = ws.next().await {
        last = Some(m.unwrap());
    }
    assert!(matches!(last, Some(Message::Close(_))));
}
