//! `export`: list the accounts asked for and print them as a desired-state file or a
//! snapshot; the rendering is [`crate::export`]'s.

use super::output::print_out;
use super::{Exit, ExportArgs, ExportFormat, connect};
use crate::export::{self, Listed, Provenance};
use crate::source::{self, GroupSource};

pub async fn export(args: &ExportArgs) -> anyhow::Result<Exit> {
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

    let provenance = Provenance::now(source.describe())?;
    let text = match (args.snapshot, args.output) {
        (false, ExportFormat::Yaml) => export::desired_yaml(&listed, &provenance),
        (false, ExportFormat::Json) => {
            // The desired-state reader refuses unknown keys, so the header goes to stderr.
            eprint!("{}", provenance.comment("Desired state"));
            export::desired_json(&listed)?
        }
        (true, ExportFormat::Yaml) => export::snapshot_yaml(&listed, &provenance)?,
        (true, ExportFormat::Json) => export::snapshot_json(&listed, &provenance)?,
    };
    print_out(&text)?;
    Ok(Exit::Success)
}
