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
//! | `--tls-cert FILE` | `BROADCAST_TLS_CERT` | none: plain HTTP | PEM certificate chain: serve HTTPS and `wss://`, ALPN offering `h2` (built with feature `http2`) and `http/1.1` |
//! | `--tls-key FILE` | `BROADCAST_TLS_KEY` | none | the certificate's PEM private key (with `--tls-cert`) |
//! | `--no-h2-websocket` | | off | for testing: HTTP/2 without `SETTINGS_ENABLE_CONNECT_PROTOCOL`, so browsers open their WebSockets over HTTP/1.1 |
//!
//! A flag wins over its variable. The Origin check stops other web sites from
//! opening a chat connection from their pages with the visitor's browser
//! (cross-site WebSocket hijacking); by default only pages served by this
//! server (`Origin` equal to `http://` or `https://` followed by `Host`, or
//! over HTTP/2 by `:authority`) may connect. A request without `Origin` does
//! not come from a browser page and is let through: a non-browser client
//! could send any `Origin` it liked anyway.
//!
//! # Routes
//!
//! - `GET /`: the page; `GET /chat.css`, `GET /chat.js`: its style and script.
//!   With `--tls-cert`, each response carries `X-Broadcast-Connection: N`,
//!   the number of the TCP connection it came on (from 1, in the order
//!   accepted).
//! - `GET /ws/ROOM?name=NAME`: a WebSocket into room `ROOM` (1 to 32 of
//!   `A-Z a-z 0-9 _ -`) as `NAME` (percent-encoded; at most 32 characters,
//!   `anonymous` if empty). Over HTTP/2 (TLS, ALPN `h2`, feature `http2`),
//!   the same WebSocket is an extended CONNECT with `:protocol websocket`
//!   on `/ws/ROOM?name=NAME` (RFC 8441), on the connection that may also
//!   have served the page: Chromium does that when the server advertised
//!   `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 8441 §3), and opens a new
//!   HTTP/1.1 connection for it otherwise.
//!
//! Built with feature `deflate`, the server accepts permessage-deflate
//! (RFC 7692) from clients that offer it; each broadcast is then compressed
//! once for all the members that agreed on it (see [`PreparedMessage`]).
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
//! {"type":"welcome","room":"lobby","name":"alice","members":["bob","alice"],"time":1700000000000,
//!  "transport":"h2","connection":3,"deflate":true}                                                 to the new member
//! {"type":"join","name":"alice","members":2,"time":1700000000000}                                  to the others
//! {"type":"message","name":"alice","text":"hi","time":1700000000000}                               to all
//! {"type":"rename","from":"alice","name":"Alice","time":1700000000000}                             to all
//! {"type":"leave","name":"alice","members":1,"time":1700000000000}                                 to the others
//! {"type":"leave","name":"carol","members":1,"reason":"too slow","time":1700000000000}             when dropped
//! ```
//!
//! With `--redis`, also:
//!
//! ```text
//! {"type":"leave","name":"dave","members":1,"reason":"node lost","time":1700000000000}             dave's node died
//! {"type":"error","reason":"broker unavailable","text":"...","time":1700000000000}                 to a sender: that line was not sent
//! {"type":"resync","reason":"history lost","time":1700000000000}                                   messages may be missing here
//! ```
//!
//! The welcome says how the WebSocket came: `transport` is `http/1.1` (an
//! Upgrade) or `h2` (an extended CONNECT), `connection` the number of its
//! TCP connection (the `X-Broadcast-Connection` of the page's responses on
//! the same connection), `deflate` whether permessage-deflate was
//! negotiated. A WebSocket with `"transport":"h2"` and the page's
//! connection number came on the page's own HTTP/2 connection.
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
//!   after at most that much, not after megabytes of kernel autotuning. The
//!   one exception is a cluster node's replay from Redis after it lost its
//!   subscription: that backlog arrives at once and can exceed `--queue`, so
//!   the replay waits up to a second in all for full queues to drain before
//!   it drops those still full ([`cluster`]).
//! - One lock over all rooms, held for a `try_send` per member (tens of
//!   nanoseconds each) and never across an `.await`: every member of a room
//!   sees the room's messages in the same order, so each sender's messages
//!   arrive in the order sent.
//!
//! [`HeadScanner`]: wscodec::handshake::HeadScanner
//! [`Request::parse`]: wscodec::handshake::Request::parse
//! [`Request::validate`]: wscodec::handshake::Request::validate
//! [`Accept::write_response`]: wscodec::handshake::Accept::write_response
//! [`WebSocket::from_parts`]: wscodec::WebSocket::from_parts
//! [`PreparedMessage`]: wscodec::PreparedMessage
//!
//! # Files
//!
//! | file | owns |
//! |---|---|
//! | `main.rs` (this) | the process: options in, the listening socket, the accept loop, shutdown |
//! | `options.rs` | the flags and variables, and what the Origin setting allows |
//! | `tls.rs` | `--tls-cert`: the PEM files, the TLS configuration, ALPN |
//! | `routes.rs` | a TCP connection until it is a WebSocket: TLS and ALPN's choice, the head, the routes, the page, refusals, the upgrade |
//! | `http2.rs` | an HTTP/2 connection (feature `http2`): its streams, the page, the extended CONNECT |
//! | `session.rs` | a WebSocket connection's life: its settings and close codes, join, relay both ways, leave, close |
//! | `hub.rs` | the rooms: members, fan-out of one [`PreparedMessage`], dropping the slow |
//! | `cluster.rs`, `cluster.lua` | the same across nodes through Redis (`--redis`): the script, the outbox, the subscription, exactly-once delivery, presence |
//! | `text.rs` | JSON string literals, the time stamp, names from a query |
//! | `index.html`, `chat.css`, `chat.js` | the page, embedded in the binary by `routes.rs` |

