use bytes::Bytes;

use super::core::{truncate_reason, READ_CHUNK};
use super::*;
use crate::codec::SHARE_MIN;

#[test]
fn server_queues_large_payload_without_copying_it() {
    let (io, _peer) = tokio::io::duplex(16);
    let mut ws = WebSocket::from_upgraded(io, Role::Server, Config::default());
    let payload = Bytes::from(vec![7u8; SHARE_MIN]);
    ws.core
        .start_send(Message::Binary(payload.clone()))
        .unwrap();
    let queued = ws.core.writes.last_shared().unwrap();
    assert_eq!(queued.as_ptr(), payload.as_ptr());
    // A small one is copied: one more I/O slice would cost more than the copy.
    ws.core.start_send(Message::binary(vec![1u8; 10])).unwrap();
    assert_eq!(ws.core.writes.tail_len(), 2 + 10);
}

#[test]
fn prepared_message_is_shared_by_every_server_connection() {
    let prepared = PreparedMessage::new(Message::text("to all")).unwrap();
    for _ in 0..3 {
        let (io, _peer) = tokio::io::duplex(16);
        let mut ws = WebSocket::from_upgraded(io, Role::Server, Config::default());
        ws.core.start_send_prepared(&prepared).unwrap();
        assert_eq!(
            ws.core.writes.last_shared().unwrap().as_ptr(),
            prepared.encoded().as_ptr()
        );
    }
}

#[test]
fn client_encodes_prepared_message_anew_with_its_own_mask() {
    let prepared = PreparedMessage::new(Message::binary(vec![0u8; 2000])).unwrap();
    let (io, _peer) = tokio::io::duplex(16);
    let mut ws = WebSocket::from_upgraded(io, Role::Client, Config::default());
    ws.core.start_send_prepared(&prepared).unwrap();
    assert!(ws.core.writes.last_shared().is_none());
    assert_eq!(ws.core.writes.tail_len(), 4 + 4 + 2000);
}

#[test]
fn close_reason_is_cut_at_a_char_boundary_within_123_bytes() {
    let reason = truncate_reason("é".repeat(100));
    assert!(reason.len() <= 123);
    assert_eq!(reason.len() % 2, 0);
}

#[test]
fn a_close_that_cannot_be_encoded_changes_no_state() {
    let (io, _peer) = tokio::io::duplex(16);
    let mut ws = WebSocket::from_upgraded(io, Role::Server, Config::default());
    let too_long = CloseFrame::new(CloseCode::NORMAL, "x".repeat(124));
    assert!(ws.start_close(Some(too_long)).is_err());
    assert_eq!(ws.core.state, State::Open);
    assert_eq!(ws.pending_write_bytes(), 0);
}

/// A broadcast to connections that agreed on permessage-deflate is
/// compressed once, not once per connection (`PreparedMessage`'s docs).
#[cfg(feature = "deflate")]
mod compressed_once {
    use futures::{SinkExt, StreamExt};

    use super::*;
    use crate::deflate::{DeflateParams, COMPRESSED_MESSAGES};
    use crate::extension::Extensions;

    /// Both directions alike, level 6, messages from 64 bytes.
    fn params(takeover: bool, bits: Option<u8>) -> DeflateParams {
        DeflateParams {
            min_size: 64,
            ..crate::deflate::tests::params_with(takeover, bits)
        }
    }

