//! The `exec:COMMAND` source: any program that prints an account's groups as snapshot JSON,
//! the plug-in point for inventories cfgroups does not know about.
//!
//! The program is a stranger to the credentials: it runs without the Cloudflare credential
//! variables (see [`is_credential_variable`]) unless `--exec-pass-credentials` says
//! otherwise, and everything it prints that can end up in an error (and from there in a
//! report posted on a pull request, or a log) has every secret the process knows scrubbed
//! first, whether the program read it from a file or was handed it.

use std::ffi::OsString;
use std::process::Stdio;
use std::time::Duration;

use thiserror::Error;

use super::document::{self, Keep};
use super::snapshot::SnapshotError;
use super::{GroupSource, ListingError};
use crate::cloudflare::KnownSecrets;
use crate::cloudflare::known_secrets::is_credential_variable;
use crate::model::{AccountId, ObservedGroup};

/// How long a listing command may run before it is killed, unless `--exec-timeout` says.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a failed command's stderr is kept for the error message.
const STDERR_TAIL: usize = 2048;

/// Why a listing command failed. Every variant names the command.
#[derive(Debug, Error)]
pub enum ExecError {
    #[error("exec source: cannot split command line {0:?} (unbalanced quotes?)")]
    BadCommandLine(String),
    #[error("exec source: command `{command}` could not start: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("exec source: command `{command}` timed out after {after:?}")]
    Timeout { command: String, after: Duration },
    #[error("exec source: command `{command}` exited with {status}; stderr: {stderr}")]
    Exit {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// `reason` is the parse error as text: it may quote what the command printed, so it is
    /// scrubbed like the rest.
    #[error(
        "exec source: command `{command}` printed output that is not a listing: {reason}; stderr: {stderr}"
    )]
    Output {
        command: String,
        reason: String,
        stderr: String,
    },
    #[error("exec source: command `{command}` printed a snapshot without account {account}")]
    AccountMissing { command: String, account: AccountId },
}

impl ExecError {
    /// The same error with every known secret scrubbed from its text.
    fn redacted(self, secrets: &KnownSecrets) -> Self {
        let r = |text: String| secrets.redact(&text);
        match self {
            Self::BadCommandLine(line) => Self::BadCommandLine(r(line)),
            Self::Spawn { command, source } => Self::Spawn {
                command: r(command),
                source,
            },
            Self::Timeout { command, after } => Self::Timeout {
                command: r(command),
                after,
            },
            Self::Exit {
                command,
                status,
                stderr,
            } => Self::Exit {
                command: r(command),
                status,
                stderr: r(stderr),
            },
            Self::Output {
                command,
                reason,
                stderr,
            } => Self::Output {
                command: r(command),
                reason: r(reason),
                stderr: r(stderr),
            },
            Self::AccountMissing { command, account } => Self::AccountMissing {
                command: r(command),
                account,
            },
        }
    }
}

/// How listing commands run.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// How long one run may take before it is killed.
    pub timeout: Duration,
    /// Let the command inherit the Cloudflare credential variables
    /// (`--exec-pass-credentials`). Off by default: a listing program needs no write token.
    pub pass_credentials: bool,
    /// Scrubbed from everything the command prints before it reaches an error.
    pub secrets: KnownSecrets,
}

impl ExecOptions {
    /// `timeout`, no credentials passed, and this process's secrets scrubbed.
    pub fn new(timeout: Duration, token_file: Option<&std::path::Path>) -> Self {
        Self {
            timeout,
            pass_credentials: false,
            secrets: KnownSecrets::from_process(token_file),
        }
    }
}

/// Runs a program (argv split like a shell would, but with no shell) with the account id as
/// its last argument and reads that account's groups from its stdout.
#[derive(Debug, Clone)]
pub struct ExecSource {
    argv: Vec<String>,
    options: ExecOptions,
    /// The environment the command starts from; `None` is this process's.
    parent_env: Option<Vec<(OsString, OsString)>>,
}

