//! Echo server: every text or binary message comes back as it came.
//!
//! ```text
//! cargo run --release --example echo [ADDRESS]     # default 127.0.0.1:9001
//! RUST_LOG=debug cargo run --release --features tracing --example echo
//! ```
//!
//! This is also the server that the Autobahn|Testsuite measures
//! (`scripts/autobahn.sh`), so it accepts messages up to 64 MiB (frames up to
//! 16 MiB): the crate's defaults. Built with `--features deflate`, it accepts
//! permessage-deflate when a client offers it.
//!
//! Its first line on stdout is the address it listens on (scripts and tests
//! read it from there). Everything else goes through `tracing` to stderr, at
//! INFO unless `RUST_LOG` says otherwise: how each connection ends is a DEBUG
//! event, since a peer that resets is the peer's business, not a line per
//! peer (a fault soak once printed 27,000). Built with `--features tracing`,
//! the crate's own events join in: `RUST_LOG=wscodec=debug` shows every
//! close with its code and reason, protocol errors, limits and timeouts, in
//! a span per connection.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, error, Instrument};
use tracing_subscriber::EnvFilter;
use wscodec::handshake::{Accept, Request};
use wscodec::Config;

/// The defaults, plus compression when the crate is built with it.
fn config() -> Config {
    #[cfg(feature = "deflate")]
    return Config::default().deflate(Some(wscodec::deflate::DeflateConfig::default()));
    #[cfg(not(feature = "deflate"))]
    Config::default()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("echo server listening on ws://{}", listener.local_addr()?);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: ours to fix, so visible;
                // the connections already open keep running.
                error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // DEBUG, so at the default INFO the span is off and costs nothing
        // per poll; with RUST_LOG=debug every event of the connection
        // (the crate's too) carries the peer's address.
        let span = tracing::debug_span!("conn", %peer);
        tokio::spawn(
            async move {
                match serve(tcp).await {
                    Ok(()) => debug!("closed"),
                    Err(e) => debug!(error = %e, "ended"),
                }
            }
            .instrument(span),
        );
    }
}

async fn serve(tcp: TcpStream) -> Result<(), wscodec::Error> {
    tcp.set_nodelay(true)?;
    let mut ws = wscodec::accept_with(tcp, config(), |_: &Request| Ok(Accept::new())).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        // Pings are answered and the closing handshake is run by the WebSocket;
        // only data is echoed.
        // `feed`, not `send`: replies to a burst of pipelined messages leave
        // together, in one write, when the stream next waits for input.
        if !message.is_control() {
            ws.feed(message).await?;
        }
    }
    Ok(())
}
