//! The write queue: encoded bytes waiting for the transport, in order.
//!
//! It owns only bytes and their order; what may be queued, and when it is
//! written, is the connection core's and the driver's business.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use crate::codec::FrameSink;

/// The most I/O slices handed to one vectored write.
pub(super) const MAX_IO_SLICES: usize = 64;
/// An empty buffer larger than this is given back to the allocator after a burst.
pub(super) const SHRINK_ABOVE: usize = 64 << 10;

/// Encoded bytes waiting for the transport, in order: the `shared` segments, then
/// `tail`. Headers and small payloads are copied into `tail`; large unmasked
/// payloads and prepared messages are queued as the caller's `Bytes`, and all of
/// it leaves in vectored writes, so a payload is never copied on its way out.
#[derive(Debug, Default)]
pub(super) struct WriteQueue {
    shared: VecDeque<Bytes>,
    shared_len: usize,
    tail: BytesMut,
    /// Bytes handed to the transport so far: positions in the queue are
    /// counted from the start of the connection, so a frame can be known to
    /// have left (see `Core::control_end`).
    written: u64,
    /// A segment larger than `SHRINK_ABOVE` was queued since the queue was
    /// last idle: see `shrink_if_idle`.
    held_large: bool,
}

impl WriteQueue {
    pub(super) fn len(&self) -> usize {
        self.shared_len + self.tail.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many bytes have been written since the connection started.
    pub(super) fn written(&self) -> u64 {
        self.written
    }

    /// The position just past the last byte queued.
    pub(super) fn end(&self) -> u64 {
        self.written + self.len() as u64
    }

    /// Queues `bytes` after everything queued so far.
    pub(super) fn push_shared(&mut self, bytes: Bytes) {
        if !self.tail.is_empty() {
            // Ends the current tail segment; its spare capacity stays with `tail`.
            let sealed = self.tail.split().freeze();
            self.shared_len += sealed.len();
            self.shared.push_back(sealed);
        }
        self.shared_len += bytes.len();
        self.held_large |= bytes.len() > SHRINK_ABOVE;
        self.shared.push_back(bytes);
    }

    /// The queued bytes as I/O slices, as many as one write takes.
    pub(super) fn slices(&self) -> ([IoSlice<'_>; MAX_IO_SLICES], usize) {
        let mut slices = [IoSlice::new(&[]); MAX_IO_SLICES];
        let segments = self
            .shared
            .iter()
            .map(|b| &b[..])
            .chain(std::iter::once(&self.tail[..]))
            .filter(|s| !s.is_empty());
        let mut n = 0;
        for (slot, segment) in slices.iter_mut().zip(segments) {
            *slot = IoSlice::new(segment);
            n += 1;
        }
        (slices, n)
    }

    /// Drops the first `n` queued bytes: the transport took them.
    pub(super) fn advance(&mut self, mut n: usize) {
        self.written += n as u64;
        while n > 0 {
            match self.shared.front_mut() {
                Some(front) if front.len() <= n => {
                    n -= front.len();
                    self.shared_len -= front.len();
                    self.shared.pop_front();
                }
                Some(front) => {
                    front.advance(n);
                    self.shared_len -= n;
                    return;
                }
                None => {
                    self.tail.advance(n);
                    return;
                }
            }
        }
    }

    /// Forgets everything queued and frees the buffers; returns whether any
    /// bytes were dropped unwritten.
    pub(super) fn discard(&mut self) -> bool {
        let dropped = !self.is_empty();
        let written = self.written;
        *self = WriteQueue::default();
        self.written = written;
        dropped
    }

    /// Gives a large empty buffer back to the allocator after a burst.
    pub(super) fn shrink_if_idle(&mut self) {
        if self.is_empty() && self.tail.capacity() > SHRINK_ABOVE {
            self.tail = BytesMut::new();
        }
        // After a large segment, freed at any size: made while a burst of
        // large messages had its payload buffers live, this small buffer
        // sits above them in the heap and, kept, stops glibc from giving
        // them back (10,000 idle connections, 100 of which echo 1 MiB at
        // once: 7.1 MiB kept after the burst, 0.1 MiB with this). Making it
        // again costs one small allocation per large message; smaller ones
        // keep it, and allocate nothing.
        if self.shared.is_empty() && (self.held_large || self.shared.capacity() > MAX_IO_SLICES) {
            self.shared = VecDeque::new();
            self.held_large = false;
        }
    }
}

#[cfg(test)]
impl WriteQueue {
    /// The last segment queued without copying.
    pub(super) fn last_shared(&self) -> Option<&Bytes> {
        self.shared.back()
    }

    /// Bytes copied into the tail segment.
    pub(super) fn tail_len(&self) -> usize {
        self.tail.len()
    }
}

impl FrameSink for WriteQueue {
    fn buf(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    fn try_share(&mut self, payload: &Bytes) -> bool {
        self.push_shared(payload.clone());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(queue: &mut WriteQueue, max_per_write: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while !queue.is_empty() {
            let (slices, n) = queue.slices();
            let mut budget = max_per_write;
            for slice in &slices[..n] {
                let take = slice.len().min(budget);
                out.extend_from_slice(&slice[..take]);
                budget -= take;
            }
            let written = max_per_write - budget;
            queue.advance(written);
        }
        out
    }

    #[test]
    fn write_queue_keeps_order_across_shared_and_copied_segments_whatever_the_write_sizes() {
        for max_per_write in [1, 3, 7, 1000, usize::MAX] {
            let mut queue = WriteQueue::default();
            queue.tail.extend_from_slice(b"ab");
            queue.push_shared(Bytes::from_static(b"cde"));
            queue.tail.extend_from_slice(b"f");
            queue.push_shared(Bytes::from_static(b"gh"));
            queue.push_shared(Bytes::from_static(b""));
            queue.tail.extend_from_slice(b"ij");
            assert_eq!(queue.len(), 10);
            assert_eq!(queue.end(), 10);
            assert_eq!(
                drain(&mut queue, max_per_write),
                b"abcdefghij",
                "{max_per_write}"
            );
            assert_eq!((queue.len(), queue.written()), (0, 10));
        }
    }

    #[test]
    fn discard_reports_dropped_bytes_and_keeps_the_position() {
        let mut queue = WriteQueue::default();
        queue.tail.extend_from_slice(b"abc");
        queue.advance(1);
        assert!(queue.discard());
        assert_eq!((queue.len(), queue.written()), (0, 1));
        assert!(!queue.discard());
    }

    /// Guards the memory a burst of large messages leaves behind: the
    /// queue's segment list, made during the burst, must not outlive it.
    /// After smaller ones it stays, so an echo allocates nothing per message.
    #[test]
    fn an_idle_queue_keeps_no_segment_list_after_a_large_segment() {
        let mut queue = WriteQueue::default();
        queue.tail.extend_from_slice(b"hdr");
        queue.push_shared(Bytes::from(vec![1u8; 16 << 10]));
        drain(&mut queue, usize::MAX);
        queue.shrink_if_idle();
        assert!(queue.shared.capacity() > 0, "kept after 16 KiB");

        queue.tail.extend_from_slice(b"hdr");
        queue.push_shared(Bytes::from(vec![1u8; SHRINK_ABOVE + 1]));
        queue.shrink_if_idle();
        assert!(queue.shared.capacity() > 0, "not idle yet");
        drain(&mut queue, 1000);
        queue.shrink_if_idle();
        assert_eq!(queue.shared.capacity(), 0);
    }
}
