//! Timers for node code: [`sleep`], [`sleep_until`] and [`timeout`], used instead of
//! `tokio::time`'s (a clippy lint points there).
//!
//! Under the real runtime and turmoil they are tokio's. Under madsim they wrap madsim's `Sleep`,
//! which registers a new entry in the simulator's timer heap on every poll that finds it
//! pending, and never takes one out before it expires: a `select!` loop that polls a long
//! timeout on each of its wake-ups, or a request timeout polled on each chunk of its response,
//! leaves hundreds of stale entries behind, and each one later wakes its task for nothing
//! (the task then runs its loop once more and registers again). Here a sleep registers once
//! per deadline, through a relay that forwards the wake-up only while the sleep is alive, to
//! the waker of its latest poll. The deadline and the moment the sleep completes are unchanged.

use std::future::{Future, IntoFuture};
use std::time::Duration;

/// The error of a [`timeout`] whose deadline came first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline has elapsed")]
pub struct Elapsed;

/// Runs `future` until it completes or `duration` has passed, whichever comes first (the
/// future is polled first, as tokio's `timeout` does). The deadline is taken now, when the
/// call is made, not when the result is first polled.
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> impl Future<Output = Result<F::Output, Elapsed>> {
    #[cfg(not(madsim))]
    let timed = plain::timeout(duration, future);
    #[cfg(madsim)]
    let timed = relayed::timeout(duration, future);
    timed
}

#[cfg(not(madsim))]
pub use plain::{interval, sleep, sleep_until, Interval, Sleep};

/// A deadline that moves often, mostly later (an idle timeout pushed back by each message, a
/// connection's per-call deadline): [`Deadline::expired`] completes once the latest deadline
/// set has come. Moving a sleep on every change would register a timer entry per change (an
/// entry is made per deadline polled); this keeps the sleep where it is when the deadline
/// moves later and, if the sleep then comes too early, moves it once to the current deadline:
/// about one timer entry per period, however many messages pass in it. The moment it
/// completes is exact all the same.
#[derive(Debug)]
pub struct Deadline {
    sleep: std::pin::Pin<Box<Sleep>>,
    due: tokio::time::Instant,
}

impl Deadline {
    pub fn at(due: tokio::time::Instant) -> Self {
        Deadline { sleep: Box::pin(sleep_until(due)), due }
    }

    /// `after` from now.
    pub fn after(after: Duration) -> Self {
        Deadline::at(tokio::time::Instant::now() + after)
    }

    /// Moves the deadline to `due`, either way.
    pub fn set(&mut self, due: tokio::time::Instant) {
        if due < self.sleep.deadline() {
            self.sleep.as_mut().reset(due);
        }
        self.due = due;
    }

    /// Moves the deadline to `after` from now (activity, for an idle timeout).
    pub fn set_after(&mut self, after: Duration) {
        self.set(tokio::time::Instant::now() + after);
    }

    /// Completes once the deadline has come.
    pub async fn expired(&mut self) {
        std::future::poll_fn(|cx| self.poll_expired(cx)).await
    }

    fn poll_expired(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        use std::future::Future as _;
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return std::task::Poll::Pending;
            }
            // `set` moves the sleep whenever the deadline comes before it, so here it is at or
            // before the deadline.
            if self.sleep.deadline() >= self.due {
                return std::task::Poll::Ready(());
            }
            let due = self.due;
            self.sleep.as_mut().reset(due);
        }
    }
}

#[cfg(madsim)]
pub use relayed::{interval, sleep, sleep_until, Interval, Sleep};

#[cfg(not(madsim))]
#[allow(clippy::disallowed_methods, reason = "tokio's timers, behind the ones node code uses")]
mod plain {
    use std::future::{Future, IntoFuture};
    use std::time::Duration;

    use tokio::time::Instant;
    pub use tokio::time::{Interval, Sleep};

    pub fn sleep(duration: Duration) -> Sleep {
        tokio::time::sleep(duration)
    }

    pub fn sleep_until(deadline: Instant) -> Sleep {
        tokio::time::sleep_until(deadline)
    }

    pub fn interval(period: Duration) -> Interval {
        tokio::time::interval(period)
    }

