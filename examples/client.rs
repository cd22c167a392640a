//! Line client: sends each line of stdin as a text message and prints what
//! arrives; closes cleanly at end of input.
//!
//! ```text
//! cargo run --release --example client ws://127.0.0.1:9001
//! ```

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use wscodec::{ClientRequest, Config, Message};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let request = ClientRequest::new(&uri)?;
    if request.is_secure() {
        return Err("this example speaks plain ws://; see the TLS example for wss://".into());
    }
    let tcp = TcpStream::connect(request.connect_addr()).await?;
    tcp.set_nodelay(true)?;
    let (ws, _response) = wscodec::connect_with(tcp, request, Config::default()).await?;
    eprintln!("connected to {uri}; type lines to send, end input (Ctrl-D) to close");
    let (mut tx, mut rx) = ws.split();

    let sender = async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await? {
            tx.send(Message::text(line)).await?;
        }
        tx.close().await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    let receiver = async move {
        while let Some(message) = rx.next().await {
            match message? {
                Message::Text(text) => println!("{text}"),
                Message::Binary(data) => println!("<{} bytes of binary>", data.len()),
                Message::Close(frame) => eprintln!("closed: {frame:?}"),
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    // The receiver finishes once the closing handshake completes, whoever
    // started it; the sender alone cannot tell.
    let (sent, received) = tokio::join!(sender, receiver);
    sent?;
    received?;
    Ok(())
}
