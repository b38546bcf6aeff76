//! `cfgroups run` end to end: the real binary against the in-process fake API, driven through
//! its config file, its signals and its health and metrics server.
//!
//! Every test starts its own fake and its own daemon (on `127.0.0.1:0`, with a temporary
//! state directory and an interval long enough never to tick), and waits on conditions
//! with a deadline, never on a fixed sleep.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use cfgroups::journal::{self, Record};
use cfgroups::model::{AccountId, DeletionOutcome};
use cfgroups_fake::{FakeCloudflare, FakeGroup, FakeState, Method, Requests, Route};
use tempfile::TempDir;
use testkit::daemon::{
    Daemon, DaemonOptions, group_named, http, metric, metric_total, wait_deleted,
};
use testkit::{
    AccountConfig, Signal, WAIT, account, config_text, delete_count, eventually, fake,
    write_by_rename, write_in_place,
};

const NAMES: [&str; 4] = ["alpha", "beta", "gamma", "delta"];

/// A fake holding `account` with the groups in [`NAMES`].
async fn fake_with_groups(account: &AccountId, latency: Duration) -> FakeCloudflare {
    let mut state = FakeState::new().with_account(account);
    for (index, name) in NAMES.iter().enumerate() {
        let id = format!("{:032x}", 0xbeef_0000_u64 + index as u64);
        state = state.with_group(account, FakeGroup::new(id, *name));
    }
    fake().latency(latency).state(state).start().await.unwrap()
}

