//! The `cfgroups` command as every test runs it: hermetic (nothing of the caller's
//! environment that the binary reads leaks in), from the repository root, optionally wired to
//! a fake API; its output as text; and signals to a running one.

use std::path::Path;
use std::process::{Command, Stdio};

use cfgroups_fake::FakeCloudflare;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::fake::TOKEN;
use crate::paths::{bin, repo_root};

/// Variables cleared by prefix: the binary's own and the Cloudflare credentials and URL.
const CLEARED_PREFIXES: [&str; 2] = ["CLOUDFLARE_", "CFGROUPS_"];

/// Other variables the binary, its logging, its terminal handling or its HTTP stack read.
const CLEARED: [&str; 16] = [
    "STATE_DIRECTORY",
    "CREDENTIALS_DIRECTORY",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "RUST_LOG",
    "XDG_STATE_HOME",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "SOURCE_DATE_EPOCH",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

/// The `cfgroups` binary with a clean environment: every `CLOUDFLARE_*` and `CFGROUPS_*`
/// variable, the systemd and state directory variables, `RUST_LOG`, `XDG_STATE_HOME`, the
/// colour forcing and proxy variables removed; `NO_COLOR=1`; no proxy for loopback; stdin
/// empty; run from the repository root, so `examples/groups.yaml` names the example.
pub fn cfgroups() -> Command {
    let mut cmd = Command::new(bin());
    for (name, _) in std::env::vars_os() {
        let cleared = name
            .to_str()
            .is_some_and(|name| CLEARED_PREFIXES.iter().any(|p| name.starts_with(p)));
        if cleared {
            cmd.env_remove(&name);
        }
    }
    for name in CLEARED {
        cmd.env_remove(name);
    }
    cmd.env("NO_COLOR", "1")
        .env("NO_PROXY", "127.0.0.1,localhost,::1")
        .current_dir(repo_root())
        .stdin(Stdio::null());
    cmd
}

/// `cfgroups apply --yes` of `config` against `fake`, journaling under `state_dir`.
pub fn apply(fake: &FakeCloudflare, config: &Path, state_dir: &Path) -> Command {
    let mut cmd = cfgroups();
    cmd.against(fake)
        .arg("apply")
        .arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--yes");
    cmd
}

/// What tests add to a [`cfgroups`] command.
pub trait CommandExt {
    /// Sends the command's API requests to `base_url`, with the test [`TOKEN`].
    fn api(&mut self, base_url: &str) -> &mut Self;

    /// Sends the command's API requests to `fake`, with the test [`TOKEN`].
    fn against(&mut self, fake: &FakeCloudflare) -> &mut Self {
        self.api(&fake.base_url())
    }

    /// A request budget so wide it never waits: for tests about behaviour, not pacing.
    fn unlimited(&mut self) -> &mut Self;

    /// Runs the command to its end; its exit code and output as text.
    fn run(&mut self) -> Run;
}

impl CommandExt for Command {
    fn api(&mut self, base_url: &str) -> &mut Self {
        self.env("CLOUDFLARE_BASE_URL", base_url)
            .env("CLOUDFLARE_API_TOKEN", TOKEN)
    }

    fn unlimited(&mut self) -> &mut Self {
        self.args(["--max-requests", "1000000", "--budget-window", "1s"])
    }

    fn run(&mut self) -> Run {
        let output = self.output().expect("cfgroups runs");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A finished command, with its output as text.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing the output when it differs.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Sends `signal` to the process `pid` (a child of the test, not yet reaped).
pub fn signal(pid: u32, signal: Signal) {
    let raw = i32::try_from(pid).expect("a pid");
    nix::sys::signal::kill(Pid::from_raw(raw), signal)
        .unwrap_or_else(|e| panic!("kill({pid}, {signal}) failed: {e}"));
}
