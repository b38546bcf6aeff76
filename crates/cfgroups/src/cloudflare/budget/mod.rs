//! The request budget every request of the process passes through, so that cfgroups never
//! trips Cloudflare's rate limit (1200 requests per 5 minutes per user or token, after which
//! *every* call fails for five minutes), while a run that fits in the limit goes at network
//! speed.
//!
//! Cloudflare's limit is a count per window, not a rate, and so is the budget. A request is
//! admitted when all of these let it go, and waits exactly until the last of them does:
//! 1. **The lockout gate.** After an HTTP 429, every request waits for `Retry-After` (or the
//!    `Ratelimit` reset, or `pause_after_429`). One request learning of a lockout holds all.
//! 2. **The configured window** ([`window::AdmissionWindow`]): at most `max_requests`
//!    admissions in any rolling `window`, all of them available at once; when it is full,
//!    the next request goes the moment the oldest admission leaves it.
//! 3. **The server's declared windows** ([`window::ServerWindow`]): a `Ratelimit-Policy`
//!    stricter than the configured window is held too, at the server's own figures.
//! 4. **The server's word** ([`server::Remaining`]): never more than the `r` the last
//!    `Ratelimit` header reported before its `t` has passed, for the server also counts
//!    other clients of the same token.
//!
//! The server's limits are learned from its answers, so until the first answer arrives one
//! request goes at a time: a process's first round trip is the only one spent on learning.
//! Waiting for a lockout, or for the server's `t`, longer than `max_wait` fails the request
//! at once instead ([`BudgetError`]). Nothing else limits the pace: no burst size, no
//! steady rate. Time comes from tokio's clock, so tests can pause and advance it.

pub mod server;
pub mod window;

use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use server::{RateLimitHeader, RateLimitPolicy, Remaining, parse_policy, parse_ratelimit};
use window::{AdmissionWindow, Room, ServerWindow};

/// Limits of the shared request budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Most requests in any rolling `window`. Default 1000: Cloudflare allows 1200 per
    /// 5 minutes, and the same token is also used by people and other tools.
    pub max_requests: NonZeroU32,
    /// The rolling window. Default 5 minutes, as Cloudflare counts.
    pub window: Duration,
    /// How long to hold every request after a 429 that carries neither `Retry-After` nor a
    /// `Ratelimit` reset. Default 60 s.
    pub pause_after_429: Duration,
    /// The longest announced wait (a lockout after a 429, or the server's reset when it
    /// reports nothing remaining) that requests sit out; a longer one fails them at once.
    /// Default 6 minutes: Cloudflare's 5-minute lockout, and a minute to spare.
    pub max_wait: Duration,
}

/// [`BudgetConfig::max_wait`]'s default.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(360);

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            max_requests: NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN),
            window: Duration::from_secs(300),
            pause_after_429: Duration::from_secs(60),
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

impl BudgetConfig {
    /// A budget of `max_requests` per rolling `window`, the other settings at their defaults.
    pub fn with_limit(max_requests: NonZeroU32, window: Duration) -> Self {
        Self {
            max_requests,
            window,
            ..Self::default()
        }
    }
}

/// What a request is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitReason {
    /// The first answer, which tells the server's limits, has not arrived yet.
    FirstAnswer,
    /// A lockout announced by a 429.
    Lockout,
    /// The server reported no requests remaining until its reset.
    ServerReset,
    /// The server's declared window (`Ratelimit-Policy`) is full.
    ServerPolicy,
    /// The configured window (`--max-requests` per `--budget-window`) is full.
    Budget,
}

