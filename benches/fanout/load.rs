//! Load generator of the fan-out benchmark (`benches/fanout/run.sh`): one
//! sender and many receivers in one room of a chat server that speaks the
//! protocol of `examples/broadcast` (that server, or `server_tungstenite.rs` here).
//!
//! ```text
//! cargo run --release --example fanout_load -- --url ws://127.0.0.1:9002/ws/bench[,URL2] \
//!     [--receivers 1000] [--messages 5000] [--size 64] [--window 64] \
//!     [--interval-ms MS] [--server-pid PID[,PID2]] [--redis-pid PID] \
//!     [--label NAME] [--clk-tck 100] [--deflate on]
//! ```
//!
//! With two URLs (two nodes of a cluster), receivers alternate between them
//! and the sender joins the first: group `same` is on the sender's node,
//! group `other` on the other one. Each message carries the microseconds of
//! this process's monotonic clock at which it was sent, so the latency from
//! send to receipt is measured on one clock; the result line gives its
//! p50/p99/p99.9 per group, and per group the longest silence any receiver
//! saw between two of the sender's messages (`gap_ms`: with `--interval-ms`,
//! the recovery time after a broker fault, plus up to one interval).
//! `--interval-ms` sends one message every that many milliseconds instead of
//! a window at a time (latency at light load; no receiver has to get all;
//! the result line then says `window=0`).
//!
//! Receivers connect first (64 at a time), then the sender; once every
//! receiver has seen the sender join, the sender sends `--messages` text
//! messages of `--size` bytes. It keeps at most `--window` of them in flight:
//! message `n` goes out once every receiver has message `n - window`, so no
//! receiver falls behind far enough to be dropped, and what is measured is the
//! rate at which the server (with this process as the bottleneck, if it is one:
//! see the CPU columns) delivers to all of them. With `--server-pid`, the
//! server's resident memory (`VmRSS`, peak `VmHWM`) and CPU time are read from
//! `/proc`. Prints one `result` line of `key=value` pairs.
//!
//! The chat text is words drawn from a fixed vocabulary by a seeded generator,
//! different in every message, after the sequence number and send time: about
//! as compressible as English prose (deflate level 6 shrinks it to roughly a
//! third), so neither a per-message compressor nor one with context takeover
//! gets the repeated text that a constant padding would hand it. With
//! `--deflate on` (built with feature `deflate`) every connection offers
//! permessage-deflate (RFC 7692) with the crate's default [`DeflateConfig`]
//! (context takeover, no window limit asked for, as a browser offers it); the
//! result line says how many receivers the server agreed with
//! (`deflate_agreed`, from each handshake response's
//! `Sec-WebSocket-Extensions`, RFC 7692 §5) and, where the welcome has a
//! `deflate` field, checks that it says the same. `wire_bytes_per_delivery`
//! is what the receivers read from their sockets while the messages were sent
//! (frame headers included, compressed if agreed), over the deliveries;
//! `json_bytes_per_delivery` the same for the messages' text as received.
//! `server_preempted_per_s` and `load_preempted_per_s` count involuntary
//! context switches (all threads, from `/proc`): on a shared machine, how
//! often other work took the core.
//!
//! [`DeflateConfig`]: wscodec::deflate::DeflateConfig

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use wscodec::{Message, WebSocket};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The sender's chat messages as both servers relay them, up to the sequence
/// number at the start of the text.
const FROM_SENDER: &str = r#"{"type":"message","name":"sender","text":""#;
const SENDER_JOINED: &str = r#"{"type":"join","name":"sender","#;
/// The text of the sender's readiness probes. Through a cluster a member may
/// miss the sender's join (it joined its node while that node's subscription
/// to the room was still being made), so the sender also repeats a probe
/// until every receiver has seen the join or one probe.
const READY: &str = "ready";

struct Args {
    urls: Vec<String>,
    receivers: usize,
    messages: u64,
    size: usize,
    window: u64,
    server_pids: Vec<u32>,
    redis_pid: Option<u32>,
    interval_ms: Option<u64>,
    label: String,
    clk_tck: f64,
    deflate: bool,
}

