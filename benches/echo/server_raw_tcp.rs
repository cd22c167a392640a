//! Raw TCP echo with no framing: the limit the WebSocket servers are measured
//! against. Single-threaded runtime, every byte written back as it was read.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Each read takes up to this much, so a large message costs few system calls
/// (with 64 KiB reads a 1 MiB echo took 15 reads and 15 writes and cost more
/// server CPU than wscodec's). Allocated zeroed, so the pages an idle
/// connection never fills are never touched.
const BUF: usize = 1 << 20;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9104".into());
    let listener = TcpListener::bind(&addr).await?;
    loop {
        let (mut tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; BUF];
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tcp.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
}
