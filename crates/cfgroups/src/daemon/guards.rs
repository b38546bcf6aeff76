//! What the reconcile loop does around each cycle for the operator's guards and for
//! notifications, in one place so the loop itself only calls in: before the cycle, which
//! accounts are suspended (the `--suspend-file`, see [`super::suspend`]); right before each
//! deletion, whether it is held off (refused for good by Cloudflare, see [`super::refused`],
//! or the suspend file appeared since the cycle began); after it, recording every attempt,
//! the guards' metrics, the log lines that repeat each cycle while a guard holds, and the
//! notifications the cycle calls for ([`crate::notify`]), queued without waiting.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::metrics::Metrics;
use super::refused::RefusedDeletions;
use super::suspend::SuspendFile;
use crate::apply::Attempt;
use crate::config::{DesiredState, SinkConfig};
use crate::model::{AccountId, ObservedGroup};
use crate::notify::{self, CycleFacts, Notifier, Policy, Tracker};
use crate::plan::{Action, BlockReason, Plan};
use crate::shown::{Escaped, Quoted};

/// How long a stopping daemon waits for queued notifications.
pub const NOTIFY_GRACE: Duration = Duration::from_secs(5);

/// The guards' state across cycles.
#[derive(Debug, Default)]
pub struct Guards {
    refused: RefusedDeletions,
    suspend_file: Option<SuspendFile>,
    /// Whether this cycle has said that the suspend file appeared.
    braked: AtomicBool,
    /// Where the journal is, for the restore command in notifications.
    state_dir: PathBuf,
    notifier: Option<Notifier>,
    tracker: Tracker,
}

impl Guards {
    pub fn new(refused: RefusedDeletions, suspend_file: Option<SuspendFile>) -> Self {
        Self {
            refused,
            suspend_file,
            ..Self::default()
        }
    }

    /// Sends notifications through `notifier` (`None`: the config has no sinks yet);
    /// deletions are journaled under `state_dir`.
    pub fn with_notifier(mut self, notifier: Option<Notifier>, state_dir: PathBuf) -> Self {
        self.notifier = notifier;
        self.state_dir = state_dir;
        self
    }

    /// A reloaded config's sinks: kept, started or closed as they changed. A sink whose URL
    /// cannot be read is logged now; its messages fail (and are counted) until it can.
    pub fn configure_notifications(&mut self, sinks: &[SinkConfig], metrics: &Metrics) {
        if let Err(error) = notify::check_urls(sinks) {
            tracing::error!(%error, "notifications: a sink of the new config cannot be used");
        }
        match &mut self.notifier {
            Some(notifier) => notifier.reconfigure(sinks),
            None if sinks.is_empty() => {}
            None => {
                let observer = Arc::new(metrics.guards().clone());
                match Notifier::start(sinks, observer, Policy::default()) {
                    Ok(notifier) => self.notifier = Some(notifier),
                    Err(error) => tracing::error!(%error, "notifications cannot start"),
                }
            }
        }
    }

    /// Delivers what is queued, for at most [`NOTIFY_GRACE`]: the daemon is stopping.
    pub async fn shutdown(&mut self) {
        if let Some(notifier) = self.notifier.take() {
            notifier.close(NOTIFY_GRACE).await;
        }
    }

    /// Before a cycle: suspends every account of `desired` while the suspend file exists.
    pub fn suspend(&self, desired: &mut DesiredState) {
        self.braked.store(false, Ordering::Relaxed);
        if let Some(file) = &self.suspend_file {
            file.apply(desired);
        }
    }

    /// Whether the deletion of `group`, about to start, is held off in a cycle planned from
    /// the config with `config_hash` that began at `started`: Cloudflare refused it for good
    /// and its wait has not passed, or the suspend file has appeared since (said once).
    pub fn holds(
        &self,
        account: &AccountId,
        group: &ObservedGroup,
        config_hash: &str,
        started: Instant,
    ) -> bool {
        if let Some(file) = &self.suspend_file
            && file.present()
        {
            if !self.braked.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    file = %file.path().display(),
                    "suspend file appeared: no further deletion starts"
                );
            }
            return true;
        }
        self.refused.holds(account, group, config_hash, started)
    }

    /// After the cycle `run_id` of `plan` (made from the config with `config_hash`): says
    /// which accounts are suspended, records the refusals among `attempts`, drops the holds
    /// no longer needed, sets the guards' metrics, logs each deletion still held off, and
    /// queues the notifications the cycle calls for.
    pub fn after_cycle(
        &mut self,
        run_id: &str,
        plan: &Plan,
        attempts: &[Attempt],
        config_hash: &str,
        metrics: &Metrics,
    ) {
        report_suspended(plan, metrics);
        if let Some(notifier) = &self.notifier {
            let facts = CycleFacts {
                run_id,
                plan,
                attempts,
                state_dir: &self.state_dir,
            };
            let routed = self
                .tracker
                .observe(&facts, &notifier.sinks(), Instant::now());
            notifier.send(&routed);
        }
        let now = Instant::now();
        for attempt in attempts {
            if attempt.outcome.refusal().is_some() {
                metrics.guards().record_refusal(&attempt.account);
            }
            if let Some(wait) = self.refused.record(
                &attempt.account,
                &attempt.group,
                &attempt.outcome,
                config_hash,
                now,
            ) {
                tracing::warn!(
                    account = %attempt.account,
                    group = %attempt.group.id,
                    name = %Quoted(&attempt.group.name),
                    retry_in = %humantime::format_duration(wait),
                    "Cloudflare refused this deletion for good; not asking again before the \
                     wait has passed, unless the config or the group changes"
                );
            }
        }
        self.refused.forget_settled(plan);
        for account in &plan.accounts {
            metrics
                .guards()
                .set_held_off(&account.id, self.refused.count(&account.id));
        }
        for (account, group, hold) in self.refused.iter() {
            let just_refused = attempts
                .iter()
                .any(|a| a.account == *account && a.group.id == *group);
            if just_refused {
                continue;
            }
            let left = hold.until.saturating_duration_since(now);
            tracing::info!(
                %account,
                %group,
                name = %Quoted(&hold.name),
                refusals = hold.refusals,
                next_attempt_in = %humantime::format_duration(round_to_seconds(left)),
                hint = %hold.refusal.hint,
                "deletion held off: Cloudflare refused it for good ({})",
                hold.refusal.answer()
            );
        }
    }

    /// Forgets everything about an account that left the config.
    pub fn forget_account(&mut self, account: &AccountId) {
        self.refused.forget_account(account);
        self.tracker.forget_account(account);
    }
}

/// Every cycle, for each account: the suspended gauge, and a warning while it is suspended,
/// so that a forgotten pause keeps showing.
fn report_suspended(plan: &Plan, metrics: &Metrics) {
    for account in &plan.accounts {
        metrics
            .guards()
            .set_suspended(&account.id, account.suspended.is_some());
        let Some(by) = &account.suspended else {
            continue;
        };
        let withheld = account
            .items
            .iter()
            .filter(|i| {
                i.action == Action::Blocked
                    && matches!(i.blocked, Some(BlockReason::Suspended { .. }))
            })
            .count();
        tracing::warn!(
            account = %account.id,
            label = %Escaped(account.label.as_deref().unwrap_or("")),
            suspended_by = %Escaped(by),
            withheld_deletions = withheld,
            "account suspended: listed and reported, nothing is deleted"
        );
    }
}

fn round_to_seconds(duration: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(duration.as_secs())
}
