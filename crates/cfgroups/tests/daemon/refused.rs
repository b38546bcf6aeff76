//! Deletions Cloudflare will never allow, under the daemon: a group provisioned by SCIM is
//! asked for once and then held off (not retried every cycle), counted in metrics and logged
//! each cycle with its code and hint; a change to the config, or to the group, asks again.

use std::time::Duration;

use cfgroups_fake::{FakeGroup, FakeState, Method, Requests, Route};
use tempfile::TempDir;
use testkit::daemon::{DaemonOptions, metric, wait_deleted};
use testkit::{AccountConfig, WAIT, account, config_text, eventually, fake, write_by_rename};

const SCIM_GROUP: &str = "5c1a000000000000000000000000000a";

fn deletes_of(requests: &Requests, group: &str) -> usize {
    requests
        .log()
        .iter()
        .filter(|r| {
            r.method == Method::DELETE && r.route == Route::Delete && r.path.ends_with(group)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_deletion_is_held_off_across_cycles_until_the_config_or_group_changes() {
    let a = account(40);
    let state = FakeState::new()
        .with_group(
            &a,
            FakeGroup::new(SCIM_GROUP, "SCIM-Engineering").scim_managed(),
        )
        .with_group(
            &a,
            FakeGroup::new(format!("{:032x}", 0xc0ffee_u64), "Old Contractors"),
        );
    let fake = fake().state(state).start().await.unwrap();
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("groups.yaml");
    let declared = AccountConfig::new(a.clone())
        .absent("SCIM-Engineering")
        .absent("Old Contractors");
    write_by_rename(&config, &config_text(std::slice::from_ref(&declared)));
    let daemon = DaemonOptions::new(&config, &dir.path().join("state"), &fake)
        .interval(Duration::from_secs(1))
        .start()
        .await;
    wait_deleted(&fake, &a, format!("{:032x}", 0xc0ffee_u64)).await;

    // Many cycles later, the SCIM group has been asked for exactly once.
    let success = "cfgroups_reconciles_total{result=\"success\"}";
    daemon.wait_metric_at_least(success, 4.0).await;
    assert_eq!(deletes_of(&fake.requests(), SCIM_GROUP), 1);
    let text = daemon.metrics().await;
    let refusals = format!("cfgroups_deletion_refusals_total{{account=\"{a}\"}}");
    let held = format!("cfgroups_deletions_held_off{{account=\"{a}\"}}");
    assert_eq!(metric(&text, &refusals), Some(1.0), "{text}");
    assert_eq!(metric(&text, &held), Some(1.0), "{text}");
    let failed = format!("cfgroups_deletions_total{{account=\"{a}\",result=\"failed\"}}");
    assert_eq!(metric(&text, &failed), Some(1.0), "{text}");

    // The refusal is logged with Cloudflare's answer and the hint, and every later cycle
    // says the deletion is held off.
    let held_lines = eventually("a held-off line per cycle", WAIT, async || {
        let lines = daemon.log.events(
            "deletion held off: Cloudflare refused it for good (HTTP 403 [1010] This user group \
             is provisioned by SCIM and cannot be modified through the API)",
        );
        (lines.len() >= 2).then_some(lines)
    })
    .await;
    let hint = held_lines[0]["fields"]["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("SCIM") && hint.contains("protect"), "{hint}");
    assert_eq!(held_lines[0]["fields"]["group"], SCIM_GROUP);

    // A config change asks again, once.
    write_by_rename(
        &config,
        &format!(
            "{}# touched\n",
            config_text(std::slice::from_ref(&declared))
        ),
    );
    fake.wait_for_requests(WAIT, |r| deletes_of(r, SCIM_GROUP) == 2)
        .await
        .expect("a second DELETE after the config changed");
    eventually("one reload logged", WAIT, async || {
        (daemon.log.events("config changed; reloaded").len() == 1).then_some(())
    })
    .await;

    // So does a change to the group itself (its modified_on moves).
    let mut changed = fake.groups(&a)[0].clone();
    assert_eq!(changed.id, SCIM_GROUP);
    changed.modified_on = "2030-01-01T00:00:00Z".to_owned();
    fake.remove_group(&a, SCIM_GROUP);
    fake.add_group(&a, changed);
    fake.wait_for_requests(WAIT, |r| deletes_of(r, SCIM_GROUP) == 3)
        .await
        .expect("a third DELETE after the group changed");

    // And then it is held off again.
    let done = metric(&daemon.metrics().await, success).unwrap_or(0.0);
    daemon.wait_metric_at_least(success, done + 3.0).await;
    assert_eq!(deletes_of(&fake.requests(), SCIM_GROUP), 3);
    eventually("the refusals counted", WAIT, async || {
        (metric(&daemon.metrics().await, &refusals) == Some(3.0)).then_some(())
    })
    .await;
    assert_eq!(fake.groups(&a).len(), 1, "the SCIM group is never deleted");
}
