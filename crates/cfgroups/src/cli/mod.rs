//! The command line: clap definitions, command dispatch, and the one place where results
//! become exit codes. Each command lives in its own file.

mod apply;
mod connect;
pub mod durations;
mod election;
mod export;
mod journal;
mod manual;
mod notify;
mod output;
mod plan;
mod run;
mod shell;
mod wait_notice;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::report;
use crate::source::SourceSpec;

/// Accounts listed at once, and deletions in flight at once, unless told otherwise: each
/// request spends most of its time on the network, so 16 keep it busy on an ordinary link
/// while the request budget, not the concurrency, sets the pace of a large run.
const DEFAULT_CONCURRENCY: u16 = 16;

const EXIT_CODES: &str = "\
Exit codes:
  0  success; with --detailed-exitcode, no drift
  1  error: a usage error (unknown flag, missing argument), bad config, a listing that
     failed, a deletion that failed or was blocked
  2  only with plan --detailed-exitcode: drift (something to delete, blocked, missing or
     unmanaged); never a usage error

Credentials (live API only): CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL + CLOUDFLARE_API_KEY,
or --api-token-file (under systemd: $CREDENTIALS_DIRECTORY/cloudflare-api-token).";

/// Keep Cloudflare IAM user groups exactly as a YAML file says.
#[derive(Debug, Parser)]
#[command(name = "cfgroups", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log line format on stderr. `RUST_LOG` filters what is logged.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    /// Colour in reports: `auto` (only on a terminal, and not when `NO_COLOR` is set),
    /// `always` or `never`.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// Only on a terminal; `NO_COLOR` turns it off, `CLICOLOR_FORCE=1` forces it.
    Auto,
    /// Always, even into a pipe or with `NO_COLOR` set.
    Always,
    /// Never.
    Never,
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
        "Exit codes:\n  0  no drift, or drift without --detailed-exitcode\n  1  error (usage errors too), or an account could not be listed\n  2  drift, with --detailed-exitcode (and only then)",
    ))]
    Plan(PlanArgs),
    /// Delete the groups a fresh plan marks `delete`, journaling a backup of each first.
    #[command(after_help = concat!(
        "Examples:\n  cfgroups apply --config groups.yaml              # shows the plan, asks for `yes`\n",
        "  cfgroups apply --config groups.yaml --plan plan.json --yes   # CI: exactly the reviewed plan\n\n",
        "Exit codes:\n  0  everything planned was done\n  1  error, or a deletion failed, was blocked or was not started",
    ))]
    Apply(ApplyArgs),
    /// Run as a daemon: reconcile on start, on every config change, on an interval and on
    /// SIGHUP; serve /healthz, /readyz and /metrics.
    #[command(after_help = concat!(
        "Example:\n  cfgroups run --config /etc/cfgroups --interval 5m --listen 127.0.0.1:9184\n\n",
        "Signals: SIGHUP reloads and reconciles; SIGTERM/SIGINT stop between deletions and exit 0.\n\n",
        "Config changes are taken once complete: renamed into place or closed by the writer,\n",
        "never while a file is still being written. With no valid config on disk (deleted or\n",
        "invalid), drift is still listed and reported against the last good config, but nothing\n",
        "is deleted until a valid config is back (cfgroups_deletions_suspended 1).\n\n",
        "An account that cannot be listed is logged every cycle with Cloudflare's code and what\n",
        "to check, and /readyz answers 503 naming it until its listing succeeds. What each cycle\n",
        "reports (log, metrics, last-report.json) is the state after its deletions.\n\n",
        "Several replicas, one writer:\n",
        "  cfgroups run --config /etc/cfgroups --leader-election kubernetes      # POD_NAME, POD_NAMESPACE\n",
        "  cfgroups run --config /etc/cfgroups --leader-election etcd --etcd-endpoints https://etcd-1:2379,https://etcd-2:2379\n",
        "The leader releases the lock on SIGTERM after its last deletion, so a standby takes over at once.",
    ))]
    Run(Box<RunArgs>),
    /// List what the journal recorded: deletions, their outcomes, restores.
    #[command(after_help = concat!(
        "Example:\n  cfgroups journal --account 023e105f4ecef8ad9ca31a8372d0c353\n\n",
        "Every line that is not a readable record (damaged, or torn by a crash) is reported on\n",
        "stderr with its number. A journal over 1 GiB, or with a line over 64 MiB, is refused.\n\n",
        "Exit codes:\n  0  every line was read\n  1  error, or some line could not be read",
    ))]
    Journal(JournalArgs),
    /// Recreate a deleted group from its journal backup: name, policies, then members.
    #[command(after_help = concat!(
        "Example:\n  cfgroups restore --group 3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a\n\n",
        "Only a group whose deletion the journal records as done is restored, and only once:\n",
        "a second restore is refused unless --again is given. One restore runs at a time (a\n",
        "lock file beside the journal). \"Restore started\" is journaled before the create\n",
        "request; if its answer is lost, the next restore looks the group up by name and adopts\n",
        "the one created after the deletion, or refuses when it cannot tell. The restore is\n",
        "journaled as soon as the group exists; if adding its members then fails, re-running the\n",
        "same command adds them to that group instead of creating another. A policy without\n",
        "`access` is refused. Warnings (stderr): a group with that name exists already; the\n",
        "--config given would delete the restored group again.\n\n",
        "Exit codes:\n  0  restored\n  1  error: nothing to restore, a damaged backup line, a refused or failed request",
    ))]
    Restore(RestoreArgs),
    /// Write what a source lists as a desired-state file (every group `present`, so planning
    /// with it shows no drift) or, with --snapshot, as a snapshot file.
    #[command(after_help = concat!(
        "Examples:\n  cfgroups export --account 023e105f4ecef8ad9ca31a8372d0c353 > production.yaml\n",
        "  cfgroups export --account 023e105f4ecef8ad9ca31a8372d0c353 --account 9a7806061c88ada191ed06f989cc3dac --out-dir accounts\n",
        "  cfgroups export --account 023e105f4ecef8ad9ca31a8372d0c353 --snapshot --output json > snapshot.json\n",
        "  cfgroups export --account 023e105f4ecef8ad9ca31a8372d0c353 --source snapshot:examples/snapshot.json\n\n",
        "A group whose name is shared by several groups (or blank) is declared by id only, with a\n",
        "comment. From the live API, each account's `label:` is its name (GET /accounts/{id});\n",
        "when the token may not read it, a comment says so instead. SOURCE_DATE_EPOCH pins the\n",
        "export time of the header.\n\n",
        "Exit codes:\n  0  exported\n  1  error, or an account could not be listed (nothing is written to stdout)",
    ))]
    Export(ExportArgs),
    /// Print the JSON Schema (draft-07) of the desired-state file, for editors and linters.
    #[command(after_help = concat!(
        "Example:\n  cfgroups schema > cfgroups.schema.json\n",
        "  # then start each desired-state file with:\n",
        "  # yaml-language-server: $schema=cfgroups.schema.json",
    ))]
    Schema,
    /// Print a shell completion script.
    #[command(after_help = concat!(
        "Examples:\n  cfgroups completions bash > ~/.local/share/bash-completion/completions/cfgroups\n",
        "  cfgroups completions zsh > ~/.zfunc/_cfgroups\n",
        "  cfgroups completions fish > ~/.config/fish/completions/cfgroups.fish\n",
        "  cfgroups completions powershell >> $PROFILE",
    ))]
    Completions(CompletionsArgs),
    /// Print the man page (roff) of cfgroups or of one of its commands.
    #[command(after_help = concat!(
        "Examples:\n  cfgroups man > /usr/local/share/man/man1/cfgroups.1\n",
        "  cfgroups man plan | man -l -",
    ))]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Desired-state file, or a directory of *.yaml / *.yml files (not recursive; hidden
    /// entries and other extensions are skipped; a broken or looping symlink, a directory
    /// named *.yaml, or a *.YAML file in another case is an error, never skipped).
    #[arg(long, short = 'c', env = "CFGROUPS_CONFIG")]
    pub config: PathBuf,
}

