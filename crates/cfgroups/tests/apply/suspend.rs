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
