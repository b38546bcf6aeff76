//! Scale benchmark of `cfgroups plan`: generates 200 accounts x 500 groups (100,000 declared,
//! 100,000 observed), runs `plan --source snapshot:... --output json` on the release binary
//! several times, and prints the median wall time and the peak RSS.
//!
//! `cargo bench --bench plan_scale` (targets: under 1 s median, under 200 MB peak RSS).
//! `cargo bench --bench plan_scale -- --keep DIR` also leaves the generated files in DIR.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ACCOUNTS: usize = 200;
const GROUPS: usize = 500;
const RUNS: usize = 11;

fn hex32(kind: u8, account: usize, group: usize) -> String {
    format!("{kind:02x}{account:014x}{group:016x}")
}

/// Per account: 400 present and 50 absent by name, 50 absent by id; the live side has the
/// 400 present groups, 25 of each kind of absent one, and 50 undeclared ones.
fn generate(dir: &Path) -> (PathBuf, PathBuf) {
    let mut config =
        String::from("version: 1\ndefaults:\n  unmanaged: report\n  max_deletes: 100\naccounts:\n");
    let mut snapshot = String::from("{\"format_version\":1,\"accounts\":{");
    for a in 0..ACCOUNTS {
        let account = hex32(0xac, a, 0);
        let _ = write!(
            config,
            "  - id: {account}\n    label: account-{a}\n    groups:\n"
        );
        if a > 0 {
            snapshot.push(',');
        }
        let _ = write!(snapshot, "\"{account}\":{{\"groups\":[");
        let mut live = Vec::new();
        for g in 0..GROUPS {
            let id = hex32(0x9e, a, g);
            let name = format!("group-{a}-{g}");
            match g {
                0..400 => {
                    let _ = writeln!(config, "      - name: {name}\n        state: present");
                    live.push((id, name));
                }
                400..450 => {
                    let _ = writeln!(config, "      - name: {name}\n        state: absent");
                    if g % 2 == 0 {
                        live.push((id, name));
                    }
                }
                _ => {
                    let _ = writeln!(config, "      - id: {id}\n        state: absent");
                    if g % 2 == 0 {
                        live.push((id, name));
                    }
                }
            }
        }
        for u in 0..(GROUPS - live.len()) {
            live.push((hex32(0x0f, a, u), format!("stray-{a}-{u}")));
        }
        for (i, (id, name)) in live.iter().enumerate() {
            if i > 0 {
                snapshot.push(',');
            }
            let _ = write!(
                snapshot,
                "{{\"id\":\"{id}\",\"name\":\"{name}\",\"created_on\":\"2024-03-01T12:21:02Z\",\"modified_on\":\"2024-03-01T12:21:02Z\",\"policies\":[]}}"
            );
        }
        snapshot.push_str("]}");
    }
    snapshot.push_str("}}\n");
    let config_path = dir.join("groups.yaml");
    let snapshot_path = dir.join("snapshot.json");
    std::fs::write(&config_path, config).expect("write config");
    std::fs::write(&snapshot_path, snapshot).expect("write snapshot");
    (config_path, snapshot_path)
}

fn peak_children_rss_kib() -> i64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage")
        .max_rss()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let keep = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = keep.unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir).expect("create dir");
    let (config, snapshot) = generate(&dir);
    let binary = env!("CARGO_BIN_EXE_cfgroups");

    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let status = Command::new(binary)
            .arg("plan")
            .arg("--config")
            .arg(&config)
            .arg("--source")
            .arg(format!("snapshot:{}", snapshot.display()))
            .args(["--output", "json"])
            .stdout(Stdio::null())
            .status()
            .expect("run cfgroups");
        times.push(started.elapsed());
        assert!(status.success(), "cfgroups plan failed: {status}");
    }
    times.sort();
    let median = times[RUNS / 2];
    let peak_mib = peak_children_rss_kib() as f64 / 1024.0;
    println!(
        "plan_scale: {ACCOUNTS} accounts x {GROUPS} groups, {RUNS} runs: median {:.3} s (min {:.3} s, max {:.3} s), peak RSS {peak_mib:.1} MiB",
        median.as_secs_f64(),
        times[0].as_secs_f64(),
        times[RUNS - 1].as_secs_f64(),
    );
}
