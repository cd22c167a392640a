//! Conversions to and from the [`http`] crate's types (feature `http`).
//!
//! For users of hyper, axum and reqwest-style code: describe a client request as
//! an `http::Request<()>`, see the server's view of a request as one, and — when a
//! hyper server performs the upgrade itself — validate its request and build the
//! `101 Switching Protocols` response with [`upgrade_response`]. The httparse path
//! stays the engine; these only translate.

use ::http::header::{HeaderName, HeaderValue};
use ::http::{Method, StatusCode, Version};

use super::{Accept, Agreed, ClientRequest, Reject, Request};
use crate::config::Config;
use crate::error::HandshakeError;

impl Request {
    /// Builds the server's view of an `http` request (for instance the one a hyper
    /// service receives), so it can be validated and answered like one read from a
    /// socket.
    pub fn from_http<B>(request: &::http::Request<B>) -> Request {
        Self::from_http_head(
            request.method(),
            request.uri(),
            request.version(),
            request.headers(),
        )
    }

    /// [`Request::from_http`] for a request already split into its parts, as
    /// an axum extractor sees it.
    pub fn from_http_parts(parts: &::http::request::Parts) -> Request {
        Self::from_http_head(&parts.method, &parts.uri, parts.version, &parts.headers)
    }

    fn from_http_head(
        method: &Method,
        uri: &::http::Uri,
        version: Version,
        headers: &::http::HeaderMap,
    ) -> Request {
        let target = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
        let http_minor = match version {
            Version::HTTP_09 | Version::HTTP_10 => 0,
            _ => 1,
        };
        let headers = headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    bytes::Bytes::copy_from_slice(value.as_bytes()),
                )
            })
            .collect();
        Request::from_raw_parts(method.as_str().to_owned(), target, http_minor, headers)
    }

    /// The request as an `http::Request<()>`: method, target, HTTP/1.1 and every
    /// header that `http` accepts.
    pub fn to_http(&self) -> ::http::Request<()> {
        let mut request = ::http::Request::new(());
        *request.method_mut() = Method::from_bytes(self.method().as_bytes()).unwrap_or(Method::GET);
        *request.version_mut() = Version::HTTP_11;
        // A target httparse accepts but `http`'s URI parser does not is left
        // as the root; method and headers are kept either way.
        if let Ok(uri) = self.uri().parse() {
            *request.uri_mut() = uri;
        }
        for (name, value) in self.headers().iter() {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                request.headers_mut().append(n, v);
            }
        }
        request
    }
}

impl Accept {
    /// The `101 Switching Protocols` response for `request`, with no
    /// extension, as an `http::Response<()>` for a server (hyper, axum) that
    /// performs the upgrade itself. Fails, like [`Accept::write_response`], if
    /// the request breaks §4.2.1 or the subprotocol was not offered. To
    /// negotiate extensions too, use [`Agreed::negotiate`] and
    /// [`Agreed::to_http_response`].
    pub fn to_http_response(
        &self,
        request: &Request,
    ) -> Result<::http::Response<()>, HandshakeError> {
        let agreed = Agreed::negotiate(request, self.clone(), &Config::default())?;
        Ok(agreed.to_http_response())
    }
}

impl Agreed {
    /// The `101 Switching Protocols` response as an `http::Response<()>`:
    /// the same headers [`Agreed::write_response`] writes, which
    /// negotiation has already checked.
    pub fn to_http_response(&self) -> ::http::Response<()> {
        let mut response = ::http::Response::new(());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        for (name, value) in self.response_headers() {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(n, v);
            }
        }
        response
    }
}

impl Reject {
    /// The refusal as an `http::Response`, for a server that answers through
    /// its own HTTP stack. With [`Reject::from_error`] it carries what §4.4
    /// asks for, e.g. `Sec-WebSocket-Version: 13` on a 426.
    ///
    /// ```
    /// use wscodec::handshake::Reject;
    /// let response = Reject::from_error(&wscodec::HandshakeError::UnsupportedVersion).to_http_response();
    /// assert_eq!(response.status(), 426);
    /// assert_eq!(response.headers()["sec-websocket-version"], "13");
    /// ```
    pub fn to_http_response(&self) -> ::http::Response<bytes::Bytes> {
        let mut response = ::http::Response::new(self.body_bytes().clone());
        *response.status_mut() =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(
            ::http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        for (name, value) in self.extra_headers() {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(n, v);
            }
        }
        response
    }
}

