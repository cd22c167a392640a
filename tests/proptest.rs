//! Property tests of the pure layers against simple models: frame headers
//! (`wscodec::frame`), masking (`wscodec::mask`) and incremental UTF-8
//! validation (`wscodec::utf8`), plus text decoding read back through
//! `Utf8Bytes::as_str` (the crate's one `unsafe` block; scripts/valgrind.sh
//! runs this file under valgrind), the codecs fed buffers that are re-chunked,
//! swapped and mutated between calls, and the handshake builders against the
//! HTTP parser.

#[path = "common/wire.rs"]
mod wire;

use bytes::{Buf, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use tokio_util::codec::Decoder;
use wire::wire_frame;
use wscodec::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use wscodec::handshake::{Accept, Reject, Request, Response};
use wscodec::mask::apply_mask;
use wscodec::utf8::Utf8Validator;
use wscodec::{
    ClientRequest, Error, FrameCodec, Limits, Message, MessageCodec, ProtocolError, Role,
};

const OPCODES: [OpCode; 6] = [
    OpCode::Continuation,
    OpCode::Text,
    OpCode::Binary,
    OpCode::Close,
    OpCode::Ping,
    OpCode::Pong,
];

fn header() -> impl Strategy<Value = FrameHeader> {
    // Lengths around each boundary of the three length forms, and anywhere.
    let len = prop_oneof![
        0u64..=130,
        65_530u64..=65_540,
        any::<u64>().prop_map(|l| l >> 1),
    ];
    (
        any::<bool>(),
        0u8..8,
        0..OPCODES.len(),
        any::<Option<[u8; 4]>>(),
        len,
    )
        .prop_map(|(fin, rsv, op, mask, payload_len)| FrameHeader {
            fin,
            rsv,
            opcode: OPCODES[op],
            mask,
            payload_len,
        })
}

/// Cuts `data` at the given points (taken modulo its length), in order.
fn split_at_points(data: &[u8], points: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (data.len() + 1)).collect();
    cuts.push(0);
    cuts.push(data.len());
    cuts.sort_unstable();
    cuts.windows(2).map(|w| data[w[0]..w[1]].to_vec()).collect()
}

/// Bytes that are mostly UTF-8, sometimes broken: valid text, with random
/// bytes spliced in, so that both outcomes are common.
fn mostly_utf8() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<String>().prop_map(String::into_bytes),
        (any::<String>(), vec(any::<u8>(), 0..4), any::<usize>()).prop_map(|(s, junk, at)| {
            let mut bytes = s.into_bytes();
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, junk);
            bytes
        }),
        vec(any::<u8>(), 0..64),
    ]
}

/// One frame a peer might send, breaking a rule now and then.
#[derive(Debug, Clone)]
struct ChaosFrame {
    fin: bool,
    rsv: u8,
    /// The raw 4-bit opcode, reserved ones included.
    opcode: u8,
    /// Masked when the receiver is a client, unmasked when it is a server.
    wrong_mask: bool,
    payload: Vec<u8>,
}

/// What goes on the wire: a frame as it is, or a data message compressed with
/// permessage-deflate (sent uncompressed without the feature) and cut into
/// fragments of `fragment` bytes.
#[derive(Debug, Clone)]
enum ChaosItem {
    Frame(ChaosFrame),
    Compressed {
        text: bool,
        data: Vec<u8>,
        fragment: usize,
    },
}

/// What the caller does between and instead of `decode` calls.
#[derive(Debug, Clone)]
enum Step {
    /// Appends the next n bytes of the wire to the buffer.
    Feed(usize),
    /// Decodes until `None` or an error.
    Decode,
    DecodeEof,
    /// Swaps the buffer with a spare one (empty at first).
    Swap,
    /// Replaces the buffer with a copy of the wire from (start, length).
    Replace(usize, usize),
    /// Overwrites a byte of the buffer.
    Mutate(usize, u8),
    Truncate(usize),
    Advance(usize),
}

