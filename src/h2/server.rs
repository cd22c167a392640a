//! The server's side over h2: answer an extended CONNECT that
//! `h2::server::Connection::accept` handed over, and start the WebSocket on
//! its stream. Every decision is `validate.rs`'s.

use ::h2::server::SendResponse;
use ::h2::RecvStream;
use bytes::{Bytes, BytesMut};

use super::stream::H2Stream;
use super::validate::{agree, reject_response, response, validate};
use super::H2Error;
use crate::config::{Config, Role};
use crate::error::HandshakeError;
use crate::handshake::{Accept, Reject, Request};
use crate::websocket::WebSocket;

/// Accepts a WebSocket on an HTTP/2 stream, taking any subprotocol offer as
/// declined: [`accept_with`] with a callback that accepts everything.
pub fn accept(
    request: ::http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    config: Config,
) -> Result<WebSocket<H2Stream>, H2Error> {
    accept_with(request, respond, config, |_: &Request| Ok(Accept::new()))
}

/// Accepts a WebSocket on the HTTP/2 stream of `request`, as
/// `h2::server::Connection::accept` yields it with `respond` (the connection
/// built with `enable_connect_protocol`, RFC 8441 §3).
///
/// The request is validated first ([`validate`](super::validate)); an invalid
/// one is answered with its status (400, 426, 501, ...) and fails with
/// [`H2Error::Request`]. `callback` then sees the valid request (path,
/// query, headers such as `Origin`, offered subprotocols) and accepts it,
/// possibly choosing a subprotocol and adding headers, or refuses it with any
/// status ([`H2Error::Handshake`] of [`HandshakeError::Rejected`]).
/// Extensions (permessage-deflate) are negotiated as `config` enables, by
/// the same code as over HTTP/1.1; the answer is `200` (RFC 8441 §5).
///
/// Nothing here waits: h2 sends the response when its connection task runs.
///
/// ```no_run
/// use wscodec::handshake::{Accept, Reject, Request};
/// # fn run(request: http::Request<h2::RecvStream>, respond: h2::server::SendResponse<bytes::Bytes>) -> Result<(), wscodec::h2::H2Error> {
/// let ws = wscodec::h2::accept_with(request, respond, wscodec::Config::default(), |req: &Request| {
///     if req.path() != "/chat" {
///         return Err(Reject::new(404));
///     }
///     match req.subprotocols().find(|p| *p == "chat.v2") {
///         Some(p) => Ok(Accept::new().subprotocol(p)),
///         None => Ok(Accept::new()),
///     }
/// })?;
/// # Ok(()) }
/// ```
pub fn accept_with<F>(
    request: ::http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    config: Config,
    callback: F,
) -> Result<WebSocket<H2Stream>, H2Error>
where
    F: FnOnce(&Request) -> Result<Accept, Reject>,
{
    let protocol = request
        .extensions()
        .get::<::h2::ext::Protocol>()
        .map(|p| p.as_str());
    let view = match validate(&request, protocol, &config.limits) {
        Ok(view) => view,
        Err(e) => {
            refuse(&mut respond, &e.to_reject());
            return Err(e.into());
        }
    };
    let agreed = match callback(&view) {
        Ok(accept) => agree(&view, accept, &config),
        Err(reject) => {
            refuse(&mut respond, &reject);
            return Err(HandshakeError::Rejected(reject.status()).into());
        }
    };
    let agreed = match agreed {
        Ok(agreed) => agreed,
        Err(e) => {
            // Our own answer was bad (a subprotocol not offered, say): the
            // client still deserves a response.
            refuse(&mut respond, &Reject::new(e.status().unwrap_or(500)));
            return Err(e.into());
        }
    };
    let send = respond.send_response(response(&agreed), false)?;
    let recv = request.into_body();
    Ok(WebSocket::with_extensions(
        H2Stream::new(send, recv),
        Role::Server,
        config,
        BytesMut::new(),
        agreed.extensions(),
    ))
}

/// Answers with `reject` and its body, best effort: the peer may have reset
/// the stream already.
fn refuse(respond: &mut SendResponse<Bytes>, reject: &Reject) {
    let (parts, body) = reject_response(reject).into_parts();
    let head = ::http::Response::from_parts(parts, ());
    let Ok(mut send) = respond.send_response(head, body.is_empty()) else {
        return;
    };
    if !body.is_empty() {
        let _ = send.send_data(body, true);
    }
}
