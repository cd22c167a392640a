use bytes::BytesMut;

use super::*;
use crate::config::Limits;
use crate::error::HandshakeError;

const REQUEST: &str = "GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn parse(req: &str) -> Request {
    let limits = Limits::default();
    let len = HeadScanner::new()
        .scan(req.as_bytes(), 1 << 20)
        .unwrap()
        .unwrap();
    Request::parse(&req.as_bytes()[..len], &limits).unwrap().0
}

fn with_header(name: &str, value: Option<&str>) -> String {
    let mut out = String::new();
    for line in REQUEST.split("\r\n").filter(|l| !l.is_empty()) {
        let is_it = line
            .split_once(':')
            .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name));
        if !is_it {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    if let Some(v) = value {
        out.push_str(&format!("{name}: {v}\r\n"));
    }
    out + "\r\n"
}

#[test]
fn accepts_rfc_example_request() {
    let req = parse(REQUEST);
    assert_eq!(req.validate(), Ok("dGhlIHNhbXBsZSBub25jZQ=="));
    assert_eq!(req.path(), "/chat");
    assert_eq!(req.query(), Some("room=1"));
    assert_eq!(
        req.subprotocols().collect::<Vec<_>>(),
        ["chat", "superchat"]
    );
    let mut out = BytesMut::new();
    Accept::new()
        .subprotocol("chat")
        .write_response(&req, &mut out)
        .unwrap();
    let text = std::str::from_utf8(&out).unwrap();
    assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(text.contains("Sec-WebSocket-Protocol: chat\r\n"));
    assert!(text.ends_with("\r\n\r\n"));
}

#[test]
fn upgrade_and_connection_are_case_insensitive_tokens() {
    let req = with_header("Upgrade", Some("WebSocket"));
    let req = req.replace("keep-alive, Upgrade", "UPGRADE");
    assert!(parse(&req).validate().is_ok());
}

#[test]
fn rejects_each_missing_or_wrong_header_with_its_status() {
    let cases = [
        (with_header("Host", None), 400),
        (with_header("Upgrade", None), 400),
        (with_header("Upgrade", Some("h2c")), 400),
        (with_header("Connection", Some("keep-alive")), 400),
        (with_header("Sec-WebSocket-Key", None), 400),
        (with_header("Sec-WebSocket-Key", Some("c2hvcnQ=")), 400),
        (with_header("Sec-WebSocket-Version", Some("8")), 426),
        (with_header("Sec-WebSocket-Version", None), 426),
        (REQUEST.replace("GET", "POST"), 405),
        (REQUEST.replace("HTTP/1.1", "HTTP/1.0"), 505),
    ];
    for (req, status) in cases {
        let err = parse(&req).validate().unwrap_err();
        assert_eq!(err.status(), Some(status), "{err} for {req}");
    }
}

#[test]
fn version_426_response_names_supported_version() {
    let mut out = BytesMut::new();
    Reject::from_error(&HandshakeError::UnsupportedVersion).write_response(&mut out);
    let text = std::str::from_utf8(&out).unwrap();
    assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
}

#[test]
fn refuses_subprotocol_not_offered() {
    let req = parse(REQUEST);
    let err = Accept::new()
        .subprotocol("other")
        .write_response(&req, &mut BytesMut::new())
        .unwrap_err();
    assert_eq!(err, HandshakeError::SubprotocolNotOffered);
}

#[test]
fn refuses_selecting_a_subprotocol_that_is_not_a_token() {
    // The offer itself is not a list of tokens; echoing an element of it
    // would still be a malformed response (RFC 6455 §4.1).
    let req = parse(&with_header("Sec-WebSocket-Protocol", Some("chat v2, ok")));
    let err = Accept::new()
        .subprotocol("chat v2")
        .write_response(&req, &mut BytesMut::new())
        .unwrap_err();
    assert!(matches!(err, HandshakeError::InvalidAnswer(_)), "{err:?}");
    let mut out = BytesMut::new();
    Accept::new()
        .subprotocol("ok")
        .write_response(&req, &mut out)
        .unwrap();
    assert!(std::str::from_utf8(&out)
        .unwrap()
        .contains("Sec-WebSocket-Protocol: ok\r\n"));
}

#[test]
fn client_refuses_to_offer_a_subprotocol_that_is_not_a_token() {
    for bad in [" chat", "chat,v2", "chat v2", "", "chat\"v2"] {
        let request = ClientRequest::new("ws://example.com/")
            .unwrap()
            .subprotocol(bad);
        assert!(
            request
                .write("dGhlIHNhbXBsZSBub25jZQ==", &mut BytesMut::new())
                .is_err(),
            "{bad:?}"
        );
    }
    let request = ClientRequest::new("ws://example.com/")
        .unwrap()
        .subprotocol("chat.v2");
    request
        .write("dGhlIHNhbXBsZSBub25jZQ==", &mut BytesMut::new())
        .unwrap();
}

#[test]
fn refuses_response_header_injection() {
    let req = parse(REQUEST);
    let err = Accept::new()
        .header("X", "a\r\nSet-Cookie: evil")
        .write_response(&req, &mut BytesMut::new());
    assert!(err.is_err());
}

#[test]
fn scanner_finds_head_end_fed_one_byte_at_a_time() {
    let bytes = REQUEST.as_bytes();
    let mut scanner = HeadScanner::new();
    let mut found = None;
    for i in 1..=bytes.len() {
        if let Some(len) = scanner.scan(&bytes[..i], 1 << 20).unwrap() {
            found = Some((i, len));
            break;
        }
    }
    assert_eq!(found, Some((bytes.len(), bytes.len())));
}

