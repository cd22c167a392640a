//! No heap allocation per message in steady state, for messages that fit the
//! buffers: a counting global allocator watches an echo after a warm-up.
//!
//! One test in its own binary, so no other test's allocations are counted.
// A counting global allocator is unsafe to implement; each block says why it is sound.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::client_frame;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wscodec::{Config, Role, WebSocket};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; counting
// touches only atomics and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Echoes `frame` through a server WebSocket `rounds` times; returns the
/// allocations made during the last `measured` rounds.
async fn allocations_per_echo(
    frame: &[u8],
    payload_len: usize,
    rounds: usize,
    measured: usize,
) -> usize {
    let (mut peer, io) = tokio::io::duplex(1 << 20);
    let mut ws = WebSocket::from_upgraded(io, Role::Server, Config::default());
    let header_len = if payload_len < 126 { 2 } else { 4 };
    let mut echo = vec![0u8; header_len + payload_len];
    for round in 0..rounds {
        if round == rounds - measured {
            ALLOCATIONS.store(0, Ordering::Relaxed);
            COUNTING.store(true, Ordering::Relaxed);
        }
        peer.write_all(frame).await.unwrap();
        let message = ws.next().await.unwrap().unwrap();
        ws.send(message).await.unwrap();
        peer.read_exact(&mut echo).await.unwrap();
    }
    COUNTING.store(false, Ordering::Relaxed);
    ALLOCATIONS.load(Ordering::Relaxed)
}

#[test]
fn echo_makes_no_heap_allocation_per_message_in_steady_state() {
    // The counter counts: one Vec is one allocation.
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    drop(std::hint::black_box(vec![1u8; 10]));
    COUNTING.store(false, Ordering::Relaxed);
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 1);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (opcode, len) in [
        (0x1, 16),
        (0x2, 16),
        (0x1, 1024),
        (0x2, 1024),
        (0x2, 16 * 1024),
    ] {
        let payload = vec![b'x'; len];
        let frame = client_frame(true, opcode, &payload);
        let allocations = runtime.block_on(allocations_per_echo(&frame, len, 2000, 1000));
        assert_eq!(
            allocations, 0,
            "{allocations} allocations over 1000 echoes of {len}-byte messages (opcode {opcode})"
        );
    }
}
