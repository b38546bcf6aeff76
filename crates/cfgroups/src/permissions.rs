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

/// A file mode as `chmod` and `ls -l` users read it: four octal digits, `0644`.
pub fn octal(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// Logs a warning when `path` (described as `what`) is accessible to other users, with its
/// whole mode (`0644`).
pub fn warn_if_shared(path: &Path, what: &str) {
    if shared_bits(path).is_some()
        && let Ok(metadata) = std::fs::metadata(path)
    {
        tracing::warn!(
            path = %path.display(),
            mode = octal(metadata.permissions().mode()),
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

    #[test]
    fn modes_read_as_chmod_writes_them() {
        assert_eq!(octal(0o100644), "0644");
        assert_eq!(octal(0o40755), "0755");
        assert_eq!(octal(0o600), "0600");
        assert_eq!(octal(0o4755), "4755");
    }
}
