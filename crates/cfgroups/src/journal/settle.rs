//! Settling what earlier runs left open, from a fresh listing: an intent a crash cut short,
//! and a failed delete whose group is gone all the same.

use super::file::{Journal, read};
use super::record::{Record, now};
use super::{Contents, JournalError};
use crate::model::{DeletionOutcome, Observed};

/// Reads the journal, appends the outcomes [`resolve_interrupted`] decides from `observed`,
/// and returns them. The reconcile pipeline calls it after every fresh listing.
pub fn settle(journal: &Journal, observed: &Observed) -> Result<Vec<Record>, JournalError> {
    let contents = read(journal.path())?;
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
pub fn resolve_interrupted(contents: &Contents, observed: &Observed) -> Vec<Record> {
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
            (false, _) => DeletionOutcome::Deleted,
            (true, true) => DeletionOutcome::Failed {
                error: "interrupted before the delete completed; the group still exists".to_owned(),
            },
            (true, false) => return None,
        };
        Some(Record::Outcome {
            at: now(),
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
