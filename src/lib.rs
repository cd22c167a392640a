//! # wscodec
//!
//! WebSocket (RFC 6455) for tokio: turn any `AsyncRead + AsyncWrite` into a
//! [`Stream`](futures_core::Stream) of [`Message`]s and a
//! [`Sink`](futures_sink::Sink) that sends them, as server or client. Strict on
//! the protocol, bounded on hostile input, and lean per connection.
//!
//! ```no_run
//! use futures::{SinkExt, StreamExt};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), wscodec::Error> {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//!     loop {
//!         let (tcp, _) = listener.accept().await?;
//!         tokio::spawn(async move {
//!             let mut ws = wscodec::accept(tcp).await?;
//!             while let Some(message) = ws.next().await {
//!                 let message = message?;
//!                 if message.is_control() {
//!                     continue; // pings and the closing handshake are answered for us
//!                 }
//!                 ws.feed(message).await?; // written when next() waits for input
//!             }
//!             Ok::<_, wscodec::Error>(())
//!         });
//!     }
//! }
//! ```
//!
//! ## Layers
//!
//! ```text
//!  bytes ─▶ frame      parse/write headers (§5.2), Frame      pure, no allocation
//!           mask       XOR payloads in place (§5.3)          pure
//!           utf8       incremental validator (§8.1)          pure
//!        ─▶ codec/     FrameCodec, MessageCodec: tokio-util Decoder + Encoder;
//!                      roles, limits, fragments, UTF-8       sans-IO
//!           extension  what was negotiated, RSV bits, the per-message transform
//!           deflate/   permessage-deflate (feature)          sans-IO
//!           handshake/ parse/validate/answer HTTP (§4)       sans-IO
//!        ─▶ websocket/ WebSocket<T>: pings, closing, timeouts, backpressure, split
//!           accept, connect  the handshake over a transport, then a WebSocket
//!        ─▶ proxy/     HTTP CONNECT and SOCKS5 tunnels
//!           client/    connect_url, Connector: DNS, TCP, proxy, TLS (feature)
//!           axum, h2/  an axum extractor, WebSockets over HTTP/2 (features)
//! ```
//!
//! `ARCHITECTURE.md` in the repository maps the modules, one message's path
//! and where new things go.
//!
//! Use the codecs with [`tokio_util::codec::Framed`] when you want frames or
//! messages and will handle pings and closing yourself; use [`WebSocket`] for the
//! whole protocol. Everything below `WebSocket` is sans-IO: it decides from bytes
//! alone, which is what the fuzzers drive.
//!
//! ## Limits
//!
//! [`Limits`] bound what a peer can make us buffer (frame and message size,
//! handshake size and header count), checked against what the peer declares before
//! anything is allocated. A frame or message over a limit fails the connection with
//! close code 1009; an oversized handshake gets HTTP 431.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod accept;
#[cfg(feature = "axum")]
pub mod axum;
pub mod client;
pub mod codec;
pub mod config;
mod connect;
#[cfg(feature = "deflate")]
pub mod deflate;
pub mod error;
pub mod extension;
pub mod frame;
#[cfg(feature = "http2")]
pub mod h2;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod proxy;
mod trace;
pub mod utf8;
mod websocket;

pub use accept::{accept, accept_request, accept_with, accept_with_async, read_request};
pub use client::{connect_url, ClientStream};
pub use codec::{Frame, FrameCodec, MessageCodec, PreparedMessage};
pub use config::{Config, Limits, Role};
pub use connect::{connect, connect_with};
pub use error::{AbnormalClosure, CapacityError, Error, HandshakeError, ProtocolError, UsageError};
pub use extension::Extensions;
pub use frame::OpCode;
/// Conversions to and from the `http` crate's types; also at
/// [`handshake::http`].
#[cfg(feature = "http")]
pub use handshake::http as http_types;
pub use handshake::ClientRequest;
pub use message::{CloseCode, CloseFrame, Message, Utf8Bytes};
pub use websocket::{PreparedSink, ReadHalf, WebSocket, WriteHalf};

// README's examples compile and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
