//! What the leader-election tests share: a real etcd ([`etcd::Etcd`]), a fake Kubernetes
//! Lease API ([`lease_api::FakeLeaseApi`]), short lease timing, and waiting on conditions.
#![allow(dead_code)]

pub mod etcd;
pub mod lease_api;

use std::time::{Duration, Instant};

use cfgroups::daemon::election::LeaseTiming;

/// Short timing for tests: a 3 s lease, a 2 s renew deadline, retries every 200 ms.
pub fn short_timing() -> LeaseTiming {
    LeaseTiming {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(200),
    }
}

/// How long any condition may take: generous, for a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls `check` every 10 ms until it returns `Some`, or panics naming `what`.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
