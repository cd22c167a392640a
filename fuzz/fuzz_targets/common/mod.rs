//! Helpers shared by the fuzz targets: an independent frame writer (so the
//! targets do not trust the crate's own encoder to build their inputs) and
//! arbitrary chunking.
#![allow(dead_code)]

use wscodec::{CapacityError, Error, Message, ProtocolError};

/// One frame on the wire, written by hand from RFC 6455 §5.2 with the shortest
/// length form. `opcode` is the raw 4-bit value so reserved ones can be sent.
pub fn write_frame(
    out: &mut Vec<u8>,
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) {
    out.push((u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0xF));
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len() as u64;
    if len <= 125 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xFFFF {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
}

/// Splits `data` into pieces whose sizes cycle through `sizes` (each size
/// byte `b` means `b + 1` bytes; 255 means "everything left"). No sizes: one piece.
pub fn chunks<'a>(data: &'a [u8], sizes: &'a [u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = match sizes.get(i % sizes.len().max(1)) {
            None | Some(255) => rest.len(),
            Some(&b) => (usize::from(b) + 1).min(rest.len()),
        };
        let (piece, tail) = rest.split_at(n);
        out.push(piece);
        rest = tail;
        i += 1;
    }
    out
}

/// What the reference models predict a decoder fails with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Protocol(ProtocolError),
    Capacity(CapacityError),
}

/// Whether `error` is the predicted one.
pub fn same_error(error: &Error, expected: &Expected) -> bool {
    match (error, expected) {
        (Error::Protocol(a), Expected::Protocol(b)) => a == b,
        (Error::Capacity(a), Expected::Capacity(b)) => a == b,
        _ => false,
    }
}

/// §7.4: the codes a close frame may carry on the wire.
pub fn sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Reads a decoded text message through `Utf8Bytes::as_str`, the crate's one
/// `unsafe` block, so that AddressSanitizer watches it, and checks that the
/// bytes it trusts are UTF-8 indeed.
pub fn read_text(message: &Message) {
    let text = match message {
        Message::Text(t) => t,
        Message::Close(Some(c)) => &c.reason,
        _ => return,
    };
    let s = text.as_str();
    assert_eq!(std::str::from_utf8(text.as_bytes()), Ok(s));
    assert_eq!(s.chars().map(char::len_utf8).sum::<usize>(), s.len());
}
