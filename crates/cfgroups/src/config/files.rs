//! Which files make up the desired state, and reading them: `--config` names one file, or a
//! directory whose `*.yaml` and `*.yml` files (sorted, not recursive) are read together.
//!
//! In a directory, an entry that looks like part of the desired state is read or refused,
//! never skipped: a file of the desired state that silently goes unread is a set of
//! declarations (`absent`, `protect`) that silently stops applying. So each of these is an
//! error naming the entry:
//! - a `*.yaml`/`*.yml` symlink that is broken or loops;
//! - a directory (or a FIFO, socket or device) named `*.yaml`/`*.yml`;
//! - a file whose extension is `.yaml` or `.yml` in another case (`prod.YAML`): Kubernetes,
//!   editors and most tools read only the lowercase names, so rather than guess, cfgroups
//!   asks for a rename.
//!
//! Skipped without a word: hidden entries (a leading `.`: editors' swap files, a ConfigMap
//! mount's `..data` internals) and files with other extensions (`README.md`).

use std::path::{Path, PathBuf};

use super::error::ConfigError;

/// The largest desired-state file read: 100,000 declared groups take about 5 MiB, and a
/// bigger file would cost several times its size in memory while parsing.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// What a leading UTF-8 byte order mark is; some Windows editors write one.
const BOM: char = '\u{feff}';

/// The files `path` stands for, and every entry refused on the way. An error here is for the
/// whole path (it cannot be read or listed, or a directory holds nothing to read).
pub(super) fn config_files(path: &Path) -> Result<(Vec<PathBuf>, Vec<ConfigError>), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|e| whole(path, describe_unreadable(path, &e)))?;
    if meta.is_file() {
        return Ok((vec![path.to_owned()], Vec::new()));
    }
    if !meta.is_dir() {
        return Err(whole(
            path,
            "not a regular file or a directory (a FIFO, socket or device is never read)".to_owned(),
        ));
    }
    let entries = std::fs::read_dir(path).map_err(|e| whole(path, format!("cannot list: {e}")))?;
    let mut files = Vec::new();
    let mut refused = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| whole(path, format!("cannot list: {e}")))?;
        let file = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        match Extension::of(&file) {
            Extension::Other => {}
            Extension::WrongCase(ext) => refused.push(whole(
                &file,
                format!(
                    "the extension .{ext} is not read: only lowercase .yaml and .yml are; rename \
                     it to {}",
                    lowercase_name(&name, &ext)
                ),
            )),
            Extension::Yaml => match std::fs::metadata(&file) {
                Ok(meta) if meta.is_file() => files.push(file),
                Ok(meta) if meta.is_dir() => refused.push(whole(
                    &file,
                    "a directory named like a config file; config directories are not read \
                     recursively (move its files up, or rename it)"
                        .to_owned(),
                )),
                Ok(_) => refused.push(whole(
                    &file,
                    "not a regular file (a FIFO, socket or device is never read)".to_owned(),
                )),
                Err(e) => refused.push(whole(&file, describe_unreadable(&file, &e))),
            },
        }
    }
    files.sort();
    refused.sort_by(|a, b| a.file.cmp(&b.file));
    if files.is_empty() && refused.is_empty() {
        return Err(whole(
            path,
            "directory has no *.yaml or *.yml files".to_owned(),
        ));
    }
    Ok((files, refused))
}

