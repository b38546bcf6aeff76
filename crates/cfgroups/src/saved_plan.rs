//! Saved plans: `plan --out FILE` records exactly which groups a reviewed plan deletes, and
//! `apply --plan FILE` acts only when a fresh plan deletes exactly those — the reviewed-plan
//! workflow of GitOps repositories.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::model::{AccountId, GroupId};
use crate::plan::Plan;

/// The saved-plan format version.
pub const SAVED_PLAN_FORMAT_VERSION: u32 = 1;

/// One reviewed deletion.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Deletion {
    pub account: AccountId,
    pub id: GroupId,
    pub name: String,
}

/// What `plan --out` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    /// The hash of the desired state the plan was made from. `apply --plan` compares the
    /// deletions, not this: a different hash with identical deletions is only a warning.
    pub config_hash: String,
    /// SHA-256 over the sorted deletions, unkeyed: it detects corruption and accidental
    /// edits, not deliberate tampering (anyone who can edit the file can recompute it).
    pub checksum: String,
    pub deletions: Vec<Deletion>,
}

#[derive(Debug, Error)]
pub enum SavedPlanError {
    #[error("cannot read saved plan {path}: {message}")]
    Read { path: String, message: String },
    #[error("cannot write saved plan {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("saved plan {path}: its checksum does not match its deletions (edited or corrupted)")]
    Checksum { path: String },
    #[error("saved plan {path}: unsupported format_version {found}")]
    Version { path: String, found: u32 },
}

/// The deletions of a plan, sorted.
pub fn deletions(plan: &Plan) -> Vec<Deletion> {
    let set: BTreeSet<Deletion> = plan
        .deletions()
        .map(|(account, group)| Deletion {
            account: account.clone(),
            id: group.id.clone(),
            name: group.name.clone(),
        })
        .collect();
    set.into_iter().collect()
}

fn checksum(deletions: &[Deletion]) -> String {
    let mut hasher = Sha256::new();
    for deletion in deletions {
        hasher.update(deletion.account.as_str());
        hasher.update(b"/");
        hasher.update(deletion.id.as_str());
        hasher.update(b"/");
        hasher.update(deletion.name.as_bytes());
        hasher.update(b"\n");
    }
    format!("{:x}", hasher.finalize())
}

impl SavedPlan {
    pub fn new(plan: &Plan, config_hash: &str) -> Self {
        let deletions = deletions(plan);
        Self {
            format_version: SAVED_PLAN_FORMAT_VERSION,
            config_hash: config_hash.to_owned(),
            checksum: checksum(&deletions),
            deletions,
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), SavedPlanError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| SavedPlanError::Write {
            path: path.display().to_string(),
            source: e.into(),
        })?;
        text.push('\n');
        std::fs::write(path, text).map_err(|source| SavedPlanError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn load(path: &Path) -> Result<Self, SavedPlanError> {
        let shown = path.display().to_string();
        let read_error = |message: String| SavedPlanError::Read {
            path: shown.clone(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
        let saved: SavedPlan =
            serde_json::from_str(&text).map_err(|e| read_error(e.to_string()))?;
        if saved.format_version != SAVED_PLAN_FORMAT_VERSION {
            return Err(SavedPlanError::Version {
                path: shown,
                found: saved.format_version,
            });
        }
        if checksum(&saved.deletions) != saved.checksum {
            return Err(SavedPlanError::Checksum { path: shown });
        }
        Ok(saved)
    }

    /// How a fresh plan's deletions differ from the reviewed ones; empty when identical.
    pub fn difference(&self, fresh: &[Deletion]) -> Vec<String> {
        let reviewed: BTreeSet<&Deletion> = self.deletions.iter().collect();
        let fresh: BTreeSet<&Deletion> = fresh.iter().collect();
        let line = |sign: char, d: &Deletion, why: &str| {
            format!("{sign} {} {} {:?} ({why})", d.account, d.id, d.name)
        };
        let mut lines: Vec<String> = fresh
            .difference(&reviewed)
            .map(|d| line('+', d, "would now be deleted, not reviewed"))
            .collect();
        lines.extend(
            reviewed
                .difference(&fresh)
                .map(|d| line('-', d, "reviewed, no longer planned")),
        );
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deletion(n: u8, name: &str) -> Deletion {
        Deletion {
            account: "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap(),
            id: format!("{n:032x}").parse().unwrap(),
            name: name.into(),
        }
    }

    fn saved(deletions: Vec<Deletion>) -> SavedPlan {
        SavedPlan {
            format_version: 1,
            config_hash: "h".into(),
            checksum: checksum(&deletions),
            deletions,
        }
    }

    #[test]
    fn identical_deletions_have_no_difference() {
        let plan = saved(vec![deletion(1, "a"), deletion(2, "b")]);
        assert!(
            plan.difference(&[deletion(1, "a"), deletion(2, "b")])
                .is_empty()
        );
    }

    #[test]
    fn added_removed_and_renamed_deletions_are_shown() {
        let plan = saved(vec![deletion(1, "a"), deletion(2, "b")]);
        let diff = plan.difference(&[deletion(1, "a renamed"), deletion(3, "c")]);
        assert_eq!(diff.len(), 4, "{diff:?}");
        assert!(
            diff.iter()
                .any(|l| l.starts_with('+') && l.contains("\"c\""))
        );
        assert!(
            diff.iter()
                .any(|l| l.starts_with('-') && l.contains("\"b\""))
        );
    }

    #[test]
    fn a_tampered_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        saved(vec![deletion(1, "a")]).save(&path).unwrap();
        assert!(SavedPlan::load(&path).is_ok());
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace(
                "00000000000000000000000000000001",
                "00000000000000000000000000000002",
            ),
        )
        .unwrap();
        assert!(matches!(
            SavedPlan::load(&path),
            Err(SavedPlanError::Checksum { .. })
        ));
    }
}
