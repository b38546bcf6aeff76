//! The daemon's journal under attack: its state directory removed while it runs, and a
//! group Cloudflare never deletes, attempted again and again.

use std::time::Duration;

use cfgroups::journal::{self, Record};
use cfgroups_fake::{FakeState, Fault, Method, Route};
use tempfile::TempDir;
use testkit::daemon::{DaemonOptions, group_named, wait_deleted};
use testkit::{
    AccountConfig, WAIT, account, config_text, eventually, fake, group, write_by_rename,
    write_in_place,
};

/// The state directory is removed under the running daemon; the next deletion's backup
/// lands in a journal created again at the same path, together with every earlier one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_directory_removed_under_the_daemon_keeps_every_backup() {
    let a = account(30);
    let state = FakeState::new()
        .with_group(&a, group(30, 1, "keep", 1))
        .with_group(&a, group(30, 2, "beta", 2))
        .with_group(&a, group(30, 3, "gamma", 3));
    let fake = fake().state(state).start().await.unwrap();
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let state_dir = dir.path().join("state");
    let declared = |absent: &[&str]| {
        let mut account = AccountConfig::new(a.clone()).present("keep");
        for name in ["beta", "gamma"] {
            account = if absent.contains(&name) {
                account.absent(name)
            } else {
                account.present(name)
            };
        }
        config_text(&[account])
    };
    // Looked up before the daemon starts: it may delete beta at once.
    let beta = group_named(&fake, &a, "beta");
    let gamma = group_named(&fake, &a, "gamma");
    write_in_place(&config, &declared(&["beta"]));
    let daemon = DaemonOptions::new(&config, &state_dir, &fake).start().await;
    wait_deleted(&fake, &a, &beta).await;

    std::fs::remove_dir_all(&state_dir).unwrap();
    write_in_place(&config, &declared(&["beta", "gamma"]));
    wait_deleted(&fake, &a, &gamma).await;

    let contents = journal::read(&daemon.journal_path()).unwrap();
    let backed_up: Vec<String> = contents
        .records
        .iter()
        .filter(|r| r.is_intent())
        .map(|r| r.group_id().to_string())
        .collect();
    assert_eq!(
        backed_up,
        [beta.to_string(), gamma.to_string()],
        "{contents:#?}"
    );
    let removed = "the journal was removed while open; created it again with everything it held";
    assert_eq!(daemon.log.events(removed).len(), 1, "{}", daemon.log.text());
}

/// A group whose DELETE is refused every time (SCIM-managed: 403) is held off after each
/// refusal, and asked for again whenever the config changes; its unchanged backup is
/// journaled once, then referred to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_cloudflare_never_deletes_is_backed_up_once() {
    let a = account(31);
    let fake = fake()
        .state(FakeState::new().with_group(&a, group(31, 1, "SCIM team", 200)))
        .start()
        .await
        .unwrap();
    fake.inject(Fault::Status(403).on(Route::Delete).times(1_000));
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let text = config_text(&[AccountConfig::new(a.clone()).absent("SCIM team")]);
    write_in_place(&config, &text);
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .interval(Duration::from_secs(1))
        .start()
        .await;
    for attempt in 1..=5 {
        eventually("the next refused DELETE", WAIT, async || {
            (fake.requests().count(Method::DELETE, Route::Delete) >= attempt).then_some(())
        })
        .await;
        // A changed config ends the hold on the refused group: the next cycle asks again.
        write_by_rename(&config, &format!("{text}# edit {attempt}\n"));
    }
    let contents = journal::read(&daemon.journal_path()).unwrap();
    let full = contents
        .records
        .iter()
        .filter(|r| matches!(r, Record::Intent { .. }))
        .count();
    let references = contents
        .records
        .iter()
        .filter(|r| matches!(r, Record::IntentRef { .. }))
        .count();
    assert_eq!(full, 1, "{contents:#?}");
    assert!(references >= 3, "{contents:#?}");
    assert!(contents.unreadable.is_empty());
}
