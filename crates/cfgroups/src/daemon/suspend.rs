//! `run --suspend-file PATH`: the operator's emergency brake without a Git commit. While
//! anything exists at PATH (a file, a directory, even a broken symlink: `touch` it, remove it
//! to resume), every account is suspended: still listed and its drift reported, nothing
//! deleted, exactly as `suspend: true` in the config does (see [`crate::plan`]).
//!
//! It is checked at the start of every cycle, and again right before each deletion starts,
//! so that a brake pulled while deletions are under way stops the ones not yet started (one
//! already started finishes and is journaled, as on SIGTERM). Removing it takes effect at the
//! next cycle (the interval tick, a config change, or SIGHUP to resume at once).

use std::path::{Path, PathBuf};

use crate::config::DesiredState;

/// The suspend file of `run --suspend-file`.
#[derive(Debug, Clone)]
pub struct SuspendFile {
    path: PathBuf,
}

impl SuspendFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether anything exists at the path now (a broken symlink counts: it is there).
    pub fn present(&self) -> bool {
        std::fs::symlink_metadata(&self.path).is_ok()
    }

    /// What a suspended account's reports say suspended it.
    pub fn reason(&self) -> String {
        format!("--suspend-file {} exists", self.path.display())
    }

    /// Suspends every account of `desired` when the file is present (an account already
    /// suspended by the config keeps its reason); whether it was.
    pub fn apply(&self, desired: &mut DesiredState) -> bool {
        if !self.present() {
            return false;
        }
        for account in &mut desired.accounts {
            account.suspended.get_or_insert_with(|| self.reason());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> DesiredState {
        crate::config::parse(
            "version: 1\naccounts:\n  - id: 023e105f4ecef8ad9ca31a8372d0c353\n    suspend: true\n  - id: 0000000000000000000000000000beef\n",
            Path::new("groups.yaml"),
        )
        .unwrap()
    }

    #[test]
    fn present_suspends_every_account_keeping_the_configs_own_reason() {
        let dir = tempfile::tempdir().unwrap();
        let file = SuspendFile::new(dir.path().join("suspend"));
        let mut state = desired();
        assert!(!file.apply(&mut state));
        assert_eq!(state.accounts[1].suspended, None);
        std::os::unix::fs::symlink("nowhere", dir.path().join("suspend")).unwrap();
        assert!(file.present(), "a broken symlink counts");
        assert!(file.apply(&mut state));
        assert_eq!(
            state.accounts[0].suspended.as_deref(),
            Some("suspend: true in groups.yaml")
        );
        assert_eq!(
            state.accounts[1].suspended.as_deref(),
            Some(format!("--suspend-file {} exists", file.path().display()).as_str())
        );
    }
}
