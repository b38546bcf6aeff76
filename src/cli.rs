//! The command line: clap definitions, command dispatch, and the one place where results
//! become exit codes.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config;
use crate::plan::{self, PlanOptions};
use crate::report::{self, Format};
use crate::saved_plan::SavedPlan;
use crate::source::{self, AnySource, GroupSource, SourceOptions, SourceSpec};

const EXIT_CODES: &str = "\
Exit codes:
  0  success; with --detailed-exitcode, no drift
  1  error: bad config, a listing that failed, or any other failure
  2  with --detailed-exitcode: drift (something to delete, blocked, missing or unmanaged)";

/// Keep Cloudflare IAM user groups exactly as a YAML file says.
#[derive(Debug, Parser)]
#[command(name = "cfgroups", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log line format on stderr. `RUST_LOG` filters what is logged.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the desired-state file(s) offline; list every problem.
    #[command(after_help = "Example:\n  cfgroups validate --config groups.yaml")]
    Validate(ConfigArgs),
    /// Report drift between the desired state and what a source lists. Changes nothing.
    #[command(after_help = concat!(
        "Example:\n  cfgroups plan --config examples/groups.yaml --source snapshot:examples/snapshot.json\n\n",
        "Exit codes:\n  0  no drift, or drift without --detailed-exitcode\n  1  error, or an account could not be listed\n  2  drift, with --detailed-exitcode",
    ))]
    Plan(PlanArgs),
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Desired-state file, or a directory of *.yaml / *.yml files.
    #[arg(long, short = 'c', env = "CFGROUPS_CONFIG")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Where observed groups come from: `cloudflare`, `snapshot:FILE` or `exec:COMMAND`.
    #[arg(long, short = 's', default_value = "cloudflare")]
    pub source: SourceSpec,
    /// How many accounts are listed at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// How long an `exec:` listing command may run.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub exec_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Exit 2 when there is drift (as `terraform plan -detailed-exitcode` does).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also save the planned deletions to FILE, for `apply --plan FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Drift found and `--detailed-exitcode` asked to be told.
    Drift,
    /// The command finished and reported, but part of its work failed.
    Failed,
}

/// Maps a command's result to the process exit code. The only place exit codes are chosen.
pub fn exit_code(result: &anyhow::Result<Outcome>) -> u8 {
    match result {
        Ok(Outcome::Success) => 0,
        Ok(Outcome::Drift) => 2,
        Ok(Outcome::Failed) | Err(_) => 1,
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Validate(args) => validate(&args),
        Command::Plan(args) => plan(&args).await,
    }
}

fn validate(args: &ConfigArgs) -> anyhow::Result<Outcome> {
    let desired = config::load(&args.config)?;
    let groups: usize = desired.accounts.iter().map(|a| a.groups.len()).sum();
    print_out(&format!(
        "{}: valid: {} account(s), {groups} declared group(s) in {} file(s)\n",
        args.config.display(),
        desired.accounts.len(),
        desired.files.len()
    ))?;
    Ok(Outcome::Success)
}

async fn plan(args: &PlanArgs) -> anyhow::Result<Outcome> {
    let desired = config::load(&args.config.config)?;
    let options = SourceOptions {
        exec_timeout: args.source.exec_timeout,
    };
    let source = AnySource::open_offline(&args.source.source, &options)
        .context("cannot open the listing source")?;
    let observed = source::list_accounts(
        &source,
        &desired.account_ids(),
        usize::from(args.source.concurrency),
    )
    .await;
    let plan = plan::plan(&desired, &observed, PlanOptions::default());
    print_out(&report::render(&plan, &source.describe(), args.output))?;
    if let Some(out) = &args.out {
        SavedPlan::new(&plan, &desired.content_hash).save(out)?;
    }
    let summary = plan.summary();
    if summary.listing_failed > 0 {
        tracing::error!(
            accounts = summary.listing_failed,
            "some accounts could not be listed; nothing would be deleted in them"
        );
        return Ok(Outcome::Failed);
    }
    Ok(if args.detailed_exitcode && summary.drift() {
        Outcome::Drift
    } else {
        Outcome::Success
    })
}

/// Writes to stdout, stripping colour when stdout is not a terminal or `NO_COLOR` is set.
/// A closed pipe (`cfgroups plan | head`) is not an error.
fn print_out(text: &str) -> anyhow::Result<()> {
    let mut out = anstream::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