fn chaos_item() -> impl Strategy<Value = ChaosItem> {
    let frame = (
        any::<bool>(),
        prop_oneof![8 => Just(0u8), 1 => Just(4u8), 1 => 0u8..8],
        prop_oneof![
            3 => Just(1u8),
            2 => Just(0u8),
            2 => Just(2u8),
            1 => Just(8u8),
            1 => Just(9u8),
            1 => Just(10u8),
            1 => 0u8..16,
        ],
        proptest::bool::weighted(0.05),
        mostly_utf8(),
    )
        .prop_map(|(fin, rsv, opcode, wrong_mask, payload)| {
            ChaosItem::Frame(ChaosFrame {
                fin,
                rsv,
                opcode,
                wrong_mask,
                payload,
            })
        });
    let compressed =
        (any::<bool>(), mostly_utf8(), 1usize..40).prop_map(|(text, data, fragment)| {
            ChaosItem::Compressed {
                text,
                data,
                fragment,
            }
        });
    prop_oneof![3 => frame, 1 => compressed]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..40).prop_map(Step::Feed),
        1 => Just(Step::Feed(usize::MAX)),
        6 => Just(Step::Decode),
        1 => Just(Step::DecodeEof),
        1 => Just(Step::Swap),
        1 => (any::<usize>(), 0usize..60).prop_map(|(a, n)| Step::Replace(a, n)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Step::Mutate(i, b)),
        1 => any::<usize>().prop_map(Step::Truncate),
        1 => any::<usize>().prop_map(Step::Advance),
    ]
}

#[cfg(feature = "deflate")]
fn chaos_deflate_params() -> wscodec::deflate::DeflateParams {
    wscodec::deflate::DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: None,
        client_max_window_bits: None,
        level: 6,
        min_size: 0,
    }
}

/// The frames (fin, rsv, opcode, payload) of `data` sent as one message of
/// fragments of `fragment` bytes, compressed where the feature is on. The
/// encoder is a server (no masks, so the bytes are the same every run); the
/// receiver's window is the same either way.
fn compressed_frames(text: bool, data: &[u8], fragment: usize) -> Vec<(bool, u8, u8, Vec<u8>)> {
    use tokio_util::codec::Encoder;
    let mut encoder = MessageCodec::new(Role::Server);
    #[cfg(feature = "deflate")]
    encoder.set_deflate(&chaos_deflate_params());
    encoder.set_fragment_size(fragment);
    let mut wire = BytesMut::new();
    encoder
        .encode(Message::binary(data.to_vec()), &mut wire)
        .unwrap();
    let mut frames = FrameCodec::new(Role::Client);
    frames.set_allowed_rsv(0b100);
    let mut out = Vec::new();
    while let Some(f) = frames.decode(&mut wire).unwrap() {
        // Sent as binary, labelled as text: text that may be anything.
        let opcode = match f.opcode {
            OpCode::Binary if text => 1,
            op => op as u8,
        };
        out.push((f.fin, f.rsv, opcode, f.payload.to_vec()));
    }
    out
}

/// The wire as a peer of a receiver in `role` would send `items`, with a
/// different masking key for every frame.
fn chaos_wire(items: &[ChaosItem], role: Role) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut n = 0u8;
    let mut key = |wrong: bool| {
        n = n.wrapping_add(1);
        ((role == Role::Server) != wrong).then_some([n, 0x5a, 0xc3, n ^ 0x17])
    };
    for item in items {
        match item {
            ChaosItem::Frame(f) => {
                let k = key(f.wrong_mask);
                wire.extend(wire_frame(f.fin, f.rsv, f.opcode, k, &f.payload));
            }
            ChaosItem::Compressed {
                text,
                data,
                fragment,
            } => {
                for (fin, rsv, opcode, payload) in compressed_frames(*text, data, *fragment) {
                    wire.extend(wire_frame(fin, rsv, opcode, key(false), &payload));
                }
            }
        }
    }
    wire
}

