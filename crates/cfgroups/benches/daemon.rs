//! `cfgroups run` measured end to end, the real (release) binary against the in-process fake:
//!
//! - `edit_to_delete`: from saving a config edit to its DELETE reaching the fake, over 20
//!   edits that each mark one more group absent (default `--debounce`). Target: median
//!   under 1 s.
//! - `idle`: 50 accounts configured, `--interval 5m`, after the first reconcile: resident
//!   memory and CPU over 60 s (`CFGROUPS_BENCH_IDLE_SECS` overrides). Targets: RSS under
//!   20 MB, CPU under 1 %.
//! - `after_cycle`: 50 accounts of 3 groups, the daemon idle after its first reconcile (its
//!   idle RSS); then the accounts grow to 1,000 real-shaped groups each and two full
//!   reconciles (SIGHUP) list all 50,000 (every group beyond the 3 declared is reported as
//!   unmanaged). Target: RSS after each of those cycles within 20 MB of the idle figure,
//!   i.e. nothing of a listing outlives its cycle. The peak during the cycles is reported.
//!
//! Every group is real-shaped (the fake's generator). The daemon runs with default flags
//! but `--interval`; the program exits non-zero when a target is missed.
//!
//! ```text
//! cargo bench --bench daemon                 # all
//! cargo bench --bench daemon -- idle         # only the ones whose name contains "idle"
//! CFGROUPS_BENCH_BIN=path/to/cfgroups cargo bench --bench daemon   # another build
//! ```

use std::time::{Duration, Instant};

use cfgroups_fake::{FakeState, Method, Route};
use tempfile::TempDir;
use testkit::daemon::{Daemon, DaemonOptions, clock_ticks_per_second, group_named, metric_total};
use testkit::measure::{Targets, mb, median_bytes, proc_status_bytes};
use testkit::{
    AccountConfig, Signal, WAIT, account, config_text, eventually, fake, write_by_rename,
};

const EDITS: usize = 20;
const IDLE_ACCOUNTS: usize = 50;
const GROUPS_PER_IDLE_ACCOUNT: usize = 3;
const RSS_TARGET: u64 = 20 * 1024 * 1024;
const CPU_TARGET_PERCENT: f64 = 1.0;
const CYCLE_ACCOUNTS: usize = 50;
const CYCLE_GROUPS: usize = 1_000;
const DECLARED_PER_ACCOUNT: usize = 3;
/// How much more than idle the daemon may hold once a cycle has ended.
const AFTER_CYCLE_TARGET: u64 = 20_000_000;

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
    let mut targets = Targets::new("daemon");
    runtime.block_on(async {
        if wanted("edit_to_delete") {
            edit_to_delete(&mut targets).await;
        }
        if wanted("idle") {
            idle(&mut targets).await;
        }
        if wanted("after_cycle") {
            after_cycle(&mut targets).await;
        }
    });
    targets.finish();
}

async fn edit_to_delete(targets: &mut Targets) {
    let a = account(1);
    let state = FakeState::new().with_real_shaped_groups(&a, EDITS + 2, 1);
    let names: Vec<String> = state.groups(&a).iter().map(|g| g.name.clone()).collect();
    let fake = fake().state(state).start().await.expect("the fake API");
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
        targets.verdict("edit_to_delete", median < Duration::from_secs(1)),
    );
}

async fn idle(targets: &mut Targets) {
    let seconds: u64 = std::env::var("CFGROUPS_BENCH_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let accounts: Vec<_> = (0..IDLE_ACCOUNTS).map(|n| account(100 + n)).collect();
    let mut state = FakeState::new();
    for (seed, id) in accounts.iter().enumerate() {
        state = state.with_real_shaped_groups(id, GROUPS_PER_IDLE_ACCOUNT, seed as u64);
    }
    let specs = present_specs(&state, &accounts, GROUPS_PER_IDLE_ACCOUNT);
    let fake = fake().state(state).start().await.expect("the fake API");
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
        targets.verdict(
            "idle",
            rss_max < RSS_TARGET && cpu_percent < CPU_TARGET_PERCENT
        ),
    );
}

