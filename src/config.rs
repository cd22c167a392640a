//! Settings: [`Limits`] protect us from the peer, [`Config`] tunes a connection.
//!
//! Every limit has a safe default and can be changed; none of them can be turned
//! off, only raised.

use std::time::Duration;

/// Which side of the connection we are (RFC 6455 §5.1): a client masks every frame
/// it sends, and a server requires every frame it receives to be masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that opened the connection.
    Client,
    /// The side that accepted it.
    Server,
}

/// Bounds on what a peer can make us buffer. Each is checked against what the peer
/// *declares* (a frame header's length, a handshake's size so far) before anything
/// is allocated for it.
///
/// ```
/// use wscodec::Limits;
/// let limits = Limits::default().max_message_size(1 << 20).max_frame_size(64 << 10);
/// assert_eq!(limits.max_message_size, 1 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest frame payload accepted; a larger one fails the connection with
    /// 1009. Default 16 MiB.
    pub max_frame_size: usize,
    /// The largest message (all fragments together) accepted; a larger one fails
    /// the connection with 1009. Default 64 MiB.
    pub max_message_size: usize,
    /// The most bytes an HTTP request or response head may take (request line,
    /// headers, blank line); more gets 431. Default 16 KiB.
    pub max_header_bytes: usize,
    /// The most header lines in a handshake; more gets 431. Default 64.
    pub max_headers: usize,
    /// Client: the most bytes of a refused handshake's response body (a 401's
    /// JSON, a 302's page) kept in
    /// [`HandshakeError::UnexpectedStatus`](crate::HandshakeError::UnexpectedStatus);
    /// the rest is not read. Never allocated from what the server declares.
    /// Default 64 KiB.
    pub max_response_body: usize,
    /// The most a frame's declared length makes the read buffer reserve ahead
    /// of its bytes. Once a header has passed the `max_frame_size` check, the
    /// buffer makes room for the rest of the frame, up to this much, so a
    /// large frame is read straight into one buffer rather than into one that
    /// doubles, copying what it holds each time. Past it the buffer grows only
    /// with what arrives. It is what a peer can make a connection hold with a
    /// header alone (address space: the pages stay untouched until bytes
    /// arrive), and it is given back once the frame is read. `0` reserves
    /// nothing for a declaration. Default 1 MiB.
    pub max_frame_reserve: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_header_bytes: 16 << 10,
            max_headers: 64,
            max_response_body: 64 << 10,
            max_frame_reserve: 1 << 20,
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_frame_size`].
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`Limits::max_message_size`].
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`Limits::max_header_bytes`].
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Sets [`Limits::max_headers`].
    pub fn max_headers(mut self, count: usize) -> Self {
        self.max_headers = count;
        self
    }

    /// Sets [`Limits::max_response_body`].
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = bytes;
        self
    }

    /// Sets [`Limits::max_frame_reserve`].
    pub fn max_frame_reserve(mut self, bytes: usize) -> Self {
        self.max_frame_reserve = bytes;
        self
    }
}

/// Settings of a [`WebSocket`](crate::WebSocket) connection.
///
/// ```
/// use std::time::Duration;
/// use wscodec::{Config, Limits};
/// let config = Config::default()
///     .limits(Limits::default().max_message_size(1 << 20))
///     .keepalive_interval(Some(Duration::from_secs(30)))
///     .idle_timeout(Some(Duration::from_secs(90)));
/// assert_eq!(config.limits.max_message_size, 1 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Bounds on what the peer can make us buffer.
    pub limits: Limits,
    /// Backpressure: while more than this many encoded bytes wait to be written,
    /// `poll_ready` is `Pending`. It bounds what the caller queues; what the
    /// connection queues by itself (a few KiB of Pongs, one Close) never stops the
    /// stream from reading. Default 128 KiB.
    pub write_buffer_limit: usize,
    /// How long to wait for the peer's close frame after sending ours, and for the
    /// server's TCP close after the closing handshake (client role). Default 10 s.
    pub close_timeout: Duration,
    /// How long the opening handshake may take in `accept` and `connect`; a peer
    /// that dribbles its request slower than this is dropped. Default 10 s.
    pub handshake_timeout: Option<Duration>,
    /// Send a ping after this long without receiving anything. Default off.
    pub keepalive_interval: Option<Duration>,
    /// Send data messages longer than this as several frames of at most this many
    /// payload bytes (§5.4). Default off: one frame per message.
    pub fragment_size: Option<usize>,
    /// permessage-deflate (RFC 7692): offered by a client, accepted by a server
    /// when the peer offers it. Default `None`: no compression.
    #[cfg(feature = "deflate")]
    pub deflate: Option<crate::deflate::DeflateConfig>,
    /// Fail the connection with [`Error::IdleTimeout`](crate::Error::IdleTimeout)
    /// (and close code 1001) after this long without receiving anything. Default off.
    pub idle_timeout: Option<Duration>,
    /// Answer every Ping with a Pong by ourselves (RFC 6455 §5.5.2). Default
    /// on. Pings reach the stream either way.
    ///
    /// Off, no Pong is queued: the application answers with
    /// `Message::Pong(payload)` through the `Sink`, when and how it likes
    /// (measuring latency, answering only some pings). §5.5.2's "MUST send a
    /// Pong" is then the application's to keep, and its Pongs count against
    /// [`Config::write_buffer_limit`] like any message it sends. A peer that
    /// pings without reading can then only fill the socket, not our memory:
    /// the application's Pongs wait in `poll_ready` like its other messages.
    pub auto_pong: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            write_buffer_limit: 128 << 10,
            close_timeout: Duration::from_secs(10),
            handshake_timeout: Some(Duration::from_secs(10)),
            keepalive_interval: None,
            #[cfg(feature = "deflate")]
            deflate: None,
            fragment_size: None,
            idle_timeout: None,
            auto_pong: true,
        }
    }
}

impl Config {
    /// Sets [`Config::limits`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets [`Config::write_buffer_limit`].
    pub fn write_buffer_limit(mut self, bytes: usize) -> Self {
        self.write_buffer_limit = bytes;
        self
    }

    /// Sets [`Config::close_timeout`].
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`Config::handshake_timeout`].
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`Config::keepalive_interval`].
    pub fn keepalive_interval(mut self, interval: Option<Duration>) -> Self {
        self.keepalive_interval = interval;
        self
    }

    /// Sets [`Config::deflate`].
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, deflate: Option<crate::deflate::DeflateConfig>) -> Self {
        self.deflate = deflate;
        self
    }

    /// Sets [`Config::fragment_size`].
    pub fn fragment_size(mut self, bytes: Option<usize>) -> Self {
        self.fragment_size = bytes;
        self
    }

    /// Sets [`Config::idle_timeout`].
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`Config::auto_pong`].
    ///
    /// ```
    /// use wscodec::Config;
    /// // This application answers pings itself.
    /// let config = Config::default().auto_pong(false);
    /// assert!(!config.auto_pong);
    /// ```
    pub fn auto_pong(mut self, on: bool) -> Self {
        self.auto_pong = on;
        self
    }
}