/// Plays `steps` against `codec` over `wire`, then feeds the rest and decodes
/// to the end. Checks each item with `check`, and that once a call fails every
/// later one fails too, with the same error (`Closed` after a `decode_eof`
/// I/O error).
fn play<D>(
    codec: &mut D,
    wire: &[u8],
    steps: &[Step],
    check: impl Fn(&D::Item) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError>
where
    D: Decoder<Error = Error>,
{
    let mut buf = BytesMut::new();
    let mut spare = BytesMut::new();
    let mut pos = 0;
    let mut first_error: Option<(String, bool)> = None;
    let finish = [Step::Feed(usize::MAX), Step::Decode, Step::DecodeEof];
    for step in steps.iter().chain(&finish) {
        match *step {
            Step::Feed(n) => {
                let end = pos + n.min(wire.len() - pos);
                buf.extend_from_slice(&wire[pos..end]);
                pos = end;
            }
            Step::Decode | Step::DecodeEof => {
                for _ in 0..1000 {
                    let result = match step {
                        Step::DecodeEof => codec.decode_eof(&mut buf),
                        _ => codec.decode(&mut buf),
                    };
                    match (&first_error, result) {
                        (Some((first, _)), Ok(item)) => {
                            prop_assert!(
                                false,
                                "Ok({}) after {}",
                                if item.is_some() { "Some" } else { "None" },
                                first
                            );
                        }
                        (None, Ok(Some(item))) => check(&item)?,
                        (None, Ok(None)) => break,
                        (None, Err(e)) => {
                            let replayable = matches!(e, Error::Protocol(_) | Error::Capacity(_));
                            first_error = Some((format!("{e:?}"), replayable));
                            break;
                        }
                        (Some((first, replayable)), Err(e)) => {
                            let expected = if *replayable { first } else { "Closed" };
                            prop_assert_eq!(format!("{e:?}"), expected);
                            break;
                        }
                    }
                }
            }
            Step::Swap => std::mem::swap(&mut buf, &mut spare),
            Step::Replace(start, len) => {
                let start = start % (wire.len() + 1);
                let end = start + len.min(wire.len() - start);
                buf = BytesMut::from(&wire[start..end]);
            }
            Step::Mutate(i, byte) => {
                if !buf.is_empty() {
                    let i = i % buf.len();
                    buf[i] = byte;
                }
            }
            Step::Truncate(n) => buf.truncate(n % (buf.len() + 1)),
            Step::Advance(n) => buf.advance(n % (buf.len() + 1)),
        }
    }
    Ok(())
}

/// A text message (or a close reason) is UTF-8, read through `as_str` too.
fn check_message(message: &Message, limits: &Limits) -> Result<(), TestCaseError> {
    let text = match message {
        Message::Text(t) => t,
        Message::Close(Some(close)) => &close.reason,
        Message::Binary(b) => {
            prop_assert!(b.len() <= limits.max_message_size);
            return Ok(());
        }
        _ => return Ok(()),
    };
    prop_assert!(text.len() <= limits.max_message_size);
    let checked = std::str::from_utf8(text.as_bytes());
    prop_assert!(checked.is_ok(), "text holds {:x?}", &text.as_bytes()[..]);
    prop_assert_eq!(checked.unwrap(), text.as_str());
    Ok(())
}

fn chaos_limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        Just(Limits::default()),
        (1usize..200, 1usize..400).prop_map(|(frame, message)| Limits::default()
            .max_frame_size(frame)
            .max_message_size(message)),
    ]
}

