//! Regression tests for the concurrency defects of issue 12 (2–9): split halves
//! that deadlock, timers that are not armed or wake nobody, flushes that report
//! bytes as written when they are not, and endings that cannot be told apart.
//!
//! Every test runs under a watchdog (`tokio::time::timeout`), so a stall fails
//! with a message instead of hanging the test binary. Tests about timers run on
//! paused time: a stall then costs no wall-clock time, because tokio jumps
//! straight to the watchdog's deadline when every task is waiting.

mod common;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::time::{timeout, Instant};
use wscodec::frame::{FrameHeader, OpCode};
use wscodec::{AbnormalClosure, CloseCode, Config, Error, Limits, Message, Role, WebSocket};

/// How long a test may go without finishing before it counts as a stall.
const WATCHDOG: Duration = Duration::from_secs(20);

/// A payload of `len` bytes that names its message: the sequence number in
/// the first 8 bytes (as far as they fit), then a pattern derived from it, so
/// a lost, duplicated, reordered or corrupted message is caught by comparing.
fn numbered_payload(seq: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    out.extend((seq as u64).to_le_bytes().iter().take(len));
    let mut x = (seq as u8).wrapping_mul(31).wrapping_add(7);
    while out.len() < len {
        x = x.wrapping_mul(13).wrapping_add(1);
        out.push(x);
    }
    out
}

fn assert_numbered(payload: &[u8], seq: usize, len: usize) {
    assert_eq!(payload.len(), len, "message {seq}: wrong length");
    if payload != &numbered_payload(seq, len)[..] {
        let mut head = [0u8; 8];
        let n = payload.len().min(8);
        head[..n].copy_from_slice(&payload[..n]);
        panic!(
            "message {seq}: content differs (it names itself {})",
            u64::from_le_bytes(head)
        );
    }
}

