//! Load generator for the end-to-end echo benchmark. It uses none of the crates
//! under test: raw TCP, a hand-written upgrade request, pre-built masked frames,
//! `--inflight` messages in flight per connection, and every echo checked
//! (header, payload and order, via a sequence number in the first 8 bytes;
//! with `--text`, text frames whose sequence digits are 7-bit, so every
//! payload is ASCII and valid UTF-8). Echoes of 256 KiB or more are checked in
//! three 16 KiB windows that cover the payload over successive echoes, the rest
//! discarded in the kernel uncopied, unless `--verify-all` (see
//! `Traffic::gaps`). It
//! must not be what sets the pace: each connection is one task that tops up its
//! in-flight messages with one write of frames already in place (only their
//! sequence numbers are patched), reads up to 256 KiB at a time and checks the
//! echoes in the read buffer without copying, and the runtime polls instead of
//! sleeping (see `spin`). It must also be fair: a connection lets the others
//! run after every 1 MiB it reads (see `FAIR_SHARE`). A wrong echo exits
//! non-zero with no rate line.
//!
//! ```text
//! echo_load ADDR --size N --conns C --inflight K --seconds S [--raw] [--text]
//!           [--verify-all] [--server-pid PID --clk-tck HZ]
//!     prints: rate=<messages/s> p50_us=<..> p99_us=<..> max_us=<..>
//!             client_busy=<share of the window the connections spent
//!             reading, checking and writing rather than waiting: below 1.0,
//!             the load generator had time to spare>
//!             per_conn=<fewest>/<most> echoes on one connection in the
//!             window: far apart, some connections were served first
//!             [server_us=<µs>: the server's CPU time (utime + stime from
//!             /proc/PID/stat, sampled at the start and the end of the
//!             measured window) per echoed message]
//! echo_load ADDR --idle N --hold S [--raw]
//!     opens N connections, echoes one message on each, prints `ready`,
//!     then holds them S seconds (for measuring the server's memory)
//! echo_load ADDR --idle N --burst B --burst-conns K --hold S [--raw]
//!     as above, then on K of the connections at once echoes one B-byte
//!     message each, prints `burst`, and holds them all S seconds more (does
//!     the server give back what the burst took?)
//! ```
//! `--raw` speaks to a plain TCP echo: no handshake, no framing. Latencies are
//! per message, from when it is queued for writing to when its echo is read.

use std::io::{ErrorKind, IoSlice};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
static MEASURING: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);
static DONE: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds the connections spent working (between a readiness event and
/// their next wait) while measuring.
static BUSY_NS: AtomicU64 = AtomicU64::new(0);

struct Options {
    addr: String,
    size: usize,
    conns: usize,
    inflight: usize,
    seconds: f64,
    raw: bool,
    text: bool,
    /// Check every byte of every echo, also of large ones (see `Sample`).
    verify_all: bool,
    idle: usize,
    hold: f64,
    burst: usize,
    burst_conns: usize,
    /// The server's process, whose CPU time over the window is reported.
    server_pid: Option<u32>,
    clk_tck: f64,
}

const USAGE: &str = "\
echo_load ADDR --size N --conns C --inflight K --seconds S [--raw] [--text]
          [--verify-all] [--server-pid PID --clk-tck HZ]
    prints: rate=<messages/s> p50_us=<..> p99_us=<..> max_us=<..> client_busy=<0..1>
            per_conn=<fewest>/<most> echoes on one connection
            [server_us=<server CPU µs per message over the window>]
echo_load ADDR --idle N [--burst B --burst-conns K] --hold S [--raw]
    opens N connections, echoes one message on each, prints `ready`, holds them
    (with --burst: then echoes one B-byte message on K of them, prints `burst`)";

fn options() -> Options {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        std::process::exit(0);
    }
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        addr: args.next().expect("address"),
        size: 16,
        conns: 1,
        inflight: 16,
        seconds: 3.0,
        raw: false,
        text: false,
        verify_all: false,
        idle: 0,
        hold: 10.0,
        burst: 0,
        burst_conns: 100,
        server_pid: None,
        clk_tck: 100.0,
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
            "--text" => o.text = true,
            "--verify-all" => o.verify_all = true,
            "--server-pid" => o.server_pid = Some(value().parse().unwrap()),
            "--clk-tck" => o.clk_tck = value().parse().unwrap(),
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
    /// Bits of the sequence number per payload byte: 7 in text, so that each
    /// byte is ASCII.
    seq_bits: u32,
}