/// How to reach the live API.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// API base URL; plain http:// only to loopback, no user info. A refused value is never
    /// printed whole (it may be a token pasted in the wrong place).
    #[arg(
        long,
        env = "CLOUDFLARE_BASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub api_base_url: Option<String>,
    /// Read the API token from FILE.
    #[arg(long, value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
    /// Most API requests in any rolling --budget-window (Cloudflare allows 1200 per 5 minutes).
    #[arg(long, default_value = "1000", value_name = "N")]
    pub max_requests: NonZeroU32,
    /// The window of --max-requests; at least 1s. The budget is an exact sliding window:
    /// all of it is available at once, and a request waits only while the last window is
    /// full.
    #[arg(long, default_value = "5m", value_parser = durations::budget_window)]
    pub budget_window: Duration,
    /// The longest rate-limit wait Cloudflare may announce (a lockout after HTTP 429, or its
    /// reset when no requests remain) that requests sit out; a longer one fails them.
    /// Cloudflare's lockout lasts 5 minutes.
    #[arg(long, default_value = "6m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub max_rate_limit_wait: Duration,
    /// Time allowed for one request attempt; at least 1ms.
    #[arg(long, default_value = "30s", value_parser = durations::timeout)]
    pub request_timeout: Duration,
    /// Time allowed to connect; at least 1ms.
    #[arg(long, default_value = "10s", value_parser = durations::timeout)]
    pub connect_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Where observed groups come from: `cloudflare`, `snapshot:FILE` or `exec:COMMAND`.
    #[arg(long, short = 's', default_value = "cloudflare")]
    pub source: SourceSpec,
    /// How many accounts are listed at once (each listing also fetches up to 8 pages at
    /// once); the request budget still bounds how many requests go.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// How long an `exec:` listing command may run; at least 1ms.
    #[arg(long, default_value = "30s", value_parser = durations::timeout)]
    pub exec_timeout: Duration,
    /// Let an `exec:` command inherit the Cloudflare credential variables (CLOUDFLARE_*,
    /// CF_API_*, CREDENTIALS_DIRECTORY). Without it they are withheld. Either way, every
    /// secret cfgroups knows is scrubbed from what the command prints before it reaches an
    /// error or a report.
    #[arg(long)]
    pub exec_pass_credentials: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
    /// Exit 2 when there is drift (as `terraform plan -detailed-exitcode` does).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also save the planned deletions to FILE, for `apply --plan FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// A report format, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
}

