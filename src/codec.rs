//! `tokio_util::codec` implementations: [`FrameCodec`] for frames, [`MessageCodec`]
//! for whole messages.
//!
//! This module owns the per-role rules (masking, §5.1; RSV bits, §5.2), the frame
//! and message size limits, fragment reassembly (§5.4) and UTF-8 checking of text.
//! It never does I/O: wrap a transport in [`Framed`](tokio_util::codec::Framed) to get
//! a `Stream` + `Sink`. It does not answer pings or run the closing handshake either;
//! [`WebSocket`](crate::WebSocket) does that on top of these codecs.
//!
//! Decoding is zero-copy: a frame that is whole in the read buffer is unmasked in
//! place and split off as [`Bytes`]. Text is checked as it arrives, before its
//! frame is complete, so invalid UTF-8 in a long frame fails the connection at the
//! first impossible byte: [`MessageCodec`] takes the bytes of such a frame out of
//! the read buffer into its own as they arrive (without copying them while the
//! buffer keeps its allocation), unmasking and checking each byte once, in the
//! call that takes it, and so returns exactly the bytes it checked. Every other
//! frame stays in the read buffer, untouched, until it is complete. Nothing
//! `decode` saw in the caller's buffer in one call is relied on in the next.
//!
//! ```
//! use futures::{SinkExt, StreamExt};
//! use tokio_util::codec::Framed;
//! use wscodec::{Message, MessageCodec, Role};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wscodec::Error> {
//! let (client_io, server_io) = tokio::io::duplex(1024);
//! let mut client = Framed::new(client_io, MessageCodec::new(Role::Client));
//! let mut server = Framed::new(server_io, MessageCodec::new(Role::Server));
//! client.send(Message::text("hi")).await?;
//! assert_eq!(server.next().await.unwrap()?, Message::text("hi"));
//! # Ok(())
//! # }
//! ```

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::config::{Limits, Role};
use crate::error::{CapacityError, Error, ProtocolError};
use crate::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::mask::apply_mask;
use crate::message::{CloseFrame, Message, Utf8Bytes};
use crate::utf8::Utf8Validator;

/// The permessage-deflate state, when the feature is on.
#[cfg(feature = "deflate")]
pub(crate) use crate::deflate::Deflate as Compressor;

/// Stands in for the permessage-deflate state when the feature is off: a type
/// with no values, so every path that would use it is statically dead.
#[cfg(not(feature = "deflate"))]
#[derive(Debug)]
pub(crate) enum Compressor {}

