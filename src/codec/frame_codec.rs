//! [`FrameCodec`]: one frame at a time. Owns the per-role masking rules
//! (§5.1), the RSV bits (§5.2), the frame size limit, and the rule that a
//! decode error is final. It never assembles messages or looks at text.

use std::io;

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::encode::encode_frame;
use crate::config::{Limits, Role};
use crate::error::{CapacityError, Error, ProtocolError, UsageError};
use crate::frame::{Frame, FrameHeader, MAX_CONTROL_PAYLOAD};
use crate::mask::apply_mask;

/// A frame at least this long that is still arriving gets room for its rest
/// (up to `max_frame_reserve`) and is taken out of the caller's buffer and
/// unmasked piece by piece as it arrives, while each piece is still in cache
/// from the read, instead of all at once at the end. A smaller one is left
/// to the caller's buffer to grow as usual, so that a read takes the frames
/// queued behind it too.
const LARGE_FRAME: usize = 64 << 10;

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
pub(super) fn bytes_remaining() -> Error {
    io::Error::other("bytes remaining on stream").into()
}

/// Decodes and encodes single frames, enforcing the per-role masking rules and the
/// frame size limit.
///
/// An error from `decode` is final, and the codec enforces it: every later call
/// fails with the same error, whatever buffer it is given. Fail the connection
/// (RFC 6455 §7.1.7) with the error's [`close_code`](crate::Error::close_code).
///
/// Between calls the codec keeps nothing that refers into the caller's buffer.
/// A frame that is not complete yet is either left there as it is (`decode`
/// returns `None` without consuming anything; it is parsed again on the next
/// call and unmasked in the call that returns it), or, if it is 64 KiB or
/// more (or the message layer looks at it as it arrives), taken out of the
/// buffer whole, unmasked as it arrives while each piece is still in cache.
/// For a frame of 64 KiB or more `decode` also makes room in the buffer for
/// its rest, up to [`Limits::max_frame_reserve`], so it is read into one
/// allocation and its payload is returned without a copy.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    pub(super) role: Role,
    max_frame_size: usize,
    /// How far ahead of its bytes a declared frame may reserve.
    max_frame_reserve: usize,
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
            max_frame_reserve: limits.max_frame_reserve,
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
    /// arrives. For a frame of 64 KiB or more still arriving, `src` makes room
    /// for its rest, up to [`Limits::max_frame_reserve`]; never for a header
    /// that has not passed the size check. After an error, fails with
    /// it again.
    #[inline]
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
    pub(super) fn fail(&mut self, error: &Error) {
        self.failure.get_or_insert(Failure::of(error));
        self.taken = None;
    }

    /// The bytes a large frame (64 KiB or more) taken out of the buffer
    /// still lacks: the room the next read may fill for it.
    pub(super) fn large_frame_rest(&self) -> Option<usize> {
        let taken = self.taken.as_ref()?;
        let len = taken.header.payload_len as usize;
        (len >= LARGE_FRAME).then(|| len - taken.payload.len())
    }

    /// Whether part of a frame is in the codec's own buffer.
    pub(super) fn holds_partial_frame(&self) -> bool {
        self.taken.is_some()
    }

    /// A frame: whole in `src` (unmasked in place and split off), still
    /// arriving and left in `src` untouched, or still arriving and taken out
    /// of it because the observer looks at it as it arrives.
    #[inline]
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
        if available < len && !observer.looks_ahead() && len < LARGE_FRAME {
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
            // Room for the rest (one allocation, one copy of what arrived,
            // instead of a buffer doubling as the frame arrives), made before
            // the split, so the rest joins the payload without a copy.
            if len >= LARGE_FRAME {
                let rest = start + len - src.len();
                src.reserve(rest.min(self.max_frame_reserve));
            }
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
            // A large frame taken out of `src` is not a clean end either.
            None if src.is_empty() && self.taken.is_none() => Ok(None),
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
        if frame.opcode.is_control() {
            if !frame.fin {
                return Err(UsageError::FragmentedControlFrame.into());
            }
            if frame.payload.len() > MAX_CONTROL_PAYLOAD {
                return Err(UsageError::ControlFrameTooLong.into());
            }
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
