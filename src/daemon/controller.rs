//! The reconcile loop of `cfgroups run`: wakes on start, a config change, the interval tick,
//! a retry of a failed account, or SIGHUP; re-reads the config (keeping the last good one
//! when the new one is invalid); lists fresh; plans; deletes with the same code `apply`
//! uses; and reports through metrics, the health state, `last-report.json` and systemd.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::metrics::{self, DriftCounts, Metrics, ReconcileResult};
use super::schedule::{Due, Schedule};
use super::server::Health;
use super::systemd;
use super::watcher::{Reload, ReloadGate};
use crate::apply::{self, ApplyOptions, DeletionResult, Progress, StopSignal};
use crate::config::{self, DesiredState};
use crate::journal::{self, Journal};
use crate::model::AccountId;
use crate::plan::{self, Listing, Plan, PlanOptions};
use crate::report;
use crate::source::{self, CloudflareSource, GroupSource, Observed};

/// The daemon's report of the last reconcile, inside the state directory.
pub const LAST_REPORT_FILE: &str = "last-report.json";

/// How the daemon behaves, from `cfgroups run`'s flags.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    pub config: PathBuf,
    pub state_dir: PathBuf,
    /// Report drift forever, never delete.
    pub dry_run: bool,
    /// Accounts listed at once.
    pub concurrency: usize,
    /// How long new config content must stay unchanged before it is taken.
    pub settle: Duration,
    /// How deletions run; each reconcile journals under a run id of its own.
    pub apply: ApplyOptions,
}

/// What wakes the loop besides its own timetable.
pub struct Wakers {
    /// "The config may have changed" from the watcher.
    pub config_changed: mpsc::Receiver<()>,
    /// SIGHUP.
    pub hangup: mpsc::Receiver<()>,
    /// Becomes `true` on SIGTERM/SIGINT.
    pub shutdown: watch::Receiver<bool>,
}

/// The reconcile loop's state.
pub struct Controller {
    options: ControllerOptions,
    desired: DesiredState,
    gate: ReloadGate,
    source: CloudflareSource,
    journal: Arc<Journal>,
    metrics: Metrics,
    health: Health,
    schedule: Schedule,
    stop: StopSignal,
    watchdog: Option<Duration>,
}