/// The `i`th byte of sequence number `seq`, `bits` bits to a byte.
fn seq_byte(seq: u64, i: usize, bits: u32) -> u8 {
    ((seq >> (bits as usize * i)) & ((1 << bits) - 1)) as u8
}

fn opcode(text: bool) -> u8 {
    if text {
        0x81
    } else {
        0x82
    }
}

impl Template {
    fn new(size: usize, raw: bool, text: bool) -> Template {
        let payload = pattern(size);
        let seq_bits = if text { 7 } else { 8 };
        if raw {
            return Template {
                bytes: payload,
                payload_at: 0,
                masked: false,
                seq_bits,
            };
        }
        let mut bytes = vec![opcode(text)];
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
            seq_bits,
        }
    }

    /// Appends the message with sequence number `seq` to `out`.
    fn put(&self, seq: u64, out: &mut Vec<u8>) {
        let start = out.len() + self.payload_at;
        out.extend_from_slice(&self.bytes);
        let n = (self.bytes.len() - self.payload_at).min(8);
        for i in 0..n {
            let byte = seq_byte(seq, i, self.seq_bits);
            out[start + i] = if self.masked { byte ^ KEY[i % 4] } else { byte };
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
        assert!(head[0] == 0x82 || head[0] == 0x81, "unexpected frame");
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

/// Echoes of at least this many payload bytes are checked in windows (see
/// `Traffic::gaps`), unless `--verify-all`.
const SAMPLE_FROM: usize = 256 << 10;
/// Bytes in each checked window of a sampled echo.
const WINDOW: usize = 16 << 10;

/// One connection's traffic: `inflight` masked frames pre-built back to back in
/// a ring (message `seq` lives in slot `seq % inflight`; only its sequence
/// number is patched before it is sent again), written in as few syscalls as
/// the socket takes, and the echo stream checked byte by byte in place against
/// the one echo every message must come back as.
struct Traffic {
    ring: Vec<u8>,
    /// Bytes per sent message, and where its sequence number starts.
    frame: usize,
    seq_at: usize,
    masked: bool,
    /// How many of the payload's first bytes carry the sequence number, and
    /// how many bits of it each.
    seq_len: usize,
    seq_bits: u32,
    inflight: u64,
    /// Messages queued so far, bytes of them written, messages echoed.
    queued: u64,
    written: u64,
    echoed: u64,
    sent_at: Vec<Instant>,
    /// The echo of any message with its sequence number zeroed: an unmasked
    /// final binary frame (or, with `--raw`, the bytes as sent).
    echo: Vec<u8>,
    echo_seq_at: usize,
    /// Progress through the echo being read, and its sequence number so far.
    at: usize,
    seq: u64,
    /// Whether echoes are checked in windows, their gaps discarded unread.
    sampled: bool,
}

impl Traffic {
    fn new(size: usize, raw: bool, text: bool, inflight: usize, verify_all: bool) -> Traffic {
        assert!(inflight > 0, "--inflight must be at least 1");
        let template = Template::new(size, raw, text);
        let mut ring = Vec::with_capacity(template.bytes.len() * inflight);
        for _ in 0..inflight {
            ring.extend_from_slice(&template.bytes);
        }
        let mut echo = Vec::new();
        if !raw {
            echo.push(opcode(text));
            match size {
                0..=125 => echo.push(size as u8),
                126..=0xFFFF => {
                    echo.push(126);
                    echo.extend_from_slice(&(size as u16).to_be_bytes());
                }
                _ => {
                    echo.push(127);
                    echo.extend_from_slice(&(size as u64).to_be_bytes());
                }
            }
        }
        let echo_seq_at = echo.len();
        echo.extend_from_slice(&pattern(size));
        let seq_len = size.min(8);
        echo[echo_seq_at..echo_seq_at + seq_len].fill(0);
        Traffic {
            frame: template.bytes.len(),
            seq_at: template.payload_at,
            masked: template.masked,
            seq_len,
            seq_bits: template.seq_bits,
            ring,
            inflight: inflight as u64,
            queued: 0,
            written: 0,
            echoed: 0,
            sent_at: vec![Instant::now(); inflight],
            echo,
            echo_seq_at,
            at: 0,
            seq: 0,
            sampled: !verify_all && size >= SAMPLE_FROM,
        }
    }

    /// The stretches of echo number `seq` (as offsets into it) that are
    /// discarded unread rather than checked.
    ///
    /// Checking a 1 MiB echo byte by byte means copying it out of the kernel
    /// and comparing it: at 1 MiB x 100 that was a third of the load
    /// generator's CPU (perf: `_copy_to_iter` 18%, `memcmp` 16% of its
    /// samples), which kept it busy 0.99 and so tied every server to its pace.
    /// A sampled echo has its frame header checked, the first `WINDOW` bytes of
    /// its payload (they hold the sequence number), the last `WINDOW`, and one
    /// more window that moves on by `WINDOW` with each echo, so that every 62
    /// echoes of 1 MiB the windows have covered the whole payload. Framing,
    /// length and order are still checked on every echo: a wrong length puts
    /// the next echo's header in the wrong place.
    fn gaps(&self, seq: u64) -> [(usize, usize); 2] {
        if !self.sampled {
            return [(0, 0); 2];
        }
        let (head, tail) = (self.echo_seq_at + WINDOW, self.echo.len() - WINDOW);
        // The middle stretch in windows, the last one flush with its end.
        let windows = (tail - head).div_ceil(WINDOW) as u64;
        let mid = head + ((seq % windows) as usize * WINDOW).min(tail - head - WINDOW);
        [(head, mid), (mid + WINDOW, tail)]
    }

    /// How many of the bytes from here on may be discarded unread.
    fn skippable(&self) -> usize {
        self.gaps(self.echoed)
            .iter()
            .find(|&&(from, to)| (from..to).contains(&self.at))
            .map_or(0, |&(_, to)| to - self.at)
    }

    /// How many bytes may be read and checked before the next gap: so that a
    /// read stops where discarding can start.
    fn checkable(&self) -> usize {
        if !self.sampled {
            return usize::MAX;
        }
        let ahead = |gaps: [(usize, usize); 2], at: usize| {
            gaps.iter()
                .find(|&&(from, to)| from < to && at < from)
                .map(|&(from, _)| from - at)
        };
        ahead(self.gaps(self.echoed), self.at).unwrap_or_else(|| {
            let next = ahead(self.gaps(self.echoed + 1), 0).unwrap_or(self.echo.len());
            self.echo.len() - self.at + next
        })
    }

    /// Accounts for `n` bytes discarded at a gap.
    fn skip(&mut self, n: usize) {
        debug_assert!(n <= self.skippable());
        self.at += n;
    }

    /// Tops the connection up to `inflight` messages: patches the sequence
    /// numbers into free slots and stamps their send time. A slot is free once
    /// its previous message has been echoed, so it has been written too.
    fn queue(&mut self) {
        if self.queued - self.echoed == self.inflight {
            return;
        }
        let now = Instant::now();
        while self.queued - self.echoed < self.inflight {
            let slot = (self.queued % self.inflight) as usize;
            let start = slot * self.frame + self.seq_at;
            let (seq, bits) = (self.queued, self.seq_bits);
            for (i, byte) in self.ring[start..start + self.seq_len]
                .iter_mut()
                .enumerate()
            {
                let digit = seq_byte(seq, i, bits);
                *byte = if self.masked {
                    digit ^ KEY[i % 4]
                } else {
                    digit
                };
            }
            self.sent_at[slot] = now;
            self.queued += 1;
        }
    }

    fn unwritten(&self) -> u64 {
        self.queued * self.frame as u64 - self.written
    }

    /// Writes as much of what is queued as the socket takes, in one syscall:
    /// the queued frames are contiguous in the ring, or two runs when they
    /// wrap around its end.
    fn write(&mut self, tcp: &TcpStream) {
        let left = self.unwritten() as usize;
        let start = (self.written % self.ring.len() as u64) as usize;
        let first = left.min(self.ring.len() - start);
        let result = if first == left {
            tcp.try_write(&self.ring[start..start + first])
        } else {
            tcp.try_write_vectored(&[
                IoSlice::new(&self.ring[start..]),
                IoSlice::new(&self.ring[..left - first]),
            ])
        };
        match result {
            Ok(n) => self.written += n as u64,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => fail(format_args!("write: {e}")),
        }
    }

    /// Checks echoed bytes in place, across frame and read boundaries, with no
    /// copy. Each completed echo must carry the next sequence number; its
    /// round trip (send to `now`) goes into `latencies` when `measure` is set.
    /// Returns how many echoes completed.
    fn check(
        &mut self,
        mut data: &[u8],
        now: Instant,
        measure: bool,
        latencies: &mut Vec<u32>,
    ) -> u64 {
        let (seq_from, seq_to) = (self.echo_seq_at, self.echo_seq_at + self.seq_len);
        let mut done = 0;
        while !data.is_empty() {
            let (lo, hi) = (self.at, (self.at + data.len()).min(self.echo.len()));
            let (part, rest) = data.split_at(hi - lo);
            // The part before the sequence number, the part after it, and the
            // sequence number's bytes in between.
            let before = hi.min(seq_from);
            if lo < before && part[..before - lo] != self.echo[lo..before] {
                self.mismatch(part, lo);
            }
            let after = lo.max(seq_to);
            if after < hi && part[after - lo..] != self.echo[after..hi] {
                self.mismatch(part, lo);
            }
            for i in lo.max(seq_from)..hi.min(seq_to) {
                self.seq |= u64::from(part[i - lo]) << (self.seq_bits as usize * (i - seq_from));
            }
            self.at = hi;
            if self.at == self.echo.len() {
                let bits = self.seq_bits * self.seq_len as u32;
                let expected = self.echoed & u64::MAX.checked_shr(64 - bits).unwrap_or(0);
                if self.seq != expected {
                    fail(format_args!(
                        "echo out of order: sequence number {} where {} was due",
                        self.seq, expected
                    ));
                }
                if measure {
                    let sent = self.sent_at[(self.echoed % self.inflight) as usize];
                    let us = now.duration_since(sent).as_micros();
                    latencies.push(us.min(u128::from(u32::MAX)) as u32);
                }
                self.echoed += 1;
                done += 1;
                self.at = 0;
                self.seq = 0;
            }
            data = rest;
        }
        done
    }

    #[cold]
    fn mismatch(&self, part: &[u8], lo: usize) -> ! {
        let i = (0..part.len())
            .find(|&i| {
                let at = lo + i;
                let in_seq = (self.echo_seq_at..self.echo_seq_at + self.seq_len).contains(&at);
                !in_seq && part[i] != self.echo[at]
            })
            .unwrap_or(0);
        let what = if lo + i < self.echo_seq_at {
            "frame header"
        } else {
            "payload"
        };
        fail(format_args!(
            "echo {}: {what} byte {} is {:#04x}, expected {:#04x}",
            self.echoed,
            lo + i,
            part[i],
            self.echo[lo + i]
        ))
    }
}

/// Reads up to `room.len()` bytes and drops them in the kernel, uncopied:
/// `MSG_TRUNC` on a TCP socket discards the data instead of passing it back
/// (tcp(7), Linux 2.4 and later).
fn discard(tcp: &TcpStream, room: &mut [MaybeUninit<u8>]) -> std::io::Result<usize> {
    tcp.try_io(Interest::READABLE, || {
        SockRef::from(tcp).recv_with_flags(room, libc::MSG_TRUNC)
    })
}

/// A wrong echo ends the run: no rate line, so run.sh records it as failed.
fn fail(what: std::fmt::Arguments<'_>) -> ! {
    eprintln!("echo_load: {what}");
    std::process::exit(1)
}

/// Bytes a connection reads before it lets the others run: about one large
/// message, or many rounds of small ones (where the runtime's budget of 128
/// operations per turn comes first).
const FAIR_SHARE: usize = 1 << 20;
const READ_BUF: usize = 256 << 10;

/// One connection: tops up what is in flight, writes when the socket takes
/// it, reads when there is something to read.
async fn run_connection(o: Arc<Options>) -> Vec<u32> {
    let tcp = connect(&o.addr, o.raw).await;
    let mut traffic = Traffic::new(o.size, o.raw, o.text, o.inflight, o.verify_all);
    let mut buf = vec![0u8; READ_BUF];
    // Room the kernel is told it may fill when discarding; it never does, so
    // these pages are never touched.
    let mut discard_room = vec![MaybeUninit::<u8>::uninit(); READ_BUF];
    let mut latencies = Vec::new();
    let mut since_yield = 0;
    while !STOP.load(Ordering::Relaxed) {
        traffic.queue();
        let writing = traffic.unwritten() > 0;
        let interest = if writing {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let ready = match tcp.ready(interest).await {
            Ok(ready) => ready,
            Err(e) => fail(format_args!("poll: {e}")),
        };
        let woke = Instant::now();
        if writing && ready.is_writable() {
            traffic.write(&tcp);
        }
        if ready.is_readable() {
            let skip = traffic.skippable();
            let read = if skip > 0 {
                discard(&tcp, &mut discard_room[..skip.min(READ_BUF)])
            } else {
                let n = traffic.checkable().min(READ_BUF);
                tcp.try_read(&mut buf[..n])
            };
            match read {
                Ok(0) => fail(format_args!("the server closed the connection")),
                Ok(n) if skip > 0 => {
                    since_yield += n;
                    traffic.skip(n);
                }
                Ok(n) => {
                    since_yield += n;
                    let measure = MEASURING.load(Ordering::Relaxed);
                    let done = traffic.check(&buf[..n], Instant::now(), measure, &mut latencies);
                    if measure {
                        DONE.fetch_add(done, Ordering::Relaxed);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => fail(format_args!("read: {e}")),
            }
        }
        if MEASURING.load(Ordering::Relaxed) {
            BUSY_NS.fetch_add(woke.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        // After `FAIR_SHARE` bytes read the other connections get their
        // turn, even if more is waiting: a connection whose echoes keep
        // coming would otherwise be served until the runtime's budget runs
        // out (128 reads, up to 32 MiB), and its round trips shrink while the
        // others' grow (against the raw TCP echo, in 3 s: at 1 MiB x 100, 3
        // echoes on one connection and 775 on another; at 16 KiB x 100, 1,868
        // and 15,661).
        if since_yield >= FAIR_SHARE {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
    }
    latencies
}

/// Keeps the runtime from sleeping in epoll: while this task is queued the
/// runtime polls for events without blocking, so an echo is seen as soon as it
/// lands instead of after the client thread is woken (an IPI and, in a VM, an
/// exit). With a fixed number in flight that wake-up, not CPU, set the
/// single-connection rates: the client was ~30% busy. When connections are
/// busy the runtime runs them first and this task costs next to nothing; when
/// they wait, it spins the load generator's core, which is its alone.
async fn spin() {
    while !STOP.load(Ordering::Relaxed) {
        tokio::task::yield_now().await;
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
        let template = Arc::new(Template::new(o.burst, o.raw, o.text));
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

/// utime + stime of a process, in clock ticks (proc(5)).
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| fail(format_args!("/proc/{pid}/stat: {e}")));
    // Fields counted from 3 (state), after the parenthesised command name.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> u64 { fields.get(n - 3).and_then(|f| f.parse().ok()).unwrap_or(0) };
    field(14) + field(15)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let o = Arc::new(options());
    let template = Arc::new(Template::new(o.size, o.raw, o.text));
    if o.idle > 0 {
        idle(o, template).await;
        return;
    }
    tokio::spawn(spin());
    let tasks: Vec<_> = (0..o.conns)
        .map(|_| tokio::spawn(run_connection(o.clone())))
        .collect();
    // Warm up, then count what completes within the window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = o.server_pid.map(|p| p.to_string());
    let server_ticks = || server.as_deref().map(cpu_ticks);
    let ticks_before = server_ticks();
    MEASURING.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(o.seconds)).await;
    MEASURING.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let done = DONE.load(Ordering::Relaxed);
    let busy = BUSY_NS.load(Ordering::Relaxed) as f64 / 1e9 / elapsed;
    let server_us = match (ticks_before, server_ticks()) {
        (Some(before), Some(after)) => format!(
            " server_us={:.3}",
            (after - before) as f64 / o.clk_tck * 1e6 / done.max(1) as f64
        ),
        _ => String::new(),
    };
    STOP.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    // Echoes per connection in the window, fewest and most: far apart, the
    // load generator served its connections unfairly.
    let (mut fewest, mut most) = (usize::MAX, 0);
    for task in tasks {
        // A connection blocked in a read ends with the process (and counts
        // as none).
        let l = match tokio::time::timeout(Duration::from_millis(200), task).await {
            Ok(Ok(l)) => l,
            _ => Vec::new(),
        };
        fewest = fewest.min(l.len());
        most = most.max(l.len());
        latencies.extend(l);
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "rate={:.0} p50_us={} p99_us={} max_us={} client_busy={busy:.2} per_conn={fewest}/{most}{server_us}",
        done as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or(0)
    );
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of echo `seq` that are checked rather than discarded.
    fn checked(traffic: &Traffic, seq: u64) -> Vec<bool> {
        let mut checked = vec![true; traffic.echo.len()];
        for (from, to) in traffic.gaps(seq) {
            checked[from..to].fill(false);
        }
        checked
    }

    #[test]
    fn sampled_echoes_check_header_sequence_number_and_in_turn_every_payload_byte() {
        for (size, raw) in [(1 << 20, false), (SAMPLE_FROM, false), (300_001, true)] {
            let traffic = Traffic::new(size, raw, false, 2, false);
            let mut covered = vec![false; traffic.echo.len()];
            for seq in 0..(size / WINDOW) as u64 + 1 {
                let checked = checked(&traffic, seq);
                let header_and_seq = traffic.echo_seq_at + 8;
                assert!(
                    checked[..header_and_seq].iter().all(|&c| c),
                    "{size}: header"
                );
                assert!(checked[checked.len() - WINDOW..].iter().all(|&c| c));
                let kept = checked.iter().filter(|&&c| c).count();
                assert!(
                    kept <= traffic.echo_seq_at + 3 * WINDOW,
                    "{size}: {kept} checked"
                );
                for (c, k) in covered.iter_mut().zip(checked) {
                    *c |= k;
                }
            }
            assert!(covered.iter().all(|&c| c), "{size}: a byte never checked");
        }
    }

    #[test]
    fn echoes_below_the_sampling_size_or_with_verify_all_are_checked_whole() {
        for traffic in [
            Traffic::new(SAMPLE_FROM - 1, false, false, 2, false),
            Traffic::new(1 << 20, false, false, 2, true),
        ] {
            assert_eq!(traffic.gaps(7), [(0, 0); 2]);
            assert_eq!(traffic.skippable(), 0);
            assert_eq!(traffic.checkable(), usize::MAX);
        }
    }

    /// Walks a stream of echoes the way `run_connection` reads it: discard
    /// where `skippable` says, otherwise read no more than `checkable`.
    #[test]
    fn reads_stop_where_a_gap_starts_and_discards_end_where_it_ends() {
        let mut traffic = Traffic::new(1 << 20, false, false, 2, false);
        let mut stream = Vec::new();
        for seq in 0..5u64 {
            let at = stream.len();
            stream.extend_from_slice(&traffic.echo);
            let seq_at = at + traffic.echo_seq_at;
            stream[seq_at..seq_at + 8].copy_from_slice(&seq.to_le_bytes());
        }
        let (mut pos, mut discarded, mut done) = (0, 0, 0);
        let mut latencies = Vec::new();
        while pos < stream.len() {
            let skip = traffic.skippable();
            if skip > 0 {
                let n = skip.min(READ_BUF).min(stream.len() - pos);
                traffic.skip(n);
                discarded += n;
                pos += n;
            } else {
                let n = traffic.checkable().min(READ_BUF).min(stream.len() - pos);
                assert!(n > 0);
                done += traffic.check(&stream[pos..pos + n], Instant::now(), false, &mut latencies);
                pos += n;
            }
        }
        assert_eq!(done, 5);
        assert!(discarded > 5 * ((1 << 20) - 3 * WINDOW) - 5, "{discarded}");
    }
}
