//! `cfgroups apply` end to end against the fake Cloudflare API: mass deletion, every
//! safety block, saved plans, confirmation, and restoring what was deleted.

mod common;

use std::time::Instant;

use common::*;

/// Mass delete: many groups declared absent across 20 accounts, next to groups that must
/// survive (declared present, unmanaged, protected). Every absent group goes, nothing else
/// does, and the journal holds a full backup and an outcome for every deletion.
#[test]
fn mass_delete_of_2000_groups_across_20_accounts_deletes_exactly_the_absent_groups() {
    let scenario = scenario(20, 100, true);
    let fake = Fake::start(scenario.state.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &scenario.configs);
    let state = dir.path().join("state");

    let started = Instant::now();
    let out = run(unlimited(&mut apply(&fake, &config, &state)));
    let elapsed = started.elapsed();
    eprintln!(
        "mass delete: {} groups in 20 accounts in {:.2}s",
        scenario.planned.len(),
        elapsed.as_secs_f64()
    );

    // The protected groups of the pruning accounts are blocked, so the apply reports them
    // and exits 1, having done everything else.
    out.assert_code(1);
    let total = scenario.planned.len();
    assert!(
        out.stdout.contains(&format!(
            "Apply: {total} deleted, 0 already absent, 0 failed, {} blocked, 0 not started.",
            scenario.blocked
        )),
        "{}",
        out.stdout
    );
    scenario.assert_converged(&fake.state());
    let contents = journal(&state);
    assert!(contents.unreadable.is_empty());
    assert_journal_covers(&contents, &scenario);
    let intents = contents
        .records
        .iter()
        .filter(|r| matches!(r, cfgroups::journal::Record::Intent { .. }))
        .count();
    assert_eq!(intents, total);
    let requests = fake.requests();
    assert_eq!(
        requests.count(cfgroups::fake_api::Method::DELETE, cfgroups::fake_api::Route::Delete),
        total
    );
}

use cfgroups::fake_api::{Fault, FakeState, Method, Route};

fn deletes(fake: &Fake) -> usize {
    fake.requests().count(Method::DELETE, Route::Delete)
}

fn names(fake: &Fake, account: &cfgroups::model::AccountId) -> Vec<String> {
    let mut names: Vec<String> = fake.groups(account).into_iter().map(|g| g.name).collect();
    names.sort();
    names
}

/// Three groups declared absent in an account that allows two deletions.
fn over_threshold() -> (FakeState, Vec<AccountConfig>) {
    let mut state = FakeState::new();
    let mut config = AccountConfig::new(account(0));
    config.max_deletes = Some(2);
    for n in 0..3 {
        let name = format!("Old {n}");
        state = state.with_group(&account(0), group(0, n, &name, 1));
        config = config.absent(&name);
    }
    (state, vec![config])
}

/// Safety rule 5: more deletions than `max_deletes` deletes none of them, and exits 1.
#[test]
fn over_max_deletes_deletes_nothing_and_exits_one() {
    let (state, configs) = over_threshold();
    let fake = Fake::start(state.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &configs);
    let out = run(unlimited(&mut apply(&fake, &config, &dir.path().join("s"))));
    out.assert_code(1);
    assert!(out.stdout.contains("max_deletes"), "{}", out.stdout);
    assert_eq!(deletes(&fake), 0);
    assert_eq!(fake.state(), state);
    assert!(journal(&dir.path().join("s")).records.is_empty());
}

/// `apply --force` is the one override of `max_deletes`.
#[test]
fn force_overrides_max_deletes() {
    let (state, configs) = over_threshold();
    let fake = Fake::start(state);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &configs);
    run(unlimited(&mut apply(&fake, &config, &dir.path().join("s"))).arg("--force"))
        .assert_code(0);
    assert!(fake.groups(&account(0)).is_empty());
    assert_eq!(deletes(&fake), 3);
}

