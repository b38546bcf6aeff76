//! Watching the config for changes: a debounced watch on the config's directory that says
//! "maybe changed", and the [`ReloadGate`] that turns that into "changed" by content hash.
//!
//! The watch is on the directory, never on the file. A watch on a file follows its inode, and
//! the common ways a config is replaced all swap the inode away under it:
//! - an editor writes a temporary file and renames it over the config;
//! - a Kubernetes ConfigMap mount keeps `groups.yaml -> ..data/groups.yaml` and
//!   `..data -> ..2026_11_28_01_00_00.123`, and an update writes a new timestamped
//!   directory and renames a new `..data` symlink over the old one;
//! - a deploy tool deletes the file and creates it again.
//!
//! A non-recursive watch on the directory sees each of these as a create, rename or delete
//! of an entry in it. When `--config` is a directory, that directory is watched, so adding or
//! removing a file in it is seen too.
//!
//! Events are deliberately not filtered by name: the loop is level-triggered, so an event
//! only means "re-read the config and compare its hash", which costs one small read. Being
//! woken by an unrelated file in the same directory is cheap; missing a change is not. The
//! only events dropped are reads (open, close without write): the daemon reading its own
//! config must not wake it again. Changes the watch cannot see (a config symlinked to another
//! directory, an unreliable network file system) are picked up by the interval tick.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use thiserror::Error;
use tokio::sync::mpsc;

use crate::config::DesiredState;

/// How long the watcher waits for a burst of file events to settle before it reports one
/// change. An editor's save or a ConfigMap swap is a handful of events within milliseconds.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(200);

/// The shortest debounce accepted; shorter ones are raised to it. The debouncer polls at a
/// quarter of the debounce, so a zero debounce would spin.
pub const MIN_DEBOUNCE: Duration = Duration::from_millis(10);

/// Why the config watch could not be set up.
#[derive(Debug, Error)]
pub enum WatchError {
    #[error("cannot start the file watcher: {source}")]
    Start {
        #[source]
        source: notify::Error,
    },
    #[error("cannot watch directory {path}: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// A running watch on the config's directory. Dropping it stops the watch; the receiver then
/// yields `None`.
pub struct ConfigWatcher {
    /// Held for its `Drop`: dropping the debouncer stops the OS watch and its thread.
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    dir: PathBuf,
}

impl std::fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatcher")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ConfigWatcher {
    /// Starts watching the directory that holds `config` (or `config` itself when it is a
    /// directory), reporting each settled burst of changes, `debounce` after it quietens, as
    /// one `()` on the returned channel. `debounce` is at least [`MIN_DEBOUNCE`].
    ///
    /// The channel holds at most one pending notification: while one waits unread, further
    /// changes fold into it. That is all a level-triggered consumer needs, and it means a
    /// slow reconcile never builds a backlog. Watch errors (including an inotify queue
    /// overflow) are logged and reported as a change, since the safe response to "something
    /// may have been missed" is to re-read.
    pub fn start(
        config: &Path,
        debounce: Duration,
    ) -> Result<(Self, mpsc::Receiver<()>), WatchError> {
        let dir = watch_dir(config);
        let (tx, rx) = mpsc::channel(1);
        let handler = move |result: DebounceEventResult| {
            let relevant = match result {
                Ok(events) => events.iter().any(|event| is_change(&event.kind)),
                Err(errors) => {
                    for error in &errors {
                        tracing::warn!(%error, "config watch error; re-reading the config");
                    }
                    true
                }
            };
            if relevant {
                // Full means a notification is already pending; closed means the consumer
                // is gone. Either way there is nothing more to do.
                let _ = tx.try_send(());
            }
        };
        let mut debouncer = new_debouncer(debounce, None, handler)
            .map_err(|source| WatchError::Start { source })?;
        debouncer
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch {
                path: dir.clone(),
                source,
            })?;
        Ok((
            Self {
                _debouncer: debouncer,
                dir,
            },
            rx,
        ))
    }

    /// The directory being watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The directory to watch for `config`: the config itself when it is a directory, else its
/// parent (`.` for a bare file name).
pub fn watch_dir(config: &Path) -> PathBuf {
    if config.is_dir() {
        return config.to_owned();
    }
    match config.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Whether an event kind can mean the content changed. Reads cannot, and the daemon's own
/// reads of its config would otherwise wake it in a loop.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Whether a freshly loaded config differs from the last one accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The content differs (or nothing was accepted yet): use the new state.
    Changed,
    /// Same content as the last accepted state: nothing to do.
    Unchanged,
}

/// Remembers the content hash of the last good config, so that events which did not change
/// the content (a `touch`, a save without edits, an unrelated file in the directory, a
/// ConfigMap resync) cost no reconcile.
///
/// Only successfully loaded states pass through the gate: a failed load leaves it holding the
/// last good hash, so a later fix back to that same content is `Unchanged` (correctly: the
/// daemon has been enforcing exactly that state all along).
#[derive(Debug, Clone, Default)]
pub struct ReloadGate {
    last: Option<String>,
}

