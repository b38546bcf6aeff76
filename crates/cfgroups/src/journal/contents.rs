//! A whole journal read back, for people (`cfgroups journal`) and tests: its records, the
//! lines that could not be read, and the questions asked of them.

use std::collections::HashMap;

use super::record::Record;
use crate::model::{AccountId, DeletionOutcome, GroupId};

/// Everything a journal holds, and the lines that could not be read.
#[derive(Debug, Default)]
pub struct Contents {
    pub records: Vec<Record>,
    /// 1-based numbers of lines that are not records (damaged, or torn by a crash).
    pub unreadable: Vec<usize>,
}

impl Contents {
    /// Intents with no outcome: deletions interrupted by a crash, whose result only a fresh
    /// listing can tell.
    pub fn unresolved(&self) -> Vec<&Record> {
        let outcomes = self.latest_outcomes();
        self.records
            .iter()
            .filter(|record| {
                record.is_intent() && !outcomes.contains_key(&(record.run(), record.group_id()))
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

    /// The latest intent of each group whose latest outcome says the delete failed (the
    /// group may be gone all the same; only a later listing can tell).
    pub fn failed_deletions(&self) -> Vec<&Record> {
        let latest_outcome = self.latest_outcomes();
        let mut latest_intent: HashMap<(&AccountId, &GroupId), usize> = HashMap::new();
        for (index, record) in self.records.iter().enumerate() {
            if record.is_intent() {
                latest_intent.insert((record.account(), record.group_id()), index);
            }
        }
        let mut failed: Vec<usize> = latest_intent
            .into_values()
            .filter(|index| {
                let record = &self.records[*index];
                matches!(
                    latest_outcome.get(&(record.run(), record.group_id())),
                    Some(DeletionOutcome::Failed { .. })
                )
            })
            .collect();
        failed.sort_unstable();
        failed
            .into_iter()
            .map(|index| &self.records[index])
            .collect()
    }

    /// The backup the latest intent of `group` holds or refers to: a full
    /// [`Record::Intent`]. `None` when there is none, or when the intent refers to a backup
    /// that is not among the readable records.
    pub fn backup_of(&self, group: &GroupId) -> Option<&Record> {
        let latest = self
            .records
            .iter()
            .rposition(|record| record.is_intent() && record.group_id() == group)?;
        match &self.records[latest] {
            Record::IntentRef {
                account,
                backup_sha256: wanted,
                ..
            } => self.records[..latest].iter().rev().find(|record| {
                matches!(record, Record::Intent { account: a, group: g, backup_sha256: Some(hash), .. }
                    if a == account && g.id == *group && hash == wanted)
            }),
            full => Some(full),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{account, group, intent, outcome};
    use super::*;

    #[test]
    fn failed_deletions_are_the_latest_intents_whose_latest_outcome_failed() {
        let failed = || DeletionOutcome::failed("HTTP 500");
        let contents = Contents {
            records: vec![
                intent("r1", 1),
                outcome("r1", 1, failed()),
                outcome("r1", 1, DeletionOutcome::Deleted),
                intent("r1", 2),
                outcome("r1", 2, failed()),
                intent("r2", 2),
                outcome("r2", 2, DeletionOutcome::Deleted),
                intent("r2", 3),
                outcome("r2", 3, failed()),
                intent("r2", 4),
            ],
            unreadable: Vec::new(),
        };
        let found = contents.failed_deletions();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].group_id(), found[0].run()), (&group(3).id, "r2"));
        assert_eq!(contents.unresolved().len(), 1);
    }

    #[test]
    fn a_reference_resolves_to_the_backup_it_names() {
        let full = intent("r1", 1);
        let Record::Intent {
            backup_sha256: Some(hash),
            ..
        } = &full
        else {
            panic!("the fixture is a full intent")
        };
        let reference = Record::IntentRef {
            at: "2026-01-01T00:00:00Z".into(),
            run: "r2".into(),
            account: account(),
            group_id: group(1).id,
            name: group(1).name,
            backup_sha256: hash.clone(),
        };
        let contents = Contents {
            records: vec![full.clone(), intent("r1", 2), reference],
            unreadable: Vec::new(),
        };
        assert_eq!(contents.backup_of(&group(1).id), Some(&full));
        assert_eq!(contents.unresolved().len(), 3);
    }
}
