//! permessage-deflate's negotiation (RFC 7692 §7.1): our wishes
//! ([`DeflateConfig`]), the offer a client sends, the answer a server picks,
//! the client's check of that answer, and what both agreed
//! ([`DeflateParams`]). Text in, text and parameters out: no compression here.

use super::NAME;
use crate::error::HandshakeError;
use crate::extension::split_extensions;

/// Our side's wishes for permessage-deflate. In the server role they shape the
/// response to the client's offers; in the client role, the offer.
///
/// ```
/// use wscodec::deflate::DeflateConfig;
/// // Small windows and no context takeover: less memory per connection.
/// let config = DeflateConfig::default()
///     .server_max_window_bits(Some(10))
///     .client_max_window_bits(Some(10))
///     .server_no_context_takeover(true)
///     .client_no_context_takeover(true);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// The server resets its compressor after every message (less memory kept
    /// between messages, worse ratio). Default off.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message. Default off.
    pub client_no_context_takeover: bool,
    /// The largest LZ77 window (2^bits bytes, 8–15) the server compresses
    /// with. `None` (the default): as a server, 13 (8 KiB; see
    /// [`SERVER_WINDOW_BITS`]); as a client, no limit asked for. `Some(15)`
    /// leaves a server's window unlimited.
    pub server_max_window_bits: Option<u8>,
    /// The largest window the client compresses with. `None` (the default): as
    /// a server, 13, named only to a client that offered the parameter
    /// (§7.1.2.2), as browsers do; as a client, no limit offered.
    pub client_max_window_bits: Option<u8>,
    /// Compression level, 0–9. Default 6.
    pub level: u32,
    /// Messages shorter than this are sent uncompressed. Default 64 bytes.
    pub min_size: usize,
}

/// The window (2^13 = 8 KiB) a server asks for in both directions when
/// [`DeflateConfig`] leaves it unset.
///
/// Why 13: measured on a server with chat-like JSON (`benches/deflate/run.sh`),
/// compression with context takeover adds about 348 KB per connection at
/// window 15, 283 KB at 14, 250 KB at 13, 234 KB at 12 and 223 KB at 9:
/// zlib-rs's compressor has a fixed 128 KiB hash table and literal buffers
/// whatever the window, so below 13 a smaller window saves little memory while
/// the ratio keeps getting worse (0.200 at 15, 0.209 at 13, 0.228 at 12, 0.258
/// at 11). 13 keeps nearly all of 15's compression for 98 KB less per
/// connection. For much less memory, turn off context takeover: then nothing
/// is kept between messages.
///
/// A client leaves windows unlimited unless told otherwise: its memory is
/// rarely the constraint, and a server may decline an offer with
/// `server_max_window_bits` it does not support (§7.1.2.1), or answer a
/// `client_max_window_bits` value with a larger one, which the client must
/// then refuse (Autobahn's 13.4 and 13.6 do).
pub const SERVER_WINDOW_BITS: u8 = 13;

/// Context takeover on, windows as [`SERVER_WINDOW_BITS`] says (a server asks
/// for 8 KiB, a client for no limit), level 6, messages from 64 bytes.
impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
            level: 6,
            min_size: 64,
        }
    }
}

impl DeflateConfig {
    /// Sets [`DeflateConfig::server_no_context_takeover`].
    pub fn server_no_context_takeover(mut self, on: bool) -> Self {
        self.server_no_context_takeover = on;
        self
    }

    /// Sets [`DeflateConfig::client_no_context_takeover`].
    pub fn client_no_context_takeover(mut self, on: bool) -> Self {
        self.client_no_context_takeover = on;
        self
    }

    /// Sets [`DeflateConfig::server_max_window_bits`] (clamped to 8–15).
    pub fn server_max_window_bits(mut self, bits: Option<u8>) -> Self {
        self.server_max_window_bits = bits.map(|b| b.clamp(8, 15));
        self
    }