impl ReloadGate {
    /// A gate that has accepted nothing yet: the first state is always `Changed`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compares `state` with the last accepted one and, when it differs, accepts it.
    pub fn observe(&mut self, state: &DesiredState) -> Reload {
        self.observe_hash(&state.content_hash)
    }

    /// [`observe`](Self::observe) for a bare content hash.
    pub fn observe_hash(&mut self, hash: &str) -> Reload {
        if self.last.as_deref() == Some(hash) {
            Reload::Unchanged
        } else {
            self.last = Some(hash.to_owned());
            Reload::Changed
        }
    }

    /// The content hash of the last accepted state.
    pub fn last_hash(&self) -> Option<&str> {
        self.last.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use tempfile::TempDir;
    use tokio::time::timeout;

    use super::*;
    use crate::config;

    /// Generous: inotify is immediate, but a loaded 2-core machine can stall a thread.
    const WAIT: Duration = Duration::from_secs(10);
    /// Short, so a test spends little time waiting for the debounce.
    const DEBOUNCE: Duration = Duration::from_millis(50);

    fn yaml(label: &str) -> String {
        format!(
            "version: 1\naccounts:\n  - id: 023e105f4ecef8ad9ca31a8372d0c353\n    label: {label}\n    groups:\n      - name: Engineering\n        state: present\n"
        )
    }

    fn other_account_yaml() -> String {
        "version: 1\naccounts:\n  - id: 9a7806061c88ada191ed06f989cc3dac\n    groups: []\n"
            .to_owned()
    }

    async fn expect_event(rx: &mut mpsc::Receiver<()>, what: &str) {
        match timeout(WAIT, rx.recv()).await {
            Ok(Some(())) => {}
            Ok(None) => panic!("{what}: watcher channel closed"),
            Err(_) => panic!("{what}: no event within {WAIT:?}"),
        }
    }

    #[tokio::test]
    async fn in_place_write_is_seen() {
        let tmp = TempDir::new().unwrap();
        let file = tmp.path().join("groups.yaml");
        fs::write(&file, yaml("one")).unwrap();
        let (watcher, mut rx) = ConfigWatcher::start(&file, DEBOUNCE).unwrap();
        assert_eq!(watcher.dir(), tmp.path());

        fs::write(&file, yaml("two")).unwrap();
        expect_event(&mut rx, "in-place write").await;
    }

    #[tokio::test]
    async fn write_to_temp_then_rename_is_seen() {
        let tmp = TempDir::new().unwrap();
        let file = tmp.path().join("groups.yaml");
        fs::write(&file, yaml("one")).unwrap();
        let (_watcher, mut rx) = ConfigWatcher::start(&file, DEBOUNCE).unwrap();

        let temp = tmp.path().join(".groups.yaml.swp");
        fs::write(&temp, yaml("two")).unwrap();
        fs::rename(&temp, &file).unwrap();
        expect_event(&mut rx, "rename over the file").await;
        assert_eq!(
            config::load(&file).unwrap().accounts[0].label.as_deref(),
            Some("two")
        );
    }

    #[tokio::test]
    async fn delete_and_create_again_is_seen() {
        let tmp = TempDir::new().unwrap();
        let file = tmp.path().join("groups.yaml");
        fs::write(&file, yaml("one")).unwrap();
        let (_watcher, mut rx) = ConfigWatcher::start(&file, DEBOUNCE).unwrap();

        fs::remove_file(&file).unwrap();
        expect_event(&mut rx, "delete").await;
        fs::write(&file, yaml("two")).unwrap();
        expect_event(&mut rx, "create again").await;
    }

    #[tokio::test]
    async fn file_added_to_and_removed_from_a_config_directory_is_seen() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("conf.d");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("production.yaml"), yaml("one")).unwrap();
        let (watcher, mut rx) = ConfigWatcher::start(&dir, DEBOUNCE).unwrap();
        assert_eq!(watcher.dir(), dir);

        fs::write(dir.join("staging.yaml"), other_account_yaml()).unwrap();
        expect_event(&mut rx, "file added").await;
        assert_eq!(config::load(&dir).unwrap().accounts.len(), 2);

