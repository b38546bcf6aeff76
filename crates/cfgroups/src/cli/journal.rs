//! `journal` and `restore`: printing what was deleted, and recreating a group with
//! [`crate::restore`].

use std::collections::HashMap;
use std::path::PathBuf;

use super::output::print_out;
use super::{Exit, JournalArgs, JournalFormat, RestoreArgs, StateArgs, connect};
use crate::journal::{self, JOURNAL_FILE, Journal, Record};
use crate::model::{DeletionOutcome, GroupId};
use crate::restore::{self, RestoreStep};
use crate::state_dir;

fn journal_path(explicit: &Option<PathBuf>, state: &StateArgs) -> PathBuf {
    explicit
        .clone()
        .unwrap_or_else(|| state_dir::resolve(state.state_dir.clone()).join(JOURNAL_FILE))
}

pub fn show(args: &JournalArgs) -> anyhow::Result<Exit> {
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
    Ok(Exit::Success)
}

fn describe(record: &Record, outcomes: &HashMap<(&str, &GroupId), &DeletionOutcome>) -> String {
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

pub async fn restore(args: &RestoreArgs) -> anyhow::Result<Exit> {
    let path = journal_path(&args.journal, &args.state);
    // Opened before anything is created: a restore that cannot be recorded is not started.
    let journal = Journal::open(&path)?;
    let client = connect::client(&args.api)?;
    let restored = restore::restore(&journal, &args.group, args.again, &client).await?;
    if let RestoreStep::AddMembers(new_id) = &restored.step {
        eprintln!(
            "Group {} was already recreated as {new_id}, without its members: added them.",
            args.group
        );
    }
    if !restored.members_backed_up {
        eprintln!("The backup has no members (it was taken with --no-backup-members).");
    }
    print_out(&format!(
        "Restored group {:?} in account {} as {} with {} member(s).\n",
        restored.name, restored.account, restored.new_group_id, restored.members
    ))?;
    Ok(Exit::Success)
}
