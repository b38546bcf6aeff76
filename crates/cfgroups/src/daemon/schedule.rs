//! When the daemon reconciles next: the interval tick (with jitter, so a fleet of daemons
//! does not stampede the API), and per-account retries with capped exponential backoff
//! after a failure, so one failing account neither holds the others nor waits a whole
//! interval.

use std::collections::BTreeMap;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::time::Instant;

use crate::model::AccountId;

/// First retry delay after an account fails; doubles per consecutive failure.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(10);

/// The fraction of the interval by which each tick may land early or late.
pub const DEFAULT_JITTER: f64 = 0.1;

/// What is due when the daemon wakes up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// The interval tick: reconcile every account.
    Everything,
    /// Only the retries of these failed accounts.
    Retry(Vec<AccountId>),
}

#[derive(Debug)]
struct Retry {
    at: Instant,
    failures: u32,
    /// The account's next delays: `retry_base`, doubling, capped at the interval.
    backoff: ExponentialBackoff,
}

/// The daemon's timetable.
#[derive(Debug)]
pub struct Schedule {
    interval: Duration,
    jitter: f64,
    retry_base: Duration,
    next_tick: Instant,
    retries: BTreeMap<AccountId, Retry>,
    rng: fastrand::Rng,
}

impl Schedule {
    /// A schedule whose first tick is one (jittered) interval after `now`.
    pub fn new(interval: Duration, jitter: f64, retry_base: Duration, now: Instant) -> Self {
        let mut schedule = Self {
            interval,
            jitter: jitter.clamp(0.0, 0.5),
            retry_base,
            next_tick: now,
            retries: BTreeMap::new(),
            rng: fastrand::Rng::new(),
        };
        schedule.reset_tick(now);
        schedule
    }

    /// Seeds the jitter, for reproducible tests.
    pub fn with_seed(mut self, seed: u64, now: Instant) -> Self {
        self.rng = fastrand::Rng::with_seed(seed);
        self.reset_tick(now);
        self
    }

    /// Moves the next tick one jittered interval after `now`: a full reconcile just ran.
    pub fn reset_tick(&mut self, now: Instant) {
        let spread = (self.rng.f64() * 2.0 - 1.0) * self.jitter;
        self.next_tick = now + self.interval.mul_f64(1.0 + spread);
    }

    /// Records which accounts failed and which succeeded in a reconcile finished at `now`.
    pub fn record(&mut self, failed: &[AccountId], succeeded: &[AccountId], now: Instant) {
        for account in succeeded {
            self.retries.remove(account);
        }
        for account in failed {
            let retry = self
                .retries
                .entry(account.clone())
                .or_insert_with(|| Retry {
                    at: now,
                    failures: 0,
                    backoff: ExponentialBuilder::new()
                        .with_min_delay(self.retry_base.min(self.interval))
                        .with_factor(2.0)
                        .with_max_delay(self.interval)
                        .without_max_times()
                        .build(),
                });
            retry.failures += 1;
            retry.at = now + retry.backoff.next().unwrap_or(self.interval);
        }
    }

    /// Drops a pending retry: the account left the config.
    pub fn forget(&mut self, account: &AccountId) {
        self.retries.remove(account);
    }

    /// When the daemon should wake next.
    pub fn next_wake(&self) -> Instant {
        self.retries
            .values()
            .map(|r| r.at)
            .fold(self.next_tick, Instant::min)
    }

    /// What is due at `now`, if anything.
    pub fn due(&self, now: Instant) -> Option<Due> {
        if now >= self.next_tick {
            return Some(Due::Everything);
        }
        let due: Vec<AccountId> = self
            .retries
            .iter()
            .filter(|(_, r)| now >= r.at)
            .map(|(account, _)| account.clone())
            .collect();
        (!due.is_empty()).then_some(Due::Retry(due))
    }

    /// Consecutive failures of `account`, 0 when it last succeeded.
    pub fn failures(&self, account: &AccountId) -> u32 {
        self.retries.get(account).map_or(0, |r| r.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(n: u8) -> AccountId {
        format!("{n:032x}").parse().unwrap()
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn ticks_land_within_the_jitter_and_vary() {
        let mut schedule = Schedule::new(MINUTE, 0.1, DEFAULT_RETRY_BASE, Instant::now())
            .with_seed(7, Instant::now());
        let mut delays = Vec::new();
        for _ in 0..50 {
            let start = Instant::now();
            let wake = schedule.next_wake();
            tokio::time::sleep_until(wake).await;
            assert_eq!(schedule.due(Instant::now()), Some(Due::Everything));
            delays.push(wake - start);
            schedule.reset_tick(Instant::now());
        }
        for delay in &delays {
            assert!(
                *delay >= Duration::from_secs(54) && *delay <= Duration::from_secs(66),
                "{delay:?}"
            );
        }
        delays.dedup();
        assert!(delays.len() > 40, "jitter should spread ticks: {delays:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_account_is_retried_with_backoff_capped_at_the_interval() {
        let now = Instant::now();
        let mut schedule = Schedule::new(MINUTE, 0.0, DEFAULT_RETRY_BASE, now);
        let bad = account(1);
        let good = account(2);
        let mut waits = Vec::new();
        for _ in 0..5 {
            let before = Instant::now();
            schedule.record(
                std::slice::from_ref(&bad),
                std::slice::from_ref(&good),
                before,
            );
            let wake = schedule.next_wake();
            tokio::time::sleep_until(wake).await;
            waits.push(wake - before);
            match schedule.due(Instant::now()) {
                Some(Due::Retry(accounts)) => assert_eq!(accounts, vec![bad.clone()]),
                Some(Due::Everything) => {
                    schedule.reset_tick(Instant::now());
                }
                None => panic!("woke with nothing due"),
            }
        }
        assert_eq!(waits[0], Duration::from_secs(10));
        assert_eq!(waits[1], Duration::from_secs(20));
        assert_eq!(
            waits[2],
            Duration::from_secs(30),
            "the tick came first at 60 s"
        );
        assert!(waits.iter().all(|w| *w <= MINUTE));
        assert_eq!(schedule.failures(&good), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn success_clears_the_retry() {
        let now = Instant::now();
        let mut schedule = Schedule::new(MINUTE, 0.0, DEFAULT_RETRY_BASE, now);
        schedule.record(&[account(1)], &[], now);
        assert_eq!(schedule.next_wake(), now + Duration::from_secs(10));
        schedule.record(&[], &[account(1)], now);
        assert_eq!(schedule.next_wake(), now + MINUTE);
        assert_eq!(schedule.due(now), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_forgotten_account_is_not_retried() {
        let now = Instant::now();
        let mut schedule = Schedule::new(MINUTE, 0.0, DEFAULT_RETRY_BASE, now);
        schedule.record(&[account(1)], &[], now);
        schedule.forget(&account(1));
        assert_eq!(schedule.next_wake(), now + MINUTE);
        assert_eq!(schedule.failures(&account(1)), 0);
    }
}
