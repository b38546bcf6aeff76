//! B5: a server stricter than the budget. The real binary with default flags (a budget of
//! 1,000 per 5 minutes) against the fake API (20 ms per request) limited to 50 requests per
//! sliding 20 s with a 65 s lockout, which it declares on every answer in
//! `Ratelimit-Policy: "default";q=50;w=20`. One account of 200 generated groups, 80 of them
//! declared absent: 1 list request and 3 per deletion, 241 in all.
//!
//! The binary must hold the server's declared window (a tripped limit would lock it out for
//! longer than the 60 s per-operation deadline once failed every pending deletion).
//!
//! Targets: exact (exactly the absent groups deleted), exit 0, zero 429s. The wall time is
//! reported against `(ceil(241 / 50) - 1) x 20 s`.
//!
//! ```text
//! cargo bench --bench apply_lockout
//! ```

use std::time::{Duration, Instant};

use testkit::bench::{generated, window_bound};
use testkit::measure::{Targets, secs};
use testkit::{CommandExt, Fake, apply, fake, write_config};

const GROUPS: usize = 200;
const ABSENT: usize = 80;
const SERVER_LIMIT: u32 = 50;
const WINDOW: Duration = Duration::from_secs(20);
const LOCKOUT: Duration = Duration::from_secs(65);
const LATENCY: Duration = Duration::from_millis(20);

fn main() {
    let (state, configs, accounts) = generated(1, GROUPS, ABSENT);
    let fake = Fake::start_with(
        fake()
            .latency(LATENCY)
            .rate_limit(SERVER_LIMIT, WINDOW)
            .lockout(LOCKOUT)
            .state(state),
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = write_config(dir.path(), &configs);
    let mut targets = Targets::new("B5 apply_lockout");

    let started = Instant::now();
    let out = apply(&fake, &config, &dir.path().join("state")).run();
    let wall = started.elapsed();

    let exact = fake.groups(&accounts[0]).len() == GROUPS - ABSENT;
    targets.check(
        "exit code",
        format!("{:?}", out.code),
        "Some(0)",
        out.code == Some(0),
    );
    targets.check("exactly the absent groups deleted", exact, "true", exact);
    if out.code != Some(0) || !exact {
        eprintln!("{}\n{}", out.stdout, out.stderr);
    }
    let requests = fake.requests();
    targets.check(
        "429s",
        requests.rate_limited(),
        "0",
        requests.rate_limited() == 0,
    );
    targets.note(
        "busiest 20 s at the server",
        format!(
            "{} requests (server limit {SERVER_LIMIT})",
            requests.max_in_window(WINDOW)
        ),
    );
    let total = requests.total();
    let bound = window_bound(total, SERVER_LIMIT as usize, WINDOW);
    targets.note(
        "wall",
        format!(
            "{} for {total} requests; (ceil({total}/{SERVER_LIMIT}) - 1) x 20 s = {}, ratio {:.3}",
            secs(wall),
            secs(bound),
            wall.as_secs_f64() / bound.as_secs_f64()
        ),
    );
    let notices = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("Waiting for"))
        .count();
    targets.note("waiting notices on stderr", notices);
    drop(fake);
    targets.finish();
}
