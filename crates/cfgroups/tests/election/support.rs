//! What the election-layer tests share: short lease timing.

use std::time::Duration;

use cfgroups::daemon::election::LeaseTiming;

/// Short timing for tests: a 3 s lease, a 2 s renew deadline, retries every 200 ms.
pub fn short_timing() -> LeaseTiming {
    LeaseTiming {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(200),
    }
}