/// The config of one account: `unmanaged` policy, at most ten deletions, and `groups` as
/// `(name, state)`.
fn account_config(
    account: &AccountId,
    unmanaged: &'static str,
    groups: &[(&str, &'static str)],
) -> AccountConfig {
    AccountConfig::new(account.clone())
        .unmanaged(unmanaged)
        .max_deletes(10)
        .declare_all(groups)
}

/// The config for one account with every group in [`NAMES`] present except `absent`.
fn groups_config(account: &AccountId, absent: &[&str]) -> String {
    let groups: Vec<(&str, &'static str)> = NAMES
        .iter()
        .map(|name| {
            let state = if absent.contains(name) {
                "absent"
            } else {
                "present"
            };
            (*name, state)
        })
        .collect();
    config_text(&[account_config(account, "report", &groups)])
}

fn reload_ok(text: &str) -> Option<f64> {
    metric(text, "cfgroups_config_last_reload_successful")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_first_reconcile_healthz_is_up_and_other_paths_are_404() {
    let a = account(1);
    // Every answer takes 2 s, so the first reconcile is still listing when we ask.
    let fake = fake_with_groups(&a, Duration::from_secs(2)).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    write_in_place(&config, &groups_config(&a, &[]));
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .start()
        .await;

    let (status, body) = daemon.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(daemon.get("/healthz").await.0, 200);
    assert_eq!(daemon.get("/nope").await.0, 404);

    daemon.wait_ready().await;
    let requests = fake.requests();
    assert_eq!(
        requests
            .log()
            .iter()
            .filter(|r| r.route == Route::List && r.status == Some(200))
            .count(),
        1,
        "ready only after the listing was answered"
    );
    assert_eq!(daemon.get("/healthz").await.0, 200);
    assert_eq!(daemon.get("/metrics/").await.0, 404);
    assert_eq!(delete_count(&fake), 0);
}

/// Starts a daemon on `config` (already written, every group present), applies `edit`
/// (which marks `beta` absent), and checks that exactly `beta` is deleted.
async fn an_edit_deletes_exactly_beta(
    a: &AccountId,
    fake: &FakeCloudflare,
    config: &Path,
    state_dir: &Path,
    edit: impl FnOnce(),
) -> Daemon {
    let daemon = DaemonOptions::new(config, state_dir, fake).start().await;
    daemon.wait_ready().await;
    assert_eq!(delete_count(fake), 0, "nothing is absent yet");

    let beta = group_named(fake, a, "beta");
    edit();
    wait_deleted(fake, a, &beta).await;
    assert_eq!(delete_count(fake), 1, "only beta is absent");
    assert_eq!(fake.groups(a).len(), NAMES.len() - 1);
    daemon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_place_edit_is_picked_up() {
    let a = account(2);
    let fake = fake_with_groups(&a, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    write_in_place(&config, &groups_config(&a, &[]));
    let daemon =
        an_edit_deletes_exactly_beta(&a, &fake, &config, &dir.path().join("state"), || {
            write_in_place(&config, &groups_config(&a, &["beta"]))
        })
        .await;

    // The log says which file changed.
    let reloads = daemon.log.events("config changed; reloaded");
    assert!(
        reloads.iter().any(|event| event["fields"]["files"]
            .as_str()
            .is_some_and(|files| files.contains("groups.yaml (edited)"))),
        "{}",
        daemon.log.text()
    );

    // And the next one too: the watch survives the first.
    let gamma = group_named(&fake, &a, "gamma");
    write_in_place(&config, &groups_config(&a, &["beta", "gamma"]));
    wait_deleted(&fake, &a, &gamma).await;
    assert_eq!(delete_count(&fake), 2);
    // Each reconcile journals under a run of its own, so its intents and outcomes pair up.
    let journal = journal::read(&daemon.journal_path()).unwrap();
    let runs: std::collections::BTreeSet<&str> = journal
        .records
        .iter()
        .filter(|r| matches!(r, Record::Intent { .. }))
        .map(Record::run)
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    drop(daemon);
}

/// A file caught half-written can be valid YAML: a list cut at an item boundary. Under
/// `unmanaged: delete` the groups it no longer names would be pruned. The attack: a writer
/// that pauses in the middle of the file, through one open file, for longer than twice the
/// debounce, while the interval tick fires meanwhile. New content is taken only once the
/// writer has closed the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_pausing_mid_file_never_gets_its_half_acted_on() {
    let a = account(12);
    let fake = fake_with_groups(&a, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let present: Vec<(&str, &'static str)> = NAMES.iter().map(|n| (*n, "present")).collect();
    let whole = config_text(&[account_config(&a, "delete", &present)]);
    write_in_place(&config, &whole);
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .arg("--debounce")
        .arg("200ms")
        .interval(Duration::from_secs(1))
        .start()
        .await;
    daemon.wait_ready().await;
    let loaded_at = |text: &str| {
        metric(
            text,
            "cfgroups_config_last_reload_success_timestamp_seconds",
        )
        .unwrap_or(0.0)
    };
    let before = loaded_at(&daemon.metrics().await);

    // The first half names only alpha and beta and is valid YAML on its own; the whole file
    // (with a comment, so that it is new content) names all four.
    let half = config_text(&[account_config(&a, "delete", &present[..2])]);
    assert!(whole.starts_with(&half));
    let parts = TempDir::new().unwrap();
    let (first, second) = (parts.path().join("first"), parts.path().join("second"));
    std::fs::write(&first, &half).unwrap();
    std::fs::write(&second, format!("{}# saved\n", &whole[half.len()..])).unwrap();
    let writer = tokio::process::Command::new("sh")
        .args(["-c", "( cat \"$1\"; sleep 1; cat \"$2\" ) > \"$3\"", "sh"])
        .args([&first, &second, &config])
        .status();
    let status = tokio::time::timeout(WAIT, writer)
        .await
        .expect("the writer hung")
        .unwrap();
    assert!(status.success());

    // The whole file is taken: the first content change since the start (the half would
    // have been another).
    let reloads = || daemon.log.events("config changed; reloaded").len();
    eventually("the whole file to be taken", WAIT, async || {
        (reloads() >= 1).then_some(())
    })
    .await;
    assert!(loaded_at(&daemon.metrics().await) > before);
    // A full reconcile after the whole file: had the half been taken, its deletions would
    // have happened by now.
    let success = "cfgroups_reconciles_total{result=\"success\"}";
    let done = metric(&daemon.metrics().await, success).unwrap_or(0.0);
    daemon.wait_metric_at_least(success, done + 1.0).await;
    assert_eq!(
        delete_count(&fake),
        0,
        "gamma and delta were pruned from a half-written file"
    );
    assert_eq!(fake.groups(&a).len(), NAMES.len());
    assert_eq!(reloads(), 1, "the half was taken:\n{}", daemon.log.text());
    let waited = daemon
        .log
        .lines()
        .iter()
        .any(|line| line.contains("a write to the config is in progress"));
    assert!(
        waited,
        "the pause was never noticed:\n{}",
        daemon.log.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_saved_by_rename_is_picked_up() {
    let a = account(3);
    let fake = fake_with_groups(&a, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    write_in_place(&config, &groups_config(&a, &[]));
    let _daemon =
        an_edit_deletes_exactly_beta(&a, &fake, &config, &dir.path().join("state"), || {
            write_by_rename(&config, &groups_config(&a, &["beta"]))
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_symlink_swap_is_picked_up() {
    let a = account(4);
    let fake = fake_with_groups(&a, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    // The kubelet's layout: groups.yaml -> ..data/groups.yaml, ..data -> ..<timestamp>.
    let mount = dir.path().join("config");
    let old = "..2026_11_28_01_00_00.000000001";
    let new = "..2026_11_28_01_05_00.000000002";
    std::fs::create_dir_all(mount.join(old)).unwrap();
    std::fs::write(mount.join(old).join("groups.yaml"), groups_config(&a, &[])).unwrap();
    symlink(old, mount.join("..data")).unwrap();
    symlink("..data/groups.yaml", mount.join("groups.yaml")).unwrap();
    let config = mount.join("groups.yaml");

    let _daemon =
        an_edit_deletes_exactly_beta(&a, &fake, &config, &dir.path().join("state"), || {
            // The kubelet's atomic update: new directory, new ..data_tmp link, renamed over
            // ..data, old directory removed.
            std::fs::create_dir(mount.join(new)).unwrap();
            std::fs::write(
                mount.join(new).join("groups.yaml"),
                groups_config(&a, &["beta"]),
            )
            .unwrap();
            symlink(new, mount.join("..data_tmp")).unwrap();
            std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
            std::fs::remove_dir_all(mount.join(old)).unwrap();
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_deleted_and_created_again_is_picked_up() {
    let a = account(5);
    let fake = fake_with_groups(&a, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    write_in_place(&config, &groups_config(&a, &[]));
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .start()
        .await;
    daemon.wait_ready().await;

    std::fs::remove_file(&config).unwrap();
    // A missing file is a failed load: the last good config stays, nothing is deleted.
    daemon
        .wait_metrics("a failed reload", |text| {
            reload_ok(text).filter(|v| *v == 0.0)
        })
        .await;
    assert_eq!(delete_count(&fake), 0);
    assert_eq!(daemon.get("/readyz").await.0, 200);

    let beta = group_named(&fake, &a, "beta");
    write_in_place(&config, &groups_config(&a, &["beta"]));
    wait_deleted(&fake, &a, &beta).await;
    assert_eq!(delete_count(&fake), 1);
    daemon
        .wait_metrics("a good reload", |text| {
            reload_ok(text).filter(|v| *v == 1.0)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_keeps_the_last_good_config_until_it_is_fixed() {
    let a = account(6);
    let fake = fake_with_groups(&a, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    write_in_place(&config, &groups_config(&a, &[]));
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .start()
        .await;
    daemon.wait_ready().await;
    assert_eq!(reload_ok(&daemon.metrics().await), Some(1.0));

    // Marks beta absent, but with an unknown key: the whole file is rejected.
    let invalid = format!("{}colour: blue\n", groups_config(&a, &["beta"]));
    write_by_rename(&config, &invalid);
    daemon
        .wait_metrics("the failed reload", |text| {
            reload_ok(text).filter(|v| *v == 0.0)
        })
        .await;
    let beta = group_named(&fake, &a, "beta");
    assert!(fake.groups(&a).iter().any(|g| g.id == beta.as_str()));
    assert_eq!(delete_count(&fake), 0, "an invalid config deletes nothing");
    assert_eq!(daemon.get("/readyz").await.0, 200, "readiness stays");
    assert!(
        !daemon
            .log
            .events(
                "the config is invalid: deletions are suspended until a valid config is back; \
                 drift is still listed and reported against the last good config"
            )
            .is_empty(),
        "{}",
        daemon.log.text()
    );

    write_by_rename(&config, &groups_config(&a, &["beta"]));
    wait_deleted(&fake, &a, &beta).await;
    assert_eq!(delete_count(&fake), 1);
    daemon
        .wait_metrics("the good reload", |text| {
            reload_ok(text).filter(|v| *v == 1.0)
        })
        .await;
    // The fix is said, with the file it touched.
    let back = daemon
        .log
        .events("a valid config is back on disk; deletions resume");
    assert_eq!(back.len(), 1, "{}", daemon.log.text());
    assert!(
        back[0]["fields"]["files"]
            .as_str()
            .is_some_and(|files| files.contains("groups.yaml (edited)")),
        "{}",
        back[0]
    );
}

/// With the config file deleted, the daemon keeps listing and reporting drift against the
/// last good config, but deletes nothing, whatever wakes it, until a valid config is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_config_suspends_deletions_until_it_is_back() {
    let a = account(16);
    let fake = fake_with_groups(&a, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let mut groups: Vec<(&str, &'static str)> = NAMES.iter().map(|n| (*n, "present")).collect();
    groups.push(("zeta", "absent"));
    let text = config_text(&[account_config(&a, "report", &groups)]);
    write_in_place(&config, &text);
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .interval(Duration::from_secs(1))
        .start()
        .await;
    daemon.wait_ready().await;
    let suspended = |text: &str| metric(text, "cfgroups_deletions_suspended");
    assert_eq!(suspended(&daemon.metrics().await), Some(0.0));

    std::fs::remove_file(&config).unwrap();
    daemon
        .wait_metrics("deletions to be suspended", |text| {
            (reload_ok(text) == Some(0.0) && suspended(text) == Some(1.0)).then_some(())
        })
        .await;
    assert!(
        !daemon
            .log
            .events(
                "the config is gone: deletions are suspended until a valid config is back; \
                 drift is still listed and reported against the last good config"
            )
            .is_empty(),
        "{}",
        daemon.log.text()
    );

    // A group the last good config declares absent appears: it is found and reported, by
    // the tick and by SIGHUP, and not deleted.
    let zeta = fake.create_group(&a, "zeta");
    let drift = format!(
        "cfgroups_drift_groups{{account=\"{}\",kind=\"delete\"}}",
        a.as_str()
    );
    daemon.wait_metric_at_least(&drift, 1.0).await;
    daemon.signal(Signal::SIGHUP);
    let success = "cfgroups_reconciles_total{result=\"success\"}";
    let done = metric(&daemon.metrics().await, success).unwrap_or(0.0);
    daemon.wait_metric_at_least(success, done + 2.0).await;
    assert_eq!(delete_count(&fake), 0, "deleted by a config that is gone");
    assert!(fake.groups(&a).iter().any(|g| g.id == zeta));
    let suspended_cycles = daemon
        .log
        .events("reconciled: 1 to delete, 0 blocked, 0 missing, 0 unmanaged, 0 accounts failing; deletions suspended: no valid config on disk, nothing deleted");
    assert!(!suspended_cycles.is_empty(), "{}", daemon.log.text());

    // The same config back: deletions resume at once.
    write_by_rename(&config, &text);
    wait_deleted(&fake, &a, &zeta).await;
    assert_eq!(delete_count(&fake), 1);
    daemon
        .wait_metrics("deletions to resume", |text| {
            (reload_ok(text) == Some(1.0) && suspended(text) == Some(0.0)).then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reconciles() {
    let a = account(7);
    let fake = fake_with_groups(&a, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let present: Vec<(&str, &'static str)> = NAMES.iter().map(|n| (*n, "present")).collect();
    write_in_place(
        &config,
        &config_text(&[account_config(&a, "delete", &present)]),
    );
    // A one-hour interval: only SIGHUP can start the second reconcile.
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .start()
        .await;
    daemon.wait_ready().await;
    let success = "cfgroups_reconciles_total{result=\"success\"}";
    assert_eq!(metric(&daemon.metrics().await, success), Some(1.0));

    // Another admin adds a group the config prunes; neither the file nor the clock moves.
    let intruder = fake.create_group(&a, "intruder");
    daemon.signal(Signal::SIGHUP);
    wait_deleted(&fake, &a, &intruder).await;
    assert_eq!(delete_count(&fake), 1);
    daemon.wait_metric_at_least(success, 2.0).await;
    assert!(
        !daemon
            .log
            .events("SIGHUP: reloading the config and reconciling")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_deletions_stops_between_them_and_exits_zero() {
    let a = account(8);
    const GROUPS: usize = 40;
    let fake = fake()
        .latency(Duration::from_millis(200))
        .state(FakeState::new().with_generated_groups(&a, GROUPS, 8))
        .start()
        .await
        .unwrap();
    let names: Vec<String> = (0..GROUPS).map(|i| format!("group-{i:04}")).collect();
    let absent: Vec<(&str, &'static str)> = names.iter().map(|n| (n.as_str(), "absent")).collect();
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let config_file = AccountConfig::new(a.clone())
        .unmanaged("report")
        .max_deletes(100)
        .declare_all(&absent);
    write_in_place(&config, &config_text(&[config_file]));
    // One deletion at a time, so the signal lands early in a DELETE's 200 ms.
    let mut daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .arg("--apply-concurrency")
        .arg("1")
        .start()
        .await;

    // Mid-cycle: some deletions done, a DELETE in flight (each answer takes 200 ms), most
    // still to come.
    let in_flight = |r: &Requests| {
        let arrived = r.count(Method::DELETE, Route::Delete);
        let answered = r
            .log()
            .iter()
            .filter(|r| r.method == Method::DELETE)
            .count();
        (arrived, answered)
    };
    let at_stop = fake
        .wait_for_requests(WAIT, |r| {
            let (arrived, answered) = in_flight(r);
            answered >= 1 && arrived > answered
        })
        .await
        .unwrap_or_else(|| panic!("no deletion in flight:\n{}", daemon.log.text()));
    daemon.signal(Signal::SIGTERM);
    let stop_sent = Instant::now();
    let (arrived_at_stop, _) = in_flight(&at_stop);
    let status = daemon
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("still running 10 s after SIGTERM");
    let exited = Instant::now();
    assert!(status.success(), "exit status {status}");
    eprintln!("SIGTERM to exit: {:?}", exited - stop_sent);

    let requests = fake.requests();
    let deletes: Vec<_> = requests
        .log()
        .iter()
        .filter(|r| r.method == Method::DELETE)
        .collect();
    assert!(
        deletes.len() < GROUPS,
        "the stop came too late to interrupt anything"
    );
    assert!(
        deletes.iter().all(|r| r.at < exited),
        "a DELETE arrived after the process exited"
    );
    // The DELETEs in flight when the signal came were finished, not abandoned.
    assert!(deletes.len() >= arrived_at_stop);
    assert!(
        deletes.iter().all(|r| r.status == Some(200)),
        "a DELETE was cut off mid-flight: {deletes:#?}"
    );
    assert_eq!(
        requests.count(Method::DELETE, Route::Delete),
        deletes.len(),
        "every DELETE that arrived was answered"
    );
    assert_eq!(fake.groups(&a).len(), GROUPS - deletes.len());

    let contents = journal::read(&daemon.journal_path()).unwrap();
    assert!(contents.unreadable.is_empty());
    assert!(
        contents.unresolved().is_empty(),
        "intents without an outcome: {:#?}",
        contents.unresolved()
    );
    let intents = contents
        .records
        .iter()
        .filter(|r| matches!(r, Record::Intent { .. }))
        .count();
    let deleted = contents
        .records
        .iter()
        .filter(|r| {
            matches!(
                r,
                Record::Outcome {
                    outcome: DeletionOutcome::Deleted,
                    ..
                }
            )
        })
        .count();
    assert_eq!(intents, deletes.len(), "one intent per DELETE sent");
    assert_eq!(
        deleted,
        deletes.len(),
        "one deleted outcome per DELETE answered"
    );
    assert!(
        !daemon.log.events("stopped").is_empty(),
        "no clean stop in the log"
    );
    // Nothing more arrives once the process is gone.
    assert_eq!(delete_count(&fake), deletes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_the_report_after_deletions() {
    let a = account(9);
    let fake = fake_with_groups(&a, Duration::ZERO).await;
    fake.create_group(&a, "unlisted");
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let groups = [
        ("alpha", "present"),
        ("beta", "absent"),
        ("gamma", "absent"),
        ("delta", "absent"),
        ("nowhere", "present"),
    ];
    write_in_place(
        &config,
        &config_text(&[account_config(&a, "report", &groups)]),
    );
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .start()
        .await;
    daemon.wait_ready().await;
    let report = eventually("last-report.json", WAIT, async || {
        std::fs::read_to_string(daemon.report_path()).ok()
    })
    .await;

    let text = daemon.metrics().await;
    let value =
        |series: &str| metric(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    assert_eq!(
        value(&format!(
            "cfgroups_deletions_total{{account=\"{a}\",result=\"deleted\"}}"
        )),
        3.0
    );
    assert!(value("cfgroups_reconciles_total{result=\"success\"}") >= 1.0);
    assert_eq!(
        value("cfgroups_api_requests_total{method=\"DELETE\",status=\"200\"}"),
        3.0
    );
    // The gauges describe the state after the cycle's deletions: what was deleted is no
    // longer "to delete".
    for (kind, count) in [
        ("delete", 0.0),
        ("blocked", 0.0),
        ("missing", 1.0),
        ("unmanaged", 1.0),
        ("listing_failed", 0.0),
    ] {
        assert_eq!(
            value(&format!(
                "cfgroups_drift_groups{{account=\"{a}\",kind=\"{kind}\"}}"
            )),
            count,
            "{kind}"
        );
    }
    assert_eq!(
        value(&format!(
            "cfgroups_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    assert!(
        value(&format!(
            "cfgroups_account_last_success_timestamp_seconds{{account=\"{a}\"}}"
        )) > 0.0
    );
    assert_eq!(fake.groups(&a).len(), 2, "alpha and unlisted remain");

    assert_eq!(
        value(&format!(
            "cfgroups_account_last_reconcile_successful{{account=\"{a}\"}}"
        )),
        1.0
    );
    assert_eq!(
        value(&format!(
            "cfgroups_deletions_total{{account=\"{a}\",result=\"failed\"}}"
        )),
        0.0,
        "every result is exported from zero"
    );

    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["summary"]["delete"], 0, "{report:#}");
    assert_eq!(report["summary"]["missing"], 1, "{report:#}");
    // alpha, and the three deleted declared absent and now gone.
    assert_eq!(report["summary"]["in_sync"], 4, "{report:#}");
    let generated = report["generated_at"].as_str().expect("generated_at");
    assert!(humantime::parse_rfc3339(generated).is_ok(), "{generated}");
    let hash = report["config_hash"].as_str().expect("config_hash");
    assert_eq!(hash.len(), 64, "{hash}");
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{hash}");
    let deletions = report["deletions"].as_array().expect("deletions");
    let mut outcomes: Vec<(String, String)> = deletions
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("beta".to_owned(), "deleted".to_owned()),
            ("delta".to_owned(), "deleted".to_owned()),
            ("gamma".to_owned(), "deleted".to_owned()),
        ]
    );
    let beta = report["accounts"][0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "beta")
        .expect("beta in the report");
    assert_eq!(beta["action"], "in_sync", "{beta}");
    assert_eq!(beta["deletion"]["outcome"], "deleted", "{beta}");

    // The log line says the same: what was deleted, and what remains.
    assert!(
        !daemon
            .log
            .events(
                "reconciled: deleted 3, 0 not deleted; now 0 to delete, 0 blocked, 1 missing, \
                 1 unmanaged, 0 accounts failing"
            )
            .is_empty(),
        "{}",
        daemon.log.text()
    );
}

/// An account that cannot be listed is named in a warning of its own, with Cloudflare's
/// code and what to check; `/readyz` says which account it is; the per-account series
/// tell it from the healthy one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_account_is_named_with_its_code_and_a_hint_and_readyz_says_so() {
    let good = account(31);
    // Not in the fake's state: the token cannot see it (403, code 9109).
    let bad = account(32);
    let fake = fake_with_groups(&good, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let groups = [("alpha", "present")];
    let both = config_text(&[
        account_config(&good, "ignore", &groups),
        account_config(&bad, "ignore", &groups),
    ]);
    write_in_place(&config, &both);
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .start()
        .await;
    daemon
        .wait_metric_at_least("cfgroups_reconciles_total{result=\"failure\"}", 1.0)
        .await;

    let warnings = daemon.log.events(&format!(
        "account {bad} cannot be listed; nothing in it is deleted this cycle"
    ));
    let warning = warnings
        .first()
        .unwrap_or_else(|| panic!("{}", daemon.log.text()));
    assert_eq!(warning["level"], "WARN", "{warning}");
    let fields = &warning["fields"];
    assert_eq!(fields["account"], bad.as_str(), "{warning}");
    assert_eq!(fields["status"], 403, "{warning}");
    assert!(
        fields["codes"].as_str().is_some_and(|c| c.contains("9109")),
        "{warning}"
    );
    assert!(
        fields["error"]
            .as_str()
            .is_some_and(|e| e.contains("Unauthorized to access requested resource")),
        "{warning}"
    );
    assert!(
        fields["hint"]
            .as_str()
            .is_some_and(|h| h.contains("account id") && h.contains("Account Settings Read")),
        "{warning}"
    );
    assert!(
        daemon
            .log
            .events(&format!(
                "account {good} cannot be listed; nothing in it is deleted this cycle"
            ))
            .is_empty()
    );

    let (status, body) = daemon.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains(bad.as_str()) && !body.contains(good.as_str()),
        "{body}"
    );

    let text = daemon.metrics().await;
    let series = |name: &str, account: &AccountId| {
        metric(&text, &format!("{name}{{account=\"{account}\"}}"))
    };
    assert_eq!(
        series("cfgroups_account_last_reconcile_successful", &bad),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        series("cfgroups_account_last_reconcile_successful", &good),
        Some(1.0),
        "{text}"
    );
    assert!(
        metric(
            &text,
            &format!("cfgroups_account_reconciles_total{{account=\"{bad}\",result=\"failure\"}}")
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );

    // The account dropped from the config: ready again, and its series are gone.
    write_by_rename(
        &config,
        &config_text(&[account_config(&good, "ignore", &groups)]),
    );
    let ready = testkit::within(WAIT, async || {
        (daemon.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "{}", daemon.log.text());
    assert!(!daemon.metrics().await.contains(bad.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_drift_and_never_deletes() {
    let a = account(10);
    let fake = fake_with_groups(&a, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    write_in_place(&config, &groups_config(&a, &["beta", "gamma"]));
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .dry_run()
        .start()
        .await;
    daemon.wait_ready().await;
    let report = eventually("last-report.json", WAIT, async || {
        std::fs::read_to_string(daemon.report_path()).ok()
    })
    .await;
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["summary"]["delete"], 2, "{report:#}");
    assert_eq!(report["summary"]["drift"], true, "{report:#}");

    // A second reconcile, and an edit that adds one more: still nothing deleted.
    daemon.signal(Signal::SIGHUP);
    daemon
        .wait_metric_at_least("cfgroups_reconciles_total{result=\"success\"}", 2.0)
        .await;
    write_by_rename(&config, &groups_config(&a, &["beta", "gamma", "delta"]));
    let drift = format!("cfgroups_drift_groups{{account=\"{a}\",kind=\"delete\"}}");
    daemon.wait_metric_at_least(&drift, 3.0).await;
    daemon
        .wait_metric_at_least("cfgroups_reconciles_total{result=\"success\"}", 3.0)
        .await;

    let requests = fake.requests();
    assert_eq!(delete_count(&fake), 0);
    assert!(
        requests
            .log()
            .iter()
            .all(|r| r.method == Method::GET && r.route == Route::List),
        "a dry run only lists: {:#?}",
        requests.log()
    );
    assert_eq!(fake.groups(&a).len(), NAMES.len());
    let text = daemon.metrics().await;
    assert_eq!(
        metric(
            &text,
            &format!("cfgroups_deletions_total{{account=\"{a}\",result=\"deleted\"}}")
        )
        .unwrap_or(0.0),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_account_does_not_hold_the_others() {
    let good = account(11);
    // Not in the fake's state: its listing gets 403 (the token cannot see it).
    let bad = account(12);
    let fake = fake_with_groups(&good, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let good_groups = [("alpha", "present"), ("beta", "absent")];
    let bad_groups = [("alpha", "present"), ("beta", "absent")];
    write_in_place(
        &config,
        &config_text(&[
            account_config(&good, "report", &good_groups),
            account_config(&bad, "report", &bad_groups),
        ]),
    );
    let beta = group_named(&fake, &good, "beta");
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .start()
        .await;
    wait_deleted(&fake, &good, &beta).await;
    daemon
        .wait_metric_at_least("cfgroups_reconciles_total{result=\"failure\"}", 1.0)
        .await;

    let text = daemon.metrics().await;
    let success = |account: &AccountId| {
        metric(
            &text,
            &format!("cfgroups_account_last_success_timestamp_seconds{{account=\"{account}\"}}"),
        )
    };
    assert!(success(&good).is_some_and(|t| t > 0.0), "{text}");
    assert_eq!(success(&bad), None, "{text}");
    assert_eq!(
        metric(
            &text,
            &format!("cfgroups_drift_groups{{account=\"{bad}\",kind=\"listing_failed\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            &format!("cfgroups_deletions_total{{account=\"{good}\",result=\"deleted\"}}")
        ),
        Some(1.0)
    );
    let requests = fake.requests();
    assert!(
        requests
            .log()
            .iter()
            .any(|r| r.path.contains(bad.as_str()) && r.status == Some(403)),
        "the bad account was refused by the fake"
    );
    assert!(
        requests
            .log()
            .iter()
            .filter(|r| r.path.contains(bad.as_str()))
            .all(|r| r.route == Route::List),
        "nothing but a listing was tried on the bad account"
    );
    assert_eq!(delete_count(&fake), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_when_idle_exits_zero_with_a_scraper_connected() {
    let a = account(13);
    let fake = fake_with_groups(&a, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    write_in_place(&config, &groups_config(&a, &[]));
    let mut daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .start()
        .await;
    daemon.wait_ready().await;

    // A scraper keeps its connection open between scrapes, as Prometheus does.
    let scraper = http();
    let response = scraper.get(daemon.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();

    daemon.signal(Signal::SIGTERM);
    let status = daemon
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("still running 10 s after SIGTERM");
    assert!(status.success(), "exit status {status}");
    drop(scraper);
}

/// A client that sends half a request line and then nothing must not hold SIGTERM up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_completes_while_a_client_holds_a_half_sent_request() {
    use tokio::io::AsyncWriteExt;

    let a = account(17);
    let fake = fake_with_groups(&a, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    write_in_place(&config, &groups_config(&a, &[]));
    let mut daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .start()
        .await;
    daemon.wait_ready().await;

    let mut stalled = tokio::net::TcpStream::connect(daemon.addr()).await.unwrap();
    stalled.write_all(b"GET /metr").await.unwrap();
    // A complete request on another connection is answered: the stalled one was accepted.
    assert_eq!(daemon.get("/healthz").await.0, 200);

    let started = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let status = daemon
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("still running 15 s after SIGTERM, held by a half-sent request");
    assert!(status.success(), "exit status {status}");
    eprintln!(
        "SIGTERM to exit with a stalled client: {:?}",
        started.elapsed()
    );
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interval_tick_reconciles_without_any_other_trigger() {
    let a = account(14);
    let fake = fake_with_groups(&a, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let present: Vec<(&str, &'static str)> = NAMES.iter().map(|n| (*n, "present")).collect();
    write_in_place(
        &config,
        &config_text(&[account_config(&a, "delete", &present)]),
    );
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .interval(Duration::from_secs(1))
        .start()
        .await;
    daemon.wait_ready().await;

    // Neither the file nor a signal: only the tick can find and prune this one.
    let intruder = fake.create_group(&a, "intruder");
    wait_deleted(&fake, &a, &intruder).await;
    daemon
        .wait_metric_at_least("cfgroups_reconciles_total{result=\"success\"}", 2.0)
        .await;
    assert!(
        daemon
            .log
            .events("SIGHUP: reloading the config and reconciling")
            .is_empty()
    );
}

/// The config is a symlink into another directory, as when it is managed elsewhere: the
/// watch on the symlink's directory never hears of an edit to the target. The next interval
/// tick re-reads it and deletes the group the edit marked absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interval_tick_rereads_a_config_the_watch_cannot_see() {
    let a = account(15);
    let state = FakeState::new()
        .with_account(&a)
        .with_group(
            &a,
            FakeGroup::new(format!("{:032x}", 0xf00d_0001_u64), "Old"),
        )
        .with_group(
            &a,
            FakeGroup::new(format!("{:032x}", 0xf00d_0002_u64), "Keep"),
        );
    let fake = fake().state(state).start().await.unwrap();
    let dir = TempDir::new().unwrap();
    let real = dir.path().join("real");
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(&conf).unwrap();
    let target = real.join("groups.yaml");
    // "Old" starts present; then the edit marks it absent.
    let config = |old: &'static str| {
        config_text(&[account_config(
            &a,
            "report",
            &[("Keep", "present"), ("Old", old)],
        )])
    };
    write_in_place(&target, &config("present"));
    symlink(&target, conf.join("groups.yaml")).unwrap();
    let daemon = DaemonOptions::new(&conf.join("groups.yaml"), &dir.path().join("state"), &fake)
        .interval(Duration::from_secs(1))
        .start()
        .await;
    daemon
        .wait_metrics_within("the first reconcile", Duration::from_secs(30), |text| {
            (metric_total(text, "cfgroups_reconciles_total") >= 1.0).then_some(())
        })
        .await;
    assert_eq!(fake.groups(&a).len(), 2);

    write_in_place(&target, &config("absent"));
    eventually(
        "the edit to be carried out",
        Duration::from_secs(30),
        async || (fake.groups(&a).len() == 1).then_some(()),
    )
    .await;
    assert_eq!(fake.groups(&a)[0].name, "Keep");
}
