//! Tunnels to a WebSocket server through a proxy: HTTP `CONNECT`
//! (RFC 9110 §9.3.6) and SOCKS5 (RFC 1928, with RFC 1929 username and
//! password).
//!
//! A [`Proxy`] comes from a URL ([`Proxy::parse`]), from the environment with
//! curl's meanings ([`Proxy::from_env`]), or from its parts ([`Proxy::new`]).
//! [`Proxy::open`] connects to it and asks for a tunnel; what comes back is a
//! plain [`TcpStream`] positioned at the first byte of the tunnel, so TLS (for
//! `wss://`) runs end to end inside it and the proxy sees only ciphertext.
//!
//! ```no_run
//! # async fn run() -> Result<(), wscodec::Error> {
//! use std::time::Duration;
//! use wscodec::proxy::Proxy;
//!
//! let proxy = Proxy::parse("socks5h://127.0.0.1:1080")?;
//! let tunnel = proxy.open("echo.example", 80, Duration::from_secs(10)).await?;
//! let (ws, _response) = wscodec::connect(tunnel, "ws://echo.example/").await?;
//! # Ok(()) }
//! ```
//!
//! The replies are parsed by pure functions ([`parse_connect_reply`],
//! [`parse_socks5_reply`]) that the fuzzer drives; the I/O around them is a
//! thin async layer that never reads a byte past the end of a reply, since
//! what follows belongs to the tunnel.

mod env;
mod http_connect;
mod socks5;
#[cfg(test)]
mod tests;
mod url;

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::error::Error;

pub use env::no_proxy_matches;
pub use http_connect::{parse_connect_reply, ConnectReply};
pub use socks5::{parse_socks5_reply, Socks5Address, Socks5Parse, Socks5Reply, Socks5ReplyCode};

/// The default bound on the head of an HTTP proxy's reply to `CONNECT`: the
/// same 16 KiB as [`Limits::max_header_bytes`](crate::Limits::max_header_bytes).
pub const DEFAULT_MAX_REPLY_HEAD: usize = 16 << 10;

/// The default bound on the header lines of an HTTP proxy's reply, the same 64
/// as [`Limits::max_headers`](crate::Limits::max_headers).
pub const DEFAULT_MAX_REPLY_HEADERS: usize = 64;

/// The port of a proxy URL that names none: 1080, as curl does for every
/// proxy type but HTTPS (which this crate does not support). 1080 is SOCKS's
/// registered port; HTTP proxies usually listen elsewhere (3128, 8080, 8888),
/// so name the port in an `http://` proxy URL.
pub const DEFAULT_PORT: u16 = 1080;

/// What kind of tunnel a [`Proxy`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// An HTTP proxy, asked with `CONNECT host:port` (RFC 9110 §9.3.6);
    /// `http://` in a URL.
    Http,
    /// A SOCKS5 proxy (RFC 1928) to which we send the target's IP address:
    /// we resolve the name. `socks5://` in a URL.
    Socks5,
    /// A SOCKS5 proxy to which we send the target's name (address type 3),
    /// so the proxy resolves it. `socks5h://` in a URL.
    Socks5h,
}

impl ProxyKind {
    /// The URL scheme of this kind: `http`, `socks5` or `socks5h`.
    pub fn scheme(&self) -> &'static str {
        match self {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 => "socks5",
            ProxyKind::Socks5h => "socks5h",
        }
    }
}

/// A proxy to tunnel through: `http://[user:pass@]host[:port]`,
/// `socks5://…` (we resolve the target) or `socks5h://…` (the proxy does).
///
/// `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    /// Without brackets, also for an IPv6 literal.
    host: String,
    port: u16,
    credentials: Option<Credentials>,
    max_reply_head: usize,
    max_reply_headers: usize,
}

#[derive(Clone, PartialEq, Eq)]
struct Credentials {
    username: String,
    password: String,
}

