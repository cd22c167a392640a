//! The connection's deadlines: keepalive, idle and close, as one table.
//!
//! This holds instants only, never a timer: the driver keeps a single `Sleep`
//! set to [`Deadlines::next`] and reports when it fires. Keepalive and idle are
//! measured from the last bytes *received* (any bytes, not whole messages), so a
//! slow upload of one large frame is not mistaken for silence. Moving them on
//! every read costs one clock read; the `Sleep` is re-armed only when it fires
//! early, at most once per interval.

use std::time::Duration;

use tokio::time::Instant;

/// What fell due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Due {
    /// Time to send a keepalive ping.
    pub(super) keepalive: bool,
    /// Nothing was received for `idle_timeout`.
    pub(super) idle: bool,
    /// The closing handshake ran out of time.
    pub(super) close: bool,
}

#[derive(Debug)]
pub(super) struct Deadlines {
    keepalive_interval: Option<Duration>,
    idle_timeout: Option<Duration>,
    /// When bytes last arrived (or the connection started).
    last_received: Instant,
    /// When we last sent a keepalive ping.
    last_ping: Instant,
    /// When the closing handshake must be over; set once, when it starts.
    close: Option<Instant>,
}

impl Deadlines {
    pub(super) fn new(
        keepalive_interval: Option<Duration>,
        idle_timeout: Option<Duration>,
    ) -> Self {
        let now = Instant::now();
        Deadlines {
            keepalive_interval,
            idle_timeout,
            last_received: now,
            last_ping: now,
            close: None,
        }
    }

    /// Whether receiving bytes moves a deadline (so the driver reads the clock).
    pub(super) fn watches_input(&self) -> bool {
        self.keepalive_interval.is_some() || self.idle_timeout.is_some()
    }

    pub(super) fn received(&mut self, now: Instant) {
        self.last_received = now;
    }

    pub(super) fn pinged(&mut self, now: Instant) {
        self.last_ping = now;
    }

    /// Starts the close deadline, once: later calls keep the first.
    pub(super) fn start_close(&mut self, timeout: Duration) {
        if self.close.is_none() {
            self.close = Some(Instant::now() + timeout);
        }
    }

    fn keepalive_at(&self) -> Option<Instant> {
        let interval = self.keepalive_interval?;
        Some(self.last_received.max(self.last_ping) + interval)
    }

    fn idle_at(&self) -> Option<Instant> {
        Some(self.last_received + self.idle_timeout?)
    }

    /// The earliest deadline that matters: keepalive and idle only while the
    /// connection is open (`open`), the close deadline once it is set.
    pub(super) fn next(&self, open: bool) -> Option<Instant> {
        let running = [self.keepalive_at(), self.idle_at()];
        let running = running.into_iter().flatten().filter(|_| open);
        running.chain(self.close).min()
    }

    /// What is due at `now`.
    pub(super) fn due(&self, now: Instant, open: bool) -> Due {
        let past = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        Due {
            keepalive: open && past(self.keepalive_at()),
            idle: open && past(self.idle_at()),
            close: past(self.close),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bytes_received_push_the_idle_and_keepalive_deadlines_back() {
        let second = Duration::from_secs(1);
        let mut d = Deadlines::new(Some(5 * second), Some(3 * second));
        let start = Instant::now();
        assert_eq!(d.next(true), Some(start + 3 * second));
        d.received(start + 2 * second);
        assert_eq!(d.next(true), Some(start + 5 * second));
        assert_eq!(d.due(start + 4 * second, true), Due::default());
        let due = d.due(start + 7 * second, true);
        assert!(due.idle && due.keepalive && !due.close);
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_close_deadline_runs_once_the_connection_is_closing() {
        let mut d = Deadlines::new(Some(Duration::from_secs(1)), None);
        assert_eq!(d.next(false), None);
        d.start_close(Duration::from_secs(10));
        let close = d.next(false).unwrap();
        d.start_close(Duration::from_secs(99));
        assert_eq!(
            d.next(false),
            Some(close),
            "the first close deadline stands"
        );
        assert_eq!(
            d.due(close, false),
            Due {
                close: true,
                ..Due::default()
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_ping_moves_the_next_keepalive() {
        let mut d = Deadlines::new(Some(Duration::from_secs(5)), None);
        let start = Instant::now();
        d.pinged(start + Duration::from_secs(5));
        assert_eq!(d.next(true), Some(start + Duration::from_secs(10)));
    }
}
