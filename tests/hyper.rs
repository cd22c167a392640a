//! A hyper 1.x server performs the HTTP upgrade and hands the connection to
//! `WebSocket::from_upgraded`; the crate's client talks to it.
// The example's items are `pub` for this file, which includes it as a module.
#![allow(unreachable_pub)]

#[allow(dead_code)]
#[path = "../examples/hyper_echo.rs"]
mod hyper_echo;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wscodec::{Error, HandshakeError, Message};

async fn start() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(hyper_echo::serve(listener));
    addr
}

#[tokio::test]
async fn client_talks_to_websocket_upgraded_by_hyper() {
    let addr = start().await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, response) = wscodec::connect(tcp, &format!("ws://{addr}/ws"))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    for message in [
        Message::text("via hyper"),
        Message::binary(vec![1u8; 70_000]),
    ] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), message);
    }
    ws.close().await.unwrap();
    while ws.next().await.is_some() {}
}

#[tokio::test]
async fn hyper_route_without_websocket_gets_its_own_status() {
    let addr = start().await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let err = wscodec::connect(tcp, &format!("ws://{addr}/elsewhere"))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Handshake(HandshakeError::UnexpectedStatus(ref r)) if r.status() == 404
    ));
}

#[tokio::test]
async fn hyper_answers_a_bad_upgrade_with_the_crates_status() {
    let addr = start().await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tcp.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("sec-websocket-version: 13\r\n"),
        "{answer}"
    );
}

/// Issue 13: the http path used to skip permessage-deflate, so a hyper user
/// had to call `set_deflate` by hand. One negotiation now feeds the 101 and
/// the connection.
#[cfg(feature = "deflate")]
#[tokio::test]
async fn hyper_echo_negotiates_and_runs_permessage_deflate() {
    let addr = start().await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let config =
        wscodec::Config::default().deflate(Some(wscodec::deflate::DeflateConfig::default()));
    let request = wscodec::ClientRequest::new(&format!("ws://{addr}/ws")).unwrap();
    let (mut ws, response) = wscodec::connect_with(tcp, request, config).await.unwrap();
    let answer = response.headers().get("sec-websocket-extensions").unwrap();
    assert!(answer.starts_with("permessage-deflate"), "{answer}");
    let text = Message::text("compress me ".repeat(1000));
    ws.send(text.clone()).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), text);
    ws.close().await.unwrap();
    while ws.next().await.is_some() {}
}

/// The first byte and the payload of one frame as a server sends it.
#[cfg(feature = "deflate")]
async fn read_server_frame(io: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await.unwrap();
    assert_eq!(head[1] & 0x80, 0, "a server must not mask");
    let len = match head[1] & 0x7F {
        126 => u64::from(io.read_u16().await.unwrap()),
        127 => io.read_u64().await.unwrap(),
        n => u64::from(n),
    };
    assert!(len < 1 << 20, "frame of {len} bytes");
    let mut payload = vec![0u8; len as usize];
    io.read_exact(&mut payload).await.unwrap();
    (head[0], payload)
}

/// On the wire, not only in the headers: the 101 that hyper sends names
/// permessage-deflate, and the echo of a large repetitive message comes back
/// with RSV1 set (RFC 7692 §6) in a small fraction of its size.
#[cfg(feature = "deflate")]
#[tokio::test]
async fn hyper_echo_compresses_on_the_wire_when_the_client_offers_deflate() {
    let addr = start().await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("\r\nsec-websocket-extensions: permessage-deflate"),
        "{head}"
    );

    // Sent uncompressed (RSV1 clear is allowed per message) and masked.
    let text = "{\"user\":\"alice\",\"text\":\"hello\"} ".repeat(2000);
    let key = [9u8, 8, 7, 6];
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&(text.len() as u64).to_be_bytes());
    frame.extend_from_slice(&key);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ key[i % 4]));
    tcp.write_all(&frame).await.unwrap();

    let (first, payload) = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        read_server_frame(&mut tcp),
    )
    .await
    .expect("no echo");
    assert_eq!(first & 0x0F, 0x1, "a text frame");
    assert_eq!(first & 0x40, 0x40, "RSV1: compressed");
    assert!(
        payload.len() * 20 < text.len(),
        "{} bytes on the wire for {}",
        payload.len(),
        text.len()
    );
}
