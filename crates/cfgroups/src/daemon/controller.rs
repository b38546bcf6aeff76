//! The reconcile loop of `cfgroups run`: wakes on start, a config change, the interval tick,
//! a retry of a failed account, or SIGHUP; re-reads the config (taking new content only when
//! it is complete, and keeping the last good config otherwise); runs the reconcile pipeline
//! `apply` uses; and reports through metrics, the health state, `last-report.json` and
//! systemd.
//!
//! While no valid config is on disk (deleted, or failing to load), every cycle runs as a dry
//! run: drift is listed and reported against the last good config, nothing is deleted, until
//! a valid config is back ([`Reloader`]). Suspended accounts, refused deletions and their
//! reporting are the [`Guards`]' business, asked before each cycle and each deletion, and
//! told after each cycle.
//!
//! With leader election, the loop holds a [`Leadership`] value. A standby does everything
//! but reconcile: it wakes, re-reads and validates the config, keeps `/healthz` ticking and
//! is ready, but lists and deletes nothing. Becoming the leader is a trigger like any other
//! (a full reconcile at once); each reconcile runs under a [`TermGuard`] whose token is
//! cancelled the moment the term ends, so a lost lease abandons a listing and lets a DELETE
//! in flight finish while no new one starts, and the pipeline's writer asks the leadership
//! once more right before each deletion.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant as StdInstant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::election::{LeaderWriter, Leadership, TermGuard};
use super::guards::Guards;
use super::metrics::{AccountResult, Metrics, ReconcileResult};
use super::reload::{ReloadOutcome, Reloader};
use super::schedule::{DEFAULT_JITTER, DEFAULT_RETRY_BASE, Due, Schedule};
use super::server::Health;
use super::systemd;
use super::writes::Writes;
use crate::after_deletions::{self, DeletionReport};
use crate::apply::{ApplySummary, Attempts, Progress};
use crate::cloudflare::{Budget, Client};
use crate::config::DesiredState;
use crate::model::{AccountId, ObservedGroup};
use crate::plan::{Listing, Plan};
use crate::reconcile::{Pipeline, Reconciled};
use crate::report::{self, CycleFacts};
use crate::source::{CloudflareSource, GroupSource};

/// The daemon's report of the last reconcile, inside the state directory.
pub const LAST_REPORT_FILE: &str = "last-report.json";

/// The pipeline the daemon drives: listings and deletions both through the live API, every
/// deletion gated by leadership.
pub type DaemonPipeline = Pipeline<CloudflareSource, LeaderWriter<Client>>;

/// How the daemon behaves, from `cfgroups run`'s flags.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    pub config: PathBuf,
    pub state_dir: PathBuf,
    /// Report drift forever, never delete.
    pub dry_run: bool,
    /// Time between full reconciles.
    pub interval: Duration,
    /// The watch's coalescing window (`--debounce`); also how long events of a write that
    /// raced a read of the config are given to arrive before new content is taken.
    pub debounce: Duration,
}

/// Where the controller reports what it does.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub metrics: Metrics,
    pub health: Health,
    /// The client's request budget, for `cfgroups_api_budget_remaining`.
    pub budget: Budget,
}

/// What wakes the loop besides its own timetable.
pub struct Wakers {
    /// "New complete config content may be there" from the watcher.
    pub config_changed: mpsc::Receiver<()>,
    /// The watcher's record of config files being written, asked before every read of the
    /// config (a tick or SIGHUP must not catch a file half-written either).
    pub writes: Writes,
    /// SIGHUP.
    pub hangup: mpsc::Receiver<()>,
    /// Becomes `true` on SIGTERM/SIGINT.
    pub shutdown: watch::Receiver<bool>,
}

/// The reconcile loop's state.
pub struct Controller {
    options: ControllerOptions,
    desired: DesiredState,
    /// Created in [`run`](Self::run), with the watcher's [`Writes`].
    reloader: Option<Reloader>,
    pipeline: DaemonPipeline,
    telemetry: Telemetry,
    schedule: Schedule,
    stop: CancellationToken,
    /// Whether this replica may talk to Cloudflare; [`Leadership::always`] without election.
    leadership: Leadership,
    /// False once the elector is gone (its channel closed): no more changes to wait for.
    elector_alive: bool,
    /// The term the loop last saw this replica lead in: a new one calls for a reconcile,
    /// a renewal of the same one does not.
    seen_term: Option<u64>,
    watchdog: Option<Duration>,
    /// Accounts whose latest listing failed: while any is, `/readyz` says so.
    unlisted: std::collections::BTreeSet<AccountId>,
    /// Deletions held off, and the other guards' state across cycles.
    guards: Guards,
}

