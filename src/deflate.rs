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

use std::cell::RefCell;
use std::thread::LocalKey;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

use crate::error::{CapacityError, Error, HandshakeError, ProtocolError};

/// The extension token.
const NAME: &str = "permessage-deflate";
/// What a sync flush ends with, and what the receiver appends back (§7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// One idle, reset compressor or decompressor, with the (level, window) it
/// was made for.
type Spare<T> = RefCell<Option<((u32, u8), T)>>;

thread_local! {
    /// What a connection without context takeover gives back after each
    /// message (§7.1.1: nothing of a message is needed for the next): the next
    /// such message on this thread, from any connection, reuses it. Those
    /// connections then hold no state between messages, and the thread one of
    /// each kind, instead of one per connection. Reusing saves the cost of a
    /// fresh one: 6–19% of the time to compress a chat message at level 6
    /// (≈ 30% at level 1), and the allocation of a decompressor. Nothing can
    /// use one while a connection has it: it is only here between messages.
    static SPARE_COMPRESS: Spare<Compress> = const { RefCell::new(None) };
    static SPARE_DECOMPRESS: Spare<Decompress> = const { RefCell::new(None) };
}

/// The thread's spare, if it was made for `key`.
fn take_spare<T>(slot: &'static LocalKey<Spare<T>>, key: (u32, u8)) -> Option<T> {
    slot.try_with(|spare| match spare.borrow_mut().take() {
        Some((made_for, it)) if made_for == key => Some(it),
        _ => None,
    })
    .ok()
    .flatten()
}

/// Keeps `it`, already reset, as the thread's spare (dropping the one there).
fn keep_spare<T>(slot: &'static LocalKey<Spare<T>>, key: (u32, u8), it: T) {
    // During thread teardown there is nowhere to keep it: it is dropped.
    let _ = slot.try_with(|spare| *spare.borrow_mut() = Some((key, it)));
}

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

/// Splits a `Sec-WebSocket-Extensions` value into extensions and their
/// parameters: `a; x=1, b` → `[("a", [("x", Some("1"))]), ("b", [])]`.
fn split_extensions(value: &str) -> impl Iterator<Item = (&str, Vec<(&str, Option<&str>)>)> {
    value
        .split(',')
        .filter(|e| !e.trim().is_empty())
        .map(|extension| {
            let mut parts = extension.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let params = parts
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                    None => (p, None),
                })
                .collect();
            (name, params)
        })
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

/// Compressor and decompressor of one connection.
pub(crate) struct Deflate {
    /// Created by the first message we compress. With `reset_compress`,
    /// reset after each message and given to the thread's spare: between
    /// messages it would only hold memory.
    compress: Option<Compress>,
    /// Created by the first compressed message we receive; with
    /// `reset_decompress`, given back the same way after each message.
    decompress: Option<Decompress>,
    reset_compress: bool,
    reset_decompress: bool,
    min_size: usize,
    level: u32,
    compress_window: u8,
    decompress_window: u8,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate")
            .field("compress_window", &self.compress_window)
            .field("decompress_window", &self.decompress_window)
            .field("reset_compress", &self.reset_compress)
            .field("reset_decompress", &self.reset_decompress)
            .finish_non_exhaustive()
    }
}

impl Deflate {
    /// The state for one side: `is_server` picks which parameters are ours.
    pub(crate) fn new(params: &DeflateParams, is_server: bool) -> Deflate {
        let (ours, theirs, reset_ours, reset_theirs) = if is_server {
            (
                params.server_max_window_bits,
                params.client_max_window_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            )
        } else {
            (
                params.client_max_window_bits,
                params.server_max_window_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            )
        };
        let compress_window = ours.unwrap_or(15);
        // flate2 panics below 9; inflating with a 512-byte window reads
        // everything a 256-byte one can produce.
        let decompress_window = theirs.unwrap_or(15).max(9);
        // zlib cannot compress with a 256-byte window; level 0 writes stored
        // blocks, which refer to nothing earlier and so suit any window.
        let level = if compress_window < 9 { 0 } else { params.level };
        // Nothing is allocated yet: many connections that negotiate
        // compression never send or receive a message worth compressing.
        Deflate {
            compress: None,
            decompress: None,
            reset_compress: reset_ours,
            reset_decompress: reset_theirs,
            min_size: params.min_size,
            level,
            compress_window,
            decompress_window,
        }
    }

