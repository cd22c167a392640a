//! HTTP/1.1 heads, the part both roles share: finding where a head ends in a
//! growing buffer ([`HeadScanner`]), the headers as received ([`Headers`]), and
//! the RFC 9110 rules for what may be written (tokens, field values).
//!
//! A head is scanned once: each byte is looked at once, and only a complete
//! head is handed to `httparse`, so a head dribbled one byte at a time costs
//! linear time (tungstenite's CVE-2023-43669 was quadratic re-parsing).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::HandshakeError;

/// Finds the end of an HTTP head in a growing buffer, looking at each byte once.
#[derive(Debug, Default, Clone)]
pub struct HeadScanner {
    scanned: usize,
}

impl HeadScanner {
    /// A scanner at the start of a head.
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks at the bytes of `buf` not seen before. Returns the length of the head
    /// (through its blank line) once `buf` holds all of it; fails with
    /// [`HandshakeError::HeaderTooLarge`] once it exceeds `max_bytes`.
    pub fn scan(&mut self, buf: &[u8], max_bytes: usize) -> Result<Option<usize>, HandshakeError> {
        // A blank line is "\n\n" or "\n\r\n" (httparse takes bare LF too). Back
        // up two bytes so a terminator split across calls is still found.
        let from = self.scanned.saturating_sub(2);
        let end = buf[from..]
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| from + i)
            .find(|&i| {
                i >= 1
                    && (buf[i - 1] == b'\n'
                        || (i >= 2 && buf[i - 1] == b'\r' && buf[i - 2] == b'\n'))
            })
            .map(|i| i + 1);
        self.scanned = buf.len();
        match end {
            Some(end) if end <= max_bytes => Ok(Some(end)),
            Some(_) => Err(HandshakeError::HeaderTooLarge),
            None if buf.len() > max_bytes => Err(HandshakeError::HeaderTooLarge),
            None => Ok(None),
        }
    }
}

/// Header names and values, as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub(crate) Vec<(String, Bytes)>);

impl Headers {
    pub(crate) fn from_httparse(headers: &[httparse::Header<'_>]) -> Self {
        Headers(
            headers
                .iter()
                .map(|h| (h.name.to_owned(), Bytes::copy_from_slice(h.value)))
                .collect(),
        )
    }

    /// The first value of header `name` (case-insensitive), if it is UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Every value of header `name` (case-insensitive) that is UTF-8, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Whether any value of header `name` is a comma-separated list containing
    /// `token` (both case-insensitive), as `Connection: keep-alive, Upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Every header as (name, raw value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(n, v)| (n.as_str(), &v[..]))
    }

    /// How many header lines there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An RFC 9110 §5.6.2 token: header names and subprotocol names (§4.1 of RFC
/// 6455 requires each `Sec-WebSocket-Protocol` element to be one).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub(crate) fn valid_header(name: &str, value: &str) -> bool {
    is_token(name)
        // RFC 9110 §5.5: field values are visible characters, spaces, tabs and
        // obs-text; any other control character makes a head peers refuse.
        && value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}

pub(crate) fn put_header(dst: &mut BytesMut, name: &str, value: &str) {
    dst.put_slice(name.as_bytes());
    dst.put_slice(b": ");
    dst.put_slice(value.as_bytes());
    dst.put_slice(b"\r\n");
}
