//! Waiting for something to come true: a condition checked every few milliseconds until it
//! holds or a deadline passes, never a fixed sleep. One deadline rule ([`Deadline`]), driven
//! by an async loop for tests on a runtime and by a blocking one for synchronous tests.

use std::time::{Duration, Instant};

/// How long a condition may take to come true. Generous: on a loaded 2-core machine a build
/// in the background can stall a process for seconds; a passing run waits far less.
pub const WAIT: Duration = Duration::from_secs(20);

/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(20);

/// When to give up, and how long to pause between checks until then.
struct Deadline(Instant);

impl Deadline {
    fn after(timeout: Duration) -> Self {
        Self(Instant::now() + timeout)
    }

    /// The pause before the next check, or `None` once the deadline has passed.
    fn pause(&self) -> Option<Duration> {
        let left = self.0.saturating_duration_since(Instant::now());
        (!left.is_zero()).then(|| POLL.min(left))
    }
}

/// Checks `check` until it returns `Some`, or `None` once `timeout` has passed.
pub async fn within<T>(timeout: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Deadline::after(timeout);
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        tokio::time::sleep(deadline.pause()?).await;
    }
}

/// [`within`], blocking the thread between checks: for synchronous tests.
pub fn within_blocking<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Deadline::after(timeout);
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        std::thread::sleep(deadline.pause()?);
    }
}

/// Checks `check` until it returns `Some`; panics naming `what` after `timeout`.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    check: impl AsyncFnMut() -> Option<T>,
) -> T {
    within(timeout, check)
        .await
        .unwrap_or_else(|| timed_out(what, timeout))
}

/// [`eventually`], blocking the thread between checks: for synchronous tests.
pub fn wait_until<T>(what: &str, timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
    within_blocking(timeout, check).unwrap_or_else(|| timed_out(what, timeout))
}

fn timed_out(what: &str, timeout: Duration) -> ! {
    panic!("timed out after {timeout:?} waiting for {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_comes_true_is_returned() {
        let mut checks = 0;
        let value = wait_until("the third check", WAIT, || {
            checks += 1;
            (checks == 3).then_some(checks)
        });
        assert_eq!(value, 3);
    }

    #[test]
    fn a_condition_that_never_holds_gives_up_after_the_timeout() {
        let started = Instant::now();
        let timeout = Duration::from_millis(100);
        assert_eq!(within_blocking(timeout, || None::<()>), None);
        assert!(started.elapsed() >= timeout);
    }

    #[test]
    #[should_panic(expected = "waiting for nothing")]
    fn giving_up_names_what_was_awaited() {
        wait_until("nothing", Duration::from_millis(10), || None::<()>);
    }

    #[tokio::test]
    async fn the_async_loop_follows_the_same_rule() {
        let mut checks = 0;
        let value = eventually("the second check", WAIT, async || {
            checks += 1;
            (checks == 2).then_some("done")
        })
        .await;
        assert_eq!(value, "done");
        assert_eq!(
            within(Duration::from_millis(50), async || None::<()>).await,
            None
        );
    }
}
