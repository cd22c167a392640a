//! The handshake's keys (RFC 6455 §4.1, §4.2.2): the client's random
//! `Sec-WebSocket-Key` and the server's `Sec-WebSocket-Accept` derived from it.
//! Pure functions; no HTTP.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID every server appends to the client's key (§1.3).
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (§4.2.2, step 5.4).
///
/// ```
/// // The example of RFC 6455 §1.3.
/// assert_eq!(
///     wscodec::handshake::derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn derive_accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID);
    BASE64.encode(sha1.finalize())
}

/// A fresh `Sec-WebSocket-Key`: base64 of 16 random bytes (§4.1).
pub fn generate_key() -> String {
    BASE64.encode(rand::random::<[u8; 16]>())
}
