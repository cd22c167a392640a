//! axum integration (feature `axum`): [`WebSocketUpgrade`], an extractor that
//! validates the upgrade request, negotiates the subprotocol and the
//! extensions, answers and hands the handler a [`WebSocket`] on the
//! upgraded connection.
//!
//! Nothing here decides anything: the request is the crate's
//! [`handshake::Request`](crate::handshake::Request) seen through
//! [`Request::from_http_parts`], validated by
//! [`Request::validate`] (RFC 6455 §4.2.1), answered from the one
//! negotiation, [`Agreed::negotiate`], and the connection is built by
//! [`WebSocket::from_agreed`](crate::WebSocket::from_agreed), exactly as
//! [`accept_with`](crate::accept_with) and the hyper path do. It is written
//! against `axum-core` and hyper's upgrade, not `axum`, so the feature pulls
//! in no router.
//!
//! ```no_run
//! use axum::routing::any;
//! use axum::Router;
//! use futures::{SinkExt, StreamExt};
//! use wscodec::axum::{WebSocket, WebSocketUpgrade};
//! use wscodec::handshake::Reject;
//!
//! async fn ws(upgrade: WebSocketUpgrade) -> Result<axum::response::Response, Reject> {
//!     // Any status: the handler decides before the upgrade.
//!     if upgrade.request().query() != Some("token=secret") {
//!         return Err(Reject::new(401).header("WWW-Authenticate", "Bearer"));
//!     }
//!     let config = wscodec::Config::default(); // `.deflate(..)` with feature `deflate`
//!     Ok(upgrade
//!         .protocols(["chat.v2", "chat.v1"])
//!         .config(config)
//!         .on_upgrade(|mut ws: WebSocket| async move {
//!             while let Some(Ok(message)) = ws.next().await {
//!                 if !message.is_control() && ws.feed(message).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         }))
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! // `any`, not `get`: over HTTP/2 the same WebSocket comes as a CONNECT.
//! let app = Router::new().route("/ws", any(ws));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! # HTTP/2 (features `axum` and `http2`)
//!
//! With feature `http2` as well, the same extractor accepts a WebSocket
//! over HTTP/2, RFC 8441's extended `CONNECT` with `:protocol = websocket`,
//! and the same handler serves both: it sees the same [`WebSocketUpgrade`]
//! (subprotocols, headers, [`Reject`]s), and its callback gets the same
//! [`WebSocket`] type, over hyper's upgraded HTTP/2 stream instead of the
//! TCP connection. The request is checked by
//! [`h2::validate`](crate::h2::validate) (400, 405 with `Allow: CONNECT`,
//! 426, 431 within [`Limits::default`](crate::Limits), 501 for a
//! `:protocol` other than `websocket`), the answer is negotiated by the same
//! [`Agreed`] as over HTTP/1.1 and sent as [`h2::response`](crate::h2::response)
//! makes it: `200` with `Sec-WebSocket-Protocol` and
//! `Sec-WebSocket-Extensions`, never `Sec-WebSocket-Accept`, `Upgrade` or
//! `Connection` (RFC 8441 §5). Closing our side ends the stream
//! (END_STREAM), as RFC 8441 §6 asks.
//!
//! Two things in axum 0.8 must be set for it:
//!
//! - **Routing.** The request's method is `CONNECT`, which axum's `get` does
//!   not match (the router answers 405 itself): route the WebSocket with
//!   `any(ws)`, `get(ws).connect(ws)` or
//!   `on(MethodFilter::GET.or(MethodFilter::CONNECT), ws)`.
//! - **The server.** `axum::serve` speaks HTTP/2 (h2c by prior knowledge,
//!   or h2 behind a TLS acceptor) and advertises
//!   `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 8441 §3) only with axum's own
//!   `http2` feature: `axum = { version = "0.8", features = ["http2"] }`.
//!   Without the setting, a client never sends the extended CONNECT.
//!
//! Over HTTP/2 the host comes as the `:authority` pseudo-header, which is
//! not among the headers: [`request`](WebSocketUpgrade::request)`()
//! .header("host")` is `None` there unless the client sent a `Host` header
//! too (RFC 9113 §8.3.1).
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use axum::routing::{get, MethodFilter, on};
//! use axum::Router;
//! use wscodec::axum::{WebSocket, WebSocketUpgrade};
//!
//! async fn ws(upgrade: WebSocketUpgrade) -> axum::response::Response {
//!     let over = if upgrade.is_http2() { "HTTP/2" } else { "HTTP/1.1" };
//!     upgrade.on_upgrade(move |mut ws: WebSocket| async move {
//!         use futures::SinkExt;
//!         let _ = ws.send(wscodec::Message::text(format!("hello over {over}"))).await;
//!     })
//! }
//!
//! let app = Router::new()
//!     .route("/", get(|| async { "the page" }))
//!     .route("/ws", on(MethodFilter::GET.or(MethodFilter::CONNECT), ws));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! Without feature `http2`, HTTP/1.1 only: an extended `CONNECT` is refused
//! with 405, as [`accept`](crate::accept) refuses any method but `GET`.

