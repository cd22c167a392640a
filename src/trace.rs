//! Observability behind the `tracing` feature: these macros forward to
//! `tracing`'s when it is on, and expand to nothing when it is off, so a
//! build without the feature pays nothing, not even for evaluating the
//! arguments.
//!
//! Levels: DEBUG for what happens once per connection (handshake outcome,
//! close, protocol error, limit, timeout); TRACE for anything per message.
//! A peer's protocol violation is DEBUG too, not WARN: the peer decides how
//! often it happens, so at WARN any client could fill a server's log (a 60 s
//! fault soak once printed 27,000 lines), and the operator cannot fix
//! another program's bug. What the application should hear about, it gets
//! as the stream's last item.
//!
//! # The connection's span
//!
//! With the feature, each [`WebSocket`](crate::WebSocket) holds a
//! `tracing::Span` named `websocket` (DEBUG) with the fields `role` and
//! `peer` (empty until the caller records it, see `WebSocket::span`).
//! Without it the field does not exist, so `size_of::<WebSocket<T>>()` is
//! what it was. Created in the caller's current span, it nests under a
//! per-connection span the application may already have. The connection's
//! events are emitted inside it (see `event!`), whatever path they come
//! from: a poll, `start_send` or `start_close`.

#[cfg(feature = "tracing")]
#[allow(unused_macros)] // until every build uses it
macro_rules! trace {
    ($($t:tt)*) => { ::tracing::trace!($($t)*) };
}
#[cfg(not(feature = "tracing"))]
#[allow(unused_macros)] // until every build uses it
macro_rules! trace {
    ($($t:tt)*) => {};
}

#[cfg(feature = "tracing")]
#[allow(unused_macros)] // until every build uses it
macro_rules! debug {
    ($($t:tt)*) => { ::tracing::debug!($($t)*) };
}
#[cfg(not(feature = "tracing"))]
#[allow(unused_macros)] // until every build uses it
macro_rules! debug {
    ($($t:tt)*) => {};
}

/// A new connection span for `$role` (a [`Role`](crate::Role)). Only with
/// the feature: the field that holds it exists only then.
#[cfg(feature = "tracing")]
macro_rules! connection_span {
    ($role:expr) => {
        ::tracing::debug_span!(
            "websocket",
            role = ?$role,
            peer = ::tracing::field::Empty,
        )
    };
}

/// `event!(span, LEVEL, fields..., "message")`: an event inside the
/// connection's `span`. The level is checked first, so a disabled event
/// (TRACE per message, say) costs one interest check and never enters the
/// span. With the span disabled, the event keeps the caller's context.
#[cfg(feature = "tracing")]
macro_rules! event {
    ($span:expr, $level:ident, $($t:tt)*) => {
        if ::tracing::enabled!(::tracing::Level::$level) {
            let _entered = $span.enter();
            ::tracing::event!(::tracing::Level::$level, $($t)*);
        }
    };
}
#[cfg(not(feature = "tracing"))]
macro_rules! event {
    ($($t:tt)*) => {};
}

#[cfg(feature = "tracing")]
pub(crate) use connection_span;
#[allow(unused_imports)]
pub(crate) use {debug, event, trace};
