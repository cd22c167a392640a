//! Extensions (RFC 6455 §9): the one place that knows which are negotiated.
//!
//! It owns offers and answers of `Sec-WebSocket-Extensions`, the agreed
//! parameters ([`Extensions`]), and turning them into the codec's settings
//! (which RSV bits are claimed, which per-message transform runs). The
//! handshake asks it what to offer or answer; the codec asks it what to do
//! per message. permessage-deflate (RFC 7692, `deflate.rs`) is the one
//! extension today; a second one is one more file and one more field here.

use crate::codec::MessageCodec;
use crate::config::Config;
use crate::error::HandshakeError;

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

    /// Sets up `codec` for what was agreed: the RSV bits each extension
    /// claims and its per-message transform.
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    pub(crate) fn apply(&self, codec: &mut MessageCodec) {
        #[cfg(feature = "deflate")]
        if let Some(params) = &self.deflate {
            codec.set_deflate(params);
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