#[cfg(not(feature = "deflate"))]
impl Compressor {
    fn wants(&self, _: usize) -> bool {
        match *self {}
    }
    fn compress(&mut self, _: &[u8]) -> Result<Bytes, Error> {
        match *self {}
    }
    fn decompress(&mut self, _: &[u8], _: bool, _: &mut Vec<u8>, _: usize) -> Result<(), Error> {
        match *self {}
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

/// Hooks that see a frame while it arrives; how [`MessageCodec`] checks message
/// size and UTF-8 before a frame is complete.
pub(crate) trait FrameObserver {
    /// A header passed the frame-level checks. Called again on each `decode`
    /// while the frame is incomplete and still in the caller's buffer, so it
    /// must give the same answer for the same header.
    fn on_header(&mut self, header: &FrameHeader) -> Result<(), Error>;
    /// Whether the payload of the frame `on_header` last saw is to be shown to
    /// `on_payload` as it arrives, rather than once it is complete. Such a frame
    /// is taken out of the caller's buffer as it arrives.
    fn looks_ahead(&self) -> bool;
    /// The next unmasked piece of the payload; together the pieces are the whole
    /// payload, in order, each byte once. A piece is shown only in a call that
    /// then returns the frame or moves the piece into the codec's own buffer, so
    /// what was shown is what the frame holds.
    fn on_payload(&mut self, header: &FrameHeader, chunk: &[u8]) -> Result<(), Error>;
}

impl FrameObserver for () {
    fn on_header(&mut self, _: &FrameHeader) -> Result<(), Error> {
        Ok(())
    }
    fn looks_ahead(&self) -> bool {
        false
    }
    fn on_payload(&mut self, _: &FrameHeader, _: &[u8]) -> Result<(), Error> {
        Ok(())
    }
}

/// A frame taken out of the caller's buffer while it arrives (one the observer
/// looks ahead into): its header, and the payload so far, unmasked and shown to
/// the observer. Only the codec can reach these bytes, so what the observer
/// checked is what the frame will hold.
#[derive(Debug, Clone)]
struct TakenFrame {
    header: FrameHeader,
    payload: BytesMut,
}

/// The first error `decode` returned, kept to return again: decoding never
/// goes on after an error.
#[derive(Debug, Clone, Copy)]
enum Failure {
    Protocol(ProtocolError),
    Capacity(CapacityError),
    /// Any other error (only `decode_eof`'s): later calls say [`Error::Closed`].
    Other,
}

impl Failure {
    fn of(error: &Error) -> Self {
        match error {
            Error::Protocol(e) => Failure::Protocol(*e),
            Error::Capacity(e) => Failure::Capacity(*e),
            _ => Failure::Other,
        }
    }

    fn error(self) -> Error {
        match self {
            Failure::Protocol(e) => e.into(),
            Failure::Capacity(e) => e.into(),
            Failure::Other => Error::Closed,
        }
    }
}

/// What [`Decoder::decode_eof`] fails with when the stream ends inside a frame,
/// the same as tokio-util's default.
fn bytes_remaining() -> Error {
    io::Error::other("bytes remaining on stream").into()
}

/// Decodes and encodes single frames, enforcing the per-role masking rules and the
/// frame size limit.
///
/// An error from `decode` is final, and the codec enforces it: every later call
/// fails with the same error, whatever buffer it is given. Fail the connection
/// (RFC 6455 §7.1.7) with the error's [`close_code`](crate::Error::close_code).
///
/// Between calls the codec keeps nothing that refers into the caller's buffer:
/// a frame that is not complete yet is left there as it is (`decode` returns
/// `None` without touching the buffer) and parsed again on the next call, and
/// its payload is unmasked in the call that returns it.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    role: Role,
    max_frame_size: usize,
    /// RSV bits an extension has claimed; any other set bit fails the connection.
    allowed_rsv: u8,
    /// The frame arriving into the codec's own buffer, if the observer looks
    /// ahead into it.
    taken: Option<TakenFrame>,
    failure: Option<Failure>,
}

impl FrameCodec {
    /// A codec for `role` with the default limits.
    pub fn new(role: Role) -> Self {
        Self::with_limits(role, &Limits::default())
    }

    /// A codec for `role` with `limits.max_frame_size`.
    pub fn with_limits(role: Role, limits: &Limits) -> Self {
        FrameCodec {
            role,
            max_frame_size: limits.max_frame_size,
            allowed_rsv: 0,
            taken: None,
            failure: None,
        }
    }

    /// The role this codec plays.
    pub fn role(&self) -> Role {
        self.role
    }

