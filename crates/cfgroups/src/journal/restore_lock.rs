//! The restore lock: an exclusive lock on a file beside the journal (`<journal>.lock`),
//! held by `cfgroups restore` from deciding what to do to creating the group and recording
//! it, so that two restores of the same group, in one process or several, create one group.
//!
//! A separate file, not the journal itself: the journal's own lock is taken and released by
//! every append, which would release a lock held on the same open file.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::JournalError;

/// Held while it lives; dropping it releases the lock.
#[derive(Debug)]
pub struct RestoreLock {
    _file: File,
}

/// The lock file of the journal at `journal`.
pub fn lock_path(journal: &Path) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl RestoreLock {
    /// Waits for the restore lock of the journal at `journal` (blocking: call it off the
    /// async threads).
    pub fn acquire(journal: &Path) -> Result<Self, JournalError> {
        let path = lock_path(journal);
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        Ok(Self { _file: file })
    }
}