    /// Sets [`DeflateConfig::client_max_window_bits`] (clamped to 8–15).
    pub fn client_max_window_bits(mut self, bits: Option<u8>) -> Self {
        self.client_max_window_bits = bits.map(|b| b.clamp(8, 15));
        self
    }

    /// Sets [`DeflateConfig::level`] (clamped to 0–9).
    pub fn level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }

    /// Sets [`DeflateConfig::min_size`].
    pub fn min_size(mut self, bytes: usize) -> Self {
        self.min_size = bytes;
        self
    }

    /// The client's offer: `permessage-deflate` with our wishes, always
    /// announcing that we accept `client_max_window_bits` from the server.
    pub fn offer(&self) -> String {
        // `None` for client_max_window_bits still says we accept the parameter.
        write_params(
            self.server_no_context_takeover,
            self.client_no_context_takeover,
            self.server_max_window_bits,
            Some(self.client_max_window_bits),
        )
    }

    /// Server side: picks the first acceptable offer among the values of the
    /// request's `Sec-WebSocket-Extensions` headers, and returns the parameters
    /// agreed and the response header value. Offers with unknown, repeated or
    /// invalid parameters are declined (§7.1), and so are other extensions.
    pub fn negotiate_server<'a>(
        &self,
        header_values: impl IntoIterator<Item = &'a str>,
    ) -> Option<(DeflateParams, String)> {
        header_values
            .into_iter()
            .flat_map(split_extensions)
            .filter(|(name, _)| name.eq_ignore_ascii_case(NAME))
            .find_map(|(_, params)| self.accept_offer(&params))
    }

    fn accept_offer(&self, params: &[(&str, Option<&str>)]) -> Option<(DeflateParams, String)> {
        let offer = Params::parse(params, true).ok()?;
        let ours_server = self.server_max_window_bits.unwrap_or(SERVER_WINDOW_BITS);
        let ours_client = self.client_max_window_bits.unwrap_or(SERVER_WINDOW_BITS);
        // §7.1.2.1: a response may name a smaller window than offered, never a
        // larger one; without an offer the server may still name its own (15,
        // the most there is, goes without saying).
        let server_bits = match offer.server_max_window_bits {
            Some(Some(theirs)) => Some(theirs.min(ours_server)),
            _ => (ours_server < 15).then_some(ours_server),
        };
        // §7.1.2.2: only if the client said it supports the parameter.
        let client_bits = match offer.client_max_window_bits {
            None => None,
            Some(Some(theirs)) => Some(theirs.min(ours_client)),
            Some(None) => (ours_client < 15).then_some(ours_client),
        };
        let agreed = DeflateParams {
            server_no_context_takeover: offer.server_no_context_takeover
                || self.server_no_context_takeover,
            // §7.1.1.2: a client that offers client_no_context_takeover will
            // not use context takeover; echoing it lets us drop our
            // decompressor between messages instead of keeping its window.
            client_no_context_takeover: offer.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
            level: self.level,
            min_size: self.min_size,
        };
        Some((agreed.clone(), agreed.response()))
    }

    /// Client side: checks the server's `Sec-WebSocket-Extensions` response
    /// against our offer (§7.1) and returns the parameters agreed.
    pub fn negotiate_client(&self, header_value: &str) -> Result<DeflateParams, HandshakeError> {
        let bad = || HandshakeError::UnexpectedNegotiation("Sec-WebSocket-Extensions");
        let mut extensions = split_extensions(header_value);
        let (name, params) = extensions.next().ok_or_else(bad)?;
        if !name.eq_ignore_ascii_case(NAME) || extensions.next().is_some() {
            return Err(bad());
        }
        let response = Params::parse(&params, false).map_err(|_| bad())?;
        // §7.1.1.1: a server accepting our server_no_context_takeover echoes it.
        if self.server_no_context_takeover && !response.server_no_context_takeover {
            return Err(bad());
        }
        let server_bits = response.server_max_window_bits.flatten();
        if let (Some(theirs), Some(ours)) = (server_bits, self.server_max_window_bits) {
            if theirs > ours {
                return Err(bad());
            }
        }
        // We always offer client_max_window_bits, so the server may set it, at
        // most to our value.
        let client_bits = match response.client_max_window_bits {
            Some(Some(theirs))
                if self
                    .client_max_window_bits
                    .is_some_and(|ours| theirs > ours) =>
            {
                return Err(bad())
            }
            Some(Some(theirs)) => Some(theirs),
            Some(None) => return Err(bad()),
            None => self.client_max_window_bits,
        };
        Ok(DeflateParams {
            server_no_context_takeover: response.server_no_context_takeover,
            client_no_context_takeover: response.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
            level: self.level,
            min_size: self.min_size,
        })
    }
}