/// Everything a stream yields until it ends (`None`), with a watchdog.
async fn drain<S>(stream: &mut S, what: &str) -> Vec<Result<Message, Error>>
where
    S: futures::Stream<Item = Result<Message, Error>> + Unpin,
{
    let mut items = Vec::new();
    timeout(WATCHDOG, async {
        while let Some(item) = stream.next().await {
            items.push(item);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: the stream never ended; it yielded {items:?}"));
    items
}

// How the three endings of defect 8 are recognised.
fn is_peer_eof(e: &Error) -> bool {
    matches!(e, Error::AbnormalClosure(AbnormalClosure::PeerEof))
}

fn is_close_timeout(e: &Error) -> bool {
    matches!(e, Error::AbnormalClosure(AbnormalClosure::CloseTimeout))
}

fn assert_ended_with(items: &[Result<Message, Error>], what: &str, ok: fn(&Error) -> bool) {
    match items {
        [Err(e)] if ok(e) => {}
        _ => panic!("{what}: expected one final error of the right kind, got {items:?}"),
    }
}

// ---------------------------------------------------------------------------
// Defect 2: the reader must not stop reading because the write queue (the
// writer's data included) is over `write_buffer_limit`.

/// The crate's own echo loop, as the README teaches it: `next()`, then `feed`
/// (batching; the stream writes what is queued before it waits) or `send`.
async fn echo_loop(mut ws: WebSocket<DuplexStream>, feed: bool) -> Result<usize, Error> {
    let mut echoed = 0;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_control() {
            continue;
        }
        if feed {
            ws.feed(message).await?;
        } else {
            ws.send(message).await?;
        }
        echoed += 1;
    }
    Ok(echoed)
}

/// A split client sends `count` binary messages of `size` bytes over
/// `duplex(pipe)` to [`echo_loop`] while a reader task counts the echoes.
async fn split_client_echo(count: usize, size: usize, pipe: usize, feed: bool) {
    let (a, b) = tokio::io::duplex(pipe);
    let client = WebSocket::from_upgraded(a, Role::Client, Config::default());
    let server = WebSocket::from_upgraded(b, Role::Server, Config::default());
    let server = tokio::spawn(echo_loop(server, feed));
    let (mut tx, mut rx) = client.split();
    let writer = tokio::spawn(async move {
        for i in 0..count {
            tx.send(Message::binary(numbered_payload(i, size))).await?;
        }
        Ok::<_, Error>(tx)
    });
    let received = Arc::new(Mutex::new(0usize));
    let counter = received.clone();
    let reader = tokio::spawn(async move {
        for i in 0..count {
            match rx.next().await {
                Some(Ok(Message::Binary(b))) => assert_numbered(&b, i, size),
                other => panic!("echo {i}: {other:?}"),
            }
            *counter.lock().unwrap() = i + 1;
        }
        rx
    });
    let run = async {
        let mut rx = reader.await.unwrap();
        let mut tx = writer.await.unwrap().expect("every send succeeds");
        tx.close().await.unwrap();
        let items = drain(&mut rx, "client").await;
        assert!(
            matches!(&items[..], [Ok(Message::Close(_))]),
            "the client's stream ends with the server's Close: {items:?}"
        );
        assert_eq!(server.await.unwrap().unwrap(), count);
    };
    if timeout(WATCHDOG, run).await.is_err() {
        panic!(
            "stalled: {} of {count} echoes of {size} bytes over duplex({pipe}) arrived \
             (echo loop with {})",
            received.lock().unwrap(),
            if feed { "feed" } else { "send" }
        );
    }
}

#[tokio::test]
async fn split_client_echo_of_large_messages_over_a_small_pipe_never_stalls() {
    // The "Seen:": 64 × 256 KiB over duplex(64 KiB), with both echo loops.
    split_client_echo(64, 256 << 10, 64 << 10, false).await;
    split_client_echo(64, 256 << 10, 64 << 10, true).await;
}

#[tokio::test]
async fn split_client_echo_of_4_mib_messages_over_a_1_mib_pipe_never_stalls() {
    split_client_echo(16, 4 << 20, 1 << 20, false).await;
}

#[tokio::test]
async fn read_half_delivers_messages_while_the_write_half_waits_for_a_peer_that_does_not_read() {
    // The writer's own 1 MiB message fills the queue far past the limit while
    // the peer reads nothing; the peer's messages must still come through.
    let (ws, mut raw) = server_with_raw_client_over(Config::default(), 64 << 10);
    let (mut tx, mut rx) = ws.split();
    let sent = Arc::new(AtomicBool::new(false));
    let done = sent.clone();
    let writer = tokio::spawn(async move {
        let r = tx.send(Message::binary(numbered_payload(0, 1 << 20))).await;
        done.store(true, Ordering::SeqCst);
        (r, tx)
    });
    tokio::time::sleep(Duration::from_millis(50)).await; // the writer is blocked
    for i in 0..10 {
        raw.write_all(&client_frame(true, 0x1, format!("request {i}").as_bytes()))
            .await
            .unwrap();
    }
    let got = timeout(Duration::from_secs(10), async {
        let mut got = Vec::new();
        while got.len() < 10 {
            got.push(rx.next().await.unwrap().unwrap());
        }
        got
    })
    .await
    .expect("the reader stopped reading while the writer's data waited");
    for (i, m) in got.iter().enumerate() {
        assert_eq!(*m, Message::text(format!("request {i}")));
    }
    assert!(!sent.load(Ordering::SeqCst), "the send was still waiting");
    // The peer catches up: the send completes and the message is whole.
    let (frame, _) = tokio::join!(read_frame(&mut raw), async {
        let (r, _tx) = timeout(WATCHDOG, writer)
            .await
            .expect("send stalled")
            .unwrap();
        r.unwrap();
    });
    let (_, opcode, payload) = frame.unwrap();
    assert_eq!(opcode, 0x2);
    assert_numbered(&payload, 0, 1 << 20);
}

#[tokio::test]
async fn reader_keeps_reading_pings_whose_pongs_the_peer_does_not_read_and_bounds_its_pongs() {
    // The peer pings 3000 times without reading: 381 KB of pongs, more than the
    // pipe (64 KiB) and the write limit (128 KiB) hold. What the reader
    // generates is bounded (a few KiB of pongs, then one for the latest ping,
    // RFC 6455 §5.5.3); reading goes on.
    const PINGS: usize = 3000;
    let (mut ws, raw) = server_with_raw_client_over(Config::default(), 64 << 10);
    let (mut raw_rx, mut raw_tx) = tokio::io::split(raw);
    let peer = tokio::spawn(async move {
        for i in 0..PINGS {
            let mut payload = format!("{i:08}").into_bytes();
            payload.resize(125, b'.');
            raw_tx.write_all(&client_frame(true, 0x9, &payload)).await?;
        }
        raw_tx.write_all(&client_frame(true, 0x1, b"done")).await?;
        Ok::<_, std::io::Error>(raw_tx)
    });
    let pings = timeout(Duration::from_secs(10), async {
        let mut pings = 0;
        loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Ping(p) => {
                    assert_eq!(&p[..8], format!("{pings:08}").as_bytes());
                    pings += 1;
                }
                Message::Text(t) if t.as_str() == "done" => break pings,
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .expect("the reader stopped reading while its pongs were not read");
    assert_eq!(pings, PINGS);
    let _raw_tx = peer.await.unwrap().unwrap();
    // A few KiB of Pongs may wait unwritten (main answers every Ping while
    // 4 KiB of them fit), then one for the latest Ping: far from the 381 KB
    // that answering all of them would queue.
    assert!(
        ws.pending_write_bytes() <= (4 << 10) + 2 * (2 + 125),
        "{} bytes of pongs queued",
        ws.pending_write_bytes()
    );
    // The peer now reads: pongs in order, the last one for the last ping.
    let reader = tokio::spawn(async move {
        let mut last = None;
        while let Some((_, opcode, payload)) = read_frame(&mut raw_rx).await {
            assert_eq!(opcode, 0xA);
            let n: usize = std::str::from_utf8(&payload[..8]).unwrap().parse().unwrap();
            assert!(last.is_none_or(|l| n > l), "pong {n} after {last:?}");
            last = Some(n);
            if n == PINGS - 1 {
                break;
            }
        }
        last
    });
    // Flush, then let the stream run (it writes what it queued before it
    // waits for input) until the peer has the last pong.
    let drive = async {
        ws.flush().await.unwrap();
        let item = ws.next().await;
        panic!("the peer sent nothing more, yet the stream yielded {item:?}");
    };
    let last = timeout(WATCHDOG, async {
        tokio::select! {
            last = reader => last.unwrap(),
            () = drive => unreachable!(),
        }
    })
    .await
    .expect("the pong for the latest ping never arrived");
    assert_eq!(last, Some(PINGS - 1), "the latest ping is answered");
}

// ---------------------------------------------------------------------------
// Defect 3: a Close queued by the write half arms the close timer even while
// the read half is parked waiting for input.

#[tokio::test(start_paused = true)]
async fn write_half_close_arms_the_close_timer_while_the_reader_waits_for_input() {
    for how in ["close()", "send(Close)", "start_close"] {
        let config = Config::default().close_timeout(Duration::from_secs(1));
        // The peer never answers (and never reads: the pipe holds our Close).
        let (ws, _raw) = server_with_raw_client(config);
        let (mut tx, mut rx) = ws.split();
        let reader = tokio::spawn(async move {
            let items = drain(&mut rx, "reader").await;
            (items, Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(100)).await; // the reader is parked
        let closed_at = Instant::now();
        match how {
            "close()" => tx.close().await.unwrap(),
            "send(Close)" => tx.send(Message::Close(None)).await.unwrap(),
            _ => tx.start_close(None).unwrap(),
        }
        let (items, ended_at) = timeout(WATCHDOG, reader)
            .await
            .unwrap_or_else(|_| panic!("{how}: the reader still waits; no close timer"))
            .unwrap();
        let waited = ended_at - closed_at;
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_millis(1500),
            "{how}: the stream ended {waited:?} after the Close (close_timeout 1 s)"
        );
        assert_ended_with(&items, how, is_close_timeout);
    }
}

// ---------------------------------------------------------------------------
// Defects 4 and 7: when the close timeout ends the connection with bytes still
// queued, a writer blocked in `flush` or `close` is woken and fails.

#[tokio::test(start_paused = true)]
async fn close_timeout_wakes_and_fails_a_write_half_blocked_in_flush_or_close() {
    for how in ["start_close + flush", "close"] {
        let config = Config::default().close_timeout(Duration::from_secs(1));
        // A 1 KiB pipe that the peer never reads.
        let (ws, _raw) = server_with_raw_client_over(config, 1024);
        let (mut tx, mut rx) = ws.split();
        let reader = tokio::spawn(async move {
            let items = drain(&mut rx, "reader").await;
            (items, Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(100)).await; // the reader is parked
        let started = Instant::now();
        let writer = tokio::spawn(async move {
            tx.feed(Message::binary(vec![1u8; 256 << 10]))
                .await
                .unwrap();
            let result = match how {
                "close" => tx.close().await,
                _ => {
                    tx.start_close(None).unwrap();
                    tx.flush().await
                }
            };
            (result, Instant::now())
        });
        let (result, writer_done) = timeout(WATCHDOG, writer)
            .await
            .unwrap_or_else(|_| panic!("{how}: the writer was never woken"))
            .unwrap();
        assert!(
            result.is_err(),
            "{how}: reported success for 256 KiB that were never written"
        );
        let (items, reader_done) = timeout(WATCHDOG, reader)
            .await
            .unwrap_or_else(|_| panic!("{how}: the reader never ended"))
            .unwrap();
        for (who, at) in [("writer", writer_done), ("reader", reader_done)] {
            let waited = at - started;
            assert!(
                waited < Duration::from_millis(1500),
                "{how}: the {who} finished {waited:?} after the close (close_timeout 1 s)"
            );
        }
        assert_ended_with(&items, how, is_close_timeout);
    }
}

#[tokio::test(start_paused = true)]
async fn flush_send_and_close_fail_after_the_close_timeout_dropped_queued_bytes() {
    let config = Config::default().close_timeout(Duration::from_secs(1));
    let (mut ws, _raw) = server_with_raw_client_over(config, 1024);
    ws.feed(Message::binary(vec![1u8; 64 << 10])).await.unwrap();
    ws.start_close(None).unwrap();
    let items = drain(&mut ws, "stream").await;
    assert_ended_with(&items, "unread close", is_close_timeout);
    assert!(ws.flush().await.is_err(), "flush after bytes were dropped");
    assert!(ws.close().await.is_err(), "close after bytes were dropped");
    assert!(ws.send(Message::text("late")).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_send_dropped_when_the_closing_handshake_times_out_fails() {
    // Our 1 MiB send waits; the peer sends its Close and never reads again, so
    // neither the rest of the message nor our Close reply can go out.
    let config = Config::default()
        .close_timeout(Duration::from_secs(1))
        .write_buffer_limit(8 << 20);
    let (ws, mut raw) = server_with_raw_client_over(config, 64 << 10);
    let (mut tx, mut rx) = ws.split();
    let writer = tokio::spawn(async move { tx.send(Message::binary(vec![2u8; 1 << 20])).await });
    let reader = tokio::spawn(async move { drain(&mut rx, "reader").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    raw.write_all(&client_frame(true, 0x8, b"\x03\xe8"))
        .await
        .unwrap();
    let result = timeout(WATCHDOG, writer)
        .await
        .expect("the writer was never woken")
        .unwrap();
    assert!(result.is_err(), "a send whose bytes were dropped succeeded");
    let items = timeout(WATCHDOG, reader)
        .await
        .expect("the reader never ended")
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(1500));
    for item in &items {
        match item {
            Ok(Message::Close(_)) => {}
            Err(e) if is_close_timeout(e) => {}
            other => panic!("unexpected {other:?} in {items:?}"),
        }
    }
}

#[tokio::test]
async fn a_send_cut_short_by_the_peers_eof_fails() {
    for drop_whole_pipe in [false, true] {
        let how = if drop_whole_pipe { "drop" } else { "FIN" };
        // A write limit above the message's size: whatever the reader does with
        // the limit, this is about what the writer is told.
        let config = Config::default().write_buffer_limit(8 << 20);
        let (ws, mut raw) = server_with_raw_client_over(config, 64 << 10);
        let (mut tx, mut rx) = ws.split();
        let reader = tokio::spawn(async move { drain(&mut rx, "reader").await });
        let writer =
            tokio::spawn(async move { tx.send(Message::binary(vec![3u8; 4 << 20])).await });
        // The peer reads about 100 KiB of it, then ends the connection.
        let mut buf = vec![0u8; 100 << 10];
        raw.read_exact(&mut buf).await.unwrap();
        let _kept = if drop_whole_pipe {
            drop(raw);
            None
        } else {
            raw.shutdown().await.unwrap(); // FIN; the peer keeps its end, unread
            Some(raw)
        };
        let result = timeout(WATCHDOG, writer)
            .await
            .unwrap_or_else(|_| panic!("{how}: the send never returned"))
            .unwrap();
        assert!(
            result.is_err(),
            "{how}: a 4 MiB send reported success with 3.9 MiB unwritten"
        );
        let items = timeout(WATCHDOG, reader).await.unwrap().unwrap();
        // A dropped pipe may fail our next write before we read its EOF.
        let ended_right: fn(&Error) -> bool = if drop_whole_pipe {
            |e: &Error| is_peer_eof(e) || matches!(e, Error::Io(_))
        } else {
            is_peer_eof
        };
        assert_ended_with(&items, how, ended_right);
    }
}

// ---------------------------------------------------------------------------
// Defect 5: the idle timeout and keepalive count received bytes.

/// A client peer that writes `bytes` 1 KiB every 100 ms.
fn dribble(mut raw: impl AsyncWrite + Unpin + Send + 'static, bytes: Vec<u8>) {
    tokio::spawn(async move {
        for piece in bytes.chunks(1024) {
            raw.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Keep the connection open: no EOF.
        std::future::pending::<()>().await;
    });
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_counts_the_bytes_of_a_large_frame_still_arriving() {
    let config = Config::default().idle_timeout(Some(Duration::from_secs(1)));
    let (mut ws, raw) = server_with_raw_client(config);
    let payload = numbered_payload(5, 40 << 10);
    dribble(raw, client_frame(true, 0x2, &payload));
    let started = Instant::now();
    let item = timeout(WATCHDOG, ws.next())
        .await
        .expect("stalled")
        .unwrap();
    match item {
        Ok(Message::Binary(b)) => assert_numbered(&b, 5, 40 << 10),
        other => panic!("a frame arriving 1 KiB every 100 ms was failed: {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_counts_the_fragments_of_a_message_still_arriving() {
    let config = Config::default().idle_timeout(Some(Duration::from_secs(1)));
    let (mut ws, raw) = server_with_raw_client(config);
    let payload = numbered_payload(6, 40 << 10);
    let mut bytes = Vec::new();
    let pieces: Vec<&[u8]> = payload.chunks(1000).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let opcode = if i == 0 { 0x2 } else { 0x0 };
        bytes.extend(client_frame(i + 1 == pieces.len(), opcode, piece));
    }
    dribble(raw, bytes);
    let item = timeout(WATCHDOG, ws.next())
        .await
        .expect("stalled")
        .unwrap();
    match item {
        Ok(Message::Binary(b)) => assert_numbered(&b, 6, 40 << 10),
        other => panic!("a message whose fragments kept arriving was failed: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn keepalive_pings_only_when_no_bytes_arrive() {
    let config = Config::default().keepalive_interval(Some(Duration::from_secs(1)));
    let (mut ws, raw) = server_with_raw_client(config);
    let (mut raw_rx, raw_tx) = tokio::io::split(raw);
    let payload = numbered_payload(7, 40 << 10);
    dribble(raw_tx, client_frame(true, 0x2, &payload));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some((_, opcode, _)) = read_frame(&mut raw_rx).await {
            log.lock().unwrap().push((opcode, Instant::now()));
        }
    });
    let started = Instant::now();
    let item = timeout(WATCHDOG, ws.next())
        .await
        .expect("stalled")
        .unwrap();
    let arrived = Instant::now();
    assert!(matches!(item, Ok(Message::Binary(_))), "{item:?}");
    assert!(arrived - started >= Duration::from_secs(3));
    let during: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, at)| *at <= arrived)
        .map(|(op, at)| (*op, *at - started))
        .collect();
    assert!(
        during.is_empty(),
        "pinged while bytes arrived every 100 ms: {during:?}"
    );
    // Once nothing arrives, the keepalive does ping.
    let _ = timeout(Duration::from_millis(1500), ws.next()).await;
    let pings = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(op, _)| *op == 0x9)
        .count();
    assert!(pings >= 1, "no keepalive once the peer fell silent");
}

// ---------------------------------------------------------------------------
// Defect 6: `poll_flush` is `Ready(Ok)` only once everything queued is written.

#[tokio::test(start_paused = true)]
async fn send_returns_only_once_the_reply_is_written_even_with_a_request_pipelined() {
    let (mut ws, mut raw) = server_with_raw_client(Config::default());
    let mut requests = client_frame(true, 0x1, b"request 1");
    requests.extend(client_frame(true, 0x1, b"request 2"));
    raw.write_all(&requests).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("request 1")
    );
    ws.send(Message::text("reply 1")).await.unwrap();
    assert_eq!(
        ws.pending_write_bytes(),
        0,
        "send returned with bytes queued"
    );
    // The server now works for 2 s without polling the stream.
    let server = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        ws
    });
    let reply = timeout(Duration::from_secs(1), read_frame(&mut raw))
        .await
        .expect("the reply that send() reported as sent has not arrived");
    assert_eq!(reply, Some((true, 0x1, b"reply 1".to_vec())));
    let mut ws = server.await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("request 2")
    );
}

#[tokio::test(start_paused = true)]
async fn write_half_send_returns_only_once_the_reply_is_written_even_with_a_request_pipelined() {
    let (ws, mut raw) = server_with_raw_client(Config::default());
    let (mut tx, mut rx) = ws.split();
    let mut requests = client_frame(true, 0x1, b"request 1");
    requests.extend(client_frame(true, 0x1, b"request 2"));
    raw.write_all(&requests).await.unwrap();
    assert_eq!(
        rx.next().await.unwrap().unwrap(),
        Message::text("request 1")
    );
    tx.send(Message::text("reply 1")).await.unwrap();
    // Neither half is polled for 2 s.
    let halves = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        (tx, rx)
    });
    let reply = timeout(Duration::from_secs(1), read_frame(&mut raw))
        .await
        .expect("the reply that send() reported as sent has not arrived");
    assert_eq!(reply, Some((true, 0x1, b"reply 1".to_vec())));
    let (_tx, mut rx) = halves.await.unwrap();
    assert_eq!(
        rx.next().await.unwrap().unwrap(),
        Message::text("request 2")
    );
}

// ---------------------------------------------------------------------------
// Defect 8: the three endings are told apart.

#[tokio::test(start_paused = true)]
async fn the_three_endings_of_a_connection_are_told_apart() {
    let config = Config::default().close_timeout(Duration::from_secs(1));

    // 1. A completed closing handshake, started by either side: the peer's
    //    Close, then the end.
    for we_start in [true, false] {
        let (mut client, mut server) = pair(config.clone());
        let (closer, other) = if we_start {
            (&mut client, &mut server)
        } else {
            (&mut server, &mut client)
        };
        closer.close().await.unwrap();
        let (a, b) = tokio::join!(drain(closer, "closer"), drain(other, "other"));
        assert!(
            matches!(&a[..], [Ok(Message::Close(Some(f)))] if f.code == CloseCode::NORMAL),
            "{a:?}"
        );
        assert!(
            matches!(&b[..], [Ok(Message::Close(Some(f)))] if f.code == CloseCode::NORMAL),
            "{b:?}"
        );
    }

    // 2. The peer's EOF without a Close, whether or not we had sent ours.
    for we_sent_close in [false, true] {
        let (mut ws, raw) = server_with_raw_client(config.clone());
        if we_sent_close {
            ws.send(Message::Close(None)).await.unwrap();
        }
        drop(raw);
        let items = drain(&mut ws, "EOF").await;
        assert_ended_with(&items, "peer EOF", is_peer_eof);
    }
    let (ws, raw) = server_with_raw_client(config.clone());
    let (_tx, mut rx) = ws.split();
    drop(raw);
    assert_ended_with(&drain(&mut rx, "EOF").await, "split, peer EOF", is_peer_eof);

    // 3. Our Close unanswered within close_timeout.
    let (mut ws, _raw) = server_with_raw_client(config.clone());
    ws.send(Message::close(CloseCode::GOING_AWAY, "bye"))
        .await
        .unwrap();
    let items = drain(&mut ws, "timeout").await;
    assert_ended_with(&items, "close timeout", is_close_timeout);

    // 1006, never sent on the wire.
    let e = Error::AbnormalClosure(AbnormalClosure::PeerEof);
    assert_eq!(e.close_code(), None);
    assert_eq!(
        AbnormalClosure::CloseTimeout.close_code(),
        CloseCode::ABNORMAL
    );
}

// ---------------------------------------------------------------------------
// Defect 9: the split halves' lock must not block a runtime thread while the
// other half does a long piece of work under it (decoding a huge message).

/// A transport that has nothing to read and takes every write: the read half
/// decodes only what `from_parts` handed it.
struct Quiet;

impl AsyncRead for Quiet {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Pending
    }
}

impl AsyncWrite for Quiet {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// When the read half's first poll ran, when it yielded the message, and when
/// the write half's poll, made meanwhile from another worker thread, ran.
struct LockTiming {
    /// Every poll of the read half until it yielded the message.
    reader_polls: Vec<(std::time::Instant, std::time::Instant)>,
    writer_poll: (std::time::Instant, std::time::Instant),
}

/// A client's text frame of `size` bytes of 'a', built in place.
fn masked_text_frame(size: usize) -> BytesMut {
    let key = [0x12, 0x34, 0x56, 0x78];
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Text,
        mask: Some(key),
        payload_len: size as u64,
    };
    let mut head = [0u8; 14];
    let n = header.write(&mut head);
    let mut frame = BytesMut::with_capacity(n + size);
    frame.extend_from_slice(&head[..n]);
    frame.resize(n + size, b'a');
    wscodec::mask::apply_mask(&mut frame[n..], key, 0);
    frame
}

fn time_write_half_poll_during_a_long_read(size: usize) -> LockTiming {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A masked text frame: decoding unmasks and validates all of it.
    let limits = Limits::default()
        .max_frame_size(size + 1)
        .max_message_size(size + 1);
    let config = Config::default().limits(limits);
    let ws = WebSocket::from_parts(Quiet, Role::Server, config, masked_text_frame(size));
    let (mut tx, mut rx) = ws.split();
    let reader_polling = Arc::new(AtomicBool::new(false));
    let polling = reader_polling.clone();
    let timing = rt.block_on(async move {
        // The writer occupies one worker while it waits, so the reader runs on
        // the other.
        let writer = tokio::spawn(async move {
            while !polling.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            // Let the reader take the lock and get into the decode.
            std::thread::sleep(Duration::from_millis(30));
            let t0 = std::time::Instant::now();
            let mut flush = tx.flush();
            let _ = futures::poll!(&mut flush);
            let t1 = std::time::Instant::now();
            // Then it completes as usual: nothing lost a wake-up.
            timeout(WATCHDOG, flush)
                .await
                .expect("flush stalled")
                .unwrap();
            (t0, t1)
        });
        let reader = tokio::spawn(async move {
            let mut polls = Vec::new();
            let item = std::future::poll_fn(|cx| {
                let t0 = std::time::Instant::now();
                reader_polling.store(true, Ordering::SeqCst);
                let poll = rx.poll_next_unpin(cx);
                polls.push((t0, std::time::Instant::now()));
                poll
            })
            .await;
            (item, polls)
        });
        let (item, reader_polls) = reader.await.unwrap();
        assert!(matches!(item, Some(Ok(Message::Text(t))) if t.len() == size));
        let writer_poll = writer.await.unwrap();
        LockTiming {
            reader_polls,
            writer_poll,
        }
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    timing
}

#[test]
fn write_half_poll_does_not_block_its_thread_while_the_read_half_decodes_a_huge_message() {
    // On a current-thread runtime nothing can show this; on two workers, the
    // write half is polled while the read half is inside a long poll. Grow the
    // message until its decoding takes long enough to tell a lock that blocks
    // from one that does not, whatever the build's speed.
    let conclusive = Duration::from_millis(300);
    let mut size = 32 << 20;
    loop {
        let t = time_write_half_poll_during_a_long_read(size);
        let (w0, w1) = t.writer_poll;
        let writer_poll = w1 - w0;
        let decoding = t.reader_polls.last().unwrap().1 - t.reader_polls[0].0;
        let longest = t.reader_polls.iter().map(|(a, b)| *b - *a).max().unwrap();
        // The reader's poll that was running when the writer polled, if any.
        let during = t.reader_polls.iter().find(|(a, b)| *a <= w0 && w0 < *b);
        if let Some((r0, r1)) = during.filter(|(_, r1)| *r1 - w0 >= conclusive) {
            // The writer polled during one long poll of the reader.
            let reader_left = *r1 - w0;
            assert!(
                writer_poll < reader_left / 2,
                "the write half's poll blocked its thread for {writer_poll:?} while the \
                 read half decoded {size} bytes in one poll of {:?}",
                *r1 - *r0
            );
            eprintln!(
                "{size} bytes decoded in one poll of {:?}; the write half's poll took {writer_poll:?}",
                *r1 - *r0
            );
            return;
        }
        if decoding >= conclusive && longest < Duration::from_millis(50) {
            // The work was spread over many short polls: the writer can only
            // have waited for one of them.
            assert!(
                writer_poll < Duration::from_millis(100),
                "the write half's poll blocked its thread for {writer_poll:?}"
            );
            eprintln!(
                "{size} bytes decoded in {} polls of at most {longest:?}; the write half's \
                 poll took {writer_poll:?}",
                t.reader_polls.len()
            );
            return;
        }
        // Too fast to tell, or the writer came too late into a long poll.
        if size >= 512 << 20 {
            // Only an optimized build decodes this fast; a debug build (what
            // CI runs) gets here by 128 MiB.
            if cfg!(debug_assertions) {
                panic!("inconclusive: decoding {size} bytes took only {decoding:?}");
            }
            eprintln!("inconclusive in an optimized build: decoding is too fast");
            return;
        }
        size *= 2;
    }
}
