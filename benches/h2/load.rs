//! Load generator for the HTTP/2 against HTTP/1.1 benchmark
//! (`benches/h2/run.sh`), against `benches/h2/server.rs`.
//!
//! ```text
//! h2_load h1|h2 ADDR --sockets N --size B (--inflight K | --window T) --seconds S
//!         [--server-pid PID] [--clk-tck 100] [--stream-window W] [--conn-window W]
//!         [--max-frame F]
//!     prints: rate=<messages/s> server_us=<server CPU µs per message>
//!             load_us=<this process's CPU µs per message> server_core=<server CPU / wall>
//!             load_core=<..> messages=<echoes counted>
//! h2_load h1|h2 ADDR --sockets N --size B --idle --hold S
//!     opens N sockets, echoes one B-byte message on each, prints `ready`,
//!     then holds them S seconds (for the server's memory per socket)
//! ```
//!
//! `h1` opens N TCP connections, each upgraded with `wscodec::connect`
//! (RFC 6455 §4.1); `h2` opens ONE TCP connection, h2c with prior knowledge,
//! and N extended CONNECT streams on it with `wscodec::h2::connect` (RFC 8441
//! §4). Either way each socket is the crate's `WebSocket`, split: a writer
//! keeps `--inflight K` binary messages in flight on that socket (`--window
//! T`: T in flight across all sockets instead), feeding while it may and
//! flushing before it waits, and a reader checks every echo: binary, the
//! length sent, the socket's next sequence number in the first 8 bytes and
//! the pattern after them. A wrong or missing echo exits non-zero with no
//! rate line. Split halves rather than one loop because HTTP/2 flow control
//! would otherwise deadlock: a socket blocked writing into an exhausted
//! stream window must still read, or the server's window never reopens.
//!
//! CPU per message comes from `/proc/PID/stat` (utime + stime) of the
//! server (`--server-pid`) and of this process, sampled at the start and
//! the end of the measured window, after every socket is open and half a
//! second of warm-up. The runtime is single-threaded, like the server's.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use wscodec::{Config, Message, WebSocket};

static MEASURING: AtomicBool = AtomicBool::new(false);
static DONE: AtomicU64 = AtomicU64::new(0);
static OPEN: AtomicUsize = AtomicUsize::new(0);

const USAGE: &str = "\
h2_load h1|h2 ADDR --sockets N --size B (--inflight K | --window T) --seconds S
        [--server-pid PID] [--clk-tck 100] [--stream-window W] [--conn-window W] [--max-frame F]
h2_load h1|h2 ADDR --sockets N --size B --idle --hold S";

