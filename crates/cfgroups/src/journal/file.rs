//! The journal file: opened private to its owner, appended one locked, synced line at a
//! time, and read back line by line.
//!
//! Writes take an exclusive lock on the file and append one whole line with a single
//! `write`, then `fsync`, so concurrent writers (tasks or processes) never interleave. A
//! line torn by a crash is terminated before the next append and skipped by readers.
//!
//! A record is one line. Groups carry their policies as the raw JSON text Cloudflare sent,
//! which the journal keeps byte for byte; only text that spans lines (a pretty-printed
//! answer) loses its line breaks and indentation, never a token.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::JournalError;
use super::contents::Contents;
use super::record::Record;

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
        let line = serde_json::to_vec(record).map_err(|source| JournalError::Encode {
            path: self.path.clone(),
            source,
        })?;
        let mut line = one_line(line);
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

/// The encoded record on one line. serde_json writes no line breaks of its own, but raw text
/// it carries (policies) may hold some between tokens (never inside a string, where JSON
/// escapes them): those are dropped with the whitespace around them, and nothing else is
/// touched.
fn one_line(encoded: Vec<u8>) -> Vec<u8> {
    if !encoded.iter().any(|b| matches!(b, b'\n' | b'\r')) {
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
    use super::super::JOURNAL_FILE;
    use super::super::fixtures::{group, intent, outcome};
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
            let mut record = intent("r1", n);
            if let Record::Intent { group, .. } = &mut record {
                group.policies = Some(RawValue::from_string(policies.to_owned()).unwrap());
            }
            journal.append(&record).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains(compact), "{text}");
        assert!(
            text.contains(r#"[{"access":"deny","s":"x  y\""}]"#),
            "{text}"
        );
        assert_eq!(read(&path).unwrap().records.len(), 2);
    }

    #[test]
    fn a_missing_journal_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let contents = read(&dir.path().join("none.jsonl")).unwrap();
        assert!(contents.records.is_empty());
    }
}
