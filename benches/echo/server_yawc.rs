//! Echo server with yawc, for the end-to-end benchmark: its own idiom (hyper
//! upgrade with `WebSocket::upgrade_with_options`, the connection driven in
//! `tokio::task::unconstrained`, `next`/`send` on data frames), single-threaded
//! runtime.
//!
//! Options differ from yawc's echo example where the benchmark needs them to
//! be comparable: UTF-8 is checked (`with_utf8`, off by default in yawc; RFC
//! 6455 §8.1 requires it, and every other server here does it), the limits are
//! wscodec's defaults (16 MiB frames, 64 MiB messages), and no compression is
//! offered (nor asked for by the load generator).

use futures::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use yawc::{OpCode, Options, WebSocket};

async fn echo(upgrade: yawc::UpgradeFut) -> yawc::Result<()> {
    let mut ws = upgrade.await?;
    // yawc answers pings and the closing handshake itself; the stream ends
    // when the connection does.
    while let Some(frame) = ws.next().await {
        if matches!(frame.opcode(), OpCode::Text | OpCode::Binary) {
            ws.send(frame).await?;
        }
    }
    Ok(())
}

async fn handle(mut req: Request<Incoming>) -> yawc::Result<Response<Empty<Bytes>>> {
    let options = Options::default()
        .with_utf8()
        .with_max_payload_read(16 << 20)
        .with_max_read_buffer(64 << 20)
        .without_compression();
    let (response, upgrade) = WebSocket::upgrade_with_options(&mut req, options)?;
    tokio::spawn(tokio::task::unconstrained(async move {
        let _ = echo(upgrade).await;
    }));
    Ok(response)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9105".into());
    let listener = TcpListener::bind(&addr).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service_fn(handle))
                .with_upgrades()
                .await;
        });
    }
}
