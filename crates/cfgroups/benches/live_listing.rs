//! B1: `plan --source cloudflare` (the real binary, default flags) against the fake API
//! holding 50 accounts of 1,000 generated groups each, every request delayed by 20 ms, the
//! fake at Cloudflare's limit (1,200 per 5 minutes).
//!
//! Targets: exactly 100 list requests per plan (page 1 of 500 names page 2; no trailing
//! request), and a wall time (process start to exit, median of 5 runs) under 1 s. A
//! sequential client needs at least 100 x 20 ms = 2 s.
//!
//! ```text
//! cargo bench --bench live_listing
//! ```

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cfgroups_fake::{Method, Route};
use testkit::bench::{Targets, generated, median, secs};
use testkit::{CommandExt, Fake, cfgroups, fake};

const ACCOUNTS: usize = 50;
const GROUPS: usize = 1_000;
const LATENCY: Duration = Duration::from_millis(20);
const RUNS: usize = 5;
const EXPECTED_LISTS: usize = ACCOUNTS * 2;
const BOUND: Duration = Duration::from_secs(1);

fn main() {
    let (state, _, accounts) = generated(ACCOUNTS, GROUPS, 0);
    let fake = Fake::start_with(
        fake()
            .latency(LATENCY)
            .rate_limit(1_200, Duration::from_secs(300))
            .state(state),
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("accounts.yaml");
    let mut yaml = String::from("version: 1\ndefaults:\n  unmanaged: ignore\naccounts:\n");
    for account in &accounts {
        let _ = write!(
            yaml,
            "  - id: {account}\n    groups:\n      - {{name: group-0000, state: present}}\n      - {{name: group-0999, state: absent}}\n"
        );
    }
    std::fs::write(&config, yaml).expect("write config");

    let mut targets = Targets::new("B1 live_listing");
    let mut walls = Vec::with_capacity(RUNS);
    let mut lists = Vec::with_capacity(RUNS);
    let (mut sound_runs, mut only_lists_runs, mut refused) = (0, 0, 0);
    for _ in 0..RUNS {
        fake.reset_requests();
        fake.reset_rate_limit();
        let started = Instant::now();
        let output = cfgroups()
            .against(&fake)
            .args(["plan", "--source", "cloudflare", "--output", "json"])
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run cfgroups");
        walls.push(started.elapsed());
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        let sound = output.status.success()
            && report["summary"]["listing_failed"] == 0
            && report["summary"]["delete"] == ACCOUNTS;
        if !sound {
            eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        }
        sound_runs += usize::from(sound);
        let requests = fake.requests();
        lists.push(requests.count(Method::GET, Route::List));
        only_lists_runs +=
            usize::from(requests.total() == requests.count(Method::GET, Route::List));
        refused += requests.rate_limited();
    }
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
    let exact = lists.iter().all(|n| *n == EXPECTED_LISTS);
    targets.check(
        "list requests per plan",
        format!("{lists:?}"),
        &format!("exactly {EXPECTED_LISTS}"),
        exact,
    );
    let wall = median(walls.clone());
    targets.note(
        "setup",
        format!(
            "{ACCOUNTS} accounts x {GROUPS} generated groups, {} ms per request, default flags",
            LATENCY.as_millis()
        ),
    );
    targets.note(
        "wall per run",
        walls.iter().map(|w| secs(*w)).collect::<Vec<_>>().join(" "),
    );
    targets.check(
        &format!("plan wall time, median of {RUNS}"),
        secs(wall),
        &format!("< {}", secs(BOUND)),
        wall < BOUND,
    );
    targets.note(
        "a sequential client needs at least",
        secs(LATENCY * u32::try_from(EXPECTED_LISTS).unwrap_or(u32::MAX)),
    );
    drop(fake);
    targets.finish();
}
