//! Interoperability with tokio-tungstenite in both directions: our server with
//! their client, their server with our client.

use std::net::SocketAddr;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{
    CloseCode as TCloseCode, Data, OpCode as TOpCode,
};
use tokio_tungstenite::tungstenite::protocol::frame::Frame as TFrame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as TCloseFrame;
use tokio_tungstenite::tungstenite::Message as TMessage;
use wscodec::{CloseCode, Config, Message};

const SIZES: [usize; 6] = [0, 125, 126, 65535, 65536, 1 << 20];

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Our echo server on loopback; it ends after one connection and returns what
/// it received.
async fn our_echo_server() -> (SocketAddr, tokio::task::JoinHandle<Vec<Message>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wscodec::accept(tcp).await.unwrap();
        let mut received = Vec::new();
        while let Some(m) = ws.next().await {
            let m = m.unwrap();
            if !m.is_control() {
                ws.send(m.clone()).await.unwrap();
            }
            received.push(m);
        }
        received
    });
    (addr, task)
}

#[tokio::test]
async fn their_client_with_our_server_text_and_binary_of_every_size() {
    let (addr, server) = our_echo_server().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    for len in SIZES {
        let text = String::from_utf8(payload(len)).unwrap();
        ws.send(TMessage::text(text.clone())).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), TMessage::text(text));
        ws.send(TMessage::binary(payload(len))).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            TMessage::binary(payload(len))
        );
    }
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    drop(ws);
    assert_eq!(server.await.unwrap().len(), 2 * SIZES.len() + 1);
}

#[tokio::test]
async fn their_client_fragmented_message_and_ping_reach_our_server() {
    let (addr, server) = our_echo_server().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    ws.send(TMessage::Frame(TFrame::message(
        "frag",
        TOpCode::Data(Data::Text),
        false,
    )))
    .await
    .unwrap();
    // A ping between fragments is answered at once.
    ws.send(TMessage::Ping("hello?".into())).await.unwrap();
    ws.send(TMessage::Frame(TFrame::message(
        "men",
        TOpCode::Data(Data::Continue),
        false,
    )))
    .await
    .unwrap();
    ws.send(TMessage::Frame(TFrame::message(
        "ted",
        TOpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        TMessage::Pong("hello?".into())
    );
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        TMessage::text("fragmented")
    );
    // Close with a code and reason: our server echoes the code.
    ws.send(TMessage::Close(Some(TCloseFrame {
        code: TCloseCode::from(4001),
        reason: "done here".into(),
    })))
    .await
    .unwrap();
    let mut reply = None;
    while let Some(Ok(m)) = ws.next().await {
        if let TMessage::Close(frame) = m {
            reply = frame;
        }
    }
    assert_eq!(reply.unwrap().code, TCloseCode::from(4001));
    drop(ws);
    let received = server.await.unwrap();
    assert_eq!(
        received,
        vec![
            Message::Ping("hello?".into()),
            Message::text("fragmented"),
            Message::close(CloseCode(4001), "done here"),
        ]
    );
}

/// Their echo server on loopback, for one connection.
async fn their_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        while let Some(Ok(m)) = ws.next().await {
            if m.is_text() || m.is_binary() {
                ws.send(m).await.unwrap();
            }
        }
    });
    addr
}

async fn our_client(addr: SocketAddr, config: Config) -> wscodec::WebSocket<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let request = wscodec::ClientRequest::new(&format!("ws://{addr}/")).unwrap();
    wscodec::connect_with(tcp, request, config).await.unwrap().0
}

#[tokio::test]
async fn our_client_with_their_server_text_and_binary_of_every_size() {
    let addr = their_echo_server().await;
    let mut ws = our_client(addr, Config::default()).await;
    for len in SIZES {
        let text = Message::text(String::from_utf8(payload(len)).unwrap());
        ws.send(text.clone()).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), text);
        let binary = Message::binary(payload(len));
        ws.send(binary.clone()).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), binary);
    }
}

#[tokio::test]
async fn our_client_fragments_ping_and_close_with_their_server() {
    let addr = their_echo_server().await;
    let mut ws = our_client(addr, Config::default().fragment_size(Some(1000))).await;
    let big = Message::text("ß".repeat(40_000));
    ws.send(big.clone()).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), big);
    ws.send(Message::Ping("are you there".into()))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Pong("are you there".into())
    );
    ws.send(Message::close(CloseCode(4002), "bye now"))
        .await
        .unwrap();
    let mut last = None;
    while let Some(m) = ws.next().await {
        last = Some(m.unwrap());
    }
    match last {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode(4002)),
        other => panic!("expected their close reply, got {other:?}"),
    }
}