    pub fn timeout<F: IntoFuture>(
        duration: Duration,
        future: F,
    ) -> impl Future<Output = Result<F::Output, super::Elapsed>> {
        let timed = tokio::time::timeout(duration, future);
        async move { timed.await.map_err(|_| super::Elapsed) }
    }
}

#[cfg(madsim)]
#[allow(clippy::disallowed_methods, reason = "madsim's timers, wrapped")]
mod relayed {
    use std::future::{poll_fn, Future, IntoFuture};
    use std::pin::Pin;
    use std::sync::{Arc, Mutex, Weak};
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::Duration;

    use tokio::time::Instant;

    pub fn timeout<F: IntoFuture>(
        duration: Duration,
        future: F,
    ) -> impl Future<Output = Result<F::Output, super::Elapsed>> {
        let future = future.into_future();
        let sleep = sleep(duration);
        async move {
            tokio::select! {
                biased;
                out = future => Ok(out),
                _ = sleep => Err(super::Elapsed),
            }
        }
    }

    /// Waits until `duration` has elapsed.
    pub fn sleep(duration: Duration) -> Sleep {
        Sleep { inner: tokio::time::sleep(duration), waiting: None }
    }

    /// Waits until `deadline` is reached.
    pub fn sleep_until(deadline: Instant) -> Sleep {
        Sleep { inner: tokio::time::sleep_until(deadline), waiting: None }
    }

    /// The waker of the sleep's latest poll, shared with the relay its timer entry holds.
    type Waiting = Arc<Mutex<Option<Waker>>>;

    /// A madsim sleep that holds one timer entry per deadline.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    #[derive(Debug)]
    pub struct Sleep {
        inner: tokio::time::Sleep,
        /// Set once the timer entry for the current deadline is registered.
        waiting: Option<Waiting>,
    }

    impl Sleep {
        pub fn deadline(&self) -> Instant {
            self.inner.deadline()
        }

        pub fn is_elapsed(&self) -> bool {
            self.inner.is_elapsed()
        }

        /// Moves the deadline; the entry of the old one, if any, no longer wakes anyone.
        pub fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
            let this = &mut *self;
            if this.inner.deadline() != deadline {
                Pin::new(&mut this.inner).reset(deadline);
                this.waiting = None;
            }
        }
    }

    /// What the timer entry wakes: the sleep's latest waker, if the sleep still waits.
    struct Relay(Weak<Mutex<Option<Waker>>>);

    impl Wake for Relay {
        fn wake(self: Arc<Self>) {
            let waker = self.0.upgrade().and_then(|w| w.lock().expect("single-threaded").take());
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    impl Future for Sleep {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let this = &mut *self;
            if this.inner.is_elapsed() {
                return Poll::Ready(());
            }
            match &this.waiting {
                Some(waiting) => {
                    let mut slot = waiting.lock().expect("single-threaded");
                    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *slot = Some(cx.waker().clone());
                    }
                }
                None => {
                    let waiting: Waiting = Arc::new(Mutex::new(Some(cx.waker().clone())));
                    let relay = Waker::from(Arc::new(Relay(Arc::downgrade(&waiting))));
                    // Pending (not elapsed, checked above): madsim registers the one entry.
                    let _ = Pin::new(&mut this.inner).poll(&mut Context::from_waker(&relay));
                    this.waiting = Some(waiting);
                }
            }
            Poll::Pending
        }
    }

    /// Ticks every `period`, the first tick at once; a late tick is followed at once by the
    /// ones it missed (tokio's default, `MissedTickBehavior::Burst`).
    pub fn interval(period: Duration) -> Interval {
        assert!(period > Duration::ZERO, "`period` must be non-zero");
        Interval { delay: sleep_until(Instant::now()), period }
    }

    #[derive(Debug)]
    pub struct Interval {
        delay: Sleep,
        period: Duration,
    }

    impl Interval {
        /// Completes at the next tick, with the instant it was due.
        pub async fn tick(&mut self) -> Instant {
            poll_fn(|cx| self.poll_tick(cx)).await
        }

        pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
            if Pin::new(&mut self.delay).poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.delay.deadline();
            Pin::new(&mut self.delay).reset(due + self.period);
            Poll::Ready(due)
        }
    }
}

