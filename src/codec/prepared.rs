//! [`PreparedMessage`]: a message encoded once, for many server connections.

use bytes::{Bytes, BytesMut};

use super::encode::encode_message;
use crate::config::Role;
use crate::error::Error;
use crate::message::Message;

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
