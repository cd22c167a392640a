//! TLS (`--tls-cert`, `--tls-key`): the certificate, the key and ALPN.
//!
//! This module owns reading the PEM files and what the server offers in
//! the TLS handshake: `h2` then `http/1.1` by ALPN (RFC 7301) when built
//! with feature `http2`, `http/1.1` alone otherwise. It never reads a
//! request: [`routes`](super::routes) takes the connection from there.

use std::io;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::options::TlsFiles;

/// What ALPN offers, in the server's order of preference (RFC 7301 §3.2:
/// the server picks). A client that offers both gets HTTP/2.
pub(crate) const ALPN: &[&[u8]] = if cfg!(feature = "http2") {
    &[b"h2", b"http/1.1"]
} else {
    &[b"http/1.1"]
};

/// A TLS acceptor for the certificate chain and key in `files`; fails with
/// the file and what is wrong with it.
pub(crate) fn acceptor(files: &TlsFiles) -> io::Result<TlsAcceptor> {
    let bad = |what: &std::path::Path, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: {e}", what.display()),
        )
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(&files.cert, &e))?;
    if certs.is_empty() {
        return Err(bad(&files.cert, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| bad(&files.key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&files.cert, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(&files.key, &e))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}