impl Controller {
    /// A controller over an already validated `desired` state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        options: ControllerOptions,
        desired: DesiredState,
        source: CloudflareSource,
        journal: Arc<Journal>,
        metrics: Metrics,
        health: Health,
        schedule: Schedule,
        stop: StopSignal,
    ) -> Self {
        let mut gate = ReloadGate::new();
        gate.observe(&desired);
        Self {
            options,
            desired,
            gate,
            source,
            journal,
            metrics,
            health,
            schedule,
            stop,
            watchdog: systemd::watchdog_interval(),
        }
    }

    /// Runs until shutdown: reconciles once at start, then on every trigger.
    pub async fn run(mut self, mut wakers: Wakers) {
        self.reconcile(None).await;
        self.health.set_ready(true);
        loop {
            if *wakers.shutdown.borrow() {
                break;
            }
            let heartbeat = self.heartbeat_period();
            let scope = tokio::select! {
                _ = tokio::time::sleep_until(self.schedule.next_wake()) => {
                    match self.schedule.due(Instant::now()) {
                        // The tick re-reads the config too: it is how changes the watch
                        // cannot see (a symlink into another directory, a network file
                        // system) are picked up.
                        Some(Due::Everything) => {
                            self.reload(false).await;
                            Some(None)
                        }
                        Some(Due::Retry(accounts)) => Some(Some(accounts)),
                        None => None,
                    }
                }
                changed = wakers.config_changed.recv(), if !wakers.config_changed.is_closed() => {
                    if changed.is_some() && self.reload(false).await { Some(None) } else { None }
                }
                Some(()) = wakers.hangup.recv() => {
                    tracing::info!("SIGHUP: reloading the config and reconciling");
                    self.reload(true).await;
                    Some(None)
                }
                _ = wakers.shutdown.changed() => None,
                _ = tokio::time::sleep(heartbeat) => None,
            };
            self.beat();
            if *wakers.shutdown.borrow() {
                break;
            }
            if let Some(scope) = scope {
                self.reconcile(scope.as_deref()).await;
            }
        }
        tracing::info!("stopped");
    }

    fn heartbeat_period(&self) -> Duration {
        self.watchdog.unwrap_or(Duration::from_secs(10))
    }

    /// The loop is alive: for `/healthz` and the systemd watchdog.
    fn beat(&self) {
        self.health.tick();
        if self.watchdog.is_some()
            && let Err(e) = systemd::notify_watchdog()
        {
            tracing::warn!(error = %e, "systemd watchdog notification failed");
        }
    }

    /// Re-reads the config. Returns whether a reconcile is called for: the content changed,
    /// or `always` (SIGHUP). An invalid config keeps the last good one and deletes nothing.
    ///
    /// New content is read twice, `settle` apart, and taken only when both reads agree: a
    /// file caught half-written can still be valid YAML (a list cut at an item boundary),
    /// and under `unmanaged: delete` the groups it no longer names would be pruned. A file
    /// still changing is left for the next event.
    async fn reload(&mut self, always: bool) -> bool {
        let desired = match config::load(&self.options.config) {
            Ok(first) if self.gate.last_hash() != Some(first.content_hash.as_str()) => {
                tokio::time::sleep(self.options.settle).await;
                match config::load(&self.options.config) {
                    Ok(second) if second.content_hash == first.content_hash => Ok(second),
                    Ok(_) => {
                        tracing::info!("the config is still changing; waiting for it to settle");
                        return always;
                    }
                    Err(errors) => Err(errors),
                }
            }
            other => other,
        };
        match desired {
            Ok(desired) => {
                self.metrics.record_reload(true, SystemTime::now());
                let changed = self.gate.observe(&desired) == Reload::Changed;
                if changed {
                    tracing::info!(
                        accounts = desired.accounts.len(),
                        "config changed; reloaded"
                    );
                    for gone in self
                        .desired
                        .accounts
                        .iter()
                        .filter(|old| !desired.accounts.iter().any(|new| new.id == old.id))
                    {
                        self.metrics.forget_account(&gone.id);
                        self.schedule.forget(&gone.id);
                    }
                    self.desired = desired;
                }
                changed || always
            }
            Err(errors) => {
                self.metrics.record_reload(false, SystemTime::now());
                tracing::error!(
                    errors = %errors,
                    "the config is invalid; keeping the last good config, deleting nothing new"
                );
                always
            }
        }
    }

    /// Lists, plans and (unless dry-run) deletes, for every account or just `only`.
    async fn reconcile(&mut self, only: Option<&[AccountId]>) {
        let started = StdInstant::now();
        // A retry may name an account the config has dropped since: it is not ours any more.
        let accounts: Vec<AccountId> = match only {
            Some(only) => only
                .iter()
                .filter(|a| self.desired.accounts.iter().any(|d| d.id == **a))
                .cloned()
                .collect(),
            None => self.desired.account_ids(),
        };
        let mut scoped = self.desired.clone();
        scoped.accounts.retain(|a| accounts.contains(&a.id));

        let listing = source::list_accounts(&self.source, &accounts, self.options.concurrency);
        // Listing changes nothing, so a stop abandons it rather than waiting out retries.
        let stop = self.stop.clone();
        let observed = tokio::select! {
            observed = self.with_heartbeat(listing) => observed,
            () = stop.stopped() => {
                self.metrics.record_reconcile(ReconcileResult::Skipped, started.elapsed());
                return;
            }
        };
        self.settle_journal(&observed);
        let plan = plan::plan(&scoped, &observed, PlanOptions::default());

        let mut failed_accounts: Vec<AccountId> = plan
            .accounts
            .iter()
            .filter(|a| matches!(a.listing, Listing::ListingFailed { .. }))
            .map(|a| a.id.clone())
            .collect();
        let mut result = ReconcileResult::Success;
        if !self.options.dry_run && plan.deletions().next().is_some() && !self.stop.is_stopped() {
            match self.delete(&plan).await {
                Ok(summary) => {
                    for (account, tally) in &summary.accounts {
                        if tally.failed > 0 {
                            failed_accounts.push(account.clone());
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "deletions stopped");
                    result = ReconcileResult::Failure;
                }
            }
        }
        failed_accounts.sort();
        failed_accounts.dedup();
        if !failed_accounts.is_empty() {
            result = ReconcileResult::Failure;
        }

        let now = SystemTime::now();
        let succeeded: Vec<AccountId> = accounts
            .iter()
            .filter(|a| !failed_accounts.contains(a))
            .cloned()
            .collect();
        for account in &plan.accounts {
            self.metrics
                .set_drift(&account.id, DriftCounts::from_plan(account));
        }
        for account in &succeeded {
            self.metrics.record_account_success(account, now);
        }
        let budget = self.source.client().budget().snapshot();
        self.metrics
            .set_budget_remaining(u64::from(budget.remaining_in_window));
        self.metrics.record_reconcile(result, started.elapsed());
        self.schedule
            .record(&failed_accounts, &succeeded, Instant::now());
        if only.is_none() {
            self.schedule.reset_tick(Instant::now());
            if let Err(e) = write_report(&self.options.state_dir, &plan, &self.source.describe()) {
                tracing::warn!(error = %e, "cannot write {LAST_REPORT_FILE}");
            }
        }
        let summary = plan.summary();
        let status = format!(
            "planned {} to delete, {} blocked, {} missing, {} unmanaged, {} accounts failing",
            summary.delete,
            summary.blocked,
            summary.missing,
            summary.unmanaged,
            failed_accounts.len()
        );
        tracing::info!(
            result = result.as_str(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            dry_run = self.options.dry_run,
            "reconciled: {status}"
        );
        if let Err(e) = systemd::notify_status(&status) {
            tracing::warn!(error = %e, "systemd status notification failed");
        }
        self.beat();
    }

    async fn delete(&self, plan: &Plan) -> Result<apply::ApplySummary, apply::ApplyError> {
        let metrics = &self.metrics;
        let health = &self.health;
        let on_progress = |progress: Progress<'_>| {
            health.tick();
            let result = match progress.result {
                DeletionResult::Deleted => metrics::DeletionResult::Deleted,
                DeletionResult::AlreadyAbsent => metrics::DeletionResult::AlreadyAbsent,
                DeletionResult::Failed { .. } => metrics::DeletionResult::Failed,
                DeletionResult::NotStarted => return,
            };
            metrics.record_deletion(progress.account, result);
        };
        let options = ApplyOptions {
            run_id: journal::new_run_id(),
            ..self.options.apply.clone()
        };
        let execute = apply::execute(
            plan,
            self.source.client(),
            &self.journal,
            &options,
            &self.stop,
            &on_progress,
        );
        self.with_heartbeat(execute).await
    }

    /// Runs `work` while still telling `/healthz` and the systemd watchdog that the loop is
    /// alive: a long reconcile is progress, not a hang (every request has a deadline).
    async fn with_heartbeat<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        let mut ticker = tokio::time::interval(self.heartbeat_period());
        loop {
            tokio::select! {
                output = &mut work => return output,
                _ = ticker.tick() => self.beat(),
            }
        }
    }

    /// Settles, from this cycle's listing, what earlier deletions left open: intents a
    /// crash cut short, and failed deletes whose group is gone all the same.
    fn settle_journal(&self, observed: &Observed) {
        match apply::settle(&self.journal, observed) {
            Ok(settled) => {
                for record in &settled {
                    tracing::warn!(
                        ?record,
                        "settled an earlier deletion from the fresh listing"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot settle earlier deletions in the journal"),
        }
    }
}

/// Writes the report atomically: readers see the old one or the new one, never half.
pub fn write_report(state_dir: &Path, plan: &Plan, source: &str) -> std::io::Result<()> {
    let path = state_dir.join(LAST_REPORT_FILE);
    let temp = state_dir.join(format!(".{LAST_REPORT_FILE}.tmp"));
    std::fs::write(&temp, report::json(plan, source))?;
    std::fs::rename(&temp, &path)
}