/// Safety rule 4: under `unmanaged: delete`, groups matching `protect` (by glob or by id)
/// are never deleted; the other unmanaged groups are, and the apply exits 1 because some
/// deletions were blocked.
#[test]
fn protected_groups_survive_pruning() {
    let a = account(0);
    let state = FakeState::new()
        .with_group(&a, group(0, 1, "Keep: admins", 1))
        .with_group(&a, group(0, 2, "Kept by id", 1))
        .with_group(&a, group(0, 3, "Prune me", 1))
        .with_group(&a, group(0, 4, "Team", 1));
    let fake = Fake::start(state);
    let dir = tempfile::tempdir().unwrap();
    let mut config = AccountConfig::new(a.clone()).present("Team");
    config.unmanaged = Some("delete");
    config.protect = vec!["Keep*".to_owned(), group_id(0, 2).to_string()];
    let config = write_config(dir.path(), &[config]);
    let out = run(unlimited(&mut apply(&fake, &config, &dir.path().join("s"))));
    out.assert_code(1);
    assert!(out.stdout.contains("1 deleted"), "{}", out.stdout);
    assert!(out.stdout.contains("2 blocked"), "{}", out.stdout);
    assert_eq!(names(&fake, &a), ["Keep: admins", "Kept by id", "Team"]);
    assert_eq!(deletes(&fake), 1);
}

/// Safety rule 4: a name shared by two groups is never deleted (which one was meant?),
/// while an unambiguous absent group in the same account is.
#[test]
fn an_ambiguous_name_is_never_deleted() {
    let a = account(0);
    let state = FakeState::new()
        .with_group(&a, group(0, 1, "Twins", 1))
        .with_group(&a, group(0, 2, "Twins", 2))
        .with_group(&a, group(0, 3, "Solo", 0));
    let fake = Fake::start(state);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &[AccountConfig::new(a.clone()).absent("Twins").absent("Solo")],
    );
    let out = run(unlimited(&mut apply(&fake, &config, &dir.path().join("s"))));
    out.assert_code(1);
    assert!(out.stdout.contains("name matches 2 groups"), "{}", out.stdout);
    assert_eq!(names(&fake, &a), ["Twins", "Twins"]);
    assert_eq!(deletes(&fake), 1);
}

/// A declared id whose live group has another name than declared is not deleted: the id
/// may be a copy-paste slip.
#[test]
fn an_id_whose_name_does_not_match_is_never_deleted() {
    let a = account(0);
    let state = FakeState::new().with_group(&a, group(0, 1, "Renamed since", 1));
    let fake = Fake::start(state.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &[AccountConfig::new(a.clone()).absent_id(&group_id(0, 1), "Original name")],
    );
    let out = run(unlimited(&mut apply(&fake, &config, &dir.path().join("s"))));
    out.assert_code(1);
    assert_eq!(deletes(&fake), 0);
    assert_eq!(fake.state(), state);
}

/// Safety rule 1: an account whose listing does not add up (a page lying about
/// `total_count`, or silently missing an item) deletes nothing, while the other account
/// goes ahead; the apply exits 1. Accounts are listed one at a time, in file order, so the
/// one-shot fault lands on the first account's listing.
#[test]
fn an_inconsistent_listing_deletes_nothing_in_that_account_only() {
    for fault in [Fault::WrongTotalCount(1), Fault::DropItem] {
        let scenario = scenario(2, 3, false);
        let fake = Fake::start(scenario.state.clone());
        fake.inject(fault.clone().on(Route::List));
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &scenario.configs);
        let out = run(unlimited(&mut apply(&fake, &config, &dir.path().join("s")))
            .args(["--concurrency", "1"]));
        out.assert_code(1);
        assert!(out.stdout.contains("listing failed"), "{fault:?}: {}", out.stdout);
        assert_eq!(
            fake.groups(&account(0)),
            scenario.state.groups(&account(0)),
            "{fault:?}: the account with the bad listing changed"
        );
        let survivors = scenario.state.groups(&account(1)).len() - 3;
        assert_eq!(fake.groups(&account(1)).len(), survivors, "{fault:?}");
        assert_eq!(deletes(&fake), 3, "{fault:?}");
    }
}
