//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! This module owns one rule: a text message fails at the first byte that can never
//! become valid UTF-8, even when the message is split across frames or TCP reads
//! (RFC 6455 §8.1: "MUST _Fail the WebSocket Connection_"; Autobahn 6.4.x checks
//! that this happens early). It keeps at most 3 bytes of state and never allocates.

use std::str;

/// Validates a UTF-8 byte sequence fed in chunks.
///
/// ```
/// use wscodec::utf8::Utf8Validator;
/// let mut v = Utf8Validator::new();
/// let euro = "€".as_bytes(); // 3 bytes
/// assert!(v.feed(&euro[..1]).is_ok());
/// assert!(v.feed(&euro[1..]).is_ok());
/// assert!(v.finish().is_ok());
/// // 0xC0 can never start a valid sequence: fails at once.
/// assert!(Utf8Validator::new().feed(&[b'a', 0xC0]).is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    /// The start of a code point that the last chunk cut short.
    partial: [u8; 4],
    partial_len: u8,
}

/// The input can never become valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk. Fails as soon as a byte makes the sequence invalid
    /// whatever follows; a code point cut at the end of the chunk is kept for the
    /// next call.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            chunk = self.complete_partial(chunk)?;
            if self.partial_len > 0 {
                return Ok(());
            }
        }
        match str::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                // std reports `error_len() == None` only for a valid but unfinished
                // code point at the very end: at most 3 bytes.
                let tail = &chunk[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Declares the end of the message: fails if it ended inside a code point.
    pub fn finish(&self) -> Result<(), InvalidUtf8> {
        if self.partial_len == 0 {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }

    /// Moves bytes from `chunk` into the pending code point until it is complete or
    /// `chunk` runs out; returns the rest of `chunk`.
    fn complete_partial<'a>(&mut self, chunk: &'a [u8]) -> Result<&'a [u8], InvalidUtf8> {
        let have = usize::from(self.partial_len);
        let width = match self.partial[0] {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => 4,
        };
        let take = (width - have).min(chunk.len());
        self.partial[have..have + take].copy_from_slice(&chunk[..take]);
        let filled = &self.partial[..have + take];
        match str::from_utf8(filled) {
            Ok(_) => self.partial_len = 0,
            Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
            Err(_) => self.partial_len = filled.len() as u8,
        }
        Ok(&chunk[take..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate_in_chunks(bytes: &[u8], chunk: usize) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        for piece in bytes.chunks(chunk.max(1)) {
            v.feed(piece)?;
        }
        v.finish()
    }

    #[test]
    fn agrees_with_std_on_every_chunking() {
        let samples: &[&[u8]] = &[
            "κόσμε".as_bytes(),
            "Hello-µ@ßöäüàá-UTF-8!!".as_bytes(),
            "\u{10FFFF}\u{FFFF}\u{80}\u{7FF}\u{800}".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
            b"\xf4\x90\x80\x80",
            b"\xf0\x8f\xbf\xbf",
            b"\xe0\x80\xaf",
            b"\xc0\xaf",
            b"\xed\x9f\xbf",
            b"\xef\xbf\xbe",
            b"abc\xf0\x9f\x98",
            b"\x80",
            b"",
        ];
        for s in samples {
            for chunk in 1..=s.len().max(1) {
                assert_eq!(
                    validate_in_chunks(s, chunk).is_ok(),
                    std::str::from_utf8(s).is_ok(),
                    "{s:x?} in chunks of {chunk}"
                );
            }
        }
    }

    #[test]
    fn fails_at_first_impossible_byte_before_message_ends() {
        // Autobahn 6.4.1: "κόσμε" followed by a surrogate start (0xED 0xA0): the
        // second byte already makes it invalid.
        let mut v = Utf8Validator::new();
        v.feed("κόσμε".as_bytes()).unwrap();
        v.feed(b"\xed").unwrap();
        assert_eq!(v.feed(b"\xa0"), Err(InvalidUtf8));
    }

    #[test]
    fn code_point_past_u10ffff_fails_on_second_byte() {
        let mut v = Utf8Validator::new();
        v.feed(b"\xf4").unwrap();
        assert_eq!(v.feed(b"\x90"), Err(InvalidUtf8));
    }

    #[test]
    fn truncated_code_point_fails_only_at_finish() {
        let mut v = Utf8Validator::new();
        v.feed(b"a\xe2\x82").unwrap();
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }
}
