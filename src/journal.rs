//! The journal: an append-only JSON Lines file of every deletion's intent (with a full
//! backup of the group and its members), its outcome, and every restore. Nothing deleted is
//! ever lost: the intent is on disk, synced, before the DELETE is sent.
//!
//! Writes take an exclusive lock on the file and append one whole line with a single
//! `write`, then `fsync`, so concurrent writers (tasks or processes) never interleave. A
//! line torn by a crash is terminated before the next append and skipped by readers.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{AccountId, GroupId, ObservedGroup};

/// The journal's file name inside the state directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";

#[derive(Debug, Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("journal {path}: cannot encode a record: {source}")]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// How a deletion ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Deleted,
    AlreadyAbsent,
    Failed { error: String },
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// About to delete `group`; everything needed to recreate it.
    Intent {
        at: String,
        run: String,
        account: AccountId,
        group: ObservedGroup,
        /// The group's members as Cloudflare listed them; `None` when the backup of
        /// members was turned off.
        members: Option<Vec<serde_json::Value>>,
    },
    /// What happened to the deletion announced by the intent of the same run and group.
    Outcome {
        at: String,
        run: String,
        account: AccountId,
        group_id: GroupId,
        #[serde(flatten)]
        outcome: Outcome,
    },
    /// A deleted group was recreated from its backup as `new_group_id`. Written as soon as
    /// the group exists, with `members_restored: false` while its members are still to be
    /// added, and again with `true` once they are.
    Restore {
        at: String,
        run: String,
        account: AccountId,
        group_id: GroupId,
        new_group_id: GroupId,
        /// Whether the backed-up members were added too. Records written before this field
        /// existed were written only after the members were added.
        #[serde(default = "members_restored_default")]
        members_restored: bool,
    },
}

fn members_restored_default() -> bool {
    true
}

impl Record {
    pub fn run(&self) -> &str {
        match self {
            Record::Intent { run, .. }
            | Record::Outcome { run, .. }
            | Record::Restore { run, .. } => run,
        }
    }
}

/// The current time as RFC 3339 UTC with seconds, for records.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// A new run id: the start time and the process id, unique enough to group a run's records.
pub fn new_run_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("{millis}-{}", std::process::id())
}

/// An open journal, appended to by any number of tasks.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
}

