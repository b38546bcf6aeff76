//! Carrying out a plan's deletions: for each one, back up the group's members, journal the
//! intent (synced to disk), send the DELETE, journal the outcome. Deletions run
//! concurrently under one bound; every request goes through the client's shared budget.
//!
//! The plan handed in must come from a fresh listing: `apply` and the daemon list right
//! before acting, and [`crate::plan::plan`] has already applied every safety rule, so this
//! module deletes exactly `plan.deletions()` and nothing else.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use serde::Serialize;
use thiserror::Error;

use crate::cloudflare::{Client, DeleteOutcome};
use crate::journal::{self, Journal, JournalError, Outcome, Record};
use crate::model::{AccountId, ObservedGroup};
use crate::plan::{Action, Plan};
use crate::source::Observed;

/// Default number of deletions in flight at once, across all accounts.
pub const DEFAULT_APPLY_CONCURRENCY: usize = 4;

/// How deletions are carried out.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Back up each group's members before deleting it (one more request per page of
    /// members). On by default; without it a restore recreates the group without members.
    pub backup_members: bool,
    /// Deletions in flight at once.
    pub concurrency: usize,
    /// Groups this run's journal records.
    pub run_id: String,
}

/// Asks running deletions to stop: nothing new starts once it is set; a DELETE already sent
/// finishes and its outcome is journaled.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<StopState>);

#[derive(Debug, Default)]
struct StopState {
    stopped: AtomicBool,
    notify: tokio::sync::Notify,
}

impl StopSignal {
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// Resolves once a stop is asked for, for work that may simply be abandoned (listing).
    pub async fn stopped(&self) {
        let notified = self.0.notify.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if !self.is_stopped() {
            notified.await;
        }
    }
}

/// What happened to one planned deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum DeletionResult {
    Deleted,
    AlreadyAbsent,
    Failed {
        error: String,
    },
    /// Not started because a stop was asked for.
    NotStarted,
}

/// Per-account counts of an apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AccountTally {
    pub deleted: usize,
    pub already_absent: usize,
    pub failed: usize,
    pub not_started: usize,
    pub blocked: usize,
}

/// What an apply did, per account.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplySummary {
    pub accounts: BTreeMap<AccountId, AccountTally>,
    /// Whether members were backed up before each deletion.
    pub members_backed_up: bool,
}

impl ApplySummary {
    pub fn total(&self) -> AccountTally {
        self.accounts
            .values()
            .fold(AccountTally::default(), |sum, t| AccountTally {
                deleted: sum.deleted + t.deleted,
                already_absent: sum.already_absent + t.already_absent,
                failed: sum.failed + t.failed,
                not_started: sum.not_started + t.not_started,
                blocked: sum.blocked + t.blocked,
            })
    }

    /// Everything planned was done: nothing failed, was blocked, or was left unstarted.
    pub fn complete(&self) -> bool {
        let total = self.total();
        total.failed + total.blocked + total.not_started == 0
    }
}

#[derive(Debug, Error)]
pub enum ApplyError {
    /// The journal could not be written: no further deletion is started, because it could
    /// not be backed up.
    #[error("stopped: {0}")]
    Journal(#[from] JournalError),
}

/// One deletion finished, for progress reporting.
#[derive(Debug)]
pub struct Progress<'a> {
    pub account: &'a AccountId,
    pub group: &'a ObservedGroup,
    pub result: &'a DeletionResult,
}

