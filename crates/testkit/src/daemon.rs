//! The daemon harness: the real `cfgroups run` against a fake API, started with a config and
//! a state directory; its JSON log collected as it is written; its health and metrics server
//! queried (async, or blocking for synchronous tests); signalled; its memory and CPU read
//! from `/proc`; killed and reaped when the handle drops. Also the checks daemon tests make
//! of the fake: which group a name stands for, and when its DELETE was answered.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cfgroups::model::{AccountId, GroupId};
use cfgroups_fake::{FakeCloudflare, Method, Route};
use nix::sys::signal::Signal;

use crate::command::{CommandExt, cfgroups, signal};
use crate::wait::{WAIT, eventually, wait_until, within};

/// A plain-http client for the daemon's health and metrics server.
pub fn http() -> reqwest::Client {
    // reqwest needs a TLS provider even for plain http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an http client")
}

/// How to start one daemon.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub config: PathBuf,
    pub state_dir: PathBuf,
    pub base_url: String,
    pub interval: Duration,
    pub dry_run: bool,
    /// Further arguments after the usual ones.
    pub extra: Vec<String>,
    /// Environment variables set after the usual ones.
    pub env: Vec<(String, String)>,
}

impl DaemonOptions {
    /// A daemon on `config` against `fake`, with an interval long enough never to tick
    /// during a test.
    pub fn new(config: &Path, state_dir: &Path, fake: &FakeCloudflare) -> Self {
        Self {
            config: config.to_owned(),
            state_dir: state_dir.to_owned(),
            base_url: fake.base_url(),
            interval: Duration::from_secs(3600),
            dry_run: false,
            extra: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra.push(arg.into());
        self
    }

    pub fn args<S: Into<String>>(self, args: impl IntoIterator<Item = S>) -> Self {
        args.into_iter().fold(self, Self::arg)
    }

    /// Starts the binary and waits until it logs the address it serves on.
    pub async fn start(self) -> Daemon {
        let mut daemon = self.spawn();
        let addr = eventually("the daemon's start line", WAIT, async || daemon.started()).await;
        daemon.addr = Some(addr);
        daemon
    }

    /// [`start`](Self::start), blocking the thread while it waits: for synchronous tests.
    pub fn blocking_start(self) -> Daemon {
        let mut daemon = self.spawn();
        let addr = wait_until("the daemon's start line", WAIT, || daemon.started());
        daemon.addr = Some(addr);
        daemon
    }

    /// Starts the binary, with its log collected from now on.
    fn spawn(self) -> Daemon {
        let mut command = cfgroups();
        command
            .api(&self.base_url)
            .arg("--log-format")
            .arg("json")
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--interval")
            .arg(humantime::format_duration(self.interval).to_string());
        if self.dry_run {
            command.arg("--dry-run");
        }
        command
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("cannot start cfgroups run");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Log::default();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                match line {
                    Ok(line) => lines.push(line),
                    Err(_) => break,
                }
            }
        });
        Daemon {
            child,
            log,
            addr: None,
            state_dir: self.state_dir,
            exited: None,
        }
    }
}

/// The daemon's stderr, one JSON object per line, collected as it is written.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, line: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// Parsed lines whose message is `message`.
    pub fn events(&self, message: &str) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["fields"]["message"] == message)
            .collect()
    }

    /// The `field` of the first line whose message is `message`, as text.
    pub fn find_field(&self, message: &str, field: &str) -> Option<String> {
        self.events(message).first().and_then(|event| {
            event["fields"][field]
                .as_str()
                .map(str::to_owned)
                .or_else(|| event["fields"].get(field).map(|v| v.to_string()))
        })
    }
}

