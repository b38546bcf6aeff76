//! Watching the config for changes: a watch on the config's directory that says "new
//! complete content may be there", after a burst of events has settled and only when no
//! config file is being written ([`Writes`]).
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
//! Events are coalesced: a notification goes out once no event has arrived for the debounce
//! window (`--debounce`). That window only groups a burst; it is not what says a file is
//! complete. Every event is fed, as it arrives, to the [`Writes`] tracker, and while a config
//! file has been written but not yet closed (or renamed into place) nothing is sent, however
//! long the writer pauses: its close is an event, and it ends the wait. The reconcile loop asks
//! the same tracker before its own reads (interval tick, SIGHUP).
//!
//! Events are otherwise not filtered by name: the loop is level-triggered, so a notification
//! only means "re-read the config and compare its hash", which costs one small read. The only
//! events dropped are reads (open, close without write): the daemon reading its own config
//! must not wake it again. Changes the watch cannot see (a config symlinked to another
//! directory, an unreliable network file system) are picked up by the interval tick.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use thiserror::Error;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::writes::{ConfigScope, Writes};

/// How long the watcher waits for a burst of file events to settle before it reports one
/// change. An editor's save or a ConfigMap swap is a handful of events within milliseconds.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(200);

/// The shortest debounce accepted (`--debounce` refuses less); shorter ones are raised to
/// it. Below it, a burst of events is no longer coalesced.
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
    /// Held for its `Drop`: dropping it stops the OS watch and its thread.
    _watcher: RecommendedWatcher,
    /// The task that coalesces events into notifications; aborted on drop.
    debouncer: JoinHandle<()>,
    writes: Writes,
    dir: PathBuf,
}

impl std::fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatcher")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.debouncer.abort();
    }
}

impl ConfigWatcher {
    /// Starts watching the directory that holds `config` (or `config` itself when it is a
    /// directory). Each settled burst of changes, `debounce` after it quietens, is reported
    /// as one `()` on the returned channel, unless a config file is still being written: then
    /// nothing is sent until the writer closes it or renames it into place. `debounce` is at
    /// least [`MIN_DEBOUNCE`]. Must be called within a Tokio runtime.
    ///
    /// The channel holds at most one pending notification: while one waits unread, further
    /// changes fold into it. That is all a level-triggered consumer needs, and it means a
    /// slow reconcile never builds a backlog. Watch errors (including an event queue
    /// overflow) are logged and reported as a change, since the safe response to "something
    /// may have been missed" is to re-read.
    pub fn start(
        config: &Path,
        debounce: Duration,
    ) -> Result<(Self, mpsc::Receiver<()>), WatchError> {
        let dir = watch_dir(config);
        let debounce = debounce.max(MIN_DEBOUNCE);
        let writes = Writes::new(ConfigScope::of(config, &dir));
        let (tx, rx) = mpsc::channel(1);
        let events = Arc::new(Notify::new());
        let handler = {
            let writes = writes.clone();
            let events = events.clone();
            move |result: notify::Result<notify::Event>| {
                let relevant = match result {
                    Ok(event) => writes.observe(&event),
                    Err(error) => {
                        tracing::warn!(%error, "config watch error; re-reading the config");
                        writes.lost_events();
                        true
                    }
                };
                if relevant {
                    events.notify_one();
                }
            }
        };
        let mut watcher =
            notify::recommended_watcher(handler).map_err(|source| WatchError::Start { source })?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch {
                path: dir.clone(),
                source,
            })?;
        let debouncer = tokio::spawn(coalesce(events, writes.clone(), debounce, tx));
        Ok((
            Self {
                _watcher: watcher,
                debouncer,
                writes,
                dir,
            },
            rx,
        ))
    }

    /// The directory being watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tracker of writes in progress, for reads the watch did not prompt.
    pub fn writes(&self) -> &Writes {
        &self.writes
    }
}