        fs::remove_file(dir.join("staging.yaml")).unwrap();
        expect_event(&mut rx, "file removed").await;
        assert_eq!(config::load(&dir).unwrap().accounts.len(), 1);
    }

    /// Lays out a ConfigMap volume as the kubelet does: the visible file is a symlink through
    /// `..data`, itself a symlink to a timestamped directory.
    fn configmap_version(mount: &Path, stamp: &str, content: &str) {
        let version = mount.join(stamp);
        fs::create_dir(&version).unwrap();
        fs::write(version.join("groups.yaml"), content).unwrap();
    }

    /// The kubelet's atomic update: a new timestamped directory, a new `..data_tmp` symlink
    /// to it, renamed over `..data`, then the old directory removed.
    fn configmap_swap(mount: &Path, old: &str, new: &str, content: &str) {
        configmap_version(mount, new, content);
        let tmp_link = mount.join("..data_tmp");
        symlink(new, &tmp_link).unwrap();
        fs::rename(&tmp_link, mount.join("..data")).unwrap();
        fs::remove_dir_all(mount.join(old)).unwrap();
    }

    #[tokio::test]
    async fn configmap_symlink_swap_is_seen_and_changes_the_content() {
        let tmp = TempDir::new().unwrap();
        let mount = tmp.path();
        let old = "..2026_11_28_01_00_00.123";
        let new = "..2026_11_28_01_05_00.456";
        configmap_version(mount, old, &yaml("one"));
        symlink(old, mount.join("..data")).unwrap();
        symlink("..data/groups.yaml", mount.join("groups.yaml")).unwrap();
        let file = mount.join("groups.yaml");

        let before = config::load(&file).unwrap();
        let mut gate = ReloadGate::new();
        assert_eq!(gate.observe(&before), Reload::Changed);

        let (_watcher, mut rx) = ConfigWatcher::start(&file, DEBOUNCE).unwrap();
        configmap_swap(mount, old, new, &yaml("two"));
        expect_event(&mut rx, "ConfigMap ..data swap").await;

        let after = config::load(&file).unwrap();
        assert_eq!(after.accounts[0].label.as_deref(), Some("two"));
        assert_ne!(before.content_hash, after.content_hash);
        assert_eq!(gate.observe(&after), Reload::Changed);
    }

    #[tokio::test]
    async fn configmap_mounted_as_config_directory_is_seen() {
        let tmp = TempDir::new().unwrap();
        let mount = tmp.path();
        let old = "..2026_11_28_01_00_00.123";
        configmap_version(mount, old, &yaml("one"));
        symlink(old, mount.join("..data")).unwrap();
        symlink("..data/groups.yaml", mount.join("groups.yaml")).unwrap();

        let (_watcher, mut rx) = ConfigWatcher::start(mount, DEBOUNCE).unwrap();
        configmap_swap(mount, old, "..2026_11_28_01_05_00.456", &yaml("two"));
        expect_event(&mut rx, "ConfigMap swap in a config directory").await;
        let state = config::load(mount).unwrap();
        assert_eq!(state.accounts[0].label.as_deref(), Some("two"));
    }

    #[tokio::test]
    async fn a_same_content_rewrite_is_seen_but_the_gate_skips_it() {
        let tmp = TempDir::new().unwrap();
        let file = tmp.path().join("groups.yaml");
        fs::write(&file, yaml("one")).unwrap();
        let mut gate = ReloadGate::new();
        let first = config::load(&file).unwrap();
        assert_eq!(gate.observe(&first), Reload::Changed);
        let (_watcher, mut rx) = ConfigWatcher::start(&file, DEBOUNCE).unwrap();

        fs::write(&file, yaml("one")).unwrap();
        expect_event(&mut rx, "same-content rewrite").await;
        assert_eq!(
            gate.observe(&config::load(&file).unwrap()),
            Reload::Unchanged
        );
        assert_eq!(gate.last_hash(), Some(first.content_hash.as_str()));
    }

    #[tokio::test]
    async fn dropping_the_watcher_closes_the_channel() {
        let tmp = TempDir::new().unwrap();
        let (watcher, mut rx) = ConfigWatcher::start(tmp.path(), Duration::ZERO).unwrap();
        drop(watcher);
        match timeout(WAIT, rx.recv()).await {
            Ok(None) => {}
            other => panic!("expected the channel to close, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn reading_the_config_wakes_nothing() {
        let tmp = TempDir::new().unwrap();
        let file = tmp.path().join("groups.yaml");
        fs::write(&file, yaml("one")).unwrap();
        let (_watcher, mut rx) = ConfigWatcher::start(&file, DEBOUNCE).unwrap();

        config::load(&file).unwrap();
        // A negative check: load can only make it pass wrongly, never fail wrongly.
        let quiet = timeout(DEBOUNCE * 6, rx.recv()).await;
        assert!(quiet.is_err(), "a read woke the watcher: {quiet:?}");
    }

    #[test]
    fn reads_are_not_changes() {
        use notify::event::{CreateKind, DataChange, ModifyKind};
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
    }

    #[test]
    fn reload_gate_accepts_only_new_content() {
        let mut gate = ReloadGate::new();
        assert_eq!(gate.last_hash(), None);
        assert_eq!(gate.observe_hash("a"), Reload::Changed);
        assert_eq!(gate.observe_hash("a"), Reload::Unchanged);
        assert_eq!(gate.observe_hash("b"), Reload::Changed);
        assert_eq!(gate.observe_hash("a"), Reload::Changed);
        assert_eq!(gate.last_hash(), Some("a"));
    }

    #[test]
    fn watch_dir_is_the_parent_of_a_file_and_the_directory_itself() {
        let tmp = TempDir::new().unwrap();
        let file = tmp.path().join("groups.yaml");
        fs::write(&file, "").unwrap();
        assert_eq!(watch_dir(&file), tmp.path());
        assert_eq!(watch_dir(tmp.path()), tmp.path());
        assert_eq!(watch_dir(Path::new("groups.yaml")), Path::new("."));
        // A file that does not exist yet is still watched for in its directory.
        assert_eq!(watch_dir(&tmp.path().join("later.yaml")), tmp.path());
    }
}
