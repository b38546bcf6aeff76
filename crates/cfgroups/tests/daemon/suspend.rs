//! Suspending the daemon: `suspend: true` in the config, and `run --suspend-file`. A
//! suspended account is still listed and its drift reported (metrics, `last-report.json`),
//! nothing in it is deleted, every cycle logs that it is suspended, and
//! `cfgroups_suspended{account}` says so; resuming deletes what is due. A suspend file that
//! appears while deletions are under way stops the ones not yet started.

use std::time::Duration;

use cfgroups::model::AccountId;
use cfgroups_fake::{FakeCloudflare, FakeGroup, FakeState, Method, Route};
use tempfile::TempDir;
use testkit::daemon::{DaemonOptions, metric, wait_deleted};
use testkit::{
    AccountConfig, Signal, WAIT, account, config_text, delete_count, eventually, fake,
    write_by_rename,
};

fn gid(n: u64) -> String {
    format!("{:032x}", 0x5eed_0000_u64 + n)
}

/// A fake with `count` groups named `g0`, `g1`, ... in `account`.
async fn fake_with(account: &AccountId, count: u64, latency: Duration) -> FakeCloudflare {
    let mut state = FakeState::new().with_account(account);
    for n in 0..count {
        state = state.with_group(account, FakeGroup::new(gid(n), format!("g{n}")));
    }
    fake().latency(latency).state(state).start().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_in_the_config_lists_and_reports_but_deletes_nothing_until_resumed() {
    let a = account(50);
    let fake = fake_with(&a, 2, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let declared = AccountConfig::new(a.clone())
        .label("production")
        .present("g0")
        .absent("g1");
    write_by_rename(&config, &config_text(&[declared.clone().suspend(true)]));
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .interval(Duration::from_secs(1))
        .start()
        .await;
    let success = "cfgroups_reconciles_total{result=\"success\"}";
    daemon.wait_metric_at_least(success, 3.0).await;
    assert_eq!(delete_count(&fake), 0, "suspended, yet deleted");

    let text = daemon.metrics().await;
    let suspended = format!("cfgroups_suspended{{account=\"{a}\"}}");
    assert_eq!(metric(&text, &suspended), Some(1.0), "{text}");
    let blocked = format!("cfgroups_drift_groups{{account=\"{a}\",kind=\"blocked\"}}");
    assert_eq!(
        metric(&text, &blocked),
        Some(1.0),
        "drift keeps flowing:\n{text}"
    );
    // Every cycle says so (the log is read as it is written: wait for the lines).
    let said = eventually("a warning per cycle", WAIT, async || {
        let said = daemon
            .log
            .events("account suspended: listed and reported, nothing is deleted");
        (said.len() >= 3).then_some(said)
    })
    .await;
    assert_eq!(said[0]["fields"]["label"], "production");
    assert_eq!(said[0]["fields"]["withheld_deletions"], 1);
    assert!(
        said[0]["fields"]["suspended_by"]
            .as_str()
            .is_some_and(|by| by.starts_with("suspend: true in ")),
        "{:?}",
        said[0]
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(daemon.report_path()).unwrap()).unwrap();
    assert!(report["accounts"][0]["suspended"].is_string(), "{report}");
    assert_eq!(
        report["accounts"][0]["items"][0]["blocked"]["kind"],
        "suspended"
    );

    // Resumed in the file: g1 goes, and the gauge reads 0.
    write_by_rename(&config, &config_text(&[declared.suspend(false)]));
    wait_deleted(&fake, &a, gid(1)).await;
    daemon
        .wait_metrics("cfgroups_suspended 0", |text| {
            (metric(text, &suspended) == Some(0.0)).then_some(())
        })
        .await;
    assert_eq!(delete_count(&fake), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspend_file_suspends_every_account_until_it_is_removed() {
    let a = account(51);
    let fake = fake_with(&a, 2, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    write_by_rename(
        &config,
        &config_text(&[AccountConfig::new(a.clone()).present("g0").absent("g1")]),
    );
    let brake = dir.path().join("suspend");
    std::fs::write(&brake, "").unwrap();
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .arg("--suspend-file")
        .arg(brake.display().to_string())
        .start()
        .await;
    daemon.wait_ready().await;
    let suspended = format!("cfgroups_suspended{{account=\"{a}\"}}");
    let text = daemon.metrics().await;
    assert_eq!(
        metric(&text, &suspended),
        Some(1.0),
        "{text}\n{}",
        daemon.log.text()
    );
    let said = eventually("the suspension's warning", WAIT, async || {
        let said = daemon
            .log
            .events("account suspended: listed and reported, nothing is deleted");
        (!said.is_empty()).then_some(said)
    })
    .await;
    assert_eq!(
        said[0]["fields"]["suspended_by"],
        format!("--suspend-file {} exists", brake.display())
    );
    // SIGHUP reconciles again; still suspended.
    daemon.signal(Signal::SIGHUP);
    let success = "cfgroups_reconciles_total{result=\"success\"}";
    daemon.wait_metric_at_least(success, 2.0).await;
    assert_eq!(delete_count(&fake), 0);

    // Removed: the next cycle (SIGHUP here) deletes.
    std::fs::remove_file(&brake).unwrap();
    daemon.signal(Signal::SIGHUP);
    wait_deleted(&fake, &a, gid(1)).await;
    daemon
        .wait_metrics("cfgroups_suspended 0", |text| {
            (metric(text, &suspended) == Some(0.0)).then_some(())
        })
        .await;
}

/// The emergency brake pulled during a cycle's deletions: the first DELETE's arrival creates
/// the suspend file; the deletions not yet started by then never start (the file is looked
/// for right before each one), and the next cycles delete nothing until it is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspend_file_appearing_mid_cycle_stops_the_deletions_not_yet_started() {
    let a = account(52);
    let total = 8;
    let fake = fake_with(&a, total, Duration::ZERO).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let mut declared = AccountConfig::new(a.clone());
    for n in 0..total {
        declared = declared.absent(&format!("g{n}"));
    }
    write_by_rename(&config, &config_text(&[declared]));
    let brake = dir.path().join("suspend");
    let pulled = brake.clone();
    fake.on_arrival(move |request| {
        if request.method == Method::DELETE && request.route == Route::Delete {
            let _ = std::fs::write(&pulled, "");
        }
    });
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .arg("--suspend-file")
        .arg(brake.display().to_string())
        .arg("--apply-concurrency")
        .arg("1")
        .start()
        .await;
    eventually("the brake to be noticed", WAIT, async || {
        (!daemon
            .log
            .events("suspend file appeared: no further deletion starts")
            .is_empty())
        .then_some(())
    })
    .await;
    daemon.wait_ready().await;
    // One at a time: the first deletion had started; the others were asked about after
    // the file appeared.
    let deleted = delete_count(&fake);
    assert_eq!(deleted, 1, "{deleted} of {total} deleted");
    // Later cycles are suspended from the start.
    daemon.signal(Signal::SIGHUP);
    let success = "cfgroups_reconciles_total{result=\"success\"}";
    daemon.wait_metric_at_least(success, 1.0).await;
    assert_eq!(delete_count(&fake), deleted);

    std::fs::remove_file(&brake).unwrap();
    fake.on_arrival(|_| {});
    daemon.signal(Signal::SIGHUP);
    eventually("every group deleted once resumed", WAIT, async || {
        fake.groups(&a).is_empty().then_some(())
    })
    .await;
}
