//! The request budget every request of the process passes through, so that cfgroups never
//! trips Cloudflare's rate limit (1200 requests per 5 minutes per user or token, after
//! which *every* call fails for five minutes).
//!
//! Three layers, checked in this order before each request:
//! 1. **The pause gate.** After any HTTP 429, or when the server says no requests remain
//!    (`Ratelimit: ...;r=0;t=N`), all requests wait until `Retry-After` (or the reset) has
//!    passed. One request learning about the limit stops every other one.
//! 2. **Pacing.** When a response's `Ratelimit` header says few requests remain
//!    (`r <= slow_below`), the remaining `r` are spread evenly over the `t` seconds to reset:
//!    each request reserves the next slot `t / r` after the previous one. Cloudflare
//!    counts dashboard and other clients against the same limit, so its view wins over ours.
//! 3. **The local quota**, a GCRA (governor) with a burst of `burst` and one new request
//!    every `window / (max_requests - burst)`. GCRA admits at most
//!    `burst + floor(L / interval)` requests in any interval of length `L`, so any rolling
//!    `window` sees at most `max_requests`, whatever the load pattern.
//!
//! After the local quota admits a request, the gate is checked once more (a 429 may have
//! arrived meanwhile); a request that must wait again gives its quota cell up rather than
//! returning it, so the count can only err on the safe side.
//!
//! Time comes from tokio's clock, so tests can pause and advance it.

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

/// Limits of the shared request budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Most requests in any rolling `window`. Default 1000: Cloudflare allows 1200 per
    /// 5 minutes, and the same token is also used by people and other tools.
    pub max_requests: NonZeroU32,
    /// The rolling window. Default 5 minutes, as Cloudflare counts.
    pub window: Duration,
    /// Requests that may go at once after an idle spell. Default 50: enough for a
    /// listing of many accounts to start immediately; the rest of the quota refills at an
    /// even pace (`window / (max_requests - burst)`, 316 ms by default). Clamped to
    /// `max_requests`.
    pub burst: NonZeroU32,
    /// When Cloudflare's `Ratelimit` header reports this many or fewer remaining requests,
    /// the remaining ones are spread over the time to reset. Default 100.
    pub slow_below: u64,
    /// How long to pause everything after a 429 that carries neither `Retry-After` nor a
    /// `Ratelimit` reset. Default 60 s.
    pub pause_after_429: Duration,
    /// The longest pause any header can impose. Default 5 minutes, Cloudflare's lockout;
    /// longer values are clamped so a bad header cannot stall the process for hours.
    pub max_pause: Duration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            max_requests: NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN),
            window: Duration::from_secs(300),
            burst: NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN),
            slow_below: 100,
            pause_after_429: Duration::from_secs(60),
            max_pause: Duration::from_secs(300),
        }
    }
}

impl BudgetConfig {
    /// A budget of `max_requests` per rolling `window`, the other settings at their
    /// defaults. The burst is a twentieth of the limit (at most the default 50), so that the
    /// steady pace, `(max_requests - burst) / window`, stays within 5% of the limit; pacing
    /// starts when the server reports a tenth of the limit left (at most the default 100).
    pub fn with_limit(max_requests: NonZeroU32, window: Duration) -> Self {
        let default = Self::default();
        let burst = (max_requests.get() / 20).clamp(1, default.burst.get());
        let slow_below = u64::from(max_requests.get() / 10).clamp(1, default.slow_below);
        Self {
            max_requests,
            window,
            burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
            slow_below,
            ..default
        }
    }

    /// The steady interval between requests once the burst is spent: chosen so that
    /// `burst + window / interval < max_requests + 1`.
    pub fn refill_interval(&self) -> Duration {
        let burst = self.burst.get().min(self.max_requests.get());
        let spare = self.max_requests.get() - burst;
        let nanos = self.window.as_nanos().max(1);
        let interval = match spare {
            0 => nanos,
            spare => nanos / u128::from(spare),
        } + 1;
        Duration::from_nanos(u64::try_from(interval).unwrap_or(u64::MAX))
    }
}

/// Cloudflare's `Ratelimit: "default";r=<remaining>;t=<seconds to reset>` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeader {
    pub remaining: u64,
    pub reset: Duration,
}

