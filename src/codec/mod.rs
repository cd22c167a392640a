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
//! place and split off as [`Bytes`](bytes::Bytes). Text is checked as it arrives, before its
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
//!
//! | module | owns |
//! |---|---|
//! | `frame_codec` | [`FrameCodec`]: per-role rules, RSV bits, the frame limit, final errors |
//! | `assemble` | fragments, text checks, the message limit, an extension's per-message transform |
//! | `message_codec` | [`MessageCodec`]: whole messages |
//! | `encode` | frames and messages into bytes, payloads shared where they can be |
//! | `prepared` | [`PreparedMessage`]: encode once, send to many |

mod assemble;
mod encode;
mod frame_codec;
mod message_codec;
mod prepared;
#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) use encode::SHARE_MIN;
pub(crate) use encode::{encode_message, FrameSink};
pub use frame_codec::FrameCodec;
pub use message_codec::MessageCodec;
pub use prepared::PreparedMessage;

/// Frames are defined beside their header; re-exported here, where the
/// codecs that produce them are.
pub use crate::frame::Frame;
