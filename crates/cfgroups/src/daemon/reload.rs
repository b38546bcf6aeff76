//! Reading the config for the reconcile loop: when new content may be taken, and whether
//! deletions may go on.
//!
//! New content is taken only when it is complete (see [`Writes`]): never while a config
//! file is being written, and not when any event touched the config between the read and
//! `debounce` after it (a write that raced the read; the watch reports it once complete).
//! This holds for every read, whatever prompted it: a watch notification, the interval tick,
//! SIGHUP.
//!
//! Deletions need a valid config *on disk*: once the config is deleted or fails to load, the
//! loop keeps listing and reporting drift against the last good config, but deletes nothing
//! until a valid config is back. A file that is gone, or broken, is no instruction to keep
//! deleting by what it used to say.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::gate::{Reload, ReloadGate};
use super::writes::Writes;
use crate::config::{self, ConfigErrors, DesiredState};

/// What a read of the config found.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// A config file is being written: nothing was read, the last good config stays.
    WriteInProgress(Vec<PathBuf>),
    /// New content was read, but the config changed while it was read: not taken. The watch
    /// reports the write once it is complete.
    ChangedWhileRead,
    /// Valid new content: use it.
    Changed(Box<DesiredState>),
    /// Valid, and the content already held.
    Unchanged,
    /// No valid config on disk; deletions are suspended until there is one again.
    Invalid {
        /// The config path itself is gone (deleted), rather than unreadable or invalid.
        missing: bool,
        errors: ConfigErrors,
    },
}

/// The loop's reader of the config: the last accepted content, the writes in progress, and
/// whether deletions are suspended.
#[derive(Debug)]
pub struct Reloader {
    config: PathBuf,
    debounce: Duration,
    writes: Writes,
    gate: ReloadGate,
    suspended: bool,
}

impl Reloader {
    /// A reader of `config` that holds `desired` (already loaded and valid). `debounce` is
    /// how long events of a write that raced a read are given to arrive.
    pub fn new(config: &Path, debounce: Duration, writes: Writes, desired: &DesiredState) -> Self {
        let mut gate = ReloadGate::new();
        gate.observe(desired);
        Self {
            config: config.to_owned(),
            debounce,
            writes,
            gate,
            suspended: false,
        }
    }

    /// Whether deletions are suspended: the last read found no valid config on disk.
    pub fn deletions_suspended(&self) -> bool {
        self.suspended
    }

    /// Reads the config, unless a write is in progress.
    pub async fn reload(&mut self) -> ReloadOutcome {
        let open = self.writes.in_progress();
        if !open.is_empty() {
            return ReloadOutcome::WriteInProgress(open);
        }
        let generation = self.writes.generation();
        match config::load(&self.config) {
            Ok(desired) => {
                if self.gate.last_hash() != Some(desired.content_hash.as_str()) {
                    // Events of a write that raced this read may still be on their way.
                    tokio::time::sleep(self.debounce).await;
                    if self.writes.generation() != generation
                        || !self.writes.in_progress().is_empty()
                    {
                        return ReloadOutcome::ChangedWhileRead;
                    }
                }
                self.suspended = false;
                match self.gate.observe(&desired) {
                    Reload::Changed => ReloadOutcome::Changed(Box::new(desired)),
                    Reload::Unchanged => ReloadOutcome::Unchanged,
                }
            }
            Err(errors) => {
                self.suspended = true;
                let missing = std::fs::symlink_metadata(&self.config)
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
                ReloadOutcome::Invalid { missing, errors }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use notify::event::{DataChange, ModifyKind};
    use notify::{Event, EventKind};
    use tempfile::TempDir;

    use super::*;
    use crate::daemon::writes::ConfigScope;

    const DEBOUNCE: Duration = Duration::from_millis(20);

    fn yaml(label: &str) -> String {
        format!(
            "version: 1\naccounts:\n  - id: 023e105f4ecef8ad9ca31a8372d0c353\n    label: {label}\n"
        )
    }

    fn setup() -> (TempDir, PathBuf, Writes, Reloader) {
        let tmp = TempDir::new().unwrap();
        let file = tmp.path().join("groups.yaml");
        fs::write(&file, yaml("one")).unwrap();
        let writes = Writes::new(ConfigScope::of(&file, tmp.path()));
        let desired = config::load(&file).unwrap();
        let reloader = Reloader::new(&file, DEBOUNCE, writes.clone(), &desired);
        (tmp, file, writes, reloader)
    }

    fn modify(file: &Path) -> Event {
        Event::new(EventKind::Modify(ModifyKind::Data(DataChange::Any))).add_path(file.to_owned())
    }

    fn label(outcome: ReloadOutcome) -> Option<String> {
        match outcome {
            ReloadOutcome::Changed(desired) => desired.accounts[0].label.clone(),
            other => panic!("expected new content, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn nothing_is_read_while_a_config_file_is_written() {
        let (_tmp, file, writes, mut reloader) = setup();
        fs::write(&file, yaml("half")).unwrap();
        writes.observe(&modify(&file));
        assert!(matches!(
            reloader.reload().await,
            ReloadOutcome::WriteInProgress(open) if open == [file.clone()]
        ));
        writes.observe(
            &Event::new(EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write,
            )))
            .add_path(file.clone()),
        );
        assert_eq!(label(reloader.reload().await).as_deref(), Some("half"));
    }

    #[tokio::test]
    async fn content_that_changed_while_it_was_read_is_not_taken() {
        let (_tmp, file, writes, mut reloader) = setup();
        fs::write(&file, yaml("two")).unwrap();
        // The reload reads, then waits the debounce; the write's event lands meanwhile.
        let (outcome, ()) = tokio::join!(reloader.reload(), async {
            writes.observe(&modify(&file));
        });
        assert!(
            matches!(outcome, ReloadOutcome::ChangedWhileRead),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_deleted_config_suspends_deletions_until_a_valid_one_is_back() {
        let (_tmp, file, _writes, mut reloader) = setup();
        assert!(!reloader.deletions_suspended());
        fs::remove_file(&file).unwrap();
        assert!(matches!(
            reloader.reload().await,
            ReloadOutcome::Invalid { missing: true, .. }
        ));
        assert!(reloader.deletions_suspended());

        fs::write(&file, "version: 1\naccounts: [").unwrap();
        assert!(matches!(
            reloader.reload().await,
            ReloadOutcome::Invalid { missing: false, .. }
        ));
        assert!(reloader.deletions_suspended());

        // The same content as before it went away: nothing new, but deletions resume.
        fs::write(&file, yaml("one")).unwrap();
        assert!(matches!(reloader.reload().await, ReloadOutcome::Unchanged));
        assert!(!reloader.deletions_suspended());
    }
}
