//! One frame on the wire, written by hand from RFC 6455 §5.2 rather than with
//! the crate's encoder, so that tests built on it check that encoder and
//! decoder instead of trusting them. The crate's unit tests
//! (`src/codec/tests.rs`) include this same file, so there is one such helper.

/// A frame: FIN, the RSV bits (low three bits), a raw 4-bit opcode (reserved
/// ones too), and the payload, masked with `mask` when one is given.
pub(crate) fn wire_frame(
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 0x7) << 4) | (opcode & 0xF)];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}
