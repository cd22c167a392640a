//! The client in one call: from a `ws://` or `wss://` URL to a
//! [`WebSocket`], resolving the host, opening TCP (or a proxy tunnel), TLS,
//! the handshake and, if asked, redirects.
//!
//! ```no_run
//! use futures::{SinkExt, StreamExt};
//! # async fn run() -> Result<(), wscodec::Error> {
//! let (mut ws, _response) = wscodec::connect_url("wss://echo.example/ws").await?;
//! ws.send(wscodec::Message::text("hello")).await?;
//! let echo = ws.next().await;
//! # Ok(()) }
//! ```
//!
//! [`Connector`] sets everything else:
//!
//! ```no_run
//! use std::time::Duration;
//! use wscodec::client::Connector;
//! use wscodec::{ClientRequest, Config};
//! # async fn run() -> Result<(), wscodec::Error> {
//! let request = ClientRequest::new("wss://chat.example/ws")?
//!     .subprotocol("chat.v2")
//!     .header("Authorization", "Bearer t0ken");
//! let (ws, response) = Connector::new()
//!     .config(Config::default())
//!     .connect_timeout(Some(Duration::from_secs(5)))
//!     .max_redirects(3)
//!     .proxy_from_env()
//!     .connect_request(request)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! `wss://` needs the `rustls` feature: without it a `wss://` URL fails with
//! [`HandshakeError::TlsUnavailable`] before any connection is made, never
//! falling back to plaintext. `ws://` needs no feature.

mod redirect;
mod stream;
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

pub use self::stream::ClientStream;
use crate::config::Config;
use crate::error::{Error, HandshakeError};
use crate::handshake::{ClientRequest, Response};
use crate::proxy::Proxy;
use crate::websocket::WebSocket;

/// Connects to a `ws://` or `wss://` URL with the defaults of [`Connector`]:
/// no proxy, no redirects, a 10 s connect timeout, the default [`Config`],
/// and for `wss://` (feature `rustls`) the default roots.
///
/// ```no_run
/// # async fn run() -> Result<(), wscodec::Error> {
/// let (ws, response) = wscodec::connect_url("ws://127.0.0.1:9001/").await?;
/// # Ok(()) }
/// ```
pub async fn connect_url(url: &str) -> Result<(WebSocket<ClientStream>, Response), Error> {
    Connector::new().connect(url).await
}

/// Where the TCP connection goes.
#[derive(Debug, Clone)]
enum Route {
    Direct,
    Via(Proxy),
    FromEnv,
}

