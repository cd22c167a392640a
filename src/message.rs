//! Messages (RFC 6455 §5.6, §5.5): what the user sends and receives.
//!
//! Payloads are [`Bytes`], so a received message is a view into the read buffer and
//! a message sent to many peers shares one allocation.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// `Bytes` that are known to hold valid UTF-8: the payload of a text message.
///
/// Received text is validated once, as it arrives; reading it as `&str` afterwards
/// costs nothing.
///
/// ```
/// use wscodec::Utf8Bytes;
/// let text = Utf8Bytes::from("héllo");
/// assert_eq!(text.as_str(), "héllo");
/// assert_eq!(Utf8Bytes::try_from(bytes::Bytes::from_static(b"\xff")).ok(), None);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// A static string, without copying.
    pub const fn from_static(s: &'static str) -> Self {
        Utf8Bytes(Bytes::from_static(s.as_bytes()))
    }

    /// Wraps bytes the caller has already validated.
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Utf8Bytes(bytes)
    }

    /// The text.
    #[inline]
    // The crate's one unsafe block (Cargo.toml denies `unsafe_code` elsewhere).
    #[allow(unsafe_code)]
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor either takes a `str`/`String` or validates the
        // bytes (`TryFrom<Bytes>`, or the message decoder's incremental validator
        // before `from_validated`), and `Bytes` is immutable, so the bytes are
        // valid UTF-8 for the whole life of the value. Re-validating here would
        // cost a pass over every text message each time it is read.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Unwraps the underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Utf8Bytes(Bytes::from(s))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = std::str::Utf8Error;
    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Utf8Bytes(bytes))
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A close status code (RFC 6455 §7.4).
///
/// ```
/// use wscodec::CloseCode;
/// assert!(CloseCode::NORMAL.is_sendable());
/// assert!(!CloseCode::NO_STATUS_RECEIVED.is_sendable()); // 1005 is never on the wire
/// assert!(CloseCode(4000).is_sendable()); // private use
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (reported locally, never sent).
    pub const NO_STATUS_RECEIVED: CloseCode = CloseCode(1005);
    /// 1006: closed without a close frame (reported locally, never sent).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: data inconsistent with the message type, e.g. non-UTF-8 text.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violates the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message is too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: (client) the server did not negotiate a required extension.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: (server) an unexpected condition prevented fulfilling the request.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: bad gateway (IANA registry).
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);

    /// Whether this code may appear in a close frame on the wire (§7.4.1, §7.4.2
    /// and the IANA registry): 1000–1003, 1007–1014 and 3000–4999. 1004–1006 and
    /// 1015 are reserved, and the rest of 0–2999 is unassigned; receiving one of
    /// those fails the connection with 1002.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The body of a close frame: a status code and a UTF-8 reason of at most 123
/// bytes (§5.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// Why the connection is closing.
    pub code: CloseCode,
    /// A human-readable reason, possibly empty.
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// A close frame with a code and a reason.
    pub fn new(code: CloseCode, reason: impl Into<Utf8Bytes>) -> Self {
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }
}