impl From<ReportFormat> for report::Format {
    fn from(format: ReportFormat) -> Self {
        match format {
            ReportFormat::Text => Self::Text,
            ReportFormat::Json => Self::Json,
            ReportFormat::Markdown => Self::Markdown,
        }
    }
}

#[derive(Debug, Args)]
pub struct StateArgs {
    /// Where the journal lives. Default: $STATE_DIRECTORY (systemd), else
    /// $XDG_STATE_HOME/cfgroups, else ~/.local/state/cfgroups, else ./.cfgroups in the
    /// current directory (with a warning: the journal holds the only backups).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub state: StateArgs,
    /// Do not ask for confirmation (required without a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Delete even when an account plans more than its `max_deletes`.
    #[arg(long)]
    pub force: bool,
    /// Apply only if the fresh plan deletes exactly what FILE (from `plan --out`) lists.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Show the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Skip the members backup (one request less per deletion; a restore then recreates
    /// the group without its members).
    #[arg(long)]
    pub no_backup_members: bool,
    /// Deletions in flight at once, across all accounts (each is a fresh read, a members
    /// backup and the DELETE); the request budget still bounds how many requests go.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub apply_concurrency: u16,
    /// Send notifications through the config's `notify:` sinks, as the daemon does: each
    /// deletion, failure, block, failed listing, suspension and the drift (this run has no
    /// memory of earlier ones, so every current problem is sent). Waits up to 30s for
    /// delivery at the end; a sink whose URL cannot be used stops the apply before it starts.
    #[arg(long)]
    pub notify: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    /// Report drift forever; never delete.
    #[arg(long)]
    pub dry_run: bool,
    /// Time between full reconciles; each tick lands up to 10% early or late. At least 1s:
    /// each tick lists every account, and config changes do not wait for it.
    #[arg(long, default_value = "5m", value_parser = durations::interval)]
    pub interval: Duration,
    /// Address of /healthz, /readyz and /metrics. Loopback unless told otherwise. A client
    /// gets 5s for a request's headers and is dropped after 10s of silence; shutdown waits
    /// at most 2s for open connections.
    #[arg(long, default_value = "127.0.0.1:9184", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// How many accounts are listed at once (each listing also fetches up to 8 pages at
    /// once); the request budget still bounds how many requests go.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Deletions in flight at once, across all accounts (each is a fresh read, a members
    /// backup and the DELETE); the request budget still bounds how many requests go.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub apply_concurrency: u16,
    /// Skip the members backup before each deletion.
    #[arg(long)]
    pub no_backup_members: bool,
    /// While anything exists at PATH, every account is suspended: listed and reported,
    /// nothing deleted (an emergency brake without a commit: `touch PATH`; remove it to
    /// resume at the next cycle, or send SIGHUP to resume at once). Checked before every cycle
    /// and watched during one: deletions not yet started when it appears do not start.
    #[arg(long, env = "CFGROUPS_SUSPEND_FILE", value_name = "PATH")]
    pub suspend_file: Option<PathBuf>,
    /// How long file events in the config's directory are coalesced before the config is
    /// re-read; at least 10ms. New content is taken only once it is complete: renamed into
    /// place, or closed by its writer; a pause in a write is never taken for its end.
    #[arg(long, default_value = "200ms", value_parser = durations::debounce)]
    pub debounce: Duration,
    #[command(flatten)]
    pub election: ElectionArgs,
}