/// A running `cfgroups run`. Dropping it kills the process and reaps it.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    pub log: Log,
    addr: Option<SocketAddr>,
    pub state_dir: PathBuf,
    exited: Option<ExitStatus>,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address from the start line once it is logged; panics if the process exited
    /// before it.
    fn started(&mut self) -> Option<SocketAddr> {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "cfgroups run exited at start with {status}:\n{}",
                self.log.text()
            );
        }
        let addr = self.log.find_field("cfgroups daemon started", "listen")?;
        Some(addr.parse().expect("a socket address in the start line"))
    }

    /// The health and metrics server's address, from the start line.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("started")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// `GET path`: the status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = http()
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log.text()));
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    pub async fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200, "/metrics answered {status}");
        body
    }

    /// Polls `/metrics` until `check` finds what it wants in the text.
    pub async fn wait_metrics<T>(&self, what: &str, check: impl FnMut(&str) -> Option<T>) -> T {
        self.wait_metrics_within(what, WAIT, check).await
    }

    /// [`wait_metrics`](Self::wait_metrics), giving up after `timeout`.
    pub async fn wait_metrics_within<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let mut last = String::new();
        let found = within(timeout, async || {
            let text = self.metrics().await;
            let found = check(&text);
            last = text;
            found
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "timed out after {timeout:?} waiting for {what} in /metrics:\n{last}\n--- log ---\n{}",
                self.log.text()
            )
        })
    }

    /// Waits until `series` (name and labels, exactly as exported) reaches at least `min`.
    pub async fn wait_metric_at_least(&self, series: &str, min: f64) -> f64 {
        self.wait_metrics(&format!("{series} >= {min}"), |text| {
            metric(text, series).filter(|v| *v >= min)
        })
        .await
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let ready = within(WAIT, async || {
            (self.get("/readyz").await.0 == 200).then_some(())
        })
        .await;
        assert!(
            ready.is_some(),
            "not ready after {WAIT:?}:\n{}",
            self.log.text()
        );
    }

    /// Sends `signal` (e.g. [`Signal::SIGHUP`]).
    pub fn signal(&self, sig: Signal) {
        signal(self.pid(), sig);
    }

    /// Waits for the process to exit; its status, or `None` after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = within(timeout, async || self.child.try_wait().expect("try_wait")).await;
        self.exited = status;
        status
    }

    pub fn report_path(&self) -> PathBuf {
        self.state_dir.join("last-report.json")
    }

    pub fn journal_path(&self) -> PathBuf {
        self.state_dir.join(cfgroups::journal::JOURNAL_FILE)
    }

    /// Memory and CPU use from `/proc`: `(VmRSS bytes, utime + stime in clock ticks)`.
    pub fn proc_usage(&self) -> (u64, u64) {
        proc_usage(self.pid())
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.proc_usage().0 / 1024
    }

    /// User plus system CPU time used so far.
    pub fn cpu_time(&self) -> Duration {
        Duration::from_millis(self.proc_usage().1 * 1000 / clock_ticks_per_second())
    }

    /// SIGKILL, and reap.
    pub fn kill(self) {
        drop(self);
    }

    /// `GET /metrics` over a plain TCP stream, blocking the thread: for synchronous tests.
    pub fn blocking_metrics(&self) -> String {
        let addr = self.addr();
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .expect("metrics server reachable");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a read timeout");
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .expect("the request is sent");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("the response is read");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }

    /// The sum of every sample of metric `name` (all label sets), blocking the thread.
    pub fn blocking_metric_total(&self, name: &str) -> f64 {
        metric_total(&self.blocking_metrics(), name)
    }

    /// Finished reconciles, whatever their result, blocking the thread.
    pub fn blocking_reconciles(&self) -> u64 {
        self.blocking_metric_total("cfgroups_reconciles_total") as u64
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- cfgroups run log ---\n{}", self.log.text());
        }
    }
}

/// The value of `series` (a metric name with its labels, exactly as exported) in OpenMetrics
/// text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// The sum of every sample of metric `name` (all label sets) in OpenMetrics text.
pub fn metric_total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `(VmRSS in bytes, utime + stime in clock ticks)` of a process.
pub fn proc_usage(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    (rss_kb * 1024, utime + stime)
}

/// Clock ticks per second, for [`proc_usage`]'s CPU times.
pub fn clock_ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|ticks| u64::try_from(ticks).ok())
        .filter(|ticks| *ticks > 0)
        .unwrap_or(100)
}

/// Waits until the fake has answered a DELETE of `group` with 200, and no longer lists it.
pub async fn wait_deleted(fake: &FakeCloudflare, account: &AccountId, group: impl AsRef<str>) {
    let group = group.as_ref();
    let done = fake
        .wait_for_requests(WAIT, |requests| {
            requests.log().iter().any(|r| {
                r.method == Method::DELETE
                    && r.route == Route::Delete
                    && r.path.ends_with(group)
                    && r.status == Some(200)
            })
        })
        .await;
    assert!(
        done.is_some(),
        "no DELETE of {group} within {WAIT:?}; requests: {:#?}",
        fake.requests().log()
    );
    assert!(
        !fake.groups(account).iter().any(|g| g.id == group),
        "{group} is still listed after its DELETE"
    );
}

/// The id of the group named `name` in the fake's `account`.
pub fn group_named(fake: &FakeCloudflare, account: &AccountId, name: &str) -> GroupId {
    fake.groups(account)
        .iter()
        .find(|g| g.name == name)
        .map(|g| g.id.parse().expect("a valid group id"))
        .unwrap_or_else(|| panic!("no group {name} in {account}"))
}