struct Options {
    h2: bool,
    addr: String,
    sockets: usize,
    size: usize,
    inflight: usize,
    window: Option<usize>,
    seconds: f64,
    server_pid: Option<u32>,
    clk_tck: f64,
    stream_window: u32,
    conn_window: u32,
    max_frame: u32,
    idle: bool,
    hold: f64,
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let h2 = match args.next().as_deref() {
        Some("h1") => false,
        Some("h2") => true,
        _ => usage(),
    };
    let mut o = Options {
        h2,
        addr: args.next().unwrap_or_else(|| usage()),
        sockets: 1,
        size: 16,
        inflight: 16,
        window: None,
        seconds: 2.0,
        server_pid: None,
        clk_tck: 100.0,
        stream_window: 65_535,
        conn_window: 65_535,
        max_frame: 16_384,
        idle: false,
        hold: 10.0,
    };
    while let Some(flag) = args.next() {
        if flag == "--idle" {
            o.idle = true;
            continue;
        }
        let value = args.next().unwrap_or_else(|| usage());
        fn num<T: std::str::FromStr>(v: &str) -> T {
            v.parse().unwrap_or_else(|_| usage())
        }
        match flag.as_str() {
            "--sockets" => o.sockets = num(&value),
            "--size" => o.size = num(&value),
            "--inflight" => o.inflight = num(&value),
            "--window" => o.window = Some(num(&value)),
            "--seconds" => o.seconds = num(&value),
            "--server-pid" => o.server_pid = Some(num(&value)),
            "--clk-tck" => o.clk_tck = num(&value),
            "--stream-window" => o.stream_window = num(&value),
            "--conn-window" => o.conn_window = num(&value),
            "--max-frame" => o.max_frame = num(&value),
            "--hold" => o.hold = num(&value),
            _ => usage(),
        }
    }
    if o.size < 8 || o.sockets == 0 || o.inflight == 0 || o.window == Some(0) {
        eprintln!("h2_load: --size must be at least 8 (the sequence number); counts at least 1");
        std::process::exit(2);
    }
    o
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

/// A wrong echo or a lost socket ends the run with no rate line.
fn fail(what: std::fmt::Arguments<'_>) -> ! {
    eprintln!("h2_load: {what}");
    std::process::exit(1)
}

fn pattern(size: usize) -> Bytes {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Message `seq`: the pattern with `seq` in its first 8 bytes.
fn message(seq: u64, pattern: &Bytes) -> Message {
    let mut data = BytesMut::from(&pattern[..]);
    data[..8].copy_from_slice(&seq.to_le_bytes());
    Message::binary(data.freeze())
}

fn check(message: Message, seq: u64, pattern: &Bytes) {
    let Message::Binary(data) = message else {
        fail(format_args!("echo {seq} is not a binary message"));
    };
    if data.len() != pattern.len() {
        fail(format_args!(
            "echo {seq}: {} bytes, {} sent",
            data.len(),
            pattern.len()
        ));
    }
    if data[..8] != seq.to_le_bytes() {
        fail(format_args!("echo out of order: {seq} was due"));
    }
    if data[8..] != pattern[8..] {
        fail(format_args!("echo {seq}: payload differs"));
    }
}

/// Connects one socket the way `o` says.
enum Opener {
    H1(String),
    H2(h2::client::SendRequest<Bytes>, String),
}

fn url(addr: &str) -> String {
    format!("ws://{addr}/echo")
}

/// What to do with an open socket.
enum Job {
    /// Echo traffic until the process ends.
    Traffic {
        permits: Arc<Semaphore>,
        pattern: Bytes,
    },
    /// One echo, then nothing for `hold` seconds.
    Idle { pattern: Bytes, hold: f64 },
}

/// Opens a socket and does `job` on it.
async fn with_socket(opener: Opener, job: Job) {
    match opener {
        Opener::H1(addr) => {
            let tcp = TcpStream::connect(&addr)
                .await
                .unwrap_or_else(|e| fail(format_args!("connect: {e}")));
            tcp.set_nodelay(true).unwrap();
            let (ws, _) = wscodec::connect(tcp, &url(&addr))
                .await
                .unwrap_or_else(|e| fail(format_args!("HTTP/1.1 upgrade: {e}")));
            run(job, ws).await
        }
        Opener::H2(mut send, addr) => {
            let request = http::Request::get(url(&addr)).body(()).unwrap();
            let (ws, _) = wscodec::h2::connect(&mut send, request, Config::default())
                .await
                .unwrap_or_else(|e| fail(format_args!("extended CONNECT: {e}")));
            run(job, ws).await
        }
    }
}

async fn run<T: AsyncRead + AsyncWrite + Unpin>(job: Job, ws: WebSocket<T>) {
    match job {
        Job::Traffic { permits, pattern } => traffic(ws, &permits, &pattern).await,
        Job::Idle { pattern, hold } => idle(ws, &pattern, hold).await,
    }
}

async fn traffic<T: AsyncRead + AsyncWrite + Unpin>(
    ws: WebSocket<T>,
    permits: &Semaphore,
    pattern: &Bytes,
) {
    OPEN.fetch_add(1, Ordering::Relaxed);
    let (mut tx, mut rx) = ws.split();
    let writer = async {
        for seq in 0u64.. {
            match permits.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(_) => {
                    // Nothing more may go: send what was fed, then wait for
                    // an echo to free a slot.
                    if let Err(e) = tx.flush().await {
                        fail(format_args!("flush: {e}"));
                    }
                    permits.acquire().await.unwrap().forget();
                }
            }
            if let Err(e) = tx.feed(message(seq, pattern)).await {
                fail(format_args!("send: {e}"));
            }
        }
    };
    let reader = async {
        let mut seq = 0u64;
        while let Some(echo) = rx.next().await {
            match echo {
                Ok(m) => check(m, seq, pattern),
                Err(e) => fail(format_args!("receive: {e}")),
            }
            seq += 1;
            if MEASURING.load(Ordering::Relaxed) {
                DONE.fetch_add(1, Ordering::Relaxed);
            }
            permits.add_permits(1);
        }
        fail(format_args!("the server closed a socket"));
    };
    tokio::join!(writer, reader);
}

async fn idle<T: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<T>, pattern: &Bytes, hold: f64) {
    if let Err(e) = ws.send(message(0, pattern)).await {
        fail(format_args!("send: {e}"));
    }
    match ws.next().await {
        Some(Ok(m)) => check(m, 0, pattern),
        _ => fail(format_args!("no echo")),
    }
    OPEN.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    drop(ws);
}

