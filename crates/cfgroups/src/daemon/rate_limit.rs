//! The daemon's view of its requests waiting for the rate limit: a log line when a wait
//! starts (what for, how long) and when requests resume, and the wait's metrics
//! (`cfgroups_api_rate_limit_wait_seconds`, `cfgroups_api_rate_limit_waits_total`). The
//! budget itself does the waiting; this only watches it, once a second.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::metrics::Metrics;
use crate::cloudflare::{Budget, WaitReason};

/// How often the budget is looked at.
const TICK: Duration = Duration::from_secs(1);

/// A wait in the budget's own window is logged only when it is at least this long; a wait
/// the server announced always is.
const LOG_BUDGET_WAITS_FROM: Duration = Duration::from_secs(5);

/// The running watch; it ends when dropped.
pub struct RateLimitWatch {
    task: JoinHandle<()>,
}

impl Drop for RateLimitWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `budget`, reporting through `metrics` and the log.
pub fn watch(budget: Budget, metrics: Metrics) -> RateLimitWatch {
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut current: Option<WaitReason> = None;
        loop {
            ticker.tick().await;
            let waiting = budget.snapshot().waiting;
            let left = waiting.and_then(|w| w.ready_in).unwrap_or(Duration::ZERO);
            metrics.set_rate_limit_wait(left);
            let worth_saying = waiting.filter(|w| {
                w.reason.announced() || w.ready_in.is_none_or(|left| left >= LOG_BUDGET_WAITS_FROM)
            });
            match (current, worth_saying) {
                (None, Some(waiting)) => {
                    metrics.record_rate_limit_wait(waiting.reason.as_str());
                    tracing::warn!(
                        reason = waiting.reason.as_str(),
                        wait_secs = left.as_secs_f64().ceil(),
                        "requests wait for {}",
                        waiting.reason
                    );
                    current = Some(waiting.reason);
                }
                (Some(_), None) if waiting.is_none() => {
                    tracing::info!("requests resumed after the rate-limit wait");
                    current = None;
                }
                _ => {}
            }
        }
    });
    RateLimitWatch { task }
}
