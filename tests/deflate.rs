//! permessage-deflate (RFC 7692) over real handshakes: negotiation in both
//! roles, compressed messages both ways (whole and fragmented), what stays
//! uncompressed, and a deflate bomb against the message limit.

mod common;

use common::{close_code, read_server_frame};
use flate2::{Compress, Compression, FlushCompress};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use wscodec::deflate::DeflateConfig;
use wscodec::handshake::{Accept, Request};
use wscodec::mask::apply_mask;
use wscodec::{ClientRequest, Config, Error, HandshakeError, Limits, Message, WebSocket};

fn deflate_config() -> Config {
    Config::default().deflate(Some(DeflateConfig::default()))
}

async fn pair(
    server: Config,
    client: Config,
) -> (WebSocket<DuplexStream>, WebSocket<DuplexStream>) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let server = tokio::spawn(wscodec::accept_with(b, server, |_: &Request| {
        Ok(Accept::new())
    }));
    let request = ClientRequest::new("ws://localhost/").unwrap();
    let (client, response) = wscodec::connect_with(a, request, client).await.unwrap();
    // The server's default windows (deflate::SERVER_WINDOW_BITS); the
    // client's offer sets no limits.
    assert_eq!(
        response.headers().get("sec-websocket-extensions"),
        Some("permessage-deflate; server_max_window_bits=13; client_max_window_bits=13")
    );
    (client, server.await.unwrap().unwrap())
}

fn json_like(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"id":{i},"user":"user{}","text":"hello from the chat room"}}"#,
                i % 7
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test]
async fn compressed_messages_flow_both_ways_whole_and_fragmented() {
    for fragment_size in [None, Some(100)] {
        let config = deflate_config().fragment_size(fragment_size);
        let (mut client, mut server) = pair(config.clone(), config).await;
        for m in [
            Message::text(json_like(200)),
            Message::binary(json_like(50).into_bytes()),
            Message::text(""),
            Message::text("short"),
            Message::text(json_like(200)),
        ] {
            client.send(m.clone()).await.unwrap();
            assert_eq!(server.next().await.unwrap().unwrap(), m);
            server.send(m.clone()).await.unwrap();
            assert_eq!(client.next().await.unwrap().unwrap(), m);
        }
    }
}

/// A raw client that offers permessage-deflate; returns the pipe after the 101.
async fn raw_client_with_deflate(
    server_config: Config,
) -> (
    DuplexStream,
    tokio::task::JoinHandle<Result<WebSocket<DuplexStream>, Error>>,
) {
    let (mut raw, io) = tokio::io::duplex(1 << 22);
    let server = tokio::spawn(wscodec::accept_with(io, server_config, |_: &Request| {
        Ok(Accept::new())
    }));
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(raw.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap();
    assert!(
        head.contains("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=13; client_max_window_bits=13\r\n"),
        "{head}"
    );
    (raw, server)
}

/// Reads a frame's first byte too, to see its RSV bits.
async fn read_frame_with_rsv(raw: &mut DuplexStream) -> (u8, u8, Vec<u8>) {
    let mut first = [0u8; 1];
    raw.read_exact(&mut first).await.unwrap();
    let len = match raw.read_u8().await.unwrap() & 0x7F {
        126 => u64::from(raw.read_u16().await.unwrap()),
        127 => raw.read_u64().await.unwrap(),
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    raw.read_exact(&mut payload).await.unwrap();
    ((first[0] >> 4) & 0x7, first[0] & 0x0F, payload)
}

#[tokio::test]
async fn large_messages_are_compressed_small_ones_and_control_frames_are_not() {
    let (mut raw, server) = raw_client_with_deflate(deflate_config()).await;
    let mut ws = server.await.unwrap().unwrap();
    let big = json_like(300);
    ws.send(Message::text(big.clone())).await.unwrap();
    ws.send(Message::text("tiny")).await.unwrap();
    ws.send(Message::Ping("p".into())).await.unwrap();
    let (rsv, opcode, payload) = read_frame_with_rsv(&mut raw).await;
    assert_eq!((rsv, opcode), (0b100, 0x1));
    assert!(
        payload.len() < big.len() / 4,
        "{} of {}",
        payload.len(),
        big.len()
    );
    let mut inflated = Vec::new();
    let mut inflater = flate2::Decompress::new(false);
    let mut input = payload.clone();
    input.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
    inflated.reserve(big.len() + 64);
    inflater
        .decompress_vec(&input, &mut inflated, flate2::FlushDecompress::Sync)
        .unwrap();
    assert_eq!(inflated, big.as_bytes());
    assert_eq!(
        read_frame_with_rsv(&mut raw).await,
        (0, 0x1, b"tiny".to_vec())
    );
    assert_eq!(read_frame_with_rsv(&mut raw).await, (0, 0x9, b"p".to_vec()));
}

fn masked(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
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
    let key = [9, 8, 7, 6];
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
    out
}

fn deflate_raw(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(data.len() / 100 + 1024);
    c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&[0, 0, 0xFF, 0xFF]));
    out.truncate(out.len() - 4);
    out
}

