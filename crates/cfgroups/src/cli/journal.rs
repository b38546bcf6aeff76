//! `journal` and `restore`: printing what was deleted, and recreating a group with
//! [`crate::restore`].

use std::collections::HashMap;
use std::path::PathBuf;

use super::output::print_out;
use super::{Exit, JournalArgs, JournalFormat, RestoreArgs, StateArgs, connect};
use crate::journal::{self, JOURNAL_FILE, Journal, Record};
use crate::model::{DeletionOutcome, GroupId};
use crate::restore::{self, RestoreOptions, RestoreStep};
use crate::state_dir;

fn journal_path(explicit: &Option<PathBuf>, state: &StateArgs) -> PathBuf {
    explicit
        .clone()
        .unwrap_or_else(|| state_dir::resolve(state.state_dir.clone()).join(JOURNAL_FILE))
}

/// The version of `journal --output json`, carried by every line. Within a version, fields
/// are only ever added.
pub const JOURNAL_JSON_FORMAT_VERSION: u32 = 1;

/// One line of `journal --output json`: the record as stored, with the format version.
/// On every line rather than in a header, so that lines stay self-describing when
/// filtered (`grep`, `jq -c 'select(...)'`) or merged from several replicas' journals.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    format_version: u32,
    #[serde(flatten)]
    record: &'a Record,
}

pub fn show(args: &JournalArgs) -> anyhow::Result<Exit> {
    let path = journal_path(&args.journal, &args.state);
    let contents = journal::read(&path)?;
    let wanted =
        |account: &crate::model::AccountId| args.account.as_ref().is_none_or(|a| a == account);
    let records = contents
        .records
        .iter()
        .filter(|record| wanted(record.account()));
    let mut text = String::new();
    match args.output {
        JournalFormat::Json => {
            for record in records {
                let line = JsonLine {
                    format_version: JOURNAL_JSON_FORMAT_VERSION,
                    record,
                };
                text.push_str(&serde_json::to_string(&line)?);
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
    // A damaged line may have held a backup: never skipped without a word.
    for line in &contents.unreadable {
        eprintln!(
            "error: {}: line {line} is not a readable record (damaged, or torn by a crash); \
             a backup on it cannot be restored by cfgroups",
            path.display()
        );
    }
    Ok(if contents.unreadable.is_empty() {
        Exit::Success
    } else {
        Exit::Failed
    })
}

fn describe(record: &Record, outcomes: &HashMap<(&str, &GroupId), &DeletionOutcome>) -> String {
    match record {
        Record::Intent {
            at,
            run,
            account,
            group,
            members,
            ..
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
        Record::IntentRef {
            at,
            run,
            account,
            group_id,
            name,
            backup_sha256,
        } => {
            let outcome = outcomes
                .get(&(run.as_str(), group_id))
                .map(|outcome| format!("{outcome:?}"))
                .unwrap_or_else(|| "NO OUTCOME (interrupted)".to_owned());
            let short = backup_sha256.get(..12).unwrap_or(backup_sha256);
            format!(
                "{at}  run {run}  account {account}  delete {group_id} {name:?}: {outcome}; \
                 backup unchanged (sha256 {short}…, journaled earlier)"
            )
        }
        Record::Outcome {
            at, run, group_id, ..
        } => format!("{at}  run {run}  outcome for {group_id}"),
        Record::RestoreStarted {
            at,
            run,
            account,
            group_id,
            name,
        } => format!("{at}  run {run}  account {account}  restore {group_id} {name:?} started"),
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
    let desired = args
        .config
        .as_deref()
        .map(crate::config::load)
        .transpose()?;
    // Opened before anything is created: a restore that cannot be recorded is not started.
    let journal = Journal::open(&path)?;
    let client = connect::client(&args.api)?;
    let options = RestoreOptions {
        again: args.again,
        desired: desired.as_ref(),
    };
    let restored = restore::restore(&journal, &args.group, options, &client).await?;
    match &restored.step {
        RestoreStep::AddMembers(new_id) => eprintln!(
            "Group {} was already recreated as {new_id}, without its members: added them.",
            args.group
        ),
        RestoreStep::Adopt(new_id) => eprintln!(
            "An earlier restore of group {} created it as {new_id} without recording the \
             answer: adopted that group instead of creating another.",
            args.group
        ),
        RestoreStep::Create => {}
    }
    if !restored.members_backed_up {
        eprintln!("The backup has no members (it was taken with --no-backup-members).");
    }
    for warning in &restored.warnings {
        eprintln!("warning: {warning}");
    }
    let warned = match restored.warnings.len() {
        0 => String::new(),
        n => format!(" ({n} warning(s) above)"),
    };
    print_out(&format!(
        "Restored group {:?} in account {} as {} with {} member(s).{warned}\n",
        restored.name, restored.account, restored.new_group_id, restored.members
    ))?;
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_with_a_damaged_line_is_reported_and_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let intent = r#"{"type":"intent","at":"2026-01-01T00:00:00Z","run":"r1","account":"023e105f4ecef8ad9ca31a8372d0c353","group":{"id":"00000000000000000000000000000001","name":"G"},"members":[]}"#;
        let damaged = r#"{"type":"intent","at":"2026-01-01T00:00:00Z","run":"r2","account":"#;
        std::fs::write(&path, format!("{intent}\n{damaged}\n{intent}")).unwrap();
        let args = |output| JournalArgs {
            state: StateArgs { state_dir: None },
            journal: Some(path.clone()),
            account: None,
            output,
        };
        for output in [JournalFormat::Text, JournalFormat::Json] {
            assert_eq!(show(&args(output)).unwrap(), Exit::Failed);
        }
        let line = JsonLine {
            format_version: JOURNAL_JSON_FORMAT_VERSION,
            record: &serde_json::from_str(intent).unwrap(),
        };
        let json = serde_json::to_string(&line).unwrap();
        assert!(
            json.starts_with(r#"{"format_version":1,"type":"intent","at":"#),
            "{json}"
        );
        std::fs::write(&path, format!("{intent}\n")).unwrap();
        assert_eq!(show(&args(JournalFormat::Text)).unwrap(), Exit::Success);
    }
}