/// Reads one file as UTF-8 text, refusing one over [`MAX_FILE_BYTES`].
pub(super) fn read_text(file: &Path) -> Result<String, ConfigError> {
    let size = std::fs::metadata(file)
        .map_err(|e| whole(file, describe_unreadable(file, &e)))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(whole(
            file,
            format!(
                "the file is {size} bytes; a desired-state file may be at most {MAX_FILE_BYTES} \
                 bytes (split it into a directory of files)"
            ),
        ));
    }
    let bytes = std::fs::read(file).map_err(|e| whole(file, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        whole(
            file,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// `text` without a leading UTF-8 byte order mark: YAML allows one, and the parser would
/// otherwise take it for the start of a second document.
pub(super) fn strip_bom(text: &str) -> &str {
    text.strip_prefix(BOM).unwrap_or(text)
}

enum Extension {
    /// `.yaml` or `.yml`.
    Yaml,
    /// `.yaml` or `.yml` in another case; the extension as written.
    WrongCase(String),
    Other,
}

impl Extension {
    fn of(file: &Path) -> Self {
        let Some(ext) = file.extension() else {
            return Self::Other;
        };
        let ext = ext.to_string_lossy();
        if ext == "yaml" || ext == "yml" {
            Self::Yaml
        } else if ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml") {
            Self::WrongCase(ext.into_owned())
        } else {
            Self::Other
        }
    }
}

fn lowercase_name(name: &str, ext: &str) -> String {
    let stem = &name[..name.len() - ext.len()];
    format!("{stem}{}", ext.to_ascii_lowercase())
}

/// Why `path` cannot be read, naming a broken or looping symlink as such.
fn describe_unreadable(path: &Path, error: &std::io::Error) -> String {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return format!("cannot read: {error}");
    }
    let target = std::fs::read_link(path)
        .map(|t| format!(" (to {})", t.display()))
        .unwrap_or_default();
    if error.kind() == std::io::ErrorKind::NotFound {
        format!("a broken symbolic link{target}: its target does not exist")
    } else {
        format!("cannot read the symbolic link{target}: {error}")
    }
}

fn whole(file: &Path, message: String) -> ConfigError {
    ConfigError {
        file: file.to_owned(),
        position: None,
        field: None,
        message,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use tempfile::TempDir;

    use super::*;

    const GOOD: &str = "version: 1\naccounts:\n  - id: 023e105f4ecef8ad9ca31a8372d0c353\n";

    fn messages(dir: &Path) -> Vec<String> {
        let (_, refused) = config_files(dir).unwrap();
        refused.iter().map(ToString::to_string).collect()
    }

    fn with_good_file() -> TempDir {
        let tmp = TempDir::new().unwrap();
        fs::write(tmp.path().join("good.yaml"), GOOD).unwrap();
        tmp
    }

    #[test]
    fn a_broken_symlink_is_refused_not_skipped() {
        let tmp = with_good_file();
        symlink("gone.yaml", tmp.path().join("staging.yaml")).unwrap();
        let shown = messages(tmp.path());
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(
            shown[0].contains("staging.yaml: a broken symbolic link (to gone.yaml)"),
            "{shown:?}"
        );
    }

    #[test]
    fn a_symlink_loop_is_refused_not_skipped() {
        let tmp = with_good_file();
        symlink("b.yaml", tmp.path().join("a.yaml")).unwrap();
        symlink("a.yaml", tmp.path().join("b.yaml")).unwrap();
        let shown = messages(tmp.path());
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown[0].contains("a.yaml: cannot read the symbolic link (to b.yaml)"),
            "{shown:?}"
        );
        assert!(
            shown[1].contains("b.yaml: cannot read the symbolic link (to a.yaml)"),
            "{shown:?}"
        );
    }

    #[test]
    fn a_directory_named_like_a_config_file_is_refused() {
        let tmp = with_good_file();
        fs::create_dir(tmp.path().join("production.yaml")).unwrap();
        fs::write(tmp.path().join("production.yaml").join("inner.yaml"), GOOD).unwrap();
        let shown = messages(tmp.path());
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(
            shown[0].contains("production.yaml: a directory named like a config file"),
            "{shown:?}"
        );
    }

    #[test]
    fn an_extension_in_another_case_is_refused_with_the_name_to_use() {
        let tmp = with_good_file();
        fs::write(tmp.path().join("prod.YAML"), GOOD).unwrap();
        fs::write(tmp.path().join("stage.Yml"), GOOD).unwrap();
        let shown = messages(tmp.path());
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown[0].contains("prod.YAML: the extension .YAML is not read"),
            "{shown:?}"
        );
        assert!(shown[0].contains("rename it to prod.yaml"), "{shown:?}");
        assert!(shown[1].contains("rename it to stage.yml"), "{shown:?}");
    }

    #[test]
    fn hidden_entries_and_other_extensions_are_skipped_and_good_files_read() {
        let tmp = with_good_file();
        fs::write(tmp.path().join("README.md"), "# configs").unwrap();
        fs::write(tmp.path().join(".good.yaml.swp"), "x").unwrap();
        symlink("..2026_11_28", tmp.path().join("..data")).unwrap();
        fs::write(tmp.path().join("b.yml"), GOOD).unwrap();
        let (files, refused) = config_files(tmp.path()).unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(
            files,
            [tmp.path().join("b.yml"), tmp.path().join("good.yaml")]
        );
    }

    #[test]
    fn a_directory_of_only_refused_entries_reports_them() {
        let tmp = TempDir::new().unwrap();
        symlink("gone.yaml", tmp.path().join("only.yaml")).unwrap();
        let (files, refused) = config_files(tmp.path()).unwrap();
        assert!(files.is_empty());
        assert_eq!(refused.len(), 1);
        let empty = TempDir::new().unwrap();
        let err = config_files(empty.path()).unwrap_err();
        assert!(err.message.contains("no *.yaml or *.yml files"), "{err}");
    }

    #[test]
    fn a_config_path_that_is_a_broken_symlink_says_so() {
        let tmp = TempDir::new().unwrap();
        let link = tmp.path().join("groups.yaml");
        symlink("..data/groups.yaml", &link).unwrap();
        let err = config_files(&link).unwrap_err();
        assert!(
            err.message
                .contains("a broken symbolic link (to ..data/groups.yaml)"),
            "{err}"
        );
    }

    #[test]
    fn a_bom_is_stripped_once() {
        assert_eq!(strip_bom("\u{feff}version: 1"), "version: 1");
        assert_eq!(strip_bom("version: 1"), "version: 1");
        assert_eq!(strip_bom("\u{feff}\u{feff}x"), "\u{feff}x");
    }
}
