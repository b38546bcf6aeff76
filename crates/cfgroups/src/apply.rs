//! Carrying out a plan's deletions. For each one:
//! 1. read the group fresh (by id, or by exact name when a declaration matched it by name)
//!    and re-apply the plan's rules to what comes back ([`crate::plan::recheck`]): a plan
//!    can be minutes old, and a group renamed, protected or joined by a namesake since is
//!    not deleted;
//! 2. back up its members, and journal the intent with the fresh group (synced to disk; a
//!    backup identical to the group's latest one is journaled as a reference to it);
//! 3. send the DELETE; an answer that does not settle whether the group is gone (a 404, an
//!    error) is confirmed with a GET before it is believed;
//! 4. journal the outcome.
//!
//! Deletions run concurrently under one bound, through a [`GroupWriter`] (the HTTP client in
//! the product, whose every request passes the shared budget). Only the plan's `delete`
//! items are candidates: [`crate::plan::plan`] has applied every safety rule already.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::Serialize;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::config::{DesiredAccount, DesiredState};
use crate::journal::{self, Journal, JournalError, Record};
use crate::model::{AccountId, DeletionOutcome, ObservedGroup};
use crate::plan::{self, Action, MatchedBy, Plan, PlanItem};
use crate::shown::Quoted;
use crate::writer::{GroupWriter, WriteErrorKind};

/// Default number of deletions in flight at once, across all accounts: a deletion is three
/// requests one after another, each mostly waiting on the network, so 16 keep it busy while
/// the request budget sets the pace of a large run.
pub const DEFAULT_APPLY_CONCURRENCY: usize = 16;

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
    /// Of the failed, those Cloudflare refused for good ([`crate::refusal`]).
    pub refused: usize,
    pub not_started: usize,
    pub blocked: usize,
    /// Not deleted because the group changed between the plan and its DELETE.
    pub moved: usize,
    /// Not attempted, held off by the daemon: Cloudflare refused it for good before and the
    /// wait before asking again has not passed ([`crate::daemon::refused`]), or the suspend
    /// file appeared during the cycle ([`crate::daemon::suspend`]).
    pub held_off: usize,
}

impl AccountTally {
    fn count(&mut self, outcome: Option<&DeletionOutcome>) {
        match outcome {
            Some(DeletionOutcome::Deleted) => self.deleted += 1,
            Some(DeletionOutcome::AlreadyAbsent) => self.already_absent += 1,
            Some(DeletionOutcome::Failed { refused, .. }) => {
                self.failed += 1;
                self.refused += usize::from(refused.is_some());
            }
            Some(DeletionOutcome::Moved { .. }) => self.moved += 1,
            None => self.not_started += 1,
        }
    }

    fn add(self, other: Self) -> Self {
        Self {
            deleted: self.deleted + other.deleted,
            already_absent: self.already_absent + other.already_absent,
            failed: self.failed + other.failed,
            refused: self.refused + other.refused,
            not_started: self.not_started + other.not_started,
            blocked: self.blocked + other.blocked,
            moved: self.moved + other.moved,
            held_off: self.held_off + other.held_off,
        }
    }
}

/// What an apply did, per account.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplySummary {
    pub accounts: BTreeMap<AccountId, AccountTally>,
    /// Whether members were backed up before each deletion.
    pub members_backed_up: bool,
    /// How each planned deletion ended, in no particular order.
    pub groups: Vec<GroupResult>,
}

/// How one planned deletion ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupResult {
    pub account: AccountId,
    /// The group as the plan listed it.
    pub group: ObservedGroup,
    /// `None`: not started (a stop, a journal failure, a lost term), or held off.
    pub outcome: Option<DeletionOutcome>,
    /// Not attempted by design: the daemon held it off (see [`Held`]).
    pub held_off: bool,
}

impl ApplySummary {
    pub fn total(&self) -> AccountTally {
        self.accounts
            .values()
            .fold(AccountTally::default(), |sum, tally| sum.add(*tally))
    }

    /// Everything planned was done: nothing failed, was blocked, moved, held off, or was
    /// left unstarted.
    pub fn complete(&self) -> bool {
        let total = self.total();
        total.failed + total.blocked + total.not_started + total.moved + total.held_off == 0
    }
}

