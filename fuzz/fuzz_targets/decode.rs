//! `FrameCodec` in both roles over arbitrary bytes fed in arbitrary chunks.
//!
//! Checks, against a byte-level reference parser written from RFC 6455 §5.2:
//! the same frames and the same error whatever the chunking; no frame over
//! `max_frame_size`; a decoder that returns `None` is holding less than one
//! header plus `max_frame_size`, and has either left the buffer as it was or
//! taken all of it (a frame of 64 KiB or more, unmasked as it arrives); and
//! what it reserves for a declared length is bounded by `max_frame_reserve`
//! (nothing at all with 0).
#![no_main]

mod common;

use bytes::BytesMut;
use common::{chunks, same_error, Expected};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use wscodec::frame::{OpCode, MAX_HEADER_LEN};
use wscodec::{CapacityError, FrameCodec, Limits, ProtocolError, Role};

/// The input: byte 0 flags (bit 0: server role; bit 1: a small frame limit,
/// else the default 16 MiB; bit 2: `max_frame_reserve` 0, else the default
/// 1 MiB), bytes 1-2 the small limit (LE), bytes 3-6 chunk
/// sizes (see `common::chunks`), then the bytes on the wire, raw, so that seeds
/// are plain frames.
struct Input<'a> {
    server: bool,
    max_frame_size: Option<u16>,
    no_reserve: bool,
    chunk_sizes: [u8; 4],
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Option<Self> {
        let (head, bytes) = data.split_at_checked(7)?;
        Some(Input {
            server: head[0] & 1 != 0,
            max_frame_size: (head[0] & 2 != 0).then(|| u16::from_le_bytes([head[1], head[2]])),
            no_reserve: head[0] & 4 != 0,
            chunk_sizes: [head[3], head[4], head[5], head[6]],
            bytes,
        })
    }
}

/// (fin, rsv, opcode, unmasked payload)
type RefFrame = (bool, u8, OpCode, Vec<u8>);

/// Parses all of `bytes` the way §5.2 and the role rules say, in the crate's
/// documented check order: first-two-byte rules, then the 64-bit length's top
/// bit, then RSV, masking and size once the whole header is there.
fn reference(bytes: &[u8], role: Role, max: usize) -> (Vec<RefFrame>, Result<usize, Expected>) {
    let mut frames = Vec::new();
    let mut pos = 0;
    loop {
        let b = &bytes[pos..];
        if b.len() < 2 {
            return (frames, Ok(pos));
        }
        let fin = b[0] & 0x80 != 0;
        let rsv = (b[0] >> 4) & 7;
        let raw_op = b[0] & 0xF;
        let Some(op) = OpCode::from_u8(raw_op) else {
            return (
                frames,
                Err(Expected::Protocol(ProtocolError::ReservedOpCode(raw_op))),
            );
        };
        let masked = b[1] & 0x80 != 0;
        let len7 = b[1] & 0x7F;
        if raw_op >= 8 {
            if !fin {
                return (
                    frames,
                    Err(Expected::Protocol(ProtocolError::FragmentedControlFrame)),
                );
            }
            if len7 > 125 {
                return (
                    frames,
                    Err(Expected::Protocol(ProtocolError::ControlFrameTooLong)),
                );
            }
        }
        let (len, mut head) = match len7 {
            126 if b.len() < 4 => return (frames, Ok(pos)),
            126 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() < 10 => return (frames, Ok(pos)),
            127 => {
                let len = u64::from_be_bytes(b[2..10].try_into().unwrap());
                if len >= 1 << 63 {
                    return (
                        frames,
                        Err(Expected::Protocol(ProtocolError::InvalidPayloadLength)),
                    );
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        let mut key = None;
        if masked {
            if b.len() < head + 4 {
                return (frames, Ok(pos));
            }
            key = Some([b[head], b[head + 1], b[head + 2], b[head + 3]]);
            head += 4;
        }
        if rsv != 0 {
            return (
                frames,
                Err(Expected::Protocol(ProtocolError::ReservedBitsSet)),
            );
        }
        match (role, masked) {
            (Role::Server, false) => {
                return (
                    frames,
                    Err(Expected::Protocol(ProtocolError::UnmaskedFrameFromClient)),
                )
            }
            (Role::Client, true) => {
                return (
                    frames,
                    Err(Expected::Protocol(ProtocolError::MaskedFrameFromServer)),
                )
            }
            _ => {}
        }
        if len > max as u64 {
            let e = CapacityError::FrameTooLarge {
                size: len,
                limit: max,
            };
            return (frames, Err(Expected::Capacity(e)));
        }
        let len = len as usize;
        if b.len() < head + len {
            return (frames, Ok(pos));
        }
        let mut payload = b[head..head + len].to_vec();
        if let Some(k) = key {
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= k[i % 4];
            }
        }
        frames.push((fin, rsv, op, payload));
        pos += head + len;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let role = if input.server {
        Role::Server
    } else {
        Role::Client
    };
    let mut limits = match input.max_frame_size {
        Some(max) => Limits::default().max_frame_size(usize::from(max)),
        None => Limits::default(),
    };
    if input.no_reserve {
        limits = limits.max_frame_reserve(0);
    }
    let reserve = limits.max_frame_reserve;
    let max = limits.max_frame_size;
    let (expected_frames, expected_end) = reference(input.bytes, role, max);

    let mut codec = FrameCodec::with_limits(role, &limits);
    let mut src = BytesMut::new();
    let mut got = Vec::new();
    let mut error = None;
    'feed: for piece in chunks(input.bytes, &input.chunk_sizes) {
        src.extend_from_slice(piece);
        loop {
            let (len_before, cap_before) = (src.len(), src.capacity());
            match codec.decode(&mut src) {
                Ok(Some(frame)) => {
                    assert!(frame.payload.len() <= max, "frame over the limit");
                    assert!(src.capacity() <= cap_before, "decode grew the buffer");
                    if frame.opcode.is_control() {
                        assert!(frame.fin && frame.payload.len() <= 125);
                    }
                    got.push((frame.fin, frame.rsv, frame.opcode, frame.payload.to_vec()));
                }
                Ok(None) => {
                    assert!(
                        src.len() == len_before || src.is_empty(),
                        "None consumed part of the buffer"
                    );
                    if src.capacity() > cap_before {
                        // Room for the frame's rest, at most `reserve` of it;
                        // the allocator may round up to twice what it held,
                        // and a shared buffer to the size it started with.
                        assert!(reserve > 0, "decode reserved memory with no reserve");
                        let bound =
                            2 * (len_before + reserve.min(MAX_HEADER_LEN + max)) + (128 << 10);
                        assert!(src.capacity() <= bound, "reserved {} bytes", src.capacity());
                    }
                    // A whole frame would have been returned: what is left is
                    // less than one header plus the largest allowed payload.
                    assert!(src.len() < MAX_HEADER_LEN + max, "held {} bytes", src.len());
                    break;
                }
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(got, expected_frames, "frames differ from the reference");
    match (error, expected_end) {
        (None, Ok(consumed)) => {
            let left = input.bytes.len() - consumed;
            // What is left is in `src`, or, for a frame of 64 KiB or more,
            // taken into the codec; either way it is not a clean end.
            assert!(
                src.len() == left || src.is_empty(),
                "{} left, {left} expected",
                src.len()
            );
            assert_eq!(codec.decode_eof(&mut src).is_err(), left > 0, "decode_eof");
        }
        (Some(e), Err(expected)) => assert!(same_error(&e, &expected), "{e:?} != {expected:?}"),
        (e, expected) => panic!("codec ended with {e:?}, reference with {expected:?}"),
    }
});
