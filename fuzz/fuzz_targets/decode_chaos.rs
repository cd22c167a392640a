//! `FrameCodec` and `MessageCodec` (both roles, with and without
//! permessage-deflate) fed a buffer that the caller re-chunks, swaps, copies
//! over, mutates, truncates and advances between `decode` calls, going on
//! after errors (as a `Framed` polled again after an error does; issue #12).
//!
//! Checks: every text message and close reason is UTF-8 (read through
//! `Utf8Bytes::as_str`, the crate's one `unsafe` block, so that
//! AddressSanitizer watches it too); no frame over `max_frame_size`, no
//! control frame over 125 bytes or fragmented; and once a call fails, every
//! later `decode` and `decode_eof` fails with the same error (`Closed` after
//! `decode_eof`'s I/O error), whatever buffer it is given.
#![no_main]

mod common;

use bytes::{Buf, BytesMut};
use common::read_text;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use wscodec::deflate::DeflateParams;
use wscodec::{Error, FrameCodec, Limits, MessageCodec, Role};

/// The input: byte 0 flags (bit 0: server role; bits 1-2: 0 `FrameCodec`,
/// 1 `MessageCodec`, 2 with deflate, 3 with deflate and no context takeover;
/// bit 3: the small limits), bytes 1-2 and 3-4 the small frame and message
/// limits (LE), byte 5 the number of steps, then 4 bytes a step (see `Step`),
/// then the bytes on the wire, raw, so that seeds are plain frames.
struct Input<'a> {
    server: bool,
    kind: u8,
    limits: Limits,
    steps: Vec<Step>,
    wire: &'a [u8],
}

/// What the caller does: 4 bytes, an op and its arguments `x` (u16 LE) and `y`.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Appends the next `x + 1` bytes of the wire (all of it for 0xFFFF).
    Feed(usize),
    /// Calls `decode` until `None` or an error, at most `y + 1` times.
    Decode(usize),
    DecodeEof,
    /// Swaps the buffer with a spare one (empty at first).
    Swap,
    /// Replaces the buffer with a copy of `y` bytes of the wire from `x`.
    Replace(usize, usize),
    /// Overwrites the byte at `x` (mod the length) with `y`.
    Mutate(usize, u8),
    Truncate(usize),
    Advance(usize),
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Option<Self> {
        let (head, rest) = data.split_at_checked(6)?;
        let (steps, wire) = rest.split_at_checked(usize::from(head[5]) * 4)?;
        let mut limits = Limits::default();
        if head[0] & 8 != 0 {
            limits = limits
                .max_frame_size(usize::from(u16::from_le_bytes([head[1], head[2]])))
                .max_message_size(usize::from(u16::from_le_bytes([head[3], head[4]])));
        }
        let steps = steps
            .chunks_exact(4)
            .map(|s| {
                let x = usize::from(u16::from_le_bytes([s[1], s[2]]));
                let y = s[3];
                match s[0] % 8 {
                    0 if x == 0xFFFF => Step::Feed(usize::MAX),
                    0 => Step::Feed(x + 1),
                    1 => Step::Decode(usize::from(y) + 1),
                    2 => Step::DecodeEof,
                    3 => Step::Swap,
                    4 => Step::Replace(x, usize::from(y)),
                    5 => Step::Mutate(x, y),
                    6 => Step::Truncate(x),
                    _ => Step::Advance(x),
                }
            })
            .collect();
        Some(Input {
            server: head[0] & 1 != 0,
            kind: (head[0] >> 1) & 3,
            limits,
            steps,
            wire,
        })
    }
}

/// Plays the steps against `codec`, then feeds the rest of the wire and
/// decodes to the end.
fn play<D: Decoder<Error = Error>>(codec: &mut D, input: &Input, check: impl Fn(&D::Item)) {
    let wire = input.wire;
    let mut buf = BytesMut::new();
    let mut spare = BytesMut::new();
    let mut pos = 0;
    // The first error's Debug form, and whether it is returned again as it is.
    let mut first_error: Option<(String, bool)> = None;
    let finish = [Step::Feed(usize::MAX), Step::Decode(1000), Step::DecodeEof];
    for &step in input.steps.iter().chain(&finish) {
        match step {
            Step::Feed(n) => {
                let end = pos + n.min(wire.len() - pos);
                buf.extend_from_slice(&wire[pos..end]);
                pos = end;
            }
            Step::Decode(_) | Step::DecodeEof => {
                let times = match step {
                    Step::Decode(n) => n,
                    _ => 1,
                };
                for _ in 0..times {
                    let result = match step {
                        Step::DecodeEof => codec.decode_eof(&mut buf),
                        _ => codec.decode(&mut buf),
                    };
                    match (&first_error, result) {
                        (Some((first, _)), Ok(item)) => {
                            panic!("Ok(is_some: {}) after {first}", item.is_some())
                        }
                        (None, Ok(Some(item))) => check(&item),
                        (None, Ok(None)) => break,
                        (None, Err(e)) => {
                            let replayed = matches!(e, Error::Protocol(_) | Error::Capacity(_));
                            first_error = Some((format!("{e:?}"), replayed));
                            break;
                        }
                        (Some((first, replayed)), Err(e)) => {
                            let expected = if *replayed { first.as_str() } else { "Closed" };
                            assert_eq!(format!("{e:?}"), expected, "a later error");
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
    let limits = input.limits.clone();
    if input.kind == 0 {
        let mut codec = FrameCodec::with_limits(role, &limits);
        play(&mut codec, &input, |frame| {
            assert!(
                frame.payload.len() <= limits.max_frame_size,
                "frame over the limit"
            );
            if frame.opcode.is_control() {
                assert!(frame.fin && frame.payload.len() <= 125);
            }
        });
        return;
    }
    let mut codec = MessageCodec::with_limits(role, &limits);
    if input.kind >= 2 {
        let no_takeover = input.kind == 3;
        codec.set_deflate(&DeflateParams {
            server_no_context_takeover: no_takeover,
            client_no_context_takeover: no_takeover,
            server_max_window_bits: None,
            client_max_window_bits: None,
            level: 6,
            min_size: 0,
        });
    }
    play(&mut codec, &input, |message| {
        read_text(message);
        if !message.is_control() {
            assert!(
                message.len() <= limits.max_message_size,
                "message over the limit"
            );
        }
    });
});
