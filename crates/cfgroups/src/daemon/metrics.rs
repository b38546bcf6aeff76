//! The daemon's Prometheus metrics: every series it exports, their help text, and small typed
//! methods to update them, encoded as OpenMetrics text for `/metrics`.
//!
//! Every name starts with `cfgroups_`. Counters carry the OpenMetrics `_total` suffix, times
//! are in seconds (`# UNIT seconds`), and timestamps are unix seconds, so alerts read
//! naturally: `time() - cfgroups_account_last_success_timestamp_seconds > 3600`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

use super::guard_metrics::GuardMetrics;
use crate::model::{AccountId, DeletionOutcome};
use crate::plan::Summary;

/// The HTTP content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How one reconcile of all accounts ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconcileResult {
    /// Every account was listed and every planned deletion was done or safely blocked.
    Success,
    /// At least one account failed (listing, deletion, journal).
    Failure,
    /// Nothing was attempted (no usable config yet, or the request budget was spent).
    Skipped,
}

impl ReconcileResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Skipped => "skipped",
        }
    }
}

/// The drift kinds exported per account: every plan action except `in_sync`, plus a failed
/// listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriftKind {
    Delete,
    Blocked,
    Missing,
    Unmanaged,
    ListingFailed,
}

impl DriftKind {
    pub const ALL: [DriftKind; 5] = [
        Self::Delete,
        Self::Blocked,
        Self::Missing,
        Self::Unmanaged,
        Self::ListingFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::Blocked => "blocked",
            Self::Missing => "missing",
            Self::Unmanaged => "unmanaged",
            Self::ListingFailed => "listing_failed",
        }
    }
}

/// A change of this replica's leadership, for `cfgroups_leader_transitions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaderChange {
    /// This replica became the leader.
    Acquired,
    /// This replica stopped leading (stepped down, lost the lock, or released it).
    Lost,
}

impl LeaderChange {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acquired => "acquired",
            Self::Lost => "lost",
        }
    }
}

macro_rules! label_value {
    ($($ty:ty),*) => {$(
        impl EncodeLabelValue for $ty {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
                fmt::Write::write_str(encoder, self.as_str())
            }
        }
    )*};
}
label_value!(ReconcileResult, DriftKind, LeaderChange, AccountResult);

