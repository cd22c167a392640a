//! Chat server: rooms over WebSocket, with its own one-page web client.
//!
//! ```text
//! cargo run --release --example broadcast [ADDRESS] [OPTIONS]     # default 127.0.0.1:9002
//! ```
//!
//! It prints its URL; open it in two browser tabs, pick a name, and chat. The
//! page (HTML, CSS and JavaScript embedded in the binary) shows the connection
//! status and reconnects by itself, with backoff, when the connection drops.
//!
//! # Options
//!
//! | flag | environment variable | default | meaning |
//! |---|---|---|---|
//! | `ADDRESS` | `BROADCAST_ADDR` | `127.0.0.1:9002` | where to listen (`127.0.0.1:0`: any free port) |
//! | `--max-connections N` | `BROADCAST_MAX_CONNECTIONS` | 1000 | WebSocket connections open at once; one more gets HTTP 503 |
//! | `--allow-origin ORIGIN` (repeatable) | `BROADCAST_ALLOWED_ORIGINS` (comma-separated) | the server's own origin | browser origins allowed to connect; `*` allows any |
//! | `--queue N` | `BROADCAST_QUEUE` | 256 | messages waiting for one client before it is dropped as too slow |
//!
//! A flag wins over its variable. The Origin check stops other web sites from
//! opening a chat connection from their pages with the visitor's browser
//! (cross-site WebSocket hijacking); by default only pages served by this
//! server (`Origin` equal to `http://` + `Host`) may connect. A request without
//! `Origin` does not come from a browser page and is let through: a non-browser
//! client could send any `Origin` it liked anyway.
//!
//! # Routes
//!
//! - `GET /`: the page; `GET /chat.css`, `GET /chat.js`: its style and script.
//! - `GET /ws/ROOM?name=NAME`: a WebSocket into room `ROOM` (1 to 32 of
//!   `A-Z a-z 0-9 _ -`) as `NAME` (percent-encoded; at most 32 characters,
//!   `anonymous` if empty).
//!
//! # Protocol
//!
//! The client sends text messages (chat lines, as typed) and binary messages.
//! Each text message goes to every member of the room, the sender included, as
//! a JSON object with the sender's name and the server's time (milliseconds
//! since the Unix epoch); binary messages are relayed as they are, as binary.
//! A text message `/name NEW` renames the sender instead (as on IRC). The
//! server sends:
//!
//! ```text
//! {"type":"welcome","room":"lobby","name":"alice","members":["bob","alice"],"time":1700000000000}   to the new member
//! {"type":"join","name":"alice","members":2,"time":1700000000000}                                  to the others
//! {"type":"message","name":"alice","text":"hi","time":1700000000000}                               to all
//! {"type":"rename","from":"alice","name":"Alice","time":1700000000000}                             to all
//! {"type":"leave","name":"alice","members":1,"time":1700000000000}                                 to the others
//! {"type":"leave","name":"carol","members":1,"reason":"too slow","time":1700000000000}             when dropped
//! ```
//!
//! Names are not unique: they say who wrote what, they are not accounts.
//!
//! # Close codes and refusals
//!
//! | when | what the client gets |
//! |---|---|
//! | the server shuts down (Ctrl-C or SIGTERM) | close **1001** (going away) |
//! | the client fell `--queue` messages behind | close **1008** (policy violation), reason `too slow`, after what was already queued for it |
//! | a message over 64 KiB | close 1009 (message too big) |
//! | nothing received for 90 s (pings go out every 30 s) | close 1001 |
//! | `Origin` not allowed | HTTP 403 |
//! | `--max-connections` reached | HTTP 503 with `Retry-After` |
//! | a path other than the above | HTTP 404 |
//!
//! 1008 and not 1013 (try again later) for a slow client: the cause is the
//! client's (it does not read fast enough), not a passing overload of the
//! server, and reconnecting at once would only repeat it. The page reconnects
//! after its backoff all the same.
//!
//! # Design
//!
//! - The server reads each HTTP request head itself, with the crate's sans-IO
//!   parser ([`HeadScanner`], [`Request::parse`]): a plain `GET /` gets the page,
//!   a `/ws/ROOM` upgrade is validated ([`Request::validate`]), answered
//!   ([`Accept::write_response`]) and handed to [`WebSocket::from_parts`] with
//!   whatever bytes arrived behind the head. One socket, one parser, no HTTP
//!   framework.
//! - Fan-out encodes once: each broadcast is one [`PreparedMessage`], whose
//!   frame bytes every recipient's connection queues by reference count (no
//!   copy per recipient).
//! - No client can stall the others: the broadcaster only `try_send`s into each
//!   member's bounded queue. A member whose queue is full is removed from the
//!   room at once and its connection closes with 1008; its writer was waiting
//!   on its socket, never on the broadcaster. What can wait for one member is
//!   bounded: its queue, its WebSocket write buffer (128 KiB) and a fixed
//!   kernel send buffer ([`listen`]), so one that stops reading is found out
//!   after at most that much, not after megabytes of kernel autotuning.
//! - One lock over all rooms, held for a `try_send` per member (tens of
//!   nanoseconds each) and never across an `.await`: every member of a room
//!   sees the room's messages in the same order, so each sender's messages
//!   arrive in the order sent.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use wscodec::handshake::{Accept, Reject, Request};
use wscodec::{accept_request, read_request};
use wscodec::{
    CloseCode, CloseFrame, Config, Error, Limits, Message, PreparedMessage, ReadHalf, WebSocket,
    WriteHalf,
};

