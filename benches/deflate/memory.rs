//! Server memory per connection with permessage-deflate, for every window size
//! and with or without context takeover (`benches/deflate/run.sh`).
//!
//! ```text
//! deflate_memory [--conns 1000] [--messages 16]
//!     [--settings off,off-idle,idle,browser,browser-15,8,...,15,8n,...,15n]
//! deflate_memory --serve ADDR [--unlimited]      # the server side, run by the above
//! ```
//!
//! For each setting it starts a fresh server process (this program with
//! `--serve`: the loop of `examples/echo`, accept and echo every data message,
//! on a single-threaded runtime, with `DeflateConfig::default()`; with
//! `--unlimited`, without its window limits, so that the client's offer
//! decides), reads its resident memory (`VmRSS` in `/proc/PID/status`), opens
//! `--conns` connections, sends `--messages` JSON messages on each (compressed,
//! so the server's decompressor has state) one at a time and reads and checks
//! their echoes (compressed by the server, so its compressor has state), keeps
//! every connection open and idle, reads `VmRSS` again, and prints the growth
//! divided by the number of connections. The default 16 messages (about 30 KB)
//! fill a 32 KiB window, so the figures are those of a connection that has
//! been in use for a while, not of a fresh one.
//!
//! Settings: `off` offers no compression (the baseline; `off-idle` sends one
//! short message instead, the baseline of `idle`); `B` (8–15) offers
//! `server_max_window_bits=B; client_max_window_bits=B` to a server without
//! window limits, and `Bn` adds `server_no_context_takeover;
//! client_no_context_takeover`; `browser` sends the offer browsers send
//! (`permessage-deflate; client_max_window_bits`) to a server with the
//! defaults, `browser-15` the same to a server without limits (window 15, the
//! default before); `idle` makes the browser's offer to the default server but
//! sends one 16-byte message (under the compression threshold): compression
//! negotiated and never used.
//!
//! The client side is written here with flate2 and raw TCP, not with the crate,
//! so the load stays small and the same whatever the server does. It
//! compresses with the window the server's response allows.
// The example's items are `pub` for this file, which includes it as a module;
// reading RSS after malloc_trim needs one unsafe call.
#![allow(unreachable_pub, unsafe_code)]

#[path = "corpus.rs"]
mod corpus;

