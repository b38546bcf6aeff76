//! The timing of a lease, the same three numbers on both backends: how long a hold lasts
//! (`lease_duration`), how long a leader keeps writing without a successful renewal
//! (`renew_deadline`), and how often everyone retries (`retry_period`). The defaults are
//! Kubernetes' own (client-go's leader election: 15 s, 10 s, 2 s).
//!
//! The one rule that keeps two writers apart lives here, in [`LeaseTiming::valid_until`]: a
//! leader may start a write only until `renew_deadline` after the *start* of its last
//! successful renewal. Whoever sees that renewal (the etcd server, another replica reading
//! the Lease) sees it after it started, so to them the hold lasts at least until
//! `start + lease_duration`: the leader stops `lease_duration - renew_deadline` (5 s by
//! default) before anyone else may take over. That margin is what absorbs a request still
//! finishing, a scheduling hiccup, or clocks running at slightly different rates.

use std::time::Duration;

use thiserror::Error;
use tokio::time::Instant;

/// client-go's jitter on the retry period: each wait is `retry_period` times a random
/// factor in `[1, 1.2)`, so replicas started together do not retry in lockstep.
pub const JITTER_FACTOR: f64 = 1.2;

/// The lease's timing; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a hold lasts without renewal before another replica may take the lock
    /// (the Lease's `leaseDurationSeconds`, the etcd lease's TTL). Whole seconds: both
    /// backends count in seconds. Default 15 s.
    pub lease_duration: Duration,
    /// How long a leader goes on starting writes after the start of its last successful
    /// renewal; past it, it stops and steps down. Shorter than `lease_duration`. Default 10 s.
    pub renew_deadline: Duration,
    /// How often a leader renews and a standby tries to acquire (with jitter). Default 2 s.
    pub retry_period: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Timing that cannot keep two writers apart, or cannot be expressed to the backends.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimingError {
    #[error("the lease duration must be a whole number of seconds, at least 1 s (got {0:?})")]
    LeaseNotWholeSeconds(Duration),
    #[error(
        "the lease duration ({lease:?}) must be longer than the renew deadline ({renew:?}): \
         the difference is how long the old leader has stopped before anyone may take over"
    )]
    RenewNotShorterThanLease { lease: Duration, renew: Duration },
    #[error(
        "the renew deadline ({renew:?}) must be longer than {JITTER_FACTOR} times the retry \
         period ({retry:?}), or a leader gets fewer than one renewal attempt before it steps down"
    )]
    RetryTooLong { renew: Duration, retry: Duration },
    #[error("the retry period must be at least 10 ms (got {0:?})")]
    RetryTooShort(Duration),
}

impl LeaseTiming {
    /// Checks the rules client-go checks, plus whole seconds for the lease.
    pub fn validate(&self) -> Result<(), TimingError> {
        let lease = self.lease_duration;
        if lease < Duration::from_secs(1) || lease.subsec_nanos() != 0 {
            return Err(TimingError::LeaseNotWholeSeconds(lease));
        }
        if self.renew_deadline >= lease {
            return Err(TimingError::RenewNotShorterThanLease {
                lease,
                renew: self.renew_deadline,
            });
        }
        if self.retry_period < Duration::from_millis(10) {
            return Err(TimingError::RetryTooShort(self.retry_period));
        }
        if self.retry_period.mul_f64(JITTER_FACTOR) >= self.renew_deadline {
            return Err(TimingError::RetryTooLong {
                renew: self.renew_deadline,
                retry: self.retry_period,
            });
        }
        Ok(())
    }

    /// The lease duration in whole seconds, as the backends take it.
    pub fn lease_seconds(&self) -> u32 {
        u32::try_from(self.lease_duration.as_secs()).unwrap_or(u32::MAX)
    }

    /// Until when a leader whose last successful renewal started at `renewal_started` may
    /// start writes.
    pub fn valid_until(&self, renewal_started: Instant) -> Instant {
        renewal_started + self.renew_deadline
    }

    /// The next wait between attempts: the retry period with up to 20% jitter added.
    pub fn jittered_retry(&self) -> Duration {
        self.retry_period
            .mul_f64(1.0 + (JITTER_FACTOR - 1.0) * fastrand::f64())
    }

    /// How long one request to the backend may take: never past the renew deadline, so a
    /// hung call cannot keep a leader believing it still leads.
    pub fn request_timeout(&self) -> Duration {
        self.renew_deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(lease: u64, renew: u64, retry: u64) -> LeaseTiming {
        LeaseTiming {
            lease_duration: Duration::from_millis(lease),
            renew_deadline: Duration::from_millis(renew),
            retry_period: Duration::from_millis(retry),
        }
    }

    #[test]
    fn the_defaults_are_kubernetes_own_and_valid() {
        let defaults = LeaseTiming::default();
        assert_eq!(defaults, timing(15_000, 10_000, 2_000));
        assert_eq!(defaults.validate(), Ok(()));
        assert_eq!(defaults.lease_seconds(), 15);
    }

    #[test]
    fn timing_that_could_let_two_writers_overlap_is_refused() {
        assert!(matches!(
            timing(10_000, 10_000, 2_000).validate(),
            Err(TimingError::RenewNotShorterThanLease { .. })
        ));
        assert!(matches!(
            timing(15_000, 2_000, 2_000).validate(),
            Err(TimingError::RetryTooLong { .. })
        ));
        assert!(matches!(
            timing(1_500, 1_000, 200).validate(),
            Err(TimingError::LeaseNotWholeSeconds(_))
        ));
        assert!(matches!(
            timing(0, 0, 0).validate(),
            Err(TimingError::LeaseNotWholeSeconds(_))
        ));
        assert!(matches!(
            timing(3_000, 2_000, 1).validate(),
            Err(TimingError::RetryTooShort(_))
        ));
        assert_eq!(timing(3_000, 2_000, 500).validate(), Ok(()));
    }

    #[test]
    fn a_leader_stops_the_margin_before_the_lease_could_expire_elsewhere() {
        let timing = LeaseTiming::default();
        let started = Instant::now();
        let stop = timing.valid_until(started);
        assert_eq!(stop - started, Duration::from_secs(10));
        // Anyone else sees the renewal after it started: to them it lasts at least this long.
        let earliest_takeover = started + timing.lease_duration;
        assert_eq!(earliest_takeover - stop, Duration::from_secs(5));
    }

    #[test]
    fn retries_are_jittered_up_to_a_fifth() {
        let timing = LeaseTiming::default();
        for _ in 0..200 {
            let wait = timing.jittered_retry();
            assert!(wait >= timing.retry_period && wait < timing.retry_period.mul_f64(1.2));
        }
    }
}
