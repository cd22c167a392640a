//! `WebSocket<T>` behaviour over an in-memory transport: automatic pongs, the
//! closing handshake in both directions, failing with the right close code,
//! timeouts, backpressure and split halves.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wscodec::{
    AbnormalClosure, CloseCode, CloseFrame, Config, Error, Limits, Message, ProtocolError,
    UsageError,
};

#[tokio::test]
async fn answers_ping_with_pong_carrying_same_payload() {
    let (mut ws, mut raw) = server_with_raw_client(Config::default());
    raw.write_all(&client_frame(true, 0x9, b"are you there"))
        .await
        .unwrap();
    let got = ws.next().await.unwrap().unwrap();
    assert_eq!(got, Message::Ping(Bytes::from_static(b"are you there")));
    // The pong goes out before the stream waits for more input.
    let reader = tokio::spawn(async move {
        let frame = read_server_frame(&mut raw).await;
        (frame, raw)
    });
    let pending = tokio::time::timeout(Duration::from_millis(50), ws.next()).await;
    assert!(pending.is_err(), "no message should arrive");
    let (frame, _raw) = reader.await.unwrap();
    assert_eq!(frame, Some((true, 0xA, b"are you there".to_vec())));
}

#[tokio::test]
async fn peer_initiated_close_is_echoed_then_stream_ends() {
    let (mut ws, mut raw) = server_with_raw_client(Config::default());
    raw.write_all(&client_frame(true, 0x8, b"\x0f\xa0bye"))
        .await
        .unwrap();
    // The server sends its close and FIN; the peer then closes its side.
    let peer = tokio::spawn(async move {
        let reply = read_server_frame(&mut raw).await.unwrap();
        let mut rest = Vec::new();
        raw.read_to_end(&mut rest).await.unwrap();
        drop(raw);
        (reply, rest)
    });
    let got = ws.next().await.unwrap().unwrap();
    assert_eq!(got, Message::close(CloseCode(4000), "bye"));
    assert!(ws.next().await.is_none());
    let (reply, rest) = peer.await.unwrap();
    assert_eq!((reply.1, close_code(&reply.2)), (0x8, 4000));
    assert!(rest.is_empty(), "nothing after the close frame");
    assert!(matches!(
        ws.send(Message::text("late")).await,
        Err(Error::Closed)
    ));
}

#[tokio::test]
async fn closing_handshake_initiated_by_us_completes_in_both_roles() {
    let (mut client, mut server) = pair(Config::default());
    client.close().await.unwrap();
    // The server sees the close and answers it while ending its stream.
    let server_task = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(m) = server.next().await {
            seen.push(m.unwrap());
        }
        seen
    });
    assert!(client
        .next()
        .await
        .is_some_and(|m| matches!(m, Ok(Message::Close(_)))));
    assert!(client.next().await.is_none());
    assert_eq!(
        server_task.await.unwrap(),
        vec![Message::close(CloseCode::NORMAL, "")]
    );
}

#[tokio::test]
async fn data_still_arrives_after_we_sent_close() {
    let (mut ws, mut raw) = server_with_raw_client(Config::default());
    ws.send(Message::close(CloseCode::GOING_AWAY, "shutting down"))
        .await
        .unwrap();
    raw.write_all(&client_frame(true, 0x1, b"last words"))
        .await
        .unwrap();
    raw.write_all(&client_frame(true, 0x8, b"\x03\xe9"))
        .await
        .unwrap();
    let peer = tokio::spawn(async move {
        let close = read_server_frame(&mut raw).await.unwrap();
        let mut rest = Vec::new();
        raw.read_to_end(&mut rest).await.unwrap();
        (close, rest)
    });
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("last words")
    );
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::close(CloseCode::GOING_AWAY, "")
    );
    assert!(ws.next().await.is_none());
    let ((_, op, payload), rest) = peer.await.unwrap();
    assert_eq!((op, close_code(&payload)), (0x8, 1001));
    assert!(rest.is_empty(), "only one close frame went out");
}

