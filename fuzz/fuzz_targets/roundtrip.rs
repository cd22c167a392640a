//! Encode, then decode in the other role: arbitrary messages (with an arbitrary
//! fragment size via `MessageCodec::set_fragment_size`) and arbitrary frames
//! (via `FrameCodec`'s encoder), the wire chunked arbitrarily, come back equal.
//! What the encoders must refuse (control payloads over 125 bytes, fragmented
//! control frames, close codes that may not be sent) they refuse, writing
//! nothing.
#![no_main]

mod common;

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use common::{chunks, read_text, sendable};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};
use wscodec::frame::OpCode;
use wscodec::{CloseCode, Frame, FrameCodec, Message, MessageCodec, Role};

#[derive(Arbitrary, Debug)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

#[derive(Arbitrary, Debug)]
struct RawFrame {
    fin: bool,
    rsv: u8,
    /// Index into the six opcodes.
    opcode: u8,
    payload: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    client_sends: bool,
    fragment_size: Option<u16>,
    chunk_sizes: Vec<u8>,
    messages: Vec<Msg>,
    frames: Vec<RawFrame>,
}

fn to_message(m: &Msg) -> Message {
    match m {
        Msg::Text(s) => Message::text(s.as_str()),
        Msg::Binary(b) => Message::binary(b.clone()),
        Msg::Ping(b) => Message::Ping(Bytes::from(b.clone())),
        Msg::Pong(b) => Message::Pong(Bytes::from(b.clone())),
        Msg::Close(None) => Message::Close(None),
        Msg::Close(Some((code, reason))) => Message::close(CloseCode(*code), reason.as_str()),
    }
}

/// Whether RFC 6455 lets this message be sent.
fn encodable(m: &Message) -> bool {
    match m {
        Message::Ping(b) | Message::Pong(b) => b.len() <= 125,
        Message::Close(Some(c)) => 2 + c.reason.len() <= 125 && sendable(c.code.0),
        _ => true,
    }
}

fn decode_all<D: Decoder<Error = wscodec::Error>>(
    decoder: &mut D,
    wire: &[u8],
    sizes: &[u8],
) -> Vec<D::Item> {
    let mut src = BytesMut::new();
    let mut out = Vec::new();
    for piece in chunks(wire, sizes) {
        src.extend_from_slice(piece);
        while let Some(item) = decoder.decode(&mut src).expect("our own encoding decodes") {
            out.push(item);
        }
    }
    assert!(src.is_empty(), "bytes left over after the last frame");
    out
}

fuzz_target!(|input: Input| {
    let (sender, receiver) = if input.client_sends {
        (Role::Client, Role::Server)
    } else {
        (Role::Server, Role::Client)
    };

    // Messages.
    let mut encoder = MessageCodec::new(sender);
    if let Some(size) = input.fragment_size {
        encoder.set_fragment_size(usize::from(size));
    }
    let fragment = input
        .fragment_size
        .map_or(usize::MAX, |s| usize::from(s).max(1));
    let mut wire = BytesMut::new();
    let mut sent = Vec::new();
    for m in input.messages.iter().map(to_message) {
        let before = wire.len();
        match encoder.encode(&m, &mut wire) {
            Ok(()) => {
                assert!(encodable(&m), "encoded {m:?}, which may not be sent");
                sent.push(m);
            }
            Err(e) => {
                assert!(!encodable(&m), "refused {m:?}: {e}");
                assert_eq!(wire.len(), before, "a refused message wrote bytes");
            }
        }
    }
    // The fragmentation is what was asked for: data frames of at most
    // `fragment` bytes, as few as possible.
    let frames = decode_all(&mut FrameCodec::new(receiver), &wire, &[]);
    let mut expected_frames = 0;
    for m in &sent {
        expected_frames += match m {
            Message::Text(_) | Message::Binary(_) => m.len().div_ceil(fragment).max(1),
            _ => 1,
        };
    }
    assert_eq!(frames.len(), expected_frames);
    assert!(frames
        .iter()
        .all(|f| f.opcode.is_control() || f.payload.len() <= fragment));
    let received = decode_all(&mut MessageCodec::new(receiver), &wire, &input.chunk_sizes);
    received.iter().for_each(read_text);
    assert_eq!(received, sent);

    // Single frames, RSV bits allowed by an "extension" on the receiving side.
    const OPS: [OpCode; 6] = [
        OpCode::Continuation,
        OpCode::Text,
        OpCode::Binary,
        OpCode::Close,
        OpCode::Ping,
        OpCode::Pong,
    ];
    let mut encoder = FrameCodec::new(sender);
    let mut wire = BytesMut::new();
    let mut sent = Vec::new();
    for f in &input.frames {
        let frame = Frame {
            fin: f.fin,
            rsv: f.rsv & 7,
            opcode: OPS[usize::from(f.opcode) % OPS.len()],
            payload: Bytes::from(f.payload.clone()),
        };
        let allowed = !frame.opcode.is_control() || (frame.fin && frame.payload.len() <= 125);
        let before = wire.len();
        match encoder.encode(frame.clone(), &mut wire) {
            Ok(()) => {
                assert!(allowed, "encoded {frame:?}, which may not be sent");
                sent.push(frame);
            }
            Err(_) => {
                assert!(!allowed, "refused {frame:?}");
                assert_eq!(wire.len(), before);
            }
        }
    }
    let mut decoder = FrameCodec::new(receiver);
    decoder.set_allowed_rsv(7);
    assert_eq!(decode_all(&mut decoder, &wire, &input.chunk_sizes), sent);
});
