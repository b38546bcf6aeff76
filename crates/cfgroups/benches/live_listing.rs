//! The live listing at scale: `plan --source cloudflare` (the real binary, default flags)
//! against the fake API holding 50 accounts of 1,000 real-shaped groups each (the fake's
//! generator: policies with permission and resource groups in both `scope` shapes, members,
//! names beyond ASCII), every request delayed by 20 ms.
//!
//! Checks and reports:
//! - list requests per plan: exactly 100 (two pages of 500 per account, no trailing
//!   request for an empty page);
//! - peak RSS of the plan (the highest of every run). Target: under 150 MB; the program
//!   exits non-zero when it is missed;
//! - the plan's wall time with default flags, median of the runs (reported, no target
//!   here: the default request budget paces the requests after its burst);
//! - with the budget lifted (`--max-requests`), so that only the listing is measured: the
//!   wall time, the slowest single account's listing time (listed alone, through the
//!   client), and whether wall < 2 x slowest x batches (ceil(50 / 4) = 13 batches at the
//!   default `--concurrency 4`), i.e. whether accounts are really listed concurrently.
//!
//! ```text
//! cargo bench --bench live_listing
//! CFGROUPS_BENCH_BIN=path/to/cfgroups cargo bench --bench live_listing   # another build
//! ```

use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::time::Duration;

use cfgroups::cloudflare::{BaseUrl, BudgetConfig, Client, ClientConfig, Credentials};
use cfgroups::model::AccountId;
use cfgroups_fake::{FakeCloudflare, FakeState, Method, Route};
use secrecy::SecretString;
use testkit::measure::{Measured, Targets, children_peak_rss, mb, median, run_measured};
use testkit::{CommandExt, TOKEN, cfgroups, fake};

const ACCOUNTS: usize = 50;
const GROUPS: usize = 1_000;
const LATENCY: Duration = Duration::from_millis(20);
const CONCURRENCY: usize = 4;
const RUNS: usize = 3;
const EXPECTED_LIST_REQUESTS: usize = ACCOUNTS * 2;
const RSS_TARGET: u64 = 150_000_000;

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
            state.with_real_shaped_groups(account, GROUPS, seed)
        });
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("accounts.yaml");
    let mut yaml = String::from("version: 1\ndefaults:\n  unmanaged: ignore\naccounts:\n");
    let quoted = |name: &str| serde_json::to_string(name).expect("a string encodes");
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
    let fake = runtime
        .block_on(
            fake()
                .latency(LATENCY)
                // The fake's limit is not what is measured.
                .rate_limit(1_000_000, Duration::from_secs(300))
                .state(state)
                .start(),
        )
        .expect("fake API");

    let plan = |budget_lifted: bool| -> Measured {
        fake.reset_requests();
        let mut command = cfgroups();
        command
            .against(&fake)
            .args(["plan", "--source", "cloudflare", "--output", "json"])
            .arg("--config")
            .arg(&config);
        if budget_lifted {
            command.args(["--max-requests", "1000000", "--budget-window", "5m"]);
        }
        let measured = run_measured(&mut command);
        assert!(
            measured.status.success(),
            "plan failed: {}",
            String::from_utf8_lossy(&measured.stderr)
        );
        let report: serde_json::Value =
            serde_json::from_slice(&measured.stdout).expect("JSON report");
        assert_eq!(report["summary"]["listing_failed"], 0);
        assert_eq!(report["summary"]["delete"], ACCOUNTS);
        check_requests(&fake);
        measured
    };

    let mut walls = Vec::with_capacity(RUNS);
    let mut peak = 0;
    for _ in 0..RUNS {
        let measured = plan(false);
        walls.push(measured.wall);
        peak = peak.max(measured.peak_rss);
    }
    let wall = median(&mut walls);
    let mut lifted: Vec<Duration> = (0..RUNS).map(|_| plan(true).wall).collect();
    let lifted_wall = median(&mut lifted);
    let peak = peak.max(children_peak_rss());

    let slowest = runtime.block_on(slowest_account(&fake, &accounts));
    runtime.block_on(fake.shutdown());

    let batches = ACCOUNTS.div_ceil(CONCURRENCY);
    let bound = slowest * 2 * u32::try_from(batches).unwrap_or(u32::MAX);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut targets = Targets::default();
    println!(
        "live_listing: plan --source cloudflare, {}: {ACCOUNTS} accounts x {GROUPS} \
         real-shaped groups, {} ms latency, {EXPECTED_LIST_REQUESTS} list requests per plan",
        testkit::bin().display(),
        LATENCY.as_millis(),
    );
    println!(
        "  peak RSS: {:.1} MB; target < {:.0} MB: {}",
        mb(peak),
        mb(RSS_TARGET),
        targets.check("live_listing peak RSS", peak < RSS_TARGET),
    );
    println!(
        "  wall, default flags: median {:.0} ms of {RUNS} (min {:.0}, max {:.0}); no target here",
        ms(wall),
        ms(walls[0]),
        ms(walls[RUNS - 1]),
    );
    println!(
        "  wall, budget lifted: median {:.0} ms of {RUNS}; slowest account alone {:.1} ms; \
         {batches} batches at concurrency {CONCURRENCY}; wall < 2 x slowest x batches \
         ({:.0} ms): {}",
        ms(lifted_wall),
        ms(slowest),
        ms(bound),
        if lifted_wall < bound { "yes" } else { "no" },
    );
    targets.finish();
}

/// Exactly two pages of 500 per account, and nothing but list requests.
fn check_requests(fake: &FakeCloudflare) {
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

/// The slowest account, each listed alone through the client, with a budget as generous as
/// `--max-requests 1000000`.
async fn slowest_account(fake: &FakeCloudflare, accounts: &[AccountId]) -> Duration {
    let credentials = Credentials::api_token(SecretString::from(TOKEN)).expect("credentials");
    let mut client_config = ClientConfig::new(credentials);
    client_config.base_url = BaseUrl::parse(&fake.base_url()).expect("base URL");
    client_config.budget = BudgetConfig::with_limit(
        NonZeroU32::new(1_000_000).expect("non-zero"),
        Duration::from_secs(300),
    );
    let client = Client::new(client_config).expect("client");
    let mut slowest = Duration::ZERO;
    for account in accounts {
        let started = std::time::Instant::now();
        let groups = client.list_groups(account).await.expect("listing");
        slowest = slowest.max(started.elapsed());
        assert_eq!(groups.len(), GROUPS);
    }
    slowest
}
