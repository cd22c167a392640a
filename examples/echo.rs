//! Echo server: every text or binary message comes back as it came.
//!
//! ```text
//! cargo run --release --example echo [ADDRESS]     # default 127.0.0.1:9001
//! ```
//!
//! This is also the server that the Autobahn|Testsuite measures
//! (`scripts/autobahn.sh`), so it accepts messages up to 64 MiB (frames up to
//! 16 MiB): the crate's defaults. Built with `--features deflate`, it accepts
//! permessage-deflate when a client offers it.

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
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
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("echo server listening on ws://{}", listener.local_addr()?);
    loop {
        let (tcp, peer) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = serve(tcp).await {
                eprintln!("{peer}: {e}");
            }
        });
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
