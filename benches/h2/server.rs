//! Echo server for the HTTP/2 against HTTP/1.1 benchmark (`benches/h2/run.sh`):
//! the same echo loop as `examples/echo` (every data message fed back,
//! flushed when the socket next waits for input) behind two listeners, on a
//! single-threaded runtime.
//!
//! ```text
//! h2_echo H1_ADDR H2_ADDR [--stream-window BYTES] [--conn-window BYTES] [--max-frame BYTES]
//! ```
//!
//! - `H1_ADDR`: WebSockets over HTTP/1.1, `wscodec::accept` on each TCP
//!   connection (RFC 6455 §4).
//! - `H2_ADDR`: h2c with prior knowledge; the connection advertises
//!   `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 8441 §3) and every extended
//!   CONNECT becomes a WebSocket through `wscodec::h2::accept`, one task per
//!   stream. `--stream-window` and `--conn-window` set h2's receive windows
//!   (`initial_window_size`, `initial_connection_window_size`; h2's default
//!   is 65,535 for both); `--max-frame` the largest DATA frame it accepts
//!   (`max_frame_size`, SETTINGS_MAX_FRAME_SIZE; default 16,384, so a 16 KiB
//!   message and its header take two frames). The data-frame budget is raised as the `wscodec::h2`
//!   docs say for many sockets on one connection.
//!
//! It prints `listening h1=ADDR h2=ADDR` when both listen. On SIGUSR1 it
//! prints one line, `heap=B rss_kb=K sockets=S`: the bytes allocated and not
//! freed (a counting global allocator around the system's, so allocator
//! slack and fragmentation are not in it; RSS is), the resident set, and the
//! WebSockets open. The counter costs one uncontended atomic add per
//! allocation and free, in both modes alike.
// A global allocator is an unsafe impl; the crate denies unsafe code, this
// benchmark allows it for that one purpose.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use wscodec::{Config, WebSocket};

/// The system allocator, counting the bytes it has handed out and not had
/// back.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static SOCKETS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are the caller's; the counter only
// records sizes and never touches the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see the impl).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see the impl).
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is (see the impl).
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Counts a WebSocket as open for as long as it lives.
struct Open;

impl Open {
    fn new() -> Open {
        SOCKETS.fetch_add(1, Ordering::Relaxed);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        SOCKETS.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Options {
    h1: String,
    h2: String,
    stream_window: u32,
    conn_window: u32,
    max_frame: u32,
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let usage =
        "h2_echo H1_ADDR H2_ADDR [--stream-window BYTES] [--conn-window BYTES] [--max-frame BYTES]";
    let mut o = Options {
        h1: args.next().expect(usage),
        h2: args.next().expect(usage),
        stream_window: 65_535,
        conn_window: 65_535,
        max_frame: 16_384,
    };
    while let Some(flag) = args.next() {
        let value: u32 = args.next().and_then(|v| v.parse().ok()).expect(usage);
        match flag.as_str() {
            "--stream-window" => o.stream_window = value,
            "--conn-window" => o.conn_window = value,
            "--max-frame" => o.max_frame = value,
            _ => panic!("{usage}"),
        }
    }
    o
}

/// The loop of `examples/echo`: `feed`, so that replies to pipelined
/// messages leave together when the socket next waits for input.
async fn echo<T: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<T>) {
    let _open = Open::new();
    while let Some(Ok(message)) = ws.next().await {
        if !message.is_control() && futures::SinkExt::feed(&mut ws, message).await.is_err() {
            break;
        }
    }
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let o = options();
    let h1 = TcpListener::bind(&o.h1).await?;
    let h2 = TcpListener::bind(&o.h2).await?;
    let mut builder = h2::server::Builder::new();
    builder
        .enable_connect_protocol()
        .initial_window_size(o.stream_window)
        .initial_connection_window_size(o.conn_window)
        .max_frame_size(o.max_frame)
        // src/h2/mod.rs: one DATA frame per message, so the budget counts
        // messages; a thousand sockets with messages waiting need more than
        // the default.
        .data_frame_budget(1 << 20);
    let mut usr1 = signal(SignalKind::user_defined1())?;
    println!("listening h1={} h2={}", h1.local_addr()?, h2.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        tokio::select! {
            accepted = h1.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                tcp.set_nodelay(true)?;
                tokio::spawn(async move {
                    if let Ok(ws) = wscodec::accept(tcp).await {
                        echo(ws).await;
                    }
                });
            }
            accepted = h2.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                tcp.set_nodelay(true)?;
                let handshake = builder.handshake::<_, Bytes>(tcp);
                tokio::spawn(async move {
                    let Ok(mut connection) = handshake.await else {
                        return;
                    };
                    // Polling accept drives the connection for all its streams.
                    while let Some(Ok((request, respond))) = connection.accept().await {
                        tokio::spawn(async move {
                            if let Ok(ws) = wscodec::h2::accept(request, respond, Config::default()) {
                                echo(ws).await;
                            }
                        });
                    }
                });
            }
            _ = usr1.recv() => {
                println!(
                    "heap={} rss_kb={} sockets={}",
                    LIVE.load(Ordering::Relaxed),
                    rss_kb(),
                    SOCKETS.load(Ordering::Relaxed)
                );
                std::io::stdout().flush()?;
            }
        }
    }
}
