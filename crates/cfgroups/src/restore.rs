//! Recreating a deleted group from its journal backup: deciding what is left to do (only a
//! group whose deletion is recorded as done, and only once unless asked again; a restore
//! that stopped after creating the group is finished, not repeated), then doing it through a
//! [`GroupWriter`], journaling the new group as soon as it exists.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use thiserror::Error;

use crate::journal::{self, Contents, Journal, JournalError, Record};
use crate::model::{AccountId, DeletionOutcome, GroupId};
use crate::writer::{GroupWriter, WriteError};

/// Why a restore did not happen, or did not finish.
#[derive(Debug, Error)]
pub enum RestoreError {
    #[error("no backup of group {group} in {journal}")]
    NoBackup { group: GroupId, journal: String },
    #[error(
        "group {group} was not deleted (its last recorded outcome is failed: {error}); \
         nothing to restore. If it is gone all the same, the next `apply` (or daemon \
         reconcile) records that from a fresh listing"
    )]
    DeleteFailed { group: GroupId, error: String },
    #[error(
        "group {group} was not deleted (its last recorded outcome is missing: the \
         deletion was interrupted); nothing to restore. The next `apply` (or daemon \
         reconcile) settles it from a fresh listing"
    )]
    DeleteInterrupted { group: GroupId },
    #[error(
        "group {group} was already restored as {new_group_id}; pass --again to create \
         another copy"
    )]
    AlreadyRestored {
        group: GroupId,
        new_group_id: GroupId,
    },
    #[error("cannot read the backed-up policies of group {name:?}: {source}")]
    Policies {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot recreate group {name:?}: {source}")]
    Create {
        name: String,
        #[source]
        source: WriteError,
    },
    #[error(
        "group {name:?} was recreated as {new_group_id} but the journal could not record it: {source}"
    )]
    RecordCreated {
        name: String,
        new_group_id: GroupId,
        #[source]
        source: JournalError,
    },
    #[error(
        "group {name:?} was recreated as {new_group_id} but its members could not be added; \
         re-run `cfgroups restore --group {group}` to add them to {new_group_id}: {source}"
    )]
    AddMembers {
        name: String,
        group: GroupId,
        new_group_id: GroupId,
        #[source]
        source: WriteError,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// What a restore has left to do for a group, from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreStep {
    /// Create the group, then add its members.
    Create,
    /// The group was recreated as this id but its members were never added: add them only.
    AddMembers(GroupId),
}

/// A finished restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub account: AccountId,
    pub name: String,
    pub new_group_id: GroupId,
    /// Members added to the new group.
    pub members: usize,
    /// What this run did: create the group, or only finish an earlier restore's members.
    pub step: RestoreStep,
    /// Whether the backup carried members at all (not with `--no-backup-members`).
    pub members_backed_up: bool,
}

/// Decides what restoring `group` (backed up by the intent of `run`) may do.
pub fn restore_step(
    contents: &Contents,
    run: &str,
    account: &AccountId,
    group: &GroupId,
    again: bool,
) -> Result<RestoreStep, RestoreError> {
    match contents.latest_outcome(run, group) {
        Some(DeletionOutcome::Deleted | DeletionOutcome::AlreadyAbsent) => {}
        Some(DeletionOutcome::Failed { error } | DeletionOutcome::Moved { reason: error }) => {
            return Err(RestoreError::DeleteFailed {
                group: group.clone(),
                error: error.clone(),
            });
        }
        None => {
            return Err(RestoreError::DeleteInterrupted {
                group: group.clone(),
            });
        }
    }
    match contents.latest_restore(account, group) {
        Some(Record::Restore {
            new_group_id,
            members_restored: false,
            ..
        }) if !again => Ok(RestoreStep::AddMembers(new_group_id.clone())),
        Some(Record::Restore { new_group_id, .. }) if !again => {
            Err(RestoreError::AlreadyRestored {
                group: group.clone(),
                new_group_id: new_group_id.clone(),
            })
        }
        _ => Ok(RestoreStep::Create),
    }
}

/// Restores `group` from the latest backup in `journal`, creating it through `writer`.
/// The journal records the new group as soon as it exists, and again once its members are
/// added, so an interrupted restore is finished by running it again.
pub async fn restore<W: GroupWriter>(
    journal: &Journal,
    group: &GroupId,
    again: bool,
    writer: &W,
) -> Result<Restored, RestoreError> {
    let contents = journal::read(journal.path())?;
    let Some(Record::Intent {
        run,
        account,
        group: backup,
        members,
        ..
    }) = contents.backup_of(group)
    else {
        return Err(RestoreError::NoBackup {
            group: group.clone(),
            journal: journal.path().display().to_string(),
        });
    };
    let step = restore_step(&contents, run, account, &backup.id, again)?;
    let restore_run = journal::new_run_id();
    let record = |new_group_id: &GroupId, members_restored: bool| Record::Restore {
        at: journal::now(),
        run: restore_run.clone(),
        account: account.clone(),
        group_id: backup.id.clone(),
        new_group_id: new_group_id.clone(),
        members_restored,
    };
    let member_ids: Vec<String> = members
        .iter()
        .flatten()
        .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    // A group without members to add is finished as soon as it is created.
    let finished_on_create = step == RestoreStep::Create && member_ids.is_empty();
    let new_group_id = match &step {
        RestoreStep::AddMembers(new_group_id) => new_group_id.clone(),
        RestoreStep::Create => {
            let policies = creatable_policies(backup.policies.as_deref()).map_err(|source| {
                RestoreError::Policies {
                    name: backup.name.clone(),
                    source,
                }
            })?;
            let created = writer
                .create_group(account, &backup.name, &policies)
                .await
                .map_err(|source| RestoreError::Create {
                    name: backup.name.clone(),
                    source,
                })?;
            journal
                .append(&record(&created.id, finished_on_create))
                .map_err(|source| RestoreError::RecordCreated {
                    name: backup.name.clone(),
                    new_group_id: created.id.clone(),
                    source,
                })?;
            created.id
        }
    };
    if !member_ids.is_empty() {
        writer
            .add_members(account, &new_group_id, &member_ids)
            .await
            .map_err(|source| RestoreError::AddMembers {
                name: backup.name.clone(),
                group: backup.id.clone(),
                new_group_id: new_group_id.clone(),
                source,
            })?;
    }
    if !finished_on_create {
        journal.append(&record(&new_group_id, true))?;
    }
    Ok(Restored {
        account: account.clone(),
        name: backup.name.clone(),
        new_group_id,
        members: member_ids.len(),
        step,
        members_backed_up: members.is_some(),
    })
}

