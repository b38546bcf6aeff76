//! One line of the journal: a deletion's intent with its backup (or a reference to an
//! identical backup journaled earlier), the deletion's outcome, or a restore's start and
//! end; the backup's hash; and the run ids and timestamps that tie them together.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::model::{AccountId, DeletionOutcome, GroupId, ObservedGroup};

/// One line of the journal.
///
/// `#[serde(remote = "Self")]` makes the derives inherent functions, wrapped by the trait
/// impls below: an intent cannot be read through `serde(tag)`, which buffers the line in a
/// format-neutral tree that holds neither raw JSON text (the group's policies) nor numbers
/// beyond a float's range, so intents are read by a path of their own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// About to delete `group`; everything needed to recreate it.
    #[serde(skip_deserializing)]
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

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Record::serialize(self, serializer)
    }
}

/// An intent line: its fields read straight from the text, `type` ignored.
#[derive(Deserialize)]
struct IntentLine {
    at: String,
    run: String,
    account: AccountId,
    group: ObservedGroup,
    members: Option<Vec<Value>>,
    #[serde(default)]
    backup_sha256: Option<String>,
}

/// Just the `type` of a line; the rest is skipped unread.
#[derive(Deserialize)]
struct Kind {
    #[serde(rename = "type")]
    kind: String,
}

/// Reads the line as text (JSON only), looks at its `type`, then reads it again as that
/// kind of record: intents straight into their fields, the others through the derive.
impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let line = <&RawValue>::deserialize(deserializer)?;
        let text = line.get();
        let kind: Kind = serde_json::from_str(text).map_err(de::Error::custom)?;
        if kind.kind == "intent" {
            let IntentLine {
                at,
                run,
                account,
                group,
                members,
                backup_sha256,
            } = serde_json::from_str(text).map_err(de::Error::custom)?;
            Ok(Record::Intent {
                at,
                run,
                account,
                group,
                members,
                backup_sha256,
            })
        } else {
            Record::deserialize(&mut serde_json::Deserializer::from_str(text))
                .map_err(de::Error::custom)
        }
    }
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

    #[test]
    fn every_kind_of_record_round_trips_with_raw_policies() {
        let policies = r#"[{"access":"allow","n":1e400,"big":123456789012345678901234567890}]"#;
        let group = ObservedGroup {
            id: "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a".parse().unwrap(),
            name: "Équipe".into(),
            created_on: None,
            modified_on: None,
            policies: Some(RawValue::from_string(policies.to_owned()).unwrap()),
        };
        let account: AccountId = "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap();
        let members = Some(vec![serde_json::json!({"id": "m"})]);
        let records = [
            Record::Intent {
                at: now(),
                run: "r".into(),
                account: account.clone(),
                group: group.clone(),
                backup_sha256: Some(backup_sha256(&group, members.as_ref())),
                members,
            },
            Record::IntentRef {
                at: now(),
                run: "r".into(),
                account: account.clone(),
                group_id: group.id.clone(),
                name: group.name.clone(),
                backup_sha256: "00".into(),
            },
            Record::Outcome {
                at: now(),
                run: "r".into(),
                account: account.clone(),
                group_id: group.id.clone(),
                outcome: DeletionOutcome::Failed {
                    error: "x".into(),
                    refused: None,
                },
            },
            Record::RestoreStarted {
                at: now(),
                run: "r".into(),
                account: account.clone(),
                group_id: group.id.clone(),
                name: group.name.clone(),
            },
            Record::Restore {
                at: now(),
                run: "r".into(),
                account,
                group_id: group.id.clone(),
                new_group_id: group.id.clone(),
                members_restored: false,
            },
        ];
        for record in records {
            let line = serde_json::to_string(&record).unwrap();
            assert!(line.contains(r#""type":"#), "{line}");
            assert_eq!(
                serde_json::from_str::<Record>(&line).unwrap(),
                record,
                "{line}"
            );
            assert_eq!(
                serde_json::from_slice::<Record>(line.as_bytes()).unwrap(),
                record
            );
        }
        let err = serde_json::from_str::<Record>(r#"{"type":"other"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }
}
