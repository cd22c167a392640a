//! `MessageCodec` over arbitrary frame sequences: fragments, control frames
//! between fragments, invalid UTF-8 split anywhere, protocol violations and
//! limits. The sequence is built from an `arbitrary` description, written to the
//! wire by hand, fed to the codec in arbitrary chunks, and the messages and the
//! error are checked against a reference model built on `std::str::from_utf8`.
#![no_main]

mod common;

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use common::{chunks, read_text, same_error, sendable, write_frame, Expected};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use wscodec::frame::MAX_HEADER_LEN;
use wscodec::{
    CapacityError, CloseCode, CloseFrame, Limits, Message, MessageCodec, ProtocolError, Role,
    Utf8Bytes,
};

#[derive(Arbitrary, Debug)]
enum Control {
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A close payload: code and reason bytes, or raw bytes (1-byte, bad code…).
    Close(Option<(u16, String)>),
    CloseRaw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Item {
    /// A data message, text (from a string, optionally corrupted) or binary,
    /// cut into fragments with control frames between them.
    Data {
        text: bool,
        content: String,
        /// Overwrite the byte at this position (mod length) with this value.
        corrupt: Option<(u16, u8)>,
        /// Fragment sizes; an empty list sends one frame.
        fragments: Vec<u8>,
        /// Controls to send between fragments, one after each but the last.
        between: Vec<Control>,
        /// Leave the message unfinished (no FIN on the last fragment).
        unfinished: bool,
    },
    Control(Control),
    /// Any single frame, breaking whatever rule it likes.
    Raw {
        fin: bool,
        rsv: u8,
        opcode: u8,
        wrong_mask: bool,
        payload: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    server: bool,
    max_frame_size: Option<u16>,
    max_message_size: Option<u16>,
    chunk_sizes: Vec<u8>,
    items: Vec<Item>,
}

/// One frame as sent: (fin, rsv, raw opcode, masked, payload).
struct WireFrame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    payload: Vec<u8>,
}

fn control_frame(control: &Control, masked: bool) -> WireFrame {
    let (opcode, payload) = match control {
        Control::Ping(p) => (9, p.clone()),
        Control::Pong(p) => (10, p.clone()),
        Control::Close(None) => (8, Vec::new()),
        Control::Close(Some((code, reason))) => {
            let mut p = code.to_be_bytes().to_vec();
            p.extend_from_slice(reason.as_bytes());
            (8, p)
        }
        Control::CloseRaw(p) => (8, p.clone()),
    };
    WireFrame {
        fin: true,
        rsv: 0,
        opcode,
        masked,
        payload,
    }
}

fn frames_of(items: &[Item], masked: bool) -> Vec<WireFrame> {
    let mut frames = Vec::new();
    for item in items {
        match item {
            Item::Data {
                text,
                content,
                corrupt,
                fragments,
                between,
                unfinished,
            } => {
                let mut data = content.as_bytes().to_vec();
                if let (Some((pos, byte)), false) = (corrupt, data.is_empty()) {
                    let i = usize::from(*pos) % data.len();
                    data[i] = *byte;
                }
                let pieces = chunks(&data, fragments);
                let pieces = if pieces.is_empty() {
                    vec![&data[..0]]
                } else {
                    pieces
                };
                let last = pieces.len() - 1;
                for (i, piece) in pieces.iter().enumerate() {
                    let opcode = match (i, text) {
                        (0, true) => 1,
                        (0, false) => 2,
                        _ => 0,
                    };
                    let fin = i == last && !unfinished;
                    frames.push(WireFrame {
                        fin,
                        rsv: 0,
                        opcode,
                        masked,
                        payload: piece.to_vec(),
                    });
                    if i < last {
                        if let Some(c) = between.get(i) {
                            frames.push(control_frame(c, masked));
                        }
                    }
                }
            }
            Item::Control(c) => frames.push(control_frame(c, masked)),
            Item::Raw {
                fin,
                rsv,
                opcode,
                wrong_mask,
                payload,
            } => frames.push(WireFrame {
                fin: *fin,
                // Mostly valid RSV, so that the other rules get exercised too.
                rsv: if rsv % 8 == 0 { rsv / 8 % 8 } else { 0 },
                opcode: opcode & 0xF,
                masked: masked != *wrong_mask,
                payload: payload.clone(),
            }),
        }
    }
    frames
}

/// What RFC 6455 says a receiver does with these frames: the messages it
/// delivers, then the error that fails the connection, if any.
fn reference(
    frames: &[WireFrame],
    role: Role,
    limits: &Limits,
) -> (Vec<Message>, Option<Expected>) {
    use Expected::{Capacity, Protocol};
    let mut out = Vec::new();
    // The message in progress: (is text, bytes so far).
    let mut partial: Option<(bool, Vec<u8>)> = None;
    let fail = |out, e| (out, Some(e));
    for f in frames {
        let len = f.payload.len();
        if !matches!(f.opcode, 0 | 1 | 2 | 8 | 9 | 10) {
            return fail(out, Protocol(ProtocolError::ReservedOpCode(f.opcode)));
        }
        let control = f.opcode >= 8;
        if control && !f.fin {
            return fail(out, Protocol(ProtocolError::FragmentedControlFrame));
        }
        if control && len > 125 {
            return fail(out, Protocol(ProtocolError::ControlFrameTooLong));
        }
        if f.rsv != 0 {
            return fail(out, Protocol(ProtocolError::ReservedBitsSet));
        }
        match (role, f.masked) {
            (Role::Server, false) => {
                return fail(out, Protocol(ProtocolError::UnmaskedFrameFromClient))
            }
            (Role::Client, true) => {
                return fail(out, Protocol(ProtocolError::MaskedFrameFromServer))
            }
            _ => {}
        }
        if len > limits.max_frame_size {
            let e = CapacityError::FrameTooLarge {
                size: len as u64,
                limit: limits.max_frame_size,
            };
            return fail(out, Capacity(e));
        }
        let too_big = |size: usize| {
            Capacity(CapacityError::MessageTooLarge {
                size: size as u64,
                limit: limits.max_message_size,
            })
        };
        match f.opcode {
            9 => out.push(Message::Ping(Bytes::from(f.payload.clone()))),
            10 => out.push(Message::Pong(Bytes::from(f.payload.clone()))),
            8 => {
                let close = match len {
                    0 => None,
                    1 => return fail(out, Protocol(ProtocolError::InvalidClosePayload)),
                    _ => {
                        let code = u16::from_be_bytes([f.payload[0], f.payload[1]]);
                        if !sendable(code) {
                            return fail(out, Protocol(ProtocolError::InvalidCloseCode(code)));
                        }
                        let Ok(reason) = std::str::from_utf8(&f.payload[2..]) else {
                            return fail(out, Protocol(ProtocolError::InvalidUtf8));
                        };
                        Some(CloseFrame::new(CloseCode(code), reason))
                    }
                };
                out.push(Message::Close(close));
            }
            op => {
                let (text, mut data) = match (op, partial.take()) {
                    (0, None) => return fail(out, Protocol(ProtocolError::UnexpectedContinuation)),
                    (0, Some(p)) => p,
                    (_, Some(_)) => {
                        return fail(out, Protocol(ProtocolError::ExpectedContinuation))
                    }
                    (op, None) => (op == 1, Vec::new()),
                };
                if data.len() + len > limits.max_message_size {
                    return fail(out, too_big(data.len() + len));
                }
                data.extend_from_slice(&f.payload);
                if text {
                    // Fail at the first byte that no continuation can repair.
                    if let Err(e) = std::str::from_utf8(&data) {
                        if e.error_len().is_some() || f.fin {
                            return fail(out, Protocol(ProtocolError::InvalidUtf8));
                        }
                    }
                }
                if !f.fin {
                    partial = Some((text, data));
                } else if text {
                    let s = Utf8Bytes::try_from(Bytes::from(data)).unwrap();
                    out.push(Message::Text(s));
                } else {
                    out.push(Message::Binary(Bytes::from(data)));
                }
            }
        }
    }
    (out, None)
}

fuzz_target!(|input: Input| {
    let role = if input.server {
        Role::Server
    } else {
        Role::Client
    };
    let mut limits = Limits::default();
    if let Some(max) = input.max_frame_size {
        limits = limits.max_frame_size(usize::from(max));
    }
    if let Some(max) = input.max_message_size {
        limits = limits.max_message_size(usize::from(max));
    }
    // The peer masks exactly when we are the server.
    let frames = frames_of(&input.items, role == Role::Server);
    let mut wire = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let key = f
            .masked
            .then(|| (i as u32).wrapping_mul(0x9E37_79B9).to_be_bytes());
        write_frame(&mut wire, f.fin, f.rsv, f.opcode, key, &f.payload);
    }
    let (expected, expected_error) = reference(&frames, role, &limits);

    let mut codec = MessageCodec::with_limits(role, &limits);
    let mut src = BytesMut::new();
    let mut got = Vec::new();
    let mut error = None;
    'feed: for piece in chunks(&wire, &input.chunk_sizes) {
        src.extend_from_slice(piece);
        loop {
            match codec.decode(&mut src) {
                Ok(Some(message)) => {
                    read_text(&message);
                    if !message.is_control() {
                        assert!(message.len() <= limits.max_message_size);
                    }
                    got.push(message);
                }
                Ok(None) => {
                    assert!(src.len() < MAX_HEADER_LEN + limits.max_frame_size);
                    break;
                }
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(got, expected, "messages differ from the reference model");
    match (&error, &expected_error) {
        (None, None) => assert!(src.is_empty(), "whole frames were sent"),
        (Some(e), Some(x)) => assert!(same_error(e, x), "{e:?} != {x:?}"),
        _ => panic!("codec ended with {error:?}, reference with {expected_error:?}"),
    }
});