/// The policies of a listed group (the journal's raw JSON text), reduced to what the create
/// endpoint accepts: each policy's `access` (`allow` when it has none) and the ids of its
/// permission and resource groups, every value copied as the text it was. This is the only
/// place the backed-up policies are parsed, and what it parses is borrowed from the text:
/// unknown keys are skipped unread, and numbers outside any float's range do not matter.
pub fn creatable_policies(policies: Option<&RawValue>) -> Result<Box<RawValue>, serde_json::Error> {
    let listed: Vec<ListedPolicy<'_>> = match policies {
        Some(text) => Option::<Vec<ListedPolicy<'_>>>::deserialize(
            &mut serde_json::Deserializer::from_str(text.get()),
        )?
        .unwrap_or_default(),
        None => Vec::new(),
    };
    let allow = RawValue::from_string("\"allow\"".to_owned())?;
    let creatable: Vec<CreatablePolicy<'_>> = listed
        .into_iter()
        .map(|policy| CreatablePolicy {
            access: policy.access.unwrap_or(&allow),
            permission_groups: ids(policy.permission_groups),
            resource_groups: ids(policy.resource_groups),
        })
        .collect();
    serde_json::value::to_raw_value(&creatable)
}

/// The ids of listed permission or resource groups; groups without one are left out.
fn ids(groups: Option<Vec<WithId<'_>>>) -> Vec<IdOnly<'_>> {
    groups
        .into_iter()
        .flatten()
        .filter_map(|group| group.id.map(|id| IdOnly { id }))
        .collect()
}

/// A listed policy, as far as the create shape needs it.
#[derive(Deserialize)]
struct ListedPolicy<'a> {
    #[serde(borrow, default)]
    access: Option<&'a RawValue>,
    #[serde(borrow, default)]
    permission_groups: Option<Vec<WithId<'a>>>,
    #[serde(borrow, default)]
    resource_groups: Option<Vec<WithId<'a>>>,
}

/// A listed permission or resource group: only its id matters.
#[derive(Deserialize)]
struct WithId<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

/// A policy as the create endpoint takes it.
#[derive(Serialize)]
struct CreatablePolicy<'a> {
    access: &'a RawValue,
    permission_groups: Vec<IdOnly<'a>>,
    resource_groups: Vec<IdOnly<'a>>,
}

#[derive(Serialize)]
struct IdOnly<'a> {
    id: &'a RawValue,
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn creatable(listed: Option<&str>) -> Value {
        let raw = listed.map(|text| RawValue::from_string(text.to_owned()).unwrap());
        let text = creatable_policies(raw.as_deref()).unwrap();
        serde_json::from_str(text.get()).unwrap()
    }

    #[test]
    fn policies_are_reduced_to_the_create_shape() {
        let listed = r#"[{
            "id": "f267e341f3dd4697bd3b9f71dd96247f", "access": "deny",
            "permission_groups": [{"id": "p1", "name": "Admin", "meta": {"k": "v"}}],
            "resource_groups": [{"id": "r1", "scope": {"key": "k", "objects": []}},
                                {"id": "r2", "scope": [{"key": "k2", "objects": [{"key": "*"}]}]}]
        }, {"permission_groups": null, "resource_groups": [{"name": "no id"}]}]"#;
        assert_eq!(
            creatable(Some(listed)),
            json!([
                {"access": "deny", "permission_groups": [{"id": "p1"}],
                 "resource_groups": [{"id": "r1"}, {"id": "r2"}]},
                {"access": "allow", "permission_groups": [], "resource_groups": []}
            ])
        );
        assert_eq!(creatable(None), json!([]));
        assert_eq!(creatable(Some("null")), json!([]));
    }

    #[test]
    fn what_is_not_needed_is_not_read() {
        let listed = r#"[{"access":"allow","condition":{"n":1e400,"m":[1.0E-5,123456789012345678901234567890]},
            "permission_groups":[{"id":"p\u00e9","meta":{"x":-1e-400}}],"resource_groups":[]}]"#;
        let raw = RawValue::from_string(listed.to_owned()).unwrap();
        let text = creatable_policies(Some(&raw)).unwrap();
        assert_eq!(
            text.get(),
            r#"[{"access":"allow","permission_groups":[{"id":"p\u00e9"}],"resource_groups":[]}]"#
        );
    }

    #[test]
    fn policies_of_another_shape_are_an_error() {
        for listed in [
            r#"{"access":"allow"}"#,
            r#"["allow"]"#,
            r#"[{"access":"allow","permission_groups":"p1"}]"#,
        ] {
            let raw = RawValue::from_string(listed.to_owned()).unwrap();
            assert!(creatable_policies(Some(&raw)).is_err(), "{listed}");
        }
    }
}