/// The relayed sleeps in simulated time (`cargo madsim-test -p sim --lib timer`), where the
/// instants are exact to the millisecond (madsim adds some microseconds per step).
#[cfg(all(test, madsim))]
mod tests {
    use std::future::{poll_fn, Future};
    use std::pin::{pin, Pin};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    /// Counts the polls of the future it wraps: each is a wake-up of the task.
    struct Polls<F> {
        inner: Pin<Box<F>>,
        count: Arc<AtomicUsize>,
    }

    impl<F: Future> Future for Polls<F> {
        type Output = F::Output;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            self.count.fetch_add(1, Ordering::Relaxed);
            self.inner.as_mut().poll(cx)
        }
    }

    #[tokio::test]
    async fn a_sleep_polled_on_every_turn_of_a_loop_ends_at_its_deadline() {
        let start = Instant::now();
        let mut long = pin!(sleep(Duration::from_millis(500)));
        let mut turns = 0;
        loop {
            tokio::select! {
                _ = &mut long => break,
                _ = sleep(Duration::from_millis(10)) => turns += 1,
            }
        }
        assert_eq!(turns, 49);
        assert_eq!(start.elapsed().as_millis(), 500);
    }

    #[tokio::test]
    async fn a_dropped_sleep_wakes_no_one() {
        let mut short = sleep(Duration::from_millis(10));
        // Registered with this task's waker, then dropped before its deadline.
        poll_fn(|cx| {
            assert!(Pin::new(&mut short).poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        drop(short);
        let count = Arc::new(AtomicUsize::new(0));
        Polls { inner: Box::pin(sleep(Duration::from_millis(100))), count: count.clone() }.await;
        // The first poll and the one at 100 ms: nothing at 10 ms.
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn reset_moves_the_deadline_either_way() {
        let start = Instant::now();
        let mut s = pin!(sleep(Duration::from_millis(100)));
        poll_fn(|cx| {
            assert!(s.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        s.as_mut().reset(start + Duration::from_millis(40));
        s.as_mut().await;
        assert_eq!(start.elapsed().as_millis(), 40);
        let mut s = pin!(sleep(Duration::from_millis(10)));
        s.as_mut().reset(start + Duration::from_millis(200));
        s.await;
        assert_eq!(start.elapsed().as_millis(), 200);
    }

    #[tokio::test]
    async fn a_deadline_pushed_back_expires_at_the_last_one_with_one_timer_entry_per_period() {
        let start = Instant::now();
        let mut idle = Deadline::after(Duration::from_millis(100));
        // Pushed back every 10 ms for 300 ms, then left alone: it expires at 400 ms.
        for _ in 0..30 {
            sleep(Duration::from_millis(10)).await;
            idle.set_after(Duration::from_millis(100));
        }
        let count = Arc::new(AtomicUsize::new(0));
        Polls { inner: Box::pin(idle.expired()), count: count.clone() }.await;
        assert_eq!(start.elapsed().as_millis(), 400);
        // The first poll (at 300 ms, past the first sleep, which moves to 400) and the wake
        // at 400: none for the changes.
        assert_eq!(count.load(Ordering::Relaxed), 2);
        // Brought forward, it comes at the earlier time.
        let start = Instant::now();
        let mut d = Deadline::after(Duration::from_millis(500));
        d.set(start + Duration::from_millis(50));
        d.expired().await;
        assert_eq!(start.elapsed().as_millis(), 50);
    }

    #[tokio::test]
    async fn timeout_and_interval() {
        let start = Instant::now();
        assert_eq!(timeout(Duration::from_millis(50), sleep(Duration::from_millis(20))).await, Ok(()));
        assert_eq!(timeout(Duration::from_millis(50), sleep(Duration::from_millis(90))).await, Err(Elapsed));
        assert_eq!(start.elapsed().as_millis(), 70);
        let mut every = interval(Duration::from_millis(30));
        let first = every.tick().await;
        let second = every.tick().await;
        assert_eq!((second - first).as_millis(), 30);
    }
}
