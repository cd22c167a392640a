//! TLS for `wss://` (feature `rustls`): rustls with the `ring` provider.
//!
//! Trust, unless the caller gives its own [`ClientConfig`]: Mozilla's roots
//! (webpki-roots), compiled in, the same on every machine; with feature
//! `rustls-native-roots`, the platform's roots instead (rustls-native-certs),
//! falling back to Mozilla's if the platform has none. ALPN offers
//! `http/1.1` (RFC 6455 runs over HTTP/1.1; RFC 7301), and `h2` before it
//! when [`Connector::http2`](crate::client::Connector::http2) asks for
//! WebSockets over HTTP/2 (RFC 8441).
//!
//! To trust a private CA as well, build a config from
//! [`default_root_store`] plus your certificate:
//!
//! ```no_run
//! use wscodec::client::tls::{self, rustls};
//! use rustls::pki_types::{pem::PemObject, CertificateDer};
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut roots = tls::default_root_store();
//! for cert in CertificateDer::pem_file_iter("/etc/my-ca.pem")? {
//!     roots.add(cert?)?;
//! }
//! let connector = wscodec::client::Connector::new().tls_config(tls::client_config(roots));
//! # Ok(()) }
//! ```

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

pub use rustls;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
pub use tokio_rustls;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, HandshakeError};

/// The ALPN protocol offered (RFC 7301): a WebSocket handshake is HTTP/1.1.
const HTTP_1_1: &[u8] = b"http/1.1";
/// HTTP/2 over TLS (RFC 9113 §3.2), offered first when asked for.
const H2: &[u8] = b"h2";

/// The ALPN list offered: `h2` first when HTTP/2 is wanted, so a server
/// that speaks both picks it, and `http/1.1` for one that does not.
fn alpn(http2: bool) -> Vec<Vec<u8>> {
    if http2 {
        vec![H2.to_vec(), HTTP_1_1.to_vec()]
    } else {
        vec![HTTP_1_1.to_vec()]
    }
}

/// The roots trusted by default: the platform's with feature
/// `rustls-native-roots` (Mozilla's if the platform yields none), else
/// Mozilla's from webpki-roots.
pub fn default_root_store() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    #[cfg(feature = "rustls-native-roots")]
    {
        // Unreadable or unparsable platform certificates are skipped, as
        // curl and browsers do; the rest are still trusted.
        let found = rustls_native_certs::load_native_certs();
        let _ = roots.add_parsable_certificates(found.certs);
    }
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots
}

/// A client config trusting `roots`, with the `ring` provider, rustls' safe
/// default protocol versions (TLS 1.2 and 1.3) and ALPN `http/1.1`.
pub fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // The builder is given the provider rather than the process default, so
    // that a program that also links aws-lc-rs does not make this ambiguous.
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| unreachable!("ring supports the default versions"))
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![HTTP_1_1.to_vec()];
    Arc::new(config)
}

/// The config used when the caller gives none: built once per process
/// (loading the platform's roots is slow), shared by every connection so
/// that sessions resume; one for each ALPN list.
pub(crate) fn default_config(http2: bool) -> Arc<ClientConfig> {
    static HTTP1: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    static HTTP2: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if http2 {
        HTTP2
            .get_or_init(|| with_alpn(client_config(default_root_store()), true))
            .clone()
    } else {
        HTTP1
            .get_or_init(|| client_config(default_root_store()))
            .clone()
    }
}

/// A config with the ALPN list for `http2`, put in place of an empty list or
/// of the `http/1.1` alone that [`client_config`] sets; any other list the
/// caller filled is left as it is.
pub(crate) fn with_alpn(config: Arc<ClientConfig>, http2: bool) -> Arc<ClientConfig> {
    let wanted = alpn(http2);
    let ours = config.alpn_protocols.is_empty() || config.alpn_protocols == alpn(false);
    if !ours || config.alpn_protocols == wanted {
        return config;
    }
    let mut config = Arc::unwrap_or_clone(config);
    config.alpn_protocols = wanted;
    Arc::new(config)
}

/// The name TLS checks the certificate against, from the host of the URI
/// (already without port and brackets): an IP literal is an IP name, which
/// rustls does not send as SNI (RFC 6066 §3 allows only DNS names there).
fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_owned()).map_err(|_| {
        HandshakeError::InvalidUri(format!("{host} is not a valid TLS server name")).into()
    })
}

/// Runs the TLS handshake over `tcp` for `host`, and says whether the
/// server chose `h2`, which only `http2` allows.
pub(crate) async fn handshake(
    tcp: TcpStream,
    host: &str,
    config: Arc<ClientConfig>,
    http2: bool,
) -> Result<(TlsStream<TcpStream>, bool), Error> {
    let name = server_name(host)?;
    let tls = TlsConnector::from(config).connect(name, tcp).await?;
    // A server that picked another protocol would not understand the
    // handshake that follows. No ALPN answer at all means HTTP/1.1.
    match tls.get_ref().1.alpn_protocol() {
        None | Some(HTTP_1_1) => Ok((tls, false)),
        Some(H2) if http2 => Ok((tls, true)),
        Some(protocol) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the TLS server chose ALPN protocol {:?}, which this client does not speak{}",
                String::from_utf8_lossy(protocol),
                if protocol == H2 {
                    " without Connector::http2"
                } else {
                    ""
                }
            ),
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_from_hosts() {
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("::1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("example.com").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(server_name("bad name").is_err());
    }

    #[test]
    fn alpn_is_set_only_where_the_caller_chose_no_other_protocol() {
        let bare =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth();
        let mut own = bare.clone();
        own.alpn_protocols = vec![b"x-mine".to_vec()];
        assert_eq!(
            with_alpn(Arc::new(bare.clone()), false).alpn_protocols,
            [b"http/1.1"]
        );
        assert_eq!(
            with_alpn(Arc::new(bare), true).alpn_protocols,
            [&b"h2"[..], b"http/1.1"]
        );
        assert_eq!(with_alpn(Arc::new(own), true).alpn_protocols, [b"x-mine"]);
        assert_eq!(default_config(false).alpn_protocols, [b"http/1.1"]);
        assert_eq!(
            default_config(true).alpn_protocols,
            [&b"h2"[..], b"http/1.1"]
        );
        // A config from client_config() is ours to extend with h2.
        assert_eq!(
            with_alpn(client_config(RootCertStore::empty()), true).alpn_protocols,
            [&b"h2"[..], b"http/1.1"]
        );
        assert!(!default_root_store().is_empty());
    }
}
