//! Questions asked of a journal read back: which deletions are unsettled, which failed,
//! which backup restores a group, and whether it was restored already.

use std::collections::HashMap;

use super::record::Record;
use crate::model::{AccountId, DeletionOutcome, GroupId};

/// Everything a journal holds, and the lines that could not be read.
#[derive(Debug, Default)]
pub struct Contents {
    pub records: Vec<Record>,
    /// 1-based numbers of lines that are not records (a line torn by a crash).
    pub unreadable: Vec<usize>,
}

impl Contents {
    /// Intents with no outcome: deletions interrupted by a crash, whose result only a fresh
    /// listing can tell.
    pub fn unresolved(&self) -> Vec<&Record> {
        let outcomes = self.latest_outcomes();
        self.records
            .iter()
            .filter(|record| match record {
                Record::Intent { run, group, .. } => {
                    !outcomes.contains_key(&(run.as_str(), &group.id))
                }
                _ => false,
            })
            .collect()
    }

    /// The latest outcome recorded for each (run, group): one pass, so reading a long
    /// journal stays linear.
    pub fn latest_outcomes(&self) -> HashMap<(&str, &GroupId), &DeletionOutcome> {
        let mut latest = HashMap::new();
        for record in &self.records {
            if let Record::Outcome {
                run,
                group_id,
                outcome,
                ..
            } = record
            {
                latest.insert((run.as_str(), group_id), outcome);
            }
        }
        latest
    }

    /// The latest intent of each group whose latest outcome says the delete failed. The
    /// group may be gone all the same: a DELETE can take effect while its answer is lost
    /// (a dropped connection, a timeout) and the retry then fails some other way. Only a
    /// later listing can tell.
    pub fn failed_deletions(&self) -> Vec<&Record> {
        let latest_outcome = self.latest_outcomes();
        let mut latest_intent: HashMap<(&AccountId, &GroupId), usize> = HashMap::new();
        for (index, record) in self.records.iter().enumerate() {
            if let Record::Intent { account, group, .. } = record {
                latest_intent.insert((account, &group.id), index);
            }
        }
        let mut failed: Vec<usize> = latest_intent
            .into_values()
            .filter(|index| match &self.records[*index] {
                Record::Intent { run, group, .. } => matches!(
                    latest_outcome.get(&(run.as_str(), &group.id)),
                    Some(DeletionOutcome::Failed { .. })
                ),
                _ => false,
            })
            .collect();
        failed.sort_unstable();
        failed
            .into_iter()
            .map(|index| &self.records[index])
            .collect()
    }

    /// The latest intent that backed up `group`, for a restore.
    pub fn backup_of(&self, group: &GroupId) -> Option<&Record> {
        self.records
            .iter()
            .rev()
            .find(|record| matches!(record, Record::Intent { group: g, .. } if g.id == *group))
    }

    /// The latest outcome recorded for the deletion announced by the intent of `run` and
    /// `group`; `None` when there is none (the deletion was interrupted).
    pub fn latest_outcome(&self, run: &str, group: &GroupId) -> Option<&DeletionOutcome> {
        self.records.iter().rev().find_map(|record| match record {
            Record::Outcome {
                run: r,
                group_id,
                outcome,
                ..
            } if r == run && group_id == group => Some(outcome),
            _ => None,
        })
    }

    /// The latest restore record of `group` in `account`.
    pub fn latest_restore(&self, account: &AccountId, group: &GroupId) -> Option<&Record> {
        self.records.iter().rev().find(|record| {
            matches!(record, Record::Restore { account: a, group_id, .. }
                if a == account && group_id == group)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{intent, outcome};
    use super::*;

    #[test]
    fn failed_deletions_are_the_latest_intents_whose_latest_outcome_failed() {
        let failed = || DeletionOutcome::Failed {
            error: "HTTP 500".into(),
        };
        let contents = Contents {
            records: vec![
                // Group 1: failed, then settled as deleted by a later listing.
                intent("r1", 1),
                outcome("r1", 1, failed()),
                outcome("r1", 1, DeletionOutcome::Deleted),
                // Group 2: failed in r1, deleted in r2: r1's failure is history.
                intent("r1", 2),
                outcome("r1", 2, failed()),
                intent("r2", 2),
                outcome("r2", 2, DeletionOutcome::Deleted),
                // Group 3: failed and never settled.
                intent("r2", 3),
                outcome("r2", 3, failed()),
                // Group 4: no outcome at all (that is `unresolved`).
                intent("r2", 4),
            ],
            unreadable: Vec::new(),
        };
        let found = contents.failed_deletions();
        assert_eq!(found.len(), 1);
        assert!(
            matches!(found[0], Record::Intent { group: g, run, .. } if *g == super::super::fixtures::group(3) && run == "r2")
        );
    }
}