/// Parses a `Ratelimit` header value. With several comma-separated policies, the most
/// restrictive one (fewest remaining) is returned; `None` when no item has both `r` and `t`.
pub fn parse_ratelimit(value: &str) -> Option<RateLimitHeader> {
    value
        .split(',')
        .filter_map(|item| {
            let mut remaining = None;
            let mut reset = None;
            // The first element is the policy name; the rest are `key=value` parameters.
            for param in item.split(';').skip(1) {
                let Some((key, val)) = param.split_once('=') else {
                    continue;
                };
                let val = val.trim().trim_matches('"');
                match key.trim() {
                    "r" => remaining = val.parse::<u64>().ok(),
                    "t" => reset = val.parse::<u64>().ok().map(Duration::from_secs),
                    _ => {}
                }
            }
            Some(RateLimitHeader {
                remaining: remaining?,
                reset: reset?,
            })
        })
        .min_by_key(|header| header.remaining)
}

/// Why a request could not be admitted before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetWait {
    /// Everything is paused after a 429 or an exhausted server budget.
    Paused { ready_in: Duration },
    /// Requests are being spread out because the server budget is low.
    Pacing { ready_in: Duration },
    /// The local quota is spent.
    Quota { ready_in: Duration },
}

impl fmt::Display for BudgetWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Paused { ready_in } => write!(
                f,
                "to wait out the rate-limit pause ({}s left)",
                ready_in.as_secs_f64().ceil()
            ),
            Self::Pacing { ready_in } => write!(
                f,
                "for the next paced request slot (in {}s; the server budget is low)",
                ready_in.as_secs_f64().ceil()
            ),
            Self::Quota { ready_in } => write!(
                f,
                "for the local request budget (next request in {}s)",
                ready_in.as_secs_f64().ceil()
            ),
        }
    }
}

/// The budget at one moment, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetSnapshot {
    /// The configured limit and window.
    pub max_requests: u32,
    pub window: Duration,
    /// Requests admitted in the last `window`.
    pub used_in_window: u32,
    /// `max_requests - used_in_window`.
    pub remaining_in_window: u32,
    /// Requests admitted since the process started.
    pub admitted_total: u64,
    /// The last `Ratelimit` header seen: remaining requests, and time to reset from now.
    pub server_remaining: Option<u64>,
    pub server_reset_in: Option<Duration>,
    /// Time left on the pause gate, if paused.
    pub paused_for: Option<Duration>,
    /// The pacing interval, while pacing.
    pub pacing_interval: Option<Duration>,
}

/// `now + duration`, saturating far in the future instead of overflowing.
fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .or_else(|| now.checked_add(Duration::from_secs(30 * 365 * 86_400)))
        .unwrap_or(now)
}