async fn expect_failure(frames: &[Vec<u8>], expected_code: u16) -> Error {
    let (mut ws, mut raw) = server_with_raw_client(Config::default());
    for f in frames {
        raw.write_all(f).await.unwrap();
    }
    let peer = tokio::spawn(async move {
        let frame = read_server_frame(&mut raw).await;
        let mut rest = Vec::new();
        let _ = raw.read_to_end(&mut rest).await;
        frame
    });
    let mut error = None;
    while let Some(item) = ws.next().await {
        if let Err(e) = item {
            error = Some(e);
        }
    }
    let (_, op, payload) = peer.await.unwrap().expect("a close frame");
    assert_eq!((op, close_code(&payload)), (0x8, expected_code));
    error.expect("the stream reports the error")
}

#[tokio::test]
async fn protocol_errors_close_with_1002() {
    let cases: Vec<(Vec<Vec<u8>>, ProtocolError)> = vec![
        (
            vec![raw_frame(wscodec::Role::Server, true, 0x1, b"x")],
            ProtocolError::UnmaskedFrameFromClient,
        ),
        (
            vec![client_frame(true, 0x3, b"")],
            ProtocolError::ReservedOpCode(3),
        ),
        (
            vec![client_frame(false, 0x9, b"")],
            ProtocolError::FragmentedControlFrame,
        ),
        (
            vec![client_frame(true, 0x9, &[0; 126])],
            ProtocolError::ControlFrameTooLong,
        ),
        (
            vec![client_frame(true, 0x0, b"x")],
            ProtocolError::UnexpectedContinuation,
        ),
        (
            vec![
                client_frame(false, 0x1, b"a"),
                client_frame(true, 0x2, b"b"),
            ],
            ProtocolError::ExpectedContinuation,
        ),
        (
            vec![client_frame(true, 0x8, b"\x03")],
            ProtocolError::InvalidClosePayload,
        ),
        (
            vec![client_frame(true, 0x8, b"\x03\xed")],
            ProtocolError::InvalidCloseCode(1005),
        ),
    ];
    for (frames, expected) in cases {
        let err = expect_failure(&frames, 1002).await;
        assert!(
            matches!(err, Error::Protocol(e) if e == expected),
            "{err:?} != {expected:?}"
        );
    }
}

#[tokio::test]
async fn rsv_bits_without_extension_close_with_1002() {
    let mut frame = client_frame(true, 0x1, b"x");
    frame[0] |= 0x40;
    let err = expect_failure(&[frame], 1002).await;
    assert!(matches!(
        err,
        Error::Protocol(ProtocolError::ReservedBitsSet)
    ));
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    let err = expect_failure(&[client_frame(true, 0x1, b"\xce\xba\xff")], 1007).await;
    assert!(matches!(err, Error::Protocol(ProtocolError::InvalidUtf8)));
    let err = expect_failure(&[client_frame(true, 0x8, b"\x03\xe8\xff")], 1007).await;
    assert!(matches!(err, Error::Protocol(ProtocolError::InvalidUtf8)));
}

#[tokio::test]
async fn invalid_utf8_fails_before_the_rest_of_the_frame_arrives() {
    let (mut ws, mut raw) = server_with_raw_client(Config::default());
    let frame = client_frame(true, 0x1, b"ok so far \xff and then a lot more text");
    // Send the header and the bad byte, hold back the rest forever.
    raw.write_all(&frame[..6 + 11]).await.unwrap();
    let stream = tokio::spawn(async move { ws.next().await });
    let (_, op, payload) =
        tokio::time::timeout(Duration::from_secs(5), read_server_frame(&mut raw))
            .await
            .expect("fails without waiting for the rest")
            .unwrap();
    assert_eq!((op, close_code(&payload)), (0x8, 1007));
    drop(raw);
    let item = stream.await.unwrap().unwrap();
    assert!(matches!(
        item,
        Err(Error::Protocol(ProtocolError::InvalidUtf8))
    ));
}

#[tokio::test]
async fn oversized_message_closes_with_1009() {
    let config = Config::default().limits(Limits::default().max_message_size(1000));
    let (mut ws, mut raw) = server_with_raw_client(config);
    raw.write_all(&client_frame(false, 0x2, &[0; 600]))
        .await
        .unwrap();
    raw.write_all(&client_frame(true, 0x0, &[0; 600]))
        .await
        .unwrap();
    let peer = tokio::spawn(async move { read_server_frame(&mut raw).await });
    let err = ws.next().await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Capacity(_)), "{err:?}");
    let (_, op, payload) = peer.await.unwrap().unwrap();
    assert_eq!((op, close_code(&payload)), (0x8, 1009));
}

