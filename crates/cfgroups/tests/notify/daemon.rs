//! Notifications under `cfgroups run`: a state that persists across many cycles is sent
//! once; a sink that hangs does not hold up a deletion, and one that is down is given up and
//! counted; no sink URL ever reaches the log.

use std::time::Duration;

use cfgroups::model::AccountId;
use cfgroups_fake::{FakeCloudflare, FakeGroup, FakeState};
use tempfile::TempDir;
use testkit::daemon::{DaemonOptions, metric, wait_deleted};
use testkit::receiver::{Answer, Received, Receiver};
use testkit::{
    AccountConfig, CommandExt, TOKEN, WAIT, account, config_text, eventually, fake, write_by_rename,
};

use super::payloads::{ALL_EVENTS, gid};

/// `Temp` twice (an ambiguous name), `Old`, and `Keep`.
async fn fake_for(account: &AccountId) -> FakeCloudflare {
    let state = FakeState::new()
        .with_group(account, FakeGroup::new(gid(11), "Temp"))
        .with_group(account, FakeGroup::new(gid(12), "Temp"))
        .with_group(account, FakeGroup::new(gid(13), "Old"))
        .with_group(account, FakeGroup::new(gid(14), "Keep"));
    fake().state(state).start().await.unwrap()
}

/// The account with `Temp` absent (blocked: ambiguous), `Keep` present and `Old` as `old`.
fn declared(account: &AccountId, old: &'static str) -> AccountConfig {
    AccountConfig::new(account.clone())
        .label("production")
        .present("Keep")
        .absent("Temp")
        .declare("Old", old)
}

fn events_of<'a>(received: &'a [Received], kind: &str) -> Vec<&'a Received> {
    received
        .iter()
        .filter(|r| r.json()["event"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_that_persists_across_cycles_is_sent_once() {
    let a = account(70);
    let fake = fake_for(&a).await;
    let receiver = Receiver::start().await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let notify = format!(
        "notify:\n  sinks:\n    - {{name: hook, kind: webhook, url_env: HOOK_URL, events: {ALL_EVENTS}}}\n"
    );
    write_by_rename(
        &config,
        &format!("{}{notify}", config_text(&[declared(&a, "present")])),
    );
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .interval(Duration::from_secs(1))
        .env("HOOK_URL", &receiver.url("/hook"))
        .start()
        .await;
    let success = "cfgroups_reconciles_total{result=\"success\"}";
    daemon.wait_metric_at_least(success, 5.0).await;

    // A deletion after those cycles: its event comes after everything queued before it
    // (one queue per sink, in order), so any repeat of the block would be in by then.
    write_by_rename(
        &config,
        &format!("{}{notify}", config_text(&[declared(&a, "absent")])),
    );
    wait_deleted(&fake, &a, gid(13)).await;
    let received = receiver
        .wait_for("the deletion's event", |r| {
            !events_of(r, "deleted").is_empty()
        })
        .await;
    assert_eq!(events_of(&received, "blocked").len(), 1, "{received:#?}");
    assert_eq!(events_of(&received, "deleted").len(), 1);
    // The drift was sent when it began, and again only when it changed.
    assert_eq!(events_of(&received, "drift").len(), 1, "{received:#?}");
    let delivered = daemon
        .wait_metrics("every notification delivered", |text| {
            metric(
                text,
                "cfgroups_notifications_total{sink=\"hook\",result=\"delivered\"}",
            )
            .filter(|n| *n as usize == receiver.received().len())
        })
        .await;
    assert!(delivered >= 3.0);
    let text = daemon.metrics().await;
    for result in ["failed", "dropped"] {
        let series = format!("cfgroups_notifications_total{{sink=\"hook\",result=\"{result}\"}}");
        assert_eq!(metric(&text, &series), Some(0.0), "{text}");
    }
}

/// The reconcile's DELETE happens while a sink still hangs on the cycle before's message;
/// a sink that is down is given up after its attempts and counted; the log names sinks,
/// never their URLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_sink_does_not_hold_up_a_deletion_and_a_down_sink_is_counted() {
    let a = account(71);
    let fake = fake_for(&a).await;
    let hung = Receiver::start().await;
    hung.answer(Answer::Hang);
    let down = Receiver::down_url("/hook/SECRET-DOWN-PATH").await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let notify = format!(
        "notify:\n  sinks:\n    - {{name: hung, kind: slack, url_env: HUNG_URL, events: {ALL_EVENTS}, timeout: 5m, attempts: 1}}\n    - {{name: down, kind: webhook, url_env: DOWN_URL, events: [blocked], attempts: 2, timeout: 2s}}\n"
    );
    write_by_rename(
        &config,
        &format!("{}{notify}", config_text(&[declared(&a, "present")])),
    );
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .env("HUNG_URL", &hung.url("/hook/SECRET-HUNG-PATH"))
        .env("DOWN_URL", &down)
        .start()
        .await;
    hung.wait_for("the first message, held", |r| r.len() == 1)
        .await;
    daemon
        .wait_metric_at_least(
            "cfgroups_notifications_total{sink=\"down\",result=\"failed\"}",
            1.0,
        )
        .await;

    write_by_rename(
        &config,
        &format!("{}{notify}", config_text(&[declared(&a, "absent")])),
    );
    wait_deleted(&fake, &a, gid(13)).await;
    // Still hanging on the very first message: the deletion did not wait for it.
    assert_eq!(hung.in_flight(), 1);
    assert_eq!(hung.received().len(), 1);
    let text = daemon.metrics().await;
    assert_eq!(
        metric(
            &text,
            "cfgroups_notifications_total{sink=\"hung\",result=\"delivered\"}"
        ),
        Some(0.0),
        "{text}"
    );

    // Released, the queue drains in order.
    hung.release();
    hung.wait_for("the deletion's event on the released sink", |r| {
        r.iter().any(|m| m.text().contains(":wastebasket:"))
    })
    .await;
    eventually("the down sink's give-up logged", WAIT, async || {
        let given_up = daemon.log.events("notification given up");
        given_up
            .iter()
            .any(|e| e["fields"]["sink"] == "down")
            .then_some(())
    })
    .await;
    let log = daemon.log.text();
    assert!(!log.contains("SECRET-"), "a sink URL in the log:\n{log}");
    assert!(!log.contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_to_start_while_a_sinks_url_cannot_be_read() {
    let a = account(72);
    let fake = fake_for(&a).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    write_by_rename(
        &config,
        &format!(
            "{}notify:\n  sinks:\n    - {{name: ops, kind: slack, url_env: OPS_HOOK_URL, events: [deleted]}}\n",
            config_text(&[declared(&a, "absent")])
        ),
    );
    let mut command = testkit::cfgroups();
    command
        .against(&fake)
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("state"));
    let out = tokio::task::spawn_blocking(move || command.run())
        .await
        .unwrap();
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("ops: environment variable OPS_HOOK_URL is not set"),
        "{}",
        out.stderr
    );
    assert_eq!(fake.requests().total(), 0, "it listed or deleted anyway");
}
