//! Frame headers (RFC 6455 §5.2): parse from bytes, write into a 14-byte array.
//!
//! This module owns the wire format of a frame header and the rules that can be
//! checked from the header alone, whatever the role. It never does I/O, never
//! allocates, and never reads past the slice it is given.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```

use bytes::Bytes;

use crate::error::ProtocolError;

/// The longest a frame header can be: 2 bytes, an 8-byte length and a 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload a control frame may carry (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame's opcode (§5.2). The reserved values are not representable: parsing one
/// is a [`ProtocolError::ReservedOpCode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: the first frame of a UTF-8 text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: starts or answers the closing handshake.
    Close,
    /// 0x9: asks the peer for a pong.
    Ping,
    /// 0xA: answers a ping, or is an unsolicited heartbeat.
    Pong,
}

impl OpCode {
    /// The opcode for a 4-bit value, or `None` for the reserved values.
    pub fn from_u8(value: u8) -> Option<OpCode> {
        Some(match value {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit value on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Whether this is a control opcode (close, ping, pong), which must be short
    /// and unfragmented (§5.5).
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the final fragment of a message.
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits (RSV1 = `0b100`).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on every frame a client sends (§5.3).
    pub mask: Option<[u8; 4]>,
    /// The payload length, as declared.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds too few bytes to decide, and
    /// `Ok(Some((header, header_len)))` once the whole header is there. Rules that
    /// need only the first two bytes (reserved opcode, control frame length and
    /// fragmentation) are checked as soon as those bytes arrive, so a bad frame
    /// fails without waiting for more input.
    ///
    /// ```
    /// use wscodec::frame::{FrameHeader, OpCode};
    /// let (header, len) = FrameHeader::parse(&[0x81, 0x05, b'h']).unwrap().unwrap();
    /// assert_eq!((header.opcode, header.fin, header.payload_len, len), (OpCode::Text, true, 5, 2));
    /// ```
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x7;
        let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(ProtocolError::ReservedOpCode(b0 & 0x0F))?;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::ControlFrameTooLong);
            }
        }
        // Non-minimal length encodings (say, 5 in the 16-bit form) break a sender's
        // MUST in §5.2, but the RFC gives the receiver no duty to fail on them; we
        // accept them, as every major implementation does.
        let (payload_len, mut offset) = match len7 {
            126 => match buf.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(b) => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(b);
                    let len = u64::from_be_bytes(be);
                    // §5.2: "the most significant bit MUST be 0".
                    if len >> 63 != 0 {
                        return Err(ProtocolError::InvalidPayloadLength);
                    }
                    (len, 10)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            match buf.get(offset..offset + 4) {
                Some(k) => {
                    offset += 4;
                    Some([k[0], k[1], k[2], k[3]])
                }
                None => return Ok(None),
            }
        } else {
            None
        };
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, offset)))
    }

    /// How many bytes [`FrameHeader::write`] produces for this header.
    pub fn encoded_len(&self) -> usize {
        let len = match self.payload_len {
            0..=125 => 2,
            126..=0xFFFF => 4,
            _ => 10,
        };
        len + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header into `out` with the shortest length form, returning how
    /// many bytes of `out` it used.
    ///
    /// ```
    /// use wscodec::frame::{FrameHeader, OpCode};
    /// let header = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Binary, mask: None, payload_len: 300 };
    /// let mut out = [0u8; 14];
    /// let n = header.write(&mut out);
    /// assert_eq!(&out[..n], &[0x82, 126, 0x01, 0x2C]);
    /// ```
    pub fn write(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x7) << 4) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut offset = match self.payload_len {
            // The match arms bound each value, so the narrowing casts are exact.
            len @ 0..=125 => {
                out[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xFFFF => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[offset..offset + 4].copy_from_slice(&key);
            offset += 4;
        }
        offset
    }
}

