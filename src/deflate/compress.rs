//! permessage-deflate's data (RFC 7692 §7.2): the per-connection compressor
//! and decompressor, bounded inflation, and the per-thread spares that
//! connections without context takeover share. It never looks at a header:
//! [`DeflateParams`] says how to behave.

use std::cell::RefCell;
use std::thread::LocalKey;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

use super::DeflateParams;
use crate::error::{CapacityError, Error, ProtocolError};

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
    pub(super) static SPARE_COMPRESS: Spare<Compress> = const { RefCell::new(None) };
    pub(super) static SPARE_DECOMPRESS: Spare<Decompress> = const { RefCell::new(None) };
}

#[cfg(test)]
thread_local! {
    /// How many messages this thread compressed: what the tests of a
    /// broadcast compressed once count.
    pub(crate) static COMPRESSED_MESSAGES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
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

/// Compressor and decompressor of one connection.
pub(crate) struct Deflate {
    /// Created by the first message we compress. With `reset_compress`,
    /// reset after each message and given to the thread's spare: between
    /// messages it would only hold memory.
    pub(super) compress: Option<Compress>,
    /// Created by the first compressed message we receive; with
    /// `reset_decompress`, given back the same way after each message.
    pub(super) decompress: Option<Decompress>,
    reset_compress: bool,
    reset_decompress: bool,
    min_size: usize,
    level: u32,
    pub(super) compress_window: u8,
    pub(super) decompress_window: u8,
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

    /// The (level, window) this side compresses with: what a message
    /// compressed on its own must match to be sent here as it is (see
    /// [`compress_alone`]).
    pub(crate) fn compress_key(&self) -> (u32, u8) {
        (self.level, self.compress_window)
    }

    /// Makes our next message refer to nothing before it: after a message
    /// compressed elsewhere ([`compress_alone`]) went out, the peer's window
    /// holds that message's bytes, not what our compressor remembers, so a
    /// back-reference into our history would decode as garbage (RFC 7692
    /// §7.2.1 lets any message start afresh; only its own history is ours to
    /// refer to). Without context takeover there is nothing to forget.
    pub(crate) fn forget_history(&mut self) {
        if let Some(compress) = self.compress.as_mut() {
            compress.reset();
        }
    }

    /// Compresses one message payload (§7.2.1).
    pub(crate) fn compress(&mut self, payload: &[u8]) -> Result<Bytes, Error> {
        #[cfg(test)]
        COMPRESSED_MESSAGES.with(|n| n.set(n.get() + 1));
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

/// Compresses `payload` as a message that refers to nothing before it, with
/// `key`'s level and window: what every connection whose compressor has that
/// key may send as it is, whatever context takeover it agreed. The peer's
/// decompressor accepts any DEFLATE data whose distances stay within the
/// window agreed (RFC 7692 §7.1.2.1), and a message that starts afresh has
/// no distance into earlier messages (§7.1.1).
pub(crate) fn compress_alone(payload: &[u8], key: (u32, u8)) -> Result<Bytes, Error> {
    let (level, window) = key;
    Deflate {
        compress: None,
        decompress: None,
        reset_compress: true,
        reset_decompress: true,
        min_size: 0,
        level,
        compress_window: window,
        decompress_window: 15,
    }
    .compress(payload)
}
