//! Message assembly: fragments (§5.4) with control frames between them,
//! text checked as it arrives (§8.1), the message size limit, and the
//! per-message transform of a negotiated extension. It sees frames from the
//! frame codec; it never parses bytes itself.

use bytes::{Bytes, BytesMut};

use super::frame_codec::FrameObserver;
use crate::error::{CapacityError, Error, ProtocolError};
use crate::extension::Transform;
use crate::frame::{Frame, FrameHeader, OpCode};
use crate::message::{CloseCode, CloseFrame, Message, Utf8Bytes};
use crate::utf8::Utf8Validator;

/// A data message whose fragments are still arriving.
#[derive(Debug)]
struct PartialMessage {
    opcode: OpCode,
    /// The fragments so far, of an uncompressed message.
    data: BytesMut,
    /// What the fragments inflated to so far, of a compressed message.
    inflated: Option<Vec<u8>>,
}

/// Reassembly state: the message in progress, the UTF-8 validator for text, and
/// the size limit.
#[derive(Debug)]
pub(super) struct Assembler {
    max_message_size: usize,
    partial: Option<PartialMessage>,
    validator: Utf8Validator,
    /// Whether the frame now arriving carries text to validate.
    frame_is_text: bool,
    /// Whether the message now arriving is compressed (RSV1 on its first frame).
    compressed: bool,
    /// The per-message transform of a negotiated extension (permessage-deflate).
    pub(super) transform: Option<Transform>,
}

/// Inflates one frame of a compressed message onto `out`, validating what comes
/// out if it is text.
fn inflate_frame(
    transform: &mut Option<Transform>,
    validator: &mut Utf8Validator,
    is_text: bool,
    frame: &Frame,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    // The frame codec lets an RSV bit through only once an extension claims it.
    let Some(transform) = transform.as_mut() else {
        return Err(ProtocolError::ReservedBitsSet.into());
    };
    let before = out.len();
    transform.decode(&frame.payload, frame.fin, out, limit)?;
    if is_text {
        validator
            .feed(&out[before..])
            .map_err(|_| ProtocolError::InvalidUtf8)?;
    }
    Ok(())
}

/// Parses a received close payload (§5.5.1, §7.4): empty, or a sendable
/// 2-byte code followed by UTF-8. The decoder's job, so that `message` knows
/// nothing of protocol errors.
pub(super) fn parse_close(payload: Bytes) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(ProtocolError::InvalidClosePayload),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_sendable() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason =
                Utf8Bytes::try_from(payload.slice(2..)).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Some(CloseFrame::new(code, reason)))
        }
    }
}

impl Assembler {
    pub(super) fn new(max_message_size: usize) -> Self {
        Assembler {
            max_message_size,
            partial: None,
            validator: Utf8Validator::new(),
            frame_is_text: false,
            compressed: false,
            transform: None,
        }
    }

    /// Drops the message in progress, after an error: nothing of it is kept.
    pub(super) fn abandon(&mut self) {
        self.partial = None;
        self.validator = Utf8Validator::new();
        self.frame_is_text = false;
        self.compressed = false;
    }

    fn check_size(&self, size: u64) -> Result<(), Error> {
        if size > self.max_message_size as u64 {
            return Err(CapacityError::MessageTooLarge {
                size,
                limit: self.max_message_size,
            }
            .into());
        }
        Ok(())
    }

    /// The message a finished text or binary payload makes; text must have
    /// ended on a whole code point.
    fn finish(&self, opcode: OpCode, data: Bytes) -> Result<Message, Error> {
        if opcode != OpCode::Text {
            return Ok(Message::Binary(data));
        }
        self.validator
            .finish()
            .map_err(|_| ProtocolError::InvalidUtf8)?;
        Ok(Message::Text(Utf8Bytes::from_validated(data)))
    }

    /// Turns a complete frame into a message, or buffers it as a fragment.
    ///
    /// Inlined for the common frame, a whole uncompressed data message, so
    /// the message goes back to the caller in registers: returned through
    /// memory from a call, its fields were stored narrow and reloaded wide,
    /// and the stalled reloads were the top samples of the decode benchmark.
    #[inline]
    pub(super) fn assemble(&mut self, frame: Frame) -> Result<Option<Message>, Error> {
        match frame.opcode {
            OpCode::Text | OpCode::Binary if frame.fin && !self.compressed => {
                self.finish(frame.opcode, frame.payload).map(Some)
            }
            _ => self.assemble_other(frame),
        }
    }