impl WaitReason {
    /// A stable snake_case name, for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstAnswer => "first_answer",
            Self::Lockout => "lockout",
            Self::ServerReset => "server_reset",
            Self::ServerPolicy => "server_policy",
            Self::Budget => "budget",
        }
    }

    /// Whether the server announced this wait (as opposed to a window cfgroups keeps).
    pub fn announced(self) -> bool {
        matches!(self, Self::Lockout | Self::ServerReset)
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FirstAnswer => "Cloudflare's first answer (it tells the rate limit)",
            Self::Lockout => "Cloudflare's rate-limit lockout (HTTP 429)",
            Self::ServerReset => "Cloudflare's rate-limit reset (no requests remaining)",
            Self::ServerPolicy => "Cloudflare's declared rate-limit window",
            Self::Budget => "the request budget (--max-requests per --budget-window)",
        })
    }
}

/// A request that will not be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BudgetError {
    /// The announced wait is longer than `max_wait`.
    #[error(
        "{reason} holds every request for another {}s, longer than the {}s allowed (--max-rate-limit-wait)",
        ready_in.as_secs_f64().ceil(),
        max_wait.as_secs()
    )]
    TooLong {
        reason: WaitReason,
        ready_in: Duration,
        max_wait: Duration,
    },
}

/// A wait in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    pub reason: WaitReason,
    /// Time left, when known (`None`: until a request in flight is answered).
    pub ready_in: Option<Duration>,
}

/// The budget at one moment, for metrics, logs and the waiting notice.
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
    /// Requests admitted and not yet answered.
    pub in_flight: usize,
    /// The last `Ratelimit` header seen: remaining requests, and time to reset from now.
    pub server_remaining: Option<u64>,
    pub server_reset_in: Option<Duration>,
    /// The server's declared windows held because they are stricter than the budget.
    pub server_policies: Vec<RateLimitPolicy>,
    /// Time left on a lockout, if any.
    pub paused_for: Option<Duration>,
    /// What waiting requests wait for, if any request waits.
    pub waiting: Option<Waiting>,
}

/// What one answer said about the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerSignals {
    pub status: u16,
    pub ratelimit: Option<RateLimitHeader>,
    pub policies: Vec<RateLimitPolicy>,
    pub retry_after: Option<Duration>,
}

/// Why admission must wait: what for, and until when (`None`: until an answer arrives).
#[derive(Debug, Clone, Copy)]
struct Hold {
    reason: WaitReason,
    until: Option<Instant>,
}

impl Hold {
    /// The later of two holds: a request must wait for both.
    fn and(self, other: Hold) -> Hold {
        match (self.until, other.until) {
            (None, _) => self,
            (_, None) => other,
            (Some(a), Some(b)) if b > a => other,
            _ => self,
        }
    }

    fn from_room(room: Room, reason: WaitReason) -> Option<Hold> {
        match room {
            Room::Now => None,
            Room::At(until) => Some(Hold {
                reason,
                until: Some(until),
            }),
            Room::Answer => Some(Hold {
                reason,
                until: None,
            }),
        }
    }
}

struct State {
    local: AdmissionWindow,
    /// Requests in flight and answered within the configured window, whatever the server
    /// declares: where a declared window starts counting from.
    recent: ServerWindow,
    policies: Vec<(RateLimitPolicy, ServerWindow)>,
    remaining: Option<Remaining>,
    last_header: Option<(RateLimitHeader, Instant)>,
    paused_until: Option<Instant>,
    admitted_total: u64,
    in_flight: usize,
    waiters: usize,
    /// Whether any answer has arrived: until one has, one request goes at a time.
    heard: bool,
}

impl State {
    /// Whether a request may go at `now`, else what it waits for.
    fn hold(&mut self, now: Instant) -> Option<Hold> {
        if let Some(until) = self.paused_until.filter(|until| *until > now) {
            return Some(Hold {
                reason: WaitReason::Lockout,
                until: Some(until),
            });
        }
        if !self.heard && self.in_flight > 0 {
            return Some(Hold {
                reason: WaitReason::FirstAnswer,
                until: None,
            });
        }
        let mut hold = Hold::from_room(self.local.room(now), WaitReason::Budget);
        for (_, window) in &mut self.policies {
            if let Some(next) = Hold::from_room(window.room(now), WaitReason::ServerPolicy) {
                hold = Some(hold.map_or(next, |hold| hold.and(next)));
            }
        }
        if let Some(remaining) = &self.remaining {
            let room = remaining.room(self.admitted_total, self.in_flight, now);
            if let Some(next) = Hold::from_room(room, WaitReason::ServerReset) {
                hold = Some(hold.map_or(next, |hold| hold.and(next)));
            }
        }
        hold
    }