const INDEX_HTML: &str = include_str!("index.html");
const CHAT_CSS: &str = include_str!("chat.css");
const CHAT_JS: &str = include_str!("chat.js");

/// The largest message (text or binary) a client may send; more closes with 1009.
pub const MAX_MESSAGE_BYTES: usize = 64 << 10;
/// The longest name kept, in characters.
const MAX_NAME_CHARS: usize = 32;
/// How long a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing one connection may take (our Close out, the peer's back),
/// including waiting for a slow client's backlog to leave.
pub const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// The kernel send buffer of each connection (`SO_SNDBUF`; Linux books twice
/// this), instead of one that autotuning grows up to `net.ipv4.tcp_wmem`'s
/// maximum (4 MiB by default) for a client that stops reading.
pub const SEND_BUFFER: u32 = 64 << 10;

/// Close code for a client dropped because it fell too far behind.
pub const TOO_SLOW: CloseCode = CloseCode::POLICY_VIOLATION;
/// Close code for every client when the server shuts down.
pub const SHUTTING_DOWN: CloseCode = CloseCode::GOING_AWAY;

const USAGE: &str = "usage: broadcast [ADDRESS] [--max-connections N] [--allow-origin ORIGIN]... [--queue N]
  ADDRESS                 where to listen (env BROADCAST_ADDR; default 127.0.0.1:9002)
  --max-connections N     WebSocket connections at once (env BROADCAST_MAX_CONNECTIONS; default 1000)
  --allow-origin ORIGIN   allowed browser Origin, repeatable; * for any
                          (env BROADCAST_ALLOWED_ORIGINS, comma-separated; default: this server's own)
  --queue N               messages queued per client before it is dropped as too slow
                          (env BROADCAST_QUEUE; default 256)";

/// Which browser origins may open a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// Only pages this server served: `Origin` is `http://` or `https://` + `Host`.
    SameHost,
    /// Any origin.
    Any,
    /// Exactly these (compared without case, as `http://host:port`).
    List(Vec<String>),
}

/// The server's settings; see the module docs for the flags and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where to listen.
    pub addr: String,
    /// WebSocket connections open at once.
    pub max_connections: usize,
    /// Browser origins allowed to connect.
    pub origins: Origins,
    /// Messages queued per client before it is dropped as too slow.
    pub queue_capacity: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            addr: "127.0.0.1:9002".into(),
            max_connections: 1000,
            origins: Origins::SameHost,
            queue_capacity: 256,
        }
    }
}