/// Opens client connections: settings for [`connect_url`], reusable for
/// many connections (clone it, or share it by reference).
///
/// | setting | default |
/// |---|---|
/// | [`config`](Self::config) | [`Config::default()`] |
/// | [`connect_timeout`](Self::connect_timeout) | 10 s |
/// | [`max_redirects`](Self::max_redirects) | 0: a redirect is an error |
/// | [`tls_config`](Self::tls_config) | the default roots ([`tls`] module) |
/// | [`proxy`](Self::proxy), [`proxy_from_env`](Self::proxy_from_env) | none: direct |
///
/// Each connection (each hop of a redirect chain) resolves the host, tries
/// its addresses in the resolver's order (IPv6 and IPv4) until one accepts,
/// sets `TCP_NODELAY`, and for `wss://` runs TLS with SNI from the URL's host;
/// then the handshake.
#[derive(Debug, Clone)]
pub struct Connector {
    config: Config,
    connect_timeout: Option<Duration>,
    max_redirects: usize,
    route: Route,
    /// Offer `h2` by ALPN and open the WebSocket as an RFC 8441 stream.
    #[cfg_attr(not(feature = "rustls"), allow(dead_code))]
    http2: bool,
    #[cfg(feature = "rustls")]
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// A connection ready for the handshake: a byte stream for HTTP/1.1, or TLS
/// whose server chose `h2`.
enum Opened {
    Stream(ClientStream),
    #[cfg(all(feature = "http2", feature = "rustls"))]
    Http2(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Default for Connector {
    fn default() -> Self {
        Connector::new()
    }
}

impl Connector {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        Connector {
            config: Config::default(),
            connect_timeout: Some(Duration::from_secs(10)),
            max_redirects: 0,
            route: Route::Direct,
            http2: false,
            #[cfg(feature = "rustls")]
            tls: None,
        }
    }

    /// The connection's settings; [`Config::handshake_timeout`] bounds each
    /// handshake (request and response), after the connect timeout.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Bounds, for each hop, everything before the handshake: resolving the
    /// host, TCP to each of its addresses in turn (each attempt gets an equal
    /// share of what is left), the proxy's tunnel and TLS. The handshake
    /// itself is bounded by [`Config::handshake_timeout`]. `None`: no bound
    /// but the operating system's. Expiry fails with an [`Error::Io`] of kind
    /// [`TimedOut`](io::ErrorKind::TimedOut).
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Follows up to `hops` redirects (301, 302, 303, 307, 308; RFC 9110
    /// §15.4), resolving a relative `Location` against the URI it answered
    /// (RFC 3986 §5.2) and taking `http://`/`https://` as `ws://`/`wss://`.
    /// Default 0: a redirect fails with
    /// [`HandshakeError::UnexpectedStatus`], whose response holds the
    /// `Location`.
    ///
    /// A redirect from `wss://` to `ws://` is never followed
    /// ([`HandshakeError::InsecureRedirect`]). A redirect to another origin
    /// (scheme, host or port) drops the `Authorization`, `Cookie` and any
    /// custom `Host` header, so a credential meant for one server is not
    /// handed to another. One more than `hops` fails with
    /// [`HandshakeError::TooManyRedirects`].
    pub fn max_redirects(mut self, hops: usize) -> Self {
        self.max_redirects = hops;
        self
    }

    /// Tunnels every connection through `proxy` (HTTP `CONNECT` or SOCKS5);
    /// TLS runs end to end inside the tunnel.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.route = Route::Via(proxy);
        self
    }

    /// Takes the proxy from the environment for each connection
    /// ([`Proxy::from_env`]: `HTTPS_PROXY` for `wss://`, `HTTP_PROXY` for
    /// `ws://`, `ALL_PROXY`, and `NO_PROXY`, as curl reads them). Off unless
    /// called: a library should not route traffic by an environment it was
    /// not told to read.
    pub fn proxy_from_env(mut self) -> Self {
        self.route = Route::FromEnv;
        self
    }

    /// The rustls config for `wss://`, e.g. trusting a private CA. Its ALPN
    /// list, if empty or `http/1.1` alone (as [`tls::client_config`] makes
    /// it), becomes `http/1.1`, or `h2, http/1.1` with
    /// [`http2`](Self::http2); any other list the caller filled is used as it
    /// is, and a server that picks a protocol we do not speak from it fails
    /// the connection.
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn tls_config(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Asks for WebSockets over HTTP/2 (RFC 8441) on `wss://`: TLS offers
    /// ALPN `h2` before `http/1.1`. A server that picks `h2` gets an
    /// extended CONNECT on a new HTTP/2 connection, whose task is spawned on
    /// the current tokio runtime and ends with the WebSocket; the
    /// [`Response`] is then the `200` (or, for a refusal, the status, headers
    /// and first [`Limits::max_response_body`](crate::Limits::max_response_body)
    /// bytes of the body, as over HTTP/1.1, so redirects work alike) and the
    /// transport is [`ClientStream::Http2`]. A server that picks `http/1.1`,
    /// or no ALPN, gets the HTTP/1.1 upgrade as without this option: that is
    /// ALPN's choice, made before any WebSocket request.
    ///
    /// A server that picks `h2` but has not advertised
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 8441 §3) fails with
    /// [`Error::Http2`] of [`H2Error::ExtendedConnectDisabled`](crate::h2::H2Error::ExtendedConnectDisabled):
    /// nothing is retried over HTTP/1.1 behind the caller's back. `ws://` is
    /// unaffected (HTTP/2 without TLS needs prior knowledge; use
    /// [`h2::connect`](crate::h2::connect) on your own connection). Each
    /// call opens its own connection; to put many WebSockets on one, share
    /// an `h2::client::SendRequest` and call `h2::connect` for each. Default:
    /// off.
    #[cfg(all(feature = "http2", feature = "rustls"))]
    #[cfg_attr(docsrs, doc(cfg(all(feature = "http2", feature = "rustls"))))]
    pub fn http2(mut self, on: bool) -> Self {
        self.http2 = on;
        self
    }

    /// Connects to `url` (`ws://` or `wss://`).
    pub async fn connect(&self, url: &str) -> Result<(WebSocket<ClientStream>, Response), Error> {
        self.connect_request(ClientRequest::new(url)?).await
    }

    /// Connects with `request`, which carries the URL, `Origin`, subprotocols
    /// and headers. (Whether it is marked
    /// [`secure_transport`](ClientRequest::secure_transport) does not
    /// matter: the connector knows whether it ran TLS.)
    pub async fn connect_request(
        &self,
        request: ClientRequest,
    ) -> Result<(WebSocket<ClientStream>, Response), Error> {
        Box::pin(self.follow(request)).await
    }

    async fn follow(
        &self,
        mut request: ClientRequest,
    ) -> Result<(WebSocket<ClientStream>, Response), Error> {
        let mut hops = 0;
        loop {
            let response = match self.connect_once(request.clone()).await {
                Err(Error::Handshake(HandshakeError::UnexpectedStatus(response)))
                    if self.max_redirects > 0
                        && redirect::is_redirect(response.status())
                        && response.headers().get("location").is_some() =>
                {
                    response
                }
                other => return other,
            };
            if hops == self.max_redirects {
                return Err(HandshakeError::TooManyRedirects {
                    hops,
                    last: response,
                }
                .into());
            }
            let location = response.headers().get("location").unwrap_or_default();
            let target = redirect::resolve(&request.uri(), location);
            let next = ClientRequest::new(&target)?;
            if request.is_secure() && !next.is_secure() {
                return Err(HandshakeError::InsecureRedirect(target).into());
            }
            let same_origin = request.is_secure() == next.is_secure()
                && request
                    .server_name()
                    .eq_ignore_ascii_case(next.server_name())
                && request.port() == next.port();
            hops += 1;
            crate::trace::debug!(
                hop = hops,
                status = response.status(),
                from = %request.uri(),
                to = %next.uri(),
                same_origin,
                "client following redirect"
            );
            request = request.retarget(&target, !same_origin)?;
        }
    }

    /// One hop: transport, then handshake.
    async fn connect_once(
        &self,
        request: ClientRequest,
    ) -> Result<(WebSocket<ClientStream>, Response), Error> {
        if request.is_secure() && cfg!(not(feature = "rustls")) {
            return Err(HandshakeError::TlsUnavailable.into());
        }
        let deadline = self.connect_timeout.map(|t| Instant::now() + t);
        let open = self.open(&request, deadline);
        let opened = match deadline {
            Some(d) => tokio::time::timeout_at(d, open).await.unwrap_or_else(|_| {
                Err(timed_out(
                    &request,
                    self.connect_timeout.unwrap_or_default(),
                ))
            })?,
            None => open.await?,
        };
        // One arm without HTTP/2.
        #[allow(clippy::infallible_destructuring_match)]
        let stream = match opened {
            Opened::Stream(stream) => stream,
            #[cfg(all(feature = "http2", feature = "rustls"))]
            Opened::Http2(tls) => return self.connect_http2(tls, request).await,
        };
        let request = if stream.is_tls() {
            request.secure_transport()
        } else {
            request
        };
        #[cfg(feature = "tracing")]
        let peer = stream.tcp().and_then(|tcp| tcp.peer_addr().ok());
        let (ws, response) =
            crate::connect::connect_with(stream, request, self.config.clone()).await?;
        // The connection's span names the server (the proxy, through a tunnel).
        #[cfg(feature = "tracing")]
        if let Some(peer) = peer {
            ws.span().record("peer", tracing::field::display(peer));
        }
        Ok((ws, response))
    }

    /// The handshake of RFC 8441 on a new HTTP/2 connection over `tls`.
    #[cfg(all(feature = "http2", feature = "rustls"))]
    async fn connect_http2(
        &self,
        tls: Box<tokio_rustls::client::TlsStream<TcpStream>>,
        request: ClientRequest,
    ) -> Result<(WebSocket<ClientStream>, Response), Error> {
        #[cfg(feature = "tracing")]
        let peer = tls.get_ref().0.peer_addr().ok();
        let h2_request = request.to_h2_request()?;
        // No stream may open until the server's SETTINGS say how many: so
        // the first CONNECT knows at once whether extended CONNECT is on.
        let (mut send_request, connection) = ::h2::client::Builder::new()
            .initial_max_send_streams(0)
            .handshake::<_, bytes::Bytes>(*tls)
            .await
            .map_err(crate::h2::H2Error::from)?;
        // Driven until the server goes away or, once `send_request` is
        // dropped below, the WebSocket's stream ends: then the connection
        // closes with GOAWAY and the task returns.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let (stream, head, extensions) =
            crate::h2::client_open(&mut send_request, h2_request, &self.config).await?;
        let ws = WebSocket::with_extensions(
            ClientStream::Http2(stream),
            crate::Role::Client,
            self.config.clone(),
            bytes::BytesMut::new(),
            &extensions,
        );
        #[cfg(feature = "tracing")]
        if let Some(peer) = peer {
            ws.span().record("peer", tracing::field::display(peer));
        }
        let (head, ()) = head.into_parts();
        Ok((ws, Response::from_http_head(&head)))
    }

    /// TCP (or the proxy's tunnel), `TCP_NODELAY`, and TLS for `wss://`.
    async fn open(
        &self,
        request: &ClientRequest,
        deadline: Option<Instant>,
    ) -> Result<Opened, Error> {
        let host = request.server_name();
        let port = request.port();
        let proxy = match &self.route {
            Route::Direct => None,
            Route::Via(proxy) => Some(proxy.clone()),
            Route::FromEnv => Proxy::from_env(request.is_secure(), host).transpose()?,
        };
        let tcp = match proxy {
            Some(proxy) => {
                // The proxy bounds its own exchange too; a day stands for
                // "no bound" where it wants a duration.
                let left = deadline.map_or(Duration::from_secs(86_400), |d| {
                    d.saturating_duration_since(Instant::now())
                });
                proxy.open(host, port, left).await?
            }
            None => connect_tcp(host, port, deadline).await?,
        };
        tcp.set_nodelay(true)?;
        if !request.is_secure() {
            return Ok(Opened::Stream(ClientStream::Plain(tcp)));
        }
        #[cfg(feature = "rustls")]
        {
            let config = match &self.tls {
                Some(config) => tls::with_alpn(config.clone(), self.http2),
                None => tls::default_config(self.http2),
            };
            let (tls, chose_h2) = tls::handshake(tcp, host, config, self.http2).await?;
            #[cfg(feature = "http2")]
            if chose_h2 {
                return Ok(Opened::Http2(Box::new(tls)));
            }
            let _ = chose_h2;
            Ok(Opened::Stream(ClientStream::Tls(Box::new(tls))))
        }
        #[cfg(not(feature = "rustls"))]
        {
            drop(tcp);
            Err(HandshakeError::TlsUnavailable.into())
        }
    }
}

fn timed_out(request: &ClientRequest, after: Duration) -> Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "connecting to {} took longer than the connect timeout ({after:?})",
            request.connect_addr()
        ),
    )
    .into()
}

