//! axum integration (feature `axum`): [`WebSocketUpgrade`], an extractor that
//! validates the upgrade request, negotiates the subprotocol and the
//! extensions, answers `101` and hands the handler a [`WebSocket`] on the
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
//! use axum::routing::get;
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
//! let app = Router::new().route("/ws", get(ws));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! HTTP/1.1 only: a WebSocket over HTTP/2 (RFC 8441's extended `CONNECT`)
//! is refused with 405, as [`accept`](crate::accept) refuses any method but
//! `GET`.

use std::fmt;
use std::future::Future;

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use hyper::upgrade::OnUpgrade;

use crate::accept::refusal;
use crate::config::Config;
use crate::error::{Error, HandshakeError};
use crate::handshake::{Accept, Agreed, Reject, Request};

/// The upgraded connection under an axum [`WebSocket`]: hyper's
/// `Upgraded` (which keeps any bytes hyper read past the request head) as a
/// tokio `AsyncRead + AsyncWrite`.
pub type UpgradedIo = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

/// The crate's [`WebSocket`](crate::WebSocket) on a connection that axum
/// upgraded: what [`WebSocketUpgrade::on_upgrade`] hands its callback.
pub type WebSocket = crate::WebSocket<UpgradedIo>;

/// Called with the error when the connection fails to upgrade after the
/// `101` was sent.
type FailedUpgrade = Box<dyn FnOnce(Error) + Send>;

/// The extractor for a WebSocket upgrade request, as easy as axum's own:
/// take it as a handler argument, choose a subprotocol and a [`Config`],
/// and return [`on_upgrade`](WebSocketUpgrade::on_upgrade)'s response.
///
/// Extracting it validates the request (RFC 6455 §4.2.1); a request that is
/// not a valid upgrade never reaches the handler and is answered with a
/// [`WebSocketUpgradeRejection`]: the status the crate's
/// [`Reject::from_error`] gives (400, 405 with `Allow: GET`, 426 with
/// `Sec-WebSocket-Version: 13`, 505).
///
/// To refuse a valid upgrade (no token, wrong origin, too many
/// connections), return any response instead of calling `on_upgrade`: a
/// [`Reject`], which is an [`IntoResponse`], or your own. Nothing is
/// upgraded then.
///
/// Take `Option<WebSocketUpgrade>` to serve something else on the same
/// route to requests that do not ask for a WebSocket.
pub struct WebSocketUpgrade {
    request: Request,
    on_upgrade: OnUpgrade,
    accept: Accept,
    config: Config,
    on_failed_upgrade: Option<FailedUpgrade>,
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
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

    /// Adds a header to the `101` response (e.g. `Set-Cookie`).
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
    /// after the `101` was sent (the client went away, say). Without it the
    /// failure is only traced (feature `tracing`).
    pub fn on_failed_upgrade(mut self, callback: impl FnOnce(Error) + Send + 'static) -> Self {
        self.on_failed_upgrade = Some(Box::new(callback));
        self
    }

    /// Negotiates, and returns the response to send: the `101`, after which
    /// a task on the current tokio runtime waits for hyper to hand over the
    /// connection and runs `callback` with the [`WebSocket`] on it.
    ///
    /// If this server's answer is invalid (a subprotocol the client did not
    /// offer, a header that is not valid HTTP) the response is a 500 and
    /// `callback` is never called.
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let agreed = match Agreed::negotiate(&self.request, self.accept, &self.config) {
            Ok(agreed) => agreed,
            Err(e) => {
                crate::trace::debug!(error = %e, "websocket upgrade refused: invalid answer");
                return refusal(&e).into_response();
            }
        };
        crate::trace::debug!(
            status = 101,
            subprotocol = agreed.subprotocol(),
            extensions = ?agreed.extensions(),
            "websocket handshake accepted"
        );
        let response = agreed.to_http_response().map(|()| Body::empty());
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

impl WebSocketUpgrade {
    fn extract(parts: &mut Parts) -> Result<Self, WebSocketUpgradeRejection> {
        let request = Request::from_http_parts(parts);
        if let Err(e) = request.validate() {
            crate::trace::debug!(status = e.status(), error = %e, "websocket upgrade refused");
            return Err(WebSocketUpgradeRejection::Handshake(e));
        }
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(WebSocketUpgradeRejection::NotUpgradable)?;
        Ok(WebSocketUpgrade {
            request,
            on_upgrade,
            accept: Accept::new(),
            config: Config::default(),
            on_failed_upgrade: None,
        })
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
/// `Upgrade: websocket`, RFC 6455 §4.2.1 item 3); one that asks but breaks
/// another rule of §4.2.1 is still refused with its status, as by
/// `WebSocketUpgrade` itself.
impl<S: Send + Sync> OptionalFromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let asks = parts
            .headers
            .get_all(http::header::UPGRADE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("websocket"));
        if asks {
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
    /// The request carries no hyper `OnUpgrade`: it was not served by
    /// hyper's HTTP/1.1 server with upgrades (`axum::serve` is). A setup
    /// mistake of the server's, answered with 500.
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
            WebSocketUpgradeRejection::NotUpgradable => Reject::new(500).body(self.to_string()),
        }
    }
}

impl fmt::Display for WebSocketUpgradeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebSocketUpgradeRejection::Handshake(e) => write!(f, "not a WebSocket upgrade: {e}"),
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
            WebSocketUpgradeRejection::NotUpgradable => None,
        }
    }
}

impl IntoResponse for WebSocketUpgradeRejection {
    fn into_response(self) -> Response {
        self.reject().into_response()
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
