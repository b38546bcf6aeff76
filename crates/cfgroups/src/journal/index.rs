//! What settling, journaling and restoring need to know of a journal, kept in memory and
//! brought up to date by reading only what was appended since the last read (by this
//! process or another): the intents without an outcome, the latest intent of each group
//! with its latest outcome, the latest full backup of each group, the latest restore record
//! of each group, and the lines that could not be read.
//!
//! Built once when the journal is opened; a reconcile cycle then reads a few new lines, not
//! the whole file, so its cost does not grow with the journal's length. The index holds no
//! backup: a restore reads its backup's one line from the file, at the offset kept here.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use super::JournalError;
use super::lines::{Lines, check_size};
use super::record::{Record, backup_sha256};
use crate::model::{AccountId, DeletionOutcome, GroupId};

/// Where an intent is, and what it announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentEntry {
    pub at: String,
    pub run: String,
    pub account: AccountId,
    pub group_id: GroupId,
    pub name: String,
    /// The hash of its backup, or of the earlier backup it refers to.
    pub backup_sha256: String,
    /// Whether the line refers to an earlier backup instead of holding one.
    pub is_ref: bool,
    pub line: usize,
}

/// The latest intent of a group and the latest outcome of its deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    pub intent: IntentEntry,
    /// `None` while the deletion has no outcome (interrupted).
    pub outcome: Option<DeletionOutcome>,
}

/// Where the latest full backup of a group is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupAt {
    pub backup_sha256: String,
    pub line: usize,
    pub offset: u64,
}

/// A line that is not a record: damaged, or torn by a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable {
    pub line: usize,
    pub offset: u64,
}

type Key = (AccountId, GroupId);

/// The journal's index; see the module documentation.
#[derive(Debug, Default)]
pub struct Index {
    /// Bytes read so far: always the end of a complete line.
    offset: u64,
    /// Lines read so far.
    lines: usize,
    /// Intents with no outcome yet, by (run, group).
    open: HashMap<(String, GroupId), IntentEntry>,
    latest: HashMap<Key, Latest>,
    backups: HashMap<Key, BackupAt>,
    restores: HashMap<Key, (usize, Record)>,
    unreadable: Vec<Unreadable>,
}

impl Index {
    /// Reads what was appended to `file` since the last call (everything, the first time),
    /// up to the last complete line: a line still being written, or torn by a crash, is read
    /// once it is complete (a writer ends a torn line before appending). A file shorter than
    /// what was read was truncated or replaced: it is read again from the start.
    pub fn refresh(&mut self, file: &File, path: &Path) -> Result<(), JournalError> {
        check_size(file, path)?;
        let size = file
            .metadata()
            .map_err(|source| JournalError::Io {
                path: path.to_owned(),
                source,
            })?
            .len();
        if size < self.offset {
            tracing::warn!(journal = %path.display(), "the journal is shorter than when it was last read; reading it again from the start");
            *self = Self::default();
        }
        let mut lines = Lines::new(file, path, self.offset, self.lines);
        while let Some(line) = lines.next_line()? {
            if !line.complete {
                break;
            }
            self.offset = line.offset + line.len_in_file();
            self.lines = line.number;
            if line.is_blank() {
                continue;
            }
            match serde_json::from_slice::<Record>(&line.bytes) {
                Ok(record) => self.add(record, line.number, line.offset),
                Err(_) => self.unreadable.push(Unreadable {
                    line: line.number,
                    offset: line.offset,
                }),
            }
        }
        Ok(())
    }

    fn add(&mut self, record: Record, line: usize, offset: u64) {
        let key = (record.account().clone(), record.group_id().clone());
        match record {
            Record::Intent {
                at,
                run,
                account,
                group,
                members,
                backup_sha256: hash,
            } => {
                let hash = hash.unwrap_or_else(|| backup_sha256(&group, members.as_ref()));
                self.backups.insert(
                    key,
                    BackupAt {
                        backup_sha256: hash.clone(),
                        line,
                        offset,
                    },
                );
                self.add_intent(IntentEntry {
                    at,
                    run,
                    account,
                    group_id: group.id,
                    name: group.name,
                    backup_sha256: hash,
                    is_ref: false,
                    line,
                });
            }
            Record::IntentRef {
                at,
                run,
                account,
                group_id,
                name,
                backup_sha256,
            } => self.add_intent(IntentEntry {
                at,
                run,
                account,
                group_id,
                name,
                backup_sha256,
                is_ref: true,
                line,
            }),
            Record::Outcome {
                run,
                group_id,
                outcome,
                ..
            } => {
                self.open.remove(&(run.clone(), group_id));
                if let Some(latest) = self.latest.get_mut(&key)
                    && latest.intent.run == run
                {
                    latest.outcome = Some(outcome);
                }
            }
            Record::RestoreStarted { .. } | Record::Restore { .. } => {
                self.restores.insert(key, (line, record));
            }
        }
    }