use std::io::{BufRead, BufReader as StdBufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use wscodec::deflate::DeflateConfig;
use wscodec::handshake::{Accept, Reject, Request};
use wscodec::Config;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const KEY: [u8; 4] = [0x1b, 0x5e, 0xa7, 0x42];
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// What one setting offers and sends.
#[derive(Clone, Debug)]
struct Setting {
    name: String,
    /// The `Sec-WebSocket-Extensions` offer, if any.
    offer: Option<String>,
    /// Window bits the client compresses with (8 = stored blocks only).
    client_bits: u8,
    takeover: bool,
    /// Send one short message instead of the corpus.
    idle: bool,
    /// The server has no window limits of its own.
    unlimited: bool,
}

impl Setting {
    fn parse(name: &str) -> Result<Setting, BoxError> {
        let base = Setting {
            name: name.into(),
            offer: None,
            client_bits: 15,
            takeover: true,
            idle: false,
            unlimited: false,
        };
        Ok(match name {
            "off" => base,
            "off-idle" => Setting { idle: true, ..base },
            "browser" => Setting {
                offer: Some("permessage-deflate; client_max_window_bits".into()),
                ..base
            },
            "browser-15" => Setting {
                offer: Some("permessage-deflate; client_max_window_bits".into()),
                unlimited: true,
                ..base
            },
            "idle" => Setting {
                offer: Some("permessage-deflate; client_max_window_bits".into()),
                idle: true,
                ..base
            },
            _ => {
                let takeover = !name.ends_with('n');
                let bits: u8 = name.trim_end_matches('n').parse()?;
                if !(8..=15).contains(&bits) {
                    return Err(format!("window bits {bits} out of 8..=15").into());
                }
                let mut offer = String::from("permessage-deflate");
                if !takeover {
                    offer.push_str("; server_no_context_takeover; client_no_context_takeover");
                }
                offer.push_str(&format!(
                    "; server_max_window_bits={bits}; client_max_window_bits={bits}"
                ));
                Setting {
                    offer: Some(offer),
                    client_bits: bits,
                    takeover,
                    unlimited: true,
                    ..base
                }
            }
        })
    }
}

/// A raw DEFLATE stream of whole messages as RFC 7692 §7.2.1 frames them.
fn compress_all(messages: &[String], bits: u8, takeover: bool) -> Vec<Vec<u8>> {
    // zlib cannot compress with a 256-byte window; stored blocks suit any window.
    let level = if bits < 9 { 0 } else { 6 };
    let mut c = Compress::new_with_window_bits(Compression::new(level), false, bits.max(9));
    messages
        .iter()
        .map(|m| {
            let mut out = Vec::with_capacity(m.len() + 64);
            let start = c.total_in();
            loop {
                let done = (c.total_in() - start) as usize;
                out.reserve(256);
                c.compress_vec(&m.as_bytes()[done..], &mut out, FlushCompress::Sync)
                    .unwrap();
                if (c.total_in() - start) as usize == m.len() && out.len() < out.capacity() {
                    break;
                }
            }
            assert!(out.ends_with(&TAIL));
            out.truncate(out.len() - TAIL.len());
            if !takeover {
                c.reset();
            }
            out
        })
        .collect()
}

/// A masked text frame; `rsv1` marks a compressed message.
fn frame(payload: &[u8], rsv1: bool) -> Vec<u8> {
    let mut out = vec![if rsv1 { 0xC1 } else { 0x81 }];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&KEY);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    out
}

/// Opens one connection and completes the opening handshake; returns it and
/// the server's `Sec-WebSocket-Extensions` response.
async fn handshake(
    addr: &str,
    offer: Option<&str>,
) -> Result<(BufReader<TcpStream>, Option<String>), BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut request = String::from(
        "GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    );
    if let Some(offer) = offer {
        request.push_str(&format!("Sec-WebSocket-Extensions: {offer}\r\n"));
    }
    request.push_str("\r\n");
    let mut rx = BufReader::with_capacity(4096, tcp);
    rx.get_mut().write_all(request.as_bytes()).await?;
    let mut extensions = None;
    let mut line = String::new();
    let mut status = true;
    loop {
        line.clear();
        rx.read_line(&mut line).await?;
        if status {
            if !line.starts_with("HTTP/1.1 101") {
                return Err(format!("handshake refused: {line}").into());
            }
            status = false;
        } else if line == "\r\n" {
            break;
        } else if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("sec-websocket-extensions") {
                extensions = Some(value.trim().to_owned());
            }
        }
    }
    if offer.is_some() != extensions.is_some() {
        return Err(format!("offer {offer:?}, response {extensions:?}").into());
    }
    Ok((rx, extensions))
}

/// The window the response lets the client compress with (§7.1.2.2).
fn client_window(response: Option<&str>, offered: u8) -> u8 {
    response
        .and_then(|r| {
            r.split(';')
                .find_map(|p| p.trim().strip_prefix("client_max_window_bits="))
        })
        .and_then(|v| v.parse().ok())
        .map_or(offered, |agreed: u8| agreed.min(offered))
}