/// A WebSocket message.
///
/// Data messages (`Text`, `Binary`) arrive whole, however the peer fragmented them.
/// Control messages (`Ping`, `Pong`, `Close`) are handed to the user too; a
/// [`WebSocket`](crate::WebSocket) also answers pings and close frames by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A UTF-8 text message.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping with up to 125 bytes of application data.
    Ping(Bytes),
    /// A pong with up to 125 bytes of application data.
    Pong(Bytes),
    /// A close frame, with its code and reason if it had any.
    Close(Option<CloseFrame>),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Message {
        Message::Text(text.into())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Message {
        Message::Binary(data.into())
    }

    /// A close message with a code and reason.
    pub fn close(code: CloseCode, reason: impl Into<Utf8Bytes>) -> Message {
        Message::Close(Some(CloseFrame::new(code, reason)))
    }

    /// Whether this is a ping, pong or close.
    pub fn is_control(&self) -> bool {
        matches!(
            self,
            Message::Ping(_) | Message::Pong(_) | Message::Close(_)
        )
    }

    /// Whether this is a close.
    pub fn is_close(&self) -> bool {
        matches!(self, Message::Close(_))
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// Whether this is a binary message.
    pub fn is_binary(&self) -> bool {
        matches!(self, Message::Binary(_))
    }

    /// Whether this is a ping.
    pub fn is_ping(&self) -> bool {
        matches!(self, Message::Ping(_))
    }

    /// Whether this is a pong.
    pub fn is_pong(&self) -> bool {
        matches!(self, Message::Pong(_))
    }

    /// The text of a text message; `None` for any other kind.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(text) => Some(text.as_str()),
            _ => None,
        }
    }

    /// The text of a text message, without copying. Any other message is
    /// given back unchanged as the error, so the caller can still use it.
    ///
    /// A binary message is not text even when its bytes happen to be UTF-8
    /// (the opcode says what the payload is, §5.6); to read one as text, check
    /// it with `Utf8Bytes::try_from(bytes)`.
    ///
    /// ```
    /// use wscodec::Message;
    /// assert_eq!(Message::text("hi").into_text().unwrap(), "hi");
    /// let binary = Message::binary(&b"hi"[..]);
    /// assert_eq!(binary.clone().into_text(), Err(binary));
    /// ```
    pub fn into_text(self) -> Result<Utf8Bytes, Message> {
        match self {
            Message::Text(text) => Ok(text),
            other => Err(other),
        }
    }

    /// The payload as bytes, whatever the kind, without copying: a text
    /// message's UTF-8, a binary message's bytes, a ping's or pong's
    /// application data.
    ///
    /// For a close it is the close frame's payload as on the wire (§5.5.1):
    /// the two-byte code, big-endian, then the reason; empty for a close
    /// without a status. That is the one case that copies (at most 125
    /// bytes), and it keeps `into_data().len() == len()` for every message.
    ///
    /// ```
    /// use wscodec::{CloseCode, Message};
    /// assert_eq!(Message::text("hi").into_data(), &b"hi"[..]);
    /// assert_eq!(Message::close(CloseCode::NORMAL, "bye").into_data(), &b"\x03\xe8bye"[..]);
    /// ```
    pub fn into_data(self) -> Bytes {
        match self {
            Message::Text(text) => text.into_bytes(),
            Message::Binary(data) | Message::Ping(data) | Message::Pong(data) => data,
            Message::Close(None) => Bytes::new(),
            Message::Close(Some(frame)) => {
                let mut payload = Vec::with_capacity(2 + frame.reason.len());
                payload.extend_from_slice(&frame.code.0.to_be_bytes());
                payload.extend_from_slice(frame.reason.as_bytes());
                Bytes::from(payload)
            }
        }
    }

    /// The payload length in bytes (for a close, the code and reason).
    pub fn len(&self) -> usize {
        match self {
            Message::Text(t) => t.len(),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
            Message::Close(None) => 0,
            Message::Close(Some(c)) => 2 + c.reason.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s.into())
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.into())
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message::Binary(b)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(b.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reaches the one `unsafe` block (`Utf8Bytes::as_str`) through every
    /// constructor, so that valgrind (scripts/valgrind.sh runs the lib tests)
    /// sees it read each kind of buffer: static, owned, copied, sliced and
    /// validated, including multi-byte characters at the edges.
    #[test]
    fn utf8_bytes_as_str_reads_what_every_constructor_stored() {
        let text = "añ€😀";
        let shared = Bytes::from(text.repeat(1000));
        let cases = [
            Utf8Bytes::from_static(text),
            Utf8Bytes::from(text.to_string()),
            Utf8Bytes::from(text),
            Utf8Bytes::try_from(Bytes::from_static(text.as_bytes())).unwrap(),
            Utf8Bytes::from_validated(shared.slice(text.len()..2 * text.len())),
            Utf8Bytes::default(),
        ];
        for (i, t) in cases.iter().enumerate() {
            let expected = if i == 5 { "" } else { text };
            assert_eq!(t.as_str(), expected);
            assert_eq!(&**t, expected);
            assert_eq!(t.to_string(), expected);
            assert_eq!(t.as_str().chars().count(), expected.chars().count());
        }
        // A slice cut inside a character is refused, never wrapped.
        assert!(Utf8Bytes::try_from(shared.slice(0..3)).is_ok());
        assert!(Utf8Bytes::try_from(shared.slice(0..4)).is_err());
    }

    #[test]
    fn into_text_gives_text_without_copying_and_any_other_message_back() {
        let shared = Bytes::from_static(b"hello");
        let text = Message::Text(Utf8Bytes::try_from(shared.clone()).unwrap());
        let got = text.into_text().unwrap();
        assert_eq!(got.as_bytes().as_ptr(), shared.as_ptr());
        for other in [
            Message::Binary(shared.clone()),
            Message::Ping(shared.clone()),
            Message::Pong(shared.clone()),
            Message::Close(None),
            Message::close(CloseCode::NORMAL, "hello"),
        ] {
            assert_eq!(other.clone().into_text(), Err(other));
        }
    }

    #[test]
    fn into_data_is_the_payload_of_every_kind_and_as_long_as_len() {
        let shared = Bytes::from_static(b"hello");
        let cases = [
            (Message::text("hello"), &b"hello"[..]),
            (Message::Binary(shared.clone()), b"hello"),
            (Message::Ping(shared.clone()), b"hello"),
            (Message::Pong(shared.clone()), b"hello"),
            (Message::Close(None), b""),
            (Message::close(CloseCode(4000), "hello"), b"\x0f\xa0hello"),
            (Message::close(CloseCode::NORMAL, ""), b"\x03\xe8"),
        ];
        for (message, payload) in cases {
            let len = message.len();
            let data = message.clone().into_data();
            assert_eq!((&data[..], data.len()), (payload, len), "{message:?}");
        }
        // Data payloads are handed over, not copied.
        assert_eq!(
            Message::Binary(shared.clone()).into_data().as_ptr(),
            shared.as_ptr()
        );
    }

    #[test]
    fn kind_predicates_and_as_text_name_exactly_one_kind() {
        let text = Message::text("t");
        assert!(text.is_text() && !text.is_binary() && !text.is_control());
        assert_eq!(text.as_text(), Some("t"));
        let binary = Message::binary(vec![1]);
        assert!(binary.is_binary() && !binary.is_text());
        assert_eq!(binary.as_text(), None);
        let ping = Message::Ping(Bytes::new());
        assert!(ping.is_ping() && !ping.is_pong() && ping.is_control());
        let pong = Message::Pong(Bytes::new());
        assert!(pong.is_pong() && !pong.is_ping() && pong.is_control());
    }

    #[test]
    fn close_codes_sendable_match_rfc_and_iana_registry() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
        ] {
            assert!(CloseCode(code).is_sendable(), "{code}");
        }
        for code in [3000, 3999, 4000, 4999] {
            assert!(CloseCode(code).is_sendable(), "{code}");
        }
        // Autobahn 7.9.x's invalid codes, plus the edges.
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(code).is_sendable(), "{code}");
        }
    }
}
