//! The opening handshake (RFC 6455 §4), sans-IO.
//!
//! It parses and validates HTTP heads with `httparse`, computes
//! `Sec-WebSocket-Accept`, and writes requests and replies into a buffer. It
//! never touches a socket, a runtime or a [`WebSocket`](crate::WebSocket), so
//! it serves any transport and the fuzzers drive it directly; the async
//! drivers ([`accept`](crate::accept), [`connect`](crate::connect) and the
//! rest, in `src/accept.rs` and `src/connect.rs`) sit on top of it.
//!
//! | module | owns |
//! |---|---|
//! | `head` | finding the end of a head, the headers as received, what may be written |
//! | `key` | `Sec-WebSocket-Key` and `Sec-WebSocket-Accept` |
//! | `server` | the request as received, its validation, the server's answer: [`Agreed`], negotiated once and written by every serializer |
//! | `client` | the client's request, the server's response and its checks |
//! | `http` | conversions to and from the `http` crate's types (feature `http`) |
//!
//! Every size is bounded by [`Limits`](crate::Limits): head bytes and header
//! count.

mod client;
mod head;
#[cfg(feature = "http")]
pub mod http;
mod key;
mod server;
#[cfg(test)]
mod tests;

pub use client::{ClientRequest, Response};
pub use head::{HeadScanner, Headers};
pub use key::{derive_accept_key, generate_key};
pub use server::{Accept, Agreed, Reject, Request};