    fn admit(&mut self, now: Instant) -> (u64, usize) {
        let in_flight_before = self.in_flight;
        self.local.admit(now);
        self.recent.admit();
        for (_, window) in &mut self.policies {
            window.admit();
        }
        self.admitted_total += 1;
        self.in_flight += 1;
        (self.admitted_total, in_flight_before)
    }

    fn answered(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.recent.answer(now);
        for (_, window) in &mut self.policies {
            window.answer(now);
        }
    }

    /// Holds every declared policy the configured window does not already keep to; a policy
    /// held already keeps its count, a new one starts from the recent past: the requests in
    /// flight, and those answered within its window (known as far back as the configured
    /// window; for an older past, the server's `Ratelimit` remaining speaks).
    fn hold_policies(&mut self, declared: &[RateLimitPolicy], now: Instant) {
        let max = u32::try_from(self.local.limit()).unwrap_or(u32::MAX);
        let window = self.local.window();
        let mut held = Vec::new();
        for policy in declared {
            if policy.implied_by(max, window) || held.iter().any(|(p, _)| p == policy) {
                continue;
            }
            let existing = self
                .policies
                .iter()
                .position(|(p, _)| p == policy)
                .map(|index| self.policies.swap_remove(index));
            let entry = existing.unwrap_or_else(|| {
                tracing::info!(
                    quota = policy.quota,
                    window_secs = policy.window.as_secs(),
                    "Cloudflare declares a stricter rate limit than the budget: holding to it"
                );
                let mut server = ServerWindow::new(policy.quota, policy.window);
                self.recent.used(now);
                server.seed(
                    self.recent.in_flight(),
                    self.recent.answered_within(now, policy.window),
                );
                (*policy, server)
            });
            held.push(entry);
        }
        self.policies = held;
    }
}

struct Inner {
    config: BudgetConfig,
    state: Mutex<State>,
    /// Wakes waiting requests when an answer or a header may have made room.
    changed: Notify,
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

/// One admitted request. Hand the answer's headers to [`Permit::answered`]; dropping it
/// unanswered (a transport error, a timeout) counts the request as answered then.
#[must_use = "a permit tracks its request until the answer"]
pub struct Permit {
    budget: Budget,
    seq: u64,
    in_flight_before: usize,
    settled: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("seq", &self.seq)
            .field("in_flight_before", &self.in_flight_before)
            .finish()
    }
}

impl Permit {
    /// The admission's number, from 1.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Takes in what the answer said about the limit.
    pub fn answered(mut self, signals: &ServerSignals) {
        self.settled = true;
        self.budget
            .settle(self.seq, self.in_flight_before, Some(signals));
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.settled {
            self.budget.settle(self.seq, self.in_flight_before, None);
        }
    }
}

/// Counts a waiting request for as long as it waits.
struct Waiter<'a>(&'a Budget);

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.waiters = state.waiters.saturating_sub(1);
    }
}

/// `now + duration`, saturating far in the future instead of overflowing.
fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .or_else(|| now.checked_add(Duration::from_secs(30 * 365 * 86_400)))
        .unwrap_or(now)
}

