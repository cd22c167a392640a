//! A session: one WebSocket connection's life, from the 101 to the end.
//!
//! This module owns the WebSocket side of the server: the settings of every
//! chat connection ([`websocket_config`]), the close codes the server sends,
//! and one member's connection from the 101 on: join its room, relay what it
//! sends, write what the room sends, leave, close. It never parses HTTP or
//! decides who may connect (that is [`routes`](super::routes)), and never
//! reaches another member: what it sends the room goes through the
//! [`Hub`](super::hub::Hub), and what the room sends it arrives in its queue.

use std::fmt::Write as _;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use wscodec::{
    CloseCode, CloseFrame, Config, Error, Limits, Message, PreparedMessage, ReadHalf, WebSocket,
    WriteHalf,
};

use super::cluster::refused_notice;
use super::text::{clean_name, now_millis, push_json_string};
use super::Server;

/// The largest message (text or binary) a client may send; more closes with 1009.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 << 10;
/// How long closing one connection may take (our Close out, the peer's back),
/// including waiting for a slow client's backlog to leave.
pub const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Close code for a client dropped because it fell too far behind.
pub const TOO_SLOW: CloseCode = CloseCode::POLICY_VIOLATION;
/// Close code for every client when the server shuts down.
pub(crate) const SHUTTING_DOWN: CloseCode = CloseCode::GOING_AWAY;

/// The settings of every chat connection. Built with the crate's `deflate`
/// feature, permessage-deflate (RFC 7692) is accepted from clients that
/// offer it, as browsers do, with the crate's defaults.
pub(crate) fn websocket_config() -> Config {
    let config = Config::default()
        .limits(
            Limits::default()
                .max_frame_size(MAX_MESSAGE_BYTES)
                .max_message_size(MAX_MESSAGE_BYTES),
        )
        .keepalive_interval(Some(Duration::from_secs(30)))
        .idle_timeout(Some(Duration::from_secs(90)))
        .close_timeout(CLOSE_GRACE);
    #[cfg(feature = "deflate")]
    let config = config.deflate(Some(wscodec::deflate::DeflateConfig::default()));
    config
}

/// How a member's WebSocket reached the server. Its welcome says so, which
/// lets a client (or a test) see which handshake the browser chose and on
/// which connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Link {
    /// The handshake's HTTP: `http/1.1`, an Upgrade (RFC 6455 §4), or `h2`,
    /// an extended CONNECT on a stream of an HTTP/2 connection (RFC 8441).
    pub(crate) transport: &'static str,
    /// The number the server gave the TCP connection (from 1, in the order
    /// accepted); over TLS the page's responses carry it as
    /// `X-Broadcast-Connection`.
    pub(crate) connection: u64,
    /// Whether permessage-deflate was negotiated.
    pub(crate) deflate: bool,
}

