//! The client's sans-IO handshake: `HeadScanner` and `Response::parse` over an
//! arbitrary server answer, then `ClientRequest::validate_response`.
//!
//! Checks: nothing panics; a response is accepted only if a reference reading
//! of §4.1 accepts it (101, Upgrade and Connection tokens, the right
//! `Sec-WebSocket-Accept`, a subprotocol we offered or none, no extension).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use wscodec::handshake::{derive_accept_key, HeadScanner, Response};
use wscodec::{ClientRequest, HandshakeError, Limits};

/// The key of RFC 6455 §1.3, so seeds can carry its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Byte 0 `max_headers`, bytes 1-2 where the response is cut into two reads
/// (LE), bytes 3-4 the response's length n (LE), n bytes of response, raw (so
/// seeds are plain HTTP), then the subprotocols we offered, by `arbitrary`.
struct Input<'a> {
    max_headers: u8,
    cut: u16,
    response: &'a [u8],
    offered: Vec<String>,
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Option<Self> {
        let (fixed, data) = data.split_at_checked(5)?;
        let n = usize::from(u16::from_le_bytes([fixed[3], fixed[4]])).min(data.len());
        let (response, rest) = data.split_at(n);
        Some(Input {
            max_headers: fixed[0],
            cut: u16::from_le_bytes([fixed[1], fixed[2]]),
            response,
            offered: Vec::arbitrary(&mut Unstructured::new(rest)).unwrap_or_default(),
        })
    }
}

fn has_token(response: &Response, name: &str, token: &str) -> bool {
    response
        .headers()
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn first(response: &Response, name: &str) -> Option<String> {
    let (_, v) = response
        .headers()
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))?;
    Some(std::str::from_utf8(v).ok()?.trim().to_owned())
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let limits = Limits::default().max_headers(usize::from(input.max_headers));
    let bytes = input.response;
    let cut = usize::from(input.cut).min(bytes.len());
    let mut scanner = HeadScanner::new();
    let end = match scanner.scan(&bytes[..cut], limits.max_header_bytes) {
        Ok(None) => scanner.scan(bytes, limits.max_header_bytes),
        other => other,
    };
    assert_eq!(end, HeadScanner::new().scan(bytes, limits.max_header_bytes));
    let Ok(Some(end)) = end else { return };
    let response = match Response::parse(&bytes[..end], &limits) {
        Ok((response, len)) => {
            assert_eq!(
                len, end,
                "httparse and the scanner disagree on the head's end"
            );
            response
        }
        Err(e) => {
            assert!(matches!(
                e,
                HandshakeError::Malformed(_) | HandshakeError::TooManyHeaders
            ));
            return;
        }
    };
    let mut client = ClientRequest::new("ws://localhost/").unwrap();
    for p in &input.offered {
        client = client.subprotocol(p.clone());
    }
    let verdict = client.validate_response(&response, KEY);
    let accept = derive_accept_key(KEY.as_bytes());
    let protocol_ok = match response.subprotocol() {
        None => true,
        Some(p) => input.offered.iter().any(|o| o == p),
    };
    let reference = response.status() == 101
        && has_token(&response, "upgrade", "websocket")
        && has_token(&response, "connection", "upgrade")
        && first(&response, "sec-websocket-accept").as_deref() == Some(accept.as_str())
        && protocol_ok
        && first(&response, "sec-websocket-extensions").is_none();
    assert_eq!(verdict.is_ok(), reference, "{verdict:?} for {response:?}");
    if let Err(HandshakeError::UnexpectedStatus(r)) = verdict {
        assert_ne!(r.status(), 101);
    }
});
