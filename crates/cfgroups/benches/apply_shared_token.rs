//! B4: B3's mass cleanup while a second client spends 600 requests of the same token's
//! window. The real binary against the fake API (20 ms per request) limited to 1,200
//! requests per sliding 30 s with a 30 s lockout, given `--max-requests 1000
//! --budget-window 30s`; 5 accounts of 700 generated groups, 420 of each declared absent.
//! The second client (another tool on the same token: 600 list requests, 32 at a time,
//! unbudgeted) starts together with the binary.
//!
//! The binary's own budget would let it send 1,000 in the first 30 s; the server has room
//! for only 600 beside the other client's. It must read the server's `Ratelimit` remaining
//! and hold back.
//!
//! Targets: complete (exactly the absent groups deleted, exit 0) and zero 429s, for either
//! client. The wall time is reported against B3's bound for the binary's own requests.
//!
//! ```text
//! cargo bench --bench apply_shared_token
//! ```

use std::time::{Duration, Instant};

use testkit::bench::{generated, spend, window_bound};
use testkit::measure::{Targets, secs};
use testkit::{CommandExt, Fake, account, apply, fake, write_config};

const ACCOUNTS: usize = 5;
const GROUPS: usize = 700;
const ABSENT: usize = 420;
const SERVER_LIMIT: u32 = 1_200;
const BUDGET: usize = 1_000;
const OTHER: usize = 600;
const WINDOW: Duration = Duration::from_secs(30);
const LATENCY: Duration = Duration::from_millis(20);

fn main() {
    let (state, configs, accounts) = generated(ACCOUNTS, GROUPS, ABSENT);
    // The second client lists an account of its own.
    let state = state.with_generated_groups(account(99), 3, 99);
    let fake = Fake::start_with(
        fake()
            .latency(LATENCY)
            .rate_limit(SERVER_LIMIT, WINDOW)
            .lockout(WINDOW)
            .state(state),
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = write_config(dir.path(), &configs);
    let mut targets = Targets::new("B4 apply_shared_token");

    let started = Instant::now();
    let other = spend(fake.base_url(), account(99), OTHER, 32);
    let out = apply(&fake, &config, &dir.path().join("state"))
        .args([
            "--max-requests",
            &BUDGET.to_string(),
            "--budget-window",
            "30s",
        ])
        .run();
    let wall = started.elapsed();
    let spent = other.join().unwrap_or_default();

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
    targets.note(
        "second client",
        format!(
            "{} answered, {} refused with 429, {} other",
            spent.ok, spent.rate_limited, spent.other
        ),
    );
    let requests = fake.requests();
    targets.check(
        "429s (both clients)",
        requests.rate_limited(),
        "0",
        requests.rate_limited() == 0,
    );
    targets.note(
        "busiest 30 s at the server",
        format!(
            "{} requests (server limit {SERVER_LIMIT})",
            requests.max_in_window(WINDOW)
        ),
    );
    let own = requests.total().saturating_sub(OTHER);
    let bound = window_bound(own, BUDGET, WINDOW);
    targets.note(
        "wall",
        format!(
            "{} for the binary's {own} requests; B3's bound (ceil({own}/{BUDGET}) - 1) x 30 s = {}, \
             ratio {:.3}",
            secs(wall),
            secs(bound),
            wall.as_secs_f64() / bound.as_secs_f64()
        ),
    );
    drop(fake);
    targets.finish();
}
