//! The journal: an append-only JSON Lines file of every deletion's intent (with a full
//! backup of the group and its members), its outcome, and every restore. Nothing deleted is
//! ever lost: the intent is on disk, synced, before the DELETE is sent.
//!
//! Files, one concept each: [`record`] (what a line says), [`file`] (appending and reading
//! the file safely), [`contents`] (questions asked of a journal read back), [`settle`]
//! (closing what earlier runs left open, from a fresh listing).

pub mod contents;
pub mod file;
#[cfg(test)]
mod fixtures;
pub mod record;
pub mod settle;

use std::path::PathBuf;

use thiserror::Error;

pub use contents::Contents;
pub use file::{Journal, read};
pub use record::{Record, new_run_id, now};
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
}