/// Opens one connection, sends `frames`, checks every echo against
/// `messages`, and returns the idle connection.
async fn connection(
    addr: &str,
    setting: &Setting,
    frames: &[Vec<u8>],
    messages: &[String],
) -> Result<TcpStream, BoxError> {
    let (mut rx, _) = handshake(addr, setting.offer.as_deref()).await?;
    // Inflate the echoes with a 32 KiB window: it reads any smaller one.
    let mut inflate = Decompress::new_with_window_bits(false, 15);
    let mut payload = Vec::new();
    // One message at a time, as a chat client would: the server's buffers
    // then hold one message, not all of them at once.
    for (frame, expected) in frames.iter().zip(messages) {
        rx.get_mut().write_all(frame).await?;
        let mut head = [0u8; 2];
        rx.read_exact(&mut head).await?;
        let len = match head[1] & 0x7F {
            126 => u64::from(rx.read_u16().await?),
            127 => rx.read_u64().await?,
            n => u64::from(n),
        };
        payload.resize(len as usize, 0);
        rx.read_exact(&mut payload).await?;
        let text = if head[0] & 0x40 != 0 {
            payload.extend_from_slice(&TAIL);
            let mut out = Vec::with_capacity(expected.len() + 64);
            let start = inflate.total_in();
            // Done once the input is used up and the output did not fill up.
            loop {
                out.reserve(4096);
                let done = (inflate.total_in() - start) as usize;
                inflate.decompress_vec(&payload[done..], &mut out, FlushDecompress::Sync)?;
                if (inflate.total_in() - start) as usize == payload.len()
                    && out.len() < out.capacity()
                {
                    break;
                }
            }
            out
        } else {
            std::mem::take(&mut payload)
        };
        if text != expected.as_bytes() {
            return Err("echo differs from the message sent".into());
        }
    }
    Ok(rx.into_inner())
}

fn rss_kib(pid: u32) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).ok_or("no value")?.parse()?)
}

/// Gives the freed memory at the top of glibc's heaps back to the system, so
/// that what stays resident is what is held, not what the allocator keeps
/// for later: a request for `/trim` makes the server call this.
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only releases free memory; it takes no pointers.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Asks the server to trim its heap (see `trim`).
async fn request_trim(addr: &str) -> Result<(), BoxError> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(
        b"GET /trim HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await?;
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await?;
    if !response.starts_with(b"HTTP/1.1 404") {
        return Err("the server did not answer /trim".into());
    }
    Ok(())
}

/// Starts a server process on a free port; returns it and its address.
fn start_server(unlimited: bool) -> Result<(Child, String), BoxError> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["--serve", "127.0.0.1:0"]);
    if unlimited {
        command.arg("--unlimited");
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    StdBufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    // "echo server listening on ws://127.0.0.1:PORT"
    let addr = line
        .trim()
        .rsplit("ws://")
        .next()
        .ok_or("no address printed")?
        .to_owned();
    Ok((child, addr))
}

/// The server process: `examples/echo`'s loop.
async fn serve(addr: &str, unlimited: bool) -> Result<(), BoxError> {
    let mut deflate = DeflateConfig::default();
    if unlimited {
        deflate = deflate
            .server_max_window_bits(Some(15))
            .client_max_window_bits(Some(15));
    }
    let config = Config::default().deflate(Some(deflate));
    let listener = TcpListener::bind(addr).await?;
    println!("echo server listening on ws://{}", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        let config = config.clone();
        tokio::spawn(async move {
            let _ = echo(tcp, config).await;
        });
    }
}