use std::fmt;
use std::future::Future;

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
#[cfg(feature = "http2")]
use http::{Method, Version};
use hyper::upgrade::OnUpgrade;

use crate::accept::refusal;
use crate::config::Config;
use crate::error::{Error, HandshakeError};
use crate::handshake::{Accept, Agreed, Reject, Request};

/// The upgraded connection under an axum [`WebSocket`]: hyper's
/// `Upgraded` (which keeps any bytes hyper read past the request head) as a
/// tokio `AsyncRead + AsyncWrite`. It is the TCP (or TLS) connection after
/// an HTTP/1.1 upgrade and the request's stream after an HTTP/2 extended
/// CONNECT, so one handler's callback takes both.
pub type UpgradedIo = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

/// The crate's [`WebSocket`](crate::WebSocket) on a connection that axum
/// upgraded: what [`WebSocketUpgrade::on_upgrade`] hands its callback.
pub type WebSocket = crate::WebSocket<UpgradedIo>;

/// Called with the error when the connection fails to upgrade after the
/// `101` (or `200`) was sent.
type FailedUpgrade = Box<dyn FnOnce(Error) + Send>;

/// How the WebSocket was asked for: the answer and the rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handshake {
    /// RFC 6455 §4: `GET` with `Upgrade: websocket`, answered `101`.
    Http1,
    /// RFC 8441 §4–§5: an extended `CONNECT` on an HTTP/2 stream, answered
    /// `200`.
    #[cfg(feature = "http2")]
    Http2,
}