impl Proxy {
    /// A proxy of `kind` at `host:port`, without credentials. `host` is a
    /// name or an IP address; brackets around an IPv6 literal are optional.
    pub fn new(kind: ProxyKind, host: impl Into<String>, port: u16) -> Proxy {
        let host = host.into();
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(inner) => inner.to_owned(),
            None => host,
        };
        Proxy {
            kind,
            host,
            port,
            credentials: None,
            max_reply_head: DEFAULT_MAX_REPLY_HEAD,
            max_reply_headers: DEFAULT_MAX_REPLY_HEADERS,
        }
    }

    /// Sets the username and password: Basic `Proxy-Authorization`
    /// (RFC 7617) for an HTTP proxy, username/password authentication
    /// (RFC 1929) for SOCKS5. Their limits (no `:` in a Basic user-id, at
    /// most 255 bytes each for SOCKS5) are checked by [`Proxy::open`].
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Proxy {
        self.credentials = Some(Credentials {
            username: username.into(),
            password: password.into(),
        });
        self
    }

    /// Bounds the head of an HTTP proxy's reply (status line and headers);
    /// default [`DEFAULT_MAX_REPLY_HEAD`]. A longer head fails with
    /// [`ProxyError::ReplyTooLarge`]. SOCKS5 replies are at most 262 bytes
    /// by construction.
    pub fn max_reply_head(mut self, bytes: usize) -> Proxy {
        self.max_reply_head = bytes;
        self
    }

    /// Bounds the header lines of an HTTP proxy's reply; default
    /// [`DEFAULT_MAX_REPLY_HEADERS`]. More fail with
    /// [`ProxyError::Malformed`].
    pub fn max_reply_headers(mut self, count: usize) -> Proxy {
        self.max_reply_headers = count;
        self
    }

    /// The kind of tunnel.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host name or IP address (an IPv6 literal without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The username, if credentials are set.
    pub fn username(&self) -> Option<&str> {
        self.credentials.as_ref().map(|c| c.username.as_str())
    }

    /// Parses a proxy URL: `scheme://[user[:password]@]host[:port][/]`.
    ///
    /// - The scheme is `http`, `socks5` or `socks5h` (any case). A URL
    ///   without one is an HTTP proxy, as for curl. `https://` (TLS to the
    ///   proxy), `socks4://` and `socks4a://` are refused with an error that
    ///   says so.
    /// - The user and password are percent-decoded (RFC 3986 §2.1) and must be
    ///   UTF-8; a user without a password gets an empty one, as in curl.
    /// - The host is a name, an IPv4 address or an IPv6 address in brackets
    ///   (RFC 3986 §3.2.2). The port defaults to [`DEFAULT_PORT`] (1080).
    /// - Nothing may follow the authority but a single `/`: a proxy URL
    ///   names a proxy, not a resource.
    ///
    /// The error's text never contains the password.
    ///
    /// ```
    /// use wscodec::proxy::{Proxy, ProxyKind};
    ///
    /// let proxy = Proxy::parse("socks5h://me:s%40cret@[::1]:9050").unwrap();
    /// assert_eq!(proxy.kind(), ProxyKind::Socks5h);
    /// assert_eq!((proxy.host(), proxy.port()), ("::1", 9050));
    /// assert_eq!(proxy.username(), Some("me"));
    /// assert_eq!(proxy.to_string(), "socks5h://me@[::1]:9050"); // no password
    /// assert!(Proxy::parse("https://proxy.example:443").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Proxy, ProxyError> {
        url::parse(url)
    }

    /// The proxy the environment names for a connection to `host` (`secure`:
    /// `wss://`), with curl's meanings:
    ///
    /// - for `wss://`: `wss_proxy`, `WSS_PROXY`, `https_proxy`, `HTTPS_PROXY`,
    ///   then `all_proxy`, `ALL_PROXY`;
    /// - for `ws://`: `ws_proxy`, `WS_PROXY`, `http_proxy`, then `all_proxy`,
    ///   `ALL_PROXY`. The uppercase `HTTP_PROXY` is ignored, as curl ignores
    ///   it: under CGI a request's `Proxy:` header arrives as `HTTP_PROXY`, so
    ///   a client could choose the server's proxy ("httpoxy").
    ///
    /// The first variable set to a non-empty value wins. `None` when there is
    /// none, or when `no_proxy` (else `NO_PROXY`) excludes `host`; see
    /// [`no_proxy_matches`] for that list's syntax. `host` is the target's
    /// name or IP address, without port (brackets around IPv6 allowed).
    /// `Some(Err(_))` when the variable's value is not a proxy URL
    /// ([`Proxy::parse`]).
    ///
    /// A thin wrapper of [`Proxy::from_lookup`] over [`std::env::var`].
    pub fn from_env(secure: bool, host: &str) -> Option<Result<Proxy, ProxyError>> {
        Proxy::from_lookup(secure, host, |name| std::env::var(name).ok())
    }

    /// [`Proxy::from_env`] with the variables read through `lookup` (a name to
    /// its value), so tests and applications can supply their own.
    ///
    /// ```
    /// use wscodec::proxy::Proxy;
    ///
    /// let env = |name: &str| match name {
    ///     "https_proxy" => Some("http://proxy.corp:3128".to_owned()),
    ///     "no_proxy" => Some("localhost,.internal,10.0.0.0/8".to_owned()),
    ///     _ => None,
    /// };
    /// assert!(Proxy::from_lookup(true, "example.com", env).is_some());
    /// assert!(Proxy::from_lookup(true, "db.internal", env).is_none());
    /// assert!(Proxy::from_lookup(true, "10.1.2.3", env).is_none());
    /// assert!(Proxy::from_lookup(false, "example.com", env).is_none()); // no http_proxy
    /// ```
    pub fn from_lookup<F>(secure: bool, host: &str, lookup: F) -> Option<Result<Proxy, ProxyError>>
    where
        F: Fn(&str) -> Option<String>,
    {
        env::from_lookup(secure, host, lookup)
    }

    /// Connects to the proxy and asks it for a tunnel to `host:port`; the
    /// stream returned is the tunnel, ready for TLS or the handshake.
    ///
    /// - Each address the proxy's name resolves to is tried in turn;
    ///   `TCP_NODELAY` is set, as a WebSocket wants it.
    /// - `host` is the target's name or IP address (brackets around IPv6
    ///   allowed). For [`ProxyKind::Socks5`] we resolve it and send the first
    ///   address; for [`ProxyKind::Socks5h`] and HTTP the proxy does.
    /// - `timeout` bounds the whole exchange: resolving, connecting, and the
    ///   tunnel's handshake.
    ///
    /// Every failure is [`Error::Proxy`], naming the proxy (never its
    /// password): I/O errors and the timeout too, so a caller can tell a
    /// proxy that failed from a server that did.
    pub async fn open(&self, host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Error> {
        match tokio::time::timeout(timeout, self.open_inner(host, port)).await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::from(ProxyError::Timeout {
                proxy: self.to_string(),
                after: timeout,
            })),
        }
    }

    async fn open_inner(&self, host: &str, port: u16) -> Result<TcpStream, ProxyError> {
        // Brackets only around an IPv6 literal (RFC 3986 §3.2.2).
        let target = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .filter(|h| h.contains(':'))
            .unwrap_or(host);
        // Checked before connecting: the name ends up in a request line
        // (HTTP) or a length-prefixed field (SOCKS5).
        if !valid_target_host(target) {
            return Err(ProxyError::InvalidTarget {
                proxy: self.to_string(),
                host: host.to_owned(),
            });
        }
        // So are the credentials' limits: a request that cannot be sent
        // should not cost a connection.
        match self.kind {
            ProxyKind::Http => drop(http_connect::request(self, target, port)?),
            ProxyKind::Socks5 | ProxyKind::Socks5h => socks5::check_credentials(self)?,
        }
        let mut stream = self.connect().await?;
        match self.kind {
            ProxyKind::Http => http_connect::handshake(self, &mut stream, target, port).await?,
            ProxyKind::Socks5 | ProxyKind::Socks5h => {
                socks5::handshake(self, &mut stream, target, port).await?
            }
        }
        Ok(stream)
    }

    async fn connect(&self) -> Result<TcpStream, ProxyError> {
        let fail = |error| ProxyError::Connect {
            proxy: self.to_string(),
            error,
        };
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(fail)?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    stream.set_nodelay(true).map_err(fail)?;
                    return Ok(stream);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(fail(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address")
        })))
    }

    /// `host:port`, with brackets around an IPv6 literal (RFC 3986 §3.2.2).
    fn authority(&self) -> String {
        authority(&self.host, self.port)
    }
}

