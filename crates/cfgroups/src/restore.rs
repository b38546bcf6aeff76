//! Recreating a deleted group from its journal backup: deciding what is left to do (only a
//! group whose deletion is recorded as done, and only once unless asked again; a restore
//! that stopped after creating the group is finished, not repeated), then doing it through a
//! [`GroupWriter`], journaling the new group as soon as it exists.

use serde_json::{Value, json};
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
        Some(DeletionOutcome::Failed { error }) => {
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
            let created = writer
                .create_group(
                    account,
                    &backup.name,
                    creatable_policies(backup.policies.as_ref()),
                )
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

/// The policies of a listed group, reduced to what the create endpoint accepts.
pub fn creatable_policies(policies: Option<&Value>) -> Value {
    let ids = |list: Option<&Value>| -> Value {
        list.and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.get("id"))
                    .map(|id| json!({ "id": id }))
                    .collect()
            })
            .unwrap_or_default()
    };
    let policies = policies
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Value::Array(
        policies
            .iter()
            .map(|policy| {
                json!({
                    "access": policy.get("access").cloned().unwrap_or(json!("allow")),
                    "permission_groups": ids(policy.get("permission_groups")),
                    "resource_groups": ids(policy.get("resource_groups")),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_reduced_to_the_create_shape() {
        let listed = json!([{
            "id": "f267e341f3dd4697bd3b9f71dd96247f", "access": "deny",
            "permission_groups": [{"id": "p1", "name": "Admin", "meta": {"k": "v"}}],
            "resource_groups": [{"id": "r1", "scope": {"key": "k", "objects": []}}]
        }]);
        assert_eq!(
            creatable_policies(Some(&listed)),
            json!([{"access": "deny", "permission_groups": [{"id": "p1"}], "resource_groups": [{"id": "r1"}]}])
        );
        assert_eq!(creatable_policies(None), json!([]));
    }
}