/// Which lock, if any, elects the one replica that talks to Cloudflare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ElectionBackend {
    /// No election: this replica always reconciles (run exactly one).
    None,
    /// A coordination.k8s.io/v1 Lease (kubeconfig, else the pod's service account).
    Kubernetes,
    /// An etcd election (--etcd-endpoints).
    Etcd,
}

/// `run`'s leader-election settings. Each flag has an environment fallback.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Leader election")]
pub struct ElectionArgs {
    /// Run several replicas with exactly one writer: the leader reconciles, the others stand
    /// by (they validate the config and serve health and metrics, but never call Cloudflare).
    #[arg(long, value_enum, default_value_t = ElectionBackend::None, env = "CFGROUPS_LEADER_ELECTION", value_name = "BACKEND")]
    pub leader_election: ElectionBackend,
    /// The lock's name: the Lease's name, or the etcd election's. Replicas sharing it elect
    /// one leader.
    #[arg(
        long,
        default_value = "cfgroups",
        env = "CFGROUPS_LOCK_NAME",
        value_name = "NAME"
    )]
    pub lock_name: String,
    /// This replica's name in the lock, unique among replicas. Default: the host name.
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub identity: Option<String>,
    /// The Lease's namespace. Default: the pod's service account namespace, else the
    /// kubeconfig context's.
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long a hold lasts without renewal before a standby may take over (whole seconds).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration, env = "CFGROUPS_LEASE_DURATION", value_name = "DURATION")]
    pub lease_duration: Duration,
    /// How long a leader goes on without a successful renewal before it stops writing and
    /// steps down; shorter than --lease-duration.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, env = "CFGROUPS_RENEW_DEADLINE", value_name = "DURATION")]
    pub renew_deadline: Duration,
    /// How often the leader renews and standbys try to acquire (plus up to 20% jitter).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration, env = "CFGROUPS_RETRY_PERIOD", value_name = "DURATION")]
    pub retry_period: Duration,
    /// etcd client URLs, comma-separated (http:// or https://).
    #[arg(
        long,
        env = "CFGROUPS_ETCD_ENDPOINTS",
        value_delimiter = ',',
        value_name = "URL[,URL...]"
    )]
    pub etcd_endpoints: Vec<String>,
    /// PEM file of the CA that signed etcd's certificates (trusted instead of the system's).
    #[arg(long, env = "CFGROUPS_ETCD_CA_FILE", value_name = "FILE")]
    pub etcd_ca_file: Option<PathBuf>,
    /// PEM client certificate for etcd (with --etcd-key-file).
    #[arg(long, env = "CFGROUPS_ETCD_CERT_FILE", value_name = "FILE")]
    pub etcd_cert_file: Option<PathBuf>,
    /// PEM key of --etcd-cert-file.
    #[arg(long, env = "CFGROUPS_ETCD_KEY_FILE", value_name = "FILE")]
    pub etcd_key_file: Option<PathBuf>,
    /// File holding the etcd user name (with --etcd-password-file).
    #[arg(long, env = "CFGROUPS_ETCD_USERNAME_FILE", value_name = "FILE")]
    pub etcd_username_file: Option<PathBuf>,
    /// File holding the etcd password.
    #[arg(long, env = "CFGROUPS_ETCD_PASSWORD_FILE", value_name = "FILE")]
    pub etcd_password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct JournalArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Read this journal file instead of the state directory's.
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Only this account.
    #[arg(long, value_name = "ID")]
    pub account: Option<crate::model::AccountId>,
    /// `text` or `json` (one record per line, as stored).
    #[arg(long, short = 'o', default_value = "text")]
    pub output: JournalFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JournalFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The id the deleted group had.
    #[arg(long, value_name = "ID")]
    pub group: crate::model::GroupId,
    #[command(flatten)]
    pub state: StateArgs,
    /// Read the backup from this journal file instead of the state directory's.
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Create another copy of a group the journal records as already restored, or whose
    /// earlier restore never learned whether its create succeeded.
    #[arg(long)]
    pub again: bool,
    /// The desired-state file or directory: warn when it would delete the restored group
    /// again (declared absent by name, or unmanaged under `unmanaged: delete`).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// An account to export; repeat for several.
    #[arg(long = "account", value_name = "ID", required = true)]
    pub accounts: Vec<crate::model::AccountId>,
    #[command(flatten)]
    pub source: SourceArgs,
    /// File format.
    #[arg(long, short = 'o', value_enum, default_value_t = ExportFormat::Yaml)]
    pub output: ExportFormat,
    /// Write the snapshot format (what `--source snapshot:FILE` reads) instead of a
    /// desired-state file.
    #[arg(long)]
    pub snapshot: bool,
    /// Write one desired-state file per account into DIR (`<account id>.yaml`, each
    /// starting with the schema modeline) instead of one document on stdout. Existing
    /// files are never overwritten.
    #[arg(long, value_name = "DIR", conflicts_with = "snapshot")]
    pub out_dir: Option<PathBuf>,
    /// The schema the files written by --out-dir point editors at, relative to the file or
    /// a URL.
    #[arg(
        long,
        value_name = "PATH|URL",
        default_value = crate::export::DEFAULT_SCHEMA_PATH,
        requires = "out_dir"
    )]
    pub schema: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// A command whose page to print instead of the main page, e.g. `plan`.
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// Drift found and `--detailed-exitcode` asked to be told.
    Drift,
    /// The command finished and reported, but part of its work failed.
    Failed,
}

