//! Load generator of the fan-out benchmark (`benches/fanout/run.sh`): one
//! sender and many receivers in one room of a chat server that speaks the
//! protocol of `examples/broadcast` (that server, or `server_tungstenite.rs` here).
//!
//! ```text
//! cargo run --release --example fanout_load -- --url ws://127.0.0.1:9002/ws/bench \
//!     [--receivers 1000] [--messages 5000] [--size 64] [--window 64] \
//!     [--server-pid PID] [--label NAME] [--clk-tck 100]
//! ```
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
use std::sync::Arc;
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

struct Args {
    url: String,
    receivers: usize,
    messages: u64,
    size: usize,
    window: u64,
    server_pid: Option<u32>,
    label: String,
    clk_tck: f64,
}

impl Args {
    fn parse() -> Result<Args, BoxError> {
        let mut args = Args {
            url: String::new(),
            receivers: 1000,
            messages: 5000,
            size: 64,
            window: 64,
            server_pid: None,
            label: "server".into(),
            clk_tck: 100.0,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--url" => args.url = value,
                "--receivers" => args.receivers = value.parse()?,
                "--messages" => args.messages = value.parse()?,
                "--size" => args.size = value.parse()?,
                "--window" => args.window = value.parse()?,
                "--server-pid" => args.server_pid = Some(value.parse()?),
                "--label" => args.label = value,
                "--clk-tck" => args.clk_tck = value.parse()?,
                _ => return Err(format!("unknown option {flag}").into()),
            }
        }
        if args.url.is_empty() || args.window == 0 || args.receivers == 0 {
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
    all_ready: Notify,
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
async fn receive(mut ws: WebSocket<TcpStream>, progress: Arc<Progress>) -> Result<(), BoxError> {
    while let Some(message) = ws.next().await {
        let Message::Text(text) = message? else {
            continue;
        };
        if let Some(rest) = text.strip_prefix(FROM_SENDER) {
            let digits = rest.split(' ').next().unwrap_or_default();
            progress.received(digits.parse()?);
        } else if text.starts_with(SENDER_JOINED)
            && progress.ready.fetch_add(1, Ordering::AcqRel) + 1 == progress.receivers as usize
        {
            progress.all_ready.notify_one();
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
        all_ready: Notify::new(),
    });
    let (rss_idle, _) = args.server_pid.map_or((0, 0), memory_kib);

    let started = Instant::now();
    let mut connecting = futures::stream::iter(0..args.receivers)
        .map(|i| {
            let url = args.url.clone();
            async move { join(&url, &format!("r{i}")).await }
        })
        .buffer_unordered(64);
    while let Some(ws) = connecting.next().await {
        let ws = ws?;
        let progress = progress.clone();
        tokio::spawn(async move {
            if let Err(e) = receive(ws, progress).await {
                eprintln!("fanout_load: {e}");
                std::process::exit(1);
            }
        });
    }
    let (mut sender, mut echo) = join(&args.url, "sender").await?.split();
    // The sender is a member too: it gets its own messages back, and must
    // read them or be dropped as too slow.
    tokio::spawn(async move { while let Some(Ok(_)) = echo.next().await {} });
    tokio::time::timeout(Duration::from_secs(120), progress.all_ready.notified())
        .await
        .map_err(|_| "receivers did not all see the sender join")?;
    let connect_secs = started.elapsed().as_secs_f64();
    let (rss_connected, _) = args.server_pid.map_or((0, 0), memory_kib);
    let server_pid = args.server_pid.map(|p| p.to_string());
    let server_cpu_before = server_pid.as_deref().map_or(0, cpu_ticks);
    let own_cpu_before = cpu_ticks("self");

    let padding = "x".repeat(args.size);
    let started = Instant::now();
    for seq in 0..args.messages {
        while seq >= progress.completed.load(Ordering::Acquire) + args.window {
            sender.flush().await?;
            progress.advanced.notified().await;
        }
        progress
            .slot(seq)
            .store(progress.receivers, Ordering::Release);
        let mut text = format!("{seq} ");
        text.push_str(&padding[..args.size.saturating_sub(text.len())]);
        sender.feed(Message::text(text)).await?;
    }
    sender.flush().await?;
    while progress.completed.load(Ordering::Acquire) < args.messages {
        progress.advanced.notified().await;
    }
    let secs = started.elapsed().as_secs_f64();

    let (rss_after, hwm) = args.server_pid.map_or((0, 0), memory_kib);
    let server_cpu = server_pid
        .as_deref()
        .map_or(0, |p| cpu_ticks(p) - server_cpu_before) as f64
        / args.clk_tck;
    let own_cpu = (cpu_ticks("self") - own_cpu_before) as f64 / args.clk_tck;
    let deliveries = args.messages * args.receivers as u64;
    println!(
        "result server={} receivers={} messages={} size={} window={} connect_s={:.2} \
         run_s={:.3} messages_per_s={:.0} deliveries_per_s={:.0} server_cpu_pct={:.0} \
         load_cpu_pct={:.0} rss_idle_kib={rss_idle} rss_connected_kib={rss_connected} \
         rss_after_kib={rss_after} hwm_kib={hwm}",
        args.label,
        args.receivers,
        args.messages,
        args.size,
        args.window,
        connect_secs,
        secs,
        args.messages as f64 / secs,
        deliveries as f64 / secs,
        100.0 * server_cpu / secs,
        100.0 * own_cpu / secs,
    );
    // Leave without closing a thousand connections one by one: the server
    // sees them end, which is all the benchmark needs.
    std::process::exit(0);
}
