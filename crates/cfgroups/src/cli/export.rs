//! `export`: list the accounts asked for and print them as a desired-state file or a
//! snapshot, or write one desired-state file per account; the rendering is
//! [`crate::export`]'s. From the live API, each account's name becomes its `label:`.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context;

use super::output::print_out;
use super::{Exit, ExportArgs, ExportFormat, connect};
use crate::cloudflare::Client;
use crate::export::{self, AccountLabel, Labels, Listed, Provenance};
use crate::model::AccountId;
use crate::source::{self, AnySource, GroupSource};

pub async fn export(args: &ExportArgs) -> anyhow::Result<Exit> {
    if args.out_dir.is_some() && args.output != ExportFormat::Yaml {
        anyhow::bail!(
            "--out-dir writes YAML files (each starts with the schema modeline, a comment JSON \
             cannot carry); drop --output json"
        );
    }
    let mut accounts = args.accounts.clone();
    accounts.sort();
    accounts.dedup();
    let source = connect::source(&args.source)?;
    let observed =
        source::list_accounts(&source, &accounts, usize::from(args.source.concurrency)).await;

    let mut listed = Listed::new();
    let mut failures = Vec::new();
    for (account, listing) in observed {
        match listing {
            Ok(groups) => {
                listed.insert(account, export::sorted(groups));
            }
            Err(failure) => failures.push(format!("{account}: {failure}")),
        }
    }
    if !failures.is_empty() {
        anyhow::bail!(
            "nothing exported: {} of {} account(s) could not be listed:\n  {}",
            failures.len(),
            accounts.len(),
            failures.join("\n  ")
        );
    }

    let labels = match (&source, args.snapshot) {
        (AnySource::Cloudflare(live), false) => names(live.client(), &accounts).await,
        (_, false) => accounts
            .iter()
            .map(|account| {
                let why = format!("the source {} does not name accounts", source.describe());
                (account.clone(), AccountLabel::Unknown(why))
            })
            .collect(),
        (_, true) => Labels::new(),
    };
    let provenance = Provenance::now(source.describe())?;
    if let Some(dir) = &args.out_dir {
        let files = export::desired_yaml_files(&listed, &labels, &provenance, &args.schema);
        write_new_files(dir, &files)?;
        return Ok(Exit::Success);
    }
    let text = match (args.snapshot, args.output) {
        (false, ExportFormat::Yaml) => export::desired_yaml(&listed, &labels, &provenance),
        (false, ExportFormat::Json) => {
            // The desired-state reader refuses unknown keys, so the header goes to stderr.
            eprint!("{}", provenance.comment("Desired state"));
            export::desired_json(&listed, &labels)?
        }
        (true, ExportFormat::Yaml) => export::snapshot_yaml(&listed, &provenance)?,
        (true, ExportFormat::Json) => export::snapshot_json(&listed, &provenance)?,
    };
    print_out(&text)?;
    Ok(Exit::Success)
}

/// Each account's name from the live API. A name that cannot be read (a token without
/// access to the account object, a network error) is no failure of the export: the file
/// says why in a comment where the label would be.
async fn names(client: &Client, accounts: &[AccountId]) -> Labels {
    let mut labels = Labels::new();
    for account in accounts {
        let label = match client.account_name(account).await {
            Ok(Some(name)) => AccountLabel::Named(name),
            Ok(None) => AccountLabel::Unknown("the account has no name".to_owned()),
            Err(e) => {
                let why = match (e.status(), e.unreachable()) {
                    (Some(status), _) => {
                        let codes: Vec<String> = e.codes().iter().map(i64::to_string).collect();
                        let codes = if codes.is_empty() {
                            String::new()
                        } else {
                            format!(" [{}]", codes.join(", "))
                        };
                        let scope = if matches!(status, 401 | 403) {
                            "; the token may not read the account object"
                        } else {
                            ""
                        };
                        format!("cannot read the account's name: HTTP {status}{codes}{scope}")
                    }
                    (None, Some(unreachable)) => {
                        format!("cannot read the account's name: {unreachable}")
                    }
                    (None, None) => format!("cannot read the account's name: {e}"),
                };
                tracing::warn!(%account, error = %e, "export: no label: {why}");
                AccountLabel::Unknown(why)
            }
        };
        labels.insert(account.clone(), label);
    }
    labels
}

/// Writes each file into `dir` (created if needed), refusing to replace any that exists:
/// an export is a starting point, never an edit of a reviewed config. Checked for every
/// file before any is written.
fn write_new_files(dir: &Path, files: &[(String, String)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let existing: Vec<String> = files
        .iter()
        .map(|(name, _)| dir.join(name))
        .filter(|path| path.exists())
        .map(|path| path.display().to_string())
        .collect();
    if !existing.is_empty() {
        anyhow::bail!(
            "nothing exported: {} exist(s) already and export never overwrites; move them \
             away or export into another directory",
            existing.join(", ")
        );
    }
    for (name, text) in files {
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("Wrote {}", path.display());
    }
    Ok(())
}