async fn echo(tcp: TcpStream, config: Config) -> Result<(), wscodec::Error> {
    tcp.set_nodelay(true)?;
    let mut ws = wscodec::accept_with(tcp, config, |request: &Request| {
        if request.path() == "/trim" {
            trim();
            return Err(Reject::new(404));
        }
        Ok(Accept::new())
    })
    .await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if !message.is_control() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

struct Outcome {
    setting: Setting,
    response: String,
    before: u64,
    after: u64,
    /// After `trim`.
    trimmed: u64,
    conns: usize,
    wire_bytes: usize,
    payload_bytes: usize,
}

async fn measure(setting: &Setting, conns: usize, count: usize) -> Result<Outcome, BoxError> {
    let messages = if setting.idle {
        vec!["{\"type\":\"ping\"}".to_owned()]
    } else {
        corpus::corpus(count)
    };
    let (mut child, addr) = start_server(setting.unlimited)?;
    let result = async {
        // One handshake first, to learn the window the client may use.
        let (_, response) = handshake(&addr, setting.offer.as_deref()).await?;
        let compressed = setting.offer.is_some() && !setting.idle;
        let payloads = if compressed {
            let bits = client_window(response.as_deref(), setting.client_bits);
            compress_all(&messages, bits, setting.takeover)
        } else {
            messages.iter().map(|m| m.clone().into_bytes()).collect()
        };
        let frames: Vec<Vec<u8>> = payloads.iter().map(|p| frame(p, compressed)).collect();
        // Let the server finish with the probe before the baseline.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_kib(child.id())?;
        let mut held = Vec::with_capacity(conns);
        for _ in 0..conns {
            held.push(connection(&addr, setting, &frames, &messages).await?);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib(child.id())?;
        request_trim(&addr).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let trimmed = rss_kib(child.id())?;
        drop(held);
        Ok::<_, BoxError>(Outcome {
            setting: setting.clone(),
            response: response.unwrap_or_else(|| "-".into()),
            before,
            after,
            trimmed,
            conns,
            wire_bytes: payloads.iter().map(Vec::len).sum(),
            payload_bytes: messages.iter().map(String::len).sum(),
        })
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        let addr = args.get(1).ok_or("--serve needs an address")?;
        return serve(addr, args.iter().any(|a| a == "--unlimited")).await;
    }
    let mut conns = 1000usize;
    let mut count = 16usize;
    let mut settings = String::from(
        "off,off-idle,idle,browser,browser-15,8,9,10,11,12,13,14,15,8n,9n,10n,11n,12n,13n,14n,15n",
    );
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--conns" => conns = value.parse()?,
            "--messages" => count = value.parse()?,
            "--settings" => settings = value,
            _ => return Err(format!("unknown option {flag}").into()),
        }
    }
    // KB (1000 bytes) per connection, from KiB of RSS.
    let per = |o: &Outcome, after: u64| {
        (after as f64 - o.before as f64) * 1024.0 / o.conns as f64 / 1000.0
    };
    let mut outcomes = Vec::new();
    for name in settings.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let setting = Setting::parse(name)?;
        let o = measure(&setting, conns, count).await?;
        println!(
            "setting={} conns={} rss_before_kib={} rss_after_kib={} rss_trimmed_kib={} per_conn_kb={:.1} held_per_conn_kb={:.1} ratio={:.3} response={:?}",
            o.setting.name,
            o.conns,
            o.before,
            o.after,
            o.trimmed,
            per(&o, o.after),
            per(&o, o.trimmed),
            o.wire_bytes as f64 / o.payload_bytes as f64,
            o.response
        );
        outcomes.push(o);
    }
    // Compression's share: the difference from the uncompressed run with the
    // same traffic. It can be negative: compressed frames are smaller, and so
    // are the buffers that held them.
    let base = |idle: bool| {
        let name = if idle { "off-idle" } else { "off" };
        outcomes
            .iter()
            .find(|o| o.setting.name == name)
            .map(|o| per(o, o.trimmed))
    };
    println!(
        "\nKB per connection: RSS growth / connections, then the same after malloc_trim \
         (what is held, without what the allocator keeps free)\n"
    );
    println!(
        "| setting | server's response | RSS | held | held, difference from uncompressed | client→server ratio |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for o in &outcomes {
        let held = per(o, o.trimmed);
        let extra = base(o.setting.idle).map_or("-".into(), |b| format!("{:+.1}", held - b));
        let ratio = if o.setting.offer.is_some() && !o.setting.idle {
            format!("{:.3}", o.wire_bytes as f64 / o.payload_bytes as f64)
        } else {
            "-".into()
        };
        println!(
            "| {} | `{}` | {:.1} | {held:.1} | {extra} | {ratio} |",
            o.setting.name,
            o.response,
            per(o, o.after),
        );
    }
    Ok(())
}
