//! Load generator for the end-to-end echo benchmark. It uses none of the crates
//! under test: raw TCP, a hand-written upgrade request, pre-built masked frames,
//! several messages in flight per connection, and every echo checked (payload
//! and order, via a sequence number in the first 8 bytes).
//!
//! ```text
//! echo_load ADDR --size N --conns C --inflight K --seconds S [--raw]
//!     prints: rate=<messages/s> p50_us=<..> p99_us=<..> max_us=<..>
//! echo_load ADDR --idle N --hold S [--raw]
//!     opens N connections, echoes one message on each, prints `ready`,
//!     then holds them S seconds (for measuring the server's memory)
//! echo_load ADDR --idle N --burst B --burst-conns K --hold S [--raw]
//!     as above, then on K of the connections at once echoes one B-byte
//!     message each, prints `burst`, and holds them all S seconds more (does
//!     the server give back what the burst took?)
//! ```
//! `--raw` speaks to a plain TCP echo: no handshake, no framing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
static MEASURING: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);
static DONE: AtomicU64 = AtomicU64::new(0);

struct Options {
    addr: String,
    size: usize,
    conns: usize,
    inflight: usize,
    seconds: f64,
    raw: bool,
    idle: usize,
    hold: f64,
    burst: usize,
    burst_conns: usize,
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        addr: args.next().expect("address"),
        size: 16,
        conns: 1,
        inflight: 16,
        seconds: 3.0,
        raw: false,
        idle: 0,
        hold: 10.0,
        burst: 0,
        burst_conns: 100,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().expect("flag value");
        match flag.as_str() {
            "--size" => o.size = value().parse().unwrap(),
            "--conns" => o.conns = value().parse().unwrap(),
            "--inflight" => o.inflight = value().parse().unwrap(),
            "--seconds" => o.seconds = value().parse().unwrap(),
            "--idle" => o.idle = value().parse().unwrap(),
            "--hold" => o.hold = value().parse().unwrap(),
            "--burst" => o.burst = value().parse().unwrap(),
            "--burst-conns" => o.burst_conns = value().parse().unwrap(),
            "--raw" => o.raw = true,
            other => panic!("unknown flag {other}"),
        }
    }
    o
}

fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// One message as the client sends it: a masked frame, or raw bytes.
struct Template {
    bytes: Vec<u8>,
    payload_at: usize,
    masked: bool,
}

impl Template {
    fn new(size: usize, raw: bool) -> Template {
        let payload = pattern(size);
        if raw {
            return Template {
                bytes: payload,
                payload_at: 0,
                masked: false,
            };
        }
        let mut bytes = vec![0x82u8];
        match size {
            0..=125 => bytes.push(0x80 | size as u8),
            126..=0xFFFF => {
                bytes.push(0x80 | 126);
                bytes.extend_from_slice(&(size as u16).to_be_bytes());
            }
            _ => {
                bytes.push(0x80 | 127);
                bytes.extend_from_slice(&(size as u64).to_be_bytes());
            }
        }
        bytes.extend_from_slice(&KEY);
        let payload_at = bytes.len();
        bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
        Template {
            bytes,
            payload_at,
            masked: true,
        }
    }

    /// Appends the message with sequence number `seq` to `out`.
    fn put(&self, seq: u64, out: &mut Vec<u8>) {
        let start = out.len() + self.payload_at;
        out.extend_from_slice(&self.bytes);
        let seq = seq.to_le_bytes();
        let n = (self.bytes.len() - self.payload_at).min(8);
        for i in 0..n {
            out[start + i] = if self.masked {
                seq[i] ^ KEY[i % 4]
            } else {
                seq[i]
            };
        }
    }
}

async fn connect(addr: &str, raw: bool) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).unwrap();
    if raw {
        return tcp;
    }
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.expect("handshake response");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

/// Reads one echo and checks it; returns its sequence number.
async fn read_echo(
    rx: &mut BufReader<OwnedReadHalf>,
    size: usize,
    raw: bool,
    expected: &[u8],
    buf: &mut Vec<u8>,
) -> u64 {
    if !raw {
        let mut head = [0u8; 2];
        rx.read_exact(&mut head).await.expect("frame header");
        assert_eq!(head[0], 0x82, "unexpected frame");
        let len = match head[1] {
            126 => u64::from(rx.read_u16().await.unwrap()),
            127 => rx.read_u64().await.unwrap(),
            n => u64::from(n),
        };
        assert_eq!(len as usize, size, "echo length");
    }
    buf.resize(size, 0);
    rx.read_exact(buf).await.expect("payload");
    let n = size.min(8);
    assert_eq!(buf[n..], expected[n..], "echoed payload differs");
    let mut seq = [0u8; 8];
    seq[..n].copy_from_slice(&buf[..n]);
    u64::from_le_bytes(seq)
}