#[tokio::test]
async fn deflate_bomb_closes_with_1009_without_inflating_past_the_limit() {
    let limit = 1 << 20;
    let config = deflate_config().limits(Limits::default().max_message_size(limit));
    let (mut raw, server) = raw_client_with_deflate(config).await;
    let mut ws = server.await.unwrap().unwrap();
    // 16 MiB of zeros in about 16 KiB, against a 1 MiB limit.
    let bomb = deflate_raw(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < 32 << 10);
    raw.write_all(&masked(0x80 | 0x40 | 0x2, &bomb))
        .await
        .unwrap();
    let peer = tokio::spawn(async move { read_server_frame(&mut raw).await });
    let err = ws.next().await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Capacity(_)), "{err:?}");
    let (_, op, payload) = peer.await.unwrap().unwrap();
    assert_eq!((op, close_code(&payload)), (0x8, 1009));
}

#[tokio::test]
async fn rsv1_on_a_continuation_frame_closes_with_1002() {
    let (mut raw, server) = raw_client_with_deflate(deflate_config()).await;
    let mut ws = server.await.unwrap().unwrap();
    let part = deflate_raw(b"hello hello hello");
    raw.write_all(&masked(0x40 | 0x1, &part[..3]))
        .await
        .unwrap();
    raw.write_all(&masked(0x80 | 0x40, &part[3..]))
        .await
        .unwrap();
    let peer = tokio::spawn(async move { read_server_frame(&mut raw).await });
    assert!(matches!(ws.next().await.unwrap(), Err(Error::Protocol(_))));
    let (_, op, payload) = peer.await.unwrap().unwrap();
    assert_eq!((op, close_code(&payload)), (0x8, 1002));
}

#[tokio::test]
async fn corrupt_compressed_data_closes_with_1007() {
    let (mut raw, server) = raw_client_with_deflate(deflate_config()).await;
    let mut ws = server.await.unwrap().unwrap();
    raw.write_all(&masked(0x80 | 0x40 | 0x2, &[0xFF, 0xFF, 0xFF]))
        .await
        .unwrap();
    let peer = tokio::spawn(async move { read_server_frame(&mut raw).await });
    assert!(matches!(ws.next().await.unwrap(), Err(Error::Protocol(_))));
    let (_, op, payload) = peer.await.unwrap().unwrap();
    assert_eq!((op, close_code(&payload)), (0x8, 1007));
}

#[tokio::test]
async fn server_without_deflate_config_ignores_the_offer() {
    let (mut raw, io) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(wscodec::accept(io));
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = raw.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 101"));
    assert!(!head.contains("Extensions"), "{head}");
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn client_fails_on_a_response_that_breaks_its_offer() {
    let (a, mut raw) = tokio::io::duplex(1 << 16);
    let config = Config::default().deflate(Some(
        DeflateConfig::default().server_no_context_takeover(true),
    ));
    let client = tokio::spawn(wscodec::connect_with(
        a,
        ClientRequest::new("ws://x/").unwrap(),
        config,
    ));
    let mut buf = vec![0u8; 4096];
    let n = raw.read(&mut buf).await.unwrap();
    let request = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(request.contains("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits\r\n"), "{request}");
    let key = request
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap()
        .trim()
        .to_owned();
    // The server drops server_no_context_takeover, which it must echo.
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        wscodec::handshake::derive_accept_key(key.as_bytes())
    );
    raw.write_all(response.as_bytes()).await.unwrap();
    let err = client.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Handshake(HandshakeError::UnexpectedNegotiation(_))
        ),
        "{err:?}"
    );
}
