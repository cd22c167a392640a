//! A seeded, randomized concurrency stress harness for `WebSocket<T>` (issue 12).
//!
//! Each run draws, from its seed: a current-thread or a multi-thread runtime; a
//! transport (`tokio::io::duplex` of 1 to 64 KiB, or loopback TCP with small
//! `SO_SNDBUF`/`SO_RCVBUF`); on each end either split halves driven by two
//! tasks or a single task that reads and feeds; the write limit and
//! fragmenting; 1 to 40 numbered messages of 0 B to 1 MiB (mostly small) that
//! the client sends and the server echoes; pings both ways; readers that stop
//! reading for a while; and who closes (either end's writer, with `close`,
//! `send(Close)` or `start_close`) after how many messages.
//!
//! Every run checks:
//! - progress: a watchdog fails a run in which nothing moved for 5 s;
//! - nothing lost, duplicated, reordered or corrupted: each side receives a
//!   gapless prefix of what the other sent, byte for byte (payloads carry
//!   their sequence number and a checksum), including every message whose
//!   `send` or a later `flush` returned `Ok`; pings arrive in order, pongs
//!   answer pings that were sent, in order;
//! - the close: both streams end with the peer's `Close` and then `None`,
//!   within `close_timeout` plus a margin of the close being started;
//! - no task left hanging: every task is joined with a timeout.
//!
//! A failure prints its seed. Environment:
//! - `WSCODEC_STRESS_RUNS=N`: how many seeded runs (default 100, about 30 s
//!   in a debug build on two cores);
//! - `WSCODEC_STRESS_SEED=S[,S...]`: replay just these seeds (decimal or 0x hex);
//! - `WSCODEC_STRESS_FIRST_SEED=S`: the first of the N seeds (default 1).
//!
//! ```text
//! WSCODEC_STRESS_SEED=17 cargo test --test stress -- --nocapture
//! ```

