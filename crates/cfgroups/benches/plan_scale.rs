//! Scale benchmark of `cfgroups plan` on a snapshot: 200 accounts x 500 real-shaped groups
//! (the fake's generator: 0-3 policies with permission and resource groups in both `scope`
//! shapes, names with spaces and letters beyond ASCII; about 60 MB of JSON), 100,000
//! declared groups, `plan --source snapshot:FILE --output json` with default flags on the
//! release binary, several runs.
//!
//! Targets: median wall time under 1 s, peak RSS under 200 MB (the highest of every run,
//! from `getrusage`). The program exits non-zero when one is missed.
//!
//! ```text
//! cargo bench --bench plan_scale                  # measure this build
//! cargo bench --bench plan_scale -- --keep DIR    # and leave the generated files in DIR
//! CFGROUPS_BENCH_BIN=path/to/cfgroups cargo bench --bench plan_scale   # another build
//! ```

use std::fmt::Write as _;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cfgroups_fake::FakeState;
use testkit::measure::{
    Targets, children_cpu_time, children_peak_rss, mb, median, median_bytes, run_measured,
};

const ACCOUNTS: usize = 200;
const GROUPS: usize = 500;
const RUNS: usize = 7;
const WALL_TARGET: Duration = Duration::from_secs(1);
const RSS_TARGET: u64 = 200_000_000;

fn account(a: usize) -> String {
    format!("ac{a:030x}")
}

/// A YAML scalar for any name: a JSON string is a valid YAML double-quoted scalar.
fn quoted(name: &str) -> String {
    serde_json::to_string(name).expect("a string encodes")
}

/// Per account, 500 live groups and 500 declarations: the first 400 groups present by
/// name; 25 live and 25 long-gone groups absent by name; 25 live and 25 long-gone groups
/// absent by id; the last 50 live groups undeclared (reported as unmanaged).
fn generate(dir: &Path) -> (PathBuf, PathBuf) {
    let config_path = dir.join("groups.yaml");
    let snapshot_path = dir.join("snapshot.json");
    let mut config =
        String::from("version: 1\ndefaults:\n  unmanaged: report\n  max_deletes: 100\naccounts:\n");
    let file = std::fs::File::create(&snapshot_path).expect("create the snapshot");
    let mut snapshot = BufWriter::new(file);
    write!(snapshot, "{{\"format_version\":1,\"accounts\":{{").expect("write the snapshot");
    for a in 0..ACCOUNTS {
        let id = account(a);
        let state = FakeState::new().with_real_shaped_groups(&id, GROUPS, a as u64);
        let groups = state.groups(&id);
        let _ = write!(
            config,
            "  - id: {id}\n    label: account-{a}\n    groups:\n"
        );
        for (g, group) in groups.iter().enumerate() {
            let _ = match g {
                0..400 => writeln!(
                    config,
                    "      - name: {}\n        state: present",
                    quoted(&group.name)
                ),
                400..425 => writeln!(
                    config,
                    "      - name: {}\n        state: absent",
                    quoted(&group.name)
                ),
                425..450 => writeln!(config, "      - id: {}\n        state: absent", group.id),
                _ => Ok(()),
            };
        }
        for k in 0..25 {
            let _ = writeln!(
                config,
                "      - name: {}\n        state: absent\n      - id: {:032x}\n        state: absent",
                quoted(&format!("Retired Équipe {a}-{k}")),
                (a * 100 + k) as u128 | (0xdead_u128 << 100),
            );
        }
        if a > 0 {
            snapshot.write_all(b",").expect("write the snapshot");
        }
        write!(snapshot, "\"{id}\":{{\"groups\":[").expect("write the snapshot");
        for (g, group) in groups.iter().enumerate() {
            if g > 0 {
                snapshot.write_all(b",").expect("write the snapshot");
            }
            serde_json::to_writer(&mut snapshot, &group.api_object()).expect("write a group");
        }
        snapshot.write_all(b"]}").expect("write the snapshot");
    }
    snapshot.write_all(b"}}\n").expect("write the snapshot");
    snapshot.flush().expect("write the snapshot");
    std::fs::write(&config_path, config).expect("write the config");
    (config_path, snapshot_path)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let keep = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dir = keep.unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir).expect("create the directory");
    let (config, snapshot) = generate(&dir);
    let size = std::fs::metadata(&snapshot).map_or(0, |m| m.len());
    let binary = testkit::bin();

    let mut walls = Vec::with_capacity(RUNS);
    let mut peaks = Vec::with_capacity(RUNS);
    for run in 0..RUNS {
        let measured = run_measured(
            Command::new(&binary)
                .arg("plan")
                .arg("--config")
                .arg(&config)
                .arg("--source")
                .arg(format!("snapshot:{}", snapshot.display()))
                .args(["--output", "json"])
                .env_remove("RUST_LOG"),
        );
        assert!(
            measured.status.success(),
            "cfgroups plan failed ({}): {}",
            measured.status,
            String::from_utf8_lossy(&measured.stderr)
        );
        if run == 0 {
            let report: serde_json::Value =
                serde_json::from_slice(&measured.stdout).expect("a JSON report");
            assert_eq!(
                report["summary"]["delete"],
                ACCOUNTS * 50,
                "the plan's deletions"
            );
            assert_eq!(report["summary"]["listing_failed"], 0);
        }
        walls.push(measured.wall);
        peaks.push(measured.peak_rss);
    }
    let wall = median(&mut walls);
    let peak = children_peak_rss().max(peaks.iter().copied().max().unwrap_or(0));
    let mut targets = Targets::new("plan_scale");
    println!(
        "plan_scale: plan --source snapshot:FILE --output json, {}: {ACCOUNTS} accounts x \
         {GROUPS} real-shaped groups, snapshot {:.1} MB, {RUNS} runs",
        binary.display(),
        mb(size)
    );
    println!(
        "  wall: median {:.3} s (min {:.3} s, max {:.3} s); target median < {:.1} s: {}",
        wall.as_secs_f64(),
        walls[0].as_secs_f64(),
        walls[RUNS - 1].as_secs_f64(),
        WALL_TARGET.as_secs_f64(),
        targets.verdict("plan_scale wall", wall < WALL_TARGET),
    );
    // The CPU time shows how much of the wall time was waiting for a busy machine.
    println!(
        "  CPU (user + system): {:.3} s per run, the mean of {RUNS}",
        children_cpu_time().as_secs_f64() / RUNS as f64,
    );
    println!(
        "  peak RSS: max {:.1} MB (median {:.1} MB); target every run < {:.0} MB: {}",
        mb(peak),
        mb(median_bytes(&mut peaks)),
        mb(RSS_TARGET),
        targets.verdict("plan_scale peak RSS", peak < RSS_TARGET),
    );
    targets.finish();
}