/// The one h2c connection all sockets share in `h2` mode.
async fn h2_connection(o: &Options) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(&o.addr)
        .await
        .unwrap_or_else(|e| fail(format_args!("connect: {e}")));
    tcp.set_nodelay(true).unwrap();
    let mut builder = h2::client::Builder::new();
    builder
        // Know at once when the server's SETTINGS arrive (wscodec::h2::connect).
        .initial_max_send_streams(0)
        .initial_window_size(o.stream_window)
        .initial_connection_window_size(o.conn_window)
        .max_frame_size(o.max_frame)
        .data_frame_budget(1 << 20);
    let (send, connection) = builder
        .handshake::<_, Bytes>(tcp)
        .await
        .unwrap_or_else(|e| fail(format_args!("h2 handshake: {e}")));
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            fail(format_args!("the h2 connection failed: {e}"));
        }
    });
    send
}

/// utime + stime of a process, in clock ticks (proc(5)).
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| fail(format_args!("/proc/{pid}/stat: {e}")));
    // The fields after the parenthesised command name, from field 3 (state).
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> u64 { fields.get(n - 3).and_then(|f| f.parse().ok()).unwrap_or(0) };
    field(14) + field(15)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let o = Arc::new(options());
    let pattern = pattern(o.size);
    let send = match o.h2 {
        true => Some(h2_connection(&o).await),
        false => None,
    };
    let shared = o.window.map(|t| Arc::new(Semaphore::new(t)));
    let started = Instant::now();
    for _ in 0..o.sockets {
        let opener = match &send {
            Some(send) => Opener::H2(send.clone(), o.addr.clone()),
            None => Opener::H1(o.addr.clone()),
        };
        let pattern = pattern.clone();
        if o.idle {
            let hold = o.hold;
            tokio::spawn(with_socket(opener, Job::Idle { pattern, hold }));
        } else {
            let permits = shared
                .clone()
                .unwrap_or_else(|| Arc::new(Semaphore::new(o.inflight)));
            tokio::spawn(with_socket(opener, Job::Traffic { permits, pattern }));
        }
    }
    while OPEN.load(Ordering::Relaxed) < o.sockets {
        if started.elapsed() > Duration::from_secs(60) {
            fail(format_args!(
                "only {} of {} sockets open after 60 s",
                OPEN.load(Ordering::Relaxed),
                o.sockets
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if o.idle {
        println!("ready");
        tokio::time::sleep(Duration::from_secs_f64(o.hold)).await;
        std::process::exit(0);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = o.server_pid.map(|p| p.to_string());
    let cpu = || {
        (
            server.as_deref().map_or(0, cpu_ticks),
            cpu_ticks("self"),
            Instant::now(),
        )
    };
    let (server0, load0, t0) = cpu();
    MEASURING.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(o.seconds)).await;
    MEASURING.store(false, Ordering::Relaxed);
    let (server1, load1, t1) = cpu();
    let done = DONE.load(Ordering::Relaxed);
    let elapsed = (t1 - t0).as_secs_f64();
    let secs = |ticks: u64| ticks as f64 / o.clk_tck;
    let per = |ticks: u64| secs(ticks) * 1e6 / done.max(1) as f64;
    println!(
        "rate={:.0} server_us={:.3} load_us={:.3} server_core={:.2} load_core={:.2} messages={done}",
        done as f64 / elapsed,
        per(server1 - server0),
        per(load1 - load0),
        secs(server1 - server0) / elapsed,
        secs(load1 - load0) / elapsed,
    );
    std::process::exit(0);
}