#[test]
fn scanner_accepts_bare_lf_line_endings() {
    let req = "GET / HTTP/1.1\nHost: a\n\nrest";
    assert_eq!(
        HeadScanner::new().scan(req.as_bytes(), 100),
        Ok(Some(req.len() - 4))
    );
}

#[test]
fn scanner_fails_past_the_byte_limit() {
    let mut scanner = HeadScanner::new();
    let junk = vec![b'a'; 101];
    assert_eq!(
        scanner.scan(&junk, 100),
        Err(HandshakeError::HeaderTooLarge)
    );
    assert_eq!(
        HeadScanner::new().scan(REQUEST.as_bytes(), 50),
        Err(HandshakeError::HeaderTooLarge)
    );
}

#[test]
fn too_many_headers_is_431() {
    let mut req = String::from("GET / HTTP/1.1\r\n");
    for i in 0..100 {
        req.push_str(&format!("X-{i}: y\r\n"));
    }
    req.push_str("\r\n");
    let err = Request::parse(req.as_bytes(), &Limits::default()).unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (HandshakeError::TooManyHeaders, Some(431))
    );
}

#[test]
fn client_request_parses_uris() {
    let r = ClientRequest::new("ws://[::1]:9001").unwrap();
    assert_eq!((r.host(), r.path()), ("[::1]:9001", "/"));
    let r = ClientRequest::new("wss://user:pw@example.com?x").unwrap();
    assert_eq!((r.host(), r.path()), ("example.com", "/?x"));
    assert!(ClientRequest::new("example.com/x").is_err());
    assert!(ClientRequest::new("ftp://example.com/").is_err());
    assert!(ClientRequest::new("ws:///path").is_err());
    assert!(ClientRequest::new("ws://host/a b").is_err());
}

#[test]
fn client_request_round_trips_through_server_validation() {
    let request = ClientRequest::new("ws://localhost:1/p?q")
        .unwrap()
        .origin("http://localhost")
        .subprotocol("a")
        .subprotocol("b");
    let key = generate_key();
    let mut out = BytesMut::new();
    request.write(&key, &mut out).unwrap();
    let (req, len) = Request::parse(&out, &Limits::default()).unwrap();
    assert_eq!(len, out.len());
    assert_eq!(req.validate(), Ok(key.as_str()));
    assert_eq!(req.subprotocols().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(req.header("origin"), Some("http://localhost"));

    let mut resp = BytesMut::new();
    Accept::new()
        .subprotocol("b")
        .write_response(&req, &mut resp)
        .unwrap();
    let (response, _) = Response::parse(&resp, &Limits::default()).unwrap();
    assert_eq!(request.validate_response(&response, &key), Ok(()));
    assert_eq!(response.subprotocol(), Some("b"));
    // The same response does not fit another key.
    assert_eq!(
        request.validate_response(&response, &generate_key()),
        Err(HandshakeError::InvalidAccept)
    );
}

#[test]
fn client_fails_on_subprotocol_it_did_not_offer() {
    let request = ClientRequest::new("ws://h/").unwrap();
    let key = generate_key();
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    let (response, _) = Response::parse(resp.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(
        request.validate_response(&response, &key),
        Err(HandshakeError::UnexpectedNegotiation(
            "Sec-WebSocket-Protocol"
        ))
    );
}

#[test]
fn client_fails_on_non_101_status() {
    let request = ClientRequest::new("ws://h/").unwrap();
    let (response, _) =
        Response::parse(b"HTTP/1.1 403 Forbidden\r\n\r\n", &Limits::default()).unwrap();
    let err = request.validate_response(&response, "k").unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert!(
        matches!(err, HandshakeError::UnexpectedStatus(r) if r.status() == 403 && r.body().is_empty())
    );
}

#[test]
fn client_request_splits_host_and_port_for_tls_and_tcp() {
    let r = ClientRequest::new("wss://[::1]:9443/x").unwrap();
    assert_eq!(
        (r.server_name(), r.port(), r.host()),
        ("::1", 9443, "[::1]:9443")
    );
    let r = ClientRequest::new("ws://example.com").unwrap();
    assert_eq!((r.server_name(), r.port()), ("example.com", 80));
    let r = ClientRequest::new("wss://example.com:/").unwrap();
    assert_eq!(
        r.port(),
        443,
        "an empty port is the default (RFC 3986 §3.2.3)"
    );
    assert_eq!(r.uri(), "wss://example.com:/");
    for bad in [
        "ws://example.com:http/",
        "ws://h:65536/",
        "ws://::1/",
        "ws://:80/",
    ] {
        assert!(ClientRequest::new(bad).is_err(), "{bad}");
    }
}

#[test]
fn client_request_writes_a_custom_host_once() {
    let mut out = BytesMut::new();
    ClientRequest::new("ws://10.0.0.1:8080/")
        .unwrap()
        .header("HOST", "chat.example")
        .write("k", &mut out)
        .unwrap();
    let text = std::str::from_utf8(&out).unwrap();
    assert_eq!(
        text.matches("Host: ").count() + text.matches("HOST: ").count(),
        1,
        "{text}"
    );
    assert!(text.contains("\r\nHost: chat.example\r\n"), "{text}");
}