impl Link {
    /// Appends the welcome's fields for it, each after a comma.
    pub(crate) fn push_json(&self, json: &mut String) {
        json.push_str(r#","transport":"#);
        push_json_string(json, self.transport);
        let _ = write!(
            json,
            r#","connection":{},"deflate":{}"#,
            self.connection, self.deflate
        );
    }
}

/// Why a session ended.
enum End {
    /// The peer closed, or the connection failed (the WebSocket has sent the
    /// right close code if there was one to send).
    Peer,
    /// We close, with this frame.
    Close(CloseFrame),
}

/// A member's life in a room: join, relay both ways, leave, close. The
/// same over a TCP connection, TLS or an HTTP/2 stream: `T` is whatever
/// carries the frames.
pub(crate) async fn chat<T>(
    ws: WebSocket<T>,
    room: &str,
    name: String,
    link: Link,
    server: &Server,
    _slot: OwnedSemaphorePermit,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (queue_tx, mut queue) = mpsc::channel(server.options.queue_capacity);
    let dropped = CancellationToken::new();
    // In a cluster the session keeps a sender of its own queue, for the
    // notices of what Redis did not take; alone, the hub holds the only one
    // (and letting go of it means the member was dropped).
    let (id, own_queue) = match &server.cluster {
        Some(cluster) => {
            let own = queue_tx.clone();
            (
                cluster.enter(room, &name, link, queue_tx, dropped.clone()),
                Some(own),
            )
        }
        None => (
            server
                .hub
                .join(room, &name, link, queue_tx, dropped.clone()),
            None,
        ),
    };

    let end = tokio::select! {
        biased;
        () = server.shutdown.cancelled() => End::Close(CloseFrame::new(SHUTTING_DOWN, "server shutting down")),
        () = dropped.cancelled() => End::Close(CloseFrame::new(TOO_SLOW, "too slow")),
        () = receive(&mut stream, server, room, id, name, own_queue) => End::Peer,
        result = forward(&mut sink, &mut queue) => match result {
            // The hub let go of our queue: only when it dropped us (a
            // cluster member keeps a sender itself, and learns it from `dropped`).
            Ok(()) => End::Close(CloseFrame::new(TOO_SLOW, "too slow")),
            Err(_) => End::Peer,
        },
    };
    match &server.cluster {
        Some(cluster) => cluster.leave(room, id),
        None => server.hub.leave(room, id),
    }
    if let End::Close(frame) = end {
        // Our Close goes out after what is already queued (a slow reader gets
        // its backlog first), then the peer's reply ends the stream; a peer
        // that reads nothing within the grace is simply dropped.
        // start_close queues even past the write limit, and the stream gives up
        // after the close timeout (CLOSE_GRACE).
        if sink.start_close(Some(frame)).is_ok() {
            while stream.next().await.is_some() {}
        }
    }
}

/// Relays what the member sends to its room until its stream ends.
async fn receive<T: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut ReadHalf<T>,
    server: &Server,
    room: &str,
    id: u64,
    mut name: String,
    own_queue: Option<mpsc::Sender<PreparedMessage>>,
) {
    while let Some(message) = stream.next().await {
        // After an error the stream runs the close and then ends: keep polling.
        let Ok(message) = message else { continue };
        let message = match message {
            Message::Text(text) if text.trim().is_empty() => continue,
            Message::Text(text) if text.starts_with("/name ") => {
                let new_name = clean_name(&text["/name ".len()..]);
                match &server.cluster {
                    Some(cluster) => cluster.rename(room, id, &name, &new_name),
                    None => server.hub.rename(room, id, &new_name),
                }
                name = new_name;
                continue;
            }
            Message::Text(text) => {
                let mut json = String::with_capacity(text.len() + name.len() + 64);
                json.push_str(r#"{"type":"message","name":"#);
                push_json_string(&mut json, &name);
                json.push_str(r#","text":"#);
                push_json_string(&mut json, &text);
                let _ = write!(json, r#","time":{}}}"#, now_millis());
                Message::text(json)
            }
            binary @ Message::Binary(_) => binary,
            // Pings are answered and the closing handshake run by the WebSocket.
            _ => continue,
        };
        if let Some(cluster) = &server.cluster {
            // Encoded once per node, by the dispatcher, from what Redis sends back.
            if cluster.send(room, id, &message).is_err() {
                let text = match &message {
                    Message::Text(json) => Some(json.as_str()),
                    _ => None,
                };
                if let Some(own) = &own_queue {
                    // Full: the member is about to be dropped as too slow anyway.
                    let _ = own.try_send(refused_notice(text));
                }
            }
            continue;
        }
        let prepared = PreparedMessage::new(message).expect("data messages always encode");
        server.hub.broadcast(room, &prepared);
    }
}

/// Writes the member's queue to its socket, batching what is already queued
/// into one write. Returns when the hub drops the queue, or on a write error.
///
/// On a connection that agreed on permessage-deflate, a [`PreparedMessage`]
/// goes out compressed, and compressed once for every such member of the
/// room (the first connection compresses it on its own, RFC 7692 §7.1.1,
/// and keeps the frame in it), not once per member.
async fn forward<T: AsyncRead + AsyncWrite + Unpin>(
    sink: &mut WriteHalf<T>,
    queue: &mut mpsc::Receiver<PreparedMessage>,
) -> Result<(), Error> {
    let mut batch = Vec::with_capacity(64);
    while queue.recv_many(&mut batch, 64).await > 0 {
        for message in batch.drain(..) {
            sink.feed_prepared(&message).await?;
        }
        if queue.is_empty() {
            sink.flush().await?;
        }
    }
    Ok(())
}
