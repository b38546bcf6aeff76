//! Which config files are being written right now: the rule that new config content is
//! taken only once it is complete.
//!
//! A quiet spell is no proof that a write is over: a writer that pauses
//! (`( cat first-half; sleep 1; cat second-half ) > groups.yaml`) leaves a half file that may
//! still be valid YAML, and under `unmanaged: delete` the groups it no longer names would be
//! pruned. The file system says when a write is over, so the tracker listens to it:
//! - a data write (inotify `IN_MODIFY`) marks the path *open*: written, not yet closed;
//! - the writer closing it (`IN_CLOSE_WRITE`) marks it complete;
//! - a rename into place (an editor's save, a ConfigMap's `..data` swap) brings complete
//!   content, unless the file renamed was itself still open for writing;
//! - a removed path holds nothing half-written.
//!
//! Every path in the watched directory is tracked (a temporary file's state travels with it
//! when it is renamed over the config), but only config paths ([`ConfigScope`]) count: an
//! editor's swap file held open beside the config must not stop reloads.
//!
//! Limits: inotify does not say which descriptor closed, so a second writer closing the same
//! file marks it complete while the first still writes; a writer that dies mid-write has its
//! file closed by the kernel, and what it wrote is then taken as complete (it is valid only
//! if it parses). After an event-queue overflow nothing is known, so every mark is cleared
//! and the config re-read, rather than waiting forever for a close that was lost.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind};

/// Most paths tracked at once; past it, marks on paths that are not config files are
/// dropped (a directory churning through temporary files must not grow this without end).
const MAX_TRACKED: usize = 4096;

/// Which paths of the watched directory are the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigScope {
    /// `--config FILE`: its name, and the name of its symlink target when that lives in the
    /// same directory (writes land on the target).
    File(Vec<OsString>),
    /// `--config DIR`: every entry the loader reads or refuses, that is `*.yaml`/`*.yml` in
    /// any case, hidden names excepted.
    Directory,
}

impl ConfigScope {
    /// The scope of `config`, watched through directory `dir`.
    pub fn of(config: &Path, dir: &Path) -> Self {
        if config.is_dir() {
            return Self::Directory;
        }
        let mut names: Vec<OsString> = config.file_name().map(OsString::from).into_iter().collect();
        if let Ok(target) = std::fs::read_link(config) {
            let same_dir = match target.parent() {
                None => true,
                Some(parent) => parent.as_os_str().is_empty() || parent == dir,
            };
            if same_dir && let Some(name) = target.file_name() {
                names.push(name.to_owned());
            }
        }
        Self::File(names)
    }

    /// Whether `path` (in the watched directory) is part of the config.
    pub fn contains(&self, path: &Path) -> bool {
        let Some(name) = path.file_name() else {
            return false;
        };
        match self {
            Self::File(names) => names.iter().any(|n| n == name),
            Self::Directory => {
                let name = name.to_string_lossy();
                let ext = Path::new(name.as_ref())
                    .extension()
                    .map(|e| e.to_string_lossy().to_ascii_lowercase());
                !name.starts_with('.') && matches!(ext.as_deref(), Some("yaml" | "yml"))
            }
        }
    }
}

/// The tracker's state: open paths, and a generation that moves on every event that can
/// change what a config path holds.
#[derive(Debug)]
pub struct WriteTracker {
    scope: ConfigScope,
    open: HashSet<PathBuf>,
    generation: u64,
    /// A path renamed away and whether it was open, until the rename's other half arrives.
    moved_away: Option<(PathBuf, bool)>,
}

impl WriteTracker {
    pub fn new(scope: ConfigScope) -> Self {
        Self {
            scope,
            open: HashSet::new(),
            generation: 0,
            moved_away: None,
        }
    }