impl DriftKind {
    /// This kind's count in an account's plan summary.
    fn count(self, summary: &Summary) -> usize {
        match self {
            Self::Delete => summary.delete,
            Self::Blocked => summary.blocked,
            Self::Missing => summary.missing,
            Self::Unmanaged => summary.unmanaged,
            Self::ListingFailed => summary.listing_failed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: ReconcileResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DriftLabels {
    account: String,
    kind: DriftKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DeletionLabels {
    account: String,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WaitLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AccountResultLabels {
    account: String,
    result: AccountResult,
}

/// How one account's part of a reconcile ended, for the per-account series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountResult {
    /// Listed, and every planned deletion done (or safely blocked).
    Success,
    /// The listing failed, or a deletion failed or found its group changed.
    Failure,
}

impl AccountResult {
    pub const ALL: [AccountResult; 2] = [Self::Success, Self::Failure];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

/// Every result `cfgroups_deletions_total` counts, created at zero for each account so
/// that `increase()` sees the first failure.
const DELETION_RESULTS: [&str; 4] = ["deleted", "already_absent", "failed", "moved"];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ChangeLabels {
    change: LeaderChange,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HolderLabels {
    holder: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric the daemon exports. Cheap to clone: clones share the same series.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    drift: Family<DriftLabels, Gauge>,
    deletions: Family<DeletionLabels, Counter>,
    api_requests: Family<RequestLabels, Counter>,
    api_retries: Counter,
    api_rate_limited: Counter,
    budget_remaining: Gauge,
    rate_limit_wait: FloatGauge,
    rate_limit_waits: Family<WaitLabels, Counter>,
    reload_ok: Gauge,
    reload_timestamp: FloatGauge,
    deletions_suspended: Gauge,
    account_success: Family<AccountLabels, FloatGauge>,
    account_reconciles: Family<AccountResultLabels, Counter>,
    account_ok: Family<AccountLabels, Gauge>,
    leader: Gauge,
    leader_transitions: Family<ChangeLabels, Counter>,
    leader_holder: Family<HolderLabels, Gauge>,
    guards: GuardMetrics,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every metric; `version` labels `cfgroups_build_info`.
    pub fn new(version: &str) -> Self {
        let mut registry = Registry::with_prefix("cfgroups");

        let reconciles = Family::<ResultLabels, Counter>::default();
        // Every result from zero, so `rate()` and `increase()` work from the first failure.
        for result in [
            ReconcileResult::Success,
            ReconcileResult::Failure,
            ReconcileResult::Skipped,
        ] {
            let _ = reconciles.get_or_create(&ResultLabels { result });
        }
        registry.register(
            "reconciles",
            "Reconciles of all accounts, by result (success, failure, skipped)",
            reconciles.clone(),
        );
        // 0.1 s to about 7 minutes: one account from a snapshot up to many accounts held
        // back by the request budget.
        let reconcile_duration = Histogram::new(exponential_buckets(0.1, 2.0, 13));
        registry.register_with_unit(
            "reconcile_duration",
            "Wall time of one reconcile of all accounts",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let drift = Family::<DriftLabels, Gauge>::default();
        registry.register(
            "drift_groups",
            "Groups not in sync after the last reconcile, by account and kind (delete, blocked, missing, unmanaged; listing_failed is 1 when the account could not be listed)",
            drift.clone(),
        );
        let deletions = Family::<DeletionLabels, Counter>::default();
        registry.register(
            "deletions",
            "Group deletions attempted, by account and result (deleted, already_absent, failed, moved); every result starts at 0 for every configured account",
            deletions.clone(),
        );
        let api_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Cloudflare API responses, by HTTP method and status code",
            api_requests.clone(),
        );
        let api_retries = Counter::default();
        registry.register(
            "api_retries",
            "Cloudflare API requests retried after a retryable failure",
            api_retries.clone(),
        );
        let api_rate_limited = Counter::default();
        registry.register(
            "api_rate_limited",
            "Cloudflare API responses with status 429 (rate limited)",
            api_rate_limited.clone(),
        );
        let budget_remaining = Gauge::default();
        registry.register(
            "api_budget_remaining",
            "Cloudflare API requests left in the current rate-limit window",
            budget_remaining.clone(),
        );
        let rate_limit_wait = FloatGauge::default();
        registry.register_with_unit(
            "api_rate_limit_wait",
            "Time left before requests waiting for the rate limit may go (0 when none waits)",
            Unit::Seconds,
            rate_limit_wait.clone(),
        );
        let rate_limit_waits = Family::<WaitLabels, Counter>::default();
        registry.register(
            "api_rate_limit_waits",
            "Waits for the rate limit, by reason (lockout: a 429; server_reset: none remaining; server_policy: the server's declared window; budget: --max-requests per --budget-window)",
            rate_limit_waits.clone(),
        );
        let reload_ok = Gauge::default();
        registry.register(
            "config_last_reload_successful",
            "Whether the last config load succeeded (1) or failed and the last good config is still in use (0)",
            reload_ok.clone(),
        );
        let reload_timestamp = FloatGauge::default();
        registry.register_with_unit(
            "config_last_reload_success_timestamp",
            "Unix time of the last successful config load",
            Unit::Seconds,
            reload_timestamp.clone(),
        );
        let deletions_suspended = Gauge::default();
        registry.register(
            "deletions_suspended",
            "1 while no valid config is on disk (deleted, invalid): drift is still listed and reported against the last good config, but nothing is deleted",
            deletions_suspended.clone(),
        );
        let account_success = Family::<AccountLabels, FloatGauge>::default();
        registry.register_with_unit(
            "account_last_success_timestamp",
            "Unix time of the last reconcile that completed for the account",
            Unit::Seconds,
            account_success.clone(),
        );
        let account_reconciles = Family::<AccountResultLabels, Counter>::default();
        registry.register(
            "account_reconciles",
            "Reconciles of each account, by result: success (listed, every planned deletion done or safely blocked) or failure (the listing failed, or a deletion failed or found its group changed); both start at 0 for every configured account",
            account_reconciles.clone(),
        );
        let account_ok = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "account_last_reconcile_successful",
            "Whether the account's last reconcile succeeded (1) or failed (0): listed, and every planned deletion done; absent until its first reconcile",
            account_ok.clone(),
        );
        // Without an election the one replica leads for good: 1 until an elector says otherwise.
        let leader = Gauge::default();
        leader.set(1);
        registry.register(
            "leader",
            "Whether this replica is the leader (1), the only one that talks to Cloudflare, or a standby (0); 1 without leader election",
            leader.clone(),
        );
        let leader_transitions = Family::<ChangeLabels, Counter>::default();
        for change in [LeaderChange::Acquired, LeaderChange::Lost] {
            let _ = leader_transitions.get_or_create(&ChangeLabels { change });
        }
        registry.register(
            "leader_transitions",
            "Times this replica became the leader (acquired) or stopped being it (lost)",
            leader_transitions.clone(),
        );
        let leader_holder = Family::<HolderLabels, Gauge>::default();
        registry.register(
            "leader_holder_info",
            "Always 1; the holder label names the replica holding the leader lock, as this replica last saw it (absent while nobody holds it or without leader election)",
            leader_holder.clone(),
        );
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info
            .get_or_create(&VersionLabels {
                version: version.to_owned(),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the version label names the running build",
            build_info,
        );

        let guards = GuardMetrics::register(&mut registry);

        Self {
            inner: Arc::new(Inner {
                registry,
                reconciles,
                reconcile_duration,
                drift,
                deletions,
                api_requests,
                api_retries,
                api_rate_limited,
                budget_remaining,
                rate_limit_wait,
                rate_limit_waits,
                reload_ok,
                reload_timestamp,
                deletions_suspended,
                account_success,
                account_reconciles,
                account_ok,
                leader,
                leader_transitions,
                leader_holder,
                guards,
            }),
        }
    }

    /// The series of suspension, refused deletions and notifications.
    pub fn guards(&self) -> &GuardMetrics {
        &self.inner.guards
    }

    /// Counts one reconcile of all accounts and observes how long it took.
    pub fn record_reconcile(&self, result: ReconcileResult, duration: Duration) {
        self.inner
            .reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
        self.inner
            .reconcile_duration
            .observe(duration.as_secs_f64());
    }

    /// Sets one account's drift gauges from its plan's summary, every kind at once, so a
    /// kind that went back to zero reads zero.
    pub fn set_drift(&self, account: &AccountId, summary: &Summary) {
        for kind in DriftKind::ALL {
            let labels = DriftLabels {
                account: account.to_string(),
                kind,
            };
            let value = i64::try_from(kind.count(summary)).unwrap_or(i64::MAX);
            self.inner.drift.get_or_create(&labels).set(value);
        }
    }

    /// Counts one attempted deletion by its outcome.
    pub fn record_deletion(&self, account: &AccountId, outcome: &DeletionOutcome) {
        self.inner
            .deletions
            .get_or_create(&DeletionLabels {
                account: account.to_string(),
                result: outcome.as_str(),
            })
            .inc();
    }

    /// Counts one API response. `method` is the HTTP method (`GET`, `DELETE`).
    pub fn record_api_request(&self, method: &str, status: u16) {
        self.inner
            .api_requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                status: status.to_string(),
            })
            .inc();
    }

    /// Counts one retried request.
    pub fn record_retry(&self) {
        self.inner.api_retries.inc();
    }

    /// Counts one 429 response.
    pub fn record_rate_limited(&self) {
        self.inner.api_rate_limited.inc();
    }

    /// Sets the requests left in the current rate-limit window.
    pub fn set_budget_remaining(&self, remaining: u64) {
        let value = i64::try_from(remaining).unwrap_or(i64::MAX);
        self.inner.budget_remaining.set(value);
    }

    /// Sets the time left on the current wait for the rate limit (zero when none).
    pub fn set_rate_limit_wait(&self, left: Duration) {
        self.inner.rate_limit_wait.set(left.as_secs_f64());
    }

    /// Counts one wait for the rate limit, by its reason (e.g. `lockout`).
    pub fn record_rate_limit_wait(&self, reason: &'static str) {
        self.inner
            .rate_limit_waits
            .get_or_create(&WaitLabels { reason })
            .inc();
    }

    /// Records a config load: `ok` sets the success gauge and, when true, the success
    /// timestamp to `at`. A failed load leaves the timestamp at the last success.
    pub fn record_reload(&self, ok: bool, at: SystemTime) {
        self.inner.reload_ok.set(i64::from(ok));
        if ok {
            self.inner.reload_timestamp.set(unix_seconds(at));
        }
    }

    /// Records whether deletions are suspended for want of a valid config on disk.
    pub fn set_deletions_suspended(&self, suspended: bool) {
        self.inner.deletions_suspended.set(i64::from(suspended));
    }

    /// Records that the account's reconcile completed at `at`.
    pub fn record_account_success(&self, account: &AccountId, at: SystemTime) {
        self.inner
            .account_success
            .get_or_create(&AccountLabels {
                account: account.to_string(),
            })
            .set(unix_seconds(at));
    }

    /// Creates the account's counters at zero (deletions by every result, reconciles by
    /// every result), so that an alert on `increase()` sees the very first failure: a
    /// series that appears at 1 has no increase.
    pub fn track_account(&self, account: &AccountId) {
        let name = account.to_string();
        for result in DELETION_RESULTS {
            let _ = self.inner.deletions.get_or_create(&DeletionLabels {
                account: name.clone(),
                result,
            });
        }
        for result in AccountResult::ALL {
            let _ = self
                .inner
                .account_reconciles
                .get_or_create(&AccountResultLabels {
                    account: name.clone(),
                    result,
                });
        }
    }

    /// Records how the account's part of a reconcile ended.
    pub fn record_account_result(&self, account: &AccountId, result: AccountResult) {
        let name = account.to_string();
        self.inner
            .account_reconciles
            .get_or_create(&AccountResultLabels {
                account: name.clone(),
                result,
            })
            .inc();
        self.inner
            .account_ok
            .get_or_create(&AccountLabels { account: name })
            .set(i64::from(result == AccountResult::Success));
    }

    /// Drops every per-account series of an account no longer in the config, so dashboards
    /// do not show its last values forever.
    pub fn forget_account(&self, account: &AccountId) {
        let name = account.to_string();
        for kind in DriftKind::ALL {
            self.inner.drift.remove(&DriftLabels {
                account: name.clone(),
                kind,
            });
        }
        for result in DELETION_RESULTS {
            self.inner.deletions.remove(&DeletionLabels {
                account: name.clone(),
                result,
            });
        }
        for result in AccountResult::ALL {
            self.inner.account_reconciles.remove(&AccountResultLabels {
                account: name.clone(),
                result,
            });
        }
        self.inner.account_ok.remove(&AccountLabels {
            account: name.clone(),
        });
        self.inner.account_success.remove(&AccountLabels {
            account: name.clone(),
        });
        self.inner.guards.forget_account(account);
    }

    /// Sets whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.inner.leader.set(i64::from(leader));
    }

    /// Counts one change of this replica's leadership.
    pub fn record_leader_change(&self, change: LeaderChange) {
        self.inner
            .leader_transitions
            .get_or_create(&ChangeLabels { change })
            .inc();
    }

    /// Names the lock's holder (`None`: nobody holds it, as far as is known).
    pub fn set_leader_holder(&self, holder: Option<&str>) {
        self.inner.leader_holder.clear();
        if let Some(holder) = holder {
            self.inner
                .leader_holder
                .get_or_create(&HolderLabels {
                    holder: holder.to_owned(),
                })
                .set(1);
        }
    }

    /// The OpenMetrics text exposition of every series (served with [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a metric's
        // own encoding, and a partial exposition is still the most useful answer then.
        if let Err(error) = encode(&mut text, &self.inner.registry) {
            tracing::error!(%error, "cannot encode metrics");
        }
        text
    }
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The API client reports every attempt here: requests by method and status, retries,
/// and 429s. Attempts that got no response count only as retries when retried.
impl crate::cloudflare::observer::RequestObserver for Metrics {
    fn on_request(&self, event: &crate::cloudflare::observer::RequestEvent) {
        if let Some(status) = event.status {
            self.record_api_request(event.method.as_str(), status);
        }
        if event.retry {
            self.record_retry();
        }
        if event.rate_limited {
            self.record_rate_limited();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountId {
        "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap()
    }

    fn has_line(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in:\n{text}"
        );
    }

    #[test]
    fn a_fresh_registry_has_every_reconcile_result_at_zero() {
        let text = Metrics::new("0").encode();
        has_line(&text, "cfgroups_reconciles_total{result=\"success\"} 0");
        has_line(&text, "cfgroups_reconciles_total{result=\"failure\"} 0");
        has_line(&text, "cfgroups_reconciles_total{result=\"skipped\"} 0");
    }

    #[test]
    fn every_series_has_help_and_the_prefix() {
        let metrics = Metrics::new("1.2.3");
        let id = account();
        let now = SystemTime::now();
        metrics.record_reconcile(ReconcileResult::Success, Duration::from_secs(1));
        metrics.set_drift(&id, &Summary::default());
        metrics.record_deletion(&id, &DeletionOutcome::Deleted);
        metrics.record_api_request("DELETE", 200);
        metrics.record_retry();
        metrics.record_rate_limited();
        metrics.set_budget_remaining(1);
        metrics.set_rate_limit_wait(Duration::from_secs(3));
        metrics.record_rate_limit_wait("lockout");
        metrics.record_reload(true, now);
        metrics.record_account_success(&id, now);
        let text = metrics.encode();
        for name in [
            "cfgroups_reconciles",
            "cfgroups_reconcile_duration_seconds",
            "cfgroups_drift_groups",
            "cfgroups_deletions",
            "cfgroups_api_requests",
            "cfgroups_api_retries",
            "cfgroups_api_rate_limited",
            "cfgroups_api_budget_remaining",
            "cfgroups_api_rate_limit_wait_seconds",
            "cfgroups_api_rate_limit_waits",
            "cfgroups_config_last_reload_successful",
            "cfgroups_config_last_reload_success_timestamp_seconds",
            "cfgroups_deletions_suspended",
            "cfgroups_account_last_success_timestamp_seconds",
            "cfgroups_build_info",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# HELP {name} "))),
                "no HELP for {name} in:\n{text}"
            );
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("cfgroups_"), "unprefixed series {line:?}");
        }
        has_line(&text, "cfgroups_build_info{version=\"1.2.3\"} 1");
        has_line(&text, "# EOF");
    }

    #[test]
    fn reconciles_count_by_result_and_observe_duration() {
        let metrics = Metrics::new("0");
        metrics.record_reconcile(ReconcileResult::Success, Duration::from_millis(1500));
        metrics.record_reconcile(ReconcileResult::Success, Duration::from_millis(500));
        metrics.record_reconcile(ReconcileResult::Failure, Duration::from_secs(3));
        metrics.record_reconcile(ReconcileResult::Skipped, Duration::ZERO);
        let text = metrics.encode();
        has_line(&text, "# TYPE cfgroups_reconciles counter");
        has_line(&text, "cfgroups_reconciles_total{result=\"success\"} 2");
        has_line(&text, "cfgroups_reconciles_total{result=\"failure\"} 1");
        has_line(&text, "cfgroups_reconciles_total{result=\"skipped\"} 1");
        has_line(
            &text,
            "# TYPE cfgroups_reconcile_duration_seconds histogram",
        );
        has_line(&text, "# UNIT cfgroups_reconcile_duration_seconds seconds");
        has_line(&text, "cfgroups_reconcile_duration_seconds_sum 5.0");
        has_line(&text, "cfgroups_reconcile_duration_seconds_count 4");
        has_line(
            &text,
            "cfgroups_reconcile_duration_seconds_bucket{le=\"0.8\"} 2",
        );
        has_line(
            &text,
            "cfgroups_reconcile_duration_seconds_bucket{le=\"+Inf\"} 4",
        );
    }

    #[test]
    fn drift_sets_every_kind_and_resets_to_zero() {
        let metrics = Metrics::new("0");
        let id = account();
        metrics.set_drift(
            &id,
            &Summary {
                delete: 3,
                blocked: 1,
                missing: 2,
                unmanaged: 7,
                in_sync: 4,
                ..Summary::default()
            },
        );
        let text = metrics.encode();
        let a = "023e105f4ecef8ad9ca31a8372d0c353";
        has_line(&text, "# TYPE cfgroups_drift_groups gauge");
        has_line(
            &text,
            &format!("cfgroups_drift_groups{{account=\"{a}\",kind=\"delete\"}} 3"),
        );
        has_line(
            &text,
            &format!("cfgroups_drift_groups{{account=\"{a}\",kind=\"blocked\"}} 1"),
        );
        has_line(
            &text,
            &format!("cfgroups_drift_groups{{account=\"{a}\",kind=\"missing\"}} 2"),
        );
        has_line(
            &text,
            &format!("cfgroups_drift_groups{{account=\"{a}\",kind=\"unmanaged\"}} 7"),
        );
        has_line(
            &text,
            &format!("cfgroups_drift_groups{{account=\"{a}\",kind=\"listing_failed\"}} 0"),
        );

        metrics.set_drift(&id, &Summary::default());
        let text = metrics.encode();
        has_line(
            &text,
            &format!("cfgroups_drift_groups{{account=\"{a}\",kind=\"delete\"}} 0"),
        );

        metrics.forget_account(&id);
        assert!(!metrics.encode().contains(a));
    }

    #[test]
    fn deletions_count_by_account_and_result() {
        let metrics = Metrics::new("0");
        let id = account();
        metrics.record_deletion(&id, &DeletionOutcome::Deleted);
        metrics.record_deletion(&id, &DeletionOutcome::Deleted);
        metrics.record_deletion(&id, &DeletionOutcome::AlreadyAbsent);
        metrics.record_deletion(&id, &DeletionOutcome::failed("HTTP 500"));
        let text = metrics.encode();
        let a = "023e105f4ecef8ad9ca31a8372d0c353";
        has_line(&text, "# TYPE cfgroups_deletions counter");
        has_line(
            &text,
            &format!("cfgroups_deletions_total{{account=\"{a}\",result=\"deleted\"}} 2"),
        );
        has_line(
            &text,
            &format!("cfgroups_deletions_total{{account=\"{a}\",result=\"already_absent\"}} 1"),
        );
        has_line(
            &text,
            &format!("cfgroups_deletions_total{{account=\"{a}\",result=\"failed\"}} 1"),
        );
    }

    #[test]
    fn api_requests_retries_429s_and_budget() {
        let metrics = Metrics::new("0");
        metrics.record_api_request("GET", 200);
        metrics.record_api_request("GET", 200);
        metrics.record_api_request("DELETE", 429);
        metrics.record_retry();
        metrics.record_rate_limited();
        metrics.set_budget_remaining(1187);
        let text = metrics.encode();
        has_line(
            &text,
            "cfgroups_api_requests_total{method=\"GET\",status=\"200\"} 2",
        );
        has_line(
            &text,
            "cfgroups_api_requests_total{method=\"DELETE\",status=\"429\"} 1",
        );
        has_line(&text, "cfgroups_api_retries_total 1");
        has_line(&text, "cfgroups_api_rate_limited_total 1");
        has_line(&text, "cfgroups_api_budget_remaining 1187");
        metrics.set_rate_limit_wait(Duration::from_millis(64_500));
        metrics.record_rate_limit_wait("lockout");
        let text = metrics.encode();
        has_line(&text, "cfgroups_api_rate_limit_wait_seconds 64.5");
        has_line(
            &text,
            "cfgroups_api_rate_limit_waits_total{reason=\"lockout\"} 1",
        );
    }

    #[test]
    fn reloads_and_account_success_are_timestamps() {
        let metrics = Metrics::new("0");
        let at = UNIX_EPOCH + Duration::from_secs(1_764_291_600);
        metrics.record_reload(true, at);
        let text = metrics.encode();
        has_line(&text, "cfgroups_config_last_reload_successful 1");
        has_line(
            &text,
            "cfgroups_config_last_reload_success_timestamp_seconds 1764291600.0",
        );

        metrics.record_reload(false, at + Duration::from_secs(60));
        let text = metrics.encode();
        has_line(&text, "cfgroups_config_last_reload_successful 0");
        has_line(
            &text,
            "cfgroups_config_last_reload_success_timestamp_seconds 1764291600.0",
        );

        metrics.record_account_success(&account(), at);
        has_line(
            &metrics.encode(),
            "cfgroups_account_last_success_timestamp_seconds{account=\"023e105f4ecef8ad9ca31a8372d0c353\"} 1764291600.0",
        );
    }

    #[test]
    fn a_tracked_account_has_every_result_at_zero_and_its_last_result() {
        let metrics = Metrics::new("0");
        let id = account();
        let a = "023e105f4ecef8ad9ca31a8372d0c353";
        metrics.track_account(&id);
        let text = metrics.encode();
        for result in ["deleted", "already_absent", "failed", "moved"] {
            has_line(
                &text,
                &format!("cfgroups_deletions_total{{account=\"{a}\",result=\"{result}\"}} 0"),
            );
        }
        for result in ["success", "failure"] {
            has_line(
                &text,
                &format!(
                    "cfgroups_account_reconciles_total{{account=\"{a}\",result=\"{result}\"}} 0"
                ),
            );
        }
        assert!(
            !text.contains("cfgroups_account_last_reconcile_successful{"),
            "{text}"
        );

        metrics.record_account_result(&id, AccountResult::Failure);
        let text = metrics.encode();
        has_line(
            &text,
            &format!("cfgroups_account_last_reconcile_successful{{account=\"{a}\"}} 0"),
        );
        has_line(
            &text,
            &format!("cfgroups_account_reconciles_total{{account=\"{a}\",result=\"failure\"}} 1"),
        );
        metrics.record_account_result(&id, AccountResult::Success);
        has_line(
            &metrics.encode(),
            &format!("cfgroups_account_last_reconcile_successful{{account=\"{a}\"}} 1"),
        );

        metrics.forget_account(&id);
        assert!(!metrics.encode().contains(a));
    }

    #[test]
    fn clones_share_series() {
        let metrics = Metrics::new("0");
        metrics.clone().record_retry();
        has_line(&metrics.encode(), "cfgroups_api_retries_total 1");
    }
}
