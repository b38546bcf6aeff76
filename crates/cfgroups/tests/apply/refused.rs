//! Deletions Cloudflare will never allow, through `cfgroups apply`: a group provisioned by
//! SCIM and a token that can list but not delete. Each is reported `failed` with Cloudflare's
//! status, code and message and a hint, journaled as refused for good, and the apply exits 1.

use cfgroups::model::DeletionOutcome;
use cfgroups_fake::{FakeState, Method, Route};
use testkit::*;

#[test]
fn a_scim_group_is_reported_refused_for_good_with_the_code_and_a_hint() {
    let scim = group(0, 1, "SCIM-Engineering", 2).scim_managed();
    let state = FakeState::new()
        .with_group(account(0), scim.clone())
        .with_group(account(0), group(0, 2, "Old Contractors", 1));
    let fake = Fake::start(state);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &[AccountConfig::new(account(0))
            .absent("SCIM-Engineering")
            .absent("Old Contractors")],
    );
    let state_dir = dir.path().join("state");
    let out = apply(&fake, &config, &state_dir).run();
    out.assert_code(1);
    assert!(
        out.stdout.contains(
            "Apply: 1 deleted, 0 already absent, 1 failed (1 refused for good), 0 blocked"
        ),
        "{}",
        out.stdout
    );
    let refused_line = out
        .stdout
        .lines()
        .find(|l| l.contains(&scim.id) && l.contains("refuses this deletion"))
        .unwrap_or_else(|| panic!("no line names the refused group:\n{}", out.stdout));
    assert!(
        refused_line.contains("HTTP 403 [1010]") && refused_line.contains("provisioned by SCIM"),
        "{refused_line}"
    );
    assert!(refused_line.contains("protect"), "{refused_line}");
    assert_eq!(fake.groups(account(0)).len(), 1, "the SCIM group stays");

    // The journal keeps the refusal with the outcome.
    let contents = journal(&state_dir);
    let outcomes = contents.latest_outcomes();
    let refusal = outcomes
        .iter()
        .find(|((_, group), _)| group.as_str() == scim.id)
        .and_then(|(_, outcome)| outcome.refusal())
        .unwrap_or_else(|| panic!("no refusal journaled: {outcomes:?}"));
    assert_eq!((refusal.status, refusal.code), (403, Some(1010)));
    assert!(!out.stdout.contains(TOKEN) && !out.stderr.contains(TOKEN));
}

#[test]
fn a_token_without_write_permission_is_refused_for_good_and_says_which_permission() {
    let state = FakeState::new().with_group(account(0), group(0, 1, "Old Contractors", 1));
    let fake = Fake::start_with(read_only_fake().state(state));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &[AccountConfig::new(account(0)).absent("Old Contractors")],
    );
    let out = apply(&fake, &config, &dir.path().join("state"))
        .env("CLOUDFLARE_API_TOKEN", "READ-ONLY-TOKEN-5e1f")
        .run();
    out.assert_code(1);
    assert!(
        out.stdout.contains("HTTP 403 [10000] Authentication error"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Account Settings Write"),
        "{}",
        out.stdout
    );
    // Refused for good: sent once, not retried by the client.
    assert_eq!(fake.requests().count(Method::DELETE, Route::Delete), 1);
    assert_eq!(fake.groups(account(0)).len(), 1);
    assert!(
        !out.stdout.contains("READ-ONLY-TOKEN-5e1f")
            && !out.stderr.contains("READ-ONLY-TOKEN-5e1f")
    );
    let contents = journal(&dir.path().join("state"));
    assert!(matches!(
        contents.latest_outcomes().values().next(),
        Some(DeletionOutcome::Failed {
            refused: Some(_),
            ..
        })
    ));
}

/// The test fake, also accepting a read-only token.
fn read_only_fake() -> cfgroups_fake::FakeCloudflareBuilder {
    testkit::fake().read_only_token("READ-ONLY-TOKEN-5e1f")
}
