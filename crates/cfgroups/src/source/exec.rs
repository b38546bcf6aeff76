//! The `exec:COMMAND` source: any program that prints an account's groups as snapshot JSON,
//! the plug-in point for inventories cfgroups does not know about.

use std::process::Stdio;
use std::time::Duration;

use thiserror::Error;

use super::document::{self, Keep};
use super::snapshot::SnapshotError;
use super::{GroupSource, ListingError};
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
    #[error(
        "exec source: command `{command}` printed output that is not a listing: {source}; stderr: {stderr}"
    )]
    Output {
        command: String,
        #[source]
        source: SnapshotError,
        stderr: String,
    },
    #[error("exec source: command `{command}` printed a snapshot without account {account}")]
    AccountMissing { command: String, account: AccountId },
}

/// Runs a program (argv split like a shell would, but with no shell) with the account id as
/// its last argument and reads that account's groups from its stdout.
#[derive(Debug, Clone)]
pub struct ExecSource {
    argv: Vec<String>,
    timeout: Duration,
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
    pub fn new(command_line: &str, timeout: Duration) -> Result<Self, ExecError> {
        match shlex::split(command_line) {
            Some(argv) if !argv.is_empty() => Ok(Self { argv, timeout }),
            _ => Err(ExecError::BadCommandLine(command_line.to_owned())),
        }
    }

    fn command_line(&self) -> String {
        self.argv.join(" ")
    }

    async fn run(&self, account: &AccountId) -> Result<Vec<ObservedGroup>, ExecError> {
        let command = self.command_line();
        let child = tokio::process::Command::new(&self.argv[0])
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
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| ExecError::Timeout {
                command: command.clone(),
                after: self.timeout,
            })?
            .map_err(|source| ExecError::Spawn {
                command: command.clone(),
                source,
            })?;
        let stderr = stderr_tail(&output.stderr);
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
                source,
                stderr,
            }),
        }
    }
}

fn stderr_tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
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
        ExecSource {
            argv: vec!["sh".into(), "-c".into(), script.into(), "sh".into()],
            timeout: Duration::from_secs(10),
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
        source.timeout = Duration::from_millis(200);
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
        assert!(ExecSource::new("lister 'oops", DEFAULT_EXEC_TIMEOUT).is_err());
    }
}
