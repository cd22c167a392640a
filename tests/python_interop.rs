//! permessage-deflate against another implementation: Python's `websockets`
//! (tests/python/peer.py), with its defaults on both sides, as server and as
//! client. Each test counts the bytes that cross wscodec's TCP stream and
//! requires large repetitive messages to take a small fraction of their size on
//! the wire in both directions: a peer that did not compress (or a wscodec that
//! did not) fails, not just one that fails to negotiate.
//!
//! Python comes from `WSCODEC_PYTHON` (default `python3`) and needs
//! `websockets` (tests/python/requirements.txt; `scripts/python-interop.sh`
//! makes a venv with it and runs these tests). Without it the tests are skipped
//! with a notice on stderr, except under CI (`CI` set), where they fail.
#![cfg(feature = "deflate")]

use std::io::{self, IoSlice, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader, Lines, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{ChildStdout, Command};
use tokio::time::timeout;
use wscodec::deflate::DeflateConfig;
use wscodec::handshake::{Accept, Request};
use wscodec::{ClientRequest, Config, Message, WebSocket};

/// Every step of a test finishes well within this, or the test fails.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A large message may take at most this fraction (1/N) of its size on the
/// wire. Uncompressed it would take more than its size; compressed it takes
/// about 1/17 to 1/23 (see the figures printed with --nocapture).
const MIN_RATIO: usize = 5;

/// Only messages at least this long are held to [`MIN_RATIO`]; the others
/// (short, or random bytes) just have to come back equal.
const LARGE: usize = 16 << 10;

/// The stream under wscodec, counting the bytes it reads and writes and keeping
/// the first bytes written (the handshake) to look at.
struct Counting<T> {
    inner: T,
    read: usize,
    written: usize,
    head_written: Vec<u8>,
}

impl<T> Counting<T> {
    const HEAD: usize = 4096;

    fn new(inner: T) -> Self {
        Counting {
            inner,
            read: 0,
            written: 0,
            head_written: Vec::new(),
        }
    }

    fn count_written(&mut self, mut n: usize, bufs: &[IoSlice<'_>]) {
        self.written += n;
        for buf in bufs {
            if n == 0 || self.head_written.len() >= Self::HEAD {
                break;
            }
            let take = n.min(buf.len()).min(Self::HEAD - self.head_written.len());
            self.head_written.extend_from_slice(&buf[..take]);
            n -= n.min(buf.len());
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counting<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.read += buf.filled().len() - before;
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counting<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            this.count_written(n, bufs);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// One data message and the bytes it took on the wire each way.
#[derive(Debug)]
struct Measured {
    kind: &'static str,
    len: usize,
    wire_in: usize,
    wire_out: usize,
}

impl Measured {
    fn new(message: &Message, wire_in: usize, wire_out: usize) -> Self {
        let kind = if matches!(message, Message::Text(_)) {
            "text"
        } else {
            "binary"
        };
        Measured {
            kind,
            len: message.len(),
            wire_in,
            wire_out,
        }
    }
}

/// Prints the figures and holds every large message to [`MIN_RATIO`] in both
/// directions, and the whole exchange too.
fn check_compressed(who: &str, measured: &[Measured]) {
    for m in measured {
        eprintln!(
            "{who}: {} message of {} bytes: {} bytes in, {} bytes out on the wire",
            m.kind, m.len, m.wire_in, m.wire_out
        );
    }
    let large: Vec<_> = measured.iter().filter(|m| m.len >= LARGE).collect();
    assert!(
        large.len() >= 2,
        "{who}: too few large messages: {measured:?}"
    );
    for m in large {
        assert!(
            m.wire_in * MIN_RATIO < m.len && m.wire_out * MIN_RATIO < m.len,
            "{who}: a {} message of {} bytes took {} bytes in and {} out: not compressed \
             (want under 1/{MIN_RATIO} of its size each way)",
            m.kind,
            m.len,
            m.wire_in,
            m.wire_out,
        );
    }
    let payload: usize = measured.iter().map(|m| m.len).sum();
    let wire_in: usize = measured.iter().map(|m| m.wire_in).sum();
    let wire_out: usize = measured.iter().map(|m| m.wire_out).sum();
    eprintln!(
        "{who}: {} messages, {payload} bytes of payload: {wire_in} bytes in, {wire_out} out",
        measured.len()
    );
    assert!(wire_in * MIN_RATIO < payload && wire_out * MIN_RATIO < payload);
}

fn deflate_config() -> Config {
    Config::default().deflate(Some(DeflateConfig::default()))
}

fn peer_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/peer.py")
}

/// The Python to run peer.py with, or `None` to skip (outside CI only).
fn python() -> Option<String> {
    let python = std::env::var("WSCODEC_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import websockets; print(websockets.__version__)"])
        .output();
    let why = match probe {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout);
            eprintln!(
                "python_interop: {python} with websockets {}",
                version.trim()
            );
            return Some(python);
        }
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().last().unwrap_or_default();
            format!(
                "`{python} -c 'import websockets'` failed ({}): {last}",
                out.status
            )
        }
        Err(e) => format!("cannot run `{python}`: {e}"),
    };
    let hint = "run scripts/python-interop.sh, or set WSCODEC_PYTHON to a Python \
                that has websockets (pip install -r tests/python/requirements.txt)";
    if std::env::var_os("CI").is_some() {
        panic!("python_interop: {why}; under CI this is a failure: {hint}");
    }
    // Straight to stderr: the test harness captures eprintln!.
    let _ = writeln!(io::stderr(), "python_interop: SKIPPED: {why}; {hint}");
    None
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>, what: &str) -> String {
    match timeout(TIMEOUT, lines.next_line()).await {
        Ok(Ok(Some(line))) => line,
        other => panic!("no {what} from the Python peer: {other:?}"),
    }
}