    fn add_intent(&mut self, entry: IntentEntry) {
        let key = (entry.account.clone(), entry.group_id.clone());
        self.open
            .insert((entry.run.clone(), entry.group_id.clone()), entry.clone());
        self.latest.insert(
            key,
            Latest {
                intent: entry,
                outcome: None,
            },
        );
    }

    /// Intents with no outcome: deletions interrupted by a crash, whose result only a fresh
    /// listing can tell. In journal order.
    pub fn unresolved(&self) -> Vec<&IntentEntry> {
        let mut open: Vec<&IntentEntry> = self.open.values().collect();
        open.sort_unstable_by_key(|entry| entry.line);
        open
    }

    /// The latest intent of each group whose latest outcome says the delete failed. The
    /// group may be gone all the same: a DELETE can take effect while its answer is lost (a
    /// dropped connection, a timeout) and the retry then fails some other way. Only a later
    /// listing can tell. In journal order.
    pub fn failed_deletions(&self) -> Vec<&IntentEntry> {
        let mut failed: Vec<&IntentEntry> = self
            .latest
            .values()
            .filter(|latest| matches!(latest.outcome, Some(DeletionOutcome::Failed { .. })))
            .map(|latest| &latest.intent)
            .collect();
        failed.sort_unstable_by_key(|entry| entry.line);
        failed
    }

    /// The latest intent of `group` (in whichever account), with its latest outcome.
    pub fn latest(&self, group: &GroupId) -> Option<&Latest> {
        self.latest
            .iter()
            .filter(|((_, g), _)| g == group)
            .map(|(_, latest)| latest)
            .max_by_key(|latest| latest.intent.line)
    }

    /// Where the latest full backup of `group` in `account` is.
    pub fn backup(&self, account: &AccountId, group: &GroupId) -> Option<&BackupAt> {
        self.backups.get(&(account.clone(), group.clone()))
    }

    /// The latest restore record (started or done) of `group` in `account`, with its line.
    pub fn latest_restore(&self, account: &AccountId, group: &GroupId) -> Option<(usize, &Record)> {
        self.restores
            .get(&(account.clone(), group.clone()))
            .map(|(line, record)| (*line, record))
    }

    /// The lines that are not records, in order.
    pub fn unreadable(&self) -> &[Unreadable] {
        &self.unreadable
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{group, intent, outcome};
    use super::super::{JOURNAL_FILE, Journal};
    use super::*;

    fn index_of(records: &[Record]) -> (tempfile::TempDir, Index) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let journal = Journal::open(&path).unwrap();
        for record in records {
            journal.append(record).unwrap();
        }
        let file = File::open(&path).unwrap();
        let mut index = Index::default();
        index.refresh(&file, &path).unwrap();
        (dir, index)
    }

    #[test]
    fn failed_deletions_are_the_latest_intents_whose_latest_outcome_failed() {
        let failed = || DeletionOutcome::failed("HTTP 500");
        let (_dir, index) = index_of(&[
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
        ]);
        let found = index.failed_deletions();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].group_id.clone(), found[0].run.as_str()),
            (group(3).id, "r2")
        );
        let open = index.unresolved();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].group_id, group(4).id);
    }

    #[test]
    fn only_what_was_appended_since_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let journal = Journal::open(&path).unwrap();
        journal.append(&intent("r1", 1)).unwrap();
        let file = File::open(&path).unwrap();
        let mut index = Index::default();
        index.refresh(&file, &path).unwrap();
        let read = index.offset;
        // Another writer appends an outcome; only it is read.
        Journal::open(&path)
            .unwrap()
            .append(&outcome("r1", 1, DeletionOutcome::Deleted))
            .unwrap();
        index.refresh(&file, &path).unwrap();
        assert!(index.offset > read);
        assert_eq!(index.lines, 2);
        assert!(index.unresolved().is_empty());
        assert_eq!(
            index.latest(&group(1).id).unwrap().outcome,
            Some(DeletionOutcome::Deleted)
        );
    }
}
