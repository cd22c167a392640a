//! permessage-deflate (RFC 7692), feature `deflate`: negotiation and the
//! per-message compressor and decompressor.
//!
//! This module owns the extension's parameters (§7.1), the offer and response
//! texts, and DEFLATE itself: a compressed message is the raw DEFLATE stream of
//! its payload, flushed with a sync flush, with the final `00 00 FF FF` removed
//! (§7.2.1). It never touches frames; the codec sets and checks RSV1.
//!
//! Inflation is bounded: output grows only as far as the message-size limit, so
//! a "deflate bomb" (a few KB that inflate to gigabytes) fails with 1009 having
//! held at most the limit.
//!
//! zlib cannot compress with a 256-byte window (`max_window_bits=8`): it
//! rejects it for raw DEFLATE. When the peer asks for 8, we send stored
//! (uncompressed) DEFLATE blocks, which refer to no earlier bytes and so suit any
//! window. Decompression handles every window size from 8 to 15.
//!
//! Memory: zlib-rs's compressor holds about 4 × 2^window_bits bytes plus a
//! fixed 128 KiB hash table and its literal buffers (≈ 320 KiB resident at
//! window 15, ≈ 220 KiB at 13, ≈ 190 KiB at 9); the decompressor about 9 KiB
//! plus the window it has filled. Both are created on the first message that
//! needs them, so a connection with compression negotiated but unused holds
//! neither. When context takeover is off for a direction (§7.1.1), nothing of
//! a message is needed for the next: after each message the compressor or
//! decompressor is reset and kept as the thread's one spare of its kind,
//! shared by all such connections on the thread.
//!
//! | module | owns |
//! |---|---|
//! | `negotiate` | §7.1: [`DeflateConfig`], offers, answers, [`DeflateParams`] |
//! | `compress` | §7.2: compressing and (bounded) inflating messages |
//!
//! The `Sec-WebSocket-Extensions` grammar itself (§9.1 of RFC 6455) is the
//! [`extension`](crate::extension) seam's, shared by every extension.

mod compress;
mod negotiate;
#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
pub(crate) use compress::COMPRESSED_MESSAGES;
pub(crate) use compress::{compress_alone, Deflate};
pub use negotiate::{DeflateConfig, DeflateParams, SERVER_WINDOW_BITS};

/// The extension token.
const NAME: &str = "permessage-deflate";
