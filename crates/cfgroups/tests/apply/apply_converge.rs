//! Retries that converge, through the real binary against the fake API: a DELETE answered
//! `success: false`, one malformed list page, one page lying about `total_count`, one page
//! silently missing an item. Once, each ends with exactly the desired state and exit 0: the
//! DELETE is sent again, the listing is asked for again. On every try, nothing is deleted
//! that should not be, and the account is reported failed with exit 1.

use cfgroups_fake::{Fault, Method, Route};
use testkit::*;

/// One account of 703 groups (two pages of 500), three of them declared absent by name.
fn big_account() -> Scenario {
    let mut scenario = scenario(1, 3, false);
    let a = account(0);
    for n in 0..700 {
        let name = format!("Kept {n}");
        scenario.state = scenario
            .state
            .with_group(&a, group(0, 40_000 + n, &name, 0));
    }
    scenario
}

/// The list faults, each landing on page 2 of the account's listing (a no-op fault takes
/// page 1 first).
fn page_two(fault: Fault, times: u32) -> Vec<cfgroups_fake::FaultSpec> {
    vec![
        Fault::Slow(std::time::Duration::ZERO).on(Route::List),
        fault.on(Route::List).times(times),
    ]
}

fn list_faults() -> [Fault; 3] {
    [
        Fault::MalformedJson,
        Fault::WrongTotalCount(1),
        Fault::DropItem,
    ]
}

fn run_apply(fake: &Fake, scenario: &Scenario) -> (Run, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &scenario.configs);
    let out = apply(fake, &config, &dir.path().join("state")).run();
    (out, dir)
}

#[test]
fn one_transient_fault_ends_exact_with_exit_0() {
    let mut cases: Vec<(String, Vec<cfgroups_fake::FaultSpec>)> = list_faults()
        .into_iter()
        .map(|fault| (format!("{fault:?} on page 2"), page_two(fault, 1)))
        .collect();
    cases.push((
        "success: false on a DELETE".to_owned(),
        vec![Fault::SuccessFalse.on(Route::Delete).method(Method::DELETE)],
    ));
    for (what, faults) in cases {
        let scenario = big_account();
        let fake = Fake::start(scenario.state.clone());
        for fault in faults {
            fake.inject(fault);
        }
        let (out, dir) = run_apply(&fake, &scenario);
        out.assert_code(0);
        assert_eq!(fake.pending_faults(), 0, "{what}: the fault never fired");
        scenario.assert_converged(&fake.state());
        assert_journal_covers(&journal(&dir.path().join("state")), &scenario);
        assert!(out.stdout.contains("3 deleted"), "{what}: {}", out.stdout);
    }
}

#[test]
fn a_lockout_is_waited_out_with_a_notice_and_the_apply_ends_exact() {
    let scenario = scenario(1, 2, false);
    let fake = Fake::start(scenario.state.clone());
    // The first listing is refused with a 3 s lockout.
    fake.inject(Fault::RateLimited(3).on(Route::List));
    let (out, _dir) = run_apply(&fake, &scenario);
    out.assert_code(0);
    scenario.assert_converged(&fake.state());
    assert!(
        out.stderr
            .contains("Waiting for Cloudflare's rate-limit lockout (HTTP 429)"),
        "{}",
        out.stderr
    );
    assert_eq!(fake.requests().rate_limited(), 1);
}

#[test]
fn the_same_list_fault_on_every_try_deletes_nothing_and_fails_the_account() {
    for fault in list_faults() {
        let scenario = big_account();
        let fake = Fake::start(scenario.state.clone());
        for spec in page_two(fault.clone(), 1_000) {
            fake.inject(spec);
        }
        let (out, _dir) = run_apply(&fake, &scenario);
        out.assert_code(1);
        assert!(
            out.stdout.contains("listing failed"),
            "{fault:?}: {}",
            out.stdout
        );
        assert_eq!(delete_count(&fake), 0, "{fault:?}");
        assert_eq!(fake.state(), scenario.state, "{fault:?}: something changed");
        // The listing and its three more tries (each stops at its first bad page).
        let lists = fake.requests().count(Method::GET, Route::List);
        assert!((5..=8).contains(&lists), "{fault:?}: {lists} list requests");
    }
}

#[test]
fn a_delete_that_always_answers_success_false_deletes_nothing_else_and_fails() {
    let scenario = scenario(1, 1, false);
    let fake = Fake::start(scenario.state.clone());
    fake.inject(
        Fault::SuccessFalse
            .on(Route::Delete)
            .method(Method::DELETE)
            .times(1_000),
    );
    let (out, dir) = run_apply(&fake, &scenario);
    out.assert_code(1);
    assert!(out.stdout.contains("1 failed"), "{}", out.stdout);
    // Sent again per the retry policy (five retries), never anything else deleted.
    assert_eq!(delete_count(&fake), 6);
    assert_eq!(fake.state(), scenario.state);
    let contents = journal(&dir.path().join("state"));
    assert_eq!(contents.failed_deletions().len(), 1);
}
