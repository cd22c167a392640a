use bytes::Bytes;

use super::core::truncate_reason;
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
