//! The `tracing` feature's events and span, seen by a subscriber that records
//! everything: the close carries who started it, its code and reason; a
//! protocol error, a limit and a timeout each have their event; nothing per
//! message is above TRACE; every event sits in the connection's span.
//!
//! `cargo test --features tracing --test tracing`

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use wscodec::{CloseCode, CloseFrame, Config, Error, Limits, Message};

/// An event as recorded: its level, message, fields, and the fields of the
/// span it was emitted in (none if it was in no span).
#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    fields: BTreeMap<String, String>,
    span: Option<(String, BTreeMap<String, String>)>,
}

impl Captured {
    fn message(&self) -> &str {
        self.fields.get("message").map_or("", String::as_str)
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
}

#[derive(Default)]
struct State {
    spans: BTreeMap<u64, (String, BTreeMap<String, String>)>,
    /// Entered spans, innermost last (tests run on one thread).
    stack: Vec<u64>,
    events: Vec<Captured>,
}

/// Records every span and event, at every level.
#[derive(Clone, Default)]
struct Recorder {
    state: Arc<Mutex<State>>,
    next_id: Arc<AtomicU64>,
}

impl Recorder {
    fn events(&self) -> Vec<Captured> {
        self.state.lock().unwrap().events.clone()
    }

    /// The events of `wscodec` (not tokio's, say) whose message starts with
    /// `prefix`.
    fn find(&self, prefix: &str) -> Vec<Captured> {
        self.events()
            .into_iter()
            .filter(|e| e.message().starts_with(prefix))
            .collect()
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("wscodec")
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = Fields::default();
        span.record(&mut fields);
        let name = span.metadata().name().to_string();
        self.state
            .lock()
            .unwrap()
            .spans
            .insert(id, (name, fields.0));
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        let mut state = self.state.lock().unwrap();
        if let Some((_, existing)) = state.spans.get_mut(&span.into_u64()) {
            existing.extend(fields.0);
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut state = self.state.lock().unwrap();
        let parent = match event.parent() {
            Some(id) => Some(id.into_u64()),
            None if event.is_contextual() => state.stack.last().copied(),
            None => None,
        };
        let span = parent.and_then(|id| state.spans.get(&id).cloned());
        state.events.push(Captured {
            level: *event.metadata().level(),
            fields: fields.0,
            span,
        });
    }

    fn enter(&self, span: &Id) {
        self.state.lock().unwrap().stack.push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut state = self.state.lock().unwrap();
        if let Some(at) = state.stack.iter().rposition(|id| *id == span.into_u64()) {
            state.stack.remove(at);
        }
    }
}

/// Installs a recorder for the current thread (the tests' runtime is
/// single-threaded, so every task of the test reports to it).
fn record() -> (Recorder, tracing::subscriber::DefaultGuard) {
    let recorder = Recorder::default();
    let guard = tracing::subscriber::set_default(recorder.clone());
    (recorder, guard)
}

fn in_connection_span(event: &Captured, role: &str) {
    let (name, fields) = event.span.as_ref().expect("in a span");
    assert_eq!(name, "websocket", "{event:?}");
    assert_eq!(fields.get("role").map(String::as_str), Some(role));
}

#[tokio::test]
async fn the_peers_close_is_an_event_with_who_code_and_reason_in_the_connection_span() {
    let (recorder, _guard) = record();
    let (mut ws, mut raw) = server_with_raw_client(Config::default());
    ws.span()
        .record("peer", tracing::field::display("192.0.2.7:50312"));
    raw.write_all(&client_frame(true, 0x8, b"\x0f\xa0going home"))
        .await
        .unwrap();
    let peer = tokio::spawn(async move {
        let _ = read_server_frame(&mut raw).await;
        drop(raw);
    });
    assert!(ws.next().await.unwrap().unwrap().is_close());
    assert!(ws.next().await.is_none());
    peer.await.unwrap();

    let closes = recorder.find("close received");
    assert_eq!(closes.len(), 1, "{:?}", recorder.events());
    let close = &closes[0];
    assert_eq!(close.level, Level::DEBUG);
    assert_eq!(close.field("initiator"), Some("peer"));
    assert_eq!(close.field("code"), Some("4000"));
    assert_eq!(close.field("reason"), Some("going home"));
    in_connection_span(close, "Server");
    let span_fields = &close.span.as_ref().unwrap().1;
    assert_eq!(
        span_fields.get("peer").map(String::as_str),
        Some("192.0.2.7:50312")
    );
    assert_eq!(recorder.find("connection done").len(), 1);
}

#[tokio::test]
async fn a_close_we_start_is_an_event_with_initiator_local_from_any_path() {
    let (recorder, _guard) = record();
    let (client, mut server) = pair(Config::default());
    let (mut tx, mut rx) = client.split();
    // From the write half, outside any poll of the connection.
    tx.start_close(Some(CloseFrame::new(
        CloseCode::GOING_AWAY,
        "shutting down",
    )))
    .unwrap();
    let server_task = tokio::spawn(async move { while server.next().await.is_some() {} });
    while rx.next().await.is_some() {}
    server_task.await.unwrap();

    let sent = recorder.find("close sent");
    assert_eq!(sent.len(), 1, "{:?}", recorder.events());
    assert_eq!(sent[0].field("initiator"), Some("local"));
    assert_eq!(sent[0].field("code"), Some("1001"));
    assert_eq!(sent[0].field("reason"), Some("shutting down"));
    in_connection_span(&sent[0], "Client");
    // Each side saw the other's Close: the client its answer, the server
    // the peer's start.
    let received = recorder.find("close received");
    let initiators: Vec<_> = received
        .iter()
        .map(|e| {
            (
                e.span.as_ref().unwrap().1["role"].clone(),
                e.field("initiator"),
            )
        })
        .collect();
    assert!(
        initiators.contains(&("Client".into(), Some("local"))),
        "{initiators:?}"
    );
    assert!(
        initiators.contains(&("Server".into(), Some("peer"))),
        "{initiators:?}"
    );
}

#[tokio::test]
async fn a_bad_frame_is_a_protocol_error_event_with_the_close_code() {
    let (recorder, _guard) = record();
    let (mut ws, mut raw) = server_with_raw_client(Config::default());
    // Opcode 0x3 is reserved (§5.2).
    raw.write_all(&client_frame(true, 0x3, b"?")).await.unwrap();
    drop(raw);
    assert!(matches!(ws.next().await, Some(Err(Error::Protocol(_)))));

    let errors = recorder.find("protocol error");
    assert_eq!(errors.len(), 1, "{:?}", recorder.events());
    assert_eq!(errors[0].level, Level::DEBUG);
    assert_eq!(errors[0].field("code"), Some("1002"));
    assert!(
        errors[0].field("reason").unwrap().contains("opcode"),
        "{:?}",
        errors[0]
    );
    in_connection_span(&errors[0], "Server");
}

#[tokio::test]
async fn a_message_over_the_limit_is_a_limit_event_with_1009() {
    let (recorder, _guard) = record();
    let config = Config::default().limits(Limits::default().max_message_size(10));
    let (mut ws, mut raw) = server_with_raw_client(config);
    raw.write_all(&client_frame(true, 0x2, &[0; 11]))
        .await
        .unwrap();
    drop(raw);
    assert!(matches!(ws.next().await, Some(Err(Error::Capacity(_)))));
    let limits = recorder.find("limit exceeded");
    assert_eq!(limits.len(), 1, "{:?}", recorder.events());
    assert_eq!(limits[0].field("code"), Some("1009"));
}

#[tokio::test(start_paused = true)]
async fn idle_and_close_timeouts_are_events() {
    let (recorder, _guard) = record();
    let config = Config::default()
        .idle_timeout(Some(Duration::from_secs(5)))
        .close_timeout(Duration::from_secs(2));
    // The peer never reads nor answers: the idle timeout fails the
    // connection, then the close timeout ends the closing.
    let (mut ws, _raw) = server_with_raw_client(config);
    assert!(matches!(ws.next().await, Some(Err(Error::IdleTimeout))));
    assert!(ws.next().await.is_none());
    let idle = recorder.find("idle timeout");
    assert_eq!(idle.len(), 1, "{:?}", recorder.events());
    assert_eq!(idle[0].field("code"), Some("1001"));
    assert_eq!(recorder.find("close timeout").len(), 1);

    // A Close of ours that is never answered.
    let (mut ws, _raw) = server_with_raw_client(Config::default());
    ws.start_close(None).unwrap();
    assert!(matches!(
        ws.next().await,
        Some(Err(Error::AbnormalClosure(_)))
    ));
    let unanswered = recorder.find("close timeout: the peer did not answer");
    assert_eq!(unanswered.len(), 1, "{:?}", recorder.events());
    assert_eq!(unanswered[0].field("code"), Some("1006"));
}

#[tokio::test]
async fn a_peer_that_vanishes_is_an_abnormal_closure_event() {
    let (recorder, _guard) = record();
    let (mut ws, raw) = server_with_raw_client(Config::default());
    drop(raw);
    assert!(matches!(
        ws.next().await,
        Some(Err(Error::AbnormalClosure(_)))
    ));
    let abnormal = recorder.find("abnormal closure");
    assert_eq!(abnormal.len(), 1, "{:?}", recorder.events());
    assert_eq!(abnormal[0].field("code"), Some("1006"));
}

#[tokio::test]
async fn messages_flowing_emit_nothing_above_trace() {
    let (recorder, _guard) = record();
    let (mut client, mut server) = pair(Config::default());
    for i in 0..20 {
        client.send(Message::text(format!("m{i}"))).await.unwrap();
        client
            .send(Message::Ping(Bytes::from_static(b"p")))
            .await
            .unwrap();
        let prepared = wscodec::PreparedMessage::new(Message::binary(vec![i as u8])).unwrap();
        server.send_prepared(&prepared).await.unwrap();
    }
    for _ in 0..40 {
        server.next().await.unwrap().unwrap();
    }
    // The binaries; Pongs the server queued may come between them.
    let mut binaries = 0;
    while binaries < 20 {
        binaries += usize::from(client.next().await.unwrap().unwrap().is_binary());
    }
    let events = recorder.events();
    assert!(
        events.len() >= 100,
        "each message has its TRACE event: {}",
        events.len()
    );
    let loud: Vec<_> = events.iter().filter(|e| e.level != Level::TRACE).collect();
    assert!(loud.is_empty(), "{loud:?}");
    assert!(events.iter().all(|e| e.span.is_some()));
}

#[tokio::test]
async fn connect_url_records_the_servers_address_in_the_span_and_the_handshake_outcome() {
    let (recorder, _guard) = record();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wscodec::accept(tcp).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
    });
    let (mut ws, _) = wscodec::connect_url(&format!("ws://{addr}/"))
        .await
        .unwrap();
    ws.close().await.unwrap();
    while ws.next().await.is_some() {}
    server.await.unwrap();

    let sent = recorder.find("close sent");
    let ours = sent
        .iter()
        .find(|e| {
            e.span
                .as_ref()
                .and_then(|s| s.1.get("role"))
                .map(String::as_str)
                == Some("Client")
        })
        .unwrap_or_else(|| panic!("{:?}", recorder.events()));
    let peer = ours.span.as_ref().unwrap().1.get("peer").cloned();
    assert_eq!(peer, Some(addr.to_string()));
    let outcome = recorder
        .events()
        .into_iter()
        .filter(|e| e.field("status") == Some("101"))
        .count();
    assert!(
        outcome >= 2,
        "no 101 outcome on both sides: {:?}",
        recorder.events()
    );
}
