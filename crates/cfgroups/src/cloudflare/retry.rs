//! The retry policy as a value: capped exponential backoff with jitter (built on backon),
//! `Retry-After` handling, and the whole-operation deadline that bounds every retry loop.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};

/// How a backoff delay is randomised, so that clients that failed together do not retry
/// together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Exactly the exponential delay. Useful in tests only.
    None,
    /// Uniform in `[0, delay]`: the most spreading, but may retry almost at once.
    Full,
    /// Uniform in `[delay/2, delay]`: spreads retries while keeping a floor, so a
    /// struggling server always gets at least half the intended pause.
    #[default]
    Equal,
}

/// When and how often a failed request is sent again.
///
/// The defaults are a little more patient than Cloudflare's own SDKs (which retry twice,
/// from 0.5 s up to 8 s): a reconcile that gives up early lists nothing and deletes
/// nothing, so waiting a little longer is cheap, while the deadline keeps one operation
/// from holding a reconcile cycle for long.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the first retry. Default 500 ms, as Cloudflare's SDKs use.
    pub initial_delay: Duration,
    /// Growth of the delay per retry. Default 2.
    pub factor: f32,
    /// Largest backoff delay. Default 8 s, as Cloudflare's SDKs use.
    pub max_delay: Duration,
    /// Retries after the first attempt; 0 disables retrying. Default 5, so the backoff
    /// alone sums to at most 0.5+1+2+4+8 = 15.5 s, well inside the deadline.
    pub max_retries: u32,
    /// Randomisation of each delay. Default [`Jitter::Equal`].
    pub jitter: Jitter,
    /// Upper bound on the time from the first attempt to the last response of one
    /// operation (one request with its retries; for a listing, each page). Default 60 s:
    /// a retry that could only start after it is not attempted, and the last error is
    /// reported instead.
    pub deadline: Duration,
    /// Largest `Retry-After` that is believed. Default 300 s, the length of Cloudflare's
    /// rate-limit lockout; larger values are clamped so a bad header cannot stall the
    /// process for hours.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(500),
            factor: 2.0,
            max_delay: Duration::from_secs(8),
            max_retries: 5,
            jitter: Jitter::Equal,
            deadline: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries (one attempt, still bounded by the deadline).
    pub fn no_retries() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The sequence of backoff delays, one per permitted retry, jitter applied.
    pub fn backoff(&self) -> Backoff {
        let inner = ExponentialBuilder::new()
            .with_min_delay(self.initial_delay)
            .with_factor(self.factor)
            .with_max_delay(self.max_delay)
            .with_max_times(usize::try_from(self.max_retries).unwrap_or(usize::MAX))
            .build();
        Backoff {
            inner,
            jitter: self.jitter,
            rng: fastrand::Rng::new(),
        }
    }

    /// The pause before the next attempt: the backoff delay, or the server's
    /// `Retry-After` (clamped to [`max_retry_after`](Self::max_retry_after)) when that is
    /// longer. A server that says how long to wait knows better than a formula.
    pub fn delay_before_retry(&self, backoff: Duration, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(after) => backoff.max(after.min(self.max_retry_after)),
            None => backoff,
        }
    }
}

/// The client hands its policy to backon, which draws one delay per retry from it.
impl backon::BackoffBuilder for &RetryPolicy {
    type Backoff = Backoff;

    fn build(self) -> Backoff {
        self.backoff()
    }
}

/// Jittered, capped exponential delays from a [`RetryPolicy`]; ends when the retries are
/// used up.
#[derive(Debug)]
pub struct Backoff {
    inner: backon::ExponentialBackoff,
    jitter: Jitter,
    rng: fastrand::Rng,
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.inner.next()?;
        Some(match self.jitter {
            Jitter::None => delay,
            Jitter::Full => delay.mul_f64(self.rng.f64()),
            Jitter::Equal => delay / 2 + (delay / 2).mul_f64(self.rng.f64()),
        })
    }
}

/// Parses a `Retry-After` value: delta-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), relative to `now`. A date in the past means zero;
/// anything else unparsable means no advice.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate rather than fail: the caller clamps anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.initial_delay, Duration::from_millis(500));
        assert_eq!(policy.max_delay, Duration::from_secs(8));
        assert_eq!(policy.max_retries, 5);
        assert_eq!(policy.deadline, Duration::from_secs(60));
    }

    #[test]
    fn backoff_grows_caps_and_stops() {
        let policy = RetryPolicy {
            jitter: Jitter::None,
            max_retries: 7,
            ..RetryPolicy::default()
        };
        let delays: Vec<u64> = policy.backoff().map(|d| d.as_millis() as u64).collect();
        assert_eq!(delays, vec![500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(RetryPolicy::no_retries().backoff().count(), 0);
    }

    #[test]
    fn jitter_stays_within_its_band() {
        for jitter in [Jitter::Equal, Jitter::Full] {
            let policy = RetryPolicy {
                jitter,
                max_retries: 50,
                ..RetryPolicy::default()
            };
            let plain = RetryPolicy {
                jitter: Jitter::None,
                max_retries: 50,
                ..RetryPolicy::default()
            };
            for (jittered, base) in policy.backoff().zip(plain.backoff()) {
                assert!(jittered <= base, "{jittered:?} > {base:?}");
                if jitter == Jitter::Equal {
                    assert!(jittered >= base / 2, "{jittered:?} < half of {base:?}");
                }
            }
        }
    }

    #[test]
    fn retry_after_delta_seconds() {
        let now = SystemTime::now();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_http_date() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_wins_when_longer_and_is_clamped() {
        let policy = RetryPolicy::default();
        let backoff = Duration::from_secs(1);
        assert_eq!(policy.delay_before_retry(backoff, None), backoff);
        assert_eq!(
            policy.delay_before_retry(backoff, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            policy.delay_before_retry(backoff, Some(Duration::ZERO)),
            backoff
        );
        assert_eq!(
            policy.delay_before_retry(backoff, Some(Duration::from_secs(86_400))),
            Duration::from_secs(300)
        );
    }
}
