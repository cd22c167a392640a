use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::assemble::parse_close;
use super::frame_codec::FrameObserver;
use super::*;
use crate::config::{Limits, Role};
use crate::error::{CapacityError, Error, ProtocolError, UsageError};
use crate::frame::{FrameHeader, OpCode};
use crate::message::{CloseCode, CloseFrame, Message};

#[path = "../../tests/common/wire.rs"]
mod wire_frame;

/// A frame as a client would send it (masked) or a server (unmasked).
fn wire(role: Role, fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = (role == Role::Client).then_some([0xA1, 0xB2, 0xC3, 0xD4]);
    wire_frame::wire_frame(fin, rsv, opcode, mask, payload)
}

fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    wire(Role::Client, fin, 0, opcode, payload)
}

/// Decodes every message from `bytes` fed in pieces of `chunk` bytes.
fn decode_chunked(
    codec: &mut MessageCodec,
    bytes: &[u8],
    chunk: usize,
) -> Result<Vec<Message>, Error> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(m) = codec.decode(&mut buf)? {
            out.push(m);
        }
    }
    Ok(out)
}

/// Decodes every message `buf` holds.
fn decode_all(codec: &mut MessageCodec, buf: &mut BytesMut) -> Result<Vec<Message>, Error> {
    let mut out = Vec::new();
    while let Some(m) = codec.decode(buf)? {
        out.push(m);
    }
    Ok(out)
}

fn server_decode(bytes: &[u8]) -> Result<Vec<Message>, Error> {
    decode_chunked(&mut MessageCodec::new(Role::Server), bytes, bytes.len())
}

