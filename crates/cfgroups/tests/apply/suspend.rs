//! `suspend: true` under `apply`: the suspended account is listed and reported, its deletions
//! are shown `blocked` (suspended) and not carried out, the other accounts go ahead, and the
//! apply exits 1 because planned deletions were withheld.

use cfgroups_fake::{FakeState, Method, Route};
use testkit::*;

#[test]
fn apply_deletes_nothing_in_a_suspended_account_and_goes_ahead_elsewhere() {
    let state = FakeState::new()
        .with_group(account(0), group(0, 1, "Old Contractors", 1))
        .with_group(account(1), group(1, 1, "Old Contractors", 1));
    let fake = Fake::start(state);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &[
            AccountConfig::new(account(0))
                .label("production")
                .suspend(true)
                .absent("Old Contractors"),
            AccountConfig::new(account(1)).absent("Old Contractors"),
        ],
    );
    let out = apply(&fake, &config, &dir.path().join("state")).run();
    out.assert_code(1);
    assert!(
        out.stdout.contains("|| suspended (suspend: true in ")
            && out.stdout.contains("account suspended (suspend: true in "),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains(&format!(
            "Account {} is suspended (suspend: true in ",
            account(0)
        )) && out.stderr.contains("1 deletion(s) withheld"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout
            .contains("Apply: 1 deleted, 0 already absent, 0 failed, 1 blocked"),
        "{}",
        out.stdout
    );
    assert_eq!(fake.groups(account(0)).len(), 1, "suspended: kept");
    assert!(fake.groups(account(1)).is_empty(), "not suspended: deleted");
    let deletes = fake.requests().count(Method::DELETE, Route::Delete);
    assert_eq!(deletes, 1);

    // With the account resumed in the file, the same apply deletes it.
    let config = write_config(
        dir.path(),
        &[AccountConfig::new(account(0))
            .suspend(false)
            .absent("Old Contractors")],
    );
    apply(&fake, &config, &dir.path().join("state"))
        .run()
        .assert_code(0);
    assert!(fake.groups(account(0)).is_empty());
}

#[test]
fn a_suspended_account_without_pending_deletions_applies_cleanly_but_still_says_so() {
    let state = FakeState::new().with_group(account(0), group(0, 1, "Engineering", 1));
    let fake = Fake::start(state);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &[AccountConfig::new(account(0))
            .suspend(true)
            .present("Engineering")],
    );
    let out = apply(&fake, &config, &dir.path().join("state")).run();
    out.assert_code(0);
    assert!(
        out.stderr.contains("is suspended") && out.stderr.contains("0 deletion(s) withheld"),
        "{}",
        out.stderr
    );
}

/// A suspended account that also plans more than its `max_deletes`: every deletion is
/// said withheld, the hint does not promise that `--force` deletes anything, and with
/// `--force` (which lifts `max_deletes` only) nothing in it is deleted.
#[test]
fn a_suspended_account_over_max_deletes_is_withheld_even_under_force() {
    let names = ["Old A", "Old B", "Old C"];
    let state = (0..names.len()).fold(FakeState::new(), |state, n| {
        state.with_group(account(0), group(0, n + 1, names[n], 0))
    });
    let fake = Fake::start(state);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &[names.iter().fold(
            AccountConfig::new(account(0)).suspend(true).max_deletes(1),
            |config, name| config.absent(name),
        )],
    );
    let state_dir = dir.path().join("state");
    let out = apply(&fake, &config, &state_dir).run();
    out.assert_code(1);
    assert!(
        out.stderr.contains("3 deletion(s) withheld")
            && out
                .stderr
                .contains("(--force overrides that, not the account's suspension)"),
        "{}",
        out.stderr
    );
    let forced = apply(&fake, &config, &state_dir).arg("--force").run();
    forced.assert_code(1);
    assert!(
        forced.stderr.contains("3 deletion(s) withheld")
            && !forced.stderr.contains("max_deletes of"),
        "{}",
        forced.stderr
    );
    assert_eq!(fake.groups(account(0)).len(), 3);
    assert_eq!(fake.requests().count(Method::DELETE, Route::Delete), 0);
}
