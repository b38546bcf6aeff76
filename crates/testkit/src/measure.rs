//! What the benchmarks measure and how they judge it: a run's wall time and peak resident
//! memory, medians, and targets that make a missed one fail the benchmark.
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

/// The verdicts of one benchmark program; [`Targets::finish`] exits non-zero when any
/// target was missed, so that `cargo bench` fails.
#[derive(Debug, Default)]
pub struct Targets {
    missed: Vec<String>,
}

impl Targets {
    /// Records whether the target `what` was met; the word to print after the figure.
    pub fn check(&mut self, what: &str, met: bool) -> &'static str {
        if met {
            "met"
        } else {
            self.missed.push(what.to_owned());
            "MISSED"
        }
    }

    /// Exits with status 1, naming them, when a target was missed.
    pub fn finish(self) {
        if !self.missed.is_empty() {
            eprintln!("targets missed: {}", self.missed.join(", "));
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut [ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(
            median(&mut [ms(4), ms(1), ms(2), ms(3)]),
            Duration::from_micros(2500)
        );
        assert_eq!(median_bytes(&mut [5, 1, 3, 2]), 2);
    }

    #[test]
    fn a_run_is_measured() {
        let measured = run_measured(Command::new("sh").args(["-c", "echo out; echo err >&2"]));
        assert!(measured.status.success());
        assert_eq!(measured.stdout, b"out\n");
        assert_eq!(measured.stderr, b"err\n");
        assert!(children_peak_rss() > 0);
    }
}
