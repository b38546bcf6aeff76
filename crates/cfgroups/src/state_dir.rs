//! Where cfgroups keeps its state (the journal, the daemon's last report).

use std::path::{Path, PathBuf};

/// The last resort, relative to the current directory, when nothing names a state directory.
pub const FALLBACK: &str = ".cfgroups";

/// `explicit` if given; else systemd's `$STATE_DIRECTORY` (its first entry); else
/// `$XDG_STATE_HOME/cfgroups`; else `~/.local/state/cfgroups`; else `./.cfgroups`, with a
/// warning: the journal there holds the only backups of deleted groups, and a directory
/// that depends on where the command ran is easily lost.
pub fn resolve(explicit: Option<PathBuf>) -> PathBuf {
    let dir = resolve_with(explicit, |name| std::env::var_os(name));
    if dir == Path::new(FALLBACK) {
        let shown = std::env::current_dir()
            .map(|cwd| cwd.join(FALLBACK))
            .unwrap_or_else(|_| PathBuf::from(FALLBACK));
        tracing::warn!(
            state_dir = %shown.display(),
            "no --state-dir, $STATE_DIRECTORY, $XDG_STATE_HOME or $HOME: using {} in the \
             current directory; the journal there holds the only backups of deleted groups, \
             keep it",
            shown.display()
        );
    }
    dir
}

/// [`resolve`] over an environment lookup, so it can be tested without touching the process
/// environment.
pub fn resolve_with(
    explicit: Option<PathBuf>,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> PathBuf {
    if let Some(dir) = explicit {
        return dir;
    }
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(dirs) = non_empty("STATE_DIRECTORY")
        && let Some(first) = std::env::split_paths(&dirs).next()
    {
        return first;
    }
    if let Some(state) = non_empty("XDG_STATE_HOME") {
        return PathBuf::from(state).join("cfgroups");
    }
    if let Some(home) = non_empty("HOME") {
        return PathBuf::from(home).join(".local/state/cfgroups");
    }
    PathBuf::from(FALLBACK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn precedence_is_flag_systemd_xdg_home() {
        let all = [
            ("STATE_DIRECTORY", "/var/lib/cfgroups:/var/lib/other"),
            ("XDG_STATE_HOME", "/x"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(
            resolve_with(Some("/flag".into()), env(&all)),
            PathBuf::from("/flag")
        );
        assert_eq!(
            resolve_with(None, env(&all)),
            PathBuf::from("/var/lib/cfgroups")
        );
        assert_eq!(
            resolve_with(None, env(&all[1..])),
            PathBuf::from("/x/cfgroups")
        );
        assert_eq!(
            resolve_with(None, env(&all[2..])),
            PathBuf::from("/home/u/.local/state/cfgroups")
        );
        assert_eq!(resolve_with(None, env(&[])), PathBuf::from(".cfgroups"));
    }
}
