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