/// The extractor for a WebSocket upgrade request, as easy as axum's own:
/// take it as a handler argument, choose a subprotocol and a [`Config`],
/// and return [`on_upgrade`](WebSocketUpgrade::on_upgrade)'s response.
///
/// Extracting it validates the request (RFC 6455 §4.2.1); a request that is
/// not a valid upgrade never reaches the handler and is answered with a
/// [`WebSocketUpgradeRejection`]: the status the crate's
/// [`Reject::from_error`] gives (400, 405 with `Allow: GET`, 426 with
/// `Sec-WebSocket-Version: 13`, 505). With feature `http2`, a request over
/// HTTP/2 is checked as an extended CONNECT instead (RFC 8441 §4–§5, see
/// the [module docs](self)), with [`RequestError::status`](crate::h2::RequestError::status).
///
/// To refuse a valid upgrade (no token, wrong origin, too many
/// connections), return any response instead of calling `on_upgrade`: a
/// [`Reject`], which is an [`IntoResponse`], or your own. Nothing is
/// upgraded then.
///
/// Take `Option<WebSocketUpgrade>` to serve something else on the same
/// route to requests that do not ask for a WebSocket.
pub struct WebSocketUpgrade {
    handshake: Handshake,
    request: Request,
    on_upgrade: OnUpgrade,
    accept: Accept,
    config: Config,
    on_failed_upgrade: Option<FailedUpgrade>,
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("handshake", &self.handshake)
            .field("request", &self.request)
            .field("accept", &self.accept)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WebSocketUpgrade {
    /// The request as the crate sees it, already validated: path, query,
    /// headers such as `Origin` or `Authorization`.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Whether the WebSocket came over HTTP/2, as an extended CONNECT
    /// (RFC 8441), rather than as an HTTP/1.1 upgrade. Always `false`
    /// without feature `http2`.
    pub fn is_http2(&self) -> bool {
        match self.handshake {
            Handshake::Http1 => false,
            #[cfg(feature = "http2")]
            Handshake::Http2 => true,
        }
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn offered_subprotocols(&self) -> impl Iterator<Item = &str> {
        self.request.subprotocols()
    }

    /// Selects the first of `protocols`, in the server's order of
    /// preference, that the client offered. When it offered none of them, no
    /// subprotocol is selected and the client decides whether to go on
    /// (RFC 6455 §4.2.2, §4.1).
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let chosen = protocols.into_iter().find_map(|p| {
            let p = p.as_ref();
            self.request
                .subprotocols()
                .any(|offered| offered == p)
                .then(|| p.to_owned())
        });
        if let Some(p) = chosen {
            self.accept = self.accept.subprotocol(p);
        }
        self
    }

    /// Selects `protocol`, which must be one the client offered (see
    /// [`offered_subprotocols`](Self::offered_subprotocols)); one it did not
    /// offer is a mistake of the server's, and
    /// [`on_upgrade`](Self::on_upgrade) answers 500.
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.accept = self.accept.subprotocol(protocol);
        self
    }

    /// The subprotocol selected so far, if any.
    pub fn selected_subprotocol(&self) -> Option<&str> {
        self.accept.selected_subprotocol()
    }

    /// Adds a header to the `101` (or, over HTTP/2, `200`) response (e.g.
    /// `Set-Cookie`). Over HTTP/2 a connection-specific header such as
    /// `Connection` is left out, as RFC 9113 §8.2.2 asks.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.accept = self.accept.header(name, value);
        self
    }

    /// The configuration that negotiates the extensions (permessage-deflate
    /// is accepted when [`Config::deflate`](crate::Config) is set and the
    /// client offers it) and runs the connection. Default:
    /// [`Config::default`].
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Calls `callback` with the error if the connection cannot be upgraded
    /// after the `101` (or `200`) was sent (the client went away, say). Without it the
    /// failure is only traced (feature `tracing`).
    pub fn on_failed_upgrade(mut self, callback: impl FnOnce(Error) + Send + 'static) -> Self {
        self.on_failed_upgrade = Some(Box::new(callback));
        self
    }

    /// Negotiates, and returns the response to send: the `101` (over
    /// HTTP/2, the `200` of RFC 8441 §5), after which a task on the current
    /// tokio runtime waits for hyper to hand over the connection (or the
    /// stream) and runs `callback` with the [`WebSocket`] on it.
    ///
    /// If this server's answer is invalid (a subprotocol the client did not
    /// offer, a header that is not valid HTTP) the response is a 500 and
    /// `callback` is never called.
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let negotiated = match self.handshake {
            Handshake::Http1 => Agreed::negotiate(&self.request, self.accept, &self.config)
                .map(|agreed| (agreed.to_http_response(), agreed)),
            // Validated as an extended CONNECT: the same negotiation, the
            // answer without a key (RFC 8441 §5).
            #[cfg(feature = "http2")]
            Handshake::Http2 => crate::h2::agree(&self.request, self.accept, &self.config)
                .map(|agreed| (crate::h2::response(&agreed), agreed)),
        };
        let (response, agreed) = match negotiated {
            Ok(negotiated) => negotiated,
            Err(e) => {
                crate::trace::debug!(error = %e, "websocket upgrade refused: invalid answer");
                return respond_reject(self.handshake, &refusal(&e));
            }
        };
        crate::trace::debug!(
            status = response.status().as_u16(),
            subprotocol = agreed.subprotocol(),
            extensions = ?agreed.extensions(),
            "websocket handshake accepted"
        );
        let response = response.map(|()| Body::empty());
        let (on_upgrade, config, failed) = (self.on_upgrade, self.config, self.on_failed_upgrade);
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = hyper_util::rt::TokioIo::new(upgraded);
                    callback(crate::WebSocket::from_agreed(io, &agreed, config)).await;
                }
                Err(e) => {
                    let error = Error::Io(std::io::Error::other(e));
                    crate::trace::debug!(error = %error, "websocket upgrade failed");
                    if let Some(failed) = failed {
                        failed(error);
                    }
                }
            }
        });
        response
    }
}