/// Turns events into notifications: one per burst, `debounce` after its last event, and none
/// while a config file is being written.
async fn coalesce(events: Arc<Notify>, writes: Writes, debounce: Duration, tx: mpsc::Sender<()>) {
    loop {
        events.notified().await;
        // The burst lasts until `debounce` passes without an event.
        while tokio::time::timeout(debounce, events.notified())
            .await
            .is_ok()
        {}
        let open = writes.in_progress();
        if !open.is_empty() {
            tracing::info!(
                files = ?open,
                "a write to the config is in progress; waiting for the writer to close it or \
                 rename it into place"
            );
            continue;
        }
        // Full means a notification is already pending; closed means the consumer is gone.
        if let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
            return;
        }
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use tempfile::TempDir;
    use tokio::time::timeout;

    use super::*;
    use crate::config;
    use crate::daemon::gate::{Reload, ReloadGate};

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

    /// A desired state under `unmanaged: delete` that declares `groups` present, and the
    /// same text cut after the second group: still valid YAML, and it would prune the rest.
    fn whole_and_half() -> (String, String) {
        let mut whole = String::from(
            "version: 1\naccounts:\n  - id: 023e105f4ecef8ad9ca31a8372d0c353\n    unmanaged: delete\n    groups:\n",
        );
        let mut half = String::new();
        for (i, name) in ["alpha", "beta", "gamma", "delta"].iter().enumerate() {
            if i == 2 {
                half = whole.clone();
            }
            whole.push_str(&format!("      - name: {name}\n        state: present\n"));
        }
        (whole, half)
    }

    fn declared(state: &crate::config::DesiredState) -> usize {
        state.accounts[0].groups.len()
    }

    /// The attack: `( cat first-half; sleep 1; cat second-half ) > groups.yaml`, a pause 20
    /// times the debounce, with `unmanaged: delete`. Neither the watch nor a read between
    /// its notifications (an interval tick, SIGHUP) may take the half file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_half_file_of_a_paused_writer_is_never_taken() {
        use crate::daemon::reload::{ReloadOutcome, Reloader};

        let tmp = TempDir::new().unwrap();
        let file = tmp.path().join("groups.yaml");
        let (whole, half) = whole_and_half();
        fs::write(&file, &whole).unwrap();
        let held = config::load(&file).unwrap();
        assert_eq!(declared(&held), 4);
        // The halves live outside the watched directory: writing them is no event.
        let parts = TempDir::new().unwrap();
        let (first, second) = (parts.path().join("first"), parts.path().join("second"));
        fs::write(&first, &half).unwrap();
        fs::write(&second, &whole[half.len()..]).unwrap();
        assert_eq!(declared(&config::parse(&half, &file).unwrap()), 2);

        let (watcher, mut rx) = ConfigWatcher::start(&file, DEBOUNCE).unwrap();
        let mut reloader = Reloader::new(&file, DEBOUNCE, watcher.writes().clone(), &held);
        let mut writer = std::process::Command::new("sh")
            .args(["-c", "( cat \"$1\"; sleep 1; cat \"$2\" ) > \"$3\"", "sh"])
            .args([&first, &second, &file])
            .spawn()
            .unwrap();

        // A tick during the pause: the file is open for writing, so it is not read.
        let started = std::time::Instant::now();
        while watcher.writes().in_progress().is_empty() {
            assert!(started.elapsed() < WAIT, "the write was never seen");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        match reloader.reload().await {
            ReloadOutcome::WriteInProgress(open) => assert_eq!(open, std::slice::from_ref(&file)),
            ReloadOutcome::Changed(state) => {
                // Only acceptable if the writer finished meanwhile.
                assert_eq!(declared(&state), 4, "a tick took the half file");
            }
            other => panic!("unexpected {other:?}"),
        }

        // The watch's first word comes once the file is complete.
        expect_event(&mut rx, "the writer's close").await;
        assert_eq!(
            declared(&config::load(&file).unwrap()),
            4,
            "the watch reported the half file"
        );
        match reloader.reload().await {
            ReloadOutcome::Changed(state) => assert_eq!(declared(&state), 4),
            ReloadOutcome::Unchanged => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(writer.wait().unwrap().success());
    }

    #[tokio::test]
    async fn a_file_renamed_into_place_is_reported_and_its_writes_before_do_not_block() {
        let tmp = TempDir::new().unwrap();
        let file = tmp.path().join("groups.yaml");
        fs::write(&file, yaml("one")).unwrap();
        let (watcher, mut rx) = ConfigWatcher::start(&file, DEBOUNCE).unwrap();
        // An editor's save: a temporary file written, closed, renamed over the config.
        let temp = tmp.path().join(".groups.yaml.tmp");
        fs::write(&temp, yaml("two")).unwrap();
        fs::rename(&temp, &file).unwrap();
        expect_event(&mut rx, "rename into place").await;
        assert!(watcher.writes().in_progress().is_empty());
        // A swap file held open beside the config blocks nothing.
        let mut swap = fs::File::create(tmp.path().join(".groups.yaml.swp")).unwrap();
        std::io::Write::write_all(&mut swap, b"vim").unwrap();
        fs::write(&file, yaml("three")).unwrap();
        expect_event(&mut rx, "write beside an open swap file").await;
        drop(swap);
    }
}