/// What a listing command may print: one account's `{"groups": [...]}`, or a whole snapshot
/// (of which only the account asked for is built). One pass over the text either way; a
/// snapshot's `format_version` is checked, and errors name their field path and position.
fn parse_output(
    text: &str,
    origin: &str,
    account: &AccountId,
) -> Result<Option<Vec<ObservedGroup>>, SnapshotError> {
    let mut parsed = document::parse(text, origin, Keep::Only(account))?;
    match (parsed.accounts.take(), parsed.groups.take()) {
        (Some(mut accounts), None) => Ok(accounts.remove(account).map(|entry| entry.groups)),
        (None, Some(groups)) => Ok(Some(groups)),
        (Some(_), Some(_)) => Err(SnapshotError::Parse {
            origin: origin.to_owned(),
            message: "both `accounts` (a snapshot) and `groups` (one account): which is it?"
                .to_owned(),
        }),
        (None, None) => Err(SnapshotError::Parse {
            origin: origin.to_owned(),
            message: "neither `groups` (one account) nor `accounts` (a snapshot)".to_owned(),
        }),
    }
}

impl ExecSource {
    pub fn new(command_line: &str, options: ExecOptions) -> Result<Self, ExecError> {
        match shlex::split(command_line) {
            Some(argv) if !argv.is_empty() => Ok(Self {
                argv,
                options,
                parent_env: None,
            }),
            _ => Err(ExecError::BadCommandLine(command_line.to_owned()).redacted(&options.secrets)),
        }
    }

    /// Starts the command from `env` instead of this process's environment (the credential
    /// variables in it are still withheld unless passing them was asked for).
    pub fn with_parent_env(
        mut self,
        env: impl IntoIterator<Item = (impl Into<OsString>, impl Into<OsString>)>,
    ) -> Self {
        self.parent_env = Some(
            env.into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        );
        self
    }

    /// The command line as reports show it, secrets scrubbed.
    fn command_line(&self) -> String {
        self.options.secrets.redact(&self.argv.join(" "))
    }

    async fn run(&self, account: &AccountId) -> Result<Vec<ObservedGroup>, ExecError> {
        self.run_unredacted(account)
            .await
            .map_err(|e| e.redacted(&self.options.secrets))
    }

    /// The names of the parent's variables the command must not inherit.
    fn withheld(&self) -> Vec<OsString> {
        if self.options.pass_credentials {
            return Vec::new();
        }
        let names: Vec<OsString> = match &self.parent_env {
            Some(env) => env.iter().map(|(name, _)| name.clone()).collect(),
            None => std::env::vars_os().map(|(name, _)| name).collect(),
        };
        names
            .into_iter()
            .filter(|name| is_credential_variable(name))
            .collect()
    }

    async fn run_unredacted(&self, account: &AccountId) -> Result<Vec<ObservedGroup>, ExecError> {
        let command = self.command_line();
        let mut builder = tokio::process::Command::new(&self.argv[0]);
        if let Some(env) = &self.parent_env {
            builder.env_clear().envs(env.iter().map(|(n, v)| (n, v)));
        }
        for name in self.withheld() {
            builder.env_remove(name);
        }
        let child = builder
            .args(&self.argv[1..])
            .arg(account.as_str())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ExecError::Spawn {
                command: command.clone(),
                source,
            })?;
        let output = tokio::time::timeout(self.options.timeout, child.wait_with_output())
            .await
            .map_err(|_| ExecError::Timeout {
                command: command.clone(),
                after: self.options.timeout,
            })?
            .map_err(|source| ExecError::Spawn {
                command: command.clone(),
                source,
            })?;
        // Scrubbed whole before it is cut: a cut through a secret would leave half of it.
        let stderr = stderr_tail(
            &self
                .options
                .secrets
                .redact(&String::from_utf8_lossy(&output.stderr)),
        );
        if !output.status.success() {
            return Err(ExecError::Exit {
                command,
                status: output.status,
                stderr,
            });
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let origin = format!("output of `{command}`");
        match parse_output(&text, &origin, account) {
            Ok(Some(groups)) => Ok(groups),
            Ok(None) => Err(ExecError::AccountMissing {
                command,
                account: account.clone(),
            }),
            Err(source) => Err(ExecError::Output {
                command,
                reason: source.to_string(),
                stderr,
            }),
        }
    }
}

fn stderr_tail(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return "(empty)".to_owned();
    }
    let start = text.len().saturating_sub(STDERR_TAIL);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_owned()
}

impl GroupSource for ExecSource {
    fn describe(&self) -> String {
        format!("exec:{}", self.command_line())
    }

