//! [`MessageCodec`]: whole messages, as a tokio-util `Decoder` and `Encoder`.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::assemble::Assembler;
use super::encode::{encode_message, FrameSink};
use super::frame_codec::{bytes_remaining, FrameCodec};
use super::prepared::PreparedMessage;
use crate::config::{Limits, Role};
use crate::error::Error;
use crate::extension::{Extensions, Transform};
use crate::message::Message;

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
            assembler: Assembler::new(limits.max_message_size),
            fragment_size: usize::MAX,
        }
    }

    /// Runs the extensions a handshake agreed on: the frame codec lets
    /// through the RSV bits they claim, and their per-message transform
    /// (permessage-deflate's compression) runs in both directions.
    pub fn set_extensions(&mut self, extensions: &Extensions) {
        let transform = extensions.transform(self.role());
        let rsv = transform.as_ref().map_or(0, Transform::rsv);
        self.frames.set_allowed_rsv(rsv);
        self.assembler.transform = transform;
    }

    /// Turns on permessage-deflate with the parameters a handshake agreed:
    /// RSV1 then marks compressed messages, in both directions. The same as
    /// [`MessageCodec::set_extensions`] with only deflate.
    #[cfg(feature = "deflate")]
    pub fn set_deflate(&mut self, params: &crate::deflate::DeflateParams) {
        let mut extensions = Extensions::none();
        extensions.deflate = Some(params.clone());
        self.set_extensions(&extensions);
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

    /// The bytes a large frame (64 KiB or more) taken out of the read buffer
    /// still lacks: the room the next read may fill for it.
    pub(crate) fn large_frame_rest(&self) -> Option<usize> {
        self.frames.large_frame_rest()
    }

    /// Whether a frame still arriving has been taken out of the read buffer
    /// (the buffer then holds only the room for its rest).
    pub(crate) fn taking(&self) -> bool {
        self.frames.holds_partial_frame()
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

impl MessageCodec {
    /// The frame a server sends for `prepared` when an extension transforms
    /// it (compressed once for many connections); `None` to send the
    /// prepared frame as it is.
    pub(crate) fn prepared_frame(
        &mut self,
        prepared: &PreparedMessage,
    ) -> Result<Option<Bytes>, Error> {
        match self.assembler.transform.as_mut() {
            Some(t) if !prepared.message().is_control() => t.shared_frame(prepared),
            _ => Ok(None),
        }
    }

    /// Encodes `message` into `dst` as this codec's `Encoder` does: its role,
    /// its fragment size, its extensions' transform. The one body behind both
    /// `Encoder` impls and the connection's write queue.
    pub(crate) fn encode_into(
        &mut self,
        message: &Message,
        dst: &mut impl FrameSink,
    ) -> Result<(), Error> {
        encode_message(
            self.frames.role,
            message,
            self.fragment_size,
            self.assembler.transform.as_mut(),
            dst,
        )
    }
}

impl Encoder<Message> for MessageCodec {
    type Error = Error;

    fn encode(&mut self, message: Message, dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_into(&message, dst)
    }
}

impl Encoder<&Message> for MessageCodec {
    type Error = Error;

    fn encode(&mut self, message: &Message, dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_into(message, dst)
    }
}