impl Journal {
    /// Opens (creating if needed) the journal at `path`, terminating a line torn by a crash.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io)?;
        }
        // Backups hold member emails: readable by the owner only.
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::permissions::warn_if_shared(dir, "the state directory (journal backups)");
        }
        crate::permissions::warn_if_shared(path, "the journal");
        file.lock().map_err(io)?;
        let result = terminate_torn_line(&mut file);
        file.unlock().map_err(io)?;
        result.map_err(io)?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record` as one line and syncs it to disk before returning.
    pub fn append(&self, record: &Record) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(record).map_err(|source| JournalError::Encode {
            path: self.path.clone(),
            source,
        })?;
        line.push(b'\n');
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        file.lock().map_err(io)?;
        // Another writer may have died mid-line since this one opened the file: end its
        // torn line first, so this record starts a line of its own.
        let written = ends_mid_line(&file)
            .and_then(|torn| {
                if torn {
                    line.insert(0, b'\n');
                }
                (&*file).write_all(&line)
            })
            .and_then(|()| file.sync_data());
        let unlocked = file.unlock();
        written.map_err(io)?;
        unlocked.map_err(io)
    }
}

/// Whether the file's last byte is not a newline (a line torn by a crash).
fn ends_mid_line(file: &File) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] != b'\n')
}

fn terminate_torn_line(file: &mut File) -> std::io::Result<()> {
    if ends_mid_line(file)? {
        file.write_all(b"\n")?;
        file.sync_data()?;
    }
    Ok(())
}

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
    pub fn latest_outcomes(&self) -> HashMap<(&str, &GroupId), &Outcome> {
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
                    Some(Outcome::Failed { .. })
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
    pub fn latest_outcome(&self, run: &str, group: &GroupId) -> Option<&Outcome> {
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
mod restore_record_tests {
    use super::*;

    #[test]
    fn a_restore_record_without_members_restored_was_complete() {
        let line = r#"{"type":"restore","at":"2025-01-01T00:00:00Z","run":"r","account":"023e105f4ecef8ad9ca31a8372d0c353","group_id":"3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a","new_group_id":"4f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a"}"#;
        let record: Record = serde_json::from_str(line).unwrap();
        assert!(matches!(
            record,
            Record::Restore {
                members_restored: true,
                ..
            }
        ));
    }
}

/// Reads a journal. A missing file is an empty journal.
pub fn read(path: &Path) -> Result<Contents, JournalError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Contents::default()),
        Err(source) => {
            return Err(JournalError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut contents = Contents::default();
    for (index, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(|source| JournalError::Io {
            path: path.to_owned(),
            source,
        })?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice(&line) {
            Ok(record) => contents.records.push(record),
            Err(_) => contents.unreadable.push(index + 1),
        }
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(n: u8) -> ObservedGroup {
        ObservedGroup {
            id: format!("{n:032x}").parse().unwrap(),
            name: format!("group {n}"),
            created_on: Some("2024-03-01T12:21:02Z".into()),
            modified_on: None,
            policies: Some(serde_json::json!([{"access": "allow"}])),
        }
    }

    fn account() -> AccountId {
        "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap()
    }

    fn intent(run: &str, n: u8) -> Record {
        Record::Intent {
            at: now(),
            run: run.into(),
            account: account(),
            group: group(n),
            members: Some(vec![
                serde_json::json!({"id": "m1", "email": "a@example.com"}),
            ]),
        }
    }

    fn outcome(run: &str, n: u8, outcome: Outcome) -> Record {
        Record::Outcome {
            at: now(),
            run: run.into(),
            account: account(),
            group_id: group(n).id,
            outcome,
        }
    }

    #[test]
    fn records_round_trip_and_unresolved_intents_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join(JOURNAL_FILE);
        let journal = Journal::open(&path).unwrap();
        journal.append(&intent("r1", 1)).unwrap();
        journal.append(&outcome("r1", 1, Outcome::Deleted)).unwrap();
        journal.append(&intent("r1", 2)).unwrap();
        let contents = read(&path).unwrap();
        assert_eq!(contents.records.len(), 3);
        assert!(matches!(
            &contents.records[0],
            Record::Intent { group: g, members: Some(m), .. } if *g == group(1) && m.len() == 1
        ));
        let unresolved = contents.unresolved();
        assert_eq!(unresolved.len(), 1);
        assert!(
            matches!(unresolved[0], Record::Intent { group, .. } if group.id == self::group(2).id)
        );
        assert!(contents.backup_of(&group(1).id).is_some());
    }

    #[test]
    fn failed_deletions_are_the_latest_intents_whose_latest_outcome_failed() {
        let failed = || Outcome::Failed {
            error: "HTTP 500".into(),
        };
        let contents = Contents {
            records: vec![
                // Group 1: failed, then settled as deleted by a later listing.
                intent("r1", 1),
                outcome("r1", 1, failed()),
                outcome("r1", 1, Outcome::Deleted),
                // Group 2: failed in r1, deleted in r2: r1's failure is history.
                intent("r1", 2),
                outcome("r1", 2, failed()),
                intent("r2", 2),
                outcome("r2", 2, Outcome::Deleted),
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
            matches!(found[0], Record::Intent { group: g, run, .. } if *g == group(3) && run == "r2")
        );
    }

    #[test]
    fn a_torn_last_line_is_terminated_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        Journal::open(&path)
            .unwrap()
            .append(&intent("r1", 1))
            .unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"type":"outcome","at":"2026"#).unwrap();
        drop(file);

        Journal::open(&path)
            .unwrap()
            .append(&intent("r2", 2))
            .unwrap();
        let contents = read(&path).unwrap();
        assert_eq!(contents.records.len(), 2);
        assert_eq!(contents.unreadable, vec![2]);
        assert_eq!(contents.records[1].run(), "r2");
    }

    #[test]
    fn a_line_torn_by_another_writer_after_open_is_terminated_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let journal = Journal::open(&path).unwrap();
        journal.append(&intent("r1", 1)).unwrap();
        // Another process dies mid-record while this journal is open.
        let mut other = OpenOptions::new().append(true).open(&path).unwrap();
        other.write_all(br#"{"type":"intent","at":"20"#).unwrap();
        drop(other);
        journal.append(&intent("r1", 2)).unwrap();
        let contents = read(&path).unwrap();
        assert_eq!(contents.records.len(), 2);
        assert_eq!(contents.unreadable, vec![2]);
    }

    #[test]
    fn concurrent_writers_never_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let journals: Vec<Journal> = (0..4).map(|_| Journal::open(&path).unwrap()).collect();
        std::thread::scope(|scope| {
            for (w, journal) in journals.iter().enumerate() {
                scope.spawn(move || {
                    for i in 0..50u8 {
                        journal.append(&intent(&format!("w{w}"), i)).unwrap();
                    }
                });
            }
        });
        let contents = read(&path).unwrap();
        assert_eq!(contents.records.len(), 200);
        assert!(contents.unreadable.is_empty());
    }

    #[test]
    fn the_journal_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new-state").join(JOURNAL_FILE);
        Journal::open(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }

    #[test]
    fn a_missing_journal_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let contents = read(&dir.path().join("none.jsonl")).unwrap();
        assert!(contents.records.is_empty());
    }
}