/// Carries out every deletion of `plan`. Returns when all have finished or a stop was asked
/// for; a journal failure stops everything and is returned as the error.
pub async fn execute(
    plan: &Plan,
    client: &Client,
    journal: &Arc<Journal>,
    options: &ApplyOptions,
    stop: &StopSignal,
    on_progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<ApplySummary, ApplyError> {
    let mut summary = ApplySummary {
        members_backed_up: options.backup_members,
        ..ApplySummary::default()
    };
    for account in &plan.accounts {
        let tally = summary.accounts.entry(account.id.clone()).or_default();
        tally.blocked = account
            .items
            .iter()
            .filter(|i| i.action == Action::Blocked)
            .count();
    }
    // A journal failure stops every other deletion before it starts.
    let halt = StopSignal::default();
    let results: Vec<(AccountId, Result<DeletionResult, JournalError>)> =
        futures_util::stream::iter(plan.deletions())
            .map(|(account, group)| {
                let halt = &halt;
                async move {
                    let result =
                        delete_one(client, journal, options, stop, halt, account, group).await;
                    if let Ok(result) = &result {
                        on_progress(Progress {
                            account,
                            group,
                            result,
                        });
                    } else {
                        halt.stop();
                    }
                    (account.clone(), result)
                }
            })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;

    let mut journal_error = None;
    for (account, result) in results {
        let tally = summary.accounts.entry(account).or_default();
        match result {
            Ok(DeletionResult::Deleted) => tally.deleted += 1,
            Ok(DeletionResult::AlreadyAbsent) => tally.already_absent += 1,
            Ok(DeletionResult::Failed { .. }) => tally.failed += 1,
            Ok(DeletionResult::NotStarted) => tally.not_started += 1,
            Err(e) => {
                tally.failed += 1;
                journal_error.get_or_insert(e);
            }
        }
    }
    match journal_error {
        Some(e) => Err(e.into()),
        None => Ok(summary),
    }
}

async fn delete_one(
    client: &Client,
    journal: &Arc<Journal>,
    options: &ApplyOptions,
    stop: &StopSignal,
    halt: &StopSignal,
    account: &AccountId,
    group: &ObservedGroup,
) -> Result<DeletionResult, JournalError> {
    let stopped = || stop.is_stopped() || halt.is_stopped();
    if stopped() {
        return Ok(DeletionResult::NotStarted);
    }
    let members = if options.backup_members {
        match client.list_members(account, &group.id).await {
            Ok(members) => Some(members),
            Err(e) if e.status() == Some(404) => {
                tracing::info!(%account, group = %group.id, "group already absent");
                return Ok(DeletionResult::AlreadyAbsent);
            }
            Err(e) => {
                tracing::warn!(%account, group = %group.id, error = %e, "cannot back up members; not deleting");
                return Ok(DeletionResult::Failed {
                    error: format!("cannot back up members: {e}"),
                });
            }
        }
    } else {
        None
    };
    if stopped() {
        return Ok(DeletionResult::NotStarted);
    }
    append(
        journal,
        Record::Intent {
            at: journal::now(),
            run: options.run_id.clone(),
            account: account.clone(),
            group: group.clone(),
            members,
        },
    )
    .await?;
    let (result, outcome) = match client.delete_group(account, &group.id).await {
        Ok(DeleteOutcome::Deleted) => (DeletionResult::Deleted, Outcome::Deleted),
        Ok(DeleteOutcome::AlreadyAbsent) => {
            tracing::info!(%account, group = %group.id, "group already absent (404 on delete)");
            (DeletionResult::AlreadyAbsent, Outcome::AlreadyAbsent)
        }
        Err(e) => {
            let error = e.to_string();
            tracing::warn!(%account, group = %group.id, %error, "delete failed");
            (
                DeletionResult::Failed {
                    error: error.clone(),
                },
                Outcome::Failed { error },
            )
        }
    };
    append(
        journal,
        Record::Outcome {
            at: journal::now(),
            run: options.run_id.clone(),
            account: account.clone(),
            group_id: group.id.clone(),
            outcome,
        },
    )
    .await?;
    if result == DeletionResult::Deleted {
        tracing::info!(%account, group = %group.id, name = %group.name, "deleted");
    }
    Ok(result)
}

/// Appends off the async threads: the append waits for the disk.
async fn append(journal: &Arc<Journal>, record: Record) -> Result<(), JournalError> {
    let path = journal.path().to_owned();
    let journal = Arc::clone(journal);
    tokio::task::spawn_blocking(move || journal.append(&record))
        .await
        .unwrap_or_else(|join| {
            Err(JournalError::Io {
                path,
                source: std::io::Error::other(join.to_string()),
            })
        })
}

/// Reads the journal, appends the outcomes [`resolve_interrupted`] decides from `observed`,
/// and returns them. `apply` and the daemon call it after every fresh listing.
pub fn settle(journal: &Journal, observed: &Observed) -> Result<Vec<Record>, JournalError> {
    let contents = journal::read(journal.path())?;
    if !contents.unreadable.is_empty() {
        tracing::warn!(
            journal = %journal.path().display(),
            lines = ?contents.unreadable,
            "journal lines that are not records (torn by a crash) were skipped"
        );
    }
    let settled = resolve_interrupted(&contents, observed);
    for record in &settled {
        journal.append(record)?;
    }
    Ok(settled)
}

/// Outcomes for what earlier runs left unsettled, decided by a fresh listing:
/// - an intent a crash left without an outcome: a group no longer listed is gone; a group
///   still listed was not deleted;
/// - a deletion recorded as failed: its DELETE may have taken effect even so (the answer
///   was lost and the retry failed), so a group no longer listed is recorded as gone.
///
/// Accounts whose listing failed stay unsettled until a listing succeeds.
pub fn resolve_interrupted(contents: &journal::Contents, observed: &Observed) -> Vec<Record> {
    // The outcome a fresh listing gives an open intent; `None` leaves it open (its account
    // was not listed, or a failed delete whose group is still there stays failed).
    let settle = |record: &Record, interrupted: bool| {
        let Record::Intent {
            run,
            account,
            group,
            ..
        } = record
        else {
            return None;
        };
        let Some(Ok(groups)) = observed.get(account) else {
            return None;
        };
        let outcome = match (groups.iter().any(|g| g.id == group.id), interrupted) {
            (false, _) => Outcome::Deleted,
            (true, true) => Outcome::Failed {
                error: "interrupted before the delete completed; the group still exists".to_owned(),
            },
            (true, false) => return None,
        };
        Some(Record::Outcome {
            at: journal::now(),
            run: run.clone(),
            account: account.clone(),
            group_id: group.id.clone(),
            outcome,
        })
    };
    let interrupted = contents
        .unresolved()
        .into_iter()
        .filter_map(|record| settle(record, true));
    let failed_but_gone = contents
        .failed_deletions()
        .into_iter()
        .filter_map(|record| settle(record, false));
    interrupted.chain(failed_but_gone).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stopped_resolves_for_waiters_before_and_after_the_stop() {
        let stop = StopSignal::default();
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { stop.stopped().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        stop.stop();
        waiter.await.unwrap();
        stop.stopped().await;
        assert!(stop.is_stopped());
    }
}