    fn check_header(&self, header: &FrameHeader) -> Result<(), Error> {
        if header.rsv & !self.allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBitsSet.into());
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrameFromClient.into()),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrameFromServer.into()),
            _ => {}
        }
        if header.payload_len > self.max_frame_size as u64 {
            return Err(CapacityError::FrameTooLarge {
                size: header.payload_len,
                limit: self.max_frame_size,
            }
            .into());
        }
        Ok(())
    }

    /// Decodes one frame from the front of `src`, showing it to `observer` as it
    /// arrives. Nothing is reserved for a declared payload: the buffer grows only
    /// with bytes that actually arrive. After an error, fails with it again.
    pub(crate) fn decode_observed<O: FrameObserver>(
        &mut self,
        src: &mut BytesMut,
        observer: &mut O,
    ) -> Result<Option<Frame>, Error> {
        if let Some(failure) = self.failure {
            return Err(failure.error());
        }
        match self.decode_frame(src, observer) {
            Ok(frame) => Ok(frame),
            Err(e) => {
                self.fail(&e);
                Err(e)
            }
        }
    }

    /// Makes `error` final: every later `decode` fails with it, and the frame
    /// taken so far is dropped.
    fn fail(&mut self, error: &Error) {
        self.failure.get_or_insert(Failure::of(error));
        self.taken = None;
    }

    /// Whether part of a frame is in the codec's own buffer.
    fn holds_partial_frame(&self) -> bool {
        self.taken.is_some()
    }

    /// A frame: whole in `src` (unmasked in place and split off), still
    /// arriving and left in `src` untouched, or still arriving and taken out
    /// of it because the observer looks at it as it arrives.
    fn decode_frame<O: FrameObserver>(
        &mut self,
        src: &mut BytesMut,
        observer: &mut O,
    ) -> Result<Option<Frame>, Error> {
        if self.taken.is_some() {
            return self.take_more(src, observer);
        }
        let Some((header, header_len)) = FrameHeader::parse(src)? else {
            return Ok(None);
        };
        self.check_header(&header)?;
        observer.on_header(&header)?;
        // check_header bounded the length by max_frame_size, a usize.
        let len = header.payload_len as usize;
        let start = header_len;
        let available = (src.len() - start).min(len);
        if available < len && !observer.looks_ahead() {
            // Left as it is, and parsed again on the next call.
            return Ok(None);
        }
        // Unmasked and shown in place: this call returns the frame or takes
        // these bytes out of `src`.
        let chunk = &mut src[start..start + available];
        if let Some(key) = header.mask {
            apply_mask(chunk, key, 0);
        }
        observer.on_payload(&header, chunk)?;
        if available < len {
            self.start_taking(header, start, src);
            return Ok(None);
        }
        src.advance(start);
        Ok(Some(Frame {
            fin: header.fin,
            rsv: header.rsv,
            opcode: header.opcode,
            payload: src.split_to(len).freeze(),
        }))
    }

    /// Takes the frame (its header and the payload so far, unmasked and
    /// shown to the observer in place just now; none of it a later frame's)
    /// out of `src` into a buffer of our own, without copying: the caller can
    /// no longer change it. The rest follows in `take_more`.
    #[cold]
    #[inline(never)]
    fn start_taking(&mut self, header: FrameHeader, header_len: usize, src: &mut BytesMut) {
        drop(src.split_to(header_len));
        let payload = src.split();
        self.taken = Some(TakenFrame { header, payload });
    }

    /// Moves the next bytes of the frame being taken out of `src` into its
    /// payload, unmasking them and showing them to the observer on the way;
    /// the frame once it is complete.
    #[cold]
    #[inline(never)]
    fn take_more<O: FrameObserver>(
        &mut self,
        src: &mut BytesMut,
        observer: &mut O,
    ) -> Result<Option<Frame>, Error> {
        let Some(taken) = self.taken.as_mut() else {
            return Ok(None);
        };
        let have = taken.payload.len();
        let missing = taken.header.payload_len as usize - have;
        let mut chunk = src.split_to(missing.min(src.len()));
        if let Some(key) = taken.header.mask {
            apply_mask(&mut chunk, key, have);
        }
        observer.on_payload(&taken.header, &chunk)?;
        // No copy while `src` still has the allocation behind the payload;
        // else a copy, into a buffer that grows by doubling.
        taken.payload.unsplit(chunk);
        if (taken.payload.len() as u64) < taken.header.payload_len {
            return Ok(None);
        }
        let TakenFrame { header, payload } = self.taken.take().expect("checked above");
        Ok(Some(Frame {
            fin: header.fin,
            rsv: header.rsv,
            opcode: header.opcode,
            payload: payload.freeze(),
        }))
    }

    /// Lets an extension use RSV bits (`0b100` = RSV1); for extension authors.
    pub fn set_allowed_rsv(&mut self, rsv: u8) {
        self.allowed_rsv = rsv & 0x7;
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Error> {
        self.decode_observed(src, &mut ())
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Error> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => {
                let e = bytes_remaining();
                self.fail(&e);
                Err(e)
            }
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = Error;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), Error> {
        if frame.opcode.is_control() && (!frame.fin || frame.payload.len() > MAX_CONTROL_PAYLOAD) {
            return Err(ProtocolError::ControlFrameTooLong.into());
        }
        encode_frame(
            self.role,
            frame.fin,
            frame.rsv,
            frame.opcode,
            &frame.payload,
            dst,
        );
        Ok(())
    }
}

/// Payloads at least this long are sent without copying where the sink can take
/// shared bytes (server role: no mask to apply). Below it, one copy into the
/// write buffer is cheaper than two more I/O slices per message (measured with
/// benches/echo: at 1 KiB, copying was faster).
pub(crate) const SHARE_MIN: usize = 8 * 1024;

/// Where encoded frames go: a buffer for headers and copied payloads, and, for a
/// writer that sends shared bytes without copying them (vectored writes),
/// somewhere to queue those.
pub(crate) trait FrameSink {
    /// The buffer headers and copied payloads are appended to.
    fn buf(&mut self) -> &mut BytesMut;

    /// Queues `payload` to go out right after what `buf` holds now, without
    /// copying it; `false` if this sink cannot, and the caller copies.
    fn try_share(&mut self, payload: &Bytes) -> bool {
        let _ = payload;
        false
    }
}

