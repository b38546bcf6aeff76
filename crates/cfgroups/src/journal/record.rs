//! One line of the journal: a deletion's intent with its backup, the deletion's outcome,
//! or a restore; and the run ids and timestamps that tie them together.

use serde::{Deserialize, Serialize};

use crate::model::{AccountId, DeletionOutcome, GroupId, ObservedGroup};

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// About to delete `group`; everything needed to recreate it.
    Intent {
        at: String,
        run: String,
        account: AccountId,
        group: ObservedGroup,
        /// The group's members as Cloudflare listed them; `None` when the backup of
        /// members was turned off.
        members: Option<Vec<serde_json::Value>>,
    },
    /// What happened to the deletion announced by the intent of the same run and group.
    Outcome {
        at: String,
        run: String,
        account: AccountId,
        group_id: GroupId,
        #[serde(flatten)]
        outcome: DeletionOutcome,
    },
    /// A deleted group was recreated from its backup as `new_group_id`. Written as soon as
    /// the group exists, with `members_restored: false` while its members are still to be
    /// added, and again with `true` once they are.
    Restore {
        at: String,
        run: String,
        account: AccountId,
        group_id: GroupId,
        new_group_id: GroupId,
        /// Whether the backed-up members were added too. Records written before this field
        /// existed were written only after the members were added.
        #[serde(default = "members_restored_default")]
        members_restored: bool,
    },
}

fn members_restored_default() -> bool {
    true
}

impl Record {
    pub fn run(&self) -> &str {
        match self {
            Record::Intent { run, .. }
            | Record::Outcome { run, .. }
            | Record::Restore { run, .. } => run,
        }
    }
}

/// The current time as RFC 3339 UTC with seconds, for records.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// A new run id: the start time and the process id, unique enough to group a run's records.
pub fn new_run_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("{millis}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_record_without_members_restored_was_complete() {
        let line = r#"{"type":"restore","at":"2025-01-01T00:00:00Z","run":"r","account":"023e105f4ecef8ad9ca31a8372d0c353","group_id":"3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a","new_group_id":"4f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a"}"#;
        let record: Record = serde_json::from_str(line).unwrap();
        assert!(matches!(
            record,
            Record::Restore {
                members_restored: true,
                ..
            }
        ));
    }
}