/// wscodec echoes as the server; Python's client (compression on by default)
/// sends large text and binary messages and checks the echoes.
#[tokio::test]
async fn python_client_against_wscodec_server() {
    let Some(python) = python() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let client = Command::new(&python)
        .arg(peer_script())
        .args(["client", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut client_done = tokio::spawn(client.wait_with_output());

    let tcp = tokio::select! {
        accepted = listener.accept() => accepted.unwrap().0,
        output = &mut client_done => {
            let output = output.unwrap().unwrap();
            panic!(
                "the Python client exited ({}) before connecting:\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        _ = tokio::time::sleep(TIMEOUT) => panic!("no connection from the Python client"),
    };
    tcp.set_nodelay(true).unwrap();
    let mut offer = None;
    let mut ws = timeout(
        TIMEOUT,
        wscodec::accept_with(Counting::new(tcp), deflate_config(), |request: &Request| {
            offer = request
                .header("sec-websocket-extensions")
                .map(str::to_owned);
            Ok(Accept::new())
        }),
    )
    .await
    .unwrap()
    .unwrap();
    let offer = offer.expect("the Python client offered no extension");
    let head = String::from_utf8_lossy(&ws.get_ref().head_written).into_owned();
    let head = head.split("\r\n\r\n").next().unwrap();
    let answer = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
        .unwrap_or_else(|| panic!("wscodec did not accept the offer {offer:?}: {head}"));
    eprintln!("server: offer from Python {offer:?}, our answer {answer:?}");
    assert!(offer.starts_with("permessage-deflate"), "{offer}");
    assert!(answer.starts_with("permessage-deflate"), "{answer}");

    // The client sends one message and waits for its echo before the next, so
    // what the counters move by between two echoes is one message each way.
    let mut measured = Vec::new();
    loop {
        let (read, written) = (ws.get_ref().read, ws.get_ref().written);
        let Some(message) = timeout(TIMEOUT, ws.next()).await.unwrap() else {
            break;
        };
        let message = message.unwrap();
        if message.is_control() {
            continue;
        }
        let wire_in = ws.get_ref().read - read;
        // A "[broadcast]" message is echoed as a broadcast goes out: a
        // PreparedMessage, compressed on its own, between messages our
        // compressor compresses with context takeover (peer.py). Python's
        // decompressor must take both, in either order.
        if matches!(&message, Message::Text(t) if t.starts_with("[broadcast]")) {
            let prepared = wscodec::PreparedMessage::new(message.clone()).unwrap();
            timeout(TIMEOUT, ws.send_prepared(&prepared))
                .await
                .unwrap()
                .unwrap();
        } else {
            timeout(TIMEOUT, ws.send(message.clone()))
                .await
                .unwrap()
                .unwrap();
        }
        let wire_out = ws.get_ref().written - written;
        measured.push(Measured::new(&message, wire_in, wire_out));
    }

    let output = timeout(TIMEOUT, client_done)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprint!("{stdout}");
    assert!(
        output.status.success(),
        "the Python client failed ({}):\n{stdout}{stderr}",
        output.status
    );
    assert!(stdout.contains("client: ok"), "{stdout}");
    assert!(stdout.contains("PerMessageDeflate"), "{stdout}");
    check_compressed("wscodec server", &measured);
}

/// wscodec connects as the client, offering permessage-deflate, to Python's
/// echo server (compression on by default).
#[tokio::test]
async fn wscodec_client_against_python_server() {
    let Some(python) = python() else { return };
    let mut server = Command::new(&python)
        .arg(peer_script())
        .args(["server", "0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let listening = next_line(&mut lines, "address").await;
    let addr = listening
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from the Python server: {listening}"))
        .to_owned();

    let tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let request = ClientRequest::new(&format!("ws://{addr}/")).unwrap();
    let (mut ws, response) = timeout(
        TIMEOUT,
        wscodec::connect_with(Counting::new(tcp), request, deflate_config()),
    )
    .await
    .unwrap()
    .unwrap();
    let answer = response
        .headers()
        .get("sec-websocket-extensions")
        .expect("the Python server did not accept permessage-deflate");
    eprintln!("client: answer from Python {answer:?}");
    assert!(answer.starts_with("permessage-deflate"), "{answer}");
    let seen = next_line(&mut lines, "connection line").await;
    eprintln!("{seen}");
    assert!(seen.contains("PerMessageDeflate"), "{seen}");

    let measured = exchange(&mut ws).await;
    timeout(TIMEOUT, ws.close()).await.unwrap().unwrap();
    while let Some(message) = timeout(TIMEOUT, ws.next()).await.unwrap() {
        let message = message.unwrap();
        assert!(message.is_close(), "after our close: {message:?}");
    }
    server.kill().await.unwrap();
    check_compressed("wscodec client", &measured);
}

fn json_like(count: usize) -> String {
    let records: Vec<_> = (0..count)
        .map(|i| {
            format!(
                r#"{{"id":{i},"user":"user{}","text":"hello from the chat room"}}"#,
                i % 7
            )
        })
        .collect();
    format!("[{}]", records.join(","))
}

/// Bytes that do not compress (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

/// Sends each message, waits for its echo and checks it, counting the bytes
/// each takes on the wire each way.
async fn exchange(ws: &mut WebSocket<Counting<TcpStream>>) -> Vec<Measured> {
    let big = json_like(1100);
    // The same 5000 random bytes twice: Python's server answers
    // client_max_window_bits=12, so its decompressor keeps only the last 4 KiB
    // of the first; a compressor that ignored that and referred back 5000 bytes
    // would make Python fail the connection ("invalid distance too far back").
    let block = noise(5000, 7692);
    let messages = [
        Message::text("hello"),
        Message::text(big.clone()),
        Message::binary(big.clone().into_bytes()),
        Message::text("ça va? — ".repeat(500)),
        Message::binary(noise(1024, 6455)),
        Message::binary(block.clone()),
        Message::binary(block),
        Message::text(big),
    ];
    let mut measured = Vec::new();
    for message in messages {
        let (read, written) = (ws.get_ref().read, ws.get_ref().written);
        timeout(TIMEOUT, ws.send(message.clone()))
            .await
            .unwrap()
            .unwrap();
        let wire_out = ws.get_ref().written - written;
        let echo = timeout(TIMEOUT, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echo, message);
        measured.push(Measured::new(&message, ws.get_ref().read - read, wire_out));
    }
    measured
}