    #[inline(never)]
    fn assemble_other(&mut self, frame: Frame) -> Result<Option<Message>, Error> {
        match frame.opcode {
            OpCode::Ping => Ok(Some(Message::Ping(frame.payload))),
            OpCode::Pong => Ok(Some(Message::Pong(frame.payload))),
            OpCode::Close => Ok(Some(Message::Close(parse_close(frame.payload)?))),
            OpCode::Text | OpCode::Binary if self.compressed => {
                let is_text = frame.opcode == OpCode::Text;
                let mut out = Vec::new();
                let limit = self.max_message_size;
                inflate_frame(
                    &mut self.transform,
                    &mut self.validator,
                    is_text,
                    &frame,
                    &mut out,
                    limit,
                )?;
                if !frame.fin {
                    self.partial = Some(PartialMessage {
                        opcode: frame.opcode,
                        data: BytesMut::new(),
                        inflated: Some(out),
                    });
                    return Ok(None);
                }
                self.finish(frame.opcode, Bytes::from(out)).map(Some)
            }
            // The first fragment: `assemble` took the final uncompressed ones.
            OpCode::Text | OpCode::Binary => {
                debug_assert!(!frame.fin);
                self.partial = Some(PartialMessage {
                    opcode: frame.opcode,
                    data: BytesMut::from(&frame.payload[..]),
                    inflated: None,
                });
                Ok(None)
            }
            OpCode::Continuation => {
                // on_header guarantees a message is in progress.
                let Some(partial) = self.partial.as_mut() else {
                    return Err(ProtocolError::UnexpectedContinuation.into());
                };
                let is_text = partial.opcode == OpCode::Text;
                match &mut partial.inflated {
                    Some(out) => {
                        let limit = self.max_message_size;
                        inflate_frame(
                            &mut self.transform,
                            &mut self.validator,
                            is_text,
                            &frame,
                            out,
                            limit,
                        )?
                    }
                    None => partial.data.extend_from_slice(&frame.payload),
                }
                if !frame.fin {
                    return Ok(None);
                }
                let PartialMessage {
                    opcode,
                    data,
                    inflated,
                } = self.partial.take().expect("checked just above");
                let data = match inflated {
                    Some(out) => Bytes::from(out),
                    None => data.freeze(),
                };
                self.finish(opcode, data).map(Some)
            }
        }
    }
}

impl FrameObserver for Assembler {
    fn on_header(&mut self, header: &FrameHeader) -> Result<(), Error> {
        match header.opcode {
            OpCode::Continuation => {
                // RFC 7692 §6.1: RSV1 marks only a message's first frame.
                if header.rsv != 0 {
                    return Err(ProtocolError::ReservedBitsSet.into());
                }
                let Some(partial) = &self.partial else {
                    return Err(ProtocolError::UnexpectedContinuation.into());
                };
                // A compressed message is bounded as it inflates.
                if partial.inflated.is_none() {
                    self.check_size(partial.data.len() as u64 + header.payload_len)?;
                }
                self.frame_is_text = partial.opcode == OpCode::Text && partial.inflated.is_none();
            }
            OpCode::Text | OpCode::Binary => {
                if self.partial.is_some() {
                    return Err(ProtocolError::ExpectedContinuation.into());
                }
                // RFC 7692 §6: the transform's RSV bit on a message's first
                // frame marks it transformed (compressed).
                self.compressed = self
                    .transform
                    .as_ref()
                    .is_some_and(|t| header.rsv & t.rsv() != 0);
                if !self.compressed {
                    self.check_size(header.payload_len)?;
                }
                // Compressed text is validated as it inflates, not as it arrives.
                self.frame_is_text = header.opcode == OpCode::Text && !self.compressed;
                if header.opcode == OpCode::Text {
                    self.validator = Utf8Validator::new();
                }
            }
            // Control frames may sit between fragments (§5.4) and leave the
            // message in progress alone; they are never compressed.
            OpCode::Close | OpCode::Ping | OpCode::Pong => {
                if header.rsv != 0 {
                    return Err(ProtocolError::ReservedBitsSet.into());
                }
                self.frame_is_text = false;
            }
        }
        Ok(())
    }

    /// Text is checked as it arrives, to fail at the first impossible byte
    /// (RFC 6455 §8.1; Autobahn 6.4.x).
    fn looks_ahead(&self) -> bool {
        self.frame_is_text
    }

    fn on_payload(&mut self, _: &FrameHeader, chunk: &[u8]) -> Result<(), Error> {
        if self.frame_is_text {
            self.validator
                .feed(chunk)
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(())
    }
}