impl FrameSink for BytesMut {
    fn buf(&mut self) -> &mut BytesMut {
        self
    }
}

/// Writes a frame header for a payload of `payload_len` bytes, returning the
/// masking key it announced: a fresh random one when we are the client (§5.3).
fn put_header(
    role: Role,
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    payload_len: usize,
    dst: &mut BytesMut,
) -> Option<[u8; 4]> {
    let mask = match role {
        Role::Client => Some(rand::random::<[u8; 4]>()),
        Role::Server => None,
    };
    let header = FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len: payload_len as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let head_len = header.write(&mut head);
    dst.reserve(head_len + payload_len);
    dst.put_slice(&head[..head_len]);
    mask
}

/// Appends one frame to `dst`: header, then the payload, masked when we are the
/// client.
pub(crate) fn encode_frame(
    role: Role,
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    payload: &[u8],
    dst: &mut BytesMut,
) {
    encode_frame_parts(role, fin, rsv, opcode, &[payload], dst);
}

/// Like [`encode_frame`] for a payload given in pieces (a close code and reason).
pub(crate) fn encode_frame_parts(
    role: Role,
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    parts: &[&[u8]],
    dst: &mut BytesMut,
) {
    let payload_len: usize = parts.iter().map(|p| p.len()).sum();
    let mask = put_header(role, fin, rsv, opcode, payload_len, dst);
    let start = dst.len();
    for part in parts {
        dst.put_slice(part);
    }
    if let Some(key) = mask {
        apply_mask(&mut dst[start..], key, 0);
    }
}

/// Appends a data frame, sharing a large unmasked payload instead of copying it
/// when the sink can.
fn put_data_frame(
    role: Role,
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    payload: &Bytes,
    dst: &mut impl FrameSink,
) {
    if role == Role::Server && payload.len() >= SHARE_MIN {
        put_header(role, fin, rsv, opcode, payload.len(), dst.buf());
        if !dst.try_share(payload) {
            dst.buf().put_slice(payload);
        }
    } else {
        encode_frame(role, fin, rsv, opcode, payload, dst.buf());
    }
}

/// Appends `message` to `dst`: a control message as one frame, a data message
/// as frames of at most `fragment_size` payload bytes (§5.4). Fails on a control
/// message whose payload is over 125 bytes (§5.5) or a close code that may not be
/// sent (§7.4).
pub(crate) fn encode_message(
    role: Role,
    message: &Message,
    fragment_size: usize,
    compressor: Option<&mut Compressor>,
    dst: &mut impl FrameSink,
) -> Result<(), Error> {
    let (opcode, payload): (OpCode, &Bytes) = match message {
        Message::Text(t) => (OpCode::Text, t.as_bytes()),
        Message::Binary(b) => (OpCode::Binary, b),
        Message::Ping(b) | Message::Pong(b) => {
            if b.len() > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::ControlFrameTooLong.into());
            }
            let opcode = if matches!(message, Message::Ping(_)) {
                OpCode::Ping
            } else {
                OpCode::Pong
            };
            encode_frame(role, true, 0, opcode, b, dst.buf());
            return Ok(());
        }
        Message::Close(None) => {
            encode_frame(role, true, 0, OpCode::Close, &[], dst.buf());
            return Ok(());
        }
        Message::Close(Some(close)) => {
            if 2 + close.reason.len() > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::ControlFrameTooLong.into());
            }
            if !close.code.is_sendable() {
                return Err(ProtocolError::InvalidCloseCode(close.code.0).into());
            }
            let code = close.code.0.to_be_bytes();
            encode_frame_parts(
                role,
                true,
                0,
                OpCode::Close,
                &[&code, close.reason.as_bytes()],
                dst.buf(),
            );
            return Ok(());
        }
    };
    // RFC 7692 §6: a compressed message has RSV1 on its first frame only.
    let compressed;
    let (payload, rsv) = match compressor {
        Some(c) if c.wants(payload.len()) => {
            compressed = c.compress(payload)?;
            (&compressed, 0b100)
        }
        _ => (payload, 0),
    };
    let fragment_size = fragment_size.max(1);
    if payload.len() <= fragment_size {
        put_data_frame(role, true, rsv, opcode, payload, dst);
        return Ok(());
    }
    let mut start = 0;
    while start < payload.len() {
        let end = (start + fragment_size).min(payload.len());
        let (op, rsv) = if start == 0 {
            (opcode, rsv)
        } else {
            (OpCode::Continuation, 0)
        };
        let piece = payload.slice(start..end);
        put_data_frame(role, end == payload.len(), rsv, op, &piece, dst);
        start = end;
    }
    Ok(())
}

