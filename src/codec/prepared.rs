//! [`PreparedMessage`]: a message encoded once, for many server connections.

use bytes::{Bytes, BytesMut};

use super::encode::encode_message;
use crate::config::Role;
use crate::error::Error;
use crate::message::Message;

/// The compressed frames of one message, one per (level, window) that a
/// connection asked for, made by the first connection that needed each.
#[cfg(feature = "deflate")]
type Deflated = std::sync::Arc<std::sync::Mutex<Vec<((u32, u8), Bytes)>>>;

/// A message encoded once as a server frame, to send the same bytes to many
/// connections without copying the payload for each (a chat room, a ticker).
///
/// Sent through a server-role [`WebSocket`](crate::WebSocket), the encoded bytes
/// are queued as they are, shared, whatever the payload's size. A client must
/// mask every frame with its own key, so a client-role `WebSocket` encodes the
/// message anew.
///
/// # Compressed once (feature `deflate`)
///
/// On a server connection that agreed on permessage-deflate, a text or binary
/// message at least [`DeflateConfig::min_size`](crate::deflate::DeflateConfig)
/// long goes out compressed, and compressed once for all of them: the first
/// connection that sends it compresses it *on its own* (referring to no
/// earlier message) and keeps the frame here; every connection with the same
/// level and window then sends those bytes. That is valid whatever context
/// takeover each connection agreed: a peer's decompressor takes any DEFLATE
/// data whose distances stay within the window agreed (RFC 7692 §7.1.1,
/// §7.1.2), and a connection that keeps its context forgets it after such a
/// message, so its next own message refers to nothing before it. So a room
/// of 1000 costs one compression per message (per window size in use), not
/// 1000.
///
/// The price is ratio: a message compressed alone cannot point back into
/// the messages before it, which is what context takeover buys on a stream
/// of similar messages. README's permessage-deflate section has the figures.
///
/// ```
/// use wscodec::{Message, PreparedMessage};
/// let prepared = PreparedMessage::new(Message::text("to everyone"))?;
/// assert_eq!(prepared.encoded().len(), 2 + 11);
/// let for_each_recipient = prepared.clone(); // a reference count, not a copy
/// # Ok::<(), wscodec::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PreparedMessage {
    message: Message,
    encoded: Bytes,
    #[cfg(feature = "deflate")]
    deflated: Deflated,
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
            #[cfg(feature = "deflate")]
            deflated: Deflated::default(),
        })
    }

    /// The frame compressed on its own with `key`'s level and window,
    /// compressing it if no connection did yet. The lock is held while
    /// compressing, so connections on other threads wait for the one
    /// compression rather than each doing it.
    #[cfg(feature = "deflate")]
    pub(crate) fn deflated(&self, key: (u32, u8)) -> Result<Bytes, Error> {
        let payload = match &self.message {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
            _ => unreachable!("only data messages are compressed"),
        };
        // A panic elsewhere while holding the lock leaves a list that is
        // still valid: every entry was complete when pushed.
        let mut frames = self
            .deflated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, frame)) = frames.iter().find(|(k, _)| *k == key) {
            return Ok(frame.clone());
        }
        let compressed = crate::deflate::compress_alone(payload, key)?;
        let mut buf = BytesMut::with_capacity(compressed.len() + 10);
        let opcode = match self.message {
            Message::Text(_) => crate::frame::OpCode::Text,
            _ => crate::frame::OpCode::Binary,
        };
        // RFC 7692 §6: RSV1 marks the message compressed.
        super::encode::encode_frame(Role::Server, true, 0b100, opcode, &compressed, &mut buf);
        let frame = buf.freeze();
        frames.push((key, frame.clone()));
        Ok(frame)
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

/// Equal when the message is: the compressed frames made so far are a cache.
impl PartialEq for PreparedMessage {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for PreparedMessage {}