impl Budget {
    /// A fresh budget: the whole window is available at once.
    pub fn new(config: BudgetConfig) -> Self {
        let state = State {
            local: AdmissionWindow::new(config.max_requests.get(), config.window),
            recent: ServerWindow::new(u64::MAX, config.window),
            policies: Vec::new(),
            remaining: None,
            last_header: None,
            paused_until: None,
            admitted_total: 0,
            in_flight: 0,
            waiters: 0,
            heard: false,
        };
        Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(state),
                changed: Notify::new(),
            }),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &BudgetConfig {
        &self.inner.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update keeps the state consistent even if a holder panicked.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until one more request may be sent, and counts it. Fails at once, without
    /// waiting, when an announced wait is longer than [`BudgetConfig::max_wait`].
    pub async fn acquire(&self) -> Result<Permit, BudgetError> {
        let mut waiter = None;
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let hold = {
                let mut state = self.state();
                let now = Instant::now();
                match state.hold(now) {
                    None => {
                        let (seq, in_flight_before) = state.admit(now);
                        drop(state);
                        drop(waiter);
                        return Ok(Permit {
                            budget: self.clone(),
                            seq,
                            in_flight_before,
                            settled: false,
                        });
                    }
                    Some(hold) => {
                        if let (true, Some(until)) = (hold.reason.announced(), hold.until) {
                            let ready_in = until - now;
                            if ready_in > self.inner.config.max_wait {
                                return Err(BudgetError::TooLong {
                                    reason: hold.reason,
                                    ready_in,
                                    max_wait: self.inner.config.max_wait,
                                });
                            }
                        }
                        if waiter.is_none() {
                            state.waiters += 1;
                            waiter = Some(Waiter(self));
                        }
                        hold
                    }
                }
            };
            match hold.until {
                Some(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = &mut changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    fn settle(&self, seq: u64, in_flight_before: usize, signals: Option<&ServerSignals>) {
        let now = Instant::now();
        {
            let mut state = self.state();
            state.answered(now);
            let Some(signals) = signals else {
                drop(state);
                self.inner.changed.notify_waiters();
                return;
            };
            state.heard = true;
            if signals.status == 429 {
                let pause = signals
                    .retry_after
                    .or(signals.ratelimit.map(|header| header.reset))
                    .unwrap_or(self.inner.config.pause_after_429);
                let until = later(now, pause);
                if state.paused_until.is_none_or(|old| old < until) {
                    tracing::warn!(
                        pause_secs = pause.as_secs_f64(),
                        "Cloudflare rate limit reached: holding every request"
                    );
                    state.paused_until = Some(until);
                }
            }
            if !signals.policies.is_empty() {
                state.hold_policies(&signals.policies, now);
            }
            let newer = state.remaining.is_none_or(|rule| seq > rule.after);
            match signals.ratelimit {
                Some(header) if newer => {
                    state.remaining =
                        Some(Remaining::from_header(header, seq, in_flight_before, now));
                    state.last_header = Some((header, now));
                }
                // A later answer without the header, once the last word has expired: the
                // server no longer says, and the budget's windows alone apply.
                None if newer && state.remaining.is_some_and(|rule| now >= rule.until) => {
                    state.remaining = None;
                }
                _ => {}
            }
        }
        self.inner.changed.notify_waiters();
    }

    /// The budget now, for metrics.
    pub fn snapshot(&self) -> BudgetSnapshot {
        let now = Instant::now();
        let config = &self.inner.config;
        let mut state = self.state();
        let used = u32::try_from(state.local.used(now)).unwrap_or(u32::MAX);
        let waiting = if state.waiters > 0 {
            state.hold(now).map(|hold| Waiting {
                reason: hold.reason,
                ready_in: hold.until.map(|until| until.saturating_duration_since(now)),
            })
        } else {
            None
        };
        BudgetSnapshot {
            max_requests: config.max_requests.get(),
            window: config.window,
            used_in_window: used,
            remaining_in_window: config.max_requests.get().saturating_sub(used),
            admitted_total: state.admitted_total,
            in_flight: state.in_flight,
            server_remaining: state.last_header.map(|(header, _)| header.remaining),
            server_reset_in: state
                .last_header
                .map(|(header, seen)| header.reset.saturating_sub(now.duration_since(seen))),
            server_policies: state.policies.iter().map(|(policy, _)| *policy).collect(),
            paused_for: state
                .paused_until
                .filter(|until| *until > now)
                .map(|until| until - now),
            waiting,
        }
    }
}

#[cfg(test)]
mod tests;