fn protocol_error(result: Result<Vec<Message>, Error>) -> ProtocolError {
    match result {
        Err(Error::Protocol(e)) => e,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn decodes_same_messages_whatever_the_chunking() {
    let mut bytes = Vec::new();
    bytes.extend(client_frame(true, 1, "héllo".as_bytes()));
    bytes.extend(client_frame(false, 2, &[1; 200]));
    bytes.extend(client_frame(true, 9, b"ping"));
    bytes.extend(client_frame(true, 0, &[2; 70_000]));
    bytes.extend(client_frame(true, 1, b""));
    bytes.extend(client_frame(true, 8, b"\x03\xe8bye"));
    let expected = server_decode(&bytes).unwrap();
    assert_eq!(expected.len(), 5);
    for chunk in [1, 2, 3, 7, 13, 125, 4096] {
        let got = decode_chunked(&mut MessageCodec::new(Role::Server), &bytes, chunk).unwrap();
        assert_eq!(got, expected, "chunk {chunk}");
    }
    let mut binary = vec![1u8; 200];
    binary.extend_from_slice(&[2; 70_000]);
    assert_eq!(
        expected,
        vec![
            Message::text("héllo"),
            Message::Ping(Bytes::from_static(b"ping")),
            Message::Binary(binary.into()),
            Message::text(""),
            Message::close(CloseCode::NORMAL, "bye"),
        ]
    );
}

#[test]
fn rejects_unmasked_client_frame() {
    let bytes = wire(Role::Server, true, 0, 1, b"hi");
    assert_eq!(
        protocol_error(server_decode(&bytes)),
        ProtocolError::UnmaskedFrameFromClient
    );
}

#[test]
fn rejects_masked_server_frame() {
    let bytes = client_frame(true, 2, b"hi");
    let mut codec = MessageCodec::new(Role::Client);
    assert_eq!(
        protocol_error(decode_chunked(&mut codec, &bytes, 100)),
        ProtocolError::MaskedFrameFromServer
    );
}

#[test]
fn rejects_rsv_bits_without_extension() {
    for rsv in 1..8 {
        let bytes = wire(Role::Client, true, rsv, 1, b"hi");
        assert_eq!(
            protocol_error(server_decode(&bytes)),
            ProtocolError::ReservedBitsSet
        );
    }
}

#[test]
fn accepts_rsv_bits_an_extension_claimed() {
    let mut codec = FrameCodec::new(Role::Server);
    codec.set_allowed_rsv(0b100);
    let mut buf = BytesMut::from(&wire(Role::Client, true, 0b100, 2, b"x")[..]);
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap().rsv, 0b100);
}

#[test]
fn rejects_continuation_without_message_in_progress() {
    let bytes = client_frame(true, 0, b"x");
    assert_eq!(
        protocol_error(server_decode(&bytes)),
        ProtocolError::UnexpectedContinuation
    );
}

#[test]
fn rejects_new_message_while_fragmented_message_in_progress() {
    let mut bytes = client_frame(false, 1, b"a");
    bytes.extend(client_frame(true, 1, b"b"));
    assert_eq!(
        protocol_error(server_decode(&bytes)),
        ProtocolError::ExpectedContinuation
    );
}

#[test]
fn control_frames_interleave_with_fragments() {
    let mut bytes = client_frame(false, 1, b"frag");
    bytes.extend(client_frame(true, 9, b"p"));
    bytes.extend(client_frame(false, 0, b"men"));
    bytes.extend(client_frame(true, 10, b"q"));
    bytes.extend(client_frame(true, 0, b"ted"));
    assert_eq!(
        server_decode(&bytes).unwrap(),
        vec![
            Message::Ping(Bytes::from_static(b"p")),
            Message::Pong(Bytes::from_static(b"q")),
            Message::text("fragmented"),
        ]
    );
}

#[test]
fn invalid_utf8_fails_before_the_frame_is_complete() {
    // Autobahn 6.4.3: the bad byte arrives, the rest of the frame never does.
    let mut payload = "κόσμε".as_bytes().to_vec();
    payload.extend_from_slice(b"\xed\xa0\x80edited");
    let bytes = client_frame(true, 1, &payload);
    let cut = 2 + 4 + "κόσμε".len() + 2; // header, mask, valid text, 0xED 0xA0
    let mut codec = MessageCodec::new(Role::Server);
    let mut buf = BytesMut::from(&bytes[..cut - 1]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    buf.extend_from_slice(&bytes[cut - 1..cut]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(Error::Protocol(ProtocolError::InvalidUtf8))
    ));
}

#[test]
fn invalid_utf8_in_a_later_fragment_fails_at_once() {
    // Autobahn 6.4.1: the first fragment is valid, the second is not, and the
    // final fragment never arrives.
    let mut bytes = client_frame(false, 1, "κόσμε".as_bytes());
    bytes.extend(client_frame(false, 0, b"\xed\xa0\x80"));
    assert_eq!(
        protocol_error(server_decode(&bytes)),
        ProtocolError::InvalidUtf8
    );
}

#[test]
fn code_point_split_across_fragments_is_valid() {
    let euro = "€".as_bytes();
    let mut bytes = client_frame(false, 1, &euro[..1]);
    bytes.extend(client_frame(false, 0, &euro[1..2]));
    bytes.extend(client_frame(true, 0, &euro[2..]));
    assert_eq!(server_decode(&bytes).unwrap(), vec![Message::text("€")]);
}

#[test]
fn text_ending_inside_a_code_point_is_invalid() {
    let bytes = client_frame(true, 1, b"a\xe2\x82");
    assert_eq!(
        protocol_error(server_decode(&bytes)),
        ProtocolError::InvalidUtf8
    );
}

#[test]
fn frame_over_limit_fails_on_header_with_1009() {
    let limits = Limits::default().max_frame_size(100);
    let mut codec = MessageCodec::with_limits(Role::Server, &limits);
    // Only the header: the payload was declared, never sent.
    let mut buf = BytesMut::from(&client_frame(true, 2, &[0; 101])[..8]);
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(matches!(
        err,
        Error::Capacity(CapacityError::FrameTooLarge {
            size: 101,
            limit: 100
        })
    ));
    assert_eq!(err.close_code(), Some(CloseCode::MESSAGE_TOO_BIG));
}

#[test]
fn huge_declared_length_allocates_nothing() {
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let mut buf = BytesMut::from(&header[..]);
    let capacity_before = buf.capacity();
    let err = MessageCodec::new(Role::Server)
        .decode(&mut buf)
        .unwrap_err();
    assert!(matches!(err, Error::Capacity(_)));
    assert_eq!(buf.capacity(), capacity_before);
}

/// Feeds `frame` to `codec` in 64 KiB pieces the way a read would (into the
/// buffer's spare room) and returns the payload with the address the buffer
/// had once the header was seen: a payload there was never copied.
fn decode_large(codec: &mut MessageCodec, frame: &[u8]) -> (Message, *const u8) {
    let mut buf = BytesMut::new();
    let mut first = None;
    for piece in frame.chunks(64 << 10) {
        buf.extend_from_slice(piece);
        if let Some(message) = codec.decode(&mut buf).unwrap() {
            return (message, first.unwrap());
        }
        // Where the frame starts: `decode` may have taken what arrived out
        // of `buf`, leaving it at the end of that.
        let taken = piece.len() - buf.len();
        first.get_or_insert(buf.as_ptr().wrapping_sub(taken));
    }
    panic!("the frame did not complete");
}

#[test]
fn a_large_binary_frame_is_read_into_one_buffer_without_a_copy() {
    let payload: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let frame = client_frame(true, 2, &payload);
    let mut codec = MessageCodec::new(Role::Server);
    let (message, at) = decode_large(&mut codec, &frame);
    assert_eq!(message, Message::binary(payload));
    // The header is 14 bytes; everything after it stayed where it arrived.
    assert_eq!(message.clone().into_data().as_ptr(), at.wrapping_add(14));
}

#[test]
fn a_large_text_frame_is_validated_as_it_arrives_and_joined_without_a_copy() {
    // 960 KB: under the default reserve, so it has all the room at once.
    let text = "ünïcödé ".repeat(80_000);
    let frame = client_frame(true, 1, text.as_bytes());
    let mut codec = MessageCodec::new(Role::Server);
    let (message, at) = decode_large(&mut codec, &frame);
    assert_eq!(message.clone().into_data().as_ptr(), at.wrapping_add(14));
    assert_eq!(message, Message::text(text));
}

#[test]
fn the_stream_ending_inside_a_large_frame_is_an_error_not_a_clean_end() {
    // Regression: FrameCodec takes a frame of 64 KiB or more out of the
    // buffer, and decode_eof took the empty buffer for a clean end (found
    // by the decode fuzz target).
    let frame = client_frame(true, 2, &vec![0; 100_000]);
    let mut codec = FrameCodec::new(Role::Server);
    let mut buf = BytesMut::from(&frame[..70_000]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(buf.is_empty(), "taken");
    assert!(codec.decode_eof(&mut buf).is_err());
}

#[test]
fn a_frame_reserves_its_rest_up_to_max_frame_reserve() {
    // The frame's rest after 1 KiB is 523,278 bytes.
    for (reserve, at_least, below) in [
        (1 << 20, 523_278, usize::MAX),
        (64 << 10, 64 << 10, 1 << 18),
        (0, 0, 4096),
    ] {
        let limits = Limits::default().max_frame_reserve(reserve);
        let mut codec = MessageCodec::with_limits(Role::Server, &limits);
        let frame = client_frame(true, 2, &vec![0; 1 << 19]);
        let mut buf = BytesMut::from(&frame[..1024]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        let room = buf.capacity() - buf.len();
        assert!(
            room >= at_least && room < below,
            "reserve {reserve}: room {room}"
        );
    }
}

#[test]
fn fragments_over_message_limit_fail_on_the_header_that_crosses_it() {
    let limits = Limits::default().max_message_size(10);
    let mut codec = MessageCodec::with_limits(Role::Server, &limits);
    let mut bytes = client_frame(false, 2, &[0; 6]);
    bytes.extend(client_frame(true, 0, &[0; 5]));
    let err = decode_chunked(&mut codec, &bytes, bytes.len()).unwrap_err();
    assert!(matches!(
        err,
        Error::Capacity(CapacityError::MessageTooLarge {
            size: 11,
            limit: 10
        })
    ));
}

#[test]
fn encodes_then_decodes_in_the_other_role() {
    for len in [0usize, 1, 125, 126, 65535, 65536] {
        let messages = vec![
            Message::binary(vec![7u8; len]),
            Message::text("x".repeat(len)),
            Message::Ping(Bytes::from(vec![1; len.min(125)])),
            Message::close(CloseCode(4001), "r"),
            Message::Close(None),
        ];
        for (sender, receiver) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
            let mut enc = MessageCodec::new(sender);
            let mut buf = BytesMut::new();
            for m in &messages {
                enc.encode(m, &mut buf).unwrap();
            }
            let got = decode_chunked(&mut MessageCodec::new(receiver), &buf, 1000).unwrap();
            assert_eq!(got, messages);
        }
    }
}

#[test]
fn client_masks_every_frame_with_a_fresh_key() {
    let mut enc = MessageCodec::new(Role::Client);
    let mut buf = BytesMut::new();
    enc.encode(Message::text("a"), &mut buf).unwrap();
    enc.encode(Message::text("a"), &mut buf).unwrap();
    let (h1, n1) = FrameHeader::parse(&buf).unwrap().unwrap();
    let (h2, _) = FrameHeader::parse(&buf[n1 + 1..]).unwrap().unwrap();
    assert!(h1.mask.is_some() && h2.mask.is_some());
    // Two random 32-bit keys collide with probability 2^-32.
    assert_ne!(h1.mask, h2.mask);
}

#[test]
fn refuses_to_encode_oversized_control_frames() {
    let mut enc = MessageCodec::new(Role::Server);
    let mut buf = BytesMut::new();
    let err = enc
        .encode(Message::Ping(vec![0; 126].into()), &mut buf)
        .unwrap_err();
    assert!(matches!(err, Error::Usage(UsageError::ControlFrameTooLong)));
    let long_reason = "x".repeat(124);
    assert!(enc
        .encode(Message::close(CloseCode::NORMAL, long_reason), &mut buf)
        .is_err());
    assert!(buf.is_empty());
    assert!(enc
        .encode(Message::close(CloseCode(1005), ""), &mut buf)
        .is_err());
    assert!(buf.is_empty());
}

#[test]
fn fragments_outgoing_messages_at_the_fragment_size() {
    let mut enc = MessageCodec::new(Role::Client);
    enc.set_fragment_size(4);
    let mut buf = BytesMut::new();
    enc.encode(Message::text("héllo wörld"), &mut buf).unwrap();
    enc.encode(Message::binary(Vec::new()), &mut buf).unwrap();
    let mut frames = Vec::new();
    let mut codec = FrameCodec::new(Role::Server);
    while let Some(f) = codec.decode(&mut buf).unwrap() {
        frames.push((f.opcode, f.fin, f.payload.len()));
    }
    use OpCode::*;
    assert_eq!(
        frames,
        [
            (Text, false, 4),
            (Continuation, false, 4),
            (Continuation, false, 4),
            (Continuation, true, 1),
            (Binary, true, 0)
        ]
    );
}

/// Issue #12 (a): two bytes of a text frame are checked in one call, and
/// the next call is given another buffer, with the same header and invalid
/// UTF-8 where those two bytes were. The checked bytes were taken out of
/// the first buffer, so the second one holds what comes after them: no text
/// holding `FF FE` can come out.
#[test]
fn text_checked_in_an_earlier_call_is_taken_out_of_the_callers_buffer() {
    let mut codec = MessageCodec::new(Role::Client);
    let mut first = BytesMut::from(&[0x81, 0x04, b'a', b'b'][..]);
    assert!(codec.decode(&mut first).unwrap().is_none());
    let mut other = BytesMut::from(&[0x81, 0x04, 0xFF, 0xFE, b'c', b'd'][..]);
    let got = codec.decode(&mut other);
    // 0x81 continues "ab": a continuation byte with no lead byte.
    assert!(
        matches!(got, Err(Error::Protocol(ProtocolError::InvalidUtf8))),
        "{got:?}"
    );
    assert!(first.is_empty(), "{first:?}");

    // The bytes that do come next complete the text.
    let mut codec = MessageCodec::new(Role::Client);
    let mut first = BytesMut::from(&[0x81, 0x04, b'a', b'b'][..]);
    assert!(codec.decode(&mut first).unwrap().is_none());
    let mut rest = BytesMut::from(&b"cd"[..]);
    assert_eq!(
        codec.decode(&mut rest).unwrap(),
        Some(Message::text("abcd"))
    );
}

/// Issue #12 (a), masking: bytes unmasked in an earlier call are not
/// assumed to be still unmasked in the buffer. A frame left in the buffer
/// is untouched until it is complete, then unmasked whole, from the bytes
/// there in the call that returns it.
#[test]
fn a_frame_left_in_the_buffer_is_unmasked_in_the_call_that_completes_it() {
    let key = [0x80; 4];
    let mut wire = vec![0x82, 0x80 | 4];
    wire.extend_from_slice(&key);
    wire.extend(b"abcd".iter().map(|b| b ^ 0x80));
    let mut codec = MessageCodec::new(Role::Server);
    let mut first = BytesMut::from(&wire[..8]);
    assert!(codec.decode(&mut first).unwrap().is_none());
    // A fresh copy of the wire: every payload byte still masked.
    let mut copy = BytesMut::from(&wire[..]);
    assert_eq!(
        codec.decode(&mut copy).unwrap(),
        Some(Message::binary(&b"abcd"[..]))
    );
}

#[test]
fn decode_returns_none_without_touching_a_frame_it_leaves_in_the_buffer() {
    let text = client_frame(true, 1, "héllo wörld".as_bytes());
    let binary = client_frame(true, 2, "héllo wörld".as_bytes());
    let mut frames = FrameCodec::new(Role::Server);
    let mut messages = MessageCodec::new(Role::Server);
    let mut text_buf = BytesMut::new();
    let mut binary_buf = BytesMut::new();
    for i in 0..text.len() - 1 {
        text_buf.extend_from_slice(&text[i..=i]);
        assert!(frames.decode(&mut text_buf).unwrap().is_none());
        assert_eq!(&text_buf[..], &text[..=i], "text, after {} bytes", i + 1);
        binary_buf.extend_from_slice(&binary[i..=i]);
        assert!(messages.decode(&mut binary_buf).unwrap().is_none());
        assert_eq!(
            &binary_buf[..],
            &binary[..=i],
            "binary, after {} bytes",
            i + 1
        );
    }
    text_buf.extend_from_slice(&text[text.len() - 1..]);
    let frame = frames.decode(&mut text_buf).unwrap().unwrap();
    assert_eq!(&frame.payload[..], "héllo wörld".as_bytes());
    binary_buf.extend_from_slice(&binary[binary.len() - 1..]);
    assert_eq!(
        messages.decode(&mut binary_buf).unwrap(),
        Some(Message::binary("héllo wörld".as_bytes()))
    );
}

#[test]
fn a_text_frame_still_arriving_is_taken_out_of_the_buffer() {
    let text = "héllo wörld, ".repeat(20);
    let bytes = client_frame(true, 1, text.as_bytes());
    let mut codec = MessageCodec::new(Role::Server);
    let mut buf = BytesMut::new();
    let mut got = None;
    for piece in bytes.chunks(7) {
        buf.extend_from_slice(piece);
        got = codec.decode(&mut buf).unwrap();
        // Only a piece of header is left for the next call to complete.
        assert!(buf.len() < 2 + 2 + 4, "{} bytes left", buf.len());
    }
    assert_eq!(got, Some(Message::text(text)));
    assert!(buf.is_empty());
}

/// Counts what a frame codec shows its observer.
#[derive(Default)]
struct Counting {
    headers: usize,
    payload_bytes: usize,
}

impl FrameObserver for Counting {
    fn on_header(&mut self, _: &FrameHeader) -> Result<(), Error> {
        self.headers += 1;
        Ok(())
    }
    fn looks_ahead(&self) -> bool {
        true
    }
    fn on_payload(&mut self, _: &FrameHeader, chunk: &[u8]) -> Result<(), Error> {
        self.payload_bytes += chunk.len();
        Ok(())
    }
}

/// Linear however the frame is cut: each byte is unmasked and shown once,
/// whether the pieces come in one growing buffer or in fresh ones.
#[test]
fn a_frame_taken_in_small_pieces_is_seen_once_per_byte() {
    let payload: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let bytes = client_frame(true, 1, &payload);
    for fresh_buffers in [false, true] {
        let mut codec = FrameCodec::new(Role::Server);
        let mut observer = Counting::default();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for piece in bytes.chunks(1024) {
            if fresh_buffers {
                buf = BytesMut::new();
            }
            buf.extend_from_slice(piece);
            frames.extend(codec.decode_observed(&mut buf, &mut observer).unwrap());
        }
        assert_eq!(observer.headers, 1);
        assert_eq!(observer.payload_bytes, payload.len());
        assert_eq!(frames.len(), 1);
        assert!(frames[0].payload == payload);
    }
}

#[test]
fn decode_eof_fails_inside_a_frame_the_codec_took() {
    let bytes = client_frame(true, 1, b"hello");
    let mut codec = MessageCodec::new(Role::Server);
    let mut buf = BytesMut::from(&bytes[..bytes.len() - 1]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(buf.is_empty());
    assert!(matches!(codec.decode_eof(&mut buf), Err(Error::Io(_))));
    let mut codec = MessageCodec::new(Role::Server);
    let mut buf = BytesMut::from(&client_frame(true, 2, b"hello")[..8]);
    assert!(matches!(codec.decode_eof(&mut buf), Err(Error::Io(_))));
    let mut codec = MessageCodec::new(Role::Server);
    assert!(codec.decode_eof(&mut BytesMut::new()).unwrap().is_none());
}

#[test]
fn a_shorter_buffer_after_part_of_a_frame_is_no_panic() {
    let bytes = client_frame(true, 2, &[b'x'; 300]);
    let mut codec = MessageCodec::new(Role::Server);
    let mut buf = BytesMut::from(&bytes[..100]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    for len in [0, 1, 3, 50] {
        let mut shorter = BytesMut::from(&bytes[..len]);
        assert!(codec.decode(&mut shorter).unwrap().is_none(), "{len} bytes");
    }
    let mut whole = BytesMut::from(&bytes[..]);
    assert_eq!(
        codec.decode(&mut whole).unwrap(),
        Some(Message::binary(vec![b'x'; 300]))
    );
}

/// Every later call fails with the first error, whatever buffer it is
/// given: the codec does not carry on from a state the error left behind.
#[test]
fn frame_codec_fails_every_decode_after_an_error() {
    let mut codec = FrameCodec::new(Role::Server);
    let mut bad = BytesMut::from(&wire(Role::Server, true, 0, 2, b"hi")[..]);
    assert!(matches!(
        codec.decode(&mut bad),
        Err(Error::Protocol(ProtocolError::UnmaskedFrameFromClient))
    ));
    for _ in 0..3 {
        let mut good = BytesMut::from(&client_frame(true, 2, b"hi")[..]);
        let got = codec.decode(&mut good);
        assert!(
            matches!(
                got,
                Err(Error::Protocol(ProtocolError::UnmaskedFrameFromClient))
            ),
            "{got:?}"
        );
        assert!(matches!(
            codec.decode(&mut BytesMut::new()),
            Err(Error::Protocol(ProtocolError::UnmaskedFrameFromClient))
        ));
    }
}

#[test]
fn message_codec_fails_every_decode_after_an_error() {
    // The error in the frame codec (a header), in the observer (UTF-8
    // before the frame is complete) and in reassembly (after it).
    let truncated_code_point = client_frame(true, 1, b"a\xe2\x82");
    // Header, mask and "ab\xff" of a longer frame.
    let early_utf8 = &client_frame(true, 1, b"ab\xffcdef")[..2 + 4 + 3];
    let failures: [(&[u8], ProtocolError); 3] = [
        (&[0x83, 0x80, 0, 0, 0, 0], ProtocolError::ReservedOpCode(3)),
        (early_utf8, ProtocolError::InvalidUtf8),
        (&truncated_code_point, ProtocolError::InvalidUtf8),
    ];
    for (bytes, expected) in failures {
        let mut codec = MessageCodec::new(Role::Server);
        let mut buf = BytesMut::from(bytes);
        assert_eq!(protocol_error(decode_all(&mut codec, &mut buf)), expected);
        for later in [client_frame(true, 1, b"fine"), client_frame(true, 9, b"")] {
            let mut buf = BytesMut::from(&later[..]);
            assert_eq!(protocol_error(decode_all(&mut codec, &mut buf)), expected);
        }
    }
}

/// Issue #12 (b): a continuation inflates to invalid UTF-8, the error is
/// returned, and the caller decodes on (as `Framed` does when polled
/// again). The last fragment must not complete a text message holding
/// the bad bytes.
#[cfg(feature = "deflate")]
#[test]
fn with_deflate_no_text_message_completes_after_invalid_utf8() {
    let params = crate::deflate::DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: None,
        client_max_window_bits: None,
        level: 6,
        min_size: 0,
    };
    let compressed = crate::deflate::Deflate::new(&params, false)
        .compress(b"ab\xffcd")
        .unwrap();
    let mut codec = MessageCodec::new(Role::Server);
    codec.set_deflate(&params);
    let mut bytes = wire(Role::Client, false, 0b100, 1, b"");
    bytes.extend(wire(Role::Client, false, 0, 0, &compressed));
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(
        protocol_error(decode_all(&mut codec, &mut buf)),
        ProtocolError::InvalidUtf8
    );
    let mut last = BytesMut::from(&wire(Role::Client, true, 0, 0, b"")[..]);
    assert_eq!(
        protocol_error(decode_all(&mut codec, &mut last)),
        ProtocolError::InvalidUtf8
    );
}

#[test]
fn payload_is_split_off_the_read_buffer_without_copying() {
    let bytes = client_frame(true, 2, &[9; 1000]);
    let mut buf = BytesMut::from(&bytes[..]);
    let region = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let frame = FrameCodec::new(Role::Server)
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    assert!(region.contains(&(frame.payload.as_ptr() as usize)));
}

#[test]
fn parses_empty_close_payload_as_no_status() {
    assert_eq!(parse_close(Bytes::new()), Ok(None));
}

#[test]
fn rejects_one_byte_close_payload() {
    assert_eq!(
        parse_close(Bytes::from_static(&[3])),
        Err(ProtocolError::InvalidClosePayload)
    );
}

#[test]
fn rejects_close_reason_that_is_not_utf8() {
    assert_eq!(
        parse_close(Bytes::from_static(b"\x03\xe8\xff")),
        Err(ProtocolError::InvalidUtf8)
    );
}

#[test]
fn rejects_reserved_close_code() {
    assert_eq!(
        parse_close(Bytes::from_static(b"\x03\xed")),
        Err(ProtocolError::InvalidCloseCode(1005))
    );
}

#[test]
fn parses_close_code_and_reason() {
    let frame = parse_close(Bytes::from_static(b"\x0f\xa0bye")).unwrap();
    assert_eq!(frame, Some(CloseFrame::new(CloseCode(4000), "bye")));
}

/// Issue 13: what the caller may not send is a `UsageError`, told apart from
/// the peer's violations, and it names no close code: nothing went wrong on
/// the wire.
#[test]
fn encoding_what_may_not_be_sent_is_a_usage_error_with_no_close_code() {
    let mut frames = FrameCodec::new(Role::Client);
    let mut buf = BytesMut::new();
    let mut ping = Frame::new(OpCode::Ping, &b"x"[..]);
    ping.fin = false;
    let err = frames.encode(ping, &mut buf).unwrap_err();
    assert!(
        matches!(err, Error::Usage(UsageError::FragmentedControlFrame)),
        "{err:?}"
    );
    let long = Frame::new(OpCode::Pong, vec![0u8; 126]);
    let err = frames.encode(long, &mut buf).unwrap_err();
    assert!(
        matches!(err, Error::Usage(UsageError::ControlFrameTooLong)),
        "{err:?}"
    );
    let mut messages = MessageCodec::new(Role::Server);
    let close = Message::Close(Some(CloseFrame::new(CloseCode(1015), "")));
    let err = messages.encode(close, &mut buf).unwrap_err();
    assert!(
        matches!(err, Error::Usage(UsageError::UnsendableCloseCode(1015))),
        "{err:?}"
    );
    assert_eq!(err.close_code(), None);
    assert!(buf.is_empty(), "nothing refused was written");
}