#[tokio::test]
async fn eof_without_close_frame_is_an_error() {
    let (mut ws, raw) = server_with_raw_client(Config::default());
    drop(raw);
    let err = ws.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err, Error::AbnormalClosure(AbnormalClosure::PeerEof)),
        "{err:?}"
    );
    assert!(ws.next().await.is_none());
}

#[tokio::test]
async fn sending_after_close_gives_closed_but_a_second_close_is_a_no_op() {
    let (mut ws, _raw) = server_with_raw_client(Config::default());
    ws.send(Message::close(CloseCode::NORMAL, ""))
        .await
        .unwrap();
    assert!(matches!(
        ws.send(Message::text("x")).await,
        Err(Error::Closed)
    ));
    ws.send(Message::Close(None)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn unanswered_close_times_out() {
    let config = Config::default().close_timeout(Duration::from_secs(3));
    let (mut ws, _raw) = server_with_raw_client(config);
    ws.send(Message::Close(None)).await.unwrap();
    let started = tokio::time::Instant::now();
    let last = ws.next().await.unwrap().unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(last, Error::AbnormalClosure(AbnormalClosure::CloseTimeout)),
        "{last:?}"
    );
    assert!(ws.next().await.is_none());
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn keepalive_sends_pings_while_idle() {
    let config = Config::default().keepalive_interval(Some(Duration::from_secs(5)));
    let (mut ws, mut raw) = server_with_raw_client(config);
    let reader = tokio::spawn(async move {
        let first = read_server_frame(&mut raw).await;
        let second = read_server_frame(&mut raw).await;
        (first, second)
    });
    let _ = tokio::time::timeout(Duration::from_secs(12), ws.next()).await;
    let (first, second) = reader.await.unwrap();
    assert_eq!(first.unwrap().1, 0x9);
    assert_eq!(second.unwrap().1, 0x9);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_fails_with_1001() {
    let config = Config::default().idle_timeout(Some(Duration::from_secs(30)));
    let (mut ws, mut raw) = server_with_raw_client(config);
    let peer = tokio::spawn(async move { read_server_frame(&mut raw).await });
    let err = ws.next().await.unwrap().unwrap_err();
    assert!(matches!(err, Error::IdleTimeout));
    let (_, op, payload) = peer.await.unwrap().unwrap();
    assert_eq!((op, close_code(&payload)), (0x8, 1001));
}

#[tokio::test]
async fn backpressure_holds_when_peer_stops_reading() {
    // A 64 KiB pipe that nobody reads, and a 16 KiB write buffer bound.
    let (_raw, io) = tokio::io::duplex(64 << 10);
    let config = Config::default().write_buffer_limit(16 << 10);
    let mut ws = wscodec::WebSocket::from_upgraded(io, wscodec::Role::Server, config);
    let message = Message::binary(vec![0u8; 4096]);
    let mut sent = 0;
    loop {
        match tokio::time::timeout(Duration::from_millis(100), ws.feed(message.clone())).await {
            Ok(result) => {
                result.unwrap();
                sent += 1;
            }
            Err(_) => break,
        }
        assert!(sent < 1000, "poll_ready never pushed back");
    }
    assert!(ws.pending_write_bytes() <= (16 << 10) + 4096 + 14);
}

#[tokio::test]
async fn split_halves_work_from_two_tasks_at_once() {
    let (client, server) = pair(Config::default());
    let (mut tx, mut rx) = client.split();
    let (mut server_tx, mut server_rx) = server.split();
    const N: usize = 2000;
    let echo = tokio::spawn(async move {
        while let Some(Ok(m)) = server_rx.next().await {
            if !m.is_control() {
                server_tx.send(m).await.unwrap();
            }
        }
    });
    let sender = tokio::spawn(async move {
        for i in 0..N {
            tx.send(Message::text(i.to_string())).await.unwrap();
            if i % 100 == 0 {
                tx.send(Message::Ping(Bytes::from_static(b"p")))
                    .await
                    .unwrap();
            }
        }
        tx
    });
    let mut next = 0;
    while next < N {
        match rx.next().await.unwrap().unwrap() {
            Message::Text(t) => {
                assert_eq!(t.as_str(), next.to_string());
                next += 1;
            }
            Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut tx = sender.await.unwrap();
    tx.close().await.unwrap();
    while rx.next().await.is_some() {}
    echo.await.unwrap();
    assert!(rx.reunite(tx).is_ok());
}

#[tokio::test]
async fn large_messages_round_trip_fragmented() {
    let config = Config::default().fragment_size(Some(1000));
    let (mut client, mut server) = pair(config);
    let big = Message::binary(vec![0xAB; 100_000]);
    client.send(big.clone()).await.unwrap();
    assert_eq!(server.next().await.unwrap().unwrap(), big);
    let text = Message::text("ü".repeat(30_000));
    server.send(text.clone()).await.unwrap();
    assert_eq!(client.next().await.unwrap().unwrap(), text);
}

#[tokio::test]
async fn close_with_unsendable_code_is_refused() {
    let (mut ws, _raw) = server_with_raw_client(Config::default());
    let err = ws
        .send(Message::Close(Some(CloseFrame::new(CloseCode(1006), ""))))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Usage(UsageError::UnsendableCloseCode(1006))
    ));
    // The connection is still usable.
    ws.send(Message::text("fine")).await.unwrap();
}

#[tokio::test]
async fn prepared_message_reaches_every_connection() {
    let prepared = wscodec::PreparedMessage::new(Message::binary(vec![5u8; 50_000])).unwrap();
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..3 {
        let (client, server) = pair(Config::default());
        clients.push(client);
        servers.push(server);
    }
    for server in &mut servers {
        server.send_prepared(&prepared).await.unwrap();
    }
    for client in &mut clients {
        assert_eq!(client.next().await.unwrap().unwrap(), *prepared.message());
    }
    // A client sends it masked with its own key; the server still reads it.
    let (client, mut server) = pair(Config::default());
    let (mut tx, _rx) = client.split();
    tx.send_prepared(&prepared).await.unwrap();
    assert_eq!(server.next().await.unwrap().unwrap(), *prepared.message());
}

#[tokio::test]
async fn server_fragments_share_slices_of_a_large_payload_and_arrive_whole() {
    let config = Config::default().fragment_size(Some(3000));
    let (mut client, mut server) = pair(config);
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    server.send(Message::binary(payload.clone())).await.unwrap();
    assert_eq!(
        client.next().await.unwrap().unwrap(),
        Message::binary(payload)
    );
}

/// Counts the writes reaching the transport.
struct CountingWrites<T> {
    inner: T,
    writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for CountingWrites<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for CountingWrites<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Which call an echo loop answers with.
#[derive(Clone, Copy)]
enum Reply {
    Feed,
    Send,
}

async fn writes_for_pipelined_echo(reply: Reply) -> usize {
    let config = Config::default();
    let (mut raw, io) = tokio::io::duplex(1 << 20);
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let io = CountingWrites {
        inner: io,
        writes: writes.clone(),
    };
    let mut ws = wscodec::WebSocket::from_upgraded(io, wscodec::Role::Server, config);
    let mut burst = Vec::new();
    for i in 0..100u8 {
        burst.extend(client_frame(true, 0x2, &[i; 16]));
    }
    raw.write_all(&burst).await.unwrap();
    for _ in 0..100 {
        let m = ws.next().await.unwrap().unwrap();
        match reply {
            Reply::Feed => ws.feed(m).await.unwrap(),
            Reply::Send => ws.send(m).await.unwrap(),
        }
    }
    // Once the burst is answered, the stream writes what is left before waiting.
    let _ = tokio::time::timeout(Duration::from_millis(20), ws.next()).await;
    for i in 0..100u8 {
        let (_, _, payload) = read_server_frame(&mut raw).await.unwrap();
        assert_eq!(payload, vec![i; 16], "echoed in order");
    }
    writes.load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn echo_loop_with_feed_batches_replies_to_a_pipelined_burst_and_send_writes_each() {
    let batched = writes_for_pipelined_echo(Reply::Feed).await;
    assert!(batched <= 2, "{batched} writes for 100 pipelined messages");
    // send flushes: each reply is written before send returns (Sink contract).
    let unbatched = writes_for_pipelined_echo(Reply::Send).await;
    assert!(unbatched >= 100, "every flush writes: {unbatched}");
}

/// Regression: pongs were bounded only before the next socket read, so pings
/// already in a large read buffer could each queue a pong past the limit.
/// Now the reader decodes them all (it never stops reading because of the
/// write queue) and queues at most 4 KiB of Pongs; then only the latest
/// Ping is kept to answer.
#[tokio::test]
async fn pings_already_buffered_queue_a_bounded_amount_of_pongs() {
    let mut buffered = Vec::new();
    for _ in 0..2000 {
        buffered.extend(client_frame(true, 0x9, &[0xEE; 125]));
    }
    // The peer reads nothing, and the pipe takes only 64 bytes.
    let (_peer, io) = tokio::io::duplex(64);
    let mut ws = wscodec::WebSocket::from_parts(
        io,
        wscodec::Role::Server,
        Config::default().write_buffer_limit(4096),
        bytes::BytesMut::from(&buffered[..]),
    );
    for _ in 0..2000 {
        let ping = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        assert!(matches!(ping, Ok(Some(Ok(Message::Ping(_))))), "{ping:?}");
        assert!(
            ws.pending_write_bytes() <= 4096 + 2 + 125,
            "{} bytes of pongs queued",
            ws.pending_write_bytes()
        );
    }
}

#[tokio::test]
async fn start_close_queues_past_the_write_limit_and_the_peer_gets_it_last() {
    let config = Config::default().write_buffer_limit(4096);
    let (mut ws, mut raw) = server_with_raw_client_over(config, 1024);
    // Fill the pipe and our queue until sending would wait for the reader.
    let mut sent = 0;
    while tokio::time::timeout(
        Duration::from_millis(20),
        ws.feed(Message::binary(vec![7u8; 1000])),
    )
    .await
    .is_ok()
    {
        sent += 1;
    }
    assert!(sent >= 4, "only {sent} messages fit");
    ws.start_close(Some(CloseFrame::new(
        CloseCode::POLICY_VIOLATION,
        "too slow",
    )))
    .unwrap();
    // Now the slow reader catches up: every message, then our Close.
    let peer = tokio::spawn(async move {
        let mut frames = Vec::new();
        while let Some(frame) = read_server_frame(&mut raw).await {
            let is_close = frame.1 == 0x8;
            frames.push(frame);
            if is_close {
                raw.write_all(&client_frame(true, 0x8, b"\x03\xf0"))
                    .await
                    .unwrap();
                let mut rest = Vec::new();
                raw.read_to_end(&mut rest).await.unwrap();
                break;
            }
        }
        frames
    });
    assert!(ws.next().await.unwrap().unwrap().is_close());
    assert!(ws.next().await.is_none());
    let frames = peer.await.unwrap();
    // The message that found the queue full was queued too (feed queues, then
    // waits in the next poll_ready).
    assert!(
        frames.len() > sent,
        "{} frames for {sent} messages",
        frames.len()
    );
    let (_, opcode, payload) = frames.last().unwrap();
    assert_eq!((*opcode, close_code(payload)), (0x8, 1008));
    assert_eq!(&payload[2..], b"too slow");
    assert!(frames[..frames.len() - 1].iter().all(|f| f.1 == 0x2));
}

#[tokio::test(start_paused = true)]
async fn start_close_ends_a_peer_that_never_reads_after_the_close_timeout() {
    let config = Config::default()
        .write_buffer_limit(4096)
        .close_timeout(Duration::from_secs(5));
    let (mut ws, _raw) = server_with_raw_client_over(config, 1024);
    for _ in 0..8 {
        ws.start_send_unpin(Message::binary(vec![7u8; 1000]))
            .unwrap();
    }
    let started = tokio::time::Instant::now();
    ws.start_close(Some(CloseFrame::new(
        CloseCode::POLICY_VIOLATION,
        "too slow",
    )))
    .unwrap();
    // The stream gives up on time, and says so.
    let last = ws.next().await.unwrap().unwrap_err();
    assert!(
        matches!(last, Error::AbnormalClosure(AbnormalClosure::CloseTimeout)),
        "{last:?}"
    );
    assert!(ws.next().await.is_none());
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert!(matches!(ws.start_close(None), Err(Error::Closed)));
}

#[tokio::test]
async fn write_half_start_close_wakes_a_reader_waiting_for_input() {
    let (ws, mut raw) = server_with_raw_client(Config::default());
    let (mut sink, mut stream) = ws.split();
    let reader = tokio::spawn(async move {
        let mut items = Vec::new();
        while let Some(item) = stream.next().await {
            items.push(item.unwrap());
        }
        items
    });
    tokio::time::sleep(Duration::from_millis(20)).await; // the reader waits
    sink.start_close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "bye")))
        .unwrap();
    // Nobody flushes the sink: the reader writes our Close out.
    let frame = tokio::time::timeout(Duration::from_secs(2), read_server_frame(&mut raw))
        .await
        .expect("the Close went out without a flush")
        .unwrap();
    assert_eq!((frame.1, close_code(&frame.2)), (0x8, 1001));
    raw.write_all(&client_frame(true, 0x8, b"\x03\xe9"))
        .await
        .unwrap();
    let items = reader.await.unwrap();
    assert_eq!(items, vec![Message::close(CloseCode::GOING_AWAY, "")]);
}

// ----- FusedStream -----

#[tokio::test]
async fn fused_stream_is_terminated_only_once_the_last_item_was_yielded() {
    use futures::stream::FusedStream;
    // The transport fails on a send: the connection is over at once, but the
    // stream still owes its last item, so `select!` must keep polling it.
    let (mut ws, raw) = server_with_raw_client(Config::default());
    drop(raw);
    assert!(!FusedStream::is_terminated(&ws));
    assert!(ws.send(Message::text("into the void")).await.is_err());
    assert!(!FusedStream::is_terminated(&ws), "the error is still owed");
    assert!(matches!(ws.next().await, Some(Err(Error::Io(_)))));
    assert!(FusedStream::is_terminated(&ws));
    assert!(ws.is_terminated(), "the inherent method says the same");
    assert!(ws.next().await.is_none());
    assert!(ws.is_terminated());
}

#[tokio::test]
async fn fused_stream_lets_select_receive_the_closing_handshake_then_stops() {
    use futures::stream::FusedStream;
    let (mut client, server) = pair(Config::default());
    let (server_tx, mut server_rx) = server.split();
    client.close().await.unwrap();
    let mut items = Vec::new();
    // select! skips a terminated stream without polling it for its `None`:
    // each stream must have delivered its Close before that, and the loop
    // ends once both are terminated.
    loop {
        futures::select! {
            m = client.next() => items.push(("client", m.unwrap().unwrap())),
            m = server_rx.next() => items.push(("server", m.unwrap().unwrap())),
            complete => break,
        }
    }
    assert!(client.is_terminated() && server_rx.is_terminated());
    items.sort_by_key(|(side, _)| *side);
    let close = Message::close(CloseCode::NORMAL, "");
    assert_eq!(items, vec![("client", close.clone()), ("server", close)]);
    assert!(server_rx.reunite(server_tx).is_ok());
}

// ----- prepared messages through a Sink -----

#[tokio::test]
async fn prepared_sink_sends_one_or_many_prepared_messages_from_either_role_and_a_write_half() {
    let prepared: Vec<_> = (0..50)
        .map(|i| wscodec::PreparedMessage::new(Message::text(format!("m{i}"))).unwrap())
        .collect();
    let expected: Vec<Message> = prepared.iter().map(|p| p.message().clone()).collect();
    for server_sends in [true, false] {
        let (client, server) = pair(Config::default());
        let (mut from, mut to) = if server_sends {
            (server, client)
        } else {
            (client, server)
        };
        let mut sink = from.prepared_sink();
        sink.send(&prepared[0]).await.unwrap();
        for p in &prepared[1..10] {
            sink.feed(p).await.unwrap();
        }
        sink.flush().await.unwrap();
        sink.send_all(&mut futures::stream::iter(prepared[10..].iter().map(Ok)))
            .await
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..prepared.len() {
            got.push(to.next().await.unwrap().unwrap());
        }
        assert_eq!(got, expected, "server sends: {server_sends}");
        // The connection's own Sink still takes plain messages, and its
        // `close` needs no type annotation.
        from.send(Message::text("plain")).await.unwrap();
        assert_eq!(to.next().await.unwrap().unwrap(), Message::text("plain"));
        from.close().await.unwrap();
    }
    // A write half, while its read half runs in another task.
    let (client, server) = pair(Config::default());
    let (mut tx, mut rx) = server.split();
    let reader = tokio::spawn(async move { while rx.next().await.is_some() {} });
    tx.prepared_sink()
        .send_all(&mut futures::stream::iter(prepared.iter().map(Ok)))
        .await
        .unwrap();
    let mut client = client;
    for message in &expected {
        assert_eq!(&client.next().await.unwrap().unwrap(), message);
    }
    tx.prepared_sink().close().await.unwrap();
    assert!(client.next().await.unwrap().unwrap().is_close());
    drop(client);
    reader.await.unwrap();
}

#[tokio::test]
async fn prepared_sink_after_close_refuses_data_like_the_message_sink() {
    let prepared = wscodec::PreparedMessage::new(Message::text("late")).unwrap();
    let (mut ws, _raw) = server_with_raw_client(Config::default());
    ws.start_close(None).unwrap();
    assert!(matches!(
        ws.prepared_sink().send(&prepared).await,
        Err(Error::Closed)
    ));
}

// ----- Config::auto_pong -----

const PING: &[u8] = b"rtt-42";

/// A Pong the raw client receives within a while, if any.
async fn pong_arrives(raw: &mut tokio::io::DuplexStream) -> Option<(bool, u8, Vec<u8>)> {
    let read = tokio::time::timeout(Duration::from_millis(100), read_server_frame(raw));
    read.await.ok().flatten()
}

/// Pings a whole server connection; returns whether a Pong came by itself,
/// then sends the application's own Pong.
async fn ping_whole(config: Config) -> Option<(bool, u8, Vec<u8>)> {
    let (mut ws, mut raw) = server_with_raw_client(config);
    raw.write_all(&client_frame(true, 0x9, PING)).await.unwrap();
    let got = ws.next().await.unwrap().unwrap();
    assert_eq!(got, Message::Ping(Bytes::from_static(PING)));
    // Polled again, the stream writes what it queued before waiting.
    let waiting = tokio::time::timeout(Duration::from_millis(20), ws.next()).await;
    assert!(waiting.is_err());
    let auto = pong_arrives(&mut raw).await;
    ws.send(Message::Pong(Bytes::from_static(b"mine")))
        .await
        .unwrap();
    assert_eq!(
        read_server_frame(&mut raw).await,
        Some((true, 0xA, b"mine".to_vec()))
    );
    auto
}

/// [`ping_whole`] on split halves, the reader in its own task.
async fn ping_split(config: Config) -> Option<(bool, u8, Vec<u8>)> {
    let (ws, mut raw) = server_with_raw_client(config);
    let (mut tx, mut rx) = ws.split();
    raw.write_all(&client_frame(true, 0x9, PING)).await.unwrap();
    let got = rx.next().await.unwrap().unwrap();
    assert_eq!(got, Message::Ping(Bytes::from_static(PING)));
    let reader = tokio::spawn(async move { rx.next().await });
    let auto = pong_arrives(&mut raw).await;
    tx.send(Message::Pong(Bytes::from_static(b"mine")))
        .await
        .unwrap();
    assert_eq!(
        read_server_frame(&mut raw).await,
        Some((true, 0xA, b"mine".to_vec()))
    );
    raw.write_all(&client_frame(true, 0x8, b"\x03\xe8"))
        .await
        .unwrap();
    let last = reader.await.unwrap();
    assert!(matches!(last, Some(Ok(Message::Close(_)))), "{last:?}");
    auto
}

#[tokio::test]
async fn auto_pong_on_answers_pings_by_itself_whole_or_split() {
    let pong = Some((true, 0xA, PING.to_vec()));
    assert_eq!(ping_whole(Config::default()).await, pong);
    assert_eq!(ping_split(Config::default()).await, pong);
}

#[tokio::test]
async fn auto_pong_off_delivers_pings_and_sends_only_the_applications_pong() {
    let config = Config::default().auto_pong(false);
    assert_eq!(ping_whole(config.clone()).await, None);
    assert_eq!(ping_split(config).await, None);
}

#[tokio::test]
async fn auto_pong_off_queues_nothing_for_a_flood_of_buffered_pings() {
    let mut buffered = Vec::new();
    for _ in 0..500 {
        buffered.extend(client_frame(true, 0x9, &[0xEE; 125]));
    }
    let (_peer, io) = tokio::io::duplex(64);
    let mut ws = wscodec::WebSocket::from_parts(
        io,
        wscodec::Role::Server,
        Config::default().auto_pong(false),
        bytes::BytesMut::from(&buffered[..]),
    );
    for _ in 0..500 {
        let ping = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        assert!(matches!(ping, Ok(Some(Ok(Message::Ping(_))))), "{ping:?}");
        assert_eq!(ws.pending_write_bytes(), 0);
    }
}
