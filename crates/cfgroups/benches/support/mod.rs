//! What the benchmarks share: running a program while sampling its peak resident memory,
//! reading a live process's memory, medians, and the verdict that makes a missed target
//! fail the run.
//!
//! Peak memory is the kernel's high-water mark (`VmHWM` in `/proc/PID/status`), sampled
//! every millisecond until the process exits; it only rises, so the last sample is the
//! peak, give or take what a process could allocate in its last millisecond (spent
//! freeing and exiting).

#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `cfgroups` binary measured: this build's, or `CFGROUPS_BENCH_BIN` to measure another
/// build (say, the one before a change) on exactly the same data.
pub fn cfgroups_binary() -> PathBuf {
    std::env::var_os("CFGROUPS_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cfgroups")))
}

/// One finished run.
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
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
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

/// A `/proc/PID/status` field given in kB (`VmRSS:`, `VmHWM:`), in bytes.
pub fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Resident memory of a running child, in bytes.
pub fn rss_of(child: &Child) -> u64 {
    proc_status_bytes(child.id(), "VmRSS:").unwrap_or(0)
}

/// The median of some durations (the mean of the middle two for an even count).
pub fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2
    }
}

/// Bytes as decimal megabytes, the unit the targets are stated in.
pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Collects the verdicts of one benchmark program; [`Targets::finish`] exits non-zero when
/// any target was missed, so `cargo bench` fails.
#[derive(Default)]
pub struct Targets {
    missed: Vec<String>,
}

impl Targets {
    /// Records one comparison and returns the word printed after it.
    pub fn check(&mut self, what: &str, met: bool) -> &'static str {
        if met {
            "met"
        } else {
            self.missed.push(what.to_owned());
            "MISSED"
        }
    }

    pub fn finish(self) {
        if !self.missed.is_empty() {
            eprintln!("targets missed: {}", self.missed.join(", "));
            std::process::exit(1);
        }
    }
}
