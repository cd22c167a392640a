//! The server's sans-IO handshake: `HeadScanner` over arbitrary chunks,
//! `Request::parse`, `Request::validate`, `Accept::write_response`, `Reject`,
//! and the `http` conversions; plus the client's `ClientRequest::write`, whose
//! output the server side must accept.
//!
//! Checks: the scanner agrees with a one-shot scan and with a byte-level
//! reference whatever the chunking; a head httparse completes ends where the
//! scanner said; a request that validates gets a response that the client side
//! parses and accepts; every rejection is a parseable response with the error's
//! status; a request the client writes parses and validates with its key.
#![no_main]

mod common;

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use common::chunks;
use libfuzzer_sys::fuzz_target;
use wscodec::handshake::{Accept, HeadScanner, Reject, Request, Response};
use wscodec::{ClientRequest, HandshakeError, Limits};

#[derive(Arbitrary, Debug, Default)]
struct AcceptDesc {
    /// Pick the n-th offered subprotocol, or name one of our own.
    pick: Option<u8>,
    own: Option<String>,
    headers: Vec<(String, String)>,
}

#[derive(Arbitrary, Debug)]
struct ClientDesc {
    uri: String,
    origin: Option<String>,
    subprotocols: Vec<String>,
    headers: Vec<(String, String)>,
    key: [u8; 16],
}

/// Byte 0-1 `max_header_bytes` (LE), byte 2 `max_headers`, bytes 3-6 chunk
/// sizes, bytes 7-8 the head's length n (LE), then n bytes of head, raw (so
/// seeds are plain HTTP), then the rest is `Rest`, decoded by `arbitrary`
/// (all-defaults when absent).
struct Input<'a> {
    max_header_bytes: u16,
    max_headers: u8,
    chunk_sizes: [u8; 4],
    head: &'a [u8],
    rest: Rest,
}

#[derive(Arbitrary, Debug, Default)]
struct Rest {
    accept: AcceptDesc,
    reject: (u16, Vec<(String, String)>, Vec<u8>),
    client: Option<ClientDesc>,
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Option<Self> {
        let (fixed, data) = data.split_at_checked(9)?;
        let n = usize::from(u16::from_le_bytes([fixed[7], fixed[8]])).min(data.len());
        let (head, rest) = data.split_at(n);
        Some(Input {
            max_header_bytes: u16::from_le_bytes([fixed[0], fixed[1]]),
            max_headers: fixed[2],
            chunk_sizes: [fixed[3], fixed[4], fixed[5], fixed[6]],
            head,
            rest: Rest::arbitrary(&mut Unstructured::new(rest)).unwrap_or_default(),
        })
    }
}

/// The end of the first blank line ("\n\n" or "\n\r\n"), written from scratch.
fn blank_line_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| {
        let lf = buf[i] == b'\n';
        let bare = i >= 1 && buf[i - 1] == b'\n';
        let crlf = i >= 2 && buf[i - 1] == b'\r' && buf[i - 2] == b'\n';
        (lf && (bare || crlf)).then_some(i + 1)
    })
}

/// Standard base64 with padding, for a 16-byte key.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// RFC 7230 token characters, which header names and subprotocols consist of.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A response head parses and has `status`.
fn parses_with_status(bytes: &[u8], status: u16) -> Response {
    let limits = Limits::default()
        .max_header_bytes(1 << 20)
        .max_headers(1024);
    let end = HeadScanner::new()
        .scan(bytes, 1 << 20)
        .unwrap()
        .expect("a whole head");
    let (response, len) = Response::parse(&bytes[..end], &limits)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(bytes)));
    assert_eq!(len, end);
    assert_eq!(response.status(), status);
    response
}

