//! Whether the journal's path still names the file this process has open, checked before
//! every append: a state directory removed under a running daemon would otherwise leave
//! every later backup in an unlinked file that vanishes when the process exits.
//!
//! - The path names the open file (same device and inode): append as usual.
//! - The path no longer exists (the file or its directory was removed): it is created again
//!   (directory `0700`, file `0600`) and everything the open file holds is copied into it
//!   first, so no backup is lost; a warning says so, and appends go to the new file.
//! - The path names another file: refused. Whose backups belong where cannot be told, so
//!   nothing is appended, and so nothing is deleted, until the process is restarted.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::JournalError;

/// A file's identity: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    pub fn of(file: &File, path: &Path) -> Result<Self, JournalError> {
        let meta = file.metadata().map_err(|source| JournalError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::from(&meta))
    }
}

impl From<&std::fs::Metadata> for Identity {
    fn from(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Checks that `path` still names `file` (whose identity is `identity`). Returns the file to
/// append to from now on when the path had to be created again, else `None`.
pub fn check(path: &Path, file: &File, identity: Identity) -> Result<Option<File>, JournalError> {
    let io = |source| JournalError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(meta) if Identity::from(&meta) == identity => Ok(None),
        Ok(_) => Err(replaced(path, file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => recreate(path, file).map(Some),
        Err(e) => Err(io(e)),
    }
}

fn replaced(path: &Path, file: &File) -> JournalError {
    use std::os::fd::AsRawFd;
    JournalError::Replaced {
        path: path.to_owned(),
        fd: file.as_raw_fd(),
    }
}

/// Creates `path` again and copies into it everything `old` (the open, unlinked journal)
/// holds, synced, before anything new is appended.
fn recreate(path: &Path, old: &File) -> Result<File, JournalError> {
    let io = |source| JournalError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    // `create_new`: if another process recreated it first, the path names another file.
    let mut new = match OpenOptions::new()
        .create_new(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(path)
    {
        Ok(new) => new,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(replaced(path, old));
        }
        Err(e) => return Err(io(e)),
    };
    let len = old.metadata().map_err(io)?.len();
    let mut buf = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    while copied < len {
        let read = old.read_at(&mut buf, copied).map_err(io)?;
        if read == 0 {
            break;
        }
        new.write_all(&buf[..read]).map_err(io)?;
        copied += read as u64;
    }
    new.sync_all().map_err(io)?;
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(dir) = File::open(dir)
    {
        // The new directory entry survives a crash too.
        let _ = dir.sync_all();
    }
    tracing::warn!(
        journal = %path.display(),
        bytes = copied,
        "the journal was removed while open; created it again with everything it held"
    );
    Ok(new)
}