    async fn list(&self, account: &AccountId) -> Result<Vec<ObservedGroup>, ListingError> {
        Ok(self.run(account).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    fn account() -> AccountId {
        ACCOUNT.parse().unwrap()
    }

    fn sh(script: &str) -> ExecSource {
        let options = ExecOptions {
            timeout: Duration::from_secs(10),
            pass_credentials: false,
            secrets: KnownSecrets::none(),
        };
        ExecSource {
            argv: vec!["sh".into(), "-c".into(), script.into(), "sh".into()],
            options,
            parent_env: None,
        }
    }

    #[tokio::test]
    async fn passes_the_account_id_last_and_reads_its_groups() {
        let source = sh(
            r#"printf '{"groups":[{"id":"3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a","name":"acct-%s"}]}' "$1""#,
        );
        let groups = source.list(&account()).await.unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].name, format!("acct-{ACCOUNT}"));
    }

    #[tokio::test]
    async fn a_failing_command_names_itself_and_shows_stderr() {
        let err = sh("echo boom >&2; exit 3")
            .list(&account())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("command `sh -c"), "{text}");
        assert!(text.contains("boom"), "{text}");
    }

    #[tokio::test]
    async fn bad_json_is_a_listing_failure() {
        let err = sh("echo '{\"groups\": [}'")
            .list(&account())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ListingError::Exec(ExecError::Output { .. })),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_hung_command_is_killed_at_the_timeout() {
        let mut source = sh("sleep 30");
        source.options.timeout = Duration::from_millis(200);
        let started = std::time::Instant::now();
        let err = source.list(&account()).await.unwrap_err();
        assert!(
            matches!(err, ListingError::Exec(ExecError::Timeout { .. })),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn a_snapshot_of_another_format_version_is_refused() {
        let err = sh(&format!(
            r#"echo '{{"format_version":2,"accounts":{{"{ACCOUNT}":{{"groups":[]}}}}}}'"#
        ))
        .list(&account())
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("unsupported format_version 2"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_bad_group_id_in_an_account_names_its_field_path() {
        let err = sh(r#"echo '{"groups":[{"id":"not-an-id","name":"Ops"}]}'"#)
            .list(&account())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("groups[0].id"), "{err}");
        assert!(err.contains("line 1 column"), "{err}");
    }

    #[tokio::test]
    async fn a_bad_group_id_in_a_snapshot_names_its_field_path() {
        let err = sh(&format!(
            r#"echo '{{"format_version":1,"accounts":{{"{ACCOUNT}":{{"groups":[{{"id":"not-an-id","name":"Ops"}}]}}}}}}'"#
        ))
        .list(&account())
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&format!("accounts.{ACCOUNT}.groups[0].id")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_snapshot_serves_the_account_asked_for_and_its_raw_policies() {
        let other = "123e105f4ecef8ad9ca31a8372d0c353";
        let groups = sh(&format!(
            r#"echo '{{"format_version":1,"accounts":{{"{other}":{{"groups":[]}},"{ACCOUNT}":{{"groups":[{{"id":"3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a","name":"Ops","policies":[{{"access":"allow","n":1e400}}]}}]}}}}}}'"#
        ))
        .list(&account())
        .await
        .unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(
            groups[0]
                .policies
                .as_deref()
                .map(serde_json::value::RawValue::get),
            Some(r#"[{"access":"allow","n":1e400}]"#)
        );
        let missing = sh(&format!(
            r#"echo '{{"format_version":1,"accounts":{{"{other}":{{"groups":[]}}}}}}'"#
        ))
        .list(&account())
        .await
        .unwrap_err();
        assert!(
            matches!(
                missing,
                ListingError::Exec(ExecError::AccountMissing { .. })
            ),
            "{missing}"
        );
    }

    #[tokio::test]
    async fn a_bad_group_id_in_yaml_names_its_field_path() {
        let err = sh(r#"printf 'groups:\n  - id: not-an-id\n    name: Ops\n'"#)
            .list(&account())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("groups[0].id"), "{err}");
    }

    #[test]
    fn unbalanced_quotes_are_refused() {
        let options = ExecOptions {
            timeout: DEFAULT_EXEC_TIMEOUT,
            pass_credentials: false,
            secrets: KnownSecrets::none(),
        };
        assert!(ExecSource::new("lister 'oops", options).is_err());
    }

    const TOKEN: &str = "cftok-7Hq2v9XkL0pZ3mN8rT1yB6wE4sA5dF0gJ2";
    const KEY: &str = "0123456789abcdef0123456789abcdef01234";

    /// A parent environment holding credentials, and a source started from it.
    fn with_credentials(script: &str, pass_credentials: bool) -> ExecSource {
        let env = vec![
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("CLOUDFLARE_API_TOKEN", TOKEN.to_owned()),
            ("CLOUDFLARE_API_KEY", KEY.to_owned()),
            ("CLOUDFLARE_EMAIL", "ops@example.com".to_owned()),
            ("CF_API_TOKEN", TOKEN.to_owned()),
            ("INVENTORY_URL", "https://inventory.internal".to_owned()),
        ];
        let secrets = KnownSecrets::collect(
            env.iter().map(|(n, v)| (*n, v.as_str())),
            |_| Err(std::io::ErrorKind::NotFound.into()),
            None,
        );
        let mut source = sh(script).with_parent_env(env);
        source.options.secrets = secrets;
        source.options.pass_credentials = pass_credentials;
        source
    }

    fn assert_clean(text: &str) {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
        assert!(!text.contains(KEY), "the key leaked: {text}");
        // Not even a piece of it, cut at the stderr tail's edge.
        for piece in [&TOKEN[TOKEN.len() - 8..], &KEY[KEY.len() - 8..]] {
            assert!(!text.contains(piece), "part of a secret leaked: {text}");
        }
    }

    #[tokio::test]
    async fn a_listing_command_inherits_no_cloudflare_credentials() {
        let err = with_credentials("env >&2; exit 1", false)
            .list(&account())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("INVENTORY_URL=https://inventory.internal"),
            "{err}"
        );
        assert!(!err.contains("CLOUDFLARE_"), "{err}");
        assert!(!err.contains("CF_API_"), "{err}");
        assert!(!err.contains("ops@example.com"), "{err}");
        assert_clean(&err);
    }

    #[tokio::test]
    async fn exec_pass_credentials_passes_them() {
        let script = r#"[ -n "$CLOUDFLARE_API_TOKEN" ] && [ -n "$CLOUDFLARE_EMAIL" ] && printf '{"groups":[]}'"#;
        let groups = with_credentials(script, true)
            .list(&account())
            .await
            .unwrap();
        assert!(groups.is_empty());
        assert!(
            with_credentials(script, false)
                .list(&account())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn whatever_the_command_prints_is_scrubbed_of_every_known_secret() {
        let scripts = [
            // On stderr, then a failure.
            format!("echo 'token {TOKEN} key {KEY}' >&2; exit 3"),
            // In the output, where the parse error quotes it, and on stderr.
            format!(
                r#"echo 'using {TOKEN}' >&2; printf '{{"groups":[{{"id":"{TOKEN}","name":"x"}}]}}'"#
            ),
            format!(r#"echo {KEY} >&2; printf 'groups:\n  - id: {KEY}\n    name: x\n'"#),
            // So far back that the kept tail starts inside it.
            format!(
                "printf '%s' '{TOKEN}' >&2; head -c {} /dev/zero | tr '\\0' x >&2; exit 1",
                STDERR_TAIL - 10
            ),
        ];
        for script in scripts {
            let err = with_credentials(&script, false)
                .list(&account())
                .await
                .unwrap_err()
                .to_string();
            assert_clean(&err);
            assert!(err.contains("[REDACTED]"), "{script}: {err}");
        }
    }

    /// What the GitOps flow posts on a pull request: the plan report, in every format.
    #[tokio::test]
    async fn no_report_format_shows_a_secret_the_command_printed() {
        use crate::plan::{PlanOptions, plan};
        use crate::report::{Format, render};

        let source = with_credentials(
            &format!("env >&2; echo 'debug: token={TOKEN}' >&2; exit 1"),
            false,
        );
        let desired = crate::config::parse(
            &format!("version: 1\naccounts:\n  - id: {ACCOUNT}\n    groups: []\n"),
            std::path::Path::new("groups.yaml"),
        )
        .unwrap();
        let observed = super::super::list_accounts(&source, &desired.account_ids(), 1).await;
        let plan = plan(&desired, &observed, PlanOptions::default());
        for format in [Format::Text, Format::Json, Format::Markdown] {
            let report = render(&plan, &source.describe(), format);
            assert_clean(&report);
            assert!(report.contains("[REDACTED]"), "{format:?}: {report}");
        }
    }
}
