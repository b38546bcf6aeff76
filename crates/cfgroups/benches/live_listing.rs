//! The live listing at scale: `plan --source cloudflare` (the real binary) against the fake
//! API holding 50 accounts of 1,000 groups each, every request delayed by 20 ms.
//!
//! Checks and reports:
//! - list requests per plan: exactly 100 (two pages of 500 per account, no trailing
//!   request for an empty page);
//! - the plan's wall time, median of 5 runs;
//! - the slowest single account's listing time (listed alone, through the client);
//! - the number of batches of concurrent accounts, ceil(50 / 4) = 13 at the default
//!   `--concurrency 4`, and whether wall < 2 x slowest x batches, i.e. whether accounts are
//!   really listed concurrently and nothing else dominates.
//!
//! The budget is made generous (`--max-requests`) so that it is not the bottleneck.
//! Run with `cargo bench --bench live_listing`.

use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use cfgroups::cloudflare::{BaseUrl, BudgetConfig, Client, ClientConfig, Credentials};
use cfgroups::model::AccountId;
use cfgroups_fake::{FakeState, Method, Route};
use secrecy::SecretString;
use testkit::{CommandExt, TOKEN, cfgroups, fake};

const ACCOUNTS: usize = 50;
const GROUPS: usize = 1_000;
const LATENCY: Duration = Duration::from_millis(20);
const CONCURRENCY: usize = 4;
const RUNS: usize = 5;
const EXPECTED_LIST_REQUESTS: usize = ACCOUNTS * 2;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let accounts: Vec<AccountId> = (0..ACCOUNTS)
        .map(|n| format!("{:032x}", 0xbe00 + n).parse().expect("account id"))
        .collect();
    let state = accounts
        .iter()
        .zip(0u64..)
        .fold(FakeState::new(), |state, (account, seed)| {
            state.with_generated_groups(account, GROUPS, seed)
        });
    let fake = runtime
        .block_on(
            fake()
                .latency(LATENCY)
                // The fake's limit is not what is measured either.
                .rate_limit(1_000_000, Duration::from_secs(300))
                .state(state)
                .start(),
        )
        .expect("fake API");

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

    // The plan, with the real binary, RUNS times.
    let mut walls = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        fake.reset_requests();
        let started = Instant::now();
        let output = cfgroups()
            .against(&fake)
            .args(["plan", "--source", "cloudflare", "--output", "json"])
            .args(["--max-requests", "1000000", "--budget-window", "5m"])
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run cfgroups");
        walls.push(started.elapsed());
        assert!(
            output.status.success(),
            "plan failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("JSON report");
        assert_eq!(report["summary"]["listing_failed"], 0);
        assert_eq!(report["summary"]["delete"], ACCOUNTS);
        let requests = fake.requests();
        let lists = requests.count(Method::GET, Route::List);
        assert_eq!(
            lists, EXPECTED_LIST_REQUESTS,
            "list requests per plan: {lists}, expected {EXPECTED_LIST_REQUESTS}"
        );
        assert_eq!(requests.total(), lists, "only list requests");
        assert!(
            requests
                .log()
                .iter()
                .all(|r| r.path.contains("per_page=500")
                    && (r.path.contains("page=1&") || r.path.contains("page=2&"))),
            "a request other than page 1 or 2 of 500"
        );
    }
    walls.sort();
    let wall = walls[RUNS / 2];

    // The slowest account, each listed alone through the client.
    let credentials = Credentials::api_token(SecretString::from(TOKEN)).expect("credentials");
    let mut client_config = ClientConfig::new(credentials);
    client_config.base_url = BaseUrl::parse(&fake.base_url()).expect("base URL");
    // As generous as the plan's --max-requests: the default budget's steady pace (one
    // request per 316 ms after a burst of 50) would otherwise be what is measured.
    client_config.budget = BudgetConfig::with_limit(
        NonZeroU32::new(1_000_000).expect("non-zero"),
        Duration::from_secs(300),
    );
    let client = Client::new(client_config).expect("client");
    let slowest = runtime.block_on(async {
        let mut slowest = Duration::ZERO;
        for account in &accounts {
            let started = Instant::now();
            let groups = client.list_groups(account).await.expect("listing");
            slowest = slowest.max(started.elapsed());
            assert_eq!(groups.len(), GROUPS);
        }
        slowest
    });
    runtime.block_on(fake.shutdown());

    let batches = ACCOUNTS.div_ceil(CONCURRENCY);
    let bound = slowest * 2 * u32::try_from(batches).unwrap_or(u32::MAX);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "live_listing: {ACCOUNTS} accounts x {GROUPS} groups, {} ms latency, concurrency \
         {CONCURRENCY}: {EXPECTED_LIST_REQUESTS} list requests per plan; wall median {:.0} ms \
         of {RUNS} (min {:.0}, max {:.0}); slowest account {:.1} ms; {batches} batches; \
         wall < 2 x slowest x batches ({:.0} ms): {}",
        LATENCY.as_millis(),
        ms(wall),
        ms(walls[0]),
        ms(walls[RUNS - 1]),
        ms(slowest),
        ms(bound),
        if wall < bound { "yes" } else { "no" },
    );
}
