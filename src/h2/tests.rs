//! The extended CONNECT's validation and answers, sans-IO: each failure's
//! status (RFC 8441 §4–§5, RFC 9220 §3), and the 200's headers.

use ::http::Request as HttpRequest;

use super::*;
use crate::config::{Config, Limits};
use crate::handshake::{Accept, Reject};

fn valid() -> ::http::request::Builder {
    HttpRequest::connect("https://example.com/chat?room=1")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-protocol", "a, b")
        .header("origin", "https://example.com")
}

fn status_of(request: &HttpRequest<()>, protocol: Option<&str>) -> u16 {
    validate(request, protocol, &Limits::default())
        .unwrap_err()
        .status()
}

#[test]
fn a_valid_extended_connect_gives_the_request_view() {
    let request = valid().body(()).unwrap();
    let view = validate(&request, Some(PROTOCOL), &Limits::default()).unwrap();
    assert_eq!(view.path(), "/chat");
    assert_eq!(view.query(), Some("room=1"));
    assert_eq!(view.header("origin"), Some("https://example.com"));
    assert_eq!(view.subprotocols().collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn each_bad_extended_connect_gets_its_status() {
    let request = valid().body(()).unwrap();
    assert_eq!(status_of(&request, None), 400, "CONNECT without :protocol");
    assert_eq!(status_of(&request, Some("webtransport")), 501);
    assert_eq!(
        status_of(&request, Some("WebSocket")),
        501,
        "compared as sent"
    );
    let get = HttpRequest::get("https://example.com/chat")
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    assert_eq!(status_of(&get, Some(PROTOCOL)), 405);
    let no_authority = HttpRequest::connect("/chat")
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    assert_eq!(
        validate(&no_authority, Some(PROTOCOL), &Limits::default()),
        Err(RequestError::MissingPseudoHeader(":authority"))
    );
    let bad_scheme = HttpRequest::connect("ftp://example.com/chat")
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    assert_eq!(
        validate(&bad_scheme, Some(PROTOCOL), &Limits::default()),
        Err(RequestError::MissingPseudoHeader(":scheme"))
    );
    // An authority-form target: :path is missing.
    let no_path = HttpRequest::connect("example.com:443")
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    assert_eq!(status_of(&no_path, Some(PROTOCOL)), 400);
    for (name, value, status) in [
        ("sec-websocket-version", "8", 426),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==", 400),
        ("upgrade", "websocket", 400),
        ("connection", "Upgrade", 400),
        ("te", "gzip", 400),
    ] {
        let mut request = valid().body(()).unwrap();
        request
            .headers_mut()
            .insert(name, ::http::HeaderValue::from_static(value));
        assert_eq!(status_of(&request, Some(PROTOCOL)), status, "{name}");
    }
    let mut no_version = valid().body(()).unwrap();
    no_version.headers_mut().remove("sec-websocket-version");
    assert_eq!(status_of(&no_version, Some(PROTOCOL)), 426);
}

#[test]
fn header_limits_give_431() {
    let request = valid().body(()).unwrap();
    let few = Limits::default().max_headers(2);
    assert_eq!(
        validate(&request, Some(PROTOCOL), &few),
        Err(RequestError::TooManyHeaders)
    );
    let small = Limits::default().max_header_bytes(64);
    assert_eq!(
        validate(&request, Some(PROTOCOL), &small)
            .unwrap_err()
            .status(),
        431
    );
}

#[test]
fn rejections_carry_what_their_status_asks_for_and_no_connection_headers() {
    let reject = RequestError::UnsupportedVersion.to_reject();
    let response = reject_response(&reject);
    assert_eq!(response.status(), 426);
    assert_eq!(response.headers()["sec-websocket-version"], "13");
    let response = reject_response(&RequestError::NotConnect.to_reject());
    assert_eq!(response.headers()["allow"], "CONNECT");
    let custom = Reject::new(403)
        .header("Connection", "close")
        .header("X-Why", "origin");
    let response = reject_response(&custom);
    assert!(!response.headers().contains_key("connection"));
    assert_eq!(response.headers()["x-why"], "origin");
}

#[test]
fn the_200_has_the_negotiated_headers_and_nothing_of_http1() {
    let request = valid().body(()).unwrap();
    let accept = Accept::new()
        .subprotocol("b")
        .header("Set-Cookie", "id=1")
        .header("Connection", "keep-alive");
    let agreed = negotiate(&request, Some(PROTOCOL), accept, &Config::default()).unwrap();
    let response = response(&agreed);
    assert_eq!(response.status(), 200);
    let h = response.headers();
    assert_eq!(h["sec-websocket-protocol"], "b");
    assert_eq!(h["set-cookie"], "id=1");
    for absent in ["sec-websocket-accept", "upgrade", "connection"] {
        assert!(!h.contains_key(absent), "{absent}");
    }
}

#[test]
fn a_subprotocol_not_offered_is_our_mistake_answered_with_500() {
    let request = valid().body(()).unwrap();
    let err = negotiate(
        &request,
        Some(PROTOCOL),
        Accept::new().subprotocol("c"),
        &Config::default(),
    )
    .unwrap_err();
    assert_eq!(err.status(), Some(500));
}

#[cfg(feature = "deflate")]
#[test]
fn permessage_deflate_is_negotiated_as_over_http1() {
    let request = valid()
        .header(
            "sec-websocket-extensions",
            "permessage-deflate; client_max_window_bits",
        )
        .body(())
        .unwrap();
    let config = Config::default().deflate(Some(crate::deflate::DeflateConfig::default()));
    let agreed = negotiate(&request, Some(PROTOCOL), Accept::new(), &config).unwrap();
    assert!(agreed.extensions().deflate.is_some());
    let response = response(&agreed);
    assert!(response.headers()["sec-websocket-extensions"]
        .to_str()
        .unwrap()
        .starts_with("permessage-deflate"));
}