impl Args {
    fn parse() -> Result<Args, BoxError> {
        let mut args = Args {
            urls: Vec::new(),
            receivers: 1000,
            messages: 5000,
            size: 64,
            window: 64,
            server_pids: Vec::new(),
            redis_pid: None,
            interval_ms: None,
            label: "server".into(),
            clk_tck: 100.0,
            deflate: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--url" => args.urls = value.split(',').map(String::from).collect(),
                "--receivers" => args.receivers = value.parse()?,
                "--messages" => args.messages = value.parse()?,
                "--size" => args.size = value.parse()?,
                "--window" => args.window = value.parse()?,
                "--server-pid" => {
                    args.server_pids = value.split(',').map(str::parse).collect::<Result<_, _>>()?
                }
                "--redis-pid" => args.redis_pid = Some(value.parse()?),
                "--interval-ms" => args.interval_ms = Some(value.parse()?),
                "--label" => args.label = value,
                "--clk-tck" => args.clk_tck = value.parse()?,
                "--deflate" => {
                    args.deflate = match value.as_str() {
                        "on" => true,
                        "off" => false,
                        _ => return Err("--deflate takes on or off".into()),
                    };
                    if args.deflate && !cfg!(feature = "deflate") {
                        return Err("--deflate on needs a build with feature deflate".into());
                    }
                }
                _ => return Err(format!("unknown option {flag}").into()),
            }
        }
        if args.urls.is_empty() || args.window == 0 || args.receivers == 0 {
            return Err("--url is required; --window and --receivers must be positive".into());
        }
        Ok(args)
    }
}

/// Delivery bookkeeping shared by the receivers and the sender.
struct Progress {
    receivers: u32,
    /// For message `n`, at `n % len`: receivers that have yet to get it.
    outstanding: Vec<AtomicU32>,
    /// Messages every receiver has (they arrive in order, so a prefix).
    completed: AtomicU64,
    advanced: Notify,
    /// Receivers that have seen the sender join.
    ready: AtomicUsize,
    /// Receivers whose first sign of the sender was a probe, not its join.
    ready_by_probe: AtomicUsize,
    /// Of those, receivers that got the sender's join after a probe.
    join_after_probe: AtomicUsize,
    all_ready: Notify,
    /// Per receiver group: send-to-receipt latencies in microseconds.
    latencies: Vec<Mutex<Vec<u32>>>,
    /// Per receiver group: the longest time between two of the sender's
    /// messages at any one receiver, in microseconds.
    max_gap: Vec<AtomicU64>,
    /// Deliveries of the sender's messages, all receivers together.
    delivered: AtomicU64,
    /// Paced mode: no window, so `outstanding` is not kept.
    paced: bool,
    /// Bytes the receivers read from their sockets.
    wire_bytes: Arc<AtomicU64>,
    /// Bytes of the sender's messages' text as the receivers got them.
    text_bytes: AtomicU64,
    /// Receivers whose server agreed on permessage-deflate.
    deflate_agreed: AtomicUsize,
    /// Receivers whose welcome had a `deflate` field, and of those, how many
    /// said `true`.
    welcome_deflate_fields: AtomicUsize,
    welcome_deflate_true: AtomicUsize,
}

/// A socket that counts the bytes read from it: the size on the wire of what
/// the receivers get, compressed or not.
struct Counted {
    io: TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        poll
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Chat text of `len` bytes for message `seq`: words of a fixed vocabulary
/// picked by a generator seeded with `seq`, so every message differs but all
/// are alike in how well they compress.
fn chat_text(seq: u64, len: usize, out: &mut String) {
    const WORDS: &[&str] = &[
        "the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are",
        "as", "with", "his", "they", "at", "be", "this", "have", "from", "or", "one", "had", "by",
        "word", "but", "not", "what", "all", "were", "we", "when", "your", "can", "said", "there",
        "use", "an", "each", "which", "she", "do", "how", "their", "if", "will", "up", "other",
        "about", "out", "many", "then", "them", "these", "so", "some", "her", "would", "make",
        "like", "him", "into", "time", "has", "look", "two", "more", "write", "go", "see",
        "number", "no", "way", "could", "people", "my", "than", "first", "water", "been", "call",
        "who", "oil", "its", "now", "find", "long", "down", "day", "did", "get", "come", "made",
        "may", "part", "server", "deploy", "lunch", "meeting", "tomorrow", "build", "broken",
        "fixed", "merge", "review", "coffee", "weekend", "release", "thanks", "sorry", "great",
        "idea", "ticket", "branch", "latency", "room",
    ];
    let start = out.len();
    // xorshift64*, seeded apart from zero.
    let mut state = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let pick = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
        let word = WORDS[pick as usize % WORDS.len()];
        out.push_str(word);
        out.push(if pick % 13 == 0 { '.' } else { ' ' });
    }
    out.truncate(len.max(start));
}

