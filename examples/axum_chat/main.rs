//! A one-room chat served by axum through the crate's extractor,
//! `wscodec::axum::WebSocketUpgrade`: `/` is the page, `/ws?name=NAME` the
//! WebSocket. Every text message is sent to everyone in the room.
//! permessage-deflate is accepted when the browser offers it (all current
//! browsers do); the page shows what was negotiated.
//!
//! ```text
//! cargo run --release --features axum,deflate --example axum_chat [ADDRESS]   # default 127.0.0.1:9004
//! ```
//!
//! With `--features axum,deflate,http2` the same `join` handler also takes
//! members over HTTP/2 (RFC 8441's extended CONNECT, h2c by prior knowledge,
//! as `wscodec::h2::connect` speaks it): `axum::serve` advertises the
//! setting, and `/ws` is routed with `any` because that request's method is
//! CONNECT. Browsers speak HTTP/2 only over TLS, so they join over HTTP/1.1
//! here.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use wscodec::axum::{WebSocket, WebSocketUpgrade};
use wscodec::deflate::DeflateConfig;
use wscodec::handshake::Reject;
use wscodec::{Config, Limits, Message};

/// The subprotocol the page asks for; a client that offers none still gets
/// in, and the server then selects none.
pub const PROTOCOL: &str = "chat.v1";

/// What every connection shares: the room and the configuration.
#[derive(Debug)]
pub struct Chat {
    room: broadcast::Sender<String>,
    config: Config,
}

/// The app: the page at `/`, the chat at `/ws`.
pub fn app() -> Router {
    // A member who falls this far behind skips ahead (and is told so).
    let (room, _) = broadcast::channel(256);
    let config = Config::default()
        .deflate(Some(DeflateConfig::default()))
        .limits(Limits::default().max_message_size(16 << 10));
    let chat = Arc::new(Chat { room, config });
    Router::new()
        .route("/", get(page))
        // `any`: GET over HTTP/1.1, CONNECT over HTTP/2.
        .route("/ws", any(join))
        .with_state(chat)
}

async fn page() -> Html<&'static str> {
    Html(include_str!("index.html"))
}

/// The name in `?name=`: 1 to 24 letters, digits, `-` or `_`.
fn name(query: Option<&str>) -> Option<&str> {
    let name = query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("name="))?;
    let valid = (1..=24).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then_some(name)
}

/// The upgrade: checked by the extractor already; the handler refuses a
/// missing or odd name with its own status, and otherwise accepts with the
/// room's configuration (deflate when offered) and the chat's subprotocol.
async fn join(State(chat): State<Arc<Chat>>, upgrade: WebSocketUpgrade) -> Response {
    let Some(name) = name(upgrade.request().query()).map(str::to_owned) else {
        return Reject::new(400)
            .body("give a name: /ws?name=NAME (1-24 letters, digits, - or _)")
            .into_response();
    };
    upgrade
        .protocols([PROTOCOL])
        .config(chat.config.clone())
        .on_upgrade(move |ws| member(chat, name, ws))
}

/// One member: what they send goes to the room, what the room says comes
/// back to them, until either side is done.
async fn member(chat: Arc<Chat>, name: String, mut ws: WebSocket) {
    let mut room = chat.room.subscribe();
    let _ = chat.room.send(format!("* {name} joined"));
    loop {
        tokio::select! {
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let _ = chat.room.send(format!("{name}: {}", text.as_str()));
                }
                // Pings and the closing handshake are answered for us.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            said = room.recv() => {
                let line = match said {
                    Ok(line) => line,
                    Err(broadcast::error::RecvError::Lagged(n)) => format!("* you missed {n} messages"),
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if ws.send(Message::text(line)).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = chat.room.send(format!("* {name} left"));
}

#[allow(dead_code)] // the integration test includes this file for the functions above
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9004".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("axum chat on http://{}/", listener.local_addr()?);
    axum::serve(listener, app()).await
}
