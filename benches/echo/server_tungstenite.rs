//! Echo server with tokio-tungstenite, for the end-to-end benchmark: its own
//! idiom (split, filter data messages, `forward`), single-threaded runtime.

use futures::{StreamExt, TryStreamExt};
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9101".into());
    let listener = TcpListener::bind(&addr).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            let (tx, rx) = ws.split();
            let _ = rx
                .try_filter(|m| futures::future::ready(m.is_text() || m.is_binary()))
                .forward(tx)
                .await;
        });
    }
}
