//! Echo server inside a hyper 1.x HTTP server: hyper serves ordinary requests and
//! performs the upgrade on `/ws`; the crate validates the request, negotiates
//! (subprotocol and, built with `deflate`, compression) once, builds the `101`
//! response from that and takes over the upgraded connection with the same.
//!
//! ```text
//! cargo run --release --features http,deflate --example hyper_echo [ADDRESS]   # default 127.0.0.1:9003
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wscodec::handshake::{Accept, Agreed, Reject};
use wscodec::{Config, WebSocket};

/// The defaults, plus compression when the crate is built with it.
fn config() -> Config {
    #[cfg(feature = "deflate")]
    return Config::default().deflate(Some(wscodec::deflate::DeflateConfig::default()));
    #[cfg(not(feature = "deflate"))]
    Config::default()
}

/// hyper's service: `/ws` upgrades to an echoing WebSocket, `/` says hello,
/// anything else is 404.
pub async fn handle(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = |status: StatusCode, body: String| {
        let mut response = Response::new(Full::from(body));
        *response.status_mut() = status;
        Ok(response)
    };
    match request.uri().path() {
        "/" => return text(StatusCode::OK, "connect a WebSocket to /ws\n".into()),
        "/ws" => {}
        _ => return text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
    let config = config();
    let view = wscodec::handshake::Request::from_http(&request);
    let agreed = match Agreed::negotiate(&view, Accept::new(), &config) {
        Ok(agreed) => agreed,
        // The status and headers RFC 6455 asks for (426 names version 13, say).
        Err(e) => return Ok(Reject::from_error(&e).to_http_response().map(Full::new)),
    };
    let response = agreed.to_http_response();
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => return eprintln!("upgrade failed: {e}"),
        };
        let mut ws = WebSocket::from_agreed(TokioIo::new(upgraded), &agreed, config);
        while let Some(Ok(message)) = ws.next().await {
            if !message.is_control() && ws.feed(message).await.is_err() {
                break;
            }
        }
    });
    Ok(response.map(|()| Full::default()))
}

/// Serves HTTP/1.1 with upgrades on every accepted connection, forever.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service_fn(handle))
                .with_upgrades();
            if let Err(e) = connection.await {
                eprintln!("http: {e}");
            }
        });
    }
}

#[allow(dead_code)] // the integration test includes this file for the functions above
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9003".into());
    let listener = TcpListener::bind(&addr).await?;
    println!(
        "hyper echo server on http://{0}/ ; WebSocket at ws://{0}/ws",
        listener.local_addr()?
    );
    serve(listener).await
}