mod cluster;
#[cfg(feature = "http2")]
mod http2;
mod hub;
mod options;
mod routes;
mod session;
mod text;
mod tls;

use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use cluster::Cluster;
use hub::Hub;
use options::USAGE;
use routes::handle;

// Where tests/broadcast.rs, which includes this file, finds them.
pub use cluster::ClusterStats;
pub use options::{Options, Origins, TlsFiles};
pub use session::{CLOSE_GRACE, TOO_SLOW};

/// The kernel send buffer of each connection (`SO_SNDBUF`; Linux books twice
/// this), instead of one that autotuning grows up to `net.ipv4.tcp_wmem`'s
/// maximum (4 MiB by default) for a client that stops reading.
pub const SEND_BUFFER: u32 = 64 << 10;

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
    serve_with_stats(listener, options, shutdown, Arc::default()).await
}

/// [`serve`], counting what the cluster (with [`Options::redis`]) goes
/// through in `stats`. Fails at once if that Redis cannot be reached, or if
/// the TLS files ([`Options::tls`]) cannot be read; once started, the node
/// rides out Redis's outages.
pub async fn serve_with_stats(
    listener: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()>,
    stats: Arc<ClusterStats>,
) -> std::io::Result<()> {
    let tls = options.tls.as_ref().map(tls::acceptor).transpose()?;
    // Dropped with this future: a `serve` that is aborted stops its cluster
    // tasks too, as a killed process would.
    let (cluster, cluster_tasks) = match &options.redis {
        Some(url) => {
            let (cluster, tasks) = Cluster::start(url, &options, stats)
                .await
                .map_err(|e| std::io::Error::other(format!("redis {url}: {e}")))?;
            (Some(cluster), Some(tasks))
        }
        None => (None, None),
    };
    let server = Arc::new(Server {
        hub: Hub::default(),
        cluster: cluster.clone(),
        slots: Arc::new(Semaphore::new(options.max_connections)),
        shutdown: CancellationToken::new(),
        tls,
        options,
    });
    let mut numbered: u64 = 0;
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    numbered += 1;
                    connections.spawn(handle(tcp, peer, server.clone(), numbered));
                }
                Err(e) => {
                    // Out of file descriptors, say: wait for some to be given back.
                    tracing::warn!(error = %e, "accept failed");
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
    if let (Some(cluster), Some(tasks)) = (cluster, cluster_tasks) {
        // The leaves of the members just closed go out to the other nodes.
        cluster.close(tasks, CLOSE_GRACE).await;
    }
    Ok(())
}

/// What every connection of one [`serve`] shares.
struct Server {
    hub: Hub,
    /// The other nodes, through Redis (`--redis`); `None`: this node alone,
    /// through `hub`.
    cluster: Option<Arc<Cluster>>,
    /// One permit per open WebSocket connection.
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    /// With `--tls-cert`: every connection is TLS first.
    tls: Option<TlsAcceptor>,
    options: Options,
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
    // RUST_LOG=debug shows every connection that ends badly (resets, bad
    // handshakes); the default shows startup, Redis trouble and real errors.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // No colour codes in a log file or a test's captured output.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
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
            tracing::error!("cannot listen on {}: {e}", options.addr);
            return std::process::ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        // On stdout, as before: scripts read the URL from this line.
        Ok(addr) => {
            let scheme = if options.tls.is_some() {
                "https"
            } else {
                "http"
            };
            println!("chat server listening on {scheme}://{addr}/ (Ctrl-C to stop)");
        }
        Err(e) => tracing::warn!(error = %e, "no local address"),
    }
    let stop = async {
        stop_signal().await;
        tracing::info!("shutting down: closing every connection with 1001");
    };
    match serve(listener, options, stop).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