/// A request the client writes is one the server parses and validates with
/// the same key, with the same target, host and offers.
fn check_client(desc: &ClientDesc) {
    let Ok(mut client) = ClientRequest::new(&desc.uri) else {
        return;
    };
    if let Some(origin) = &desc.origin {
        client = client.origin(origin.clone());
    }
    for p in &desc.subprotocols {
        client = client.subprotocol(p.clone());
    }
    for (n, v) in &desc.headers {
        client = client.header(n.clone(), v.clone());
    }
    let key = base64(&desc.key);
    let mut out = BytesMut::new();
    if client.write(&key, &mut out).is_err() {
        assert!(out.is_empty(), "a refused request wrote bytes");
        return;
    }
    let limits = Limits::default()
        .max_header_bytes(1 << 20)
        .max_headers(1024);
    let end = HeadScanner::new()
        .scan(&out, 1 << 20)
        .unwrap()
        .expect("a whole head");
    assert_eq!(end, out.len());
    let (request, len) = Request::parse(&out, &limits)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&out)));
    assert_eq!(len, out.len());
    assert_eq!(request.uri(), client.path());
    assert_eq!(request.header("host"), Some(client.host()));
    // Extra headers may repeat the WebSocket ones (a second key, say); only a
    // request without such repeats must validate.
    let repeats = desc.headers.iter().any(|(n, _)| {
        let n = n.to_ascii_lowercase();
        n.starts_with("sec-websocket") || ["host", "upgrade", "connection"].contains(&n.as_str())
    });
    if !repeats {
        assert_eq!(request.validate(), Ok(key.as_str()));
    }
    // RFC 6455 §4.1: subprotocols are tokens; those come through unchanged.
    if desc.subprotocols.iter().all(|p| is_token(p)) && !repeats {
        let offered: Vec<&str> = request.subprotocols().collect();
        assert_eq!(offered, desc.subprotocols);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    if let Some(desc) = &input.rest.client {
        check_client(desc);
    }
    let limits = Limits::default()
        .max_header_bytes(usize::from(input.max_header_bytes))
        .max_headers(usize::from(input.max_headers));
    let head = input.head;

    // The scanner, fed a growing buffer.
    let mut scanner = HeadScanner::new();
    let mut buf = Vec::new();
    let mut scanned = Ok(None);
    for piece in chunks(head, &input.chunk_sizes) {
        buf.extend_from_slice(piece);
        scanned = scanner.scan(&buf, limits.max_header_bytes);
        if !matches!(scanned, Ok(None)) {
            break;
        }
    }
    assert_eq!(
        scanned,
        HeadScanner::new().scan(head, limits.max_header_bytes)
    );
    let expected = match blank_line_end(head) {
        Some(end) if end <= limits.max_header_bytes => Ok(Some(end)),
        Some(_) => Err(HandshakeError::HeaderTooLarge),
        None if head.len() > limits.max_header_bytes => Err(HandshakeError::HeaderTooLarge),
        None => Ok(None),
    };
    assert_eq!(scanned, expected);

    // What the server answers for this head, as `accept_with` decides it.
    let outcome = match scanned {
        Ok(Some(end)) => match Request::parse(&head[..end], &limits) {
            Ok((request, len)) => {
                assert_eq!(
                    len, end,
                    "httparse and the scanner disagree on the head's end"
                );
                Ok(request)
            }
            Err(e) => Err(e),
        },
        Ok(None) => return,
        Err(e) => Err(e),
    };
    let request = match outcome {
        Ok(request) => request,
        Err(e) => {
            let mut out = BytesMut::new();
            Reject::from_error(&e).write_response(&mut out);
            parses_with_status(&out, e.status().expect("a request error has a status"));
            return;
        }
    };
    // The http conversions never panic.
    let _ = Request::from_http(&request.to_http());

    let key = match request.validate() {
        Ok(key) => key.to_owned(),
        Err(e) => {
            let mut out = BytesMut::new();
            Reject::from_error(&e).write_response(&mut out);
            parses_with_status(&out, e.status().expect("a request error has a status"));
            return;
        }
    };
    let offered: Vec<String> = request.subprotocols().map(str::to_owned).collect();
    let mut accept = Accept::new();
    let chosen = match (&input.rest.accept.own, input.rest.accept.pick) {
        (Some(own), _) => Some(own.clone()),
        (None, Some(n)) if !offered.is_empty() => {
            Some(offered[usize::from(n) % offered.len()].clone())
        }
        _ => None,
    };
    if let Some(p) = &chosen {
        accept = accept.subprotocol(p.clone());
    }
    for (n, v) in &input.rest.accept.headers {
        accept = accept.header(n.clone(), v.clone());
    }
    let _ = accept.to_http_response(&request);
    let mut out = BytesMut::new();
    match accept.write_response(&request, &mut out) {
        Ok(()) => {
            // The client that offered these subprotocols accepts the answer,
            // unless our extra headers speak for the WebSocket layer themselves.
            let response = parses_with_status(&out, 101);
            let mut client = ClientRequest::new("ws://localhost/").unwrap();
            for p in &offered {
                client = client.subprotocol(p.clone());
            }
            let ours = input
                .rest
                .accept
                .headers
                .iter()
                .any(|(n, _)| n.to_ascii_lowercase().starts_with("sec-websocket"));
            if !ours {
                assert_eq!(client.validate_response(&response, &key), Ok(()));
                assert_eq!(response.subprotocol(), chosen.as_deref());
            }
        }
        Err(HandshakeError::SubprotocolNotOffered) => {
            assert!(!offered.iter().any(|o| Some(o) == chosen.as_ref()));
            assert!(out.is_empty());
        }
        Err(e) => {
            // Our own bad answer (not a peer's malformed HTTP): answered with 500.
            assert!(matches!(e, HandshakeError::InvalidAnswer(_)), "{e}");
            assert!(out.is_empty());
        }
    }

    // Any rejection the callback may build is a well-formed response.
    let (status, headers, body) = &input.rest.reject;
    let mut reject = Reject::new(*status).body(body.clone());
    for (n, v) in headers {
        reject = reject.header(n.clone(), v.clone());
    }
    let mut out = BytesMut::new();
    reject.write_response(&mut out);
    let response = parses_with_status(&out, reject.status());
    // An error or a redirect (Reject::new sends anything else as 500).
    assert!((300..=599).contains(&response.status()));
    let head_len = HeadScanner::new().scan(&out, 1 << 20).unwrap().unwrap();
    assert_eq!(&out[head_len..], &body[..]);
    let _ = reject.to_http_response();
});