/// `reject` as the response for a request that came by `handshake`: over
/// HTTP/2 without the connection-specific headers it forbids (RFC 9113
/// §8.2.2).
fn respond_reject(handshake: Handshake, reject: &Reject) -> Response {
    match handshake {
        Handshake::Http1 => reject.to_http_response().map(Body::from),
        #[cfg(feature = "http2")]
        Handshake::Http2 => crate::h2::reject_response(reject).map(Body::from),
    }
}

impl WebSocketUpgrade {
    fn extract(parts: &mut Parts) -> Result<Self, WebSocketUpgradeRejection> {
        #[cfg(feature = "http2")]
        if parts.version >= Version::HTTP_2 {
            return Self::extract_h2(parts);
        }
        let request = Request::from_http_parts(parts);
        if let Err(e) = request.validate() {
            crate::trace::debug!(status = e.status(), error = %e, "websocket upgrade refused");
            return Err(WebSocketUpgradeRejection::Handshake(e));
        }
        Self::with_upgrade(parts, Handshake::Http1, request)
    }

    /// An HTTP/2 request, checked as the extended CONNECT of RFC 8441 §4–§5
    /// by the crate's h2 validation, the one `wscodec::h2::accept` uses.
    #[cfg(feature = "http2")]
    fn extract_h2(parts: &mut Parts) -> Result<Self, WebSocketUpgradeRejection> {
        // hyper's HTTP/2 server moves h2's `:protocol` into this extension.
        let protocol = parts
            .extensions
            .get::<hyper::ext::Protocol>()
            .map(|p| p.as_str().to_owned());
        // `validate` reads an `http::Request`: lend it the parts (moved, not
        // copied; the placeholder allocates nothing) and take them back.
        let placeholder = http::Request::new(()).into_parts().0;
        let request = http::Request::from_parts(std::mem::replace(parts, placeholder), ());
        // The handler's `Config` is not known yet: the limits are the
        // defaults, as for `wscodec::h2::accept` with `Config::default()`.
        let checked = crate::h2::validate(&request, protocol.as_deref(), &crate::Limits::default());
        *parts = request.into_parts().0;
        match checked {
            Ok(view) => Self::with_upgrade(parts, Handshake::Http2, view),
            Err(e) => {
                crate::trace::debug!(status = e.status(), error = %e, "websocket extended CONNECT refused");
                Err(WebSocketUpgradeRejection::Http2(e))
            }
        }
    }

    fn with_upgrade(
        parts: &mut Parts,
        handshake: Handshake,
        request: Request,
    ) -> Result<Self, WebSocketUpgradeRejection> {
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(WebSocketUpgradeRejection::NotUpgradable)?;
        Ok(WebSocketUpgrade {
            handshake,
            request,
            on_upgrade,
            accept: Accept::new(),
            config: Config::default(),
            on_failed_upgrade: None,
        })
    }

