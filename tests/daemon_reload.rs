//! `cfgroups run` picking up config changes: the interval tick re-reads the config, so a
//! change the directory watch cannot see is still carried out.

mod common;

use std::time::Duration;

use cfgroups::fake_api::FakeState;
use common::daemon::{Daemon, wait_until};
use common::*;

/// The config is a symlink into another directory, as when it is managed elsewhere: the
/// watch on the symlink's directory never hears of an edit to the target. The next interval
/// tick re-reads it and deletes the group the edit marked absent.
#[test]
fn the_interval_tick_rereads_a_config_the_watch_cannot_see() {
    let id = account(0);
    let state = FakeState::new()
        .with_account(&id)
        .with_group(&id, group(0, 1, "Old", 0))
        .with_group(&id, group(0, 2, "Keep", 0));
    let fake = Fake::start(state);
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(&conf).unwrap();
    let both = |old: &str| {
        write_config(
            &real,
            &[AccountConfig::new(id.clone()).present("Keep").absent(old)],
        )
    };
    // "Old" starts present; then the edit marks it absent.
    let target = write_config(
        &real,
        &[AccountConfig::new(id.clone())
            .present("Keep")
            .present("Old")],
    );
    std::os::unix::fs::symlink(&target, conf.join("groups.yaml")).unwrap();
    let daemon = Daemon::start(
        &fake,
        &conf.join("groups.yaml"),
        &dir.path().join("state"),
        &["--interval", "1s"],
    );
    wait_until(Duration::from_secs(30), "the first reconcile", || {
        (daemon.reconciles() >= 1).then_some(())
    });
    assert_eq!(fake.groups(&id).len(), 2);

    both("Old");
    wait_until(
        Duration::from_secs(30),
        "the edit to be carried out",
        || (fake.groups(&id).len() == 1).then_some(()),
    );
    assert_eq!(fake.groups(&id)[0].name, "Keep");
}