/// Microseconds on this process's monotonic clock.
fn now_micros() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// The `q`-quantile of sorted samples (nearest rank).
fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

impl Progress {
    fn slot(&self, seq: u64) -> &AtomicU32 {
        &self.outstanding[(seq % self.outstanding.len() as u64) as usize]
    }

    fn received(&self, seq: u64) {
        if self.slot(seq).fetch_sub(1, Ordering::AcqRel) == 1 {
            self.completed.store(seq + 1, Ordering::Release);
            self.advanced.notify_one();
        }
    }
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces): state is field 3, utime 14, stime 15.
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let field = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    field(14).unwrap_or(0) + field(15).unwrap_or(0)
}

/// Joins the room as `name`; says whether permessage-deflate was agreed.
/// Involuntary context switches of all of a process's threads: how often the
/// kernel took the CPU from it for other work. On a machine other jobs share,
/// a high count says its CPU column measures competition, not capacity.
fn preemptions(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

async fn join(
    url: &str,
    name: &str,
    deflate: bool,
    read: Arc<AtomicU64>,
) -> Result<(WebSocket<Counted>, bool), BoxError> {
    let uri = format!("{url}?name={name}");
    let request = wscodec::ClientRequest::new(&uri)?;
    let tcp = TcpStream::connect(request.connect_addr()).await?;
    tcp.set_nodelay(true)?;
    let config = wscodec::Config::default();
    #[cfg(feature = "deflate")]
    let config = config.deflate(deflate.then(wscodec::deflate::DeflateConfig::default));
    #[cfg(not(feature = "deflate"))]
    let _ = deflate;
    let (ws, response) = wscodec::connect_with(Counted { io: tcp, read }, request, config).await?;
    // RFC 7692 §5: the server accepts an offer by naming the extension in
    // its response (connect_with has already checked the parameters).
    let agreed = response
        .headers()
        .get("sec-websocket-extensions")
        .is_some_and(|v| {
            v.split(',')
                .any(|e| e.trim().starts_with("permessage-deflate"))
        });
    Ok((ws, agreed))
}

/// Reads a receiver's stream: counts the sender's messages, notes its join.
async fn receive(
    mut ws: WebSocket<Counted>,
    agreed: bool,
    progress: Arc<Progress>,
    group: usize,
) -> Result<(), BoxError> {
    let mut last = None;
    let mut ready = false;
    let mut by_probe = false;
    while let Some(message) = ws.next().await {
        let Message::Text(text) = message? else {
            continue;
        };
        if text.starts_with(r#"{"type":"welcome","#) {
            if let Some(said) = welcome_deflate(&text) {
                if said != agreed {
                    return Err(format!(
                        "the welcome says deflate {said}, the handshake response {agreed}"
                    )
                    .into());
                }
                progress
                    .welcome_deflate_fields
                    .fetch_add(1, Ordering::Relaxed);
                if said {
                    progress
                        .welcome_deflate_true
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            continue;
        }
        let probe = text
            .strip_prefix(FROM_SENDER)
            .is_some_and(|rest| rest.starts_with(READY));
        if probe || text.starts_with(SENDER_JOINED) {
            if ready && !probe && by_probe {
                progress.join_after_probe.fetch_add(1, Ordering::Relaxed);
            }
            if !ready {
                by_probe = probe;
                ready = true;
                if probe {
                    progress.ready_by_probe.fetch_add(1, Ordering::Relaxed);
                }
                if progress.ready.fetch_add(1, Ordering::AcqRel) + 1 == progress.receivers as usize
                {
                    progress.all_ready.notify_one();
                }
            }
        } else if let Some(rest) = text.strip_prefix(FROM_SENDER) {
            let now = now_micros();
            let mut words = rest.split(' ');
            let seq = words.next().unwrap_or_default().parse()?;
            let sent: u64 = words.next().unwrap_or_default().parse()?;
            let latency = u32::try_from(now.saturating_sub(sent)).unwrap_or(u32::MAX);
            progress.latencies[group].lock().unwrap().push(latency);
            if let Some(last) = last.replace(now) {
                progress.max_gap[group].fetch_max(now - last, Ordering::Relaxed);
            }
            progress.delivered.fetch_add(1, Ordering::Relaxed);
            progress
                .text_bytes
                .fetch_add(text.len() as u64, Ordering::Relaxed);
            if !progress.paced {
                progress.received(seq);
            }
        }
    }
    Err("a receiver's connection ended".into())
}

/// The welcome's `deflate` field, if it has one.
fn welcome_deflate(welcome: &str) -> Option<bool> {
    let (_, rest) = welcome.split_once(r#""deflate":"#)?;
    if rest.starts_with("true") {
        Some(true)
    } else if rest.starts_with("false") {
        Some(false)
    } else {
        None
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse()?;
    let progress = Arc::new(Progress {
        receivers: u32::try_from(args.receivers)?,
        outstanding: (0..(args.window * 2).next_power_of_two())
            .map(|_| AtomicU32::new(0))
            .collect(),
        completed: AtomicU64::new(0),
        advanced: Notify::new(),
        ready: AtomicUsize::new(0),
        ready_by_probe: AtomicUsize::new(0),
        join_after_probe: AtomicUsize::new(0),
        all_ready: Notify::new(),
        latencies: args.urls.iter().map(|_| Mutex::default()).collect(),
        max_gap: args.urls.iter().map(|_| AtomicU64::new(0)).collect(),
        delivered: AtomicU64::new(0),
        paced: args.interval_ms.is_some(),
        wire_bytes: Arc::default(),
        text_bytes: AtomicU64::new(0),
        deflate_agreed: AtomicUsize::new(0),
        welcome_deflate_fields: AtomicUsize::new(0),
        welcome_deflate_true: AtomicUsize::new(0),
    });
    now_micros();
    let memory = || {
        args.server_pids
            .iter()
            .map(|&p| memory_kib(p))
            .fold((0, 0), |(r, h), (r2, h2)| (r + r2, h + h2))
    };
    let cpu = |pids: &[String]| pids.iter().map(|p| cpu_ticks(p)).sum::<u64>();
    let (rss_idle, _) = memory();

    let started = Instant::now();
    let mut connecting = futures::stream::iter(0..args.receivers)
        .map(|i| {
            let group = i % args.urls.len();
            let url = args.urls[group].clone();
            let read = progress.wire_bytes.clone();
            let deflate = args.deflate;
            async move {
                let (ws, agreed) = join(&url, &format!("r{i}"), deflate, read).await?;
                Ok::<_, BoxError>((ws, agreed, group))
            }
        })
        .buffer_unordered(64);
    while let Some(ws) = connecting.next().await {
        let (ws, agreed, group) = ws?;
        if agreed {
            progress.deflate_agreed.fetch_add(1, Ordering::Relaxed);
        }
        let progress = progress.clone();
        tokio::spawn(async move {
            if let Err(e) = receive(ws, agreed, progress, group).await {
                eprintln!("fanout_load: {e}");
                std::process::exit(1);
            }
        });
    }
    let (sender, _) = join(&args.urls[0], "sender", args.deflate, Arc::default()).await?;
    let (mut sender, mut echo) = sender.split();
    // The sender is a member too: it gets its own messages back, and must
    // read them or be dropped as too slow.
    tokio::spawn(async move { while let Some(Ok(_)) = echo.next().await {} });
    let waiting = Instant::now();
    loop {
        let all_ready = progress.all_ready.notified();
        if progress.ready.load(Ordering::Acquire) == args.receivers {
            break;
        }
        if waiting.elapsed() > Duration::from_secs(120) {
            return Err(format!(
                "{} of {} receivers saw the sender join or probe",
                progress.ready.load(Ordering::Acquire),
                args.receivers
            )
            .into());
        }
        sender.send(Message::text(READY)).await?;
        let _ = tokio::time::timeout(Duration::from_millis(200), all_ready).await;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    // cluster.sh waits for this line before it injects a fault.
    eprintln!("fanout_load: every receiver is in; sending");
    let (rss_connected, _) = memory();
    let server_pids: Vec<String> = args.server_pids.iter().map(u32::to_string).collect();
    let redis_pid: Vec<String> = args.redis_pid.iter().map(u32::to_string).collect();
    let server_cpu_before = cpu(&server_pids);
    let redis_cpu_before = cpu(&redis_pid);
    let own_cpu_before = cpu_ticks("self");
    let preempted = |pids: &[String]| pids.iter().map(|p| preemptions(p)).sum::<u64>();
    let server_preempted_before = preempted(&server_pids);
    let own_preempted_before = preemptions("self");
    let wire_before = progress.wire_bytes.load(Ordering::Relaxed);
    let text_before = progress.text_bytes.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut pace = args.interval_ms.map(|ms| {
        let mut pace = tokio::time::interval(Duration::from_millis(ms));
        // A fault may stall the sender's writes; send on at the same pace after.
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        pace
    });
    for seq in 0..args.messages {
        if let Some(pace) = &mut pace {
            pace.tick().await;
            let mut text = format!("{seq} {} ", now_micros());
            chat_text(seq, args.size, &mut text);
            sender.send(Message::text(text)).await?;
            continue;
        }
        while seq >= progress.completed.load(Ordering::Acquire) + args.window {
            sender.flush().await?;
            progress.advanced.notified().await;
        }
        progress
            .slot(seq)
            .store(progress.receivers, Ordering::Release);
        let mut text = format!("{seq} {} ", now_micros());
        chat_text(seq, args.size, &mut text);
        sender.feed(Message::text(text)).await?;
    }
    sender.flush().await?;
    let deliveries = args.messages * args.receivers as u64;
    if args.interval_ms.is_some() {
        // Lines refused while the broker was down never come: wait a while, not for all.
        let last_sent = Instant::now();
        while progress.delivered.load(Ordering::Relaxed) < deliveries
            && last_sent.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    } else {
        while progress.completed.load(Ordering::Acquire) < args.messages {
            progress.advanced.notified().await;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let wire = progress.wire_bytes.load(Ordering::Relaxed) - wire_before;
    let text_bytes = progress.text_bytes.load(Ordering::Relaxed) - text_before;

    let (rss_after, hwm) = memory();
    let server_cpu = (cpu(&server_pids) - server_cpu_before) as f64 / args.clk_tck;
    // A restarted Redis is a new process: its ticks start again.
    let redis_cpu = cpu(&redis_pid).saturating_sub(redis_cpu_before) as f64 / args.clk_tck;
    let mut groups = String::new();
    for (i, name) in ["same", "other"].iter().take(args.urls.len()).enumerate() {
        let mut samples = std::mem::take(&mut *progress.latencies[i].lock().unwrap());
        samples.sort_unstable();
        use std::fmt::Write;
        let _ = write!(
            groups,
            " {name}_n={} {name}_p50_ms={:.3} {name}_p99_ms={:.3} {name}_p999_ms={:.3} \
             {name}_gap_ms={:.1}",
            samples.len(),
            quantile(&samples, 0.5),
            quantile(&samples, 0.99),
            quantile(&samples, 0.999),
            progress.max_gap[i].load(Ordering::Relaxed) as f64 / 1000.0,
        );
    }
    let own_cpu = (cpu_ticks("self") - own_cpu_before) as f64 / args.clk_tck;
    let server_preempted = preempted(&server_pids).saturating_sub(server_preempted_before);
    let own_preempted = preemptions("self").saturating_sub(own_preempted_before);
    let delivered = progress.delivered.load(Ordering::Relaxed);
    println!(
        "result server={} receivers={} messages={} size={} window={} connect_s={:.2} \
         run_s={:.3} messages_per_s={:.0} deliveries_per_s={:.0} server_cpu_pct={:.0} \
         redis_cpu_pct={:.0} load_cpu_pct={:.0} rss_idle_kib={rss_idle} \
         rss_connected_kib={rss_connected} rss_after_kib={rss_after} hwm_kib={hwm} \
         delivered={delivered} ready_by_probe={} join_after_probe={} deflate_offered={} \
         deflate_agreed={} welcome_deflate={} wire_bytes_per_delivery={:.1} \
         json_bytes_per_delivery={:.1} server_preempted_per_s={:.0} \
         load_preempted_per_s={:.0}{groups}",
        args.label,
        args.receivers,
        args.messages,
        args.size,
        args.interval_ms.map_or(args.window, |_| 0),
        connect_secs,
        secs,
        args.messages as f64 / secs,
        delivered as f64 / secs,
        100.0 * server_cpu / secs,
        100.0 * redis_cpu / secs,
        100.0 * own_cpu / secs,
        progress.ready_by_probe.load(Ordering::Relaxed),
        progress.join_after_probe.load(Ordering::Relaxed),
        u8::from(args.deflate),
        progress.deflate_agreed.load(Ordering::Relaxed),
        match progress.welcome_deflate_fields.load(Ordering::Relaxed) {
            0 => "absent".to_owned(),
            _ => progress
                .welcome_deflate_true
                .load(Ordering::Relaxed)
                .to_string(),
        },
        wire as f64 / delivered.max(1) as f64,
        text_bytes as f64 / delivered.max(1) as f64,
        server_preempted as f64 / secs,
        own_preempted as f64 / secs,
    );
    // Leave without closing a thousand connections one by one: the server
    // sees them end, which is all the benchmark needs.
    std::process::exit(0);
}
