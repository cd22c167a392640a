//! [`WakeLock`]: a lock for the two halves of a split connection that never
//! blocks a thread.
//!
//! A half that finds the lock taken registers its waker and returns
//! `Pending`; the holder wakes it when it lets go. The one subtle point is the
//! race between a waiter registering and the holder releasing: each side
//! writes its own flag (the waiter its `waiting`, the holder the mutex) and
//! then, after a `SeqCst` fence, reads the other's. The fences make at least
//! one of them see the other's write, so either the waiter's second try finds
//! the lock free, or the holder sees the waiter and wakes it. The loom model
//! at the bottom checks this for every interleaving
//! (`RUSTFLAGS="--cfg wscodec_loom" cargo test --release --lib lock`).
//!
//! It knows nothing of WebSockets: the halves are waiter 0 and waiter 1.

use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll, Waker};

#[cfg(wscodec_loom)]
use loom::sync::{
    atomic::{fence, AtomicBool, Ordering},
    Mutex, MutexGuard,
};
#[cfg(not(wscodec_loom))]
use std::sync::{
    atomic::{fence, AtomicBool, Ordering},
    Mutex, MutexGuard,
};
use std::sync::{PoisonError, TryLockError};

/// One task waiting for the lock.
#[derive(Debug)]
struct Waiter {
    waiting: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Waiter {
    fn new() -> Self {
        Waiter {
            waiting: AtomicBool::new(false),
            waker: Mutex::new(None),
        }
    }
}

/// A mutex for two tasks, waiter `0` and waiter `1`, that wakes a task
/// instead of blocking its thread.
#[derive(Debug)]
pub(super) struct WakeLock<T> {
    value: Mutex<T>,
    waiters: [Waiter; 2],
}

/// The lock, held; dropping it wakes whoever waits.
pub(super) struct WakeGuard<'a, T> {
    lock: &'a WakeLock<T>,
    guard: Option<MutexGuard<'a, T>>,
}

impl<T> WakeLock<T> {
    pub(super) fn new(value: T) -> Self {
        WakeLock {
            value: Mutex::new(value),
            waiters: [Waiter::new(), Waiter::new()],
        }
    }

    /// The lock if it is free now.
    pub(super) fn try_lock(&self) -> Option<WakeGuard<'_, T>> {
        let guard = match self.value.try_lock() {
            Ok(guard) => guard,
            // A panic in a poll leaves the state as consistent as any other
            // interrupted poll.
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(WakeGuard {
            lock: self,
            guard: Some(guard),
        })
    }

    /// The lock, or `Pending` with `cx`'s waker registered as `waiter`'s.
    pub(super) fn poll_lock(&self, waiter: usize, cx: &mut Context<'_>) -> Poll<WakeGuard<'_, T>> {
        if let Some(guard) = self.try_lock() {
            return Poll::Ready(guard);
        }
        let me = &self.waiters[waiter];
        *me.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        me.waiting.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // The holder may have let go before it could see our flag.
        match self.try_lock() {
            Some(guard) => {
                me.waiting.store(false, Ordering::Relaxed);
                Poll::Ready(guard)
            }
            None => Poll::Pending,
        }
    }

    /// The lock, blocking the thread until it is free: only for callers that
    /// cannot wait otherwise and will hold it briefly.
    pub(super) fn lock(&self) -> WakeGuard<'_, T> {
        let guard = self.value.lock().unwrap_or_else(PoisonError::into_inner);
        WakeGuard {
            lock: self,
            guard: Some(guard),
        }
    }

    pub(super) fn into_inner(self) -> T {
        self.value
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Deref for WakeGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("held until drop")
    }
}

impl<T> DerefMut for WakeGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("held until drop")
    }
}

impl<T> Drop for WakeGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.guard.take());
        // Pairs with the fence in `poll_lock`.
        fence(Ordering::SeqCst);
        for waiter in &self.lock.waiters {
            if waiter.waiting.load(Ordering::Relaxed)
                && waiter.waiting.swap(false, Ordering::SeqCst)
            {
                let waker = waiter
                    .waker
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
        }
    }
}

#[cfg(all(test, not(wscodec_loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;

    #[derive(Default)]
    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_task_that_found_the_lock_taken_is_woken_when_it_is_released() {
        let lock = WakeLock::new(0);
        let wakes = Arc::new(CountWakes::default());
        let waker = Waker::from(wakes.clone());
        let held = lock.try_lock().unwrap();
        assert!(lock
            .poll_lock(1, &mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        drop(held);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert!(lock
            .poll_lock(1, &mut Context::from_waker(&waker))
            .is_ready());
    }
}

/// Every interleaving of a holder and a waiter: a waiter that got `Pending`
/// is woken. Run with `RUSTFLAGS="--cfg wscodec_loom" cargo test --release
/// --lib lock`.
#[cfg(all(test, wscodec_loom))]
mod loom_model {
    use std::sync::Arc as StdArc;
    use std::task::Wake;

    use loom::sync::atomic::{AtomicBool, Ordering};
    use loom::sync::Arc;
    use loom::thread;

    use super::*;

    struct Flag(Arc<AtomicBool>);

    impl Wake for Flag {
        fn wake(self: StdArc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Polls for the lock the way an executor would: wait for the wake-up
    /// after each `Pending`, and fail if it never comes.
    fn acquire_like_a_task(lock: &WakeLock<usize>, who: usize) {
        let woken = Arc::new(AtomicBool::new(false));
        let waker = Waker::from(StdArc::new(Flag(woken.clone())));
        loop {
            woken.store(false, Ordering::SeqCst);
            if let Poll::Ready(mut guard) = lock.poll_lock(who, &mut Context::from_waker(&waker)) {
                *guard += 1;
                // A poll takes time: let the other thread run while we hold
                // the lock (loom switches threads only at such points).
                thread::yield_now();
                return;
            }
            // Pending: only a wake-up lets a task be polled again.
            while !woken.load(Ordering::SeqCst) {
                thread::yield_now();
            }
        }
    }

    #[test]
    fn a_pending_waiter_is_always_woken() {
        loom::model(|| {
            let lock = Arc::new(WakeLock::new(0usize));
            let other = {
                let lock = lock.clone();
                thread::spawn(move || acquire_like_a_task(&lock, 0))
            };
            acquire_like_a_task(&lock, 1);
            other.join().unwrap();
            assert_eq!(*lock.try_lock().unwrap(), 2);
        });
    }
}
