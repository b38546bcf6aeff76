//! The journal: an append-only JSON Lines file of every deletion's intent (with a full
//! backup of the group and its members, or a reference to an identical one journaled
//! earlier), its outcome, and every restore. Nothing deleted is ever lost: the intent is on
//! disk, synced, before the DELETE is sent.
//!
//! Files, one concept each: [`record`] (what a line says), [`lines`] (reading lines within
//! bounds), [`file`] (appending and reading the file safely), [`path_check`] (the path
//! still names the open file), [`index`] (what settling and restoring need, kept up to
//! date incrementally), [`contents`] (a whole journal read back for people), [`settle`]
//! (closing what earlier runs left open, from a fresh listing), [`restore_lock`] (one
//! restore at a time).

pub mod contents;
pub mod file;
#[cfg(test)]
mod fixtures;
pub mod index;
pub mod lines;
pub mod path_check;
pub mod record;
pub mod restore_lock;
pub mod settle;

use std::path::PathBuf;

use thiserror::Error;

pub use contents::Contents;
pub use file::{Journal, read};
pub use index::Index;
pub use lines::{MAX_FILE_BYTES, MAX_LINE_BYTES};
pub use record::{Record, backup_sha256, new_run_id, now};
pub use restore_lock::RestoreLock;
pub use settle::{resolve_interrupted, settle};

/// The journal's file name inside the state directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// Why the journal could not be written or read. A journal that cannot be written stops
/// every deletion: nothing is deleted without its backup on disk.
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
    #[error(
        "journal {path}: line {line} is longer than {limit} bytes, the most a journal line may \
         hold: the file is damaged or is not a journal (a device such as /dev/zero?)",
        limit = lines::MAX_LINE_BYTES
    )]
    LineTooLong { path: PathBuf, line: usize },
    #[error(
        "journal {path} is {size} bytes, over the {limit} bytes cfgroups reads. Move it aside \
         (`mv {path} {path}.old`): the next run starts a new journal. The old one keeps its \
         backups: split it at line boundaries (`split -C 512M {path}.old {path}.part-`) and \
         read a part with `cfgroups journal --journal FILE` or `cfgroups restore --journal FILE`",
        limit = lines::MAX_FILE_BYTES
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error(
        "journal {path} now names another file than the one this process opened: refusing to \
         write to either (and so to delete anything) until cfgroups is restarted. What this \
         process journaled can be copied from /proc/{pid}/fd/{fd} while it runs",
        pid = std::process::id()
    )]
    Replaced {
        path: PathBuf,
        /// The descriptor of the file this process has open.
        fd: i32,
    },
}
