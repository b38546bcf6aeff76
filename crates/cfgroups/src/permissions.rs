//! Warnings about files that should be private: a token file, and the state directory that
//! holds the journal's backups (member emails included).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The group/other permission bits of `path` when any is set, else `None` (also when the
/// path cannot be read: whoever reads it next reports that).
pub fn shared_bits(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    let shared = mode & 0o077;
    (shared != 0).then_some(shared)
}

/// Logs a warning when `path` (described as `what`) is accessible to other users.
pub fn warn_if_shared(path: &Path, what: &str) {
    if let Some(bits) = shared_bits(path) {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{bits:03o}"),
            "{what} is accessible to other users; `chmod go-rwx` it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_group_and_other_bits_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "secret").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(shared_bits(&file), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(shared_bits(&file), Some(0o044));
        assert_eq!(shared_bits(&dir.path().join("missing")), None);
    }
}
