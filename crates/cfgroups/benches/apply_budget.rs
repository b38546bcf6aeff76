//! How close `cfgroups apply` runs to the request budget it is given, without ever
//! tripping the server's rate limit.
//!
//! One account holds 1,000 groups declared absent (and three that stay). The fake API
//! allows 200 requests per sliding 5 s window (locking out for the rest of the window when
//! exceeded); the client is given 90% of that: `--max-requests 180 --budget-window 5s`.
//! Every deletion costs two requests (the members backup and the DELETE), plus the pages
//! of the listing.
//!
//! Lower bound: a budget of B requests per rolling window W admits at most B requests in
//! any window, so N requests need at least `(ceil(N / B) - 1) * W` from the first to the
//! last. The ratio is the wall time of the whole run (process start to exit) over that
//! bound; the target is at most 1.15.
//!
//! ```text
//! cargo bench --bench apply_budget
//! ```

use std::time::{Duration, Instant};

use cfgroups_fake::{FakeState, Method, Route};
use testkit::*;

const GROUPS: usize = 1_000;
const SERVER_LIMIT: u32 = 200;
const CLIENT_LIMIT: u32 = 180;
const WINDOW: Duration = Duration::from_secs(5);

fn main() {
    let a = account(0);
    let mut state = FakeState::new();
    let mut config = AccountConfig::new(a.clone()).max_deletes(GROUPS as u32);
    for n in 0..GROUPS {
        let name = format!("Retired {n}");
        state = state.with_group(&a, group(0, n, &name, n % 3));
        config = config.absent(&name);
    }
    for n in 0..3 {
        let name = format!("Team {n}");
        state = state.with_group(&a, group(0, 10_000 + n, &name, 1));
        config = config.present(&name);
    }
    let fake = Fake::start_with(
        testkit::fake()
            .state(state)
            .rate_limit(SERVER_LIMIT, WINDOW),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[config]);

    let started = Instant::now();
    let out = apply(&fake, &config, &dir.path().join("state"))
        .args([
            "--max-requests",
            &CLIENT_LIMIT.to_string(),
            "--budget-window",
            "5s",
        ])
        .run();
    let wall = started.elapsed();
    out.assert_code(0);

    let requests = fake.requests();
    let total = requests.total();
    let lists = requests.count(Method::GET, Route::List);
    let members = requests.count(Method::GET, Route::Members);
    let deletes = requests.count(Method::DELETE, Route::Delete);
    let limited = requests.rate_limited();
    let busiest = requests.max_in_window(WINDOW);
    let windows = total.div_ceil(CLIENT_LIMIT as usize) as u32;
    let bound = WINDOW * windows.saturating_sub(1);
    let ratio = wall.as_secs_f64() / bound.as_secs_f64();
    println!(
        "apply_budget: {GROUPS} groups deleted; {total} requests ({lists} lists + {members} \
         member backups + {deletes} deletes); {limited} x 429; busiest {:.0}s window {busiest} \
         (server limit {SERVER_LIMIT}, budget {CLIENT_LIMIT}); wall {:.1}s; lower bound \
         (ceil({total}/{CLIENT_LIMIT}) - 1) x {}s = {:.1}s; ratio {ratio:.3} (target <= 1.15: {})",
        WINDOW.as_secs_f64(),
        wall.as_secs_f64(),
        WINDOW.as_secs(),
        bound.as_secs_f64(),
        if ratio <= 1.15 { "met" } else { "MISSED" },
    );
    assert_eq!(limited, 0, "the budget let a 429 through");
    assert_eq!(deletes, GROUPS);
    assert!(fake.groups(&a).len() == 3);
}
