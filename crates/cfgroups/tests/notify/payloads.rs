//! The payload of every event, as golden files: `cfgroups run` against the fake API and two
//! sinks on the test receiver (a generic webhook and a Slack-compatible one), driven through
//! a first cycle that deletes, fails, blocks, cannot list and suspends, and a second one in
//! which a block and a failed listing end. Times, run ids and the state directory are
//! replaced by placeholders; everything else is compared as sent.

use std::collections::BTreeMap;

use cfgroups_fake::{FakeGroup, FakeState};
use serde_json::Value;
use tempfile::TempDir;
use testkit::daemon::DaemonOptions;
use testkit::receiver::{Received, Receiver};
use testkit::{AccountConfig, Signal, TOKEN, account, config_text, fake, write_by_rename};

/// Every event kind a sink can want.
pub const ALL_EVENTS: &str =
    "[deleted, delete_failed, blocked, listing_failed, drift, suspended, recovered]";

pub fn gid(n: u64) -> String {
    format!("{:032x}", 0x9000_u64 + n)
}

/// `text` with the `notify:` section of a webhook sink `hook` and a Slack sink `chat`, whose
/// URLs are in `HOOK_URL` and `CHAT_URL`.
fn with_sinks(text: &str) -> String {
    format!(
        "{text}notify:\n  sinks:\n    - name: hook\n      kind: webhook\n      url_env: HOOK_URL\n      events: {ALL_EVENTS}\n    - name: chat\n      kind: slack\n      url_env: CHAT_URL\n      events: {ALL_EVENTS}\n"
    )
}

/// Replaces run ids, times, the state directory and the test's directory in `text`.
fn normalize(text: &str, runs: &[String], times: &[String], state_dir: &str) -> String {
    let mut text = text.replace(state_dir, "[state-dir]");
    if let Some(dir) = std::path::Path::new(state_dir).parent() {
        text = text.replace(&dir.display().to_string(), "[dir]");
    }
    for run in runs {
        text = text.replace(run.as_str(), "[run]");
    }
    for at in times {
        text = text.replace(at.as_str(), "[at]");
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_as_the_webhook_and_the_slack_sink_receive_it() {
    let (production, staging, sandbox) = (account(60), account(61), account(62));
    let state = FakeState::new()
        .with_group(&production, FakeGroup::new(gid(1), "Old Contractors"))
        .with_group(
            &production,
            FakeGroup::new(gid(2), "SCIM-Engineering").scim_managed(),
        )
        .with_group(&production, FakeGroup::new(gid(3), "Temp"))
        .with_group(&production, FakeGroup::new(gid(4), "Temp"))
        .with_group(&production, FakeGroup::new(gid(5), "Engineering"))
        .with_group(&sandbox, FakeGroup::new(gid(6), "Interns"));
    let fake = fake().state(state).start().await.unwrap();
    let receiver = Receiver::start().await;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let accounts = [
        AccountConfig::new(production.clone())
            .label("production")
            .present("Engineering")
            .absent("Old Contractors")
            .absent("SCIM-Engineering")
            .absent("Temp"),
        AccountConfig::new(staging.clone()).label("staging"),
        AccountConfig::new(sandbox.clone())
            .label("sandbox")
            .suspend(true)
            .absent("Interns"),
    ];
    write_by_rename(&config, &with_sinks(&config_text(&accounts)));
    let state_dir = dir.path().join("state");
    let daemon = DaemonOptions::new(&config, &state_dir, &fake)
        .env("HOOK_URL", &receiver.url("/hook/SECRET-HOOK-PATH"))
        .env("CHAT_URL", &receiver.url("/chat/SECRET-CHAT-PATH"))
        .start()
        .await;

    // First cycle: 8 events per sink.
    let per_sink = |received: &[Received], sink: &str| {
        received
            .iter()
            .filter(|r| r.path.starts_with(&format!("/{sink}/")))
            .count()
    };
    receiver
        .wait_for("the first cycle's 8 events on each sink", |r| {
            per_sink(r, "hook") == 8 && per_sink(r, "chat") == 8
        })
        .await;

    // Second cycle: staging can be listed, and Temp names one group.
    fake.add_account(&staging);
    fake.remove_group(&production, gid(4));
    daemon.signal(Signal::SIGHUP);
    let received = receiver
        .wait_for("the second cycle's 4 events on each sink", |r| {
            per_sink(r, "hook") == 12 && per_sink(r, "chat") == 12
        })
        .await;

    let hooks: Vec<Value> = received
        .iter()
        .filter(|r| r.path.starts_with("/hook/"))
        .map(Received::json)
        .collect();
    let field = |name: &str| -> Vec<String> {
        hooks
            .iter()
            .filter_map(|h| h[name].as_str().map(str::to_owned))
            .collect()
    };
    let (runs, times) = (field("run_id"), field("at"));
    let state_text = state_dir.display().to_string();
    for r in &received {
        let text = r.text();
        assert!(!text.contains(TOKEN), "the API token in a payload: {text}");
        assert!(!text.contains("SECRET-"), "a sink URL in a payload: {text}");
    }

    // One golden file per sink and event kind, its payloads sorted.
    let mut by_kind: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for (hook, r) in received
        .iter()
        .filter(|r| r.path.starts_with("/hook/"))
        .zip(0..)
    {
        let _ = r;
        let normalized = normalize(&hook.text(), &runs, &times, &state_text);
        let kind = hook.json()["event"].as_str().unwrap_or("?").to_owned();
        by_kind
            .entry(("webhook".to_owned(), kind))
            .or_default()
            .push(serde_json::from_str(&normalized).unwrap());
    }
    for chat in received.iter().filter(|r| r.path.starts_with("/chat/")) {
        let normalized = normalize(&chat.text(), &runs, &times, &state_text);
        let value: Value = serde_json::from_str(&normalized).unwrap();
        let context = value["blocks"][1]["elements"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let kind = context
            .split("event `")
            .nth(1)
            .and_then(|rest| rest.split('`').next())
            .unwrap_or("?")
            .to_owned();
        by_kind
            .entry(("slack".to_owned(), kind))
            .or_default()
            .push(value);
    }
    let kinds: Vec<&str> = by_kind
        .keys()
        .filter(|(sink, _)| sink == "webhook")
        .map(|(_, kind)| kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "blocked",
            "delete_failed",
            "deleted",
            "drift",
            "listing_failed",
            "recovered",
            "suspended"
        ]
    );
    for ((sink, kind), mut payloads) in by_kind {
        payloads.sort_by_key(|p| p.to_string());
        insta::assert_json_snapshot!(format!("{sink}_{kind}"), payloads);
    }
    assert!(
        !daemon.log.text().contains("SECRET-"),
        "a sink URL in the log"
    );
}
