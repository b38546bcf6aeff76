//! One line of the journal: a deletion's intent with its backup (or a reference to an
//! identical backup journaled earlier), the deletion's outcome, or a restore's start and
//! end; the backup's hash; and the run ids and timestamps that tie them together.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

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
        members: Option<Vec<Value>>,
        /// [`backup_sha256`] of `group` and `members`: what a later [`Record::IntentRef`]
        /// names. Absent from records written before it existed (readers compute it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backup_sha256: Option<String>,
    },
    /// About to delete `group_id`, whose backup is byte-identical to the latest full
    /// [`Record::Intent`] of the same group, the one whose `backup_sha256` this names: a
    /// group Cloudflare refuses to delete (SCIM-managed) is journaled every cycle, and its
    /// backup is not written again each time.
    IntentRef {
        at: String,
        run: String,
        account: AccountId,
        group_id: GroupId,
        /// The group's name, for people reading the journal.
        name: String,
        backup_sha256: String,
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
    /// A restore of `group_id` is about to create the group: written and synced before the
    /// create request, so that if its answer is lost, the next restore knows the group may
    /// exist and looks for it before creating another.
    RestoreStarted {
        at: String,
        run: String,
        account: AccountId,
        group_id: GroupId,
        /// The name the group is created with.
        name: String,
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
            | Record::IntentRef { run, .. }
            | Record::Outcome { run, .. }
            | Record::RestoreStarted { run, .. }
            | Record::Restore { run, .. } => run,
        }
    }

    pub fn account(&self) -> &AccountId {
        match self {
            Record::Intent { account, .. }
            | Record::IntentRef { account, .. }
            | Record::Outcome { account, .. }
            | Record::RestoreStarted { account, .. }
            | Record::Restore { account, .. } => account,
        }
    }

    /// The group a record is about (the deleted group's id, for restores too).
    pub fn group_id(&self) -> &GroupId {
        match self {
            Record::Intent { group, .. } => &group.id,
            Record::IntentRef { group_id, .. }
            | Record::Outcome { group_id, .. }
            | Record::RestoreStarted { group_id, .. }
            | Record::Restore { group_id, .. } => group_id,
        }
    }

    /// Whether the record announces a deletion (with its backup or a reference to one).
    pub fn is_intent(&self) -> bool {
        matches!(self, Record::Intent { .. } | Record::IntentRef { .. })
    }
}

/// The SHA-256 (lowercase hex) of a backup, `group` and `members` as the journal writes
/// them: two backups with the same hash are byte-identical.
pub fn backup_sha256(group: &ObservedGroup, members: Option<&Vec<Value>>) -> String {
    #[derive(Serialize)]
    struct Backup<'a> {
        group: &'a ObservedGroup,
        members: Option<&'a Vec<Value>>,
    }
    let bytes = serde_json::to_vec(&Backup { group, members }).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
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