/// Validates a WebSocket upgrade request received by an `http` server and
/// builds the `101` response that accepts it, with no subprotocol. On error,
/// [`HandshakeError::status`] is the status to answer with.
///
/// ```
/// let request = http::Request::get("/ws")
///     .header("host", "localhost")
///     .header("upgrade", "websocket")
///     .header("connection", "Upgrade")
///     .header("sec-websocket-version", "13")
///     .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
///     .body(())
///     .unwrap();
/// let response = wscodec::http_types::upgrade_response(&request).unwrap();
/// assert_eq!(response.status(), 101);
/// assert_eq!(response.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn upgrade_response<B>(
    request: &::http::Request<B>,
) -> Result<::http::Response<()>, HandshakeError> {
    Accept::new().to_http_response(&Request::from_http(request))
}

impl TryFrom<::http::Request<()>> for ClientRequest {
    type Error = HandshakeError;

    /// Takes the URI (absolute, `ws://` or `wss://`), `Origin`,
    /// `Sec-WebSocket-Protocol` and every other header except those the handshake
    /// writes itself (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-Key`,
    /// `Sec-WebSocket-Version`).
    ///
    /// ```
    /// let request = http::Request::get("ws://localhost:9001/chat")
    ///     .header("origin", "http://localhost")
    ///     .header("sec-websocket-protocol", "v2, v1")
    ///     .header("authorization", "Bearer t")
    ///     .body(())
    ///     .unwrap();
    /// let client = wscodec::ClientRequest::try_from(request)?;
    /// assert_eq!(client.path(), "/chat");
    /// # Ok::<(), wscodec::HandshakeError>(())
    /// ```
    fn try_from(request: ::http::Request<()>) -> Result<Self, HandshakeError> {
        let mut client = ClientRequest::new(&request.uri().to_string())?;
        for (name, value) in request.headers() {
            let Ok(value) = value.to_str() else {
                return Err(HandshakeError::Malformed(format!(
                    "header {name} is not text"
                )));
            };
            match name.as_str() {
                "host"
                | "upgrade"
                | "connection"
                | "sec-websocket-key"
                | "sec-websocket-version" => {}
                "origin" => client = client.origin(value),
                "sec-websocket-protocol" => {
                    for p in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        client = client.subprotocol(p);
                    }
                }
                _ => client = client.header(name.as_str(), value),
            }
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_request() -> ::http::Request<()> {
        ::http::Request::get("/chat?room=2")
            .header("host", "localhost")
            .header("upgrade", "websocket")
            .header("connection", "keep-alive, Upgrade")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-protocol", "a, b")
            .body(())
            .unwrap()
    }

    #[test]
    fn http_request_round_trips_through_server_view() {
        let view = Request::from_http(&upgrade_request());
        assert_eq!(view.path(), "/chat");
        assert_eq!(view.query(), Some("room=2"));
        assert!(view.validate().is_ok());
        let back = view.to_http();
        assert_eq!(back.uri(), "/chat?room=2");
        assert_eq!(back.headers()["sec-websocket-protocol"], "a, b");
    }

    #[test]
    fn builds_101_with_subprotocol() {
        let view = Request::from_http(&upgrade_request());
        let response = Accept::new()
            .subprotocol("b")
            .to_http_response(&view)
            .unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(response.headers()["sec-websocket-protocol"], "b");
        assert_eq!(
            response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn invalid_upgrade_request_reports_its_status() {
        let mut request = upgrade_request();
        request
            .headers_mut()
            .insert("sec-websocket-version", HeaderValue::from_static("7"));
        assert_eq!(upgrade_response(&request).unwrap_err().status(), Some(426));
        *request.method_mut() = Method::POST;
        assert_eq!(upgrade_response(&request).unwrap_err().status(), Some(405));
    }

    #[test]
    fn client_request_from_http_keeps_extra_headers() {
        let request = ::http::Request::get("wss://example.com/x")
            .header("host", "ignored")
            .header("x-token", "t")
            .body(())
            .unwrap();
        let client = ClientRequest::try_from(request).unwrap();
        assert_eq!(client.host(), "example.com");
        assert!(client.is_secure());
        let mut out = bytes::BytesMut::new();
        client.write("k", &mut out).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains("x-token: t\r\n"));
        assert!(!text.contains("ignored"));
    }

    /// (lower-case name, value) pairs, sorted: how two serializations of one
    /// response are compared.
    fn normalized<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<(String, String)> {
        let mut out: Vec<_> = headers
            .map(|(n, v)| {
                (
                    n.to_ascii_lowercase(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn from_bytes(bytes: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let (response, len) =
            super::super::Response::parse(bytes, &crate::Limits::default()).unwrap();
        let headers = normalized(response.headers().iter());
        (response.status(), headers, bytes[len..].to_vec())
    }

    fn from_http<B: AsRef<[u8]>>(
        response: &::http::Response<B>,
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let headers = normalized(
            response
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes())),
        );
        (
            response.status().as_u16(),
            headers,
            response.body().as_ref().to_vec(),
        )
    }

    #[test]
    fn http1_bytes_and_http_response_agree_on_every_negotiation() {
        let offers = [
            None,
            Some("permessage-deflate; client_max_window_bits"),
            Some("x-unknown, permessage-deflate"),
        ];
        let accepts = [
            Accept::new(),
            Accept::new().subprotocol("b"),
            Accept::new()
                .subprotocol("a")
                .header("Set-Cookie", "id=1")
                .header("X-Server", "test"),
        ];
        let mut configs = vec![Config::default()];
        #[cfg(feature = "deflate")]
        configs.push(Config::default().deflate(Some(crate::deflate::DeflateConfig::default())));
        let mut compared = 0;
        for offer in offers {
            let mut request = upgrade_request();
            if let Some(offer) = offer {
                request
                    .headers_mut()
                    .insert("sec-websocket-extensions", offer.parse().unwrap());
            }
            let view = Request::from_http(&request);
            for accept in &accepts {
                for config in &configs {
                    let agreed = Agreed::negotiate(&view, accept.clone(), config).unwrap();
                    let mut bytes = bytes::BytesMut::new();
                    agreed.write_response(&mut bytes);
                    assert_eq!(
                        from_bytes(&bytes),
                        from_http(&agreed.to_http_response().map(|()| Vec::new())),
                        "{offer:?} {accept:?}"
                    );
                    compared += 1;
                    #[cfg(feature = "deflate")]
                    if config.deflate.is_some() && offer.is_some() {
                        assert!(
                            agreed.extensions().deflate.is_some(),
                            "the http path negotiates deflate too"
                        );
                        assert!(agreed
                            .to_http_response()
                            .headers()
                            .contains_key("sec-websocket-extensions"));
                    }
                }
            }
        }
        assert!(compared >= 9);
    }

    #[test]
    fn http1_bytes_and_http_response_agree_on_every_rejection() {
        let errors = [
            HandshakeError::UnsupportedVersion,
            HandshakeError::MethodNotAllowed,
            HandshakeError::HeaderTooLarge,
            HandshakeError::SubprotocolNotOffered,
        ];
        let rejects = errors
            .iter()
            .map(Reject::from_error)
            .chain([Reject::new(401)
                .header("WWW-Authenticate", "Bearer")
                .body("{\"error\":\"token\"}")]);
        for reject in rejects {
            let mut bytes = bytes::BytesMut::new();
            reject.write_response(&mut bytes);
            let (status, mut headers, body) = from_bytes(&bytes);
            // Framing headers only HTTP/1.1 needs; hyper writes its own.
            headers.retain(|(n, _)| n != "connection" && n != "content-length");
            assert_eq!(
                (status, headers, body),
                from_http(&reject.to_http_response()),
                "{reject:?}"
            );
        }
    }

    #[test]
    fn a_bad_answer_of_ours_reports_the_500_it_is_answered_with() {
        let view = Request::from_http(&upgrade_request());
        let err = Agreed::negotiate(
            &view,
            Accept::new().subprotocol("not a token"),
            &Config::default(),
        )
        .unwrap_err();
        assert_eq!(err.status(), Some(500));
        let err = Agreed::negotiate(
            &view,
            Accept::new().header("X", "a\r\nb"),
            &Config::default(),
        )
        .unwrap_err();
        assert_eq!(err.status(), Some(500));
    }
}
