//! Extensions (RFC 6455 §9): the one place that knows which are negotiated.
//!
//! It owns offers and answers of `Sec-WebSocket-Extensions`, the agreed
//! parameters ([`Extensions`]), and turning them into the codec's settings
//! (which RSV bits are claimed, which per-message transform runs). The
//! handshake asks it what to offer or answer; the codec asks it what to do
//! per message. permessage-deflate (RFC 7692, `deflate.rs`) is the one
//! extension today; a second one is one more file and one more field here.

use bytes::Bytes;

use crate::config::{Config, Role};
#[cfg(feature = "deflate")]
use crate::deflate::Deflate;
use crate::error::{Error, HandshakeError};

/// The extensions a handshake agreed on, with their parameters.
///
/// Built by the handshake ([`Agreed`](crate::handshake::Agreed) on a
/// server, `connect` on a client) and handed to the connection with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Extensions {
    /// permessage-deflate, if agreed.
    #[cfg(feature = "deflate")]
    pub deflate: Option<crate::deflate::DeflateParams>,
}

impl Extensions {
    /// No extension: what a handshake without `Sec-WebSocket-Extensions`
    /// agrees on.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether any extension was agreed.
    pub fn is_empty(&self) -> bool {
        *self == Self::none()
    }

    /// Server: answers the client's offers (the values of every
    /// `Sec-WebSocket-Extensions` request header) with what `config` enables.
    /// Returns what was agreed and the response header value, if any. Offers
    /// we do not take are declined by leaving them out (§9.1).
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    pub(crate) fn answer<'a>(
        config: &Config,
        offers: impl IntoIterator<Item = &'a str>,
    ) -> (Self, Option<String>) {
        #[cfg(feature = "deflate")]
        if let Some(ours) = &config.deflate {
            if let Some((params, response)) = ours.negotiate_server(offers) {
                return (
                    Extensions {
                        deflate: Some(params),
                    },
                    Some(response),
                );
            }
        }
        (Extensions::none(), None)
    }

    /// Client: the `Sec-WebSocket-Extensions` value to offer, if any.
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    pub(crate) fn offer(config: &Config) -> Option<String> {
        #[cfg(feature = "deflate")]
        if let Some(ours) = &config.deflate {
            return Some(ours.offer());
        }
        None
    }

    /// Client: checks the server's answer (every `Sec-WebSocket-Extensions`
    /// response header, not only the first) against what we offered. §9.1:
    /// an extension we did not offer fails the connection.
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    pub(crate) fn accept_answer<'a>(
        config: &Config,
        answers: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, HandshakeError> {
        let answer: Vec<&str> = answers
            .into_iter()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        if answer.is_empty() {
            return Ok(Extensions::none());
        }
        #[cfg(feature = "deflate")]
        if let Some(ours) = &config.deflate {
            // Several headers are one list (RFC 9110 §5.3); deflate's check
            // refuses anything but one permessage-deflate in it.
            let params = ours.negotiate_client(&answer.join(", "))?;
            return Ok(Extensions {
                deflate: Some(params),
            });
        }
        Err(HandshakeError::UnexpectedNegotiation(
            "Sec-WebSocket-Extensions",
        ))
    }

    /// The per-message transform what was agreed runs, for `role`; `None`
    /// when no agreed extension transforms messages.
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    pub(crate) fn transform(&self, role: Role) -> Option<Transform> {
        #[cfg(feature = "deflate")]
        if let Some(params) = &self.deflate {
            let is_server = role == Role::Server;
            return Some(Transform::Deflate(Deflate::new(params, is_server)));
        }
        None
    }
}

/// What the codec runs on each data message of a connection that agreed on a
/// transforming extension: one arm per extension. With no extension compiled
/// in it has no values, so every path that would use it is statically dead.
#[derive(Debug)]
pub(crate) enum Transform {
    /// permessage-deflate (RFC 7692).
    #[cfg(feature = "deflate")]
    Deflate(Deflate),
}

