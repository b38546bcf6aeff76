//! `cfgroups apply --notify`: the same events as the daemon, sent once at the end of the run
//! through the config's sinks; refused before anything is listed when no sink is declared or
//! a sink's URL cannot be used; without the flag, nothing is sent.

use cfgroups_fake::{FakeGroup, FakeState, Route};
use tempfile::TempDir;
use testkit::receiver::Receiver;
use testkit::{
    AccountConfig, CommandExt, Run, TOKEN, account, apply, config_text, start_fake, write_by_rename,
};

use super::payloads::gid;

async fn run(command: std::process::Command) -> Run {
    let mut command = command;
    tokio::task::spawn_blocking(move || command.run())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_notify_sends_the_runs_events_and_says_how_delivery_went() {
    let a = account(80);
    let state = FakeState::new()
        .with_group(&a, FakeGroup::new(gid(21), "Old"))
        .with_group(&a, FakeGroup::new(gid(22), "SCIM-Ops").scim_managed());
    let fake = start_fake(state).await;
    let receiver = Receiver::start().await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let url_file = dir.path().join("hook-url");
    std::fs::write(&url_file, receiver.url("/hook/SECRET-APPLY-PATH")).unwrap();
    let text = format!(
        "{}notify:\n  sinks:\n    - {{name: ci, kind: webhook, url_file: {}, events: [deleted, delete_failed, drift]}}\n",
        config_text(&[AccountConfig::new(a.clone())
            .label("production")
            .absent("Old")
            .absent("SCIM-Ops")]),
        url_file.display()
    );
    write_by_rename(&config, &text);
    let state_dir = dir.path().join("state");

    // Without --notify: nothing is sent.
    let mut dry = apply(&fake, &config, &state_dir);
    dry.arg("--dry-run");
    run(dry).await.assert_code(0);
    assert!(receiver.received().is_empty());

    let mut command = apply(&fake, &config, &state_dir);
    command.arg("--notify");
    let out = run(command).await;
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("Notifications: 3 delivered, 0 failed, 0 dropped."),
        "{}",
        out.stderr
    );
    let received = receiver.received();
    let kinds: Vec<String> = received
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["deleted", "drift", "delete_failed"],
        "{received:#?}"
    );
    let deleted = received[0].json();
    assert_eq!(deleted["group"]["name"], "Old");
    assert_eq!(
        deleted["restore_command"],
        format!(
            "cfgroups restore --group {} --state-dir {}",
            gid(21),
            state_dir.display()
        )
    );
    let failed = received[2].json();
    assert_eq!(failed["reason"]["status"], 403);
    assert_eq!(failed["reason"]["code"], 1010);
    for r in &received {
        assert!(!r.text().contains(TOKEN) && !r.text().contains("SECRET-"));
    }
    assert!(!out.stdout.contains("SECRET-") && !out.stderr.contains("SECRET-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_notify_refuses_before_listing_without_a_usable_sink() {
    let a = account(81);
    let fake = start_fake(FakeState::new().with_group(&a, FakeGroup::new(gid(31), "Old"))).await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let base = config_text(&[AccountConfig::new(a.clone()).absent("Old")]);

    write_by_rename(&config, &base);
    let mut command = apply(&fake, &config, &dir.path().join("state"));
    command.arg("--notify");
    let out = run(command).await;
    out.assert_code(1);
    assert!(
        out.stderr.contains("declares no notification sinks"),
        "{}",
        out.stderr
    );

    write_by_rename(
        &config,
        &format!(
            "{base}notify:\n  sinks:\n    - {{name: ci, kind: slack, url_env: CI_HOOK_URL, events: [deleted]}}\n"
        ),
    );
    let mut command = apply(&fake, &config, &dir.path().join("state"));
    command.arg("--notify");
    let out = run(command).await;
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("ci: environment variable CI_HOOK_URL is not set"),
        "{}",
        out.stderr
    );
    assert_eq!(
        fake.requests()
            .count(cfgroups_fake::Method::GET, Route::List),
        0,
        "listed anyway"
    );
    assert_eq!(fake.groups(&a).len(), 1);
}
