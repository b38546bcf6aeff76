//! The snapshot format (what `export --snapshot` writes and `--source snapshot:FILE` reads)
//! and the source that serves listings from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::document::{self, Document, Keep};
use super::{GroupSource, ListingError};
use crate::model::{AccountId, ObservedGroup};

/// The only snapshot format version this build reads and writes.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// Every group of some accounts at one moment, as Cloudflare listed them.
///
/// Serialize it with serde_json: the groups' `policies` are raw JSON text (see
/// [`ObservedGroup`]). Reading goes through [`Snapshot::parse`], which also reads YAML.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub format_version: u32,
    pub accounts: BTreeMap<AccountId, SnapshotAccount>,
}

/// One account's groups: the `result` items of its listing, unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotAccount {
    pub groups: Vec<ObservedGroup>,
}

/// Why a snapshot could not be read.
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("cannot read snapshot {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error(
        "{origin}: unsupported format_version {found} (this build reads {SNAPSHOT_FORMAT_VERSION})"
    )]
    Version { origin: String, found: u32 },
}

impl Snapshot {
    /// Parses snapshot text: JSON when it starts with `{`, YAML otherwise (a slower path:
    /// its policies are read as a tree and written back as JSON text). `origin` names the
    /// text in errors (a path, or the command that printed it).
    pub fn parse(text: &str, origin: &str) -> Result<Self, SnapshotError> {
        Self::from_document(document::parse(text, origin, Keep::All)?, origin)
    }

    fn from_document(parsed: Document, origin: &str) -> Result<Self, SnapshotError> {
        match (parsed.format_version, parsed.accounts) {
            (Some(format_version), Some(accounts)) => Ok(Self {
                format_version,
                accounts,
            }),
            (_, None) => Err(SnapshotError::Parse {
                origin: origin.to_owned(),
                message: "missing field `accounts`".to_owned(),
            }),
            // `Document::check_version` refuses a snapshot without a version.
            (None, Some(_)) => Err(SnapshotError::Parse {
                origin: origin.to_owned(),
                message: "missing field `format_version`".to_owned(),
            }),
        }
    }

    /// Reads and parses a snapshot file; JSON is read as it streams from the file.
    pub fn load(path: &Path) -> Result<Self, SnapshotError> {
        Self::from_document(
            document::load(path, Keep::All)?,
            &path.display().to_string(),
        )
    }
}

/// Serves listings from a snapshot read once at start.
///
/// Each account's groups are handed over, not copied, the first time the account is listed
/// (every command lists each account once), so the snapshot is never held twice. Listing
/// an account again reads that account from the file again.
#[derive(Debug)]
pub struct SnapshotSource {
    path: PathBuf,
    unlisted: Mutex<BTreeMap<AccountId, Vec<ObservedGroup>>>,
}

impl SnapshotSource {
    pub fn open(path: &Path) -> Result<Self, SnapshotError> {
        Ok(Self {
            path: path.to_owned(),
            unlisted: Mutex::new(
                Snapshot::load(path)?
                    .accounts
                    .into_iter()
                    .map(|(id, entry)| (id, entry.groups))
                    .collect(),
            ),
        })
    }

    /// One account's groups, read from the file again.
    fn reread(&self, account: &AccountId) -> Result<Option<Vec<ObservedGroup>>, SnapshotError> {
        let mut parsed = document::load(&self.path, Keep::Only(account))?;
        Ok(parsed
            .accounts
            .as_mut()
            .and_then(|accounts| accounts.remove(account))
            .map(|entry| entry.groups))
    }
}

impl GroupSource for SnapshotSource {
    fn describe(&self) -> String {
        format!("snapshot:{}", self.path.display())
    }

    async fn list(&self, account: &AccountId) -> Result<Vec<ObservedGroup>, ListingError> {
        let first = self
            .unlisted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(account);
        let groups = match first {
            Some(groups) => Some(groups),
            None => self.reread(account)?,
        };
        groups.ok_or_else(|| ListingError::NotInSnapshot {
            account: account.clone(),
            path: self.path.display().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    #[test]
    fn json_and_yaml_snapshots_parse_alike() {
        let json = format!(
            r#"{{"format_version":1,"accounts":{{"{ACCOUNT}":{{"groups":[
                {{"id":"3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a","name":"Ops","created_on":"2024-03-01T12:21:02Z","modified_on":"2024-03-01T12:21:02Z"}}]}}}}}}"#
        );
        let yaml = format!(
            "format_version: 1\naccounts:\n  \"{ACCOUNT}\":\n    groups:\n      - id: 3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a\n        name: Ops\n        created_on: \"2024-03-01T12:21:02Z\"\n        modified_on: \"2024-03-01T12:21:02Z\"\n"
        );
        let a = Snapshot::parse(&json, "a.json").unwrap();
        let b = Snapshot::parse(&yaml, "b.yaml").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn errors_name_the_field_and_position() {
        let json = format!(
            r#"{{"format_version":1,"accounts":{{"{ACCOUNT}":{{"groups":[
{{"id":"not-an-id","name":"Ops"}}]}}}}}}"#
        );
        let err = Snapshot::parse(&json, "s.json").unwrap_err().to_string();
        assert!(err.starts_with("s.json: line 2 column"), "{err}");
        assert!(err.contains("groups[0].id"), "{err}");
        assert!(err.contains("not 32 lowercase hexadecimal"), "{err}");
    }

    #[tokio::test]
    async fn an_account_listed_twice_is_read_again_and_an_unknown_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(
            &path,
            format!(
                r#"{{"format_version":1,"accounts":{{"{ACCOUNT}":{{"groups":[
                {{"id":"3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a","name":"Ops","policies":[{{"n":1e400}}]}}]}}}}}}"#
            ),
        )
        .unwrap();
        let source = SnapshotSource::open(&path).unwrap();
        let account: AccountId = ACCOUNT.parse().unwrap();
        let first = source.list(&account).await.unwrap();
        let again = source.list(&account).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(first.len(), 1);
        let other: AccountId = "123e105f4ecef8ad9ca31a8372d0c353".parse().unwrap();
        assert!(matches!(
            source.list(&other).await,
            Err(ListingError::NotInSnapshot { .. })
        ));
    }

    #[test]
    fn refuses_other_format_versions() {
        let err = Snapshot::parse(r#"{"format_version":2,"accounts":{}}"#, "s.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported format_version 2"), "{err}");
        let err = Snapshot::parse(r#"{"format_version":1}"#, "s.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `accounts`"), "{err}");
    }
}
