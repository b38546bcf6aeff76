//! B1: `plan --source cloudflare` (the real binary, default flags) against the fake API
//! holding 50 accounts of 1,000 real-shaped groups each (the fake's generator: policies with
//! permission and resource groups in both `scope` shapes, members, names beyond ASCII),
//! every request delayed by 20 ms, the fake at Cloudflare's limit (1,200 per 5 minutes).
//!
//! Targets: exactly 100 list requests per plan (page 1 of 500 names page 2; no trailing
//! request), a wall time (process start to exit, median of 5 runs) under 1 s, and a peak
//! resident memory under 150 MB. A sequential client needs at least 100 x 20 ms = 2 s.
//!
//! ```text
//! cargo bench --bench live_listing
//! CFGROUPS_BENCH_BIN=path/to/cfgroups cargo bench --bench live_listing   # another build
//! ```

use std::fmt::Write as _;
use std::time::Duration;

use cfgroups_fake::{Method, Route};
use testkit::bench::generated;
use testkit::measure::{Targets, children_peak_rss, mb, median, run_measured, secs};
use testkit::{CommandExt, Fake, cfgroups, fake};

const ACCOUNTS: usize = 50;
const GROUPS: usize = 1_000;
const LATENCY: Duration = Duration::from_millis(20);
const RUNS: usize = 5;
const EXPECTED_LISTS: usize = ACCOUNTS * 2;
const BOUND: Duration = Duration::from_secs(1);
const RSS_BOUND: u64 = 150_000_000;

fn main() {
    let (state, _, accounts) = generated(ACCOUNTS, GROUPS, 0);
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("accounts.yaml");
    let quoted = |name: &str| serde_json::to_string(name).expect("a string encodes");
    let mut yaml = String::from("version: 1\ndefaults:\n  unmanaged: ignore\naccounts:\n");
    for account in &accounts {
        let groups = state.groups(account);
        let _ = write!(
            yaml,
            "  - id: {account}\n    groups:\n      - {{name: {}, state: present}}\n      - {{name: {}, state: absent}}\n",
            quoted(&groups[0].name),
            quoted(&groups[GROUPS - 1].name),
        );
    }
    std::fs::write(&config, yaml).expect("write config");
    let fake = Fake::start_with(
        fake()
            .latency(LATENCY)
            .rate_limit(1_200, Duration::from_secs(300))
            .state(state),
    );

    let mut targets = Targets::new("B1 live_listing");
    let mut walls = Vec::with_capacity(RUNS);
    let mut lists = Vec::with_capacity(RUNS);
    let (mut sound_runs, mut only_lists_runs, mut refused, mut peak) = (0, 0, 0, 0);
    for _ in 0..RUNS {
        fake.reset_requests();
        fake.reset_rate_limit();
        let mut command = cfgroups();
        command
            .against(&fake)
            .args(["plan", "--source", "cloudflare", "--output", "json"])
            .arg("--config")
            .arg(&config);
        let run = run_measured(&mut command);
        walls.push(run.wall);
        peak = peak.max(run.peak_rss);
        let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap_or_default();
        let sound = run.status.success()
            && report["summary"]["listing_failed"] == 0
            && report["summary"]["delete"] == ACCOUNTS;
        if !sound {
            eprintln!("{}", String::from_utf8_lossy(&run.stderr));
        }
        sound_runs += usize::from(sound);
        let requests = fake.requests();
        lists.push(requests.count(Method::GET, Route::List));
        only_lists_runs +=
            usize::from(requests.total() == requests.count(Method::GET, Route::List));
        refused += requests.rate_limited();
    }
    let peak = peak.max(children_peak_rss());
    targets.check(
        "runs that exited 0 with every account planned",
        sound_runs,
        &RUNS.to_string(),
        sound_runs == RUNS,
    );
    targets.check(
        "runs that sent only list requests",
        only_lists_runs,
        &RUNS.to_string(),
        only_lists_runs == RUNS,
    );
    targets.check("429s", refused, "0", refused == 0);
    targets.check(
        "list requests per plan",
        format!("{lists:?}"),
        &format!("exactly {EXPECTED_LISTS}"),
        lists.iter().all(|n| *n == EXPECTED_LISTS),
    );
    targets.note(
        "setup",
        format!(
            "{ACCOUNTS} accounts x {GROUPS} real-shaped groups, {} ms per request, default flags",
            LATENCY.as_millis()
        ),
    );
    targets.note(
        "wall per run",
        walls.iter().map(|w| secs(*w)).collect::<Vec<_>>().join(" "),
    );
    let wall = median(&mut walls);
    targets.check(
        &format!("plan wall time, median of {RUNS}"),
        secs(wall),
        &format!("< {}", secs(BOUND)),
        wall < BOUND,
    );
    targets.check(
        "peak RSS of a plan",
        format!("{:.1} MB", mb(peak)),
        &format!("< {:.0} MB", mb(RSS_BOUND)),
        peak < RSS_BOUND,
    );
    targets.note(
        "a sequential client needs at least",
        secs(LATENCY * u32::try_from(EXPECTED_LISTS).unwrap_or(u32::MAX)),
    );
    drop(fake);
    targets.finish();
}