impl Options {
    /// Reads the options from command-line `args` (without the program name)
    /// over the environment (`env` looks a variable up). `Ok(None)` means help
    /// was asked for.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Options>, String> {
        let mut options = Options::default();
        if let Some(addr) = env("BROADCAST_ADDR") {
            options.addr = addr;
        }
        if let Some(n) = env("BROADCAST_MAX_CONNECTIONS") {
            options.max_connections = positive("BROADCAST_MAX_CONNECTIONS", &n)?;
        }
        if let Some(list) = env("BROADCAST_ALLOWED_ORIGINS") {
            options.origins = origins(list.split(',').map(str::trim).filter(|o| !o.is_empty()));
        }
        if let Some(n) = env("BROADCAST_QUEUE") {
            options.queue_capacity = positive("BROADCAST_QUEUE", &n)?;
        }

        let mut allowed = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value)),
                _ => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .map(str::to_owned)
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "-h" | "--help" => return Ok(None),
                "--max-connections" => options.max_connections = positive(&flag, &value()?)?,
                "--queue" => options.queue_capacity = positive(&flag, &value()?)?,
                "--allow-origin" => allowed.push(value()?),
                _ if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
                _ => options.addr = arg,
            }
        }
        if !allowed.is_empty() {
            options.origins = origins(allowed.iter().map(String::as_str));
        }
        Ok(Some(options))
    }

    fn origin_allowed(&self, request: &Request) -> bool {
        let Some(origin) = request.header("origin") else {
            return true; // not a browser page
        };
        match &self.origins {
            Origins::Any => true,
            Origins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
            Origins::SameHost => {
                let host = request.header("host").unwrap_or_default();
                let origin_host = origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"));
                origin_host.is_some_and(|h| h.eq_ignore_ascii_case(host))
            }
        }
    }
}

fn positive(what: &str, value: &str) -> Result<usize, String> {
    match value.trim().parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{what}: expected a positive number, got {value:?}")),
    }
}

fn origins<'a>(list: impl Iterator<Item = &'a str>) -> Origins {
    let list: Vec<String> = list.map(|o| o.trim_end_matches('/').to_owned()).collect();
    if list.iter().any(|o| o == "*") {
        Origins::Any
    } else {
        Origins::List(list)
    }
}

/// Listens on `addr` (the first of its addresses that binds). Its connections
/// have a fixed kernel send buffer of [`SEND_BUFFER`] bytes rather than one
/// that grows to megabytes for a client that stops reading: a member's backlog
/// is then its queue, its write buffer and this, and a client that stops
/// reading is found out (and dropped) after a bounded amount of data.
pub async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As `TcpListener::bind` does: a restarted server can bind at once.
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        // Accepted sockets inherit it from the listening socket.
        socket.set_send_buffer_size(SEND_BUFFER)?;
        match socket.bind(addr) {
            Ok(()) => return socket.listen(1024),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    }))
}