/// Resolves `host` and tries each address in turn; a refused or unreachable
/// address falls through to the next. With a deadline, each attempt gets an
/// equal share of the time left, so one address that never answers (a
/// black-holed IPv6 route) does not use up the time of the others.
async fn connect_tcp(host: &str, port: u16, deadline: Option<Instant>) -> Result<TcpStream, Error> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("resolving {host}: {e}")))?
        .collect();
    connect_addrs(host, &addrs, deadline).await
}

/// Tries each of `addrs` in turn (see [`connect_tcp`]).
async fn connect_addrs(
    host: &str,
    addrs: &[SocketAddr],
    deadline: Option<Instant>,
) -> Result<TcpStream, Error> {
    let mut last = None;
    for (i, addr) in addrs.iter().enumerate() {
        let attempt = TcpStream::connect(addr);
        let result = match deadline {
            Some(d) => {
                let share = d.saturating_duration_since(Instant::now()) / (addrs.len() - i) as u32;
                match tokio::time::timeout(share, attempt).await {
                    Ok(result) => result,
                    Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
                }
            }
            None => attempt.await,
        };
        match result {
            Ok(tcp) => return Ok(tcp),
            Err(e) => {
                last = Some(io::Error::new(
                    e.kind(),
                    format!("connecting to {addr} ({host}): {e}"),
                ))
            }
        }
    }
    Err(last
        .unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} resolved to no address"),
            )
        })
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_address_falls_through_to_the_next() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refused = closed.local_addr().unwrap();
        drop(closed);
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listening = open.local_addr().unwrap();
        let deadline = Some(Instant::now() + Duration::from_secs(10));
        let tcp = connect_addrs("test", &[refused, listening], deadline)
            .await
            .unwrap();
        assert_eq!(tcp.peer_addr().unwrap(), listening);
        // With only the refused one, the error names the address it tried.
        let err = connect_addrs("test", &[refused], deadline)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&refused.to_string()), "{err}");
    }

    #[tokio::test]
    async fn no_address_is_an_error_that_names_the_host() {
        let err = connect_addrs("nowhere.test", &[], None).await.unwrap_err();
        assert!(err.to_string().contains("nowhere.test"), "{err}");
    }
}