/// A message encoded once as a server frame, to send the same bytes to many
/// connections without copying the payload for each (a chat room, a ticker).
///
/// Sent through a server-role [`WebSocket`](crate::WebSocket), the encoded bytes
/// are queued as they are, shared, whatever the payload's size. A client must
/// mask every frame with its own key, so a client-role `WebSocket` encodes the
/// message anew.
///
/// ```
/// use wscodec::{Message, PreparedMessage};
/// let prepared = PreparedMessage::new(Message::text("to everyone"))?;
/// assert_eq!(prepared.encoded().len(), 2 + 11);
/// let for_each_recipient = prepared.clone(); // a reference count, not a copy
/// # Ok::<(), wscodec::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedMessage {
    message: Message,
    encoded: Bytes,
}

impl PreparedMessage {
    /// Encodes `message` as one unmasked frame. Fails like sending would: a
    /// control message over 125 bytes, or an unsendable close code.
    pub fn new(message: Message) -> Result<Self, Error> {
        let mut buf = BytesMut::new();
        encode_message(Role::Server, &message, usize::MAX, None, &mut buf)?;
        Ok(PreparedMessage {
            message,
            encoded: buf.freeze(),
        })
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The frame as a server sends it.
    pub fn encoded(&self) -> &Bytes {
        &self.encoded
    }
}

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
struct Assembler {
    max_message_size: usize,
    partial: Option<PartialMessage>,
    validator: Utf8Validator,
    /// Whether the frame now arriving carries text to validate.
    frame_is_text: bool,
    /// Whether the message now arriving is compressed (RSV1 on its first frame).
    compressed: bool,
    /// The permessage-deflate state, once negotiated.
    deflate: Option<Compressor>,
}

/// Inflates one frame of a compressed message onto `out`, validating what comes
/// out if it is text.
fn inflate_frame(
    deflate: &mut Option<Compressor>,
    validator: &mut Utf8Validator,
    is_text: bool,
    frame: &Frame,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    // The frame codec lets RSV1 through only once deflate is negotiated.
    let Some(deflate) = deflate.as_mut() else {
        return Err(ProtocolError::ReservedBitsSet.into());
    };
    let before = out.len();
    deflate.decompress(&frame.payload, frame.fin, out, limit)?;
    if is_text {
        validator
            .feed(&out[before..])
            .map_err(|_| ProtocolError::InvalidUtf8)?;
    }
    Ok(())
}

impl Assembler {
    /// Drops the message in progress, after an error: nothing of it is kept.
    fn abandon(&mut self) {
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
    fn assemble(&mut self, frame: Frame) -> Result<Option<Message>, Error> {
        match frame.opcode {
            OpCode::Ping => Ok(Some(Message::Ping(frame.payload))),
            OpCode::Pong => Ok(Some(Message::Pong(frame.payload))),
            OpCode::Close => Ok(Some(Message::Close(CloseFrame::parse(frame.payload)?))),
            OpCode::Text | OpCode::Binary if self.compressed => {
                let is_text = frame.opcode == OpCode::Text;
                let mut out = Vec::new();
                let limit = self.max_message_size;
                inflate_frame(
                    &mut self.deflate,
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
            OpCode::Text | OpCode::Binary if frame.fin => {
                self.finish(frame.opcode, frame.payload).map(Some)
            }
            OpCode::Text | OpCode::Binary => {
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
                            &mut self.deflate,
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
                self.compressed = header.rsv & 0b100 != 0;
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

/// Decodes whole messages (reassembling fragments, validating text) and encodes
/// each message as one frame.
///
/// An error from `decode` is final, and the codec enforces it: the message in
/// progress is dropped, and every later call fails with the same error,
/// whatever buffer it is given (a [`Framed`](tokio_util::codec::Framed) polled
/// again after an error decodes again). Send a Close with the error's
/// [`close_code`](crate::Error::close_code) and drop the connection, as
/// [`WebSocket`](crate::WebSocket) does; encoding still works for that.
///
/// A text frame that is not complete in the buffer is taken out of it into the
/// codec as it arrives: each byte is unmasked and checked once, in the call
/// that takes it, and the caller cannot change it after that, so the text
/// returned is exactly what was checked; `decode` then returns `None` having
/// consumed those bytes. Every other frame is left in the buffer, untouched,
/// until it is complete. `decode_eof` fails on a stream that ends inside a
/// frame either way.
#[derive(Debug)]
pub struct MessageCodec {
    frames: FrameCodec,
    assembler: Assembler,
    fragment_size: usize,
}

impl MessageCodec {
    /// A codec for `role` with the default limits.
    pub fn new(role: Role) -> Self {
        Self::with_limits(role, &Limits::default())
    }

    /// A codec for `role` with the given frame and message size limits.
    pub fn with_limits(role: Role, limits: &Limits) -> Self {
        MessageCodec {
            frames: FrameCodec::with_limits(role, limits),
            assembler: Assembler {
                max_message_size: limits.max_message_size,
                partial: None,
                validator: Utf8Validator::new(),
                frame_is_text: false,
                compressed: false,
                deflate: None,
            },
            fragment_size: usize::MAX,
        }
    }

    /// Turns on permessage-deflate with the parameters a handshake agreed:
    /// RSV1 then marks compressed messages, in both directions.
    #[cfg(feature = "deflate")]
    pub fn set_deflate(&mut self, params: &crate::deflate::DeflateParams) {
        self.frames.set_allowed_rsv(0b100);
        let is_server = self.role() == Role::Server;
        self.assembler.deflate = Some(Compressor::new(params, is_server));
    }

    /// The compressor, for encoders outside this type.
    pub(crate) fn compressor(&mut self) -> Option<&mut Compressor> {
        self.assembler.deflate.as_mut()
    }

    /// Sends data messages longer than `bytes` as several frames of at most
    /// `bytes` payload each. Default: one frame per message.
    pub fn set_fragment_size(&mut self, bytes: usize) {
        self.fragment_size = bytes.max(1);
    }

    /// The role this codec plays.
    pub fn role(&self) -> Role {
        self.frames.role
    }
}

impl Decoder for MessageCodec {
    type Item = Message;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, Error> {
        match self.decode_message(src) {
            Ok(message) => Ok(message),
            Err(e) => {
                self.fail(&e);
                Err(e)
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, Error> {
        match self.decode(src)? {
            Some(message) => Ok(Some(message)),
            None if src.is_empty() && !self.frames.holds_partial_frame() => Ok(None),
            None => {
                let e = bytes_remaining();
                self.fail(&e);
                Err(e)
            }
        }
    }
}

impl MessageCodec {
    fn decode_message(&mut self, src: &mut BytesMut) -> Result<Option<Message>, Error> {
        loop {
            // Fails again with the first error, if there was one.
            let Some(frame) = self.frames.decode_observed(src, &mut self.assembler)? else {
                return Ok(None);
            };
            if let Some(message) = self.assembler.assemble(frame)? {
                return Ok(Some(message));
            }
        }
    }

    /// Makes `error` final, for the frames and the message in progress alike.
    fn fail(&mut self, error: &Error) {
        self.frames.fail(error);
        self.assembler.abandon();
    }
}

impl Encoder<Message> for MessageCodec {
    type Error = Error;

    fn encode(&mut self, message: Message, dst: &mut BytesMut) -> Result<(), Error> {
        encode_message(
            self.frames.role,
            &message,
            self.fragment_size,
            self.assembler.deflate.as_mut(),
            dst,
        )
    }
}

impl Encoder<&Message> for MessageCodec {
    type Error = Error;

    fn encode(&mut self, message: &Message, dst: &mut BytesMut) -> Result<(), Error> {
        encode_message(
            self.frames.role,
            message,
            self.fragment_size,
            self.assembler.deflate.as_mut(),
            dst,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::CloseCode;

    /// A frame as a client would send it (masked) or a server (unmasked).
    fn wire(role: Role, fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut head = [0u8; MAX_HEADER_LEN];
        let mask = (role == Role::Client).then_some([0xA1, 0xB2, 0xC3, 0xD4]);
        let header = FrameHeader {
            fin,
            rsv,
            opcode: OpCode::from_u8(opcode).unwrap_or(OpCode::Binary),
            mask,
            payload_len: payload.len() as u64,
        };
        let n = header.write(&mut head);
        head[0] = (head[0] & 0xF0) | opcode;
        let mut out = head[..n].to_vec();
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut out[start..], key, 0);
        }
        out
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
        assert!(matches!(
            err,
            Error::Protocol(ProtocolError::ControlFrameTooLong)
        ));
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
        let compressed = Compressor::new(&params, false)
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
}
