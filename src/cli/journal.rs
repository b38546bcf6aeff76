//! `journal` and `restore`: reading what was deleted, and recreating it.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::output::print_out;
use super::{JournalArgs, JournalFormat, Outcome, RestoreArgs, StateArgs, connect};
use crate::journal::{self, JOURNAL_FILE, Journal, Outcome as JournalOutcome, Record};
use crate::model::{AccountId, GroupId};
use crate::state_dir;

fn journal_path(explicit: &Option<PathBuf>, state: &StateArgs) -> PathBuf {
    explicit
        .clone()
        .unwrap_or_else(|| state_dir::resolve(state.state_dir.clone()).join(JOURNAL_FILE))
}

pub fn show(args: &JournalArgs) -> anyhow::Result<Outcome> {
    let path = journal_path(&args.journal, &args.state);
    let contents = journal::read(&path)?;
    let wanted =
        |account: &crate::model::AccountId| args.account.as_ref().is_none_or(|a| a == account);
    let records = contents.records.iter().filter(|record| match record {
        Record::Intent { account, .. }
        | Record::Outcome { account, .. }
        | Record::Restore { account, .. } => wanted(account),
    });
    let mut text = String::new();
    match args.output {
        JournalFormat::Json => {
            for record in records {
                text.push_str(&serde_json::to_string(record)?);
                text.push('\n');
            }
        }
        JournalFormat::Text => {
            let outcomes = contents.latest_outcomes();
            for record in records.filter(|r| !matches!(r, Record::Outcome { .. })) {
                text.push_str(&describe(record, &outcomes));
                text.push('\n');
            }
            if text.is_empty() {
                text = format!("No deletions recorded in {}.\n", path.display());
            }
        }
    }
    print_out(&text)?;
    Ok(Outcome::Success)
}

fn describe(record: &Record, outcomes: &HashMap<(&str, &GroupId), &JournalOutcome>) -> String {
    match record {
        Record::Intent {
            at,
            run,
            account,
            group,
            members,
        } => {
            // The latest word: a failed delete may be settled later by a listing.
            let outcome = outcomes
                .get(&(run.as_str(), &group.id))
                .map(|outcome| format!("{outcome:?}"))
                .unwrap_or_else(|| "NO OUTCOME (interrupted)".to_owned());
            let members = members
                .as_ref()
                .map(|m| format!("{} member(s) backed up", m.len()))
                .unwrap_or_else(|| "members not backed up".to_owned());
            format!(
                "{at}  run {run}  account {account}  delete {} {:?}: {outcome}; {members}",
                group.id, group.name
            )
        }
        Record::Outcome {
            at, run, group_id, ..
        } => format!("{at}  run {run}  outcome for {group_id}"),
        Record::Restore {
            at,
            run,
            account,
            group_id,
            new_group_id,
            members_restored,
        } => {
            let members = if *members_restored {
                ""
            } else {
                " (members not added yet)"
            };
            format!(
                "{at}  run {run}  account {account}  restore {group_id} as {new_group_id}{members}"
            )
        }
    }
}

/// The policies of a listed group, reduced to what the create endpoint accepts.
fn creatable_policies(policies: Option<&Value>) -> Value {
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

/// What a restore has left to do for a group, from the journal.
#[derive(Debug, PartialEq, Eq)]
enum RestoreStep {
    /// Create the group, then add its members.
    Create,
    /// The group was recreated as this id but its members were never added: add them only.
    AddMembers(GroupId),
}

/// Decides what restoring `group` (backed up by the intent of `run`) may do: only a group
/// whose deletion is recorded as done, and only once unless `again`; a restore that stopped
/// after creating the group is finished instead of repeated.
fn restore_step(
    contents: &journal::Contents,
    run: &str,
    account: &AccountId,
    group: &GroupId,
    again: bool,
) -> anyhow::Result<RestoreStep> {
    match contents.latest_outcome(run, group) {
        Some(JournalOutcome::Deleted | JournalOutcome::AlreadyAbsent) => {}
        Some(JournalOutcome::Failed { error }) => bail!(
            "group {group} was not deleted (its last recorded outcome is failed: {error}); \
             nothing to restore. If it is gone all the same, the next `apply` (or daemon \
             reconcile) records that from a fresh listing"
        ),
        None => bail!(
            "group {group} was not deleted (its last recorded outcome is missing: the \
             deletion was interrupted); nothing to restore. The next `apply` (or daemon \
             reconcile) settles it from a fresh listing"
        ),
    }
    match contents.latest_restore(account, group) {
        Some(Record::Restore {
            new_group_id,
            members_restored: false,
            ..
        }) if !again => Ok(RestoreStep::AddMembers(new_group_id.clone())),
        Some(Record::Restore { new_group_id, .. }) if !again => bail!(
            "group {group} was already restored as {new_group_id}; pass --again to create \
             another copy"
        ),
        _ => Ok(RestoreStep::Create),
    }
}

pub async fn restore(args: &RestoreArgs) -> anyhow::Result<Outcome> {
    let path = journal_path(&args.journal, &args.state);
    let contents = journal::read(&path)?;
    let Some(Record::Intent {
        run,
        account,
        group,
        members,
        ..
    }) = contents.backup_of(&args.group)
    else {
        bail!("no backup of group {} in {}", args.group, path.display());
    };
    let step = restore_step(&contents, run, account, &group.id, args.again)?;
    // Opened before anything is created: a restore that cannot be recorded is not started.
    let journal = Journal::open(&path)?;
    let run = journal::new_run_id();
    let record = |new_group_id: &GroupId, members_restored: bool| Record::Restore {
        at: journal::now(),
        run: run.clone(),
        account: account.clone(),
        group_id: group.id.clone(),
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
    let client = connect::client(&args.api)?;
    let new_id = match step {
        RestoreStep::AddMembers(new_id) => {
            eprintln!(
                "Group {} was already recreated as {new_id}, without its members: adding them.",
                group.id
            );
            new_id
        }
        RestoreStep::Create => {
            let created = client
                .create_group(
                    account,
                    &group.name,
                    creatable_policies(group.policies.as_ref()),
                )
                .await
                .with_context(|| format!("cannot recreate group {:?}", group.name))?;
            journal
                .append(&record(&created.id, finished_on_create))
                .with_context(|| {
                    format!(
                        "group {:?} was recreated as {} but the journal could not record it",
                        group.name, created.id
                    )
                })?;
            created.id
        }
    };
    if !member_ids.is_empty() {
        client
            .add_members(account, &new_id, &member_ids)
            .await
            .with_context(|| {
                format!(
                    "group {:?} was recreated as {new_id} but its members could not be added; \
                     re-run `cfgroups restore --group {}` to add them to {new_id}",
                    group.name, group.id
                )
            })?;
    }
    if !finished_on_create {
        journal.append(&record(&new_id, true))?;
    }
    if members.is_none() {
        eprintln!("The backup has no members (it was taken with --no-backup-members).");
    }
    print_out(&format!(
        "Restored group {:?} in account {account} as {new_id} with {} member(s).\n",
        group.name,
        member_ids.len()
    ))?;
    Ok(Outcome::Success)
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