    /// Whether the request asks for a WebSocket at all, for
    /// `Option<WebSocketUpgrade>`.
    fn asks(parts: &Parts) -> bool {
        // Over HTTP/2 any CONNECT: a 2xx to it opens a tunnel (RFC 9113
        // §8.5), so a page handler must never answer one; a CONNECT that is
        // not a valid WebSocket request gets its status (400, 501) instead.
        #[cfg(feature = "http2")]
        if parts.version >= Version::HTTP_2 {
            return parts.method == Method::CONNECT;
        }
        parts
            .headers
            .get_all(http::header::UPGRADE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("websocket"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::extract(parts)
    }
}

/// `Option<WebSocketUpgrade>`, for a route that serves both a page and a
/// WebSocket: `None` for a request that does not ask for a WebSocket (no
/// `Upgrade: websocket`, RFC 6455 §4.2.1 item 3; with feature `http2`, over
/// HTTP/2, any method but `CONNECT`); one that asks but breaks another rule
/// is still refused with its status, as by `WebSocketUpgrade` itself.
impl<S: Send + Sync> OptionalFromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if Self::asks(parts) {
            Self::extract(parts).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Why [`WebSocketUpgrade`] could not be extracted; as a response, the
/// status and headers RFC 6455 §4.4 and RFC 9110 ask for.
#[derive(Debug)]
#[non_exhaustive]
pub enum WebSocketUpgradeRejection {
    /// The request is not a valid WebSocket upgrade (§4.2.1); answered with
    /// [`Reject::from_error`] of it.
    Handshake(HandshakeError),
    /// Over HTTP/2 (feature `http2`): the request is not a valid WebSocket
    /// extended CONNECT (RFC 8441 §4–§5); answered with
    /// [`RequestError::to_reject`](crate::h2::RequestError::to_reject) of it
    /// (400, 405 with `Allow: CONNECT`, 426, 431, 501).
    #[cfg(feature = "http2")]
    Http2(crate::h2::RequestError),
    /// The request carries no hyper `OnUpgrade`: it was not served by
    /// hyper with upgrades (`axum::serve` is). A setup mistake of the
    /// server's, answered with 500.
    NotUpgradable,
}

impl WebSocketUpgradeRejection {
    /// The HTTP status this rejection is answered with.
    pub fn status(&self) -> u16 {
        self.reject().status()
    }

    fn reject(&self) -> Reject {
        match self {
            WebSocketUpgradeRejection::Handshake(e) => Reject::from_error(e),
            #[cfg(feature = "http2")]
            WebSocketUpgradeRejection::Http2(e) => e.to_reject(),
            WebSocketUpgradeRejection::NotUpgradable => Reject::new(500).body(self.to_string()),
        }
    }
}

impl fmt::Display for WebSocketUpgradeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebSocketUpgradeRejection::Handshake(e) => write!(f, "not a WebSocket upgrade: {e}"),
            #[cfg(feature = "http2")]
            WebSocketUpgradeRejection::Http2(e) => {
                write!(f, "not a WebSocket extended CONNECT: {e}")
            }
            WebSocketUpgradeRejection::NotUpgradable => {
                f.write_str("the connection cannot be upgraded (no hyper OnUpgrade)")
            }
        }
    }
}

impl std::error::Error for WebSocketUpgradeRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WebSocketUpgradeRejection::Handshake(e) => Some(e),
            #[cfg(feature = "http2")]
            WebSocketUpgradeRejection::Http2(e) => Some(e),
            WebSocketUpgradeRejection::NotUpgradable => None,
        }
    }
}

impl IntoResponse for WebSocketUpgradeRejection {
    fn into_response(self) -> Response {
        #[cfg(feature = "http2")]
        if let WebSocketUpgradeRejection::Http2(e) = &self {
            return respond_reject(Handshake::Http2, &e.to_reject());
        }
        respond_reject(Handshake::Http1, &self.reject())
    }
}

/// A handler refuses an upgrade by returning a [`Reject`]: its status,
/// headers and body, e.g. `Err(Reject::new(401).header("WWW-Authenticate",
/// "Bearer"))` from a handler returning `Result<Response, Reject>`.
impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        self.to_http_response().map(Body::from)
    }
}
