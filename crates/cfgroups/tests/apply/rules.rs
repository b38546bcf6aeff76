//! The safety rules that live in `apply`, each tried against the fake API and the real
//! binary so that the test dies with the rule: the journal's intent is on disk before its
//! DELETE is sent (design rule 6), and a journal that cannot be written stops every
//! deletion and every restore.

use std::sync::{Arc, Mutex};

use cfgroups::journal::JOURNAL_FILE;
use cfgroups_fake::{Method, Route};
use testkit::*;

/// Rule 6, seen from the server: as each DELETE arrives, the journal on disk already holds
/// the intent (the backup) of the group it names. The fake's arrival hook reads the file
/// before the request is even answered.
#[test]
fn every_delete_arrives_after_its_intent_is_on_disk() {
    let scenario = scenario(2, 15, false);
    let fake = Fake::start(scenario.state.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &scenario.configs);
    let state = dir.path().join("state");
    let journal = state.join(JOURNAL_FILE);
    let seen: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    fake.on_arrival({
        let seen = seen.clone();
        move |request| {
            if request.method != Method::DELETE || request.route != Route::Delete {
                return;
            }
            let group = request
                .path
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let text = std::fs::read_to_string(&journal).unwrap_or_default();
            let backed_up = text
                .lines()
                .any(|line| line.contains("\"type\":\"intent") && line.contains(&group));
            seen.lock().unwrap().push((group, backed_up));
        }
    });
    apply(&fake, &config, &state)
        .unlimited()
        .run()
        .assert_code(0);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), scenario.planned.len());
    let early: Vec<&String> = seen.iter().filter(|(_, ok)| !ok).map(|(g, _)| g).collect();
    assert!(
        early.is_empty(),
        "DELETEs sent before their intent was on disk: {early:?}"
    );
    scenario.assert_converged(&fake.state());
}

/// A journal that cannot take the next record (a full disk, here a file size limit at its
/// current size) stops everything: no DELETE is sent, and `apply` says why and exits 1.
#[test]
fn apply_sends_no_delete_when_the_journal_cannot_be_written() {
    let scenario = scenario(1, 5, false);
    let fake = Fake::start(scenario.state.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &scenario.configs);
    let state = dir.path().join("state");
    let mut cmd = cfgroups_with_file_size_limit(0);
    cmd.against(&fake)
        .args(["apply", "--yes", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state);
    let out = cmd.unlimited().run();
    out.assert_code(1);
    assert!(out.stderr.contains("journal"), "{}", out.stderr);
    assert_eq!(fake.requests().count(Method::DELETE, Route::Delete), 0);
    assert_eq!(fake.state(), scenario.state);
}

/// `restore` records that it is starting before it creates anything: when that record
/// cannot be written, nothing is created.
#[test]
fn restore_creates_nothing_when_the_journal_cannot_be_written() {
    let scenario = scenario(1, 1, false);
    let fake = Fake::start(scenario.state.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &scenario.configs);
    let state = dir.path().join("state");
    apply(&fake, &config, &state)
        .unlimited()
        .run()
        .assert_code(0);
    let (_, deleted) = scenario.planned.iter().next().unwrap().clone();
    let size = std::fs::metadata(state.join(JOURNAL_FILE)).unwrap().len();

    let mut cmd = cfgroups_with_file_size_limit(size);
    cmd.against(&fake)
        .args(["restore", "--group", deleted.as_str(), "--state-dir"])
        .arg(&state);
    let out = cmd.run();
    out.assert_code(1);
    assert!(out.stderr.contains("journal"), "{}", out.stderr);
    assert_eq!(fake.requests().count(Method::POST, Route::Create), 0);
    assert_eq!(
        std::fs::metadata(state.join(JOURNAL_FILE)).unwrap().len(),
        size
    );
}