/// Each account declaring its first `declared` groups present, reporting the rest.
fn present_specs(
    state: &FakeState,
    accounts: &[cfgroups::model::AccountId],
    declared: usize,
) -> Vec<AccountConfig> {
    accounts
        .iter()
        .map(|id| {
            let names: Vec<(&str, &'static str)> = state
                .groups(id)
                .iter()
                .take(declared)
                .map(|g| (g.name.as_str(), "present"))
                .collect();
            AccountConfig::new(id.clone())
                .unmanaged("report")
                .max_deletes(10)
                .declare_all(&names)
        })
        .collect()
}

async fn after_cycle(targets: &mut Targets) {
    let accounts: Vec<_> = (0..CYCLE_ACCOUNTS).map(|n| account(300 + n)).collect();
    // The same seeds draw the same first groups, so the small state is the big one's start.
    let state = |groups: usize| {
        accounts
            .iter()
            .enumerate()
            .fold(FakeState::new(), |state, (seed, id)| {
                state.with_real_shaped_groups(id, groups, seed as u64)
            })
    };
    let small = state(DECLARED_PER_ACCOUNT);
    let specs = present_specs(&small, &accounts, DECLARED_PER_ACCOUNT);
    let fake = fake()
        // The fake's own limit is not what is measured.
        .rate_limit(1_000_000, Duration::from_secs(300))
        .state(small)
        .start()
        .await
        .expect("the fake API");
    let dir = TempDir::new().expect("a temporary directory");
    let config = dir.path().join("groups.yaml");
    write_by_rename(&config, &config_text(&specs));
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .start()
        .await;
    daemon.wait_ready().await;
    let mut cycles = reconciles(&daemon).await;
    assert!(cycles >= 1, "the first reconcile is done once ready");
    let idle = settled_rss(&daemon).await;

    fake.set_state(state(CYCLE_GROUPS));
    let mut after = Vec::new();
    let started = Instant::now();
    for _ in 0..2 {
        fake.reset_requests();
        daemon.signal(Signal::SIGHUP);
        let want = cycles + 1;
        cycles = daemon
            .wait_metrics_within("a full reconcile", Duration::from_secs(300), |text| {
                let done = metric_total(text, "cfgroups_reconciles_total") as u64;
                (done >= want).then_some(done)
            })
            .await;
        assert_eq!(
            fake.requests().count(Method::GET, Route::List),
            CYCLE_ACCOUNTS * 2,
            "two pages per account: every group listed"
        );
        after.push(settled_rss(&daemon).await);
    }
    let elapsed = started.elapsed();
    let report = std::fs::metadata(daemon.report_path()).map_or(0, |m| m.len());
    let peak = proc_status_bytes(daemon.pid(), "VmHWM:").unwrap_or(0);
    let worst = after.iter().copied().max().unwrap_or(0);
    let grown = worst.saturating_sub(idle);
    println!(
        "after_cycle: {CYCLE_ACCOUNTS} accounts x {CYCLE_GROUPS} real-shaped groups, 2 full \
         reconciles in {:.1} s (last-report.json {:.1} MB): RSS idle {:.1} MB, after the \
         cycles {} MB, peak {:.1} MB; after - idle {:.1} MB (target < {:.0} MB): {}",
        elapsed.as_secs_f64(),
        mb(report),
        mb(idle),
        after
            .iter()
            .map(|rss| format!("{:.1}", mb(*rss)))
            .collect::<Vec<_>>()
            .join(" and "),
        mb(peak),
        mb(grown),
        mb(AFTER_CYCLE_TARGET),
        targets.verdict("after_cycle", grown < AFTER_CYCLE_TARGET),
    );
}

async fn reconciles(daemon: &Daemon) -> u64 {
    metric_total(&daemon.metrics().await, "cfgroups_reconciles_total") as u64
}

/// Resident memory once the daemon is quiet: the median of samples over two seconds, after
/// one second of calm.
async fn settled_rss(daemon: &Daemon) -> u64 {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut samples = Vec::new();
    for _ in 0..10 {
        samples.push(daemon.proc_usage().0);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    median_bytes(&mut samples)
}
