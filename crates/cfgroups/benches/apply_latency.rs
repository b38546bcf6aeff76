//! B2: routine `apply` at network speed. The real binary with default flags against the
//! fake API (20 ms per request, Cloudflare's limit of 1,200 per 5 minutes) holding 20
//! accounts of 700 generated groups, 1% of them (7 per account, 140 in all) declared absent.
//!
//! Requests: 2 list pages per account (40), and per deletion a fresh read, the members
//! backup and the DELETE (420): 460. A sequential client needs at least 460 x 20 ms = 9.2 s
//! (the issue's 300 x 20 ms = 6 s counted two requests per deletion).
//!
//! Targets: exactly the 140 groups deleted, exit 0, zero 429s, and a wall time (process
//! start to exit, median of 5 runs) under 1.5 s.
//!
//! ```text
//! cargo bench --bench apply_latency
//! ```

use std::time::{Duration, Instant};

use cfgroups_fake::{Method, Route};
use testkit::bench::generated;
use testkit::measure::{Targets, median, secs};
use testkit::{CommandExt, Fake, apply, fake, write_config};

const ACCOUNTS: usize = 20;
const GROUPS: usize = 700;
const ABSENT: usize = 7;
const LATENCY: Duration = Duration::from_millis(20);
const RUNS: usize = 5;
const BOUND: Duration = Duration::from_millis(1_500);

fn main() {
    let (state, configs, accounts) = generated(ACCOUNTS, GROUPS, ABSENT);
    let fake = Fake::start_with(
        fake()
            .latency(LATENCY)
            .rate_limit(1_200, Duration::from_secs(300))
            .state(state.clone()),
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = write_config(dir.path(), &configs);
    let mut targets = Targets::new("B2 apply_latency");
    let mut walls = Vec::with_capacity(RUNS);
    let mut requests_per_run = Vec::with_capacity(RUNS);
    let (mut exact_runs, mut refused) = (0, 0);
    for run in 0..RUNS {
        fake.set_state(state.clone());
        fake.reset_requests();
        fake.reset_rate_limit();
        let state_dir = dir.path().join(format!("state-{run}"));
        let started = Instant::now();
        let out = apply(&fake, &config, &state_dir).run();
        walls.push(started.elapsed());
        let exact = out.code == Some(0)
            && accounts
                .iter()
                .all(|a| fake.groups(a).len() == GROUPS - ABSENT);
        if !exact {
            eprintln!("{}\n{}", out.stdout, out.stderr);
        }
        exact_runs += usize::from(exact);
        let requests = fake.requests();
        refused += requests.rate_limited();
        requests_per_run.push((
            requests.total(),
            requests.count(Method::GET, Route::List),
            requests.count(Method::GET, Route::Members),
            requests.count(Method::DELETE, Route::Delete),
        ));
    }
    targets.check(
        "runs that exited 0 with exactly the absent groups deleted",
        exact_runs,
        &RUNS.to_string(),
        exact_runs == RUNS,
    );
    targets.check("429s", refused, "0", refused == 0);
    let (total, lists, members, deletes) = requests_per_run[0];
    targets.note(
        "requests per run",
        format!(
            "{total} ({lists} list pages and exact-name reads, {members} member backups, \
             {deletes} DELETEs); every run: {:?}",
            requests_per_run.iter().map(|r| r.0).collect::<Vec<_>>()
        ),
    );
    targets.note(
        "wall per run",
        walls.iter().map(|w| secs(*w)).collect::<Vec<_>>().join(" "),
    );
    let wall = median(&mut walls);
    targets.check(
        &format!("apply wall time, median of {RUNS}"),
        secs(wall),
        &format!("< {}", secs(BOUND)),
        wall < BOUND,
    );
    targets.note(
        "a sequential client needs at least",
        format!(
            "{total} x {} ms = {}",
            LATENCY.as_millis(),
            secs(LATENCY * u32::try_from(total).unwrap_or(u32::MAX))
        ),
    );
    drop(fake);
    targets.finish();
}