    /// Takes in one file-system event. Returns whether it can mean a change (reads cannot:
    /// the daemon reading its own config must not wake it).
    pub fn observe(&mut self, event: &Event) -> bool {
        if event.need_rescan() {
            self.lost_events();
            return true;
        }
        let paths = &event.paths;
        match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                paths.iter().for_each(|p| self.complete(p));
            }
            EventKind::Access(_) => return false,
            EventKind::Modify(ModifyKind::Data(_)) => {
                paths.iter().for_each(|p| self.written(p));
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                if let Some(path) = paths.first() {
                    let was_open = self.open.remove(path);
                    self.moved_away = Some((path.clone(), was_open));
                    self.touch(path);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                if let [from, to] = paths.as_slice() {
                    let was_open = match self.moved_away.take() {
                        Some((path, was_open)) if path == *from => was_open,
                        _ => false,
                    };
                    if was_open {
                        self.written(to);
                    } else {
                        self.complete(to);
                    }
                    self.touch(from);
                }
            }
            // A rename into place (the other half of `Both`, or a lone `To` from outside the
            // directory), a removal: either way the path holds nothing half-written.
            EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => {
                paths.iter().for_each(|p| self.complete(p));
            }
            _ => paths.iter().for_each(|p| self.touch(p)),
        }
        true
    }

    /// The config paths written and not yet complete, sorted.
    pub fn in_progress(&self) -> Vec<PathBuf> {
        let mut open: Vec<PathBuf> = self
            .open
            .iter()
            .filter(|p| self.scope.contains(p))
            .cloned()
            .collect();
        open.sort();
        open
    }

    /// Moves on whenever a config path may have changed: equal before and after a read means
    /// no event touched the config meanwhile.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Events were lost (queue overflow): nothing is known to be open any more.
    pub fn lost_events(&mut self) {
        self.open.clear();
        self.moved_away = None;
        self.generation = self.generation.wrapping_add(1);
    }

    fn written(&mut self, path: &Path) {
        if self.open.len() >= MAX_TRACKED {
            let scope = &self.scope;
            self.open.retain(|p| scope.contains(p));
        }
        self.open.insert(path.to_owned());
        self.touch(path);
    }

    fn complete(&mut self, path: &Path) {
        self.open.remove(path);
        self.touch(path);
    }

    fn touch(&mut self, path: &Path) {
        if self.scope.contains(path) {
            self.generation = self.generation.wrapping_add(1);
        }
    }
}

/// A [`WriteTracker`] shared between the watch (which feeds it from its own thread) and the
/// reconcile loop (which asks it before reading the config). Clones share the tracker.
#[derive(Debug, Clone)]
pub struct Writes {
    inner: Arc<Mutex<WriteTracker>>,
}

impl Writes {
    pub fn new(scope: ConfigScope) -> Self {
        Self {
            inner: Arc::new(Mutex::new(WriteTracker::new(scope))),
        }
    }

    /// A tracker that never sees an event: for a loop run without a watch.
    pub fn unwatched() -> Self {
        Self::new(ConfigScope::File(Vec::new()))
    }

    /// See [`WriteTracker::observe`].
    pub fn observe(&self, event: &Event) -> bool {
        self.lock().observe(event)
    }

    /// See [`WriteTracker::lost_events`].
    pub fn lost_events(&self) {
        self.lock().lost_events();
    }

    /// See [`WriteTracker::in_progress`].
    pub fn in_progress(&self) -> Vec<PathBuf> {
        self.lock().in_progress()
    }

    /// See [`WriteTracker::generation`].
    pub fn generation(&self) -> u64 {
        self.lock().generation()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WriteTracker> {
        // Plain data, consistent after every statement: a panicking holder left nothing
        // half-done that matters.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, DataChange, Flag, RemoveKind};

    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from("/etc/cfgroups")
    }

    fn at(name: &str) -> PathBuf {
        dir().join(name)
    }

    fn event(kind: EventKind, names: &[&str]) -> Event {
        names
            .iter()
            .fold(Event::new(kind), |event, name| event.add_path(at(name)))
    }

    fn modify(name: &str) -> Event {
        event(
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            &[name],
        )
    }

    fn close_write(name: &str) -> Event {
        event(
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            &[name],
        )
    }

    fn rename(from: &str, to: &str) -> [Event; 3] {
        [
            event(
                EventKind::Modify(ModifyKind::Name(RenameMode::From)),
                &[from],
            ),
            event(EventKind::Modify(ModifyKind::Name(RenameMode::To)), &[to]),
            event(
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                &[from, to],
            ),
        ]
    }

    fn file_tracker() -> WriteTracker {
        WriteTracker::new(ConfigScope::File(vec!["groups.yaml".into()]))
    }

    /// `( cat first-half; sleep 1; cat second-half ) > groups.yaml`: however long the pause,
    /// the file is open until the shell closes it.
    #[test]
    fn a_write_is_in_progress_from_the_first_byte_until_the_close() {
        let mut tracker = file_tracker();
        let open = event(
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            &["groups.yaml"],
        );
        assert!(!tracker.observe(&open));
        assert!(tracker.observe(&modify("groups.yaml")));
        assert_eq!(tracker.in_progress(), [at("groups.yaml")]);
        // The pause: nothing happens, and nothing changes.
        assert_eq!(tracker.in_progress(), [at("groups.yaml")]);
        tracker.observe(&modify("groups.yaml"));
        assert_eq!(tracker.in_progress(), [at("groups.yaml")]);
        tracker.observe(&close_write("groups.yaml"));
        assert!(tracker.in_progress().is_empty());
    }

    #[test]
    fn reads_are_not_changes_and_do_not_move_the_generation() {
        let mut tracker = file_tracker();
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
        ] {
            assert!(!tracker.observe(&event(kind, &["groups.yaml"])));
        }
        assert_eq!(tracker.generation(), 0);
    }