/// The extension's header text: `client_max_window_bits` is `Some(None)` for
/// the bare parameter (an offer that accepts it), `Some(Some(n))` with a value.
fn write_params(
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<Option<u8>>,
) -> String {
    let mut out = String::from(NAME);
    if server_no_context_takeover {
        out.push_str("; server_no_context_takeover");
    }
    if client_no_context_takeover {
        out.push_str("; client_no_context_takeover");
    }
    if let Some(bits) = server_max_window_bits {
        out.push_str(&format!("; server_max_window_bits={bits}"));
    }
    match client_max_window_bits {
        Some(Some(bits)) => out.push_str(&format!("; client_max_window_bits={bits}")),
        Some(None) => out.push_str("; client_max_window_bits"),
        None => {}
    }
    out
}

/// The parameters of one offer or response, parsed strictly.
#[derive(Debug, Default)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    /// `Some(None)`: present without a value (allowed only for the client's
    /// `client_max_window_bits` in an offer).
    server_max_window_bits: Option<Option<u8>>,
    client_max_window_bits: Option<Option<u8>>,
}

impl Params {
    /// §7.1: unknown, repeated, or ill-valued parameters make the whole offer
    /// (or response) invalid.
    fn parse(params: &[(&str, Option<&str>)], is_offer: bool) -> Result<Params, ()> {
        let mut out = Params::default();
        let bits = |v: Option<&str>| -> Result<Option<u8>, ()> {
            match v {
                None => Ok(None),
                Some(v)
                    if !v.is_empty() && v.len() <= 2 && v.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    let n: u8 = v.parse().map_err(|_| ())?;
                    if (8..=15).contains(&n) {
                        Ok(Some(n))
                    } else {
                        Err(())
                    }
                }
                Some(_) => Err(()),
            }
        };
        for &(name, value) in params {
            match name.to_ascii_lowercase().as_str() {
                "server_no_context_takeover"
                    if value.is_none() && !out.server_no_context_takeover =>
                {
                    out.server_no_context_takeover = true
                }
                "client_no_context_takeover"
                    if value.is_none() && !out.client_no_context_takeover =>
                {
                    out.client_no_context_takeover = true
                }
                "server_max_window_bits" if out.server_max_window_bits.is_none() => {
                    // A value is required in both directions.
                    out.server_max_window_bits = Some(Some(bits(value)?.ok_or(())?));
                }
                "client_max_window_bits" if out.client_max_window_bits.is_none() => {
                    let b = bits(value)?;
                    if b.is_none() && !is_offer {
                        return Err(());
                    }
                    out.client_max_window_bits = Some(b);
                }
                _ => return Err(()),
            }
        }
        Ok(out)
    }
}

/// The parameters both sides agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's largest window, if limited.
    pub server_max_window_bits: Option<u8>,
    /// The client's largest window, if limited.
    pub client_max_window_bits: Option<u8>,
    /// Our compression level.
    pub level: u32,
    /// Our threshold for compressing a message.
    pub min_size: usize,
}

impl DeflateParams {
    /// The server's response header value for these parameters.
    fn response(&self) -> String {
        write_params(
            self.server_no_context_takeover,
            self.client_no_context_takeover,
            self.server_max_window_bits,
            self.client_max_window_bits.map(Some),
        )
    }
}