/// `host:port` with brackets around an IPv6 literal.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A target name or IP literal we are willing to put on the wire: RFC 3986
/// reg-name characters (unreserved, sub-delims, `%`) or an IPv6 literal.
/// Refuses what could break out of a request line: spaces, CR, LF, `/`, `@`.
fn valid_target_host(host: &str) -> bool {
    if host.is_empty() || host.len() > 255 {
        return false;
    }
    if host.contains(':') {
        return host.parse::<std::net::Ipv6Addr>().is_ok();
    }
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b))
}

impl fmt::Display for Proxy {
    /// `scheme://[user@]host:port`: never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.kind.scheme())?;
        if let Some(c) = &self.credentials {
            write!(f, "{}@", c.username)?;
        }
        f.write_str(&self.authority())
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username())
            .field("password", &self.credentials.as_ref().map(|_| "<redacted>"))
            .field("max_reply_head", &self.max_reply_head)
            .field("max_reply_headers", &self.max_reply_headers)
            .finish()
    }
}

/// Why [`parse_connect_reply`] or [`parse_socks5_reply`] refused a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedReply(String);

impl MalformedReply {
    /// What is wrong with the reply.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MalformedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MalformedReply {}

/// Why a proxy did not give us a tunnel.
///
/// Every variant but [`ProxyError::InvalidUrl`] names the proxy as
/// `scheme://[user@]host:port` (never the password). [`Proxy::open`] reports
/// its I/O errors and its timeout here too, not as [`Error::Io`] or a
/// handshake timeout: they happened on the way to the server.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy URL could not be used: the URL (its password replaced by
    /// `***`) and why.
    InvalidUrl(String),
    /// The target host is not a name or IP address we can ask a proxy for.
    InvalidTarget {
        /// The proxy.
        proxy: String,
        /// The host as given.
        host: String,
    },
    /// The credentials cannot be sent: a SOCKS5 username or password over
    /// 255 bytes (RFC 1929 §2), or an empty SOCKS5 username.
    CredentialTooLong {
        /// The proxy.
        proxy: String,
        /// `"username"` or `"password"`.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The credentials cannot be sent for another reason: a Basic user-id
    /// containing `:` (RFC 7617 §2).
    InvalidCredentials {
        /// The proxy.
        proxy: String,
        /// Why.
        reason: &'static str,
    },
    /// The proxy's name did not resolve, or no address accepted a connection.
    Connect {
        /// The proxy.
        proxy: String,
        /// The last error.
        error: io::Error,
    },
    /// For [`ProxyKind::Socks5`]: the target's name did not resolve here.
    Resolve {
        /// The proxy.
        proxy: String,
        /// The target host.
        host: String,
        /// Why.
        error: io::Error,
    },
    /// The connection to the proxy failed during the tunnel's handshake
    /// (including the proxy closing it before its reply was complete).
    Io {
        /// The proxy.
        proxy: String,
        /// The error.
        error: io::Error,
    },
    /// [`Proxy::open`] did not finish within its timeout.
    Timeout {
        /// The proxy.
        proxy: String,
        /// The timeout.
        after: Duration,
    },
    /// The HTTP proxy answered `CONNECT` with a status other than 2xx.
    HttpStatus {
        /// The proxy.
        proxy: String,
        /// The status code; 407 means the proxy wants (other) credentials.
        status: u16,
        /// The reason phrase, as sent.
        reason: String,
        /// Every `Proxy-Authenticate` header value (RFC 9110 §11.7.1), the
        /// challenges of a 407.
        proxy_authenticate: Vec<String>,
        /// Whether we sent `Proxy-Authorization`: a 407 (or the 401 that
        /// some proxies, tinyproxy among them, send instead) then means the
        /// credentials were wrong, not missing.
        credentials_sent: bool,
    },
    /// The HTTP proxy's reply head exceeded [`Proxy::max_reply_head`].
    ReplyTooLarge {
        /// The proxy.
        proxy: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The SOCKS5 proxy refused the `CONNECT` with this reply code
    /// (RFC 1928 §6).
    SocksReply {
        /// The proxy.
        proxy: String,
        /// The reply code, with its RFC name.
        code: Socks5ReplyCode,
    },
    /// The SOCKS5 proxy accepts none of the methods we offered (0xFF,
    /// RFC 1928 §3): without credentials, it probably wants a password.
    SocksNoAcceptableMethod {
        /// The proxy.
        proxy: String,
        /// Whether we offered username/password authentication.
        offered_password: bool,
    },
    /// The SOCKS5 proxy rejected our username and password (RFC 1929 §2).
    SocksAuthRejected {
        /// The proxy.
        proxy: String,
        /// The status byte it answered (non-zero).
        status: u8,
    },
    /// The proxy's reply is not valid HTTP or SOCKS5.
    Malformed {
        /// The proxy.
        proxy: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ProxyError {
    /// The HTTP status of a proxy's refusal ([`ProxyError::HttpStatus`]).
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ProxyError::HttpStatus { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The SOCKS5 reply code of a proxy's refusal ([`ProxyError::SocksReply`]).
    pub fn socks_reply(&self) -> Option<Socks5ReplyCode> {
        match self {
            ProxyError::SocksReply { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::InvalidUrl(why) => write!(f, "invalid proxy URL {why}"),
            ProxyError::InvalidTarget { proxy, host } => {
                write!(f, "cannot ask the proxy {proxy} for the host {host:?}: not a host name or IP address")
            }
            ProxyError::CredentialTooLong { proxy, field, len } => write!(
                f,
                "the {field} for the SOCKS5 proxy {proxy} is {len} bytes; RFC 1929 allows 1 to 255"
            ),
            ProxyError::InvalidCredentials { proxy, reason } => {
                write!(
                    f,
                    "the credentials for the proxy {proxy} cannot be sent: {reason}"
                )
            }
            ProxyError::Connect { proxy, error } => {
                write!(f, "could not connect to the proxy {proxy}: {error}")
            }
            ProxyError::Resolve { proxy, host, error } => {
                write!(
                    f,
                    "could not resolve {host} to send it to the proxy {proxy}: {error}"
                )
            }
            ProxyError::Io { proxy, error } => {
                write!(f, "the connection to the proxy {proxy} failed: {error}")
            }
            ProxyError::Timeout { proxy, after } => {
                write!(f, "the proxy {proxy} gave no tunnel within {after:?}")
            }
            ProxyError::HttpStatus {
                proxy,
                status: status @ (401 | 407),
                reason,
                proxy_authenticate,
                credentials_sent,
            } => {
                if *credentials_sent {
                    write!(f, "the proxy {proxy} rejected the credentials: ")?;
                } else {
                    write!(f, "the proxy {proxy} wants authentication: ")?;
                }
                write!(f, "it answered CONNECT with {status} {reason}")?;
                for challenge in proxy_authenticate {
                    write!(f, "; Proxy-Authenticate: {challenge}")?;
                }
                Ok(())
            }
            ProxyError::HttpStatus {
                proxy,
                status,
                reason,
                ..
            } => write!(
                f,
                "the proxy {proxy} refused CONNECT with {status} {reason}"
            ),
            ProxyError::ReplyTooLarge { proxy, limit } => {
                write!(
                    f,
                    "the reply head of the proxy {proxy} exceeds {limit} bytes"
                )
            }
            ProxyError::SocksReply { proxy, code } => {
                write!(f, "the SOCKS5 proxy {proxy} refused CONNECT: {code}")
            }
            ProxyError::SocksNoAcceptableMethod {
                proxy,
                offered_password,
            } => {
                if *offered_password {
                    write!(
                        f,
                        "the SOCKS5 proxy {proxy} accepts neither no authentication nor a username and password"
                    )
                } else {
                    write!(
                        f,
                        "the SOCKS5 proxy {proxy} requires authentication (no acceptable methods); set a username and password"
                    )
                }
            }
            ProxyError::SocksAuthRejected { proxy, status } => write!(
                f,
                "the SOCKS5 proxy {proxy} rejected the username and password (status {status})"
            ),
            ProxyError::Malformed { proxy, reason } => {
                write!(f, "the proxy {proxy} sent a malformed reply: {reason}")
            }
        }
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProxyError::Connect { error, .. }
            | ProxyError::Resolve { error, .. }
            | ProxyError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}
