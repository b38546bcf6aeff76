//! What the benchmarks measure and how they judge it: a run's wall time and peak resident
//! memory, medians, and targets printed next to their bounds that make a missed one fail
//! the benchmark.
//!
//! Peak memory comes from the kernel: the high-water mark `VmHWM` of `/proc/PID/status`,
//! sampled every millisecond while the process runs (it only rises, so the last sample is
//! the peak up to the process's last millisecond, spent freeing and exiting), and, over all
//! of a benchmark's runs, `getrusage(RUSAGE_CHILDREN)`'s `ru_maxrss`, exact.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One finished run.
#[derive(Debug)]
pub struct Measured {
    pub status: ExitStatus,
    pub wall: Duration,
    /// Peak resident memory, in bytes.
    pub peak_rss: u64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `command` to its end, stdout and stderr captured, sampling its peak memory.
pub fn run_measured(command: &mut Command) -> Measured {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().expect("start the measured program");
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let pid = child.id();
    let mut peak_rss = 0;
    let status = loop {
        if let Some(hwm) = proc_status_bytes(pid, "VmHWM:") {
            peak_rss = peak_rss.max(hwm);
        }
        if let Some(status) = child.try_wait().expect("wait for the measured program") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let wall = started.elapsed();
    Measured {
        status,
        wall,
        peak_rss,
        stdout: stdout.join().expect("the stdout reader"),
        stderr: stderr.join().expect("the stderr reader"),
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// The peak resident memory of every child this process has waited for, in bytes.
pub fn children_peak_rss() -> u64 {
    use nix::sys::resource::{UsageWho, getrusage};
    let kib = getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0, |usage| usage.max_rss());
    u64::try_from(kib).unwrap_or(0) * 1024
}

/// The CPU time (user plus system) of every child this process has waited for.
pub fn children_cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(Duration::ZERO, |usage| {
        let micros = |tv: nix::sys::time::TimeVal| {
            u64::try_from(tv.tv_sec()).unwrap_or(0) * 1_000_000
                + u64::try_from(tv.tv_usec()).unwrap_or(0)
        };
        Duration::from_micros(micros(usage.user_time()) + micros(usage.system_time()))
    })
}

/// A `/proc/PID/status` field given in kB (`VmRSS:`, `VmHWM:`), in bytes.
pub fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let value = status.lines().find_map(|line| line.strip_prefix(field))?;
    let kib: u64 = value.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The median (the mean of the middle two for an even count); sorts `values`.
pub fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    let n = values.len();
    match n {
        0 => Duration::ZERO,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2,
    }
}

/// The median of byte counts (the lower middle for an even count); sorts `values`.
pub fn median_bytes(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

/// Bytes as decimal megabytes, the unit the targets are stated in.
pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Seconds with two decimals, for the printed lines.
pub fn secs(duration: Duration) -> String {
    format!("{:.2}s", duration.as_secs_f64())
}

/// The targets of one benchmark: each figure is printed next to its bound as it is checked,
/// and [`Targets::finish`] exits non-zero when any was missed, so that `cargo bench` fails.
#[derive(Debug)]
pub struct Targets {
    bench: &'static str,
    missed: Vec<String>,
}

impl Targets {
    pub fn new(bench: &'static str) -> Self {
        Self {
            bench,
            missed: Vec::new(),
        }
    }

    /// Prints `figure` against `bound`, and records a miss when `met` is false.
    pub fn check(&mut self, what: &str, figure: impl std::fmt::Display, bound: &str, met: bool) {
        println!(
            "{}: {what}: {figure} (target {bound}: {})",
            self.bench,
            if met { "met" } else { "MISSED" }
        );
        if !met {
            self.missed.push(what.to_owned());
        }
    }

    /// Records whether `what` met its target, for a benchmark that prints its own line; the
    /// word to print after the figure.
    pub fn verdict(&mut self, what: &str, met: bool) -> &'static str {
        if met {
            "met"
        } else {
            self.missed.push(what.to_owned());
            "MISSED"
        }
    }

    /// Prints a figure that has no bound.
    pub fn note(&self, what: &str, figure: impl std::fmt::Display) {
        println!("{}: {what}: {figure}", self.bench);
    }

    /// Ends the benchmark: exit code 1 when a target was missed.
    pub fn finish(self) {
        if self.missed.is_empty() {
            println!("{}: every target met", self.bench);
        } else {
            eprintln!("{}: missed: {}", self.bench, self.missed.join(", "));
            std::process::exit(1);
        }
    }
}
