//! The reference of the fan-out benchmark (`benches/fanout/run.sh`): the chat
//! fan-out of `examples/broadcast`, written with tokio-tungstenite in its
//! idiomatic style, the one of its own `server.rs` example: a peer map behind
//! a mutex, a channel per peer, `split()`, and `forward` from the channel into
//! the sink.
//!
//! ```text
//! cargo run --release --example fanout_tungstenite [ADDRESS]     # default 127.0.0.1:9003
//! ```
//!
//! Same protocol as `examples/broadcast` for what the benchmark uses
//! (`/ws/ROOM?name=NAME`; welcome, join, leave and message events as the same
//! JSON), the same bounded queue of 256 messages per member (a member whose
//! queue is full is dropped), and the same kernel send buffer per connection,
//! so that the two differ only in the library. Each broadcast is one
//! `Message` whose text is shared, but each connection frames it into its own
//! write buffer. No page, Origin check or connection limit.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::{future, pin_mut, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// Messages queued per member before it is dropped, as `examples/broadcast`.
const QUEUE: usize = 256;
/// `SO_SNDBUF` of each connection, as `examples/broadcast`.
const SEND_BUFFER: u32 = 64 << 10;

struct Peer {
    name: String,
    tx: mpsc::Sender<Message>,
}

type Rooms = Arc<Mutex<HashMap<String, HashMap<SocketAddr, Peer>>>>;

fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Sends `message` to every peer of the room; drops the peers that are full.
fn broadcast(peers: &mut HashMap<SocketAddr, Peer>, message: &Message) {
    peers.retain(|_, peer| {
        !matches!(
            peer.tx.try_send(message.clone()),
            Err(mpsc::error::TrySendError::Full(_))
        )
    });
}

fn presence(kind: &str, name: &str, members: usize) -> Message {
    let mut json = format!(r#"{{"type":"{kind}","name":"#);
    json_string(&mut json, name);
    let _ = write!(json, r#","members":{members},"time":{}}}"#, now_millis());
    Message::text(json)
}

async fn handle_connection(rooms: Rooms, raw_stream: TcpStream, addr: SocketAddr) {
    let _ = raw_stream.set_nodelay(true);
    let mut target = String::new();
    #[allow(clippy::result_large_err)] // the signature tungstenite asks for
    let callback = |request: &Request, response: Response| {
        target = request.uri().to_string();
        Ok(response)
    };
    let ws_stream = match tokio_tungstenite::accept_hdr_async(raw_stream, callback).await {
        Ok(ws) => ws,
        Err(e) => return eprintln!("{addr}: {e}"),
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let Some(room) = path.strip_prefix("/ws/").map(str::to_owned) else {
        return;
    };
    let name = query
        .split('&')
        .find_map(|p| p.strip_prefix("name="))
        .unwrap_or("anonymous")
        .to_owned();

    let (tx, mut rx) = mpsc::channel(QUEUE);
    {
        let mut rooms = rooms.lock().unwrap();
        let peers = rooms.entry(room.clone()).or_default();
        let mut welcome = String::from(r#"{"type":"welcome","room":"#);
        json_string(&mut welcome, &room);
        welcome.push_str(r#","name":"#);
        json_string(&mut welcome, &name);
        welcome.push_str(r#","members":["#);
        for peer in peers.values() {
            json_string(&mut welcome, &peer.name);
            welcome.push(',');
        }
        json_string(&mut welcome, &name);
        let _ = write!(welcome, r#"],"time":{}}}"#, now_millis());
        let _ = tx.try_send(Message::text(welcome));
        broadcast(peers, &presence("join", &name, peers.len() + 1));
        peers.insert(
            addr,
            Peer {
                name: name.clone(),
                tx,
            },
        );
    }

    let (outgoing, incoming) = ws_stream.split();
    let broadcast_incoming = incoming.try_for_each(|msg| {
        let message = match msg {
            Message::Text(text) => {
                let mut json = String::from(r#"{"type":"message","name":"#);
                json_string(&mut json, &name);
                json.push_str(r#","text":"#);
                json_string(&mut json, &text);
                let _ = write!(json, r#","time":{}}}"#, now_millis());
                Some(Message::text(json))
            }
            binary @ Message::Binary(_) => Some(binary),
            _ => None,
        };
        if let Some(message) = message {
            if let Some(peers) = rooms.lock().unwrap().get_mut(&room) {
                broadcast(peers, &message);
            }
        }
        future::ok(())
    });
    let receive_from_others = futures::stream::poll_fn(|cx| rx.poll_recv(cx))
        .map(Ok)
        .forward(outgoing);
    pin_mut!(broadcast_incoming, receive_from_others);
    future::select(broadcast_incoming, receive_from_others).await;

    let mut rooms = rooms.lock().unwrap();
    if let Some(peers) = rooms.get_mut(&room) {
        if peers.remove(&addr).is_some() && !peers.is_empty() {
            let notice = presence("leave", &name, peers.len());
            broadcast(peers, &notice);
        }
        if peers.is_empty() {
            rooms.remove(&room);
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9003".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_send_buffer_size(SEND_BUFFER)?;
    socket.bind(addr)?;
    let listener: TcpListener = socket.listen(1024)?;
    println!(
        "tokio-tungstenite chat listening on ws://{}/ws/ROOM",
        listener.local_addr()?
    );
    let rooms = Rooms::default();
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                tokio::spawn(handle_connection(rooms.clone(), stream, addr));
            }
            // A connection reset before it was accepted, or out of descriptors.
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}