proptest! {
    #[test]
    fn header_parses_back_what_write_wrote(h in header()) {
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = h.write(&mut out);
        prop_assert_eq!(n, h.encoded_len());
        let parsed = FrameHeader::parse(&out[..n]);
        if h.opcode.is_control() && !h.fin {
            prop_assert_eq!(parsed, Err(ProtocolError::FragmentedControlFrame));
        } else if h.opcode.is_control() && h.payload_len > 125 {
            prop_assert_eq!(parsed, Err(ProtocolError::ControlFrameTooLong));
        } else {
            prop_assert_eq!(parsed, Ok(Some((h, n))));
            // Fewer bytes are never enough, and never an error.
            for cut in 0..n {
                prop_assert_eq!(FrameHeader::parse(&out[..cut]), Ok(None));
            }
        }
    }

    #[test]
    fn header_write_uses_the_shortest_length_form(h in header()) {
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = h.write(&mut out);
        let length_bytes = match h.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        prop_assert_eq!(n, 2 + length_bytes + if h.mask.is_some() { 4 } else { 0 });
    }

    #[test]
    fn header_parse_of_any_bytes_is_consistent(
        bytes in vec(any::<u8>(), 0..20),
        extra in vec(any::<u8>(), 0..8),
    ) {
        let result = FrameHeader::parse(&bytes);
        let mut longer = bytes.clone();
        longer.extend_from_slice(&extra);
        match result {
            Ok(Some((h, n))) => {
                prop_assert!(n <= bytes.len() && n <= MAX_HEADER_LEN);
                // More bytes behind the header change nothing.
                prop_assert_eq!(FrameHeader::parse(&longer), Ok(Some((h, n))));
                prop_assert_eq!(FrameHeader::parse(&bytes[..n]), Ok(Some((h, n))));
                prop_assert!(h.payload_len >> 63 == 0);
                prop_assert!(!h.opcode.is_control() || (h.fin && h.payload_len <= 125));
                // Written back, it is the same header, in at most as many bytes
                // (the peer may have used a longer length form than needed).
                let mut out = [0u8; MAX_HEADER_LEN];
                let m = h.write(&mut out);
                prop_assert!(m <= n);
                prop_assert_eq!(FrameHeader::parse(&out[..m]), Ok(Some((h, m))));
            }
            // An error is final: more bytes do not undo it.
            Err(e) => prop_assert_eq!(FrameHeader::parse(&longer), Err(e)),
            // Undecided means some continuation decides.
            Ok(None) => prop_assert!(bytes.len() < MAX_HEADER_LEN),
        }
    }

    #[test]
    fn mask_matches_the_bytewise_definition(
        data in vec(any::<u8>(), 0..200),
        key in any::<[u8; 4]>(),
        offset in any::<usize>(),
    ) {
        let mut fast = data.clone();
        apply_mask(&mut fast, key, offset);
        let slow: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[(offset.wrapping_rem(4) + i) % 4])
            .collect();
        prop_assert_eq!(&fast, &slow);
        // Masking twice is the identity.
        apply_mask(&mut fast, key, offset);
        prop_assert_eq!(fast, data);
    }

    #[test]
    fn mask_in_pieces_with_running_offset_equals_mask_at_once(
        data in vec(any::<u8>(), 0..200),
        key in any::<[u8; 4]>(),
        start in 0usize..1000,
        points in vec(any::<usize>(), 0..8),
    ) {
        let mut whole = data.clone();
        apply_mask(&mut whole, key, start);
        let mut pieces = Vec::new();
        let mut offset = start;
        for mut piece in split_at_points(&data, &points) {
            apply_mask(&mut piece, key, offset);
            offset += piece.len();
            pieces.extend(piece);
        }
        prop_assert_eq!(pieces, whole);
    }

    #[test]
    fn utf8_validator_agrees_with_std_on_any_chunking(
        bytes in mostly_utf8(),
        points in vec(any::<usize>(), 0..8),
    ) {
        let mut v = Utf8Validator::new();
        let mut seen = Vec::new();
        let mut failed = false;
        for piece in split_at_points(&bytes, &points) {
            seen.extend_from_slice(&piece);
            // Fails exactly when the bytes so far can no longer become valid:
            // at the first impossible byte, not later, and never earlier.
            let impossible = std::str::from_utf8(&seen).is_err_and(|e| e.error_len().is_some());
            let fed = v.feed(&piece);
            prop_assert_eq!(fed.is_err(), impossible, "after {:x?}", seen);
            if fed.is_err() {
                failed = true;
                break;
            }
        }
        if !failed {
            prop_assert_eq!(v.finish().is_ok(), std::str::from_utf8(&bytes).is_ok());
        }
    }

    #[test]
    fn decoded_text_reads_back_through_as_str(
        text in any::<String>(),
        fragments in vec(any::<usize>(), 0..6),
        read_points in vec(any::<usize>(), 0..6),
    ) {
        // A client sends the text in fragments; the server's reads cut the
        // wire anywhere; the message read as &str is the text.
        let mut wire = Vec::new();
        let pieces = split_at_points(text.as_bytes(), &fragments);
        let last = pieces.len() - 1;
        for (i, piece) in pieces.iter().enumerate() {
            let opcode = if i == 0 { OpCode::Text } else { OpCode::Continuation };
            let key = [0x5a, 0x01, 0xff, i as u8];
            let h = FrameHeader { fin: i == last, rsv: 0, opcode, mask: Some(key), payload_len: piece.len() as u64 };
            let mut head = [0u8; MAX_HEADER_LEN];
            let n = h.write(&mut head);
            wire.extend_from_slice(&head[..n]);
            let mut payload = piece.clone();
            apply_mask(&mut payload, key, 0);
            wire.extend(payload);
        }
        let mut codec = MessageCodec::new(Role::Server);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in split_at_points(&wire, &read_points) {
            buf.extend_from_slice(&piece);
            while let Some(m) = codec.decode(&mut buf).unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got.len(), 1);
        let Message::Text(t) = &got[0] else { panic!("{:?}", got[0]) };
        prop_assert_eq!(t.as_str(), text.as_str());
        prop_assert_eq!(t.to_string(), text.clone());
        prop_assert_eq!(format!("{t:?}"), format!("{text:?}"));
        prop_assert_eq!(t.chars().count(), text.chars().count());
    }

    #[test]
    fn codecs_fed_chunked_swapped_and_mutated_buffers_stay_sound(
        items in vec(chaos_item(), 0..8),
        steps in vec(step(), 0..40),
        limits in chaos_limits(),
    ) {
        // Issue #12: whatever the caller does to its buffer between calls,
        // every text message is UTF-8, and an error is never followed by
        // anything but the same error.
        for role in [Role::Server, Role::Client] {
            let wire = chaos_wire(&items, role);
            let mut frames = FrameCodec::with_limits(role, &limits);
            play(&mut frames, &wire, &steps, |f| {
                prop_assert!(f.payload.len() <= limits.max_frame_size);
                prop_assert!(!f.opcode.is_control() || (f.fin && f.payload.len() <= 125));
                Ok(())
            })?;
            let mut messages = MessageCodec::with_limits(role, &limits);
            play(&mut messages, &wire, &steps, |m| check_message(m, &limits))?;
            #[cfg(feature = "deflate")]
            {
                let mut deflate = MessageCodec::with_limits(role, &limits);
                deflate.set_deflate(&chaos_deflate_params());
                play(&mut deflate, &wire, &steps, |m| check_message(m, &limits))?;
            }
        }
    }

    #[test]
    fn handshake_builders_never_write_a_head_the_peer_cannot_parse(
        value in prop_oneof![any::<String>(), "[\\x00-\\x7f]{0,6}"],
    ) {
        // Accept::write_response and ClientRequest::write promise to fail,
        // writing nothing, on a header that is not valid HTTP; Reject leaves
        // such headers out. Whatever they do write, httparse must accept.
        const REQUEST: &str = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let limits = Limits::default();
        let (request, _) = Request::parse(REQUEST.as_bytes(), &limits).unwrap();
        let mut out = BytesMut::new();
        if Accept::new().header("X-Value", value.clone()).write_response(&request, &mut out).is_ok() {
            prop_assert!(Response::parse(&out, &limits).is_ok(), "accept wrote {:?}", out);
        }
        let mut out = BytesMut::new();
        Reject::new(403).header("X-Value", value.clone()).write_response(&mut out);
        prop_assert!(Response::parse(&out, &limits).is_ok(), "reject wrote {:?}", out);
        let client = ClientRequest::new("ws://localhost/").unwrap().header("X-Value", value);
        let mut out = BytesMut::new();
        if client.write("dGhlIHNhbXBsZSBub25jZQ==", &mut out).is_ok() {
            prop_assert!(Request::parse(&out, &limits).is_ok(), "client wrote {:?}", out);
        }
    }
}

