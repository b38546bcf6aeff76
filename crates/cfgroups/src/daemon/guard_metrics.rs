//! The series of the daemon's guards: accounts suspended by the operator, deletions Cloudflare
//! refused for good and held off, and notification deliveries. Registered into the daemon's
//! one registry by [`super::Metrics::new`]; kept here so that each guard owns its series.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::model::AccountId;
use crate::notify::{Delivery, DeliveryObserver};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SinkLabels {
    sink: String,
    result: &'static str,
}

/// The guards' series. Cheap to clone: clones share the series.
#[derive(Debug, Clone, Default)]
pub struct GuardMetrics {
    suspended: Family<AccountLabels, Gauge>,
    refusals: Family<AccountLabels, Counter>,
    held_off: Family<AccountLabels, Gauge>,
    notifications: Family<SinkLabels, Counter>,
}

impl GuardMetrics {
    /// Registers every series into `registry` (prefixed `cfgroups_` there).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "suspended",
            "1 while the account is suspended (suspend: true in the config, or run --suspend-file present): listed and reported, nothing deleted",
            metrics.suspended.clone(),
        );
        registry.register(
            "deletion_refusals",
            "Deletions Cloudflare refused for good (a 4xx that repeats: a group provisioned by SCIM, a token without Account Settings Write), by account",
            metrics.refusals.clone(),
        );
        registry.register(
            "deletions_held_off",
            "Groups whose deletion Cloudflare refused for good and that are not asked again until their wait (15 min doubling to a day) has passed, by account",
            metrics.held_off.clone(),
        );
        registry.register(
            "notifications",
            "Notifications by sink and result (delivered, failed after retries, dropped from a full queue)",
            metrics.notifications.clone(),
        );
        metrics
    }

    fn account(account: &AccountId) -> AccountLabels {
        AccountLabels {
            account: account.to_string(),
        }
    }

    /// Sets whether `account` is suspended.
    pub fn set_suspended(&self, account: &AccountId, suspended: bool) {
        self.suspended
            .get_or_create(&Self::account(account))
            .set(i64::from(suspended));
    }

    /// Counts one deletion Cloudflare refused for good.
    pub fn record_refusal(&self, account: &AccountId) {
        self.refusals.get_or_create(&Self::account(account)).inc();
    }

    /// Sets how many of `account`'s deletions are held off.
    pub fn set_held_off(&self, account: &AccountId, count: usize) {
        self.held_off
            .get_or_create(&Self::account(account))
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Creates `sink`'s series at zero, so the first failure shows in `increase()`.
    pub fn add_sink(&self, sink: &str) {
        for result in Delivery::ALL {
            let _ = self.notifications.get_or_create(&SinkLabels {
                sink: sink.to_owned(),
                result: result.as_str(),
            });
        }
    }

    /// Counts one notification for `sink`.
    pub fn record_notification(&self, sink: &str, result: Delivery) {
        self.notifications
            .get_or_create(&SinkLabels {
                sink: sink.to_owned(),
                result: result.as_str(),
            })
            .inc();
    }

    /// Drops the per-account series of an account no longer in the config.
    pub fn forget_account(&self, account: &AccountId) {
        let labels = Self::account(account);
        self.suspended.remove(&labels);
        self.held_off.remove(&labels);
    }
}

/// Deliveries count in `cfgroups_notifications_total{sink,result}`.
impl DeliveryObserver for GuardMetrics {
    fn sink_added(&self, sink: &str) {
        self.add_sink(sink);
    }

    fn delivered(&self, sink: &str, result: Delivery) {
        self.record_notification(sink, result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::Metrics;

    #[test]
    fn every_guard_series_is_exported_with_help() {
        let metrics = Metrics::new("0");
        let account: AccountId = "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap();
        let guards = metrics.guards();
        guards.set_suspended(&account, true);
        guards.record_refusal(&account);
        guards.set_held_off(&account, 2);
        guards.add_sink("ops");
        guards.record_notification("ops", Delivery::Dropped);
        let text = metrics.encode();
        let a = "023e105f4ecef8ad9ca31a8372d0c353";
        for line in [
            format!("cfgroups_suspended{{account=\"{a}\"}} 1"),
            format!("cfgroups_deletion_refusals_total{{account=\"{a}\"}} 1"),
            format!("cfgroups_deletions_held_off{{account=\"{a}\"}} 2"),
            "cfgroups_notifications_total{sink=\"ops\",result=\"delivered\"} 0".to_owned(),
            "cfgroups_notifications_total{sink=\"ops\",result=\"failed\"} 0".to_owned(),
            "cfgroups_notifications_total{sink=\"ops\",result=\"dropped\"} 1".to_owned(),
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        for name in [
            "cfgroups_suspended",
            "cfgroups_deletion_refusals",
            "cfgroups_deletions_held_off",
            "cfgroups_notifications",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# HELP {name} "))),
                "no HELP for {name}"
            );
        }
        guards.forget_account(&account);
        assert!(!metrics.encode().contains("cfgroups_suspended{"));
    }
}