    /// Whether a message of `len` bytes is worth compressing.
    pub(crate) fn wants(&self, len: usize) -> bool {
        len >= self.min_size
    }

    /// Compresses one message payload (§7.2.1).
    pub(crate) fn compress(&mut self, payload: &[u8]) -> Result<Bytes, Error> {
        if payload.is_empty() {
            // §7.2.3.6: an empty stored block. zlib would write nothing at all
            // for an empty input right after a flush, and the tail the receiver
            // appends would then start a block of its own.
            return Ok(Bytes::from_static(&[0x00]));
        }
        let (level, window, reset) = (self.level, self.compress_window.max(9), self.reset_compress);
        let compress = self.compress.get_or_insert_with(|| {
            reset
                .then(|| take_spare(&SPARE_COMPRESS, (level, window)))
                .flatten()
                .unwrap_or_else(|| {
                    Compress::new_with_window_bits(Compression::new(level), false, window)
                })
        });
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        let before_in = compress.total_in();
        loop {
            let consumed = (compress.total_in() - before_in) as usize;
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            // zlib answers a repeated flush with nothing new as BufError: that
            // only means there was nothing more to do.
            compress
                .compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| Error::Io(std::io::Error::other(e)))?;
            let done = (compress.total_in() - before_in) as usize == payload.len();
            // A sync flush is complete once it did not run out of output space.
            if done && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if reset {
            // Nothing of this message is needed for the next (§7.1.1.1), so
            // the connection keeps no compressor between messages.
            if let Some(mut compress) = self.compress.take() {
                compress.reset();
                keep_spare(&SPARE_COMPRESS, (level, window), compress);
            }
        }
        Ok(Bytes::from(out))
    }

    /// Inflates one frame's payload of a compressed message onto `out`; `last`
    /// adds the removed tail (§7.2.2). Fails with 1009 as soon as `out` passes
    /// `limit`: `out` never grows beyond `limit + 1` bytes, whatever the input.
    pub(crate) fn decompress(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), Error> {
        // Decompressors differ only by window; 0 stands for "any level".
        let (key, reset) = ((0, self.decompress_window), self.reset_decompress);
        let decompress = self.decompress.get_or_insert_with(|| {
            reset
                .then(|| take_spare(&SPARE_DECOMPRESS, key))
                .flatten()
                .unwrap_or_else(|| Decompress::new_with_window_bits(false, key.1))
        });
        inflate(decompress, input, out, limit)?;
        if last {
            inflate(decompress, &TAIL, out, limit)?;
            if reset {
                // The peer's next message refers to nothing before it (§7.1.1.2).
                if let Some(mut decompress) = self.decompress.take() {
                    decompress.reset(false);
                    keep_spare(&SPARE_DECOMPRESS, key, decompress);
                }
            }
        }
        Ok(())
    }
}

