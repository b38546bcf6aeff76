//! B3: a mass cleanup at the budget's exact pace. The real binary against the fake API
//! (20 ms per request) limited to 1,200 requests per sliding 30 s with a 30 s lockout; the
//! binary is given `--max-requests 1000 --budget-window 30s`, other flags at their defaults.
//! 5 accounts of 700 generated groups, 60% of them (420 per account, 2,100 in all) declared
//! absent.
//!
//! Requests: 2 list pages per account (10), and per deletion a fresh read, the members
//! backup and the DELETE (6,300): R = 6,310 (the issue's ~4,200 counted two per deletion).
//!
//! Lower bound: at most 1,000 admissions in any rolling 30 s, so R requests need at least
//! `(ceil(R / 1000) - 1) x 30 s` from the first to the last.
//!
//! Targets: complete (exactly the absent groups deleted, exit 0), zero 429s, and a wall time
//! (process start to exit) within 1.15 x that bound.
//!
//! ```text
//! cargo bench --bench apply_budget
//! ```

use std::time::{Duration, Instant};

use cfgroups_fake::{Method, Route};
use testkit::bench::{generated, window_bound};
use testkit::measure::{Targets, secs};
use testkit::{CommandExt, Fake, apply, fake, write_config};

const ACCOUNTS: usize = 5;
const GROUPS: usize = 700;
const ABSENT: usize = 420;
const SERVER_LIMIT: u32 = 1_200;
const BUDGET: usize = 1_000;
const WINDOW: Duration = Duration::from_secs(30);
const LATENCY: Duration = Duration::from_millis(20);

fn main() {
    let (state, configs, accounts) = generated(ACCOUNTS, GROUPS, ABSENT);
    let fake = Fake::start_with(
        fake()
            .latency(LATENCY)
            .rate_limit(SERVER_LIMIT, WINDOW)
            .lockout(WINDOW)
            .state(state),
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = write_config(dir.path(), &configs);
    let mut targets = Targets::new("B3 apply_budget");

    let started = Instant::now();
    let out = apply(&fake, &config, &dir.path().join("state"))
        .args([
            "--max-requests",
            &BUDGET.to_string(),
            "--budget-window",
            "30s",
        ])
        .run();
    let wall = started.elapsed();

    let exact = out.code == Some(0)
        && accounts
            .iter()
            .all(|a| fake.groups(a).len() == GROUPS - ABSENT);
    if !exact {
        eprintln!("{}\n{}", out.stdout, out.stderr);
    }
    targets.check(
        "complete: exit 0, exactly the absent groups deleted",
        exact,
        "true",
        exact,
    );
    let requests = fake.requests();
    let total = requests.total();
    targets.note(
        "requests",
        format!(
            "R = {total} ({} list pages and exact-name reads, {} member backups, {} DELETEs)",
            requests.count(Method::GET, Route::List),
            requests.count(Method::GET, Route::Members),
            requests.count(Method::DELETE, Route::Delete),
        ),
    );
    targets.check(
        "429s",
        requests.rate_limited(),
        "0",
        requests.rate_limited() == 0,
    );
    targets.note(
        "busiest 30 s at the server",
        format!(
            "{} requests (server limit {SERVER_LIMIT}, budget {BUDGET})",
            requests.max_in_window(WINDOW)
        ),
    );
    let bound = window_bound(total, BUDGET, WINDOW);
    let ratio = wall.as_secs_f64() / bound.as_secs_f64();
    targets.check(
        &format!(
            "wall {} against (ceil({total}/{BUDGET}) - 1) x 30 s = {}",
            secs(wall),
            secs(bound)
        ),
        format!("ratio {ratio:.3}"),
        "<= 1.15",
        ratio <= 1.15,
    );
    drop(fake);
    targets.finish();
}