    #[test]
    fn a_file_written_then_renamed_into_place_is_complete() {
        let mut tracker = file_tracker();
        tracker.observe(&event(
            EventKind::Create(CreateKind::File),
            &[".groups.yaml.tmp"],
        ));
        tracker.observe(&modify(".groups.yaml.tmp"));
        tracker.observe(&close_write(".groups.yaml.tmp"));
        for e in rename(".groups.yaml.tmp", "groups.yaml") {
            tracker.observe(&e);
        }
        assert!(tracker.in_progress().is_empty());
        assert!(tracker.generation() > 0);
    }

    #[test]
    fn a_file_renamed_into_place_while_still_open_is_still_in_progress() {
        let mut tracker = file_tracker();
        tracker.observe(&modify(".groups.yaml.tmp"));
        for e in rename(".groups.yaml.tmp", "groups.yaml") {
            tracker.observe(&e);
        }
        assert_eq!(tracker.in_progress(), [at("groups.yaml")]);
        tracker.observe(&close_write("groups.yaml"));
        assert!(tracker.in_progress().is_empty());
    }

    #[test]
    fn a_configmap_swap_is_complete_at_once() {
        let mut tracker = file_tracker();
        tracker.observe(&event(EventKind::Create(CreateKind::File), &["..data_tmp"]));
        for e in rename("..data_tmp", "..data") {
            tracker.observe(&e);
        }
        tracker.observe(&event(
            EventKind::Remove(RemoveKind::Folder),
            &["..2026_11_28_01_00_00.1"],
        ));
        assert!(tracker.in_progress().is_empty());
    }

    #[test]
    fn other_files_held_open_do_not_count() {
        let mut tracker = file_tracker();
        tracker.observe(&modify(".groups.yaml.swp"));
        tracker.observe(&modify("cfgroups.log"));
        assert!(tracker.in_progress().is_empty());
        assert_eq!(tracker.generation(), 0);
        let mut directory = WriteTracker::new(ConfigScope::Directory);
        directory.observe(&modify("README.md"));
        directory.observe(&modify(".staging.yaml.swp"));
        assert!(directory.in_progress().is_empty());
        directory.observe(&modify("staging.yaml"));
        directory.observe(&modify("prod.YML"));
        assert_eq!(
            directory.in_progress(),
            [at("prod.YML"), at("staging.yaml")]
        );
    }

    #[test]
    fn a_removed_file_is_not_in_progress() {
        let mut tracker = file_tracker();
        tracker.observe(&modify("groups.yaml"));
        tracker.observe(&event(
            EventKind::Remove(RemoveKind::File),
            &["groups.yaml"],
        ));
        assert!(tracker.in_progress().is_empty());
    }

    #[test]
    fn lost_events_clear_every_mark() {
        let mut tracker = file_tracker();
        tracker.observe(&modify("groups.yaml"));
        let before = tracker.generation();
        assert!(tracker.observe(&Event::new(EventKind::Other).set_flag(Flag::Rescan)));
        assert!(tracker.in_progress().is_empty());
        assert!(tracker.generation() > before);
    }

    #[test]
    fn every_event_on_the_config_moves_the_generation() {
        let mut tracker = file_tracker();
        let mut last = tracker.generation();
        for e in [
            modify("groups.yaml"),
            close_write("groups.yaml"),
            event(EventKind::Create(CreateKind::File), &["groups.yaml"]),
            event(EventKind::Remove(RemoveKind::File), &["groups.yaml"]),
        ] {
            tracker.observe(&e);
            assert!(tracker.generation() > last, "{e:?}");
            last = tracker.generation();
        }
    }

    #[test]
    fn a_symlinked_config_counts_its_target_in_the_same_directory() {
        let tmp = tempfile::TempDir::new().unwrap();
        std::fs::write(tmp.path().join("real.yaml"), "").unwrap();
        std::os::unix::fs::symlink("real.yaml", tmp.path().join("groups.yaml")).unwrap();
        let scope = ConfigScope::of(&tmp.path().join("groups.yaml"), tmp.path());
        assert!(scope.contains(&tmp.path().join("real.yaml")));
        assert!(scope.contains(&tmp.path().join("groups.yaml")));
        assert!(!scope.contains(&tmp.path().join("other.yaml")));
        assert_eq!(
            ConfigScope::of(tmp.path(), tmp.path()),
            ConfigScope::Directory
        );
    }
}