async fn run_connection(o: Arc<Options>, template: Arc<Template>) -> Vec<u32> {
    let (rx, tx) = connect(&o.addr, o.raw).await.into_split();
    let credits = Arc::new(Semaphore::new(o.inflight));
    let sent_at = Arc::new(Mutex::new(VecDeque::new()));
    let writer = tokio::spawn(write_loop(
        tx,
        template.clone(),
        credits.clone(),
        sent_at.clone(),
    ));
    let mut rx = BufReader::with_capacity(64 * 1024, rx);
    let expected = pattern(o.size);
    let mut buf = Vec::new();
    let mut latencies = Vec::new();
    let mut next = 0u64;
    // Sequence numbers only fit when the payload has 8 bytes for them.
    let checks_order = o.size >= 8;
    while !STOP.load(Ordering::Relaxed) {
        let seq = read_echo(&mut rx, o.size, o.raw, &expected, &mut buf).await;
        if checks_order {
            assert_eq!(seq, next, "echo out of order");
        }
        next += 1;
        let at = sent_at
            .lock()
            .unwrap()
            .pop_front()
            .expect("an echo for every send");
        credits.add_permits(1);
        if MEASURING.load(Ordering::Relaxed) {
            DONE.fetch_add(1, Ordering::Relaxed);
            latencies.push(at.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
    }
    writer.abort();
    latencies
}

async fn write_loop(
    mut tx: OwnedWriteHalf,
    template: Arc<Template>,
    credits: Arc<Semaphore>,
    sent_at: Arc<Mutex<VecDeque<Instant>>>,
) {
    let mut seq = 0u64;
    let mut batch = Vec::new();
    loop {
        // Wait for one credit, then take all that are free: one write per batch.
        credits.acquire().await.unwrap().forget();
        let mut n = 1;
        while let Ok(permit) = credits.try_acquire() {
            permit.forget();
            n += 1;
        }
        batch.clear();
        let now = Instant::now();
        {
            let mut times = sent_at.lock().unwrap();
            for _ in 0..n {
                template.put(seq, &mut batch);
                seq += 1;
                times.push_back(now);
            }
        }
        if tx.write_all(&batch).await.is_err() {
            return;
        }
    }
}

async fn idle(o: Arc<Options>, template: Arc<Template>) {
    let expected = pattern(o.size);
    let mut held = Vec::with_capacity(o.idle);
    for _ in 0..o.idle {
        let (rx, mut tx) = connect(&o.addr, o.raw).await.into_split();
        let mut out = Vec::new();
        template.put(0, &mut out);
        tx.write_all(&out).await.unwrap();
        let mut rx = BufReader::with_capacity(256, rx);
        read_echo(&mut rx, o.size, o.raw, &expected, &mut Vec::new()).await;
        held.push((rx, tx));
    }
    println!("ready");
    if o.burst > 0 {
        tokio::time::sleep(Duration::from_secs_f64(o.hold)).await;
        let template = Arc::new(Template::new(o.burst, o.raw));
        let expected = Arc::new(pattern(o.burst));
        let k = o.burst_conns.min(held.len());
        let tasks: Vec<_> = held
            .drain(..k)
            .map(|(mut rx, mut tx)| {
                let (o, template, expected) = (o.clone(), template.clone(), expected.clone());
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    template.put(1, &mut out);
                    tx.write_all(&out).await.unwrap();
                    read_echo(&mut rx, o.burst, o.raw, &expected, &mut Vec::new()).await;
                    (rx, tx)
                })
            })
            .collect();
        for task in tasks {
            held.push(task.await.unwrap());
        }
        println!("burst");
    }
    tokio::time::sleep(Duration::from_secs_f64(o.hold)).await;
    drop(held);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let o = Arc::new(options());
    let template = Arc::new(Template::new(o.size, o.raw));
    if o.idle > 0 {
        idle(o, template).await;
        return;
    }
    let tasks: Vec<_> = (0..o.conns)
        .map(|_| tokio::spawn(run_connection(o.clone(), template.clone())))
        .collect();
    // Warm up, then count what completes within the window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    MEASURING.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(o.seconds)).await;
    MEASURING.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let done = DONE.load(Ordering::Relaxed);
    STOP.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        // A connection blocked in a read ends with the process.
        if let Ok(Ok(l)) = tokio::time::timeout(Duration::from_millis(200), task).await {
            latencies.extend(l);
        }
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "rate={:.0} p50_us={} p99_us={} max_us={}",
        done as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or(0)
    );
    std::process::exit(0);
}
