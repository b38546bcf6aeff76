//! The journal file: opened private to its owner, appended one locked, synced line at a
//! time, its [`Index`] kept up to date, and read back whole for people.
//!
//! Writes take an exclusive lock on the file and append one whole line with a single
//! `write`, then `fsync`, so concurrent writers (tasks or processes) never interleave. A
//! line torn by a crash is terminated before the next append; readers report it. Before
//! every append the path is checked to still name the open file ([`super::path_check`]).
//!
//! A record is one line. Groups carry their policies as the raw JSON text Cloudflare sent,
//! which the journal keeps byte for byte; only text that spans lines (a pretty-printed
//! answer) loses its line breaks and indentation before it is hashed and written, never a
//! token.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use super::JournalError;
use super::contents::Contents;
use super::index::Index;
use super::lines::{Lines, check_size, line_at};
use super::path_check::{self, Identity};
use super::record::{Record, backup_sha256, now};
use crate::model::{AccountId, ObservedGroup};

/// An open journal, appended to by any number of tasks.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    file: File,
    /// The open file's device and inode, to tell whether the path still names it.
    identity: Identity,
    index: Index,
}

impl Journal {
    /// Opens (creating if needed) the journal at `path`, terminating a line torn by a crash,
    /// and reads it once to build its index. A file over the size limit, or with a line over
    /// the line limit, is refused ([`super::lines`]).
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
        check_size(&file, path)?;
        file.lock().map_err(io)?;
        let result = terminate_torn_line(&mut file).map_err(io);
        let mut index = Index::default();
        let result = result.and_then(|()| index.refresh(&file, path));
        file.unlock().map_err(io)?;
        result?;
        if !index.unreadable().is_empty() {
            tracing::warn!(
                journal = %path.display(),
                lines = ?index.unreadable().iter().map(|u| u.line).collect::<Vec<_>>(),
                "journal lines that are not records (damaged, or torn by a crash); `cfgroups journal` lists them"
            );
        }
        Ok(Self {
            path: path.to_owned(),
            state: Mutex::new(State {
                identity: Identity::of(&file, path)?,
                file,
                index,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `record` as one line and syncs it to disk before returning.
    pub fn append(&self, record: &Record) -> Result<(), JournalError> {
        self.append_with(|_| record.clone()).map(drop)
    }

    /// Appends the intent to delete `group`, with its backup, synced to disk before
    /// returning. A backup byte-identical to the latest one journaled for the group is not
    /// written again: the intent refers to it by hash ([`Record::IntentRef`]). The decision
    /// is made under the file lock, on an index that has read every line appended so far.
    /// Returns the record written.
    pub fn append_intent(
        &self,
        run: &str,
        account: &AccountId,
        group: &ObservedGroup,
        members: Option<Vec<Value>>,
    ) -> Result<Record, JournalError> {
        let group = one_line_policies(group);
        let hash = backup_sha256(&group, members.as_ref());
        self.append_with(|index| {
            let unchanged = index
                .backup(account, &group.id)
                .is_some_and(|backup| backup.backup_sha256 == hash);
            if unchanged {
                Record::IntentRef {
                    at: now(),
                    run: run.to_owned(),
                    account: account.clone(),
                    group_id: group.id.clone(),
                    name: group.name.clone(),
                    backup_sha256: hash,
                }
            } else {
                Record::Intent {
                    at: now(),
                    run: run.to_owned(),
                    account: account.clone(),
                    group: group.into_owned(),
                    members,
                    backup_sha256: Some(hash),
                }
            }
        })
    }

    /// Appends the record `make` builds from the up-to-date index, under the file lock.
    fn append_with(&self, make: impl FnOnce(&Index) -> Record) -> Result<Record, JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let mut state = self.state();
        if let Some(file) = path_check::check(&self.path, &state.file, state.identity)? {
            state.identity = Identity::of(&file, &self.path)?;
            state.file = file;
        }
        let state = &mut *state;
        state.file.lock().map_err(io)?;
        let written = append_locked(&self.path, &state.file, &mut state.index, make);
        let unlocked = state.file.unlock();
        let record = written?;
        unlocked.map_err(io)?;
        Ok(record)
    }

    /// Runs `f` on the index, brought up to date with everything appended so far.
    pub fn with_index<T>(&self, f: impl FnOnce(&Index) -> T) -> Result<T, JournalError> {
        let mut state = self.state();
        let state = &mut *state;
        state.index.refresh(&state.file, &self.path)?;
        Ok(f(&state.index))
    }

    /// The record on line `number`, which starts at `offset` (as the index located it).
    pub fn record_at(&self, offset: u64, number: usize) -> Result<Option<Record>, JournalError> {
        let state = self.state();
        let line = line_at(&state.file, &self.path, offset, number)?;
        Ok(serde_json::from_slice(&line.bytes).ok())
    }

    /// The raw bytes of line `number`, which starts at `offset` (a line that is not a
    /// record, to tell which group it names).
    pub fn bytes_at(&self, offset: u64, number: usize) -> Result<Vec<u8>, JournalError> {
        let state = self.state();
        Ok(line_at(&state.file, &self.path, offset, number)?.bytes)
    }
}

/// With the file lock held: catches the index up, builds the record, appends and syncs it,
/// and reads it into the index.
fn append_locked(
    path: &Path,
    file: &File,
    index: &mut Index,
    make: impl FnOnce(&Index) -> Record,
) -> Result<Record, JournalError> {
    let io = |source| JournalError::Io {
        path: path.to_owned(),
        source,
    };
    // Another writer may have died mid-line since this one opened the file: end its torn
    // line first, so this record starts a line of its own.
    let torn = ends_mid_line(file).map_err(io)?;
    if torn {
        (&*file).write_all(b"\n").map_err(io)?;
    }
    index.refresh(file, path)?;
    let record = make(index);
    let line = serde_json::to_vec(&record).map_err(|source| JournalError::Encode {
        path: path.to_owned(),
        source,
    })?;
    let mut line = one_line(line);
    line.push(b'\n');
    (&*file).write_all(&line).map_err(io)?;
    file.sync_data().map_err(io)?;
    index.refresh(file, path)?;
    Ok(record)
}

/// `group` with policies that hold no line break: as it is (the usual case: Cloudflare sends
/// compact JSON), or with the whitespace between tokens of a pretty-printed text removed.
fn one_line_policies(group: &ObservedGroup) -> Cow<'_, ObservedGroup> {
    let Some(policies) = group.policies.as_deref() else {
        return Cow::Borrowed(group);
    };
    if !spans_lines(policies.get().as_bytes()) {
        return Cow::Borrowed(group);
    }
    let compact = String::from_utf8(one_line(policies.get().as_bytes().to_vec()))
        .ok()
        .and_then(|text| serde_json::value::RawValue::from_string(text).ok());
    match compact {
        Some(compact) => Cow::Owned(ObservedGroup {
            policies: Some(compact),
            ..group.clone()
        }),
        // Unreachable for valid JSON; the line-level pass in `append_locked` still applies.
        None => Cow::Borrowed(group),
    }
}

fn spans_lines(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| matches!(b, b'\n' | b'\r'))
}

/// JSON text on one line: the whitespace between tokens dropped when the text holds a line
/// break (which JSON allows only there, never inside a string), untouched otherwise.
fn one_line(encoded: Vec<u8>) -> Vec<u8> {
    if !spans_lines(&encoded) {
        return encoded;
    }
    let mut line = Vec::with_capacity(encoded.len());
    let (mut in_string, mut escaped) = (false, false);
    for byte in encoded {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        }
        line.push(byte);
    }
    line
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

/// Reads a whole journal, for people (`cfgroups journal`): every record, and the number of
/// every line that is not one, a torn last line included. A missing file is an empty
/// journal. Bounded like every read: see [`super::lines`].
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
    check_size(&file, path)?;
    let mut contents = Contents::default();
    let mut lines = Lines::new(&file, path, 0, 0);
    while let Some(line) = lines.next_line()? {
        if line.is_blank() {
            continue;
        }
        match serde_json::from_slice(&line.bytes) {
            Ok(record) => contents.records.push(record),
            Err(_) => contents.unreadable.push(line.number),
        }
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{group, intent, outcome};
    use super::super::{JOURNAL_FILE, JournalError};
    use super::*;
    use crate::model::DeletionOutcome;

    #[test]
    fn records_round_trip_and_unresolved_intents_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join(JOURNAL_FILE);
        let journal = Journal::open(&path).unwrap();
        journal.append(&intent("r1", 1)).unwrap();
        journal
            .append(&outcome("r1", 1, DeletionOutcome::Deleted))
            .unwrap();
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
    fn raw_policies_are_kept_byte_for_byte_and_on_one_line() {
        use serde_json::value::RawValue;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let journal = Journal::open(&path).unwrap();
        let compact = r#"[{"access":"allow","n":1e400,"s":"a b\n\u00e9","big":123456789012345678901234567890}]"#;
        let pretty = "[\n  {\"access\": \"deny\",\r\n   \"s\": \"x  y\\\"\"}\n]";
        for (n, policies) in [(1, compact), (2, pretty)] {
            let mut backup = group(n);
            backup.policies = Some(RawValue::from_string(policies.to_owned()).unwrap());
            journal
                .append_intent("r1", &backup_account(), &backup, None)
                .unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains(compact), "{text}");
        assert!(
            text.contains(r#"[{"access":"deny","s":"x  y\""}]"#),
            "{text}"
        );
        let contents = read(&path).unwrap();
        assert_eq!(contents.records.len(), 2);
        // The hash written is the hash of what was written.
        for record in &contents.records {
            let Record::Intent {
                group,
                members,
                backup_sha256: Some(hash),
                ..
            } = record
            else {
                panic!("not a full intent: {record:?}");
            };
            assert_eq!(*hash, backup_sha256(group, members.as_ref()));
        }
    }

    fn backup_account() -> AccountId {
        super::super::fixtures::account()
    }

    #[test]
    fn a_missing_journal_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let contents = read(&dir.path().join("none.jsonl")).unwrap();
        assert!(contents.records.is_empty());
    }

    #[test]
    fn a_removed_state_directory_is_recreated_with_every_backup_in_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let path = state.join(JOURNAL_FILE);
        let journal = Journal::open(&path).unwrap();
        journal.append(&intent("r1", 1)).unwrap();
        journal.append(&intent("r1", 2)).unwrap();
        // Someone removes the state directory under the running process.
        std::fs::remove_dir_all(&state).unwrap();
        journal.append(&intent("r2", 3)).unwrap();
        let contents = read(&path).unwrap();
        let groups: Vec<String> = contents
            .records
            .iter()
            .map(|r| r.group_id().to_string())
            .collect();
        assert_eq!(groups, [1, 2, 3].map(|n| group(n).id.to_string()));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&state), 0o700);
        // Later appends go to the new file too.
        journal.append(&intent("r2", 4)).unwrap();
        assert_eq!(read(&path).unwrap().records.len(), 4);
    }

    #[test]
    fn a_journal_path_that_names_another_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let journal = Journal::open(&path).unwrap();
        journal.append(&intent("r1", 1)).unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, "").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let error = journal.append(&intent("r1", 2)).unwrap_err();
        assert!(matches!(error, JournalError::Replaced { .. }), "{error}");
        assert!(error.to_string().contains("/proc/"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn a_journal_that_is_a_device_of_zeros_is_refused_quickly() {
        let dir = tempfile::tempdir().unwrap();
        for device in ["/dev/zero", "/dev/full"] {
            let path = dir.path().join(format!("{}.jsonl", &device[5..]));
            std::os::unix::fs::symlink(device, &path).unwrap();
            // Without the line limit these reads never end: the error is the proof.
            let error = Journal::open(&path).unwrap_err();
            assert!(
                matches!(error, JournalError::LineTooLong { line: 1, .. }),
                "{error}"
            );
            let error = read(&path).unwrap_err();
            assert!(
                matches!(error, JournalError::LineTooLong { line: 1, .. }),
                "{error}"
            );
        }
    }

    #[test]
    fn a_journal_over_the_size_limit_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        // Sparse: takes no space.
        File::create(&path)
            .unwrap()
            .set_len(super::super::MAX_FILE_BYTES + 1)
            .unwrap();
        let error = read(&path).unwrap_err();
        assert!(matches!(error, JournalError::TooLarge { .. }), "{error}");
        assert!(error.to_string().contains("mv "), "{error}");
        assert!(matches!(
            Journal::open(&path).unwrap_err(),
            JournalError::TooLarge { .. }
        ));
    }

    #[test]
    fn an_unchanged_backup_is_written_once_then_referred_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let journal = Journal::open(&path).unwrap();
        let members = || Some(vec![serde_json::json!({"id": "m1"})]);
        let account = super::super::fixtures::account();
        let first = journal
            .append_intent("r1", &account, &group(1), members())
            .unwrap();
        let Record::Intent {
            backup_sha256: Some(hash),
            ..
        } = &first
        else {
            panic!("{first:?}")
        };
        // Another process journals the same backup: it sees the first one too.
        let other = Journal::open(&path).unwrap();
        let second = other
            .append_intent("r2", &account, &group(1), members())
            .unwrap();
        assert!(
            matches!(&second, Record::IntentRef { backup_sha256, .. } if backup_sha256 == hash),
            "{second:?}"
        );
        // Other members: a full backup again.
        let third = journal
            .append_intent("r3", &account, &group(1), Some(Vec::new()))
            .unwrap();
        assert!(matches!(third, Record::Intent { .. }));
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < 3 * serde_json::to_vec(&first).unwrap().len() as u64);
    }
}