#[derive(Debug, Error)]
pub enum ApplyError {
    /// The journal could not be written: no further deletion is started, because it could
    /// not be backed up.
    #[error("stopped: {0}")]
    Journal(#[from] JournalError),
}

/// One attempted deletion of a cycle, as the executor reported it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub account: AccountId,
    /// The group as the plan listed it.
    pub group: ObservedGroup,
    pub outcome: DeletionOutcome,
}

/// The attempts of one execution, collected from its progress callback (for the daemon's
/// guards and for notifications).
#[derive(Debug, Default)]
pub struct Attempts(std::sync::Mutex<Vec<Attempt>>);

impl Attempts {
    pub fn push(&self, account: &AccountId, group: &ObservedGroup, outcome: &DeletionOutcome) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Attempt {
                account: account.clone(),
                group: group.clone(),
                outcome: outcome.clone(),
            });
    }

    pub fn into_inner(self) -> Vec<Attempt> {
        self.0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One deletion finished, for progress reporting.
#[derive(Debug)]
pub struct Progress<'a> {
    pub account: &'a AccountId,
    pub group: &'a ObservedGroup,
    pub outcome: &'a DeletionOutcome,
}

/// Decides, for each planned deletion (account, group as listed), whether it is held off this
/// time: not attempted, and counted as `held_off`. Asked right before each deletion would
/// start. Only the daemon holds any (refused for good, [`crate::daemon::refused`]; its
/// suspend file appearing mid-cycle, [`crate::daemon::suspend`]); [`NEVER_HELD`] holds none.
pub type Held<'a> = &'a (dyn Fn(&AccountId, &ObservedGroup) -> bool + Sync);

/// Holds no deletion.
pub const NEVER_HELD: Held<'static> = &|_, _| false;

