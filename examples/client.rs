//! A small websocat: connects to a `ws://` or `wss://` URL, sends each line of
//! stdin as a text message, prints every message that arrives, and at the end
//! of input closes with 1000 and waits for the server's Close.
//!
//! ```text
//! cargo run --release --example client ws://127.0.0.1:9001
//! cargo run --release --features rustls --example client wss://localhost:9443
//! ```
//!
//! `wss://` needs the `rustls` feature (without it the example says so and
//! exits). It trusts Mozilla's roots (the platform's with feature
//! `rustls-native-roots`) plus the PEM certificates in the file named by
//! `SSL_CERT_FILE`, as curl and OpenSSL read it; e.g. for the `tls_echo`
//! example's certificate:
//!
//! ```text
//! SSL_CERT_FILE=/tmp/wscodec-tls-echo-cert.pem cargo run --features rustls --example client wss://localhost:9443
//! ```
//!
//! `HTTPS_PROXY` (for `wss://`), `http_proxy` (for `ws://`; like curl, not
//! the uppercase `HTTP_PROXY`), `ALL_PROXY` and `NO_PROXY` choose a proxy with
//! curl's meanings (`http://`, `socks5://`, `socks5h://` proxy URLs). Up to 5 redirects are followed (never from
//! `wss://` to `ws://`).
//!
//! `--http2` (features `http2` and `rustls`) offers ALPN `h2` for `wss://`,
//! and opens the WebSocket as an RFC 8441 extended CONNECT when the server
//! picks it:
//!
//! ```text
//! cargo run --release --features http2,rustls --example client -- --http2 wss://localhost:9443/chat
//! ```

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use wscodec::client::Connector;
use wscodec::{Error, HandshakeError, Message};

type BoxError = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let http2 = args.iter().any(|a| a == "--http2");
    args.retain(|a| a != "--http2");
    let url = args.pop().unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let connector = tls(Connector::new().proxy_from_env().max_redirects(5))?;
    let connector = with_http2(connector, http2)?;
    let (ws, _response) = match connector.connect(&url).await {
        Ok(connected) => connected,
        Err(Error::Handshake(HandshakeError::UnexpectedStatus(response))) => {
            // What a refusing server said is often the most useful part.
            let body = String::from_utf8_lossy(response.body());
            return Err(format!("{url}: the server answered {}: {body}", response.status()).into());
        }
        Err(Error::Handshake(HandshakeError::TlsUnavailable)) => {
            return Err(format!(
                "{url}: wss:// needs TLS: cargo run --features rustls --example client {url}"
            )
            .into());
        }
        Err(e) => return Err(format!("{url}: {e}").into()),
    };
    let over = if ws.get_ref().is_http2() {
        " over HTTP/2"
    } else {
        ""
    };
    eprintln!("connected to {url}{over}; type lines to send, end input (Ctrl-D) to close");
    let (mut tx, mut rx) = ws.split();

    let sender = async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await? {
            tx.send(Message::text(line)).await?;
        }
        // Close 1000 (normal); the receiver sees the server's answer.
        tx.close().await?;
        Ok::<_, BoxError>(())
    };
    let receiver = async move {
        while let Some(message) = rx.next().await {
            match message? {
                Message::Text(text) => println!("{text}"),
                Message::Binary(data) => println!("<{} bytes of binary>", data.len()),
                Message::Close(frame) => eprintln!("closed: {frame:?}"),
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
        Ok::<_, BoxError>(())
    };
    // The receiver finishes once the closing handshake completes, whoever
    // started it; the sender alone cannot tell.
    let (sent, received) = tokio::join!(sender, receiver);
    sent?;
    received?;
    Ok(())
}

/// The default roots plus `SSL_CERT_FILE`'s certificates.
#[cfg(feature = "rustls")]
fn tls(connector: Connector) -> Result<Connector, BoxError> {
    use wscodec::client::tls::rustls::pki_types::CertificateDer;
    use wscodec::client::tls::{self, rustls::pki_types::pem::PemObject};

    let mut roots = tls::default_root_store();
    if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
        let shown = path.to_string_lossy().into_owned();
        let certs = CertificateDer::pem_file_iter(&path)
            .map_err(|e| format!("SSL_CERT_FILE={shown}: {e}"))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| format!("SSL_CERT_FILE={shown}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("SSL_CERT_FILE={shown}: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("SSL_CERT_FILE={shown}: no certificate in it").into());
        }
    }
    Ok(connector.tls_config(tls::client_config(roots)))
}

/// Without TLS there are no roots to set: `wss://` fails with
/// `TlsUnavailable`, which `main` explains.
#[cfg(not(feature = "rustls"))]
fn tls(connector: Connector) -> Result<Connector, BoxError> {
    Ok(connector)
}

#[cfg(all(feature = "http2", feature = "rustls"))]
fn with_http2(connector: Connector, http2: bool) -> Result<Connector, BoxError> {
    Ok(connector.http2(http2))
}

#[cfg(not(all(feature = "http2", feature = "rustls")))]
fn with_http2(connector: Connector, http2: bool) -> Result<Connector, BoxError> {
    if http2 {
        return Err("--http2 needs: cargo run --features http2,rustls --example client".into());
    }
    Ok(connector)
}