/// governor's clock, read from tokio's (pausable) clock.
#[derive(Debug, Clone)]
struct TokioClock {
    start: Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

struct Pace {
    interval: Duration,
    next_slot: Instant,
    until: Instant,
}

#[derive(Default)]
struct State {
    paused_until: Option<Instant>,
    pace: Option<Pace>,
    server: Option<(RateLimitHeader, Instant)>,
    admitted: VecDeque<Instant>,
    admitted_total: u64,
}

struct Inner {
    config: BudgetConfig,
    limiter: Limiter,
    clock: TokioClock,
    state: Mutex<State>,
}

/// The process-wide request budget; clones share it.
#[derive(Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Budget {
    /// A fresh budget: the full burst is available at once.
    pub fn new(mut config: BudgetConfig) -> Self {
        config.burst = config.burst.min(config.max_requests);
        let quota = Quota::with_period(config.refill_interval())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(config.burst);
        let clock = TokioClock {
            start: Instant::now(),
        };
        let limiter = RateLimiter::direct_with_clock(quota, clock.clone());
        Self {
            inner: Arc::new(Inner {
                config,
                limiter,
                clock,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The configuration in force (with `burst` clamped).
    pub fn config(&self) -> &BudgetConfig {
        &self.inner.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is a
        // single assignment.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until one more request may be sent, and counts it. Fails at once, without
    /// waiting, when the request could not be admitted before `deadline`.
    pub async fn acquire(&self, deadline: Option<Instant>) -> Result<(), BudgetWait> {
        let fits = |at: Instant| deadline.is_none_or(|deadline| at <= deadline);
        loop {
            // 1. The pause gate.
            let now = Instant::now();
            let paused_until = self.state().paused_until.filter(|until| *until > now);
            if let Some(until) = paused_until {
                if !fits(until) {
                    return Err(BudgetWait::Paused {
                        ready_in: until - now,
                    });
                }
                tokio::time::sleep_until(until).await;
                continue;
            }

            // 2. Pacing: reserve the next slot while the server budget is low.
            let slot = {
                let mut state = self.state();
                match &mut state.pace {
                    Some(pace) if pace.until > now => {
                        let slot = pace.next_slot.max(now);
                        if !fits(slot) {
                            return Err(BudgetWait::Pacing {
                                ready_in: slot - now,
                            });
                        }
                        pace.next_slot = later(slot, pace.interval);
                        Some(slot)
                    }
                    _ => {
                        state.pace = None;
                        None
                    }
                }
            };
            let paced = slot.is_some();
            if let Some(slot) = slot {
                tokio::time::sleep_until(slot).await;
            }

            // 3. The local quota.
            loop {
                match self.inner.limiter.check() {
                    Ok(()) => break,
                    Err(not_until) => {
                        let wait = not_until.wait_time_from(self.inner.clock.now());
                        let now = Instant::now();
                        if !fits(later(now, wait)) {
                            return Err(BudgetWait::Quota { ready_in: wait });
                        }
                        tokio::time::sleep(wait).await;
                    }
                }
            }

            // 4. A 429 may have closed the gate, or a low `Ratelimit` reading started
            //    pacing, while this request waited in the quota: then it waits its turn too.
            let now = Instant::now();
            let mut state = self.state();
            let pacing = state.pace.as_ref().is_some_and(|pace| pace.until > now);
            if state.paused_until.is_some_and(|until| until > now) || (pacing && !paced) {
                continue;
            }
            state.admitted.push_back(now);
            state.admitted_total += 1;
            let window = self.inner.config.window;
            while state
                .admitted
                .front()
                .is_some_and(|first| now.duration_since(*first) >= window)
            {
                state.admitted.pop_front();
            }
            return Ok(());
        }
    }

    /// Stops every request for `duration` (clamped to `max_pause`), e.g. after a 429's
    /// `Retry-After`. An existing longer pause is kept.
    pub fn pause_for(&self, duration: Duration) {
        let until = later(Instant::now(), duration.min(self.inner.config.max_pause));
        let mut state = self.state();
        state.paused_until = Some(state.paused_until.map_or(until, |old| old.max(until)));
        tracing::warn!(
            pause_secs = duration.min(self.inner.config.max_pause).as_secs_f64(),
            "Cloudflare rate limit reached: pausing all requests"
        );
    }

    /// Records a 429: pauses everything for `retry_after`, else until the last known
    /// reset, else for `pause_after_429`.
    pub fn on_rate_limited(&self, retry_after: Option<Duration>, header: Option<RateLimitHeader>) {
        let pause = retry_after
            .or(header.map(|h| h.reset))
            .unwrap_or(self.inner.config.pause_after_429);
        self.pause_for(pause);
    }

    /// Takes in a response's `Ratelimit` header: pauses when nothing remains, paces when
    /// little remains, and stops pacing when the server reports plenty again.
    pub fn observe(&self, header: RateLimitHeader) {
        let now = Instant::now();
        let reset = header.reset.min(self.inner.config.max_pause);
        if header.remaining == 0 {
            self.state().server = Some((header, now));
            if !reset.is_zero() {
                self.pause_for(reset);
            }
            return;
        }
        let mut state = self.state();
        state.server = Some((header, now));
        if header.remaining <= self.inner.config.slow_below && !reset.is_zero() {
            let remaining = u32::try_from(header.remaining).unwrap_or(u32::MAX);
            let interval = reset / remaining;
            let next_slot = state.pace.as_ref().map_or(now, |pace| pace.next_slot);
            if state.pace.is_none() {
                tracing::info!(
                    remaining = header.remaining,
                    reset_secs = reset.as_secs(),
                    "Cloudflare request budget is low: spreading requests out"
                );
            }
            state.pace = Some(Pace {
                interval,
                next_slot,
                until: later(now, reset),
            });
        } else {
            state.pace = None;
        }
    }

    /// The budget now, for metrics.
    pub fn snapshot(&self) -> BudgetSnapshot {
        let now = Instant::now();
        let config = &self.inner.config;
        let state = self.state();
        let used = state
            .admitted
            .iter()
            .filter(|at| now.duration_since(**at) < config.window)
            .count();
        let used = u32::try_from(used).unwrap_or(u32::MAX);
        BudgetSnapshot {
            max_requests: config.max_requests.get(),
            window: config.window,
            used_in_window: used,
            remaining_in_window: config.max_requests.get().saturating_sub(used),
            admitted_total: state.admitted_total,
            server_remaining: state.server.map(|(header, _)| header.remaining),
            server_reset_in: state
                .server
                .map(|(header, seen)| header.reset.saturating_sub(now.duration_since(seen))),
            paused_for: state
                .paused_until
                .filter(|until| *until > now)
                .map(|until| until - now),
            pacing_interval: state
                .pace
                .as_ref()
                .filter(|pace| pace.until > now)
                .map(|pace| pace.interval),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_requests: u32, window_secs: u64, burst: u32) -> BudgetConfig {
        BudgetConfig {
            max_requests: NonZeroU32::new(max_requests).unwrap(),
            window: Duration::from_secs(window_secs),
            burst: NonZeroU32::new(burst).unwrap(),
            ..BudgetConfig::default()
        }
    }

    /// The largest number of `times` inside any window `[t, t + window)`.
    fn max_in_any_window(times: &[Instant], window: Duration) -> usize {
        let mut sorted = times.to_vec();
        sorted.sort();
        let mut best = 0;
        let mut start = 0;
        for end in 0..sorted.len() {
            while sorted[end].duration_since(sorted[start]) >= window {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    async fn acquire_concurrently(budget: &Budget, n: usize) -> Vec<Instant> {
        let mut tasks = Vec::new();
        for _ in 0..n {
            let budget = budget.clone();
            tasks.push(tokio::spawn(async move {
                budget.acquire(None).await.unwrap();
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.unwrap());
        }
        times
    }

    #[test]
    fn ratelimit_header_parsing() {
        assert_eq!(
            parse_ratelimit(r#""default";r=50;t=30"#),
            Some(RateLimitHeader {
                remaining: 50,
                reset: Duration::from_secs(30)
            })
        );
        assert_eq!(
            parse_ratelimit(r#""burst";r=90;t=12, "default";r=7;t=200"#),
            Some(RateLimitHeader {
                remaining: 7,
                reset: Duration::from_secs(200)
            })
        );
        assert_eq!(
            parse_ratelimit(r#"default; t=5 ; r=0"#),
            Some(RateLimitHeader {
                remaining: 0,
                reset: Duration::from_secs(5)
            })
        );
        assert_eq!(parse_ratelimit(r#""default";r=5"#), None);
        assert_eq!(parse_ratelimit(r#""default";r=x;t=5"#), None);
        assert_eq!(parse_ratelimit(""), None);
    }

    #[test]
    fn with_limit_keeps_the_steady_pace_within_five_percent() {
        for max in [1u32, 10, 90, 180, 1000, 1200] {
            let config =
                BudgetConfig::with_limit(NonZeroU32::new(max).unwrap(), Duration::from_secs(2));
            let per_window = config.window.as_secs_f64() / config.refill_interval().as_secs_f64();
            assert!(config.burst.get() <= max.max(1));
            assert!(
                per_window >= f64::from(max) * 0.95 - 1.0,
                "{max}: {per_window}"
            );
        }
    }

    #[test]
    fn refill_interval_keeps_every_window_under_the_limit() {
        let default = BudgetConfig::default();
        let interval = default.refill_interval();
        assert!(interval > Duration::from_millis(315) && interval < Duration::from_millis(317));
        // burst + floor(window / interval) must not exceed max_requests.
        for (max, burst) in [(1000, 50), (1000, 1000), (1, 1), (10, 3), (1200, 100)] {
            let config = config(max, 300, burst);
            let per_window = config.window.as_nanos() / config.refill_interval().as_nanos();
            assert!(
                u128::from(burst.min(max)) + per_window <= u128::from(max),
                "{max}/{burst}"
            );
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn never_exceeds_the_quota_in_any_rolling_window() {
        // 3x the quota, all requested at once: the first `burst` go immediately, the rest
        // are spread, and no rolling window ever holds more than the quota.
        let budget = Budget::new(config(20, 60, 5));
        let start = Instant::now();
        let times = acquire_concurrently(&budget, 60).await;
        assert_eq!(times.len(), 60);
        assert!(max_in_any_window(&times, Duration::from_secs(60)) <= 20);
        assert_eq!(times.iter().filter(|t| **t == start).count(), 5, "burst");
        assert_eq!(budget.snapshot().admitted_total, 60);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn bursty_load_after_idle_spells_stays_within_quota() {
        // N + k requests in waves separated by idle time: idle time must not let the
        // budget accumulate beyond the burst.
        let budget = Budget::new(config(10, 30, 4));
        let mut times = Vec::new();
        for wave in 0..6 {
            times.extend(acquire_concurrently(&budget, 4 + wave).await);
            tokio::time::sleep(Duration::from_secs(7)).await;
        }
        assert!(max_in_any_window(&times, Duration::from_secs(30)) <= 10);
        let snapshot = budget.snapshot();
        assert!(snapshot.used_in_window <= 10);
        assert_eq!(snapshot.remaining_in_window, 10 - snapshot.used_in_window);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_429_pauses_everyone() {
        let budget = Budget::new(config(1000, 300, 100));
        budget.acquire(None).await.unwrap();
        budget.on_rate_limited(Some(Duration::from_secs(30)), None);
        assert_eq!(budget.snapshot().paused_for, Some(Duration::from_secs(30)));
        let start = Instant::now();
        let times = acquire_concurrently(&budget, 10).await;
        for at in times {
            assert!(
                at - start >= Duration::from_secs(30),
                "admitted during the pause"
            );
        }
        assert_eq!(budget.snapshot().paused_for, None);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_pause_that_outlasts_the_deadline_fails_at_once() {
        let budget = Budget::new(BudgetConfig::default());
        budget.on_rate_limited(None, None);
        let start = Instant::now();
        let result = budget.acquire(Some(start + Duration::from_secs(10))).await;
        assert_eq!(
            result,
            Err(BudgetWait::Paused {
                ready_in: Duration::from_secs(60)
            })
        );
        assert_eq!(
            Instant::now(),
            start,
            "it must not wait for a hopeless pause"
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_low_server_budget_spreads_requests_until_reset() {
        let budget = Budget::new(BudgetConfig::default());
        budget.observe(RateLimitHeader {
            remaining: 10,
            reset: Duration::from_secs(50),
        });
        let start = Instant::now();
        let times = acquire_concurrently(&budget, 10).await;
        let mut offsets: Vec<u64> = times.iter().map(|t| (*t - start).as_secs()).collect();
        offsets.sort();
        assert_eq!(offsets, vec![0, 5, 10, 15, 20, 25, 30, 35, 40, 45]);
        assert_eq!(budget.snapshot().server_remaining, Some(10));
        // Plenty remaining again: pacing stops.
        budget.observe(RateLimitHeader {
            remaining: 900,
            reset: Duration::from_secs(50),
        });
        assert_eq!(budget.snapshot().pacing_interval, None);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn requests_queued_in_the_quota_honour_pacing_that_started_meanwhile() {
        // A quota of 2 per 10 s with a burst of 1: the later requests queue in the quota.
        let budget = Budget::new(config(2, 10, 1));
        let start = Instant::now();
        let queued = {
            let budget = budget.clone();
            tokio::spawn(async move { acquire_concurrently(&budget, 6).await })
        };
        tokio::task::yield_now().await;
        // While they wait, the server says only 3 requests are left for 60 s.
        budget.observe(RateLimitHeader {
            remaining: 3,
            reset: Duration::from_secs(60),
        });
        let mut offsets: Vec<u64> = queued
            .await
            .unwrap()
            .iter()
            .map(|t| (*t - start).as_secs())
            .collect();
        offsets.sort();
        // The first went before the reading; until the reset the rest are spread 60 s / 3
        // apart, not at the quota's 10 s; after it, the quota's pace resumes.
        assert_eq!(offsets, vec![0, 20, 40, 60, 70, 80]);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn an_exhausted_server_budget_pauses_until_reset() {
        let budget = Budget::new(BudgetConfig::default());
        budget.observe(RateLimitHeader {
            remaining: 0,
            reset: Duration::from_secs(42),
        });
        let start = Instant::now();
        budget.acquire(None).await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(42));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn header_driven_pauses_are_clamped() {
        let budget = Budget::new(BudgetConfig::default());
        budget.on_rate_limited(Some(Duration::from_secs(1_000_000)), None);
        assert_eq!(budget.snapshot().paused_for, Some(Duration::from_secs(300)));
    }
}
