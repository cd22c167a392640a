//! Text helpers: JSON string literals, the time stamp, names from a query.
//!
//! This module owns how the server writes text a client will parse (every
//! string it puts in JSON is escaped here, RFC 8259 §7) and how it reads a
//! name a client chose (percent-decoding, control characters, length). Its
//! functions read only their arguments and the clock: it never does I/O and
//! knows nothing of rooms or WebSockets.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest name kept, in characters.
const MAX_NAME_CHARS: usize = 32;

pub(crate) fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Appends `s` as a JSON string literal (RFC 8259 §7).
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The `name` parameter of a query string, percent-decoded and cleaned (see
/// [`clean_name`]).
pub(crate) fn name_from_query(query: &str) -> String {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("name="))
        .unwrap_or_default();
    clean_name(&percent_decode(raw))
}

/// A name without control characters, trimmed and cut to [`MAX_NAME_CHARS`];
/// `anonymous` if that leaves nothing.
pub(crate) fn clean_name(raw: &str) -> String {
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    match name.trim() {
        "" => "anonymous".to_owned(),
        name => name.to_owned(),
    }
}

/// Decodes `%XX` escapes and `+` (as a space) of a query value; invalid UTF-8
/// becomes U+FFFD.
fn percent_decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.clone().take(2).collect::<Vec<u8>>();
                match std::str::from_utf8(&hex)
                    .ok()
                    .filter(|h| h.len() == 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(decoded) => {
                        out.push(decoded);
                        bytes.nth(1);
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_control_characters() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\nd\u{1}é</script>");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é</script>""#);
    }

    #[test]
    fn names_are_percent_decoded_cleaned_and_bounded() {
        assert_eq!(name_from_query("name=Ren%C3%A9e+B"), "Renée B");
        assert_eq!(name_from_query("x=1&name=%0Abob%07"), "bob");
        assert_eq!(name_from_query("name=%zz"), "%zz");
        assert_eq!(name_from_query("name=%20%20"), "anonymous");
        assert_eq!(name_from_query(""), "anonymous");
        assert_eq!(
            name_from_query(&format!("name={}", "x".repeat(100))).len(),
            32
        );
    }
}