/// Maps a command's result to the process exit code. With [`usage_exit_code`], the only
/// place exit codes are chosen.
pub fn exit_code(result: &anyhow::Result<Exit>) -> u8 {
    match result {
        Ok(Exit::Success) => 0,
        Ok(Exit::Drift) => 2,
        Ok(Exit::Failed) | Err(_) => 1,
    }
}

/// The exit code of a command line that did not parse: 0 for `--help` and `--version`
/// (which clap reports the same way), 1 for every usage error. clap's own choice, 2, is
/// what `plan --detailed-exitcode` means by "drift": a CI job must be able to tell a typo
/// in a flag from a plan with changes (Terraform exits 1 on usage errors too).
pub fn usage_exit_code(error: &clap::Error) -> u8 {
    match error.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
        _ => 1,
    }
}

/// An error and its causes on one line, outermost first, each cause said once: a cause
/// whose text the message already contains (an error that displays its source and also
/// reports it as its cause) is not repeated.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    output::set_color(cli.color);
    match cli.command {
        Command::Validate(args) => plan::validate(&args),
        Command::Plan(args) => plan::plan(&args).await,
        Command::Apply(args) => apply::apply(&args).await,
        Command::Run(args) => run::run(&args).await,
        Command::Journal(args) => journal::show(&args),
        Command::Restore(args) => journal::restore(&args).await,
        Command::Export(args) => export::export(&args).await,
        Command::Schema => shell::schema(),
        Command::Completions(args) => shell::completions(&args),
        Command::Man(args) => shell::man(&args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// clap prints `[env: NAME=value]` in `--help` unless told not to, and a token pasted into
    /// `CLOUDFLARE_BASE_URL` would be that value.
    #[test]
    fn help_never_shows_the_base_url_from_the_environment() {
        let cli = Cli::command();
        let mut checked = 0;
        for command in cli.get_subcommands() {
            for arg in command.get_arguments() {
                if arg
                    .get_env()
                    .is_some_and(|name| name == "CLOUDFLARE_BASE_URL")
                {
                    assert!(arg.is_hide_env_values_set(), "{}", command.get_name());
                    checked += 1;
                }
            }
        }
        assert!(checked >= 4, "checked {checked} commands");
    }
}
