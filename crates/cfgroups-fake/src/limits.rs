//! The rate limit and its headers: a sliding window over every request the server receives,
//! a lockout once it is exceeded, and the `Ratelimit` / `Ratelimit-Policy` / `Retry-After`
//! headers every response carries.
//!
//! Window: **sliding**. A request is admitted when fewer than `limit` requests were admitted
//! in the last `window`; this is stricter than a fixed window (no double burst across a window
//! edge), so a client that stays under it also stays under Cloudflare's. The request that
//! finds the window full trips the lockout: it and every request until the lockout ends get
//! 429, and the window starts empty afterwards, as "blocks all calls for the next five
//! minutes" reads. Requests refused during a lockout do not count. One limiter serves the
//! whole server, whatever the credentials (tests use one user).
//!
//! `Ratelimit: "default";r=<remaining>;t=<seconds>`: `t` is the seconds until the oldest
//! counted request leaves the window (when `r` next grows), rounded up; during a lockout
//! `r=0` and `t` is the lockout's rest. Every second count is rounded up, never to zero.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

/// Cloudflare's documented limit: 1200 requests...
pub const DEFAULT_LIMIT: u32 = 1200;
/// ...per five minutes.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

/// Whether one request may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Counted; `remaining` more fit in the window; a slot frees in `reset_secs`.
    Allowed { remaining: u32, reset_secs: u64 },
    /// Refused with 429; retry in `retry_after_secs`.
    Limited { retry_after_secs: u64 },
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: u32,
    window: Duration,
    lockout: Duration,
    admitted: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

/// Whole seconds, rounded up, at least 1.
pub(crate) fn ceil_secs(duration: Duration) -> u64 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    secs.max(1)
}

impl RateLimiter {
    pub(crate) fn new(limit: u32, window: Duration, lockout: Duration) -> Self {
        Self {
            limit,
            window,
            lockout,
            admitted: VecDeque::new(),
            locked_until: None,
        }
    }

    pub(crate) fn admit(&mut self, now: Instant) -> Admission {
        if let Some(until) = self.locked_until {
            if now < until {
                return Admission::Limited {
                    retry_after_secs: ceil_secs(until - now),
                };
            }
            self.locked_until = None;
        }
        while let Some(&oldest) = self.admitted.front() {
            if now.duration_since(oldest) >= self.window {
                self.admitted.pop_front();
            } else {
                break;
            }
        }
        if self.admitted.len() >= self.limit as usize {
            self.admitted.clear();
            self.locked_until = Some(now + self.lockout);
            return Admission::Limited {
                retry_after_secs: ceil_secs(self.lockout),
            };
        }
        self.admitted.push_back(now);
        let oldest = self.admitted.front().copied().unwrap_or(now);
        let remaining = self.limit.saturating_sub(self.admitted.len() as u32);
        Admission::Allowed {
            remaining,
            reset_secs: ceil_secs((oldest + self.window).saturating_duration_since(now)),
        }
    }

    /// Forgets every counted request and any lockout.
    pub(crate) fn reset(&mut self) {
        self.admitted.clear();
        self.locked_until = None;
    }

    /// Adds `Ratelimit` and `Ratelimit-Policy` for `admission`, and `Retry-After` when it was
    /// refused.
    pub(crate) fn write_headers(&self, admission: Admission, headers: &mut HeaderMap) {
        let (remaining, reset) = match admission {
            Admission::Allowed {
                remaining,
                reset_secs,
            } => (remaining, reset_secs),
            Admission::Limited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                (0, retry_after_secs)
            }
        };
        insert(
            headers,
            "ratelimit",
            format!("\"default\";r={remaining};t={reset}"),
        );
        insert(
            headers,
            "ratelimit-policy",
            format!("\"default\";q={};w={}", self.limit, ceil_secs(self.window)),
        );
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_then_lockout() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(3, Duration::from_secs(10), Duration::from_secs(20));
        for expected in [2, 1, 0] {
            match limiter.admit(start) {
                Admission::Allowed { remaining, .. } => assert_eq!(remaining, expected),
                other => panic!("{other:?}"),
            }
        }
        let later = start + Duration::from_secs(5);
        assert_eq!(
            limiter.admit(later),
            Admission::Limited {
                retry_after_secs: 20
            }
        );
        // Still locked even though the window has slid past the first requests.
        assert_eq!(
            limiter.admit(later + Duration::from_millis(10_500)),
            Admission::Limited {
                retry_after_secs: 10
            }
        );
        // After the lockout the window starts empty.
        assert!(matches!(
            limiter.admit(later + Duration::from_secs(20)),
            Admission::Allowed { remaining: 2, .. }
        ));
    }

    #[test]
    fn window_slides() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(2, Duration::from_secs(10), Duration::from_secs(10));
        limiter.admit(start);
        match limiter.admit(start + Duration::from_secs(4)) {
            Admission::Allowed {
                remaining,
                reset_secs,
            } => assert_eq!((remaining, reset_secs), (0, 6)),
            other => panic!("{other:?}"),
        }
        // The first request has left the window: one slot free, no lockout.
        assert!(matches!(
            limiter.admit(start + Duration::from_secs(10)),
            Admission::Allowed { remaining: 0, .. }
        ));
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(2001)), 3);
        assert_eq!(ceil_secs(Duration::ZERO), 1);
    }
}