impl Controller {
    /// A controller over an already validated `desired` state. `stop` is cancelled on
    /// SIGTERM: listings are abandoned, deletions in flight finish, none starts. Only while
    /// `leadership` holds a valid term does it reconcile.
    pub fn new(
        options: ControllerOptions,
        desired: DesiredState,
        pipeline: DaemonPipeline,
        telemetry: Telemetry,
        stop: CancellationToken,
        leadership: Leadership,
    ) -> Self {
        let schedule = Schedule::new(
            options.interval,
            DEFAULT_JITTER,
            DEFAULT_RETRY_BASE,
            Instant::now(),
        );
        Self {
            options,
            desired,
            reloader: None,
            pipeline,
            telemetry,
            schedule,
            stop,
            leadership,
            elector_alive: true,
            seen_term: None,
            watchdog: systemd::watchdog_interval(),
            unlisted: std::collections::BTreeSet::new(),
            guards: Guards::default(),
        }
    }

    /// The guards this loop uses: the suspend file, the waits of refused deletions, the
    /// notification sinks (from `run`'s flags and the config).
    pub fn with_guards(mut self, guards: Guards) -> Self {
        self.guards = guards;
        self
    }

    /// Runs until shutdown: reconciles once at start, then on every trigger.
    pub async fn run(mut self, mut wakers: Wakers) {
        self.reloader = Some(Reloader::new(
            &self.options.config,
            self.options.debounce,
            wakers.writes.clone(),
            &self.desired,
        ));
        self.telemetry.metrics.set_deletions_suspended(false);
        self.track_accounts();
        self.seen_term = self.leadership.current_term().map(|t| t.number);
        if self.leadership.is_leader() {
            // Readiness follows from the cycle: every account listed, or not ready.
            self.reconcile(None).await;
        } else {
            self.stand_by();
        }
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
                alive = self.leadership.changed(), if self.elector_alive => {
                    self.elector_alive = alive;
                    // A new term (leading now, when it was not): a full reconcile at once.
                    let term = self.leadership.current_term().map(|t| t.number);
                    let new_term = term.is_some() && term != self.seen_term;
                    self.seen_term = term;
                    if term.is_none() {
                        self.ready_as_standby();
                    }
                    if new_term { Some(None) } else { None }
                }
                _ = wakers.shutdown.changed() => None,
                _ = tokio::time::sleep(heartbeat) => None,
            };
            self.beat();
            if *wakers.shutdown.borrow() {
                break;
            }
            if let Some(scope) = scope {
                if self.leadership.is_leader() {
                    self.reconcile(scope.as_deref()).await;
                    // The cycle's listing and plan are gone: their pages go back too.
                    let released = crate::memory::release_freed();
                    tracing::debug!(released, "returned freed memory to the system");
                } else {
                    self.stand_by();
                }
            }
        }
        self.guards.shutdown().await;
        tracing::info!("stopped");
    }

    /// A trigger came while another replica leads: nothing is listed or deleted, and the
    /// timetable restarts (a new leader reconciles everything anyway).
    fn stand_by(&mut self) {
        let now = Instant::now();
        self.schedule.reset_tick(now);
        for account in self.desired.account_ids() {
            self.schedule.forget(&account);
        }
        self.ready_as_standby();
        tracing::debug!(leader = ?self.leadership.holder(), "standing by: not reconciling");
    }

    /// A standby is ready: its config is loaded and valid, and it takes over on its own;
    /// marking it unready would only make a rolling update wait for nothing. What it saw
    /// failing while it led is the next leader's to see.
    fn ready_as_standby(&mut self) {
        self.unlisted.clear();
        self.telemetry.health.set_ready(true);
    }

    fn heartbeat_period(&self) -> Duration {
        self.watchdog.unwrap_or(Duration::from_secs(10))
    }

    /// The loop is alive: for `/healthz` and the systemd watchdog.
    fn beat(&self) {
        self.telemetry.health.tick();
        if self.watchdog.is_some()
            && let Err(e) = systemd::notify_watchdog()
        {
            tracing::warn!(error = %e, "systemd watchdog notification failed");
        }
    }

    /// Whether deletions are suspended for want of a valid config on disk.
    fn deletions_suspended(&self) -> bool {
        self.reloader
            .as_ref()
            .is_some_and(Reloader::deletions_suspended)
    }

    /// Re-reads the config. Returns whether a reconcile is called for: the content changed,
    /// deletions resumed, or `always` (SIGHUP).
    async fn reload(&mut self, always: bool) -> bool {
        let Some(reloader) = self.reloader.as_mut() else {
            return always;
        };
        let was_suspended = reloader.deletions_suspended();
        let outcome = reloader.reload().await;
        let metrics = &self.telemetry.metrics;
        match outcome {
            ReloadOutcome::WriteInProgress(files) => {
                tracing::info!(
                    files = ?files,
                    "a write to the config is in progress; keeping the last good config until \
                     the writer closes it or renames it into place"
                );
                always
            }
            ReloadOutcome::ChangedWhileRead => {
                tracing::info!(
                    "the config changed while it was read; keeping the last good config until \
                     the write is complete"
                );
                always
            }
            ReloadOutcome::Unchanged => {
                metrics.record_reload(true, SystemTime::now());
                metrics.set_deletions_suspended(false);
                if was_suspended {
                    tracing::info!("a valid config is back on disk; deletions resume");
                }
                always || was_suspended
            }
            ReloadOutcome::Changed(desired) => {
                metrics.record_reload(true, SystemTime::now());
                metrics.set_deletions_suspended(false);
                let changed = desired.changed_files(&self.desired);
                if was_suspended {
                    tracing::info!(
                        files = ?changed,
                        "a valid config is back on disk; deletions resume"
                    );
                }
                tracing::info!(
                    accounts = desired.accounts.len(),
                    files = ?changed,
                    config_hash = short_hash(&desired.content_hash),
                    "config changed; reloaded"
                );
                for gone in self
                    .desired
                    .accounts
                    .iter()
                    .filter(|old| !desired.accounts.iter().any(|new| new.id == old.id))
                {
                    metrics.forget_account(&gone.id);
                    self.schedule.forget(&gone.id);
                    self.guards.forget_account(&gone.id);
                }
                self.guards
                    .configure_notifications(&desired.notify, &self.telemetry.metrics);
                self.desired = *desired;
                self.track_accounts();
                true
            }
            ReloadOutcome::Invalid { missing, errors } => {
                metrics.record_reload(false, SystemTime::now());
                metrics.set_deletions_suspended(true);
                let what = if missing {
                    "the config is gone"
                } else {
                    "the config is invalid"
                };
                tracing::error!(
                    errors = %errors,
                    "{what}: deletions are suspended until a valid config is back; drift is \
                     still listed and reported against the last good config"
                );
                always
            }
        }
    }

    /// Runs the pipeline for every account, or just `only`, and reports the cycle.
    async fn reconcile(&mut self, only: Option<&[AccountId]>) {
        let started = StdInstant::now();
        // A retry may name an account the config has dropped since: it is not ours any more.
        let mut scoped = self.desired.clone();
        if let Some(only) = only {
            scoped.accounts.retain(|account| only.contains(&account.id));
        }
        self.guards.suspend(&mut scoped);
        let accounts = scoped.account_ids();

        let telemetry = &self.telemetry;
        let attempts = Attempts::default();
        let on_progress = |progress: Progress<'_>| {
            telemetry.health.tick();
            telemetry
                .metrics
                .record_deletion(progress.account, progress.outcome);
            attempts.push(progress.account, progress.group, progress.outcome);
        };
        let cycle_start = Instant::now();
        let guards = &self.guards;
        let held = |account: &AccountId, group: &ObservedGroup| {
            guards.holds(account, group, &scoped.content_hash, cycle_start)
        };
        // No valid config on disk: report, delete nothing.
        let dry_run = self.options.dry_run || self.deletions_suspended();
        // The cycle runs under the current term: its end cancels this token at once.
        let term: TermGuard = self.leadership.guard_term(&self.stop);
        let reconciling =
            self.pipeline
                .reconcile(&scoped, dry_run, &held, term.token(), &on_progress);
        let (plan, applied, run_id) = match self.with_heartbeat(reconciling).await {
            Ok(Reconciled::Abandoned) => {
                self.telemetry
                    .metrics
                    .record_reconcile(ReconcileResult::Skipped, started.elapsed());
                return;
            }
            Ok(Reconciled::Done { cycle, applied }) => {
                for record in &cycle.settled {
                    tracing::warn!(
                        ?record,
                        "settled an earlier deletion from the fresh listing"
                    );
                }
                (cycle.plan, applied, cycle.run_id)
            }
            Err(e) => {
                tracing::error!(error = %e, "the journal cannot be used; nothing is deleted");
                self.telemetry
                    .metrics
                    .record_reconcile(ReconcileResult::Failure, started.elapsed());
                // No account of the cycle was reconciled: the per-account series say so too.
                for account in &accounts {
                    self.telemetry
                        .metrics
                        .record_account_result(account, AccountResult::Failure);
                }
                self.schedule.record(&accounts, &[], Instant::now());
                return;
            }
        };

        let mut failed_accounts: Vec<AccountId> = unlisted(&plan).cloned().collect();
        let mut result = ReconcileResult::Success;
        let applied = match applied {
            Some(Ok(summary)) => {
                failed_accounts.extend(failed_in(&summary));
                Some(summary)
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "deletions stopped");
                result = ReconcileResult::Failure;
                // Every account with a planned deletion is unfinished.
                failed_accounts.extend(plan.deletions().map(|(account, _)| account.clone()));
                None
            }
            None => None,
        };
        self.guards.after_cycle(
            &run_id,
            &plan,
            &attempts.into_inner(),
            &scoped.content_hash,
            &self.telemetry.metrics,
        );
        failed_accounts.sort();
        failed_accounts.dedup();
        if !failed_accounts.is_empty() {
            result = ReconcileResult::Failure;
        }
        // What the cycle reports is the state after its deletions, not the plan before them.
        let after = applied.as_ref().map_or_else(
            || plan.clone(),
            |summary| after_deletions::plan_after(&plan, summary),
        );
        let deletions = applied
            .as_ref()
            .map(after_deletions::deletions)
            .unwrap_or_default();
        self.update_readiness(&plan, &accounts);
        self.report(
            &after,
            &deletions,
            &accounts,
            &failed_accounts,
            result,
            started,
            only.is_none(),
        );
        self.beat();
    }

    /// `/readyz` after a cycle over `scope`: ready while the latest listing of every account
    /// succeeded; else not ready, naming the accounts that cannot be listed.
    fn update_readiness(&mut self, plan: &Plan, scope: &[AccountId]) {
        self.unlisted.retain(|account| !scope.contains(account));
        self.unlisted.extend(unlisted(plan).cloned());
        let configured = self.desired.account_ids();
        self.unlisted.retain(|account| configured.contains(account));
        if self.unlisted.is_empty() {
            self.telemetry.health.set_ready(true);
        } else {
            let accounts: Vec<String> = self.unlisted.iter().map(ToString::to_string).collect();
            self.telemetry.health.set_not_ready(format!(
                "{} of {} account(s) could not be listed in their latest reconcile: {}",
                accounts.len(),
                configured.len(),
                accounts.join(", ")
            ));
        }
    }

    /// Creates the per-account counters of every configured account at zero.
    fn track_accounts(&self) {
        for account in &self.desired.accounts {
            self.telemetry.metrics.track_account(&account.id);
        }
    }

    /// Metrics, schedule, `last-report.json`, the log line and the systemd status of one
    /// finished cycle. `plan` is the state after the cycle's `deletions`.
    #[allow(clippy::too_many_arguments)]
    fn report(
        &mut self,
        plan: &Plan,
        deletions: &[DeletionReport],
        accounts: &[AccountId],
        failed_accounts: &[AccountId],
        result: ReconcileResult,
        started: StdInstant,
        full: bool,
    ) {
        let metrics = &self.telemetry.metrics;
        let now = SystemTime::now();
        let succeeded: Vec<AccountId> = accounts
            .iter()
            .filter(|a| !failed_accounts.contains(a))
            .cloned()
            .collect();
        for account in &plan.accounts {
            metrics.set_drift(&account.id, &account.summary());
        }
        for account in &succeeded {
            metrics.record_account_success(account, now);
            metrics.record_account_result(account, AccountResult::Success);
        }
        for account in failed_accounts {
            metrics.record_account_result(account, AccountResult::Failure);
        }
        let budget = self.telemetry.budget.snapshot();
        metrics.set_budget_remaining(u64::from(budget.remaining_in_window));
        metrics.record_reconcile(result, started.elapsed());
        self.schedule
            .record(failed_accounts, &succeeded, Instant::now());
        if full {
            self.schedule.reset_tick(Instant::now());
            let source = self.pipeline.source().describe();
            let facts = CycleFacts {
                generated_at: humantime::format_rfc3339_seconds(now).to_string(),
                config_hash: self.desired.content_hash.clone(),
                deletions: deletions.to_vec(),
            };
            if let Err(e) = write_report(&self.options.state_dir, plan, &source, &facts) {
                tracing::warn!(error = %e, "cannot write {LAST_REPORT_FILE}");
            }
        }
        let suspended = self.deletions_suspended();
        let status = cycle_status(plan, deletions, failed_accounts.len(), suspended);
        tracing::info!(
            result = result.as_str(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            dry_run = self.options.dry_run,
            deletions_suspended = suspended,
            config_hash = short_hash(&self.desired.content_hash),
            "reconciled: {status}"
        );
        if let Err(e) = systemd::notify_status(&status) {
            tracing::warn!(error = %e, "systemd status notification failed");
        }
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
}

/// The accounts whose listing failed.
fn unlisted(plan: &Plan) -> impl Iterator<Item = &AccountId> {
    plan.accounts
        .iter()
        .filter(|a| matches!(a.listing, Listing::ListingFailed { .. }))
        .map(|a| &a.id)
}

/// The cycle in one line, for the log and systemd's status: what its deletions did, then
/// the drift that remains after them.
fn cycle_status(
    after: &Plan,
    deletions: &[DeletionReport],
    failing_accounts: usize,
    suspended: bool,
) -> String {
    let summary = after.summary();
    let mut status = String::new();
    if !deletions.is_empty() {
        let count = |name: &str| {
            deletions
                .iter()
                .filter(|d| d.deletion.as_str() == name)
                .count()
        };
        let gone = count("deleted") + count("already_absent");
        let failed = deletions.len() - gone - count("held_off");
        status.push_str(&format!("deleted {gone}, {failed} not deleted; now "));
    }
    status.push_str(&format!(
        "{} to delete, {} blocked, {} missing, {} unmanaged, {failing_accounts} accounts failing",
        summary.delete, summary.blocked, summary.missing, summary.unmanaged,
    ));
    if suspended {
        status.push_str("; deletions suspended: no valid config on disk, nothing deleted");
    }
    status
}

/// The first 12 hex digits of a content hash: enough to tell configs apart in a log line.
fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The accounts in which a deletion failed, or found its group changed: both are retried
/// soon, with a fresh plan.
fn failed_in(summary: &ApplySummary) -> impl Iterator<Item = AccountId> + '_ {
    summary
        .accounts
        .iter()
        .filter(|(_, tally)| tally.failed + tally.moved > 0)
        .map(|(account, _)| account.clone())
}

/// Writes the report atomically: readers see the old one or the new one, never half.
pub fn write_report(
    state_dir: &Path,
    plan: &Plan,
    source: &str,
    facts: &CycleFacts,
) -> std::io::Result<()> {
    let path = state_dir.join(LAST_REPORT_FILE);
    let temp = state_dir.join(format!(".{LAST_REPORT_FILE}.tmp"));
    // Written as it is encoded: a report of 50,000 groups is never held whole.
    let mut file = std::io::BufWriter::new(std::fs::File::create(&temp)?);
    report::write_cycle(plan, source, facts, &mut file)?;
    std::io::Write::flush(&mut file)?;
    drop(file);
    std::fs::rename(&temp, &path)
}