/// One frame, with its payload unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// FIN: the last frame of a message.
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits; zero unless an extension uses them.
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The (unmasked) payload.
    pub payload: Bytes,
}

impl Frame {
    /// A final frame (FIN set) with no RSV bits.
    pub fn new(opcode: OpCode, payload: impl Into<Bytes>) -> Frame {
        Frame {
            fin: true,
            rsv: 0,
            opcode,
            payload: payload.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(header: FrameHeader) {
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = header.write(&mut out);
        assert_eq!(n, header.encoded_len());
        assert_eq!(FrameHeader::parse(&out[..n]), Ok(Some((header, n))));
        // Every proper prefix needs more bytes.
        for cut in 0..n {
            assert_eq!(FrameHeader::parse(&out[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn roundtrips_all_three_length_forms_masked_and_unmasked() {
        for len in [0, 1, 125, 126, 127, 0xFFFF, 0x1_0000, u64::MAX >> 1] {
            for mask in [None, Some([1, 2, 3, 4])] {
                roundtrip(FrameHeader {
                    fin: len % 2 == 0,
                    rsv: 0,
                    opcode: OpCode::Binary,
                    mask,
                    payload_len: len,
                });
            }
        }
    }

    #[test]
    fn roundtrips_every_opcode_and_rsv_combination() {
        for op in [0u8, 1, 2, 8, 9, 10] {
            for rsv in 0..8 {
                roundtrip(FrameHeader {
                    fin: true,
                    rsv,
                    opcode: OpCode::from_u8(op).unwrap(),
                    mask: None,
                    payload_len: 3,
                });
            }
        }
    }

    #[test]
    fn uses_shortest_length_form() {
        let header = |payload_len| FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Text,
            mask: None,
            payload_len,
        };
        assert_eq!(header(125).encoded_len(), 2);
        assert_eq!(header(126).encoded_len(), 4);
        assert_eq!(header(65535).encoded_len(), 4);
        assert_eq!(header(65536).encoded_len(), 10);
    }

    #[test]
    fn rejects_reserved_opcodes_from_the_first_byte() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op, 0]),
                Err(ProtocolError::ReservedOpCode(op))
            );
        }
    }

    #[test]
    fn rejects_fragmented_control_frames() {
        assert_eq!(
            FrameHeader::parse(&[0x09, 0x00]),
            Err(ProtocolError::FragmentedControlFrame)
        );
    }

    #[test]
    fn rejects_control_frames_longer_than_125_bytes_before_the_extended_length() {
        // 126 announces a 16-bit length: fail without waiting for it.
        assert_eq!(
            FrameHeader::parse(&[0x88, 126]),
            Err(ProtocolError::ControlFrameTooLong)
        );
        assert_eq!(
            FrameHeader::parse(&[0x8A, 127]),
            Err(ProtocolError::ControlFrameTooLong)
        );
        assert!(FrameHeader::parse(&[0x89, 125]).unwrap().is_some());
    }

    #[test]
    fn rejects_64_bit_length_with_top_bit_set() {
        let mut buf = vec![0x82, 127];
        buf.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(
            FrameHeader::parse(&buf),
            Err(ProtocolError::InvalidPayloadLength)
        );
    }

    #[test]
    fn accepts_non_minimal_length_encoding() {
        let (header, len) = FrameHeader::parse(&[0x82, 126, 0, 5]).unwrap().unwrap();
        assert_eq!((header.payload_len, len), (5, 4));
    }

    #[test]
    fn reads_masking_key_and_flags() {
        let (header, len) = FrameHeader::parse(&[0x31, 0x80 | 2, 9, 8, 7, 6, 0xAA])
            .unwrap()
            .unwrap();
        assert_eq!(len, 6);
        assert_eq!(header.mask, Some([9, 8, 7, 6]));
        assert_eq!(header.rsv, 0b011);
        assert!(!header.fin);
        assert_eq!(header.opcode, OpCode::Text);
    }
}
