//! Helpers shared by the integration tests: raw frames as a peer would write
//! them, and connected pairs.
#![allow(dead_code)]

use tokio::io::{AsyncRead, AsyncReadExt, DuplexStream};
use wscodec::{Config, Role, WebSocket};

mod wire;

/// One frame on the wire as a client sends it (masked) or a server (unmasked).
/// `opcode` is the raw 4-bit value so tests can send reserved ones.
pub(crate) fn raw_frame(from: Role, fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = (from == Role::Client).then_some([0x12, 0x34, 0x56, 0x78]);
    wire::wire_frame(fin, 0, opcode, mask, payload)
}

/// A client frame (masked).
pub(crate) fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(Role::Client, fin, opcode, payload)
}

/// Reads one frame from a raw peer's end of any transport: (fin, opcode,
/// payload, unmasked if it was masked).
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(io: &mut R) -> Option<(bool, u8, Vec<u8>)> {
    let (fin, opcode, payload, _) = read_frame_masked(io).await?;
    Some((fin, opcode, payload))
}

/// Reads one unmasked frame (as a server sends it) from `io`:
/// (fin, opcode, payload).
pub(crate) async fn read_server_frame(io: &mut DuplexStream) -> Option<(bool, u8, Vec<u8>)> {
    let (fin, opcode, payload, masked) = read_frame_masked(io).await?;
    assert!(!masked, "a server must not mask");
    Some((fin, opcode, payload))
}

async fn read_frame_masked<R: AsyncRead + Unpin>(io: &mut R) -> Option<(bool, u8, Vec<u8>, bool)> {
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await.ok()?;
    let len = match head[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            io.read_exact(&mut b).await.ok()?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            io.read_exact(&mut b).await.ok()?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut key = None;
    if head[1] & 0x80 != 0 {
        let mut k = [0u8; 4];
        io.read_exact(&mut k).await.ok()?;
        key = Some(k);
    }
    let mut payload = vec![0u8; len as usize];
    io.read_exact(&mut payload).await.ok()?;
    if let Some(key) = key {
        wscodec::mask::apply_mask(&mut payload, key, 0);
    }
    Some((head[0] & 0x80 != 0, head[0] & 0x0F, payload, key.is_some()))
}

/// A server `WebSocket` and the raw client end of its transport.
pub(crate) fn server_with_raw_client(config: Config) -> (WebSocket<DuplexStream>, DuplexStream) {
    server_with_raw_client_over(config, 1 << 20)
}

/// Like [`server_with_raw_client`] over a pipe that holds only `capacity`
/// bytes, so that a client that does not read pushes back at once.
pub(crate) fn server_with_raw_client_over(
    config: Config,
    capacity: usize,
) -> (WebSocket<DuplexStream>, DuplexStream) {
    let (raw, io) = tokio::io::duplex(capacity);
    (WebSocket::from_upgraded(io, Role::Server, config), raw)
}

/// A connected client and server over an in-memory pipe.
pub(crate) fn pair(config: Config) -> (WebSocket<DuplexStream>, WebSocket<DuplexStream>) {
    let (a, b) = tokio::io::duplex(1 << 20);
    (
        WebSocket::from_upgraded(a, Role::Client, config.clone()),
        WebSocket::from_upgraded(b, Role::Server, config),
    )
}

/// The close code of a close frame's payload.
pub(crate) fn close_code(payload: &[u8]) -> u16 {
    u16::from_be_bytes([payload[0], payload[1]])
}
