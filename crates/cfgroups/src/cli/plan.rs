//! `validate` and `plan`: the read-only commands.

use super::output::{print_out, write_out};
use super::{ConfigArgs, Exit, PlanArgs, connect};
use crate::config;
use crate::plan::{self, PlanOptions};
use crate::report;
use crate::saved_plan::SavedPlan;
use crate::source::{self, GroupSource};

pub fn validate(args: &ConfigArgs) -> anyhow::Result<Exit> {
    let desired = config::load(&args.config)?;
    let groups: usize = desired.accounts.iter().map(|a| a.groups.len()).sum();
    print_out(&format!(
        "{}: valid: {} account(s), {groups} declared group(s) in {} file(s)\n",
        args.config.display(),
        desired.accounts.len(),
        desired.files.len()
    ))?;
    Ok(Exit::Success)
}

pub async fn plan(args: &PlanArgs) -> anyhow::Result<Exit> {
    let desired = config::load(&args.config.config)?;
    let source = connect::source(&args.source)?;
    let observed = source::list_accounts(
        &source,
        &desired.account_ids(),
        usize::from(args.source.concurrency),
    )
    .await;
    let plan = plan::plan(&desired, &observed, PlanOptions::default());
    // The plan holds what the report needs; the listing is not kept alongside it.
    drop(observed);
    let described = source.describe();
    let format: report::Format = args.output.into();
    write_out(format != report::Format::Json, |out| {
        report::write(&plan, &described, format, out)
    })?;
    if let Some(out) = &args.out {
        SavedPlan::new(&plan, &desired.content_hash).save(out)?;
        eprintln!("Saved the planned deletions to {}", out.display());
    }
    let summary = plan.summary();
    if summary.listing_failed > 0 {
        tracing::error!(
            accounts = summary.listing_failed,
            "some accounts could not be listed; nothing would be deleted in them"
        );
        return Ok(Exit::Failed);
    }
    Ok(if args.detailed_exitcode && summary.drift() {
        Exit::Drift
    } else {
        Exit::Success
    })
}
