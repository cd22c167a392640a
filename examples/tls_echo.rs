//! Echo server over TLS (`wss://`) by composition: tokio-rustls wraps the TCP
//! stream, and the crate sees just another `AsyncRead + AsyncWrite`. There is no
//! TLS code in wscodec itself.
//!
//! ```text
//! cargo run --release --example tls_echo [ADDRESS]     # default 127.0.0.1:9443
//! ```
//!
//! A self-signed certificate for `localhost` and `127.0.0.1` is generated at
//! start-up and written to a PEM file whose path is printed; trust it in the
//! client (the integration test `tests/tls.rs` does).

use std::path::PathBuf;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A TLS acceptor with a fresh self-signed certificate for localhost, and that
/// certificate.
pub fn self_signed_acceptor() -> Result<(TlsAcceptor, CertificateDer<'static>), BoxError> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    Ok((TlsAcceptor::from(Arc::new(config)), cert))
}

/// Accepts connections forever: TLS, then the WebSocket handshake, then echo.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<()> {
    loop {
        let (tcp, peer) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let result = async {
                let tls = acceptor.accept(tcp).await?;
                let mut ws = wscodec::accept(tls).await?;
                while let Some(message) = ws.next().await {
                    let message = message?;
                    if !message.is_control() {
                        ws.feed(message).await?;
                    }
                }
                Ok::<_, BoxError>(())
            };
            if let Err(e) = result.await {
                eprintln!("{peer}: {e}");
            }
        });
    }
}

#[allow(dead_code)] // the integration test includes this file for the functions above
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9443".into());
    let (acceptor, cert) = self_signed_acceptor()?;
    let cert_path: PathBuf = std::env::temp_dir().join("wscodec-tls-echo-cert.pem");
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64_lines(&cert)
    );
    std::fs::write(&cert_path, pem)?;
    let listener = TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    println!(
        "TLS echo server listening on wss://localhost:{}",
        local.port()
    );
    println!(
        "certificate (trust it in the client): {}",
        cert_path.display()
    );
    serve(listener, acceptor).await?;
    Ok(())
}

/// PEM body: base64 in 64-character lines.
fn base64_lines(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    b64.as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}
