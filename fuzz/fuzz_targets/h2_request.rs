//! The HTTP/2 extended CONNECT validation (`wscodec::h2::validate`,
//! `negotiate`, `response`, `reject_response`) on arbitrary pseudo-headers
//! and headers, as an HTTP/2 server would hand them over.
//!
//! Checks: nothing panics; a refusal's status is the one its error names, in
//! 400-599, and its response carries no connection-specific header; a
//! request that validates is a CONNECT with `:protocol = websocket`, and its
//! 200 never carries `Sec-WebSocket-Accept`, `Upgrade` or `Connection`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wscodec::handshake::Accept;
use wscodec::{Config, Limits};

#[derive(Arbitrary, Debug)]
struct Input {
    method: String,
    protocol: Option<String>,
    scheme: Option<String>,
    authority: Option<String>,
    path: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    max_headers: u8,
    max_header_bytes: u16,
    pick: Option<String>,
    deflate: bool,
}

fuzz_target!(|input: Input| {
    let Ok(method) = http::Method::from_bytes(input.method.as_bytes()) else {
        return;
    };
    // The URI as h2 builds it from the pseudo-headers: the scheme only
    // with an authority, each part only if `http` accepts it.
    let mut parts = http::uri::Parts::default();
    parts.authority = input.authority.as_deref().and_then(|a| a.parse().ok());
    if parts.authority.is_some() {
        parts.scheme = input.scheme.as_deref().and_then(|s| s.parse().ok());
    }
    parts.path_and_query = input.path.as_deref().and_then(|p| p.parse().ok());
    let uri = http::Uri::from_parts(parts).unwrap_or_default();
    let mut request = http::Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = http::Version::HTTP_2;
    for (name, value) in &input.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) {
            request.headers_mut().append(n, v);
        }
    }
    let limits = Limits::default()
        .max_headers(usize::from(input.max_headers))
        .max_header_bytes(usize::from(input.max_header_bytes));
    let protocol = input.protocol.as_deref();
    let view = match wscodec::h2::validate(&request, protocol, &limits) {
        Ok(view) => view,
        Err(e) => {
            let reject = e.to_reject();
            assert_eq!(reject.status(), e.status());
            assert!((400..=599).contains(&e.status()));
            let response = wscodec::h2::reject_response(&reject);
            assert_eq!(response.status().as_u16(), e.status());
            for name in ["connection", "upgrade", "transfer-encoding"] {
                assert!(!response.headers().contains_key(name));
            }
            return;
        }
    };
    assert_eq!(request.method(), http::Method::CONNECT);
    assert_eq!(protocol, Some(wscodec::h2::PROTOCOL));
    let _ = view.subprotocols().count();

    let mut config = Config::default().limits(limits);
    if input.deflate {
        config = config.deflate(Some(wscodec::deflate::DeflateConfig::default()));
    }
    let mut accept = Accept::new();
    if let Some(p) = &input.pick {
        accept = accept.subprotocol(p.clone());
    }
    match wscodec::h2::negotiate(&request, protocol, accept, &config) {
        Ok(agreed) => {
            let response = wscodec::h2::response(&agreed);
            assert_eq!(response.status(), 200);
            for name in ["sec-websocket-accept", "upgrade", "connection"] {
                assert!(!response.headers().contains_key(name));
            }
            assert_eq!(
                response
                    .headers()
                    .get("sec-websocket-protocol")
                    .map(|v| v.as_bytes()),
                agreed.subprotocol().map(str::as_bytes)
            );
        }
        // Only our own answer can fail once the request validated.
        Err(e) => assert_eq!(e.status(), Some(500), "{e}"),
    }
});
