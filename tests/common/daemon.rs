//! The daemon under test: `cfgroups run` started against the fake with health and metrics on
//! a free loopback port, its JSON log collected, `/metrics` read over plain HTTP, and its
//! memory and CPU read from `/proc`. Killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{Fake, cfgroups};

/// Polls `check` until it yields a value; panics with `what` after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The daemon's stderr, one JSON log line per entry, collected by a reader thread.
#[derive(Default)]
pub struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl Log {
    /// Waits for a line whose message is `message`; returns its fields.
    pub fn wait_for_message(&self, message: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        loop {
            let found = lines.iter().find_map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).ok()?;
                (value["fields"]["message"] == message).then(|| value["fields"].clone())
            });
            if let Some(fields) = found {
                return fields;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {message:?} log line within {timeout:?}:\n{}",
                lines.join("\n")
            );
            lines = self.grew.wait_timeout(lines, left).unwrap().0;
        }
    }
}

/// A running `cfgroups run`; killed (and reaped) on drop.
pub struct Daemon {
    child: Child,
    pub log: Arc<Log>,
    pub listen: SocketAddr,
}

impl Daemon {
    /// Starts `cfgroups run` on `config`, journaling under `state`, with health and metrics
    /// on a free loopback port, and waits until it says it has started.
    pub fn start(fake: &Fake, config: &Path, state: &Path, args: &[&str]) -> Self {
        let mut child = cfgroups(fake)
            .args(["--log-format", "json", "run", "--listen", "127.0.0.1:0"])
            .arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(state)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cfgroups run starts");
        let log = Arc::new(Log::default());
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn({
            let log = log.clone();
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lines.lock().unwrap().push(line);
                    log.grew.notify_all();
                }
            }
        });
        let mut daemon = Self {
            child,
            log,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let fields = daemon
            .log
            .wait_for_message("cfgroups daemon started", Duration::from_secs(30));
        daemon.listen = fields["listen"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("the start line names the listen address");
        assert!(daemon.listen.ip().is_loopback());
        daemon
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The `/metrics` exposition.
    pub fn metrics(&self) -> String {
        let mut stream = TcpStream::connect_timeout(&self.listen, Duration::from_secs(5))
            .expect("metrics server reachable");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.listen
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }

    /// The sum of every sample of metric `name` (all label sets).
    pub fn metric(&self, name: &str) -> f64 {
        metric(&self.metrics(), name)
    }

    /// Finished reconciles, whatever their result.
    pub fn reconciles(&self) -> u64 {
        self.metric("cfgroups_reconciles_total") as u64
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// User plus system CPU time used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / per_sec)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sum of every sample of `name` in a Prometheus text exposition.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