/// Inflates `input` onto `out`, failing once `out` passes `limit`.
fn inflate(
    decompress: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    let start_in = decompress.total_in();
    loop {
        let consumed = (decompress.total_in() - start_in) as usize;
        if out.len() == out.capacity() {
            // Grow with what came out so far, never past one byte over the
            // limit: that byte is how we learn the limit was passed.
            let grow = out
                .len()
                .clamp(4096, 1 << 20)
                .min(limit.saturating_add(1) - out.len());
            out.reserve_exact(grow);
        }
        let (before_in, before_out) = (decompress.total_in(), decompress.total_out());
        decompress
            .decompress_vec(&input[consumed..], out, FlushDecompress::Sync)
            .map_err(|_| ProtocolError::InvalidCompressedData)?;
        if out.len() > limit {
            return Err(CapacityError::MessageTooLarge {
                size: out.len() as u64,
                limit,
            }
            .into());
        }
        let progressed = decompress.total_in() > before_in || decompress.total_out() > before_out;
        let all_in = (decompress.total_in() - start_in) as usize == input.len();
        // Done once the input is used up and the output did not fill up (so
        // nothing more is pending); or stuck, which only truncated data does.
        if (all_in || !progressed) && out.len() < out.capacity() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(config: &DeflateConfig, offer: &str) -> Option<(DeflateParams, String)> {
        config.negotiate_server([offer])
    }

    fn agreed(config: &DeflateConfig) -> DeflateParams {
        server(config, "permessage-deflate; client_max_window_bits")
            .unwrap()
            .0
    }

    #[test]
    fn server_accepts_browser_offer_with_defaults() {
        let (params, response) = server(
            &DeflateConfig::default(),
            "permessage-deflate; client_max_window_bits",
        )
        .unwrap();
        // §7.1.2.1: the server may name its window unasked; §7.1.2.2: the
        // client's only because the offer has the parameter.
        assert_eq!(
            response,
            "permessage-deflate; server_max_window_bits=13; client_max_window_bits=13"
        );
        assert_eq!(params.server_max_window_bits, Some(13));
        assert_eq!(params.client_max_window_bits, Some(13));
    }

    #[test]
    fn server_defaults_lower_larger_windows_and_keep_smaller_ones() {
        let config = DeflateConfig::default();
        // No client_max_window_bits in the offer: the server must not name it.
        let (params, response) = server(&config, "permessage-deflate").unwrap();
        assert_eq!(response, "permessage-deflate; server_max_window_bits=13");
        assert_eq!(params.client_max_window_bits, None);
        let (params, _) = server(
            &config,
            "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15",
        )
        .unwrap();
        assert_eq!(
            (params.server_max_window_bits, params.client_max_window_bits),
            (Some(13), Some(13))
        );
        let (params, _) = server(
            &config,
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10",
        )
        .unwrap();
        assert_eq!(
            (params.server_max_window_bits, params.client_max_window_bits),
            (Some(9), Some(10))
        );
        // Unlimited: 15 goes without saying.
        let unlimited = config
            .server_max_window_bits(Some(15))
            .client_max_window_bits(Some(15));
        let (_, response) =
            server(&unlimited, "permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(response, "permessage-deflate");
    }

    /// As a client, the defaults offer no window limits and take whatever a
    /// server answers within RFC 7692, as Autobahn's client cases need.
    #[test]
    fn client_with_defaults_accepts_what_servers_answer() {
        let client = DeflateConfig::default();
        assert_eq!(client.offer(), "permessage-deflate; client_max_window_bits");
        let agreed = client.negotiate_client("permessage-deflate").unwrap();
        assert_eq!(
            (agreed.server_max_window_bits, agreed.client_max_window_bits),
            (None, None)
        );
        for (response, server, client_bits) in [
            (
                "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
                10,
                9,
            ),
            (
                "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15",
                15,
                15,
            ),
        ] {
            let agreed = client.negotiate_client(response).unwrap();
            assert_eq!(
                (agreed.server_max_window_bits, agreed.client_max_window_bits),
                (Some(server), Some(client_bits)),
                "{response}"
            );
        }
        // A client that asks for limits holds the server to them.
        let limited = client
            .server_max_window_bits(Some(12))
            .client_max_window_bits(Some(12));
        assert!(limited
            .negotiate_client("permessage-deflate; client_max_window_bits=15")
            .is_err());
        assert!(limited
            .negotiate_client("permessage-deflate; server_max_window_bits=13")
            .is_err());
    }

    #[test]
    fn server_echoes_server_no_context_takeover_and_caps_windows() {
        let config = DeflateConfig::default().client_max_window_bits(Some(10));
        let (params, response) = server(
            &config,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=12",
        )
        .unwrap();
        assert!(params.server_no_context_takeover);
        assert_eq!(params.server_max_window_bits, Some(9));
        assert_eq!(params.client_max_window_bits, Some(10));
        assert_eq!(
            response,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10"
        );
    }

    #[test]
    fn server_does_not_name_client_window_the_client_did_not_offer() {
        let config = DeflateConfig::default()
            .server_max_window_bits(Some(15))
            .client_max_window_bits(Some(10));
        let (params, response) = server(&config, "permessage-deflate").unwrap();
        assert_eq!(params.client_max_window_bits, None);
        assert_eq!(response, "permessage-deflate");
    }

    #[test]
    fn server_declines_invalid_offers_and_takes_the_next() {
        for bad in [
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; unknown_parameter",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(server(&DeflateConfig::default(), bad), None, "{bad}");
            let two = format!("{bad}, permessage-deflate; client_no_context_takeover");
            let (params, _) = server(&DeflateConfig::default(), &two).expect(&two);
            assert!(!params.server_no_context_takeover, "{two}");
        }
    }

    #[test]
    fn server_accepts_the_clients_client_no_context_takeover() {
        let (params, response) = server(
            &DeflateConfig::default(),
            "permessage-deflate; client_no_context_takeover; client_max_window_bits",
        )
        .unwrap();
        assert!(params.client_no_context_takeover);
        assert!(!params.server_no_context_takeover);
        assert_eq!(
            response,
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=13; client_max_window_bits=13"
        );
        // And our client, which offered it, takes the echo.
        let client = DeflateConfig::default().client_no_context_takeover(true);
        let agreed = client.negotiate_client(&response).unwrap();
        assert!(agreed.client_no_context_takeover);
    }

    #[test]
    fn server_reads_offers_across_several_headers() {
        let config = DeflateConfig::default();
        let got = config.negotiate_server(["foo", "permessage-deflate; server_max_window_bits=12"]);
        assert_eq!(got.unwrap().0.server_max_window_bits, Some(12));
    }

    #[test]
    fn client_offer_round_trips_through_server() {
        let client = DeflateConfig::default()
            .server_no_context_takeover(true)
            .server_max_window_bits(Some(11))
            .client_max_window_bits(Some(12));
        let (server_params, response) = server(&DeflateConfig::default(), &client.offer()).unwrap();
        let client_params = client.negotiate_client(&response).unwrap();
        assert!(
            server_params.server_no_context_takeover && client_params.server_no_context_takeover
        );
        assert_eq!(client_params.server_max_window_bits, Some(11));
        assert_eq!(client_params.client_max_window_bits, Some(12));
    }

    #[test]
    fn client_fails_on_responses_that_break_its_offer() {
        let client = DeflateConfig::default()
            .server_no_context_takeover(true)
            .server_max_window_bits(Some(10))
            .client_max_window_bits(Some(10));
        for bad in [
            // dropped server_no_context_takeover
            "permessage-deflate",
            // windows larger than offered
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=11",
            // no value in a response
            "permessage-deflate; server_no_context_takeover; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover; bogus",
            "permessage-deflate; server_no_context_takeover, permessage-deflate",
            "other-extension",
        ] {
            assert!(client.negotiate_client(bad).is_err(), "{bad}");
        }
        assert!(client
            .negotiate_client(
                "permessage-deflate; server_no_context_takeover; client_max_window_bits=9"
            )
            .is_ok());
    }

    fn roundtrip(params: &DeflateParams, messages: &[Vec<u8>]) {
        let mut sender = Deflate::new(params, true);
        let mut receiver = Deflate::new(params, false);
        for m in messages {
            let compressed = sender.compress(m).unwrap();
            // Split the compressed payload as fragments would.
            let mut out = Vec::new();
            let mid = compressed.len() / 2;
            receiver
                .decompress(&compressed[..mid], false, &mut out, 1 << 30)
                .unwrap();
            receiver
                .decompress(&compressed[mid..], true, &mut out, 1 << 30)
                .unwrap();
            assert_eq!(&out, m);
        }
    }

    #[test]
    fn compresses_and_inflates_with_every_window_and_takeover_setting() {
        let text: Vec<u8> =
            br#"{"user":"alice","action":"post","text":"hello hello hello"}"#.repeat(50);
        let messages = vec![
            text.clone(),
            text.clone(),
            b"short".to_vec(),
            Vec::new(),
            text,
        ];
        for bits in [None, Some(8), Some(9), Some(12), Some(15)] {
            for takeover in [false, true] {
                let params = DeflateParams {
                    server_no_context_takeover: takeover,
                    client_no_context_takeover: takeover,
                    server_max_window_bits: bits,
                    client_max_window_bits: bits,
                    level: 6,
                    min_size: 0,
                };
                roundtrip(&params, &messages);
            }
        }
    }

    /// Regression: an empty message right after another compressed to nothing,
    /// and the receiver's appended tail then corrupted the stream.
    #[test]
    fn empty_message_after_another_keeps_the_stream_in_step() {
        let params = agreed(&DeflateConfig::default());
        roundtrip(
            &params,
            &[b"first message".to_vec(), Vec::new(), b"third".to_vec()],
        );
    }

    #[test]
    fn context_takeover_makes_repeated_messages_smaller() {
        let mut deflate = Deflate::new(&agreed(&DeflateConfig::default()), true);
        let message = b"the quick brown fox jumps over the lazy dog, again and again".repeat(4);
        let first = deflate.compress(&message).unwrap().len();
        let second = deflate.compress(&message).unwrap().len();
        assert!(second < first / 2, "{second} vs {first}");
    }

    fn params_with(takeover: bool, bits: Option<u8>) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: !takeover,
            client_no_context_takeover: !takeover,
            server_max_window_bits: bits,
            client_max_window_bits: bits,
            level: 6,
            min_size: 0,
        }
    }

    #[test]
    fn nothing_is_allocated_until_a_message_needs_it() {
        let mut deflate = Deflate::new(&params_with(true, None), true);
        assert!(deflate.compress.is_none() && deflate.decompress.is_none());
        // An empty message is a fixed stored block: still nothing.
        assert_eq!(&deflate.compress(b"").unwrap()[..], &[0x00]);
        assert!(deflate.compress.is_none());
        let compressed = deflate.compress(&b"hello, hello, hello".repeat(8)).unwrap();
        assert!(deflate.compress.is_some() && deflate.decompress.is_none());
        let mut receiver = Deflate::new(&params_with(true, None), false);
        let mut out = Vec::new();
        receiver
            .decompress(&compressed, true, &mut out, 1 << 20)
            .unwrap();
        assert!(receiver.decompress.is_some() && receiver.compress.is_none());
    }

    /// Without context takeover nothing of a message is needed for the next
    /// (RFC 7692 §7.1.1), so neither side keeps its state between messages;
    /// with it, both must.
    #[test]
    fn state_is_dropped_between_messages_only_without_context_takeover() {
        let message = br#"{"user":"alice","text":"hello hello hello"}"#.repeat(20);
        for bits in [None, Some(8), Some(10)] {
            for takeover in [true, false] {
                let params = params_with(takeover, bits);
                let mut sender = Deflate::new(&params, true);
                let mut receiver = Deflate::new(&params, false);
                for _ in 0..3 {
                    let compressed = sender.compress(&message).unwrap();
                    assert_eq!(sender.compress.is_some(), takeover, "{bits:?} {takeover}");
                    let mut out = Vec::new();
                    let mid = compressed.len() / 2;
                    receiver
                        .decompress(&compressed[..mid], false, &mut out, 1 << 20)
                        .unwrap();
                    // Mid-message the state is needed whatever was agreed.
                    assert!(receiver.decompress.is_some());
                    receiver
                        .decompress(&compressed[mid..], true, &mut out, 1 << 20)
                        .unwrap();
                    assert_eq!(
                        receiver.decompress.is_some(),
                        takeover,
                        "{bits:?} {takeover}"
                    );
                    assert_eq!(out, message);
                }
            }
        }
    }

    /// Connections without context takeover share one reset compressor and
    /// one reset decompressor per thread; they never go to a connection with
    /// context takeover, nor to one with another window or level.
    #[test]
    fn one_spare_compressor_per_thread_for_connections_without_takeover() {
        // A thread of its own: its spare starts empty.
        std::thread::spawn(|| {
            let spare = || SPARE_COMPRESS.with(|s| s.borrow().as_ref().map(|(key, _)| *key));
            let spare_decompress =
                || SPARE_DECOMPRESS.with(|s| s.borrow().as_ref().map(|(key, _)| *key));
            let message = b"the quick brown fox jumps over the lazy dog, again and again".repeat(4);
            let params = params_with(false, None);
            let (mut a, mut b) = (Deflate::new(&params, true), Deflate::new(&params, true));
            assert_eq!(spare(), None);
            let first = a.compress(&message).unwrap();
            assert_eq!(spare(), Some((6, 15)));
            // b takes a's compressor, reset: the same bytes as a fresh one.
            let second = b.compress(&message).unwrap();
            assert_eq!(first, second);
            assert_eq!(spare(), Some((6, 15)));
            let mut takeover = Deflate::new(&params_with(true, None), true);
            takeover.compress(&message).unwrap();
            takeover.compress(&message).unwrap();
            assert!(takeover.compress.is_some());
            assert_eq!(spare(), Some((6, 15)));
            let mut small = Deflate::new(&params_with(false, Some(10)), true);
            let third = small.compress(&message).unwrap();
            assert_eq!(spare(), Some((6, 10)));
            let mut receiver = Deflate::new(&params_with(false, Some(10)), false);
            let mut out = Vec::new();
            assert_eq!(spare_decompress(), None);
            receiver
                .decompress(&third, true, &mut out, 1 << 20)
                .unwrap();
            assert_eq!(out, message);
            assert!(receiver.decompress.is_none());
            assert_eq!(spare_decompress(), Some((0, 10)));
            // Another connection's receiver takes it, reset.
            let mut other = Deflate::new(&params_with(false, Some(10)), false);
            out.clear();
            other.decompress(&third, true, &mut out, 1 << 20).unwrap();
            assert_eq!(out, message);
            assert_eq!(spare_decompress(), Some((0, 10)));
        })
        .join()
        .unwrap();
    }

    /// A message compressed after the compressor was dropped is the same as
    /// one from a compressor that was reset: the first of a stream.
    #[test]
    fn without_context_takeover_every_message_compresses_alike() {
        let mut deflate = Deflate::new(&params_with(false, None), true);
        let message = b"the quick brown fox jumps over the lazy dog, again and again".repeat(4);
        let first = deflate.compress(&message).unwrap();
        let second = deflate.compress(&message).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn window_8_sends_stored_blocks_the_peer_can_inflate_with_a_256_byte_window() {
        let params = DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: Some(8),
            client_max_window_bits: Some(8),
            level: 6,
            min_size: 0,
        };
        let mut sender = Deflate::new(&params, true);
        let message = b"abcdefgh".repeat(200);
        let compressed = sender.compress(&message).unwrap();
        assert!(compressed.len() >= message.len(), "stored, not compressed");
        let mut receiver = Deflate::new(&params, false);
        assert_eq!(receiver.decompress_window, 9);
        let mut out = Vec::new();
        receiver
            .decompress(&compressed, true, &mut out, 1 << 20)
            .unwrap();
        assert_eq!(out, message);
    }

    #[test]
    fn deflate_bomb_stops_at_the_limit_plus_one_byte() {
        let params = agreed(&DeflateConfig::default());
        let mut sender = Deflate::new(&params, true);
        let bomb = sender.compress(&vec![0u8; 8 << 20]).unwrap();
        assert!(
            bomb.len() < 16 << 10,
            "8 MiB of zeros compress to {} bytes",
            bomb.len()
        );
        let mut receiver = Deflate::new(&params, false);
        let mut out = Vec::new();
        let limit = 100_000;
        let err = receiver
            .decompress(&bomb, true, &mut out, limit)
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Capacity(CapacityError::MessageTooLarge { .. })
        ));
        assert!(out.capacity() <= limit + 1, "held {} bytes", out.capacity());
    }

    #[test]
    fn corrupt_data_is_a_protocol_error() {
        let mut receiver = Deflate::new(&agreed(&DeflateConfig::default()), false);
        let err = receiver
            .decompress(&[0xFF, 0xFF, 0xFF, 0xFF], true, &mut Vec::new(), 1000)
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Protocol(ProtocolError::InvalidCompressedData)
        ));
    }
}