/// Found by the `handshake_request` fuzz target (a `Reject` header value
/// `u\x02u`): a control character other than CR, LF or NUL passed the header
/// check, and the head written was one httparse refuses.
#[test]
fn refuses_header_values_with_control_characters() {
    const REQUEST: &str = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let limits = Limits::default();
    let (request, _) = Request::parse(REQUEST.as_bytes(), &limits).unwrap();
    for value in ["u\x02u", "\x01", "a\x7fb", "\x1b[31m"] {
        let mut out = BytesMut::new();
        let accepted = Accept::new()
            .header("X-Value", value)
            .write_response(&request, &mut out);
        assert!(accepted.is_err() && out.is_empty(), "accept wrote {out:?}");

        let mut out = BytesMut::new();
        Reject::new(500)
            .header("X-Value", value)
            .write_response(&mut out);
        let (response, _) = Response::parse(&out, &limits).expect("a parseable rejection");
        assert_eq!(response.headers().get("x-value"), None, "left out");

        let mut out = BytesMut::new();
        let client = ClientRequest::new("ws://localhost/")
            .unwrap()
            .header("X-Value", value);
        assert!(client.write("dGhlIHNhbXBsZSBub25jZQ==", &mut out).is_err());
        assert!(out.is_empty());
    }
    // Tabs, spaces and non-ASCII (obs-text) stay allowed.
    let mut out = BytesMut::new();
    Accept::new()
        .header("X-Value", "a\tb é")
        .write_response(&request, &mut out)
        .unwrap();
    assert!(Response::parse(&out, &limits).is_ok());
}
