//! Load generator of the fan-out benchmark (`benches/fanout/run.sh`): one
//! sender and many receivers in one room of a chat server that speaks the
//! protocol of `examples/broadcast` (that server, or `server_tungstenite.rs` here).
//!
//! ```text
//! cargo run --release --example fanout_load -- --url ws://127.0.0.1:9002/ws/bench[,URL2] \
//!     [--receivers 1000] [--messages 5000] [--size 64] [--window 64] \
//!     [--interval-ms MS] [--server-pid PID[,PID2]] [--redis-pid PID] \
//!     [--label NAME] [--clk-tck 100]
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

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
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

async fn join(url: &str, name: &str) -> Result<WebSocket<TcpStream>, BoxError> {
    let uri = format!("{url}?name={name}");
    let addr = wscodec::ClientRequest::new(&uri)?.connect_addr();
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (ws, _) = wscodec::connect(tcp, &uri).await?;
    Ok(ws)
}

/// Reads a receiver's stream: counts the sender's messages, notes its join.
async fn receive(
    mut ws: WebSocket<TcpStream>,
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
            if !progress.paced {
                progress.received(seq);
            }
        }
    }
    Err("a receiver's connection ended".into())
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
            async move { Ok::<_, BoxError>((join(&url, &format!("r{i}")).await?, group)) }
        })
        .buffer_unordered(64);
    while let Some(ws) = connecting.next().await {
        let (ws, group) = ws?;
        let progress = progress.clone();
        tokio::spawn(async move {
            if let Err(e) = receive(ws, progress, group).await {
                eprintln!("fanout_load: {e}");
                std::process::exit(1);
            }
        });
    }
    let (mut sender, mut echo) = join(&args.urls[0], "sender").await?.split();
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

    let padding = "x".repeat(args.size);
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
            text.push_str(&padding[..args.size.saturating_sub(text.len())]);
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
        text.push_str(&padding[..args.size.saturating_sub(text.len())]);
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
    let delivered = progress.delivered.load(Ordering::Relaxed);
    println!(
        "result server={} receivers={} messages={} size={} window={} connect_s={:.2} \
         run_s={:.3} messages_per_s={:.0} deliveries_per_s={:.0} server_cpu_pct={:.0} \
         redis_cpu_pct={:.0} load_cpu_pct={:.0} rss_idle_kib={rss_idle} \
         rss_connected_kib={rss_connected} rss_after_kib={rss_after} hwm_kib={hwm} \
         delivered={delivered} ready_by_probe={} join_after_probe={}{groups}",
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
    );
    // Leave without closing a thousand connections one by one: the server
    // sees them end, which is all the benchmark needs.
    std::process::exit(0);
}
