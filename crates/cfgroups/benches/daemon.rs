//! `cfgroups run` measured end to end, the real (release) binary against the in-process fake:
//!
//! - `edit_to_delete`: from saving a config edit to its DELETE reaching the fake, over 20
//!   edits that each mark one more group absent (default `--debounce`). Target: median
//!   under 1 s.
//! - `idle`: 50 accounts configured, `--interval 5m`, after the first reconcile: resident
//!   memory and CPU over 60 s (`CFGROUPS_BENCH_IDLE_SECS` overrides). Targets: RSS under
//!   20 MB, CPU under 1 %.
//!
//! ```text
//! cargo bench --bench daemon                 # both
//! cargo bench --bench daemon -- idle         # only the ones whose name contains "idle"
//! ```

use std::time::{Duration, Instant};

use cfgroups_fake::{FakeState, Method, Route};
use tempfile::TempDir;
use testkit::daemon::{DaemonOptions, clock_ticks_per_second, group_named};
use testkit::{AccountConfig, WAIT, account, config_text, eventually, fake, write_by_rename};

const EDITS: usize = 20;
const IDLE_ACCOUNTS: usize = 50;
const GROUPS_PER_IDLE_ACCOUNT: usize = 3;
const RSS_TARGET: u64 = 20 * 1024 * 1024;
const CPU_TARGET_PERCENT: f64 = 1.0;

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        if wanted("edit_to_delete") {
            edit_to_delete().await;
        }
        if wanted("idle") {
            idle().await;
        }
    });
}

async fn edit_to_delete() {
    let a = account(1);
    let fake = fake()
        .state(FakeState::new().with_generated_groups(&a, EDITS + 2, 1))
        .start()
        .await
        .expect("the fake API");
    let names: Vec<String> = (0..EDITS + 2).map(|i| format!("group-{i:04}")).collect();
    let config_with_absent = |absent: usize| {
        let groups: Vec<(&str, &'static str)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), if i < absent { "absent" } else { "present" }))
            .collect();
        config_text(&[AccountConfig::new(a.clone())
            .unmanaged("report")
            .max_deletes(100)
            .declare_all(&groups)])
    };
    let dir = TempDir::new().expect("a temporary directory");
    let config = dir.path().join("groups.yaml");
    write_by_rename(&config, &config_with_absent(0));
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .start()
        .await;
    daemon.wait_ready().await;

    let mut latencies = Vec::with_capacity(EDITS);
    for (edit, name) in names.iter().take(EDITS).enumerate() {
        let group = group_named(&fake, &a, name);
        let saved = Instant::now();
        write_by_rename(&config, &config_with_absent(edit + 1));
        let requests = fake
            .wait_for_requests(WAIT, |r| {
                r.log().iter().any(|r| {
                    r.method == Method::DELETE
                        && r.route == Route::Delete
                        && r.path.ends_with(group.as_str())
                })
            })
            .await
            .unwrap_or_else(|| {
                panic!(
                    "edit {edit}: no DELETE of {group} within {WAIT:?}\n{}",
                    daemon.log.text()
                )
            });
        let arrived = requests
            .log()
            .iter()
            .find(|r| r.method == Method::DELETE && r.path.ends_with(group.as_str()))
            .map(|r| r.at)
            .expect("the DELETE just seen");
        latencies.push(arrived.saturating_duration_since(saved));
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = (latencies[EDITS / 2 - 1] + latencies[EDITS / 2]) / 2;
    let p90 = latencies[(EDITS * 9).div_ceil(10) - 1];
    println!(
        "edit_to_delete: {EDITS} edits, median {:.0} ms, min {:.0} ms, p90 {:.0} ms, max {:.0} ms (target: median < 1000 ms) {}",
        ms(median),
        ms(latencies[0]),
        ms(p90),
        ms(latencies[EDITS - 1]),
        verdict(median < Duration::from_secs(1)),
    );
}

async fn idle() {
    let seconds: u64 = std::env::var("CFGROUPS_BENCH_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let accounts: Vec<_> = (0..IDLE_ACCOUNTS).map(|n| account(100 + n)).collect();
    let mut state = FakeState::new();
    for (seed, id) in accounts.iter().enumerate() {
        state = state.with_generated_groups(id, GROUPS_PER_IDLE_ACCOUNT, seed as u64);
    }
    let fake = fake().state(state).start().await.expect("the fake API");
    let names: Vec<String> = (0..GROUPS_PER_IDLE_ACCOUNT)
        .map(|i| format!("group-{i:04}"))
        .collect();
    let groups: Vec<(&str, &'static str)> = names.iter().map(|n| (n.as_str(), "present")).collect();
    let specs: Vec<AccountConfig> = accounts
        .iter()
        .map(|id| {
            AccountConfig::new(id.clone())
                .unmanaged("report")
                .max_deletes(10)
                .declare_all(&groups)
        })
        .collect();
    let dir = TempDir::new().expect("a temporary directory");
    let config = dir.path().join("groups.yaml");
    write_by_rename(&config, &config_text(&specs));
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .interval(Duration::from_secs(300))
        .start()
        .await;
    daemon.wait_ready().await;
    eventually("last-report.json", WAIT, async || {
        daemon.report_path().exists().then_some(())
    })
    .await;
    let listed = fake.requests().count(Method::GET, Route::List);
    assert_eq!(listed, IDLE_ACCOUNTS, "one listing per account");

    // The measurement itself is the wait: sample at the start, along the way and at the end.
    let (rss_start, ticks_start) = daemon.proc_usage();
    let started = Instant::now();
    let mut rss_max = rss_start;
    let deadline = started + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1).min(deadline - Instant::now())).await;
        rss_max = rss_max.max(daemon.proc_usage().0);
    }
    let (rss_end, ticks_end) = daemon.proc_usage();
    let wall = started.elapsed();
    let cpu_seconds = (ticks_end - ticks_start) as f64 / clock_ticks_per_second() as f64;
    let cpu_percent = cpu_seconds / wall.as_secs_f64() * 100.0;
    rss_max = rss_max.max(rss_end);
    let mb = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    assert_eq!(
        fake.requests().count(Method::GET, Route::List),
        listed,
        "an idle daemon sends no requests within its interval"
    );
    println!(
        "idle: {IDLE_ACCOUNTS} accounts, RSS {:.1} MB (max {:.1} MB), CPU {:.2}% over {:.0} s (targets: RSS < 20 MB, CPU < 1%) {}",
        mb(rss_end),
        mb(rss_max),
        cpu_percent,
        wall.as_secs_f64(),
        verdict(rss_max < RSS_TARGET && cpu_percent < CPU_TARGET_PERCENT),
    );
}

fn verdict(met: bool) -> &'static str {
    if met { "ok" } else { "MISSED" }
}