use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::{SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use wscodec::{CloseCode, CloseFrame, Config, Error, Message, Role, WebSocket};

/// A run in which nothing moved for this long has stalled.
const STALL: Duration = Duration::from_secs(5);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How much longer than `close_timeout` the close may take to complete.
const CLOSE_MARGIN: Duration = Duration::from_secs(3);
/// How long a task may take to finish once the run is over.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_RUNS: u64 = 100;
/// The most payload bytes one run sends (each way: they are echoed).
const MAX_RUN_BYTES: usize = 3 << 20;

// ---------------------------------------------------------------------------
// A small deterministic PRNG, so that a seed replays the same run.

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

// ---------------------------------------------------------------------------
// Payloads that name themselves.

/// The payload of message `seq` of run `seed`: a header with the sequence
/// number, the length and a checksum of the rest (when the payload has room
/// for it), then filler drawn from (seed, seq). Text is ASCII.
fn payload(seed: u64, seq: usize, len: usize, text: bool) -> Vec<u8> {
    let mut rng = Rng(seed ^ (seq as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut filler = Vec::with_capacity(len);
    while filler.len() < len {
        for b in rng.next_u64().to_le_bytes() {
            filler.push(if text { b'a' + b % 26 } else { b });
        }
    }
    filler.truncate(len);
    let header_len = if text { 32 } else { 16 };
    if len < header_len {
        return filler;
    }
    let sum = checksum(&filler[header_len..]);
    if text {
        let header = format!("{:08x}{:08x}{sum:016x}", seq as u32, len as u32);
        filler[..32].copy_from_slice(header.as_bytes());
    } else {
        filler[..4].copy_from_slice(&(seq as u32).to_le_bytes());
        filler[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        filler[8..16].copy_from_slice(&sum.to_le_bytes());
    }
    filler
}

fn checksum(bytes: &[u8]) -> u64 {
    // FNV-1a, 8 bytes at a time: cheap enough in debug builds.
    let mut h = 0xCBF2_9CE4_8422_2325u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = (h ^ u64::from_le_bytes(c.try_into().unwrap())).wrapping_mul(0x100_0000_01B3);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
    }
    h
}

/// What a received payload says about itself, for the failure message.
fn describe(bytes: &[u8], text: bool) -> String {
    if text && bytes.len() >= 32 {
        if let Ok(h) = std::str::from_utf8(&bytes[..32]) {
            let seq = u32::from_str_radix(&h[..8], 16).ok();
            let sum = u64::from_str_radix(&h[16..], 16).ok();
            let intact = sum == Some(checksum(&bytes[32..]));
            return format!("names itself #{seq:?}, checksum ok: {intact}");
        }
    } else if !text && bytes.len() >= 16 {
        let seq = u32::from_le_bytes(bytes[..4].try_into().unwrap());
        let sum = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
        let intact = sum == checksum(&bytes[16..]);
        return format!("names itself #{seq}, checksum ok: {intact}");
    }
    format!("{} bytes, too short to name itself", bytes.len())
}

// ---------------------------------------------------------------------------
// The plan of a run, drawn from its seed.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Transport {
    Duplex {
        capacity: usize,
    },
    Tcp {
        sndbuf: u32,
        rcvbuf: u32,
        nodelay: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Drive {
    /// `split()`: a reader task and a writer task.
    Split,
    /// One task that reads and feeds.
    Single,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CloseHow {
    /// `SinkExt::close`.
    Close,
    /// `send(Message::Close(..))`.
    SendClose,
    /// `start_close`, then the stream finishes it.
    StartClose,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Client,
    Server,
}

#[derive(Clone)]
struct Plan {
    seed: u64,
    multi_thread: bool,
    transport: Transport,
    client: Drive,
    server: Drive,
    write_buffer_limit: usize,
    fragment_size: Option<usize>,
    /// (length, text) of each message the client sends.
    messages: Vec<(usize, bool)>,
    /// The client pings before message i.
    client_pings: Vec<bool>,
    /// The server pings after echo i.
    server_pings: Vec<bool>,
    /// Send with `feed` (and flush now and then) rather than `send`.
    client_feeds: Vec<bool>,
    server_feeds: Vec<bool>,
    closer: Side,
    close_how: CloseHow,
    /// The closer closes after sending (client) or echoing (server) this many.
    close_after: usize,
    /// (after message i, milliseconds): the client's and the server's reader
    /// stop reading for a while.
    client_pauses: Vec<(usize, u64)>,
    server_pauses: Vec<(usize, u64)>,
}

impl Plan {
    fn new(seed: u64) -> Plan {
        let mut rng = Rng(seed);
        let multi_thread = rng.chance(50);
        let transport = if rng.chance(65) {
            // Log-uniform sizes: small pipes as often as large ones.
            Transport::Duplex {
                capacity: (rng.range(1 << 10, 2 << 10) << rng.range(0, 5)).min(64 << 10) as usize,
            }
        } else {
            Transport::Tcp {
                sndbuf: (rng.range(4 << 10, 8 << 10) << rng.range(0, 3)).min(64 << 10) as u32,
                rcvbuf: (rng.range(4 << 10, 8 << 10) << rng.range(0, 3)).min(64 << 10) as u32,
                nodelay: rng.chance(50),
            }
        };
        let drive = |rng: &mut Rng| {
            if rng.chance(60) {
                Drive::Split
            } else {
                Drive::Single
            }
        };
        let client = drive(&mut rng);
        let server = drive(&mut rng);
        let write_buffer_limit = [1 << 10, 16 << 10, 128 << 10, 1 << 20][rng.range(0, 3) as usize];
        let fragment_size = rng.chance(25).then(|| rng.range(512, 64 << 10) as usize);
        let count = rng.range(1, 40) as usize;
        // Each run has its own largest size, log-uniform from 1 KiB to 1 MiB,
        // and sizes up to it skewed toward small: runs stay quick, and a third
        // of them still move messages larger than their pipe.
        let largest = 1024u64 << rng.range(0, 10);
        let mut messages = Vec::new();
        let mut total = 0;
        for _ in 0..count {
            let len = match rng.range(0, 99) {
                0..=29 => rng.range(0, 256),
                30..=59 => rng.range(0, largest / 8),
                _ => rng.range(largest / 8, largest),
            } as usize;
            if total + len > MAX_RUN_BYTES {
                break;
            }
            total += len;
            messages.push((len, rng.chance(30)));
        }
        let n = messages.len();
        let mut flags = |percent| (0..n).map(|_| rng.chance(percent)).collect::<Vec<_>>();
        let client_pings = flags(15);
        let server_pings = flags(15);
        let client_feeds = flags(40);
        let server_feeds = flags(40);
        let closer = if rng.chance(50) {
            Side::Client
        } else {
            Side::Server
        };
        let close_how =
            [CloseHow::Close, CloseHow::SendClose, CloseHow::StartClose][rng.range(0, 2) as usize];
        // Mostly at the end, sometimes anywhere.
        let close_after = if rng.chance(50) {
            n
        } else {
            rng.range(0, n as u64) as usize
        };
        let pauses = |rng: &mut Rng| {
            (0..rng.range(0, 3))
                .map(|_| (rng.range(0, n as u64) as usize, rng.range(5, 150)))
                .collect::<Vec<_>>()
        };
        let client_pauses = pauses(&mut rng);
        let server_pauses = pauses(&mut rng);
        Plan {
            seed,
            multi_thread,
            transport,
            client,
            server,
            write_buffer_limit,
            fragment_size,
            messages,
            client_pings,
            server_pings,
            client_feeds,
            server_feeds,
            closer,
            close_how,
            close_after,
            client_pauses,
            server_pauses,
        }
    }

    fn config(&self) -> Config {
        Config::default()
            .close_timeout(CLOSE_TIMEOUT)
            .write_buffer_limit(self.write_buffer_limit)
            .fragment_size(self.fragment_size)
    }

    fn message(&self, seq: usize) -> Message {
        let (len, text) = self.messages[seq];
        let bytes = payload(self.seed, seq, len, text);
        if text {
            Message::text(String::from_utf8(bytes).unwrap())
        } else {
            Message::binary(bytes)
        }
    }

    fn pause(pauses: &[(usize, u64)], after: usize) -> Duration {
        Duration::from_millis(
            pauses
                .iter()
                .filter(|(i, _)| *i == after)
                .map(|(_, ms)| ms)
                .sum(),
        )
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes: usize = self.messages.iter().map(|m| m.0).sum();
        let largest = self.messages.iter().map(|m| m.0).max().unwrap_or(0);
        write!(
            f,
            "{} runtime, {:?}, client {:?}, server {:?}, write limit {}, fragments {:?}, \
             {} messages ({bytes} bytes, largest {largest}), {:?} closes with {:?} after {}, \
             pauses client {:?} server {:?}",
            if self.multi_thread {
                "multi-thread"
            } else {
                "current-thread"
            },
            self.transport,
            self.client,
            self.server,
            self.write_buffer_limit,
            self.fragment_size,
            self.messages.len(),
            self.closer,
            self.close_how,
            self.close_after,
            self.client_pauses,
            self.server_pauses,
        )
    }
}

// ---------------------------------------------------------------------------
// What the tasks share: progress for the watchdog, what each task is doing
// for a stall's report, and when the close started.

struct Shared {
    progress: AtomicU64,
    doing: Mutex<Vec<(&'static str, String)>>,
    close_started: Mutex<Option<Instant>>,
}

impl Shared {
    fn step(&self, task: &'static str, what: impl FnOnce() -> String) {
        self.progress.fetch_add(1, Ordering::Relaxed);
        let mut doing = self.doing.lock().unwrap();
        let what = what();
        match doing.iter_mut().find(|(t, _)| *t == task) {
            Some(slot) => slot.1 = what,
            None => doing.push((task, what)),
        }
    }

    fn closing(&self) {
        self.close_started
            .lock()
            .unwrap()
            .get_or_insert_with(Instant::now);
    }
}

/// What a reader saw, checked as it arrives.
#[derive(Default)]
struct Received {
    /// Data messages: a gapless prefix of what the peer sent.
    messages: usize,
    /// The peer's pings: a gapless prefix.
    pings: usize,
    /// The number named by the last pong (answers to our pings, in order).
    last_pong: Option<usize>,
    /// The stream's last item before `None`.
    last: Option<Result<Message, String>>,
    ended: Option<Instant>,
}

/// What a writer did.
#[derive(Default, Debug)]
struct Sent {
    /// Messages handed to `feed`/`send` successfully.
    queued: usize,
    /// Messages known to be written: covered by an `Ok` from `send` or `flush`.
    flushed: usize,
    pings: usize,
    error: Option<String>,
}

type Failure = String;

/// Checks one item a reader got; `peer_tag` is 'c' or 's', the prefix of the
/// peer's ping payloads, `own_tag` ours.
fn receive(
    plan: &Plan,
    got: &mut Received,
    item: Result<Message, Error>,
    peer_tag: u8,
    own_tag: u8,
    own_pings_sent: &AtomicU64,
) -> Result<(), Failure> {
    if got.last.is_some() {
        return Err(format!(
            "{item:?} after the stream's last item {:?}",
            got.last
        ));
    }
    match item {
        Ok(Message::Ping(p)) => {
            let want = format!("{}{}", peer_tag as char, got.pings);
            if p[..] != *want.as_bytes() {
                return Err(format!("ping {p:?} where {want} was due"));
            }
            got.pings += 1;
        }
        Ok(Message::Pong(p)) => {
            let n = p
                .strip_prefix(&[own_tag])
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| format!("a pong {p:?} for no ping of ours"))?;
            if n as u64 >= own_pings_sent.load(Ordering::SeqCst) {
                return Err(format!("pong {n} for a ping not sent yet"));
            }
            if got.last_pong.is_some_and(|last| n <= last) {
                return Err(format!("pong {n} after pong {:?}", got.last_pong));
            }
            got.last_pong = Some(n);
        }
        Ok(Message::Close(frame)) => got.last = Some(Ok(Message::Close(frame))),
        Ok(m) => {
            let seq = got.messages;
            if seq >= plan.messages.len() {
                return Err(format!("an unexpected message of {} bytes", m.len()));
            }
            let (len, text) = plan.messages[seq];
            let bytes = match &m {
                Message::Text(t) if text => t.as_bytes().clone(),
                Message::Binary(b) if !text => b.clone(),
                _ => return Err(format!("message #{seq}: wrong type {m:?}")),
            };
            if bytes.len() != len || bytes[..] != payload(plan.seed, seq, len, text)[..] {
                return Err(format!(
                    "message #{seq} ({len} bytes) lost, duplicated, reordered or corrupted: \
                     got {} bytes that {}",
                    bytes.len(),
                    describe(&bytes, text)
                ));
            }
            got.messages += 1;
        }
        Err(e) => got.last = Some(Err(e.to_string())),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The ends of a run.

type Result2<T> = Result<T, Failure>;

struct Counters {
    client_pings: AtomicU64,
    server_pings: AtomicU64,
}

/// A split client's writer: sends the messages, pings now and then, and
/// closes if it is the closer.
async fn client_writer<T>(
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    mut tx: wscodec::WriteHalf<T>,
) -> Sent
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut sent = Sent::default();
    let limit = if plan.closer == Side::Client {
        plan.close_after
    } else {
        plan.messages.len()
    };
    let result: Result<(), Error> = async {
        for seq in 0..limit {
            if plan.client_pings[seq] {
                let n = sent.pings;
                counters.client_pings.fetch_add(1, Ordering::SeqCst);
                tx.feed(Message::Ping(format!("c{n}").into())).await?;
                sent.pings += 1;
            }
            let m = plan.message(seq);
            if plan.client_feeds[seq] {
                tx.feed(m).await?;
                sent.queued += 1;
                if seq % 3 == 0 {
                    tx.flush().await?;
                    sent.flushed = sent.queued;
                }
            } else {
                tx.send(m).await?;
                sent.queued += 1;
                sent.flushed = sent.queued;
            }
            shared.step("client writer", || format!("sent #{seq}"));
        }
        tx.flush().await?;
        sent.flushed = sent.queued;
        if plan.closer == Side::Client {
            shared.step("client writer", || "closing".into());
            shared.closing();
            close_write_half(&mut tx, plan.close_how).await?;
            shared.step("client writer", || "closed".into());
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        sent.error = Some(e.to_string());
    }
    shared.step("client writer", || format!("done: {sent:?}"));
    sent
}

async fn close_write_half<T>(tx: &mut wscodec::WriteHalf<T>, how: CloseHow) -> Result<(), Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    match how {
        CloseHow::Close => tx.close().await,
        CloseHow::SendClose => tx.send(Message::close(CloseCode::NORMAL, "done")).await,
        CloseHow::StartClose => tx.start_close(Some(CloseFrame::new(CloseCode::NORMAL, "done"))),
    }
}

/// A split reader on either side: checks every item, pauses as planned, and
/// hands the server's data to its writer.
async fn reader<S>(
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    side: Side,
    mut rx: S,
    forward: Option<mpsc::Sender<Message>>,
) -> Result2<Received>
where
    S: Stream<Item = Result<Message, Error>> + Unpin,
{
    let (name, peer_tag, own_tag, own_pings, pauses) = match side {
        Side::Client => (
            "client reader",
            b's',
            b'c',
            &counters.client_pings,
            &plan.client_pauses,
        ),
        Side::Server => (
            "server reader",
            b'c',
            b's',
            &counters.server_pings,
            &plan.server_pauses,
        ),
    };
    let mut got = Received::default();
    while let Some(item) = rx.next().await {
        let data = matches!(item, Ok(Message::Text(_) | Message::Binary(_)));
        let forwarded = if data {
            item.as_ref().ok().cloned()
        } else {
            None
        };
        receive(&plan, &mut got, item, peer_tag, own_tag, own_pings)
            .map_err(|e| format!("{name}: {e}"))?;
        shared.step(name, || {
            format!(
                "got {} messages, {} pings; last {:?}",
                got.messages, got.pings, got.last
            )
        });
        if let (Some(m), Some(tx)) = (forwarded, &forward) {
            // The writer stops taking them once it closed: that is fine.
            let _ = tx.send(m).await;
        }
        if data {
            let pause = Plan::pause(pauses, got.messages - 1);
            if !pause.is_zero() {
                shared.step(name, || format!("pausing {pause:?}"));
                tokio::time::sleep(pause).await;
            }
        }
    }
    got.ended = Some(Instant::now());
    shared.step(name, || "ended".into());
    Ok(got)
}

/// A split server's writer: echoes what its reader hands it.
async fn server_writer<T>(
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    mut tx: wscodec::WriteHalf<T>,
    mut echoes: mpsc::Receiver<Message>,
) -> Sent
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut sent = Sent::default();
    let result: Result<(), Error> = async {
        if plan.closer == Side::Server && plan.close_after == 0 {
            shared.closing();
            return close_write_half(&mut tx, plan.close_how).await;
        }
        while let Some(m) = echoes.recv().await {
            let seq = sent.queued;
            if plan.server_feeds[seq] {
                tx.feed(m).await?;
                sent.queued += 1;
            } else {
                tx.send(m).await?;
                sent.queued += 1;
                sent.flushed = sent.queued;
            }
            if plan.server_pings[seq] {
                let n = sent.pings;
                counters.server_pings.fetch_add(1, Ordering::SeqCst);
                tx.send(Message::Ping(format!("s{n}").into())).await?;
                sent.pings += 1;
                sent.flushed = sent.queued;
            }
            shared.step("server writer", || format!("echoed #{seq}"));
            if plan.closer == Side::Server && sent.queued == plan.close_after {
                tx.flush().await?;
                sent.flushed = sent.queued;
                shared.step("server writer", || "closing".into());
                shared.closing();
                return close_write_half(&mut tx, plan.close_how).await;
            }
        }
        tx.flush().await?;
        sent.flushed = sent.queued;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        sent.error = Some(e.to_string());
    }
    shared.step("server writer", || format!("done: {sent:?}"));
    sent
}

/// A client in one task: one poll function drives both directions, as a
/// `select!` over `next()` and `feed()` would if it could borrow twice.
async fn single_client<T>(
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    mut ws: WebSocket<T>,
) -> Result2<(Received, Sent)>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Step {
        /// Queue a ping if one is planned before message `seq`, then it.
        Ping,
        Message,
        /// `poll_flush`, after a `send` or at the end.
        Flush,
        /// Our Close: `send(Close)` is ready + start_send + flush, `close()`
        /// is poll_close, `start_close` needs no polling.
        SendClose,
        FlushClose,
        Close,
        Done,
    }
    let limit = if plan.closer == Side::Client {
        plan.close_after
    } else {
        plan.messages.len()
    };
    let mut got = Received::default();
    let mut sent = Sent::default();
    let mut seq = 0;
    let mut step = Step::Ping;
    let mut ended = false;
    while !ended || step != Step::Done {
        // Poll both directions until something happens.
        let event = poll_fn(|cx| {
            if !ended {
                match ws.poll_next_unpin(cx) {
                    Poll::Ready(Some(item)) => return Poll::Ready(Some(item)),
                    Poll::Ready(None) => {
                        ended = true;
                        return Poll::Ready(None);
                    }
                    Poll::Pending => {}
                }
            }
            let before = step;
            let fail = |sent: &mut Sent, e: Error| {
                sent.error = Some(e.to_string());
                Step::Done
            };
            step = match step {
                Step::Ping if seq >= limit => Step::Flush,
                Step::Ping if !plan.client_pings[seq] => Step::Message,
                Step::Ping | Step::Message => match ws.poll_ready_unpin(cx) {
                    Poll::Pending => step,
                    Poll::Ready(Err(e)) => fail(&mut sent, e),
                    Poll::Ready(Ok(())) if step == Step::Ping => {
                        counters.client_pings.fetch_add(1, Ordering::SeqCst);
                        let ping = Message::Ping(format!("c{}", sent.pings).into());
                        match ws.start_send_unpin(ping) {
                            Ok(()) => {
                                sent.pings += 1;
                                Step::Message
                            }
                            Err(e) => fail(&mut sent, e),
                        }
                    }
                    Poll::Ready(Ok(())) => match ws.start_send_unpin(plan.message(seq)) {
                        Ok(()) => {
                            sent.queued += 1;
                            seq += 1;
                            if plan.client_feeds[seq - 1] {
                                Step::Ping
                            } else {
                                Step::Flush
                            }
                        }
                        Err(e) => fail(&mut sent, e),
                    },
                },
                Step::Flush => match ws.poll_flush_unpin(cx) {
                    Poll::Pending => step,
                    Poll::Ready(Err(e)) => fail(&mut sent, e),
                    Poll::Ready(Ok(())) => {
                        sent.flushed = sent.queued;
                        if seq < limit {
                            Step::Ping
                        } else if plan.closer != Side::Client {
                            Step::Done
                        } else {
                            shared.closing();
                            match plan.close_how {
                                CloseHow::Close => Step::Close,
                                CloseHow::SendClose => Step::SendClose,
                                CloseHow::StartClose => match ws.start_close(None) {
                                    Ok(()) => Step::Done,
                                    Err(e) => fail(&mut sent, e),
                                },
                            }
                        }
                    }
                },
                Step::SendClose => match ws.poll_ready_unpin(cx) {
                    Poll::Pending => step,
                    Poll::Ready(Err(e)) => fail(&mut sent, e),
                    Poll::Ready(Ok(())) => {
                        match ws.start_send_unpin(Message::close(CloseCode::NORMAL, "done")) {
                            Ok(()) => Step::FlushClose,
                            Err(e) => fail(&mut sent, e),
                        }
                    }
                },
                Step::FlushClose => match ws.poll_flush_unpin(cx) {
                    Poll::Pending => step,
                    Poll::Ready(Err(e)) => fail(&mut sent, e),
                    Poll::Ready(Ok(())) => Step::Done,
                },
                Step::Close => match ws.poll_close_unpin(cx) {
                    Poll::Pending => step,
                    Poll::Ready(Err(e)) => fail(&mut sent, e),
                    Poll::Ready(Ok(())) => Step::Done,
                },
                Step::Done => Step::Done,
            };
            if step != before || (ended && step == Step::Done) {
                Poll::Ready(None)
            } else {
                Poll::Pending
            }
        })
        .await;
        shared.step("client", || {
            format!("sent {seq} ({step:?}), got {}", got.messages)
        });
        if let Some(item) = event {
            let data = matches!(item, Ok(Message::Text(_) | Message::Binary(_)));
            receive(&plan, &mut got, item, b's', b'c', &counters.client_pings)
                .map_err(|e| format!("client: {e}"))?;
            if data {
                let pause = Plan::pause(&plan.client_pauses, got.messages - 1);
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
    got.ended = Some(Instant::now());
    shared.step("client", || "ended".into());
    Ok((got, sent))
}

async fn close_single<T>(ws: &mut WebSocket<T>, sent: &mut Sent, how: CloseHow, shared: &Shared)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    shared.closing();
    let r = match how {
        CloseHow::Close => ws.close().await,
        CloseHow::SendClose => ws.send(Message::close(CloseCode::NORMAL, "done")).await,
        CloseHow::StartClose => ws.start_close(None),
    };
    if let Err(e) = r {
        sent.error.get_or_insert(e.to_string());
    }
}

/// A server in one task: the README's echo loop, `next()` then `feed` or
/// `send`, with pings and the close as planned.
async fn single_server<T>(
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    mut ws: WebSocket<T>,
) -> Result2<(Received, Sent)>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut got = Received::default();
    let mut sent = Sent::default();
    let mut closed = false;
    if plan.closer == Side::Server && plan.close_after == 0 {
        close_single(&mut ws, &mut sent, plan.close_how, &shared).await;
        closed = true;
    }
    while let Some(item) = ws.next().await {
        let echo = match &item {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => Some(m.clone()),
            _ => None,
        };
        receive(&plan, &mut got, item, b'c', b's', &counters.server_pings)
            .map_err(|e| format!("server: {e}"))?;
        shared.step("server", || {
            format!("got {}, echoed {}", got.messages, sent.queued)
        });
        let Some(m) = echo else { continue };
        if !closed && sent.error.is_none() {
            let seq = sent.queued;
            let r = if plan.server_feeds[seq] {
                ws.feed(m).await
            } else {
                ws.send(m).await
            };
            match r {
                Ok(()) => {
                    sent.queued += 1;
                    if !plan.server_feeds[seq] {
                        sent.flushed = sent.queued;
                    }
                }
                Err(e) => sent.error = Some(e.to_string()),
            }
            if plan.server_pings[seq] && sent.error.is_none() {
                counters.server_pings.fetch_add(1, Ordering::SeqCst);
                sent.pings += 1;
                if let Err(e) = ws
                    .feed(Message::Ping(format!("s{}", sent.pings - 1).into()))
                    .await
                {
                    sent.error = Some(e.to_string());
                }
            }
            if plan.closer == Side::Server && sent.queued == plan.close_after {
                close_single(&mut ws, &mut sent, plan.close_how, &shared).await;
                closed = true;
            }
        }
        {
            let pause = Plan::pause(&plan.server_pauses, got.messages - 1);
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    }
    got.ended = Some(Instant::now());
    shared.step("server", || "ended".into());
    Ok((got, sent))
}

// ---------------------------------------------------------------------------
// One run.

async fn tcp_pair(
    sndbuf: u32,
    rcvbuf: u32,
    nodelay: bool,
) -> std::io::Result<(TcpStream, TcpStream)> {
    let socket = || -> std::io::Result<TcpSocket> {
        let s = TcpSocket::new_v4()?;
        s.set_send_buffer_size(sndbuf)?;
        s.set_recv_buffer_size(rcvbuf)?;
        Ok(s)
    };
    let listen = socket()?;
    listen.bind("127.0.0.1:0".parse().unwrap())?;
    let listener: TcpListener = listen.listen(1)?;
    let addr = listener.local_addr()?;
    let (client, accepted) = tokio::join!(socket()?.connect(addr), listener.accept());
    let (client, (server, _)) = (client?, accepted?);
    client.set_nodelay(nodelay)?;
    server.set_nodelay(nodelay)?;
    Ok((client, server))
}

async fn run_over<T>(plan: Arc<Plan>, client_io: T, server_io: T) -> Result2<String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Shared {
        progress: AtomicU64::new(0),
        doing: Mutex::new(Vec::new()),
        close_started: Mutex::new(None),
    });
    let counters = Arc::new(Counters {
        client_pings: AtomicU64::new(0),
        server_pings: AtomicU64::new(0),
    });
    let client = WebSocket::from_upgraded(client_io, Role::Client, plan.config());
    let server = WebSocket::from_upgraded(server_io, Role::Server, plan.config());

    type Side2 = tokio::task::JoinHandle<Result2<(Received, Sent)>>;
    let mut handles: Vec<tokio::task::AbortHandle> = Vec::new();
    let spawn_side = |ws: WebSocket<T>,
                      side: Side,
                      handles: &mut Vec<tokio::task::AbortHandle>|
     -> Side2 {
        let (plan, shared, counters) = (plan.clone(), shared.clone(), counters.clone());
        let drive = if side == Side::Client {
            plan.client
        } else {
            plan.server
        };
        match drive {
            Drive::Single => {
                let h = if side == Side::Client {
                    tokio::spawn(single_client(plan, shared, counters, ws))
                } else {
                    tokio::spawn(single_server(plan, shared, counters, ws))
                };
                handles.push(h.abort_handle());
                h
            }
            Drive::Split => {
                let (tx, rx) = ws.split();
                let (writer, reader) = if side == Side::Client {
                    let w = tokio::spawn(client_writer(
                        plan.clone(),
                        shared.clone(),
                        counters.clone(),
                        tx,
                    ));
                    let r = tokio::spawn(reader(plan, shared, counters, side, rx, None));
                    (w, r)
                } else {
                    let (fwd, echoes) = mpsc::channel(8);
                    let w = tokio::spawn(server_writer(
                        plan.clone(),
                        shared.clone(),
                        counters.clone(),
                        tx,
                        echoes,
                    ));
                    let r = tokio::spawn(reader(plan, shared, counters, side, rx, Some(fwd)));
                    (w, r)
                };
                handles.push(writer.abort_handle());
                handles.push(reader.abort_handle());
                let joined = tokio::spawn(async move {
                    let got = reader
                        .await
                        .map_err(|e| format!("{side:?} reader panicked: {e}"))??;
                    // The writer must finish on its own once the stream ended.
                    let sent = tokio::time::timeout(JOIN_TIMEOUT, writer)
                        .await
                        .map_err(|_| {
                            format!("{side:?} writer still running {JOIN_TIMEOUT:?} after its stream ended")
                        })?
                        .map_err(|e| format!("{side:?} writer panicked: {e}"))?;
                    Ok((got, sent))
                });
                handles.push(joined.abort_handle());
                joined
            }
        }
    };
    let client_task = spawn_side(client, Side::Client, &mut handles);
    let server_task = spawn_side(server, Side::Server, &mut handles);

    let both = async {
        let (c, s) = tokio::join!(client_task, server_task);
        let c = c.map_err(|e| format!("client panicked: {e}"))??;
        let s = s.map_err(|e| format!("server panicked: {e}"))??;
        Ok::<_, Failure>((c, s))
    };
    let watchdog = async {
        let mut last = shared.progress.load(Ordering::Relaxed);
        let mut since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = shared.progress.load(Ordering::Relaxed);
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= STALL {
                let doing = shared.doing.lock().unwrap().clone();
                return format!("stalled: nothing moved for {STALL:?}; last steps {doing:?}");
            }
        }
    };
    let outcome = tokio::select! {
        r = both => r,
        stall = watchdog => Err(stall),
    };
    for h in &handles {
        h.abort();
    }
    let ((client_got, client_sent), (server_got, server_sent)) = outcome?;

    // Nothing lost: each side got what the other wrote, in order.
    let mut problems = Vec::new();
    if client_sent.flushed > server_got.messages {
        problems.push(format!(
            "the server got {} messages, but the client's sends of {} returned Ok",
            server_got.messages, client_sent.flushed
        ));
    }
    if server_got.messages > client_sent.queued {
        problems.push(format!(
            "the server got {} messages of the {} the client queued",
            server_got.messages, client_sent.queued
        ));
    }
    if server_sent.flushed > client_got.messages {
        problems.push(format!(
            "the client got {} echoes, but the server's sends of {} returned Ok",
            client_got.messages, server_sent.flushed
        ));
    }
    if client_got.pings > server_sent.pings || server_got.pings > client_sent.pings {
        problems.push("more pings arrived than were sent".into());
    }
    // The close: both streams end with the peer's Close.
    for (who, got) in [("client", &client_got), ("server", &server_got)] {
        match &got.last {
            Some(Ok(Message::Close(_))) => {}
            other => problems.push(format!(
                "the {who}'s stream ended with {other:?}, not the peer's Close"
            )),
        }
    }
    let started = *shared.close_started.lock().unwrap();
    let ended = client_got.ended.max(server_got.ended);
    match (started, ended) {
        (Some(s), Some(e)) if e.saturating_duration_since(s) > CLOSE_TIMEOUT + CLOSE_MARGIN => {
            problems.push(format!(
                "the close took {:?} (close_timeout {CLOSE_TIMEOUT:?})",
                e - s
            ))
        }
        (None, _) => problems.push("nobody started the close".into()),
        _ => {}
    }
    if !problems.is_empty() {
        return Err(format!(
            "{}; client sent {client_sent:?}, server sent {server_sent:?}",
            problems.join("; ")
        ));
    }
    Ok(format!(
        "{} messages each way, close in {:?}",
        server_got.messages,
        ended
            .zip(started)
            .map(|(e, s)| e.saturating_duration_since(s))
    ))
}

fn run(seed: u64) -> Result2<String> {
    let plan = Arc::new(Plan::new(seed));
    let rt = if plan.multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .unwrap();
    let result = rt.block_on(async {
        match plan.transport {
            Transport::Duplex { capacity } => {
                let (a, b) = tokio::io::duplex(capacity);
                run_over(plan.clone(), a, b).await
            }
            Transport::Tcp {
                sndbuf,
                rcvbuf,
                nodelay,
            } => {
                let (a, b) = tcp_pair(sndbuf, rcvbuf, nodelay)
                    .await
                    .map_err(|e| format!("loopback TCP: {e}"))?;
                run_over(plan.clone(), a, b).await
            }
        }
    });
    // Whatever is left (a stalled run) is dropped with the runtime.
    rt.shutdown_timeout(Duration::from_secs(1));
    result.map_err(|e| format!("{e}\n    plan: {plan}"))
}

fn parse_seed(s: &str) -> u64 {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .unwrap_or_else(|_| panic!("not a seed: {s:?}"))
}

#[test]
fn seeded_concurrent_runs_never_stall_lose_reorder_or_hang() {
    let seeds: Vec<u64> = match std::env::var("WSCODEC_STRESS_SEED") {
        Ok(list) => list.split(',').map(parse_seed).collect(),
        Err(_) => {
            let runs = std::env::var("WSCODEC_STRESS_RUNS")
                .map(|r| parse_seed(&r))
                .unwrap_or(DEFAULT_RUNS);
            let first = std::env::var("WSCODEC_STRESS_FIRST_SEED")
                .map(|s| parse_seed(&s))
                .unwrap_or(1);
            (first..first + runs).collect()
        }
    };
    let started = Instant::now();
    let mut failed = Vec::new();
    for &seed in &seeds {
        let t = Instant::now();
        match run(seed) {
            Ok(summary) => eprintln!("seed {seed}: ok in {:?}: {summary}", t.elapsed()),
            Err(e) => {
                eprintln!(
                    "seed {seed}: FAILED in {:?}: {e}\n    replay: WSCODEC_STRESS_SEED={seed} \
                     cargo test --test stress -- --nocapture",
                    t.elapsed()
                );
                failed.push(seed);
            }
        }
    }
    eprintln!(
        "{} of {} runs failed in {:?}",
        failed.len(),
        seeds.len(),
        started.elapsed()
    );
    assert!(
        failed.is_empty(),
        "{} of {} seeded runs failed: seeds {failed:?}; replay one with \
         WSCODEC_STRESS_SEED={} cargo test --test stress -- --nocapture",
        failed.len(),
        seeds.len(),
        failed[0]
    );
}