/// Carries out every deletion of `plan`, made from `desired`, journaling under `run_id`,
/// except those `held` holds off. Returns when all have finished or `stop` was cancelled (a
/// DELETE already sent finishes and is journaled; no new one starts); a journal failure stops
/// everything and is returned as the error.
#[allow(clippy::too_many_arguments)]
pub async fn execute<W: GroupWriter>(
    plan: &Plan,
    desired: &DesiredState,
    writer: &W,
    journal: &Arc<Journal>,
    options: &ApplyOptions,
    run_id: &str,
    held: Held<'_>,
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
    let candidates = plan.accounts.iter().flat_map(|account| {
        let rules = desired.accounts.iter().find(|d| d.id == account.id);
        account
            .items
            .iter()
            .filter(|item| item.action == Action::Delete)
            .filter_map(move |item| Some((&account.id, rules?, item, item.observed.as_ref()?)))
    });
    // (account, the group, held off, how the deletion ended)
    type Finished<'g> = (
        AccountId,
        &'g ObservedGroup,
        bool,
        Result<Option<DeletionOutcome>, JournalError>,
    );
    let results: Vec<Finished<'_>> = futures_util::stream::iter(candidates)
        .map(|(account, rules, item, group)| {
            let deletion = &deletion;
            let halt = &halt;
            async move {
                // Asked right before the deletion would start, so that a hold decided
                // during the execution (the daemon's suspend file) stops what follows.
                if !halt.is_cancelled() && held(account, group) {
                    return (account.clone(), group, true, Ok(None));
                }
                let result = deletion.run(account, rules, item, group).await;
                match &result {
                    Ok(Some(outcome)) => on_progress(Progress {
                        account,
                        group,
                        outcome,
                    }),
                    Ok(None) => {}
                    Err(_) => halt.cancel(),
                }
                (account.clone(), group, false, result)
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;

    let mut journal_error = None;
    for (account, group, held_off, result) in results {
        let tally = summary.accounts.entry(account.clone()).or_default();
        let outcome = match result {
            Ok(_) if held_off => {
                tally.held_off += 1;
                None
            }
            Ok(outcome) => {
                tally.count(outcome.as_ref());
                outcome
            }
            Err(e) => {
                // Only the error is returned: no summary stands beside a journal that failed.
                journal_error.get_or_insert(e);
                continue;
            }
        };
        summary.groups.push(GroupResult {
            account,
            group: group.clone(),
            outcome,
            held_off,
        });
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
    /// Reads, checks, backs up, journals, deletes and journals one group. `None`: not
    /// started (stopped).
    async fn run(
        &self,
        account: &AccountId,
        rules: &DesiredAccount,
        item: &PlanItem,
        planned: &ObservedGroup,
    ) -> Result<Option<DeletionOutcome>, JournalError> {
        if !self.may_start() {
            return Ok(None);
        }
        let fresh = match self.read_fresh(account, rules, item, planned).await {
            Ok(fresh) => fresh,
            Err(outcome) => return Ok(Some(outcome)),
        };
        let members = if self.options.backup_members {
            match self.writer.list_members(account, &fresh.id).await {
                Ok(members) => Some(members),
                // A 404 is believed only once a GET agrees, as for a DELETE's.
                Err(e)
                    if e.kind == WriteErrorKind::NotFound
                        && matches!(self.writer.get_group(account, &fresh.id).await, Ok(None)) =>
                {
                    tracing::info!(%account, group = %fresh.id, "group already absent");
                    return Ok(Some(DeletionOutcome::AlreadyAbsent));
                }
                Err(e) => {
                    tracing::warn!(%account, group = %fresh.id, error = %e, "cannot back up members; not deleting");
                    return Ok(Some(DeletionOutcome::failed(format!(
                        "cannot back up members: {e}"
                    ))));
                }
            }
        } else {
            None
        };
        if !self.may_start() {
            return Ok(None);
        }
        let (run, intent_account, group) = (self.run_id.to_owned(), account.clone(), fresh.clone());
        self.journaled(move |journal| {
            journal
                .append_intent(&run, &intent_account, &group, members)
                .map(drop)
        })
        .await?;
        let answer = self.writer.delete_group(account, &fresh.id).await;
        let outcome = self.confirm(account, &fresh, answer).await;
        match &outcome {
            DeletionOutcome::Deleted => {
                tracing::info!(%account, group = %fresh.id, name = %Quoted(&fresh.name), "deleted");
            }
            DeletionOutcome::AlreadyAbsent => {
                tracing::info!(%account, group = %fresh.id, "group already absent (404 on delete, confirmed)");
            }
            DeletionOutcome::Failed {
                refused: Some(refusal),
                ..
            } => {
                tracing::warn!(
                    %account, group = %fresh.id, name = %Quoted(&fresh.name),
                    status = refusal.status, code = ?refusal.code, hint = %refusal.hint,
                    "delete refused for good: {}", refusal.answer()
                );
            }
            DeletionOutcome::Failed { error, .. } | DeletionOutcome::Moved { reason: error } => {
                tracing::warn!(%account, group = %fresh.id, %error, "delete failed");
            }
        }
        let record = Record::Outcome {
            at: journal::now(),
            run: self.run_id.to_owned(),
            account: account.clone(),
            group_id: fresh.id.clone(),
            outcome: outcome.clone(),
        };
        self.journaled(move |journal| journal.append(&record))
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

    /// The group as it is right before its DELETE, if the plan's rules still hold for it;
    /// else the outcome that ends this deletion (gone already, moved, or unreadable).
    async fn read_fresh(
        &self,
        account: &AccountId,
        rules: &DesiredAccount,
        item: &PlanItem,
        planned: &ObservedGroup,
    ) -> Result<ObservedGroup, DeletionOutcome> {
        let unreadable = |e: crate::writer::WriteError| {
            DeletionOutcome::failed(format!("cannot read the group before deleting it: {e}"))
        };
        let (fresh, named) = if item.matched_by == Some(MatchedBy::Name) {
            let named = self
                .writer
                .groups_named(account, &planned.name)
                .await
                .map_err(unreadable)?;
            let count = named.len();
            match named.into_iter().find(|g| g.id == planned.id) {
                Some(fresh) => (fresh, count),
                None => match self.writer.get_group(account, &planned.id).await {
                    Ok(Some(renamed)) => (renamed, count),
                    Ok(None) => return Err(DeletionOutcome::AlreadyAbsent),
                    Err(e) => return Err(unreadable(e)),
                },
            }
        } else {
            match self.writer.get_group(account, &planned.id).await {
                Ok(Some(fresh)) => (fresh, 1),
                Ok(None) => return Err(DeletionOutcome::AlreadyAbsent),
                Err(e) => return Err(unreadable(e)),
            }
        };
        match plan::recheck(rules, item, &fresh, named) {
            Ok(()) => Ok(fresh),
            Err(moved) => {
                tracing::warn!(%account, group = %planned.id, reason = %moved, "not deleting: the group changed since it was planned");
                Err(DeletionOutcome::Moved {
                    reason: moved.to_string(),
                })
            }
        }
    }

    /// Believes a clean "deleted"; confirms anything else with a GET: a 404 may come from a
    /// misrouted or lying answer while the group is still there, and a failed DELETE may
    /// have taken effect all the same (its answer lost, the retry refused).
    async fn confirm(
        &self,
        account: &AccountId,
        group: &ObservedGroup,
        answer: DeletionOutcome,
    ) -> DeletionOutcome {
        if answer == DeletionOutcome::Deleted {
            return answer;
        }
        match (self.writer.get_group(account, &group.id).await, answer) {
            (Ok(None), DeletionOutcome::AlreadyAbsent) => DeletionOutcome::AlreadyAbsent,
            (Ok(None), _) => DeletionOutcome::Deleted,
            (Ok(Some(_)), DeletionOutcome::AlreadyAbsent) => DeletionOutcome::failed(
                "the DELETE answered 404, but the group still exists".to_owned(),
            ),
            (Ok(Some(_)), answer) => answer,
            (Err(e), DeletionOutcome::AlreadyAbsent) => DeletionOutcome::failed(format!(
                "the DELETE answered 404, and the group could not be read to confirm it: {e}"
            )),
            (Err(_), answer) => answer,
        }
    }

    /// Appends off the async threads: the append waits for the disk.
    async fn journaled(
        &self,
        append: impl FnOnce(&Journal) -> Result<(), JournalError> + Send + 'static,
    ) -> Result<(), JournalError> {
        let journal = Arc::clone(self.journal);
        let path = journal.path().to_owned();
        tokio::task::spawn_blocking(move || append(&journal))
            .await
            .unwrap_or_else(|join| {
                Err(JournalError::Io {
                    path,
                    source: std::io::Error::other(join.to_string()),
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(tallies: &[AccountTally]) -> ApplySummary {
        let accounts = tallies
            .iter()
            .enumerate()
            .map(|(n, tally)| (format!("{n:032x}").parse().unwrap(), *tally))
            .collect();
        ApplySummary {
            accounts,
            ..ApplySummary::default()
        }
    }

    #[test]
    fn the_total_adds_every_count_of_every_account() {
        let one = AccountTally {
            deleted: 1,
            already_absent: 2,
            failed: 3,
            refused: 4,
            not_started: 5,
            blocked: 6,
            moved: 7,
            held_off: 8,
        };
        let total = summary(&[one, one, AccountTally::default()]).total();
        assert_eq!(
            total,
            AccountTally {
                deleted: 2,
                already_absent: 4,
                failed: 6,
                refused: 8,
                not_started: 10,
                blocked: 12,
                moved: 14,
                held_off: 16,
            }
        );
    }

    #[test]
    fn complete_only_when_every_planned_deletion_is_gone() {
        let gone = AccountTally {
            deleted: 3,
            already_absent: 1,
            ..AccountTally::default()
        };
        assert!(summary(&[gone, gone]).complete());
        let unfinished: [fn(&mut AccountTally); 5] = [
            |t| t.failed = 1,
            |t| t.blocked = 1,
            |t| t.not_started = 1,
            |t| t.moved = 1,
            |t| t.held_off = 1,
        ];
        for set in unfinished {
            let mut tally = gone;
            set(&mut tally);
            let applied = summary(&[gone, tally]);
            assert!(!applied.complete(), "{applied:?}");
        }
    }
}
