//! The safety rules that live in the daemon, each tried against the fake API so that the
//! test dies with the rule: `max_deletes` holds every cycle and cannot be forced, and a
//! journal that cannot be written stops every deletion.

use cfgroups_fake::{FakeState, Method, Route};
use tempfile::TempDir;
use testkit::daemon::{DaemonOptions, metric};
use testkit::{
    AccountConfig, CommandExt, account, cfgroups, config_text, fake, group, write_in_place,
};

/// Five groups declared absent, one account.
fn five_absent(max_deletes: u32) -> (FakeState, String) {
    let a = account(40);
    let mut state = FakeState::new();
    let mut config = AccountConfig::new(a.clone()).max_deletes(max_deletes);
    for n in 0..5 {
        let name = format!("Retired {n}");
        state = state.with_group(&a, group(40, n, &name, 1));
        config = config.absent(&name);
    }
    (state, config_text(&[config]))
}

/// Rule 5 in the daemon: more candidates than `max_deletes` deletes none of them, cycle
/// after cycle, and `run` has no `--force` to override it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_deletes_the_daemon_deletes_nothing_and_cannot_be_forced() {
    let (state, text) = five_absent(2);
    let fake = fake().state(state.clone()).start().await.unwrap();
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    write_in_place(&config, &text);
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .start()
        .await;
    let blocked = format!(
        "cfgroups_drift_groups{{account=\"{}\",kind=\"blocked\"}}",
        account(40)
    );
    daemon
        .wait_metrics("five deletions blocked", |text| {
            metric(text, &blocked).filter(|v| *v == 5.0)
        })
        .await;
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon
        .wait_metric_at_least("cfgroups_reconciles_total{result=\"success\"}", 2.0)
        .await;
    assert_eq!(fake.requests().count(Method::DELETE, Route::Delete), 0);
    assert_eq!(fake.state(), state);

    let out = cfgroups()
        .against(&fake)
        .args(["run", "--force", "--config"])
        .arg(&config)
        .run();
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
}

/// A journal the daemon cannot append to (a file size limit at its current, empty size)
/// stops every deletion: the cycle fails, no DELETE is sent, and the log says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_the_daemon_cannot_write_stops_every_deletion() {
    let (state, text) = five_absent(10);
    let fake = fake().state(state.clone()).start().await.unwrap();
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    write_in_place(&config, &text);
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .file_size_limit(0)
        .start()
        .await;
    daemon
        .wait_metric_at_least("cfgroups_reconciles_total{result=\"failure\"}", 1.0)
        .await;
    assert_eq!(fake.requests().count(Method::DELETE, Route::Delete), 0);
    assert_eq!(fake.state(), state);
    assert!(
        !daemon.log.events("deletions stopped").is_empty(),
        "{}",
        daemon.log.text()
    );
    // The account's own series say it was not reconciled.
    let text = daemon.metrics().await;
    assert_eq!(
        metric(
            &text,
            &format!(
                "cfgroups_account_last_reconcile_successful{{account=\"{}\"}}",
                account(40)
            )
        ),
        Some(0.0),
        "{text}"
    );
}
