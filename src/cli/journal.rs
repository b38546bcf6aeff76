//! `journal` and `restore`: reading what was deleted, and recreating it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::output::print_out;
use super::{JournalArgs, JournalFormat, Outcome, RestoreArgs, StateArgs, connect};
use std::collections::HashMap;

use crate::journal::{self, JOURNAL_FILE, Journal, Record};
use crate::model::GroupId;
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

fn describe(record: &Record, outcomes: &HashMap<(&str, &GroupId), &journal::Outcome>) -> String {
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
        } => format!("{at}  run {run}  account {account}  restore {group_id} as {new_group_id}"),
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

pub async fn restore(args: &RestoreArgs) -> anyhow::Result<Outcome> {
    let path = journal_path(&args.journal, &args.state);
    let contents = journal::read(&path)?;
    let Some(Record::Intent {
        account,
        group,
        members,
        ..
    }) = contents.backup_of(&args.group)
    else {
        bail!("no backup of group {} in {}", args.group, path.display());
    };
    let client = connect::client(&args.api)?;
    let created = client
        .create_group(
            account,
            &group.name,
            creatable_policies(group.policies.as_ref()),
        )
        .await
        .with_context(|| format!("cannot recreate group {:?}", group.name))?;
    let member_ids: Vec<String> = members
        .iter()
        .flatten()
        .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    if !member_ids.is_empty() {
        client
            .add_members(account, &created.id, &member_ids)
            .await
            .with_context(|| {
                format!(
                    "group {:?} was recreated as {} but its members could not be added",
                    group.name, created.id
                )
            })?;
    }
    let journal = Journal::open(&path)?;
    journal.append(&Record::Restore {
        at: journal::now(),
        run: journal::new_run_id(),
        account: account.clone(),
        group_id: group.id.clone(),
        new_group_id: created.id.clone(),
    })?;
    if members.is_none() {
        eprintln!("The backup has no members (it was taken with --no-backup-members).");
    }
    print_out(&format!(
        "Restored group {:?} in account {account} as {} with {} member(s).\n",
        group.name,
        created.id,
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