impl Transform {
    /// The RSV bits (§5.2) the extension claims: RSV1 for deflate.
    pub(crate) fn rsv(&self) -> u8 {
        match *self {
            #[cfg(feature = "deflate")]
            Transform::Deflate(_) => 0b100,
        }
    }

    /// Whether a payload of `len` bytes is worth transforming.
    pub(crate) fn wants(&self, len: usize) -> bool {
        match self {
            #[cfg(feature = "deflate")]
            Transform::Deflate(d) => d.wants(len),
            #[cfg(not(feature = "deflate"))]
            _ => {
                let _ = len;
                match *self {}
            }
        }
    }

    /// The transformed payload of an outgoing message.
    pub(crate) fn encode(&mut self, payload: &[u8]) -> Result<Bytes, Error> {
        match self {
            #[cfg(feature = "deflate")]
            Transform::Deflate(d) => d.compress(payload),
            #[cfg(not(feature = "deflate"))]
            _ => {
                let _ = payload;
                match *self {}
            }
        }
    }

    /// The frame to send for a prepared data message instead of encoding it
    /// for this connection: compressed once for every connection with our
    /// level and window ([`PreparedMessage`]'s docs). `None`: the message
    /// is too short to compress, and goes out as prepared.
    pub(crate) fn shared_frame(
        &mut self,
        prepared: &crate::codec::PreparedMessage,
    ) -> Result<Option<Bytes>, Error> {
        match self {
            #[cfg(feature = "deflate")]
            Transform::Deflate(d) => {
                if !d.wants(prepared.message().len()) {
                    return Ok(None);
                }
                let frame = prepared.deflated(d.compress_key())?;
                d.forget_history();
                Ok(Some(frame))
            }
            #[cfg(not(feature = "deflate"))]
            _ => {
                let _ = prepared;
                match *self {}
            }
        }
    }

    /// Undoes the transform on one frame of an incoming message, appending to
    /// `out`, which may grow to `limit` bytes and no further.
    pub(crate) fn decode(
        &mut self,
        frame: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), Error> {
        match self {
            #[cfg(feature = "deflate")]
            Transform::Deflate(d) => d.decompress(frame, fin, out, limit),
            #[cfg(not(feature = "deflate"))]
            _ => {
                let _ = (frame, fin, out, limit);
                match *self {}
            }
        }
    }
}

/// Splits a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1) into extensions
/// and their parameters: `a; x=1, b` → `[("a", [("x", Some("1"))]), ("b", [])]`.
// Every extension's negotiation parses with it; with none compiled in, none does.
#[cfg_attr(not(feature = "deflate"), allow(dead_code))]
pub(crate) fn split_extensions(
    value: &str,
) -> impl Iterator<Item = (&str, Vec<(&str, Option<&str>)>)> {
    value
        .split(',')
        .filter(|e| !e.trim().is_empty())
        .map(|extension| {
            let mut parts = extension.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let params = parts
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                    None => (p, None),
                })
                .collect();
            (name, params)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_offered_nothing_refuses_any_extension_answer() {
        let config = Config::default();
        assert_eq!(
            Extensions::accept_answer(&config, []).unwrap(),
            Extensions::none()
        );
        assert!(Extensions::accept_answer(&config, ["permessage-deflate"]).is_err());
    }

    /// Regression (issue 13): only the first `Sec-WebSocket-Extensions`
    /// response header was checked; §9.1 fails the connection on any
    /// extension that was not offered, in any header.
    #[cfg(feature = "deflate")]
    #[test]
    fn a_client_refuses_an_extension_it_did_not_offer_in_any_response_header() {
        let config = Config::default().deflate(Some(crate::deflate::DeflateConfig::default()));
        assert!(Extensions::accept_answer(&config, ["permessage-deflate"])
            .unwrap()
            .deflate
            .is_some());
        for answers in [
            &["permessage-deflate", "x-webkit-other"][..],
            &["permessage-deflate", "permessage-deflate"],
            &["", "x-other"],
        ] {
            assert!(
                Extensions::accept_answer(&config, answers.iter().copied()).is_err(),
                "{answers:?}"
            );
        }
    }
}
