//! Carrying out a plan's deletions: for each one, back up the group's members, journal the
//! intent (synced to disk), send the DELETE, journal the outcome. Deletions run
//! concurrently under one bound, through a [`GroupWriter`] (the HTTP client in the product,
//! whose every request passes the shared budget).
//!
//! The plan handed in must come from a fresh listing: the reconcile pipeline lists right
//! before acting, and [`crate::plan::plan`] has already applied every safety rule, so this
//! module deletes exactly `plan.deletions()` and nothing else.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::Serialize;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::journal::{self, Journal, JournalError, Record};
use crate::model::{AccountId, DeletionOutcome, ObservedGroup};
use crate::plan::{Action, Plan};
use crate::writer::{GroupWriter, WriteErrorKind};

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
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            backup_members: true,
            concurrency: DEFAULT_APPLY_CONCURRENCY,
        }
    }
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

impl AccountTally {
    fn count(&mut self, outcome: Option<&DeletionOutcome>) {
        match outcome {
            Some(DeletionOutcome::Deleted) => self.deleted += 1,
            Some(DeletionOutcome::AlreadyAbsent) => self.already_absent += 1,
            Some(DeletionOutcome::Failed { .. }) => self.failed += 1,
            None => self.not_started += 1,
        }
    }

    fn add(self, other: Self) -> Self {
        Self {
            deleted: self.deleted + other.deleted,
            already_absent: self.already_absent + other.already_absent,
            failed: self.failed + other.failed,
            not_started: self.not_started + other.not_started,
            blocked: self.blocked + other.blocked,
        }
    }
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
            .fold(AccountTally::default(), |sum, tally| sum.add(*tally))
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
    pub outcome: &'a DeletionOutcome,
}

/// Carries out every deletion of `plan`, journaling under `run_id`. Returns when all have
/// finished or `stop` was cancelled (a DELETE already sent finishes and is journaled; no new
/// one starts); a journal failure stops everything and is returned as the error.
pub async fn execute<W: GroupWriter>(
    plan: &Plan,
    writer: &W,
    journal: &Arc<Journal>,
    options: &ApplyOptions,
    run_id: &str,
    stop: &CancellationToken,
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
    let halt = stop.child_token();
    let deletion = Deletion {
        writer,
        journal,
        options,
        run_id,
        halt: &halt,
    };
    let results: Vec<(AccountId, Result<Option<DeletionOutcome>, JournalError>)> =
        futures_util::stream::iter(plan.deletions())
            .map(|(account, group)| {
                let deletion = &deletion;
                let halt = &halt;
                async move {
                    let result = deletion.run(account, group).await;
                    match &result {
                        Ok(Some(outcome)) => on_progress(Progress {
                            account,
                            group,
                            outcome,
                        }),
                        Ok(None) => {}
                        Err(_) => halt.cancel(),
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
            Ok(outcome) => tally.count(outcome.as_ref()),
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

/// What every deletion of one execution shares.
struct Deletion<'a, W> {
    writer: &'a W,
    journal: &'a Arc<Journal>,
    options: &'a ApplyOptions,
    run_id: &'a str,
    /// Cancelled by a stop or by a journal failure: nothing new starts.
    halt: &'a CancellationToken,
}

impl<W: GroupWriter> Deletion<'_, W> {
    /// Backs up, journals, deletes and journals one group. `None`: not started (stopped).
    async fn run(
        &self,
        account: &AccountId,
        group: &ObservedGroup,
    ) -> Result<Option<DeletionOutcome>, JournalError> {
        if !self.may_start() {
            return Ok(None);
        }
        let members = if self.options.backup_members {
            match self.writer.list_members(account, &group.id).await {
                Ok(members) => Some(members),
                Err(e) if e.kind == WriteErrorKind::NotFound => {
                    tracing::info!(%account, group = %group.id, "group already absent");
                    return Ok(Some(DeletionOutcome::AlreadyAbsent));
                }
                Err(e) => {
                    tracing::warn!(%account, group = %group.id, error = %e, "cannot back up members; not deleting");
                    return Ok(Some(DeletionOutcome::Failed {
                        error: format!("cannot back up members: {e}"),
                    }));
                }
            }
        } else {
            None
        };
        if !self.may_start() {
            return Ok(None);
        }
        self.append(Record::Intent {
            at: journal::now(),
            run: self.run_id.to_owned(),
            account: account.clone(),
            group: group.clone(),
            members,
        })
        .await?;
        let outcome = self.writer.delete_group(account, &group.id).await;
        match &outcome {
            DeletionOutcome::Deleted => {
                tracing::info!(%account, group = %group.id, name = %group.name, "deleted");
            }
            DeletionOutcome::AlreadyAbsent => {
                tracing::info!(%account, group = %group.id, "group already absent (404 on delete)");
            }
            DeletionOutcome::Failed { error } => {
                tracing::warn!(%account, group = %group.id, %error, "delete failed");
            }
        }
        self.append(Record::Outcome {
            at: journal::now(),
            run: self.run_id.to_owned(),
            account: account.clone(),
            group_id: group.id.clone(),
            outcome: outcome.clone(),
        })
        .await?;
        Ok(Some(outcome))
    }

    /// Whether this deletion may still start: no stop, no journal failure, and the writer
    /// (the daemon's: still the leader, checked against the clock) allows it. A writer that
    /// refuses also halts the deletions not yet started.
    fn may_start(&self) -> bool {
        if self.halt.is_cancelled() {
            return false;
        }
        if !self.writer.may_write() {
            self.halt.cancel();
            return false;
        }
        true
    }

    /// Appends off the async threads: the append waits for the disk.
    async fn append(&self, record: Record) -> Result<(), JournalError> {
        let journal = Arc::clone(self.journal);
        let path = journal.path().to_owned();
        tokio::task::spawn_blocking(move || journal.append(&record))
            .await
            .unwrap_or_else(|join| {
                Err(JournalError::Io {
                    path,
                    source: std::io::Error::other(join.to_string()),
                })
            })
    }
}