    /// A server and a client WebSocket over a pipe, both with `params`.
    fn pair(
        params: &DeflateParams,
    ) -> (
        WebSocket<tokio::io::DuplexStream>,
        WebSocket<tokio::io::DuplexStream>,
    ) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let extensions = Extensions {
            deflate: Some(params.clone()),
        };
        let config = Config::default();
        let server = WebSocket::with_extensions(
            a,
            Role::Server,
            config.clone(),
            BytesMut::new(),
            &extensions,
        );
        let client =
            WebSocket::with_extensions(b, Role::Client, config, BytesMut::new(), &extensions);
        (server, client)
    }

    fn compressions() -> usize {
        COMPRESSED_MESSAGES.with(|n| n.get())
    }

    fn chat_line(n: usize) -> Message {
        Message::text(format!(
            "{{\"type\":\"chat\",\"room\":\"lobby\",\"name\":\"alice\",\"text\":\"line {n}: the quick brown fox jumps over the lazy dog\"}}"
        ))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_broadcast_to_a_thousand_deflate_connections_compresses_each_message_once() {
        // Half keep their context, half do not: one frame serves both.
        let mut pairs: Vec<_> = (0..1000).map(|i| pair(&params(i % 2 == 0, None))).collect();
        let before = compressions();
        for n in 0..3 {
            let prepared = PreparedMessage::new(chat_line(n)).unwrap();
            for (server, _) in &mut pairs {
                server.feed_prepared(&prepared).await.unwrap();
            }
        }
        assert_eq!(compressions() - before, 3, "one compression per message");
        for (server, client) in &mut pairs {
            server.flush().await.unwrap();
            for n in 0..3 {
                assert_eq!(client.next().await.unwrap().unwrap(), chat_line(n));
            }
        }
        // The client side inflated; nothing more was compressed for it.
        assert_eq!(compressions() - before, 3);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn each_window_size_in_use_costs_one_compression() {
        let prepared = PreparedMessage::new(chat_line(0)).unwrap();
        let before = compressions();
        for bits in [Some(9), Some(9), Some(13), None, None, Some(13)] {
            let (mut server, mut client) = pair(&params(true, bits));
            server.send_prepared(&prepared).await.unwrap();
            assert_eq!(client.next().await.unwrap().unwrap(), chat_line(0));
        }
        assert_eq!(compressions() - before, 3, "windows 9, 13 and 15");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_that_keeps_its_context_forgets_it_after_a_shared_frame() {
        // Regression guard: with context takeover the connection's compressor
        // remembers its own messages, but after a shared frame the peer's
        // window holds that frame's text instead. Repeating our earlier
        // message would then point into the wrong bytes.
        let (mut server, mut client) = pair(&params(true, None));
        let own =
            Message::text("x".repeat(40) + &"own message, long enough to compress. ".repeat(4));
        let shared = PreparedMessage::new(Message::text("y".repeat(200))).unwrap();
        for message in [own.clone(), own.clone()] {
            server.send(message).await.unwrap();
        }
        server.send_prepared(&shared).await.unwrap();
        server.send(own.clone()).await.unwrap();
        for expected in [&own, &own, shared.message(), &own] {
            assert_eq!(&client.next().await.unwrap().unwrap(), expected);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn short_and_control_prepared_messages_go_out_as_prepared() {
        let (mut server, mut client) = pair(&params(false, None));
        let short = PreparedMessage::new(Message::text("hi")).unwrap();
        let ping = PreparedMessage::new(Message::Ping(Bytes::from_static(b"p"))).unwrap();
        let before = compressions();
        server.core.start_send_prepared(&short).unwrap();
        assert_eq!(
            server.core.writes.last_shared().unwrap().as_ptr(),
            short.encoded().as_ptr(),
            "below min_size: the uncompressed frame, shared"
        );
        server.core.start_send_prepared(&ping).unwrap();
        assert_eq!(
            server.core.writes.last_shared().unwrap().as_ptr(),
            ping.encoded().as_ptr()
        );
        assert_eq!(compressions(), before);
        server.flush().await.unwrap();
        assert_eq!(client.next().await.unwrap().unwrap(), Message::text("hi"));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_waiting_connection_holds_no_read_buffer_even_after_a_large_message() {
    use futures::{SinkExt, StreamExt};
    let (a, b) = tokio::io::duplex(64 << 10);
    let mut server = WebSocket::from_upgraded(a, Role::Server, Config::default());
    let mut client = WebSocket::from_upgraded(b, Role::Client, Config::default());
    assert!(futures::poll!(server.next()).is_pending());
    assert_eq!(server.core.read_buf.capacity(), 0, "idle");
    let big = Message::binary(vec![5u8; 1 << 20]);
    let sending = tokio::spawn(async move {
        client.send(big).await.unwrap();
        client
    });
    let got = server.next().await.unwrap().unwrap();
    assert_eq!(got.len(), 1 << 20);
    let _client = sending.await.unwrap();
    // The burst is over: nothing kept for it, and the read size it grew to
    // is only reserved while a read is being made.
    assert!(futures::poll!(server.next()).is_pending());
    assert_eq!(server.core.read_buf.capacity(), 0, "after the burst");
    assert!(server.core.read_chunk > READ_CHUNK);
}
