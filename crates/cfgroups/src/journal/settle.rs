//! Settling what earlier runs left open, from a fresh listing: an intent a crash cut short,
//! and a failed delete whose group is gone all the same.

use super::JournalError;
use super::file::Journal;
use super::index::{Index, IntentEntry};
use super::record::{Record, now};
use crate::model::{DeletionOutcome, Observed};

/// Appends the outcomes [`resolve_interrupted`] decides from `observed`, and returns them.
/// The reconcile pipeline calls it after every fresh listing. It reads only what was
/// appended to the journal since the last read (see [`Index`]).
pub fn settle(journal: &Journal, observed: &Observed) -> Result<Vec<Record>, JournalError> {
    let (settled, unreadable) = journal.with_index(|index| {
        let unreadable: Vec<usize> = index.unreadable().iter().map(|u| u.line).collect();
        (resolve_interrupted(index, observed), unreadable)
    })?;
    if !unreadable.is_empty() {
        tracing::warn!(
            journal = %journal.path().display(),
            lines = ?unreadable,
            "journal lines that are not records (damaged, or torn by a crash) were skipped; `cfgroups journal` lists them"
        );
    }
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
pub fn resolve_interrupted(index: &Index, observed: &Observed) -> Vec<Record> {
    // The outcome a fresh listing gives an open intent; `None` leaves it open (its account
    // was not listed, or a failed delete whose group is still there stays failed).
    let settle = |intent: &IntentEntry, interrupted: bool| {
        let Some(Ok(groups)) = observed.get(&intent.account) else {
            return None;
        };
        let outcome = match (groups.iter().any(|g| g.id == intent.group_id), interrupted) {
            (false, _) => DeletionOutcome::Deleted,
            (true, true) => DeletionOutcome::failed(
                "interrupted before the delete completed; the group still exists".to_owned(),
            ),
            (true, false) => return None,
        };
        Some(Record::Outcome {
            at: now(),
            run: intent.run.clone(),
            account: intent.account.clone(),
            group_id: intent.group_id.clone(),
            outcome,
        })
    };
    let interrupted = index
        .unresolved()
        .into_iter()
        .filter_map(|intent| settle(intent, true));
    let failed_but_gone = index
        .failed_deletions()
        .into_iter()
        .filter_map(|intent| settle(intent, false));
    interrupted.chain(failed_but_gone).collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    use super::super::fixtures::{account, intent};
    use super::super::{JOURNAL_FILE, read};
    use super::*;

    #[test]
    fn a_settle_reads_only_what_was_appended_since_the_last_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let journal = Journal::open(&path).unwrap();
        journal.append(&intent("r1", 1)).unwrap();
        let observed: Observed = [(account(), Ok(Vec::new()))].into_iter().collect();
        // The lines already read are blanked in place, behind the journal's back; a new
        // intent is appended after them by another writer.
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&vec![b' '; len - 1], 0).unwrap();
        drop(file);
        let mut other = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        other
            .write_all(
                &[
                    serde_json::to_vec(&intent("r2", 2)).unwrap(),
                    b"\n".to_vec(),
                ]
                .concat(),
            )
            .unwrap();
        // Settling still knows the first intent (not read again) and reads the second.
        let settled = settle(&journal, &observed).unwrap();
        let runs: Vec<&str> = settled.iter().map(Record::run).collect();
        assert_eq!(runs, ["r1", "r2"]);
        assert_eq!(read(&path).unwrap().records.len(), 3);
    }
}