/// Runs the chat server on `listener` until `shutdown` completes, then closes
/// every connection with 1001 (waiting at most [`CLOSE_GRACE`] for them) and
/// returns.
pub async fn serve(
    listener: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let server = Arc::new(Server {
        hub: Hub::default(),
        slots: Arc::new(Semaphore::new(options.max_connections)),
        shutdown: CancellationToken::new(),
        options,
    });
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(handle(tcp, peer, server.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, say: wait for some to be given back.
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    server.shutdown.cancel();
    let closing = async { while connections.join_next().await.is_some() {} };
    if timeout(CLOSE_GRACE + Duration::from_secs(1), closing)
        .await
        .is_err()
    {
        connections.shutdown().await;
    }
    Ok(())
}

struct Server {
    hub: Hub,
    /// One permit per open WebSocket connection.
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    options: Options,
}

/// One TCP connection: read the request head, then serve the page or upgrade.
async fn handle(mut tcp: TcpStream, peer: SocketAddr, server: Arc<Server>) {
    let _ = tcp.set_nodelay(true);
    let limits = Limits::default();
    let head = tokio::select! {
        head = timeout(HEAD_TIMEOUT, read_request(&mut tcp, &limits)) => head,
        () = server.shutdown.cancelled() => return,
    };
    let (request, rest) = match head {
        Ok(Ok(head)) => head,
        Ok(Err(Error::Handshake(e))) if e.status() >= 400 => {
            return reject(tcp, Reject::from_error(&e)).await;
        }
        Ok(Err(_)) | Err(_) => return, // closed, or too slow to send a head
    };
    let result = match route(request.path()) {
        Route::Asset(content_type, body) if matches!(request.method(), "GET" | "HEAD") => {
            respond(tcp, content_type, body, request.method() == "HEAD").await
        }
        Route::Asset(..) => {
            reject(tcp, Reject::new(405).header("Allow", "GET, HEAD")).await;
            Ok(())
        }
        Route::Room(room) => upgrade(tcp, &request, rest, room, &server).await,
        Route::NotFound => {
            reject(tcp, Reject::new(404).body("not found")).await;
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("{peer}: {e}");
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Asset(&'static str, &'static str),
    Room(&'a str),
    NotFound,
}

fn route(path: &str) -> Route<'_> {
    match path {
        "/" | "/index.html" => Route::Asset("text/html; charset=utf-8", INDEX_HTML),
        "/chat.css" => Route::Asset("text/css; charset=utf-8", CHAT_CSS),
        "/chat.js" => Route::Asset("text/javascript; charset=utf-8", CHAT_JS),
        _ => match path.strip_prefix("/ws/") {
            Some(room) if valid_room(room) => Route::Room(room),
            _ => Route::NotFound,
        },
    }
}

fn valid_room(room: &str) -> bool {
    (1..=32).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Writes a 200 with `body` (only its head for a HEAD request) and closes the
/// connection. The page's own files are all it may load or connect to.
async fn respond(
    mut tcp: TcpStream,
    content_type: &str,
    body: &str,
    head_only: bool,
) -> Result<(), Error> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Security-Policy: default-src 'self'; connect-src 'self'; img-src 'self' data:; \
         frame-ancestors 'none'\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await?;
    if !head_only {
        tcp.write_all(body.as_bytes()).await?;
    }
    linger(tcp).await;
    Ok(())
}

async fn reject(mut tcp: TcpStream, reject: Reject) {
    let mut out = BytesMut::new();
    reject.write_response(&mut out);
    if tcp.write_all(&out).await.is_ok() {
        linger(tcp).await;
    }
}

/// Sends FIN and reads what the client still sends for a moment: closing a
/// socket with unread bytes makes the kernel send RST, which can destroy the
/// response before the client reads it.
async fn linger(mut tcp: TcpStream) {
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 1024];
    let _ = timeout(Duration::from_secs(1), async {
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Checks a `/ws/ROOM` request, answers 101 and runs the chat session.
async fn upgrade(
    tcp: TcpStream,
    request: &Request,
    rest: BytesMut,
    room: &str,
    server: &Server,
) -> Result<(), Error> {
    if let Err(e) = request.validate() {
        reject(tcp, Reject::from_error(&e)).await;
        return Ok(());
    }
    if !server.options.origin_allowed(request) {
        reject(tcp, Reject::new(403).body("origin not allowed")).await;
        return Ok(());
    }
    let Ok(slot) = server.slots.clone().try_acquire_owned() else {
        let full = Reject::new(503)
            .header("Retry-After", "5")
            .body("too many connections");
        reject(tcp, full).await;
        return Ok(());
    };
    let ws = accept_request(tcp, request, rest, websocket_config(), Accept::new()).await?;
    let name = name_from_query(request.query().unwrap_or_default());
    chat(ws, room, name, server, slot).await;
    Ok(())
}

/// The settings of every chat connection.
pub fn websocket_config() -> Config {
    Config::default()
        .limits(
            Limits::default()
                .max_frame_size(MAX_MESSAGE_BYTES)
                .max_message_size(MAX_MESSAGE_BYTES),
        )
        .keepalive_interval(Some(Duration::from_secs(30)))
        .idle_timeout(Some(Duration::from_secs(90)))
        .close_timeout(CLOSE_GRACE)
}

/// Why a session ended.
enum End {
    /// The peer closed, or the connection failed (the WebSocket has sent the
    /// right close code if there was one to send).
    Peer,
    /// We close, with this frame.
    Close(CloseFrame),
}

/// A member's life in a room: join, relay both ways, leave, close.
async fn chat(
    ws: WebSocket<TcpStream>,
    room: &str,
    name: String,
    server: &Server,
    _slot: OwnedSemaphorePermit,
) {
    let (mut sink, mut stream) = ws.split();
    let (queue_tx, mut queue) = mpsc::channel(server.options.queue_capacity);
    let dropped = CancellationToken::new();
    let id = server.hub.join(room, &name, queue_tx, dropped.clone());

    let end = tokio::select! {
        biased;
        () = server.shutdown.cancelled() => End::Close(CloseFrame::new(SHUTTING_DOWN, "server shutting down")),
        () = dropped.cancelled() => End::Close(CloseFrame::new(TOO_SLOW, "too slow")),
        () = receive(&mut stream, &server.hub, room, id, name) => End::Peer,
        result = forward(&mut sink, &mut queue) => match result {
            // The hub let go of our queue: only when it dropped us.
            Ok(()) => End::Close(CloseFrame::new(TOO_SLOW, "too slow")),
            Err(_) => End::Peer,
        },
    };
    server.hub.leave(room, id);
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
async fn receive(
    stream: &mut ReadHalf<TcpStream>,
    hub: &Hub,
    room: &str,
    id: u64,
    mut name: String,
) {
    while let Some(message) = stream.next().await {
        // After an error the stream runs the close and then ends: keep polling.
        let Ok(message) = message else { continue };
        let message = match message {
            Message::Text(text) if text.trim().is_empty() => continue,
            Message::Text(text) if text.starts_with("/name ") => {
                let new_name = clean_name(&text["/name ".len()..]);
                hub.rename(room, id, &new_name);
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
        let prepared = PreparedMessage::new(message).expect("data messages always encode");
        hub.broadcast(room, &prepared);
    }
}

/// Writes the member's queue to its socket, batching what is already queued
/// into one write. Returns when the hub drops the queue, or on a write error.
async fn forward(
    sink: &mut WriteHalf<TcpStream>,
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

/// The rooms and their members.
#[derive(Default)]
struct Hub {
    rooms: Mutex<HashMap<String, Room>>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Room {
    /// By id, which is the order of joining.
    members: BTreeMap<u64, Member>,
}

struct Member {
    name: String,
    queue: mpsc::Sender<PreparedMessage>,
    /// Cancelled when the member is dropped for being too slow.
    dropped: CancellationToken,
}

impl Hub {
    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        // Nothing under the lock can leave a room half-updated.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a member: it gets the welcome, the others a join notice.
    fn join(
        &self,
        room_name: &str,
        name: &str,
        queue: mpsc::Sender<PreparedMessage>,
        dropped: CancellationToken,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut rooms = self.rooms();
        let room = rooms.entry(room_name.to_owned()).or_default();
        let mut welcome = String::from(r#"{"type":"welcome","room":"#);
        push_json_string(&mut welcome, room_name);
        welcome.push_str(r#","name":"#);
        push_json_string(&mut welcome, name);
        welcome.push_str(r#","members":["#);
        for member in room.members.values() {
            push_json_string(&mut welcome, &member.name);
            welcome.push(',');
        }
        push_json_string(&mut welcome, name);
        let _ = write!(welcome, r#"],"time":{}}}"#, now_millis());
        // A fresh queue has room for one.
        let _ = queue.try_send(prepared_text(welcome));
        let notice = presence("join", name, room.members.len() + 1, None);
        deliver(&mut rooms, room_name, notice);
        let member = Member {
            name: name.to_owned(),
            queue,
            dropped,
        };
        rooms
            .entry(room_name.to_owned())
            .or_default()
            .members
            .insert(id, member);
        id
    }

    /// Removes a member (if still there) and tells the others.
    fn leave(&self, room_name: &str, id: u64) {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get_mut(room_name) else {
            return;
        };
        let member = room.members.remove(&id);
        let members = room.members.len();
        if members == 0 {
            rooms.remove(room_name);
        } else if let Some(member) = member {
            // (None: dropped as too slow, and the others were told then.)
            let notice = presence("leave", &member.name, members, None);
            deliver(&mut rooms, room_name, notice);
        }
    }

    /// Renames a member and tells everyone, the member included.
    fn rename(&self, room_name: &str, id: u64, name: &str) {
        let mut rooms = self.rooms();
        let Some(member) = rooms
            .get_mut(room_name)
            .and_then(|room| room.members.get_mut(&id))
        else {
            return;
        };
        let from = std::mem::replace(&mut member.name, name.to_owned());
        if from == name {
            return;
        }
        let mut json = String::from(r#"{"type":"rename","from":"#);
        push_json_string(&mut json, &from);
        json.push_str(r#","name":"#);
        push_json_string(&mut json, name);
        let _ = write!(json, r#","time":{}}}"#, now_millis());
        deliver(&mut rooms, room_name, prepared_text(json));
    }

    /// Queues `message` for every member of the room.
    fn broadcast(&self, room_name: &str, message: &PreparedMessage) {
        deliver(&mut self.rooms(), room_name, message.clone());
    }
}

/// Offers `message` to every member of the room; drops the members whose
/// queue is full, telling the others (which may drop more).
fn deliver(rooms: &mut HashMap<String, Room>, room_name: &str, message: PreparedMessage) {
    let mut pending = vec![message];
    while let Some(message) = pending.pop() {
        let Some(room) = rooms.get_mut(room_name) else {
            return;
        };
        let mut too_slow = Vec::new();
        room.members.retain(|_, member| {
            match member.queue.try_send(message.clone()) {
                Err(TrySendError::Full(_)) => {
                    member.dropped.cancel();
                    too_slow.push(std::mem::take(&mut member.name));
                    false
                }
                // Closed: its session is ending and will call `leave`.
                Ok(()) | Err(TrySendError::Closed(_)) => true,
            }
        });
        let members = room.members.len();
        pending.extend(
            too_slow
                .iter()
                .map(|name| presence("leave", name, members, Some("too slow"))),
        );
    }
}

fn presence(kind: &str, name: &str, members: usize, reason: Option<&str>) -> PreparedMessage {
    let mut json = format!(r#"{{"type":"{kind}","name":"#);
    push_json_string(&mut json, name);
    let _ = write!(json, r#","members":{members}"#);
    if let Some(reason) = reason {
        json.push_str(r#","reason":"#);
        push_json_string(&mut json, reason);
    }
    let _ = write!(json, r#","time":{}}}"#, now_millis());
    prepared_text(json)
}

fn prepared_text(json: String) -> PreparedMessage {
    PreparedMessage::new(Message::text(json)).expect("text messages always encode")
}

fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Appends `s` as a JSON string literal (RFC 8259 §7).
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The `name` parameter of a query string, percent-decoded and cleaned (see
/// [`clean_name`]).
pub fn name_from_query(query: &str) -> String {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("name="))
        .unwrap_or_default();
    clean_name(&percent_decode(raw))
}

/// A name without control characters, trimmed and cut to [`MAX_NAME_CHARS`];
/// `anonymous` if that leaves nothing.
pub fn clean_name(raw: &str) -> String {
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    match name.trim() {
        "" => "anonymous".to_owned(),
        name => name.to_owned(),
    }
}

/// Decodes `%XX` escapes and `+` (as a space) of a query value; invalid UTF-8
/// becomes U+FFFD.
fn percent_decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.clone().take(2).collect::<Vec<u8>>();
                match std::str::from_utf8(&hex)
                    .ok()
                    .filter(|h| h.len() == 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(decoded) => {
                        out.push(decoded);
                        bytes.nth(1);
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Ctrl-C (SIGINT), or on Unix SIGTERM (what service managers send).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[allow(dead_code)] // the integration test includes this file for the functions above
#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = match Options::parse(std::env::args().skip(1), |k| std::env::var(k).ok()) {
        Ok(Some(options)) => options,
        Ok(None) => {
            // Not println!: `broadcast --help | head` must not panic.
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("broadcast: {e}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let listener = match listen(&options.addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("broadcast: cannot listen on {}: {e}", options.addr);
            return std::process::ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("chat server listening on http://{addr}/ (Ctrl-C to stop)"),
        Err(e) => eprintln!("broadcast: {e}"),
    }
    let stop = async {
        stop_signal().await;
        eprintln!("shutting down: closing every connection with 1001");
    };
    match serve(listener, options, stop).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("broadcast: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Option<Options>, String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Options::parse(args.iter().map(|a| a.to_string()), |k| env.get(k).cloned())
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_control_characters() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\nd\u{1}é</script>");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é</script>""#);
    }

    #[test]
    fn names_are_percent_decoded_cleaned_and_bounded() {
        assert_eq!(name_from_query("name=Ren%C3%A9e+B"), "Renée B");
        assert_eq!(name_from_query("x=1&name=%0Abob%07"), "bob");
        assert_eq!(name_from_query("name=%zz"), "%zz");
        assert_eq!(name_from_query("name=%20%20"), "anonymous");
        assert_eq!(name_from_query(""), "anonymous");
        assert_eq!(
            name_from_query(&format!("name={}", "x".repeat(100))).len(),
            32
        );
    }

    #[test]
    fn routes_serve_the_page_and_rooms_with_valid_names_only() {
        assert!(matches!(
            route("/"),
            Route::Asset("text/html; charset=utf-8", _)
        ));
        assert_eq!(route("/ws/lobby-2_b"), Route::Room("lobby-2_b"));
        assert_eq!(route("/ws/"), Route::NotFound);
        assert_eq!(route("/ws/a/b"), Route::NotFound);
        assert_eq!(route(&format!("/ws/{}", "r".repeat(33))), Route::NotFound);
        assert_eq!(route("/etc/passwd"), Route::NotFound);
    }

    #[test]
    fn flags_override_environment_variables() {
        let env = [
            ("BROADCAST_ADDR", "127.0.0.1:1"),
            ("BROADCAST_MAX_CONNECTIONS", "5"),
            ("BROADCAST_ALLOWED_ORIGINS", "http://a.test, http://b.test/"),
        ];
        let options = parse(&[], &env).unwrap().unwrap();
        assert_eq!(options.addr, "127.0.0.1:1");
        assert_eq!(options.max_connections, 5);
        assert_eq!(
            options.origins,
            Origins::List(vec!["http://a.test".into(), "http://b.test".into()])
        );
        let options = parse(
            &[
                "0.0.0.0:80",
                "--max-connections=7",
                "--allow-origin",
                "*",
                "--queue",
                "3",
            ],
            &env,
        )
        .unwrap()
        .unwrap();
        assert_eq!(options.addr, "0.0.0.0:80");
        assert_eq!(options.max_connections, 7);
        assert_eq!(options.origins, Origins::Any);
        assert_eq!(options.queue_capacity, 3);
        assert_eq!(parse(&["--help"], &[]), Ok(None));
        assert!(parse(&["--queue", "0"], &[]).is_err());
        assert!(parse(&["--frobnicate"], &[]).is_err());
        assert!(parse(&["--queue"], &[]).is_err());
    }
}
