//! Autobahn|Testsuite client: runs every case of a `wstest -m fuzzingserver`
//! against the crate's client role, echoing each message, then asks the suite to
//! write its reports.
//!
//! ```text
//! cargo run --release --example autobahn_client ws://127.0.0.1:9001 wscodec
//! ```

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use wscodec::{ClientRequest, Config, Message, WebSocket};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let agent = args.next().unwrap_or_else(|| "wscodec".into());

    let mut ws = open(&format!("{base}/getCaseCount")).await?;
    let count: u32 = match ws.next().await {
        Some(Ok(Message::Text(text))) => text.trim().parse()?,
        other => return Err(format!("no case count: {other:?}").into()),
    };
    while ws.next().await.is_some() {}
    eprintln!("running {count} cases as {agent}");

    for case in 1..=count {
        let mut ws = open(&format!("{base}/runCase?case={case}&agent={agent}")).await?;
        // Errors are the point of many cases: the suite judges how we failed.
        while let Some(Ok(message)) = ws.next().await {
            if !message.is_control() && ws.feed(message).await.is_err() {
                break;
            }
        }
    }

    let mut ws = open(&format!("{base}/updateReports?agent={agent}")).await?;
    while ws.next().await.is_some() {}
    eprintln!("reports updated");
    Ok(())
}

async fn open(uri: &str) -> Result<WebSocket<TcpStream>> {
    let request = ClientRequest::new(uri)?;
    let tcp = TcpStream::connect(request.connect_addr()).await?;
    tcp.set_nodelay(true)?;
    // Built with `--features deflate`, offer permessage-deflate (sections 12, 13).
    #[cfg(feature = "deflate")]
    let config = Config::default().deflate(Some(wscodec::deflate::DeflateConfig::default()));
    #[cfg(not(feature = "deflate"))]
    let config = Config::default();
    let (ws, _) = wscodec::connect_with(tcp, request, config).await?;
    Ok(ws)
}
