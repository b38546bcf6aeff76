//! `cfgroups apply` end to end against the fake Cloudflare API: mass deletion, every
//! safety block, saved plans, confirmation, and restoring what was deleted.

use std::time::Instant;

use cfgroups::journal::Record;
use cfgroups::model::{AccountId, GroupId};
use cfgroups_fake::{FakeGroup, FakeState, Fault, Method, Route};
use testkit::*;

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
    let out = apply(&fake, &config, &state).unlimited().run();
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
            "Apply: {total} deleted, 0 already absent, 0 failed, {} blocked, 0 changed since planned, 0 not started.",
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
        .filter(|r| matches!(r, Record::Intent { .. }))
        .count();
    assert_eq!(intents, total);
    let requests = fake.requests();
    assert_eq!(requests.count(Method::DELETE, Route::Delete), total);
}

fn names(fake: &Fake, account: &AccountId) -> Vec<String> {
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
        state = state.with_group(account(0), group(0, n, &name, 1));
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
    let out = apply(&fake, &config, &dir.path().join("s"))
        .unlimited()
        .run();
    out.assert_code(1);
    assert!(out.stdout.contains("max_deletes"), "{}", out.stdout);
    assert!(out.stdout.starts_with("cfgroups apply: "), "{}", out.stdout);
    // The last word says why the exit is 1, and how to override it.
    assert_eq!(
        last_line(&out.stderr),
        format!(
            "error: account {} plans 3 deletions, over its max_deletes of 2, so none was made \
             (--force overrides).",
            account(0)
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("--force: max_deletes is overridden"));
    assert_eq!(delete_count(&fake), 0);
    assert_eq!(fake.state(), state);
    assert!(journal(&dir.path().join("s")).records.is_empty());
}

/// The last non-empty line of `text`.
fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// `apply --force` is the one override of `max_deletes`.
#[test]
fn force_overrides_max_deletes() {
    let (state, configs) = over_threshold();
    let fake = Fake::start(state);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &configs);
    let out = apply(&fake, &config, &dir.path().join("s"))
        .unlimited()
        .arg("--force")
        .run();
    out.assert_code(0);
    // Overriding a safety rule is said before anything else.
    assert!(
        out.stderr
            .starts_with("WARNING: --force: max_deletes is overridden for this run."),
        "{}",
        out.stderr
    );
    assert!(fake.groups(account(0)).is_empty());
    assert_eq!(delete_count(&fake), 3);
}

/// With no account listable (a token the API refuses), the headline is an error, not
/// "Drift.", and the last line says why the exit is 1, with Cloudflare's code and a hint.
#[test]
fn an_apply_that_can_list_no_account_says_so() {
    let (state, configs) = over_threshold();
    let fake = Fake::start(state);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &configs);
    let out = apply(&fake, &config, &dir.path().join("s"))
        .unlimited()
        .env("CLOUDFLARE_API_TOKEN", "not-the-token")
        .run();
    out.assert_code(1);
    assert!(
        out.stdout
            .contains("No account could be listed: nothing was planned or deleted."),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("Drift."), "{}", out.stdout);
    assert!(out.stdout.contains("[10000]"), "{}", out.stdout);
    assert!(
        out.stdout.contains("hint: authentication failed"),
        "{}",
        out.stdout
    );
    assert_eq!(
        last_line(&out.stderr),
        format!(
            "error: 1 account(s) could not be listed, so nothing in them was deleted ({}).",
            account(0)
        ),
        "{}",
        out.stderr
    );
    assert_eq!(delete_count(&fake), 0);
}

/// A failed deletion ends the apply with a line that counts it.
#[test]
fn an_apply_with_a_failed_deletion_ends_saying_so() {
    let (state, configs) = over_threshold();
    let fake = Fake::start(state);
    fake.inject(
        Fault::Status(403)
            .on(Route::Delete)
            .method(Method::DELETE)
            .times(10),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &configs);
    let out = apply(&fake, &config, &dir.path().join("s"))
        .unlimited()
        .arg("--force")
        .run();
    out.assert_code(1);
    assert_eq!(
        last_line(&out.stderr),
        "error: 3 deletion(s) failed.",
        "{}",
        out.stderr
    );
    assert!(
        out.stdout
            .contains("Missing groups are reported, never created: cfgroups only deletes"),
        "{}",
        out.stdout
    );
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
    let out = apply(&fake, &config, &dir.path().join("s"))
        .unlimited()
        .run();
    out.assert_code(1);
    assert!(out.stdout.contains("1 deleted"), "{}", out.stdout);
    assert!(out.stdout.contains("2 blocked"), "{}", out.stdout);
    assert_eq!(names(&fake, &a), ["Keep: admins", "Kept by id", "Team"]);
    assert_eq!(delete_count(&fake), 1);
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
    let out = apply(&fake, &config, &dir.path().join("s"))
        .unlimited()
        .run();
    out.assert_code(1);
    assert!(
        out.stdout.contains("name matches 2 groups"),
        "{}",
        out.stdout
    );
    assert_eq!(names(&fake, &a), ["Twins", "Twins"]);
    assert_eq!(delete_count(&fake), 1);
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
    let out = apply(&fake, &config, &dir.path().join("s"))
        .unlimited()
        .run();
    out.assert_code(1);
    assert_eq!(delete_count(&fake), 0);
    assert_eq!(fake.state(), state);
}

/// Safety rule 1: an account whose listing does not add up (a page lying about
/// `total_count`, or silently missing an item) on every try deletes nothing, while the other
/// account goes ahead; the apply exits 1. Accounts are listed one at a time, in file order,
/// so the four faults land on the first account's four listings.
#[test]
fn an_inconsistent_listing_deletes_nothing_in_that_account_only() {
    for fault in [Fault::WrongTotalCount(1), Fault::DropItem] {
        let scenario = scenario(2, 3, false);
        let fake = Fake::start(scenario.state.clone());
        // On the account's listing and on each of the three more it gets.
        fake.inject(fault.clone().on(Route::List).times(4));
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &scenario.configs);
        let out = apply(&fake, &config, &dir.path().join("s"))
            .unlimited()
            .args(["--concurrency", "1"])
            .run();
        out.assert_code(1);
        assert!(
            out.stdout.contains("listing failed"),
            "{fault:?}: {}",
            out.stdout
        );
        assert_eq!(
            fake.groups(account(0)),
            scenario.state.groups(account(0)),
            "{fault:?}: the account with the bad listing changed"
        );
        let survivors = scenario.state.groups(account(1)).len() - 3;
        assert_eq!(fake.groups(account(1)).len(), survivors, "{fault:?}");
        assert_eq!(delete_count(&fake), 3, "{fault:?}");
    }
}

/// A saved plan of one account under `unmanaged: delete` with two groups to prune, and one
/// declared-absent group in a second account.
fn saved_plan_setup() -> (
    Fake,
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let state = FakeState::new()
        .with_group(account(0), group(0, 1, "Team", 1))
        .with_group(account(0), group(0, 2, "Stray A", 1))
        .with_group(account(0), group(0, 3, "Stray B", 0))
        .with_group(account(1), group(1, 1, "Retired", 2))
        .with_group(account(1), group(1, 2, "Staying", 0));
    let fake = Fake::start(state);
    let dir = tempfile::tempdir().unwrap();
    let mut pruned = AccountConfig::new(account(0)).present("Team");
    pruned.unmanaged = Some("delete");
    let config = write_config(
        dir.path(),
        &[pruned, AccountConfig::new(account(1)).absent("Retired")],
    );
    let plan = dir.path().join("plan.json");
    cfgroups()
        .against(&fake)
        .arg("plan")
        .arg("-c")
        .arg(&config)
        .arg("--out")
        .arg(&plan)
        .unlimited()
        .run()
        .assert_code(0);
    (fake, dir, config, plan)
}

fn apply_saved(
    fake: &Fake,
    dir: &tempfile::TempDir,
    config: &std::path::Path,
    plan: &std::path::Path,
) -> Run {
    apply(fake, config, &dir.path().join("s"))
        .unlimited()
        .arg("--plan")
        .arg(plan)
        .run()
}

/// `plan --out` then `apply --plan`: with nothing moved in between, exactly the reviewed
/// deletions happen.
#[test]
fn a_saved_plan_applies_when_nothing_moved() {
    let (fake, dir, config, plan) = saved_plan_setup();
    let out = apply_saved(&fake, &dir, &config, &plan);
    out.assert_code(0);
    assert!(!out.stderr.contains("files changed"), "{}", out.stderr);
    assert_eq!(names(&fake, &account(0)), ["Team"]);
    assert_eq!(names(&fake, &account(1)), ["Staying"]);
    assert_eq!(delete_count(&fake), 3);
}

/// The desired-state files changed since the review but plan the same deletions: apply goes
/// ahead (the deletions are what was reviewed) and says so on stderr.
#[test]
fn a_saved_plan_applies_with_a_warning_when_only_the_files_changed() {
    let (fake, dir, config, plan) = saved_plan_setup();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("# edited after the review\n");
    std::fs::write(&config, text).unwrap();
    let out = apply_saved(&fake, &dir, &config, &plan);
    out.assert_code(0);
    assert!(
        out.stderr.contains(
            "the desired-state files changed since the plan was reviewed; the deletions are \
             identical, so applying"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(delete_count(&fake), 3);
}

/// A new group that the prune would now delete was never reviewed: apply refuses, deletes
/// nothing, and shows it.
#[test]
fn a_saved_plan_is_refused_when_a_new_group_would_be_pruned() {
    let (fake, dir, config, plan) = saved_plan_setup();
    let new = fake.create_group(account(0), "Created after review");
    let before = fake.state();
    let out = apply_saved(&fake, &dir, &config, &plan);
    out.assert_code(1);
    assert!(
        out.stderr.contains("moved since the plan was reviewed"),
        "{}",
        out.stderr
    );
    // The differences come first; the last line says why nothing was done.
    assert!(
        last_line(&out.stderr).starts_with("error: the live state or the config moved"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("+ {} {new} \"Created after review\"", account(0))),
        "{}",
        out.stderr
    );
    assert_eq!(delete_count(&fake), 0);
    assert_eq!(fake.state(), before);
}

/// A reviewed deletion whose group disappeared meanwhile means the world is not what was
/// reviewed: apply refuses, deletes nothing, and shows it.
#[test]
fn a_saved_plan_is_refused_when_a_reviewed_group_disappeared() {
    let (fake, dir, config, plan) = saved_plan_setup();
    assert!(fake.remove_group(account(1), group_id(1, 1)));
    let before = fake.state();
    let out = apply_saved(&fake, &dir, &config, &plan);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains(&format!("- {} {} \"Retired\"", account(1), group_id(1, 1))),
        "{}",
        out.stderr
    );
    assert_eq!(delete_count(&fake), 0);
    assert_eq!(fake.state(), before);
}

/// An edited plan file is refused before anything is listed or deleted.
#[test]
fn a_tampered_saved_plan_is_refused() {
    let (fake, dir, config, plan) = saved_plan_setup();
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, text.replace("Stray B", "Team")).unwrap();
    let before = fake.state();
    let out = apply_saved(&fake, &dir, &config, &plan);
    out.assert_code(1);
    assert!(out.stderr.contains("checksum"), "{}", out.stderr);
    assert_eq!(delete_count(&fake), 0);
    assert_eq!(fake.state(), before);
}

/// Without a terminal and without `--yes`, apply refuses to delete.
#[test]
fn without_a_terminal_or_yes_nothing_is_deleted() {
    let (state, configs) = over_threshold();
    let fake = Fake::start(state.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &configs);
    let out = cfgroups()
        .against(&fake)
        .arg("apply")
        .arg("-c")
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("s"))
        .arg("--force")
        .unlimited()
        .run();
    out.assert_code(1);
    assert!(
        out.stderr.contains("without confirmation"),
        "{}",
        out.stderr
    );
    assert_eq!(delete_count(&fake), 0);
    assert_eq!(fake.state(), state);
}

/// On a terminal (a pseudo-terminal from util-linux `script`), only the answer `yes`
/// deletes. Skipped where `script` is not installed.
#[test]
fn on_a_terminal_only_yes_deletes() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    }
    // (answer, a planned group disappears before the answer, whether the rest is deleted)
    for (answer, change, expect_deleted) in [
        ("no", false, false),
        ("y", false, false),
        ("yes", true, false),
        ("yes", false, true),
    ] {
        let (state, configs) = over_threshold();
        let fake = Fake::start(state.clone());
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &configs);
        let command = format!(
            "{} apply -c {} --state-dir {} --force --max-requests 1000000 --budget-window 1s",
            bin().display(),
            config.display(),
            dir.path().join("s").display()
        );
        let mut script = std::process::Command::new("script");
        script
            .args(["-qec", &command, "/dev/null"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SHELL", "/bin/sh")
            .env("TERM", "dumb")
            .env("NO_COLOR", "1")
            .env("CLOUDFLARE_BASE_URL", fake.base_url())
            .env("CLOUDFLARE_API_TOKEN", TOKEN)
            .env("HOME", dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = script.spawn().unwrap();
        // Answer once the prompt has been reached: the listing is done by then.
        fake.wait_for(std::time::Duration::from_secs(30), |r| {
            r.count(Method::GET, Route::List) >= 1 && r.log().len() == r.total()
        });
        if change {
            // Someone else deletes a planned group while the prompt waits.
            assert!(fake.remove_group(account(0), group_id(0, 0)));
        }
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        let shown = String::from_utf8_lossy(&output.stdout);
        assert!(shown.contains("Enter a value"), "{answer}: {shown}");
        if change {
            assert_eq!(output.status.code(), Some(1), "{shown}");
            assert!(
                shown.contains("changed while waiting for the answer"),
                "{shown}"
            );
            assert_eq!(delete_count(&fake), 0);
            assert_eq!(fake.groups(account(0)).len(), 2);
        } else if expect_deleted {
            assert_eq!(output.status.code(), Some(0), "{answer}: {shown}");
            assert!(fake.groups(account(0)).is_empty(), "{answer}: {shown}");
            // Each group is named as it completes, and stays on screen after the bar.
            for n in 0..3 {
                let done = format!("deleted {} {} \"Old {n}\"", account(0), group_id(0, n));
                assert!(shown.contains(&done), "no {done:?} in {shown}");
            }
        } else {
            assert_eq!(output.status.code(), Some(1), "{answer}: {shown}");
            assert!(shown.contains("nothing was deleted"), "{answer}: {shown}");
            assert_eq!(delete_count(&fake), 0, "{answer}");
            assert_eq!(fake.state(), state, "{answer}");
        }
    }
}

/// The policies as the create endpoint takes them: access, permission group ids and
/// resource group ids (the ids Cloudflare gives policies are not part of the definition).
/// Read from the text as served, everything else skipped unread, so numbers no float holds
/// do not matter.
fn policy_shape(policies: &serde_json::value::RawValue) -> Vec<(String, Vec<String>, Vec<String>)> {
    #[derive(serde::Deserialize)]
    struct Policy {
        access: String,
        permission_groups: Vec<WithId>,
        resource_groups: Vec<WithId>,
    }
    #[derive(serde::Deserialize)]
    struct WithId {
        id: String,
    }
    let policies: Vec<Policy> = serde_json::from_str(policies.get()).expect("a policy list");
    let ids = |list: Vec<WithId>| list.into_iter().map(|item| item.id).collect();
    policies
        .into_iter()
        .map(|p| (p.access, ids(p.permission_groups), ids(p.resource_groups)))
        .collect()
}

/// Policies as an API in beta may send them: unknown keys at every depth, nesting far deeper
/// than the documented shape, text beyond ASCII (raw and escaped), and numbers no float holds
/// (`1e400`, a 33-digit integer) or would round (`1.0E-5`, 0.1 to 34 places), with the odd
/// space between tokens.
const UNUSUAL_POLICIES: &str = concat!(
    r#"[{"id":"11111111111111111111111111111111","access":"allow","#,
    r#""x-ünknown":{"deep":[[[[[[{"n":1e400,"m":-1.0E-5,"#,
    r#""big":123456789012345678901234567890123,"z":-0.0}]]]]]],"#,
    r#""emoji":"🔐 \u00e9\ud83d\ude00 \"quoted\""},"#,
    r#""permission_groups":[{"id":"c8fed203ed3043cba015a93ad1616f1f","name":"Zone Read","#,
    r#""meta":{"scopes":"com.cloudflare.api.account.zone","weight":1E+2}}],"#,
    r#""resource_groups": [{"id":"6d7f2f5f5b1d4a0a9b0a2b2a3b3c4d5e","#,
    r#""scope":[{"key":"com.cloudflare.api.account.zone.1","objects":[{"key":"*"}]}],"#,
    r#""meta":{"ratio":0.1000000000000000055511151231257827}}]},"#,
    r#"{"id":"22222222222222222222222222222222","access":"deny","#,
    r#""permission_groups":[{"id":"3030687196b94b638145a3953da19b46","name":"Équipe DNS"}],"#,
    r#""resource_groups":[{"id":"7e8f3f6f6c2e5b1b0c1b3c3b4c4d5e6f","#,
    r#""scope":{"key":"com.cloudflare.api.account.zone.2","objects":[]},"unknown":null}]}]"#,
);

/// A group with [`UNUSUAL_POLICIES`] is listed (by `export --snapshot`, and by `apply`),
/// deleted and restored: the snapshot and the journal hold the policies exactly as the API
/// served them, byte for byte, and the restored group has them in the create shape.
#[test]
fn unusual_policies_are_journaled_byte_for_byte_and_restored_in_the_create_shape() {
    let a = account(0);
    let original = group(0, 1, "Équipe Sécurité", 2)
        .with_policies_text(UNUSUAL_POLICIES)
        .expect("valid JSON");
    let fake = Fake::start(
        FakeState::new()
            .with_group(&a, original.clone())
            .with_group(&a, group(0, 2, "Team", 1)),
    );
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("s");

    let exported = cfgroups()
        .against(&fake)
        .args([
            "export",
            "--snapshot",
            "--output",
            "json",
            "--account",
            a.as_str(),
        ])
        .run();
    exported.assert_code(0);
    assert!(
        exported.stdout.contains(UNUSUAL_POLICIES),
        "the listing carries the policies byte for byte:\n{}",
        exported.stdout
    );

    let config = write_config(
        dir.path(),
        &[AccountConfig::new(a.clone())
            .absent("Équipe Sécurité")
            .present("Team")],
    );
    apply(&fake, &config, &state_dir)
        .unlimited()
        .run()
        .assert_code(0);
    assert_eq!(names(&fake, &a), ["Team"]);

    let text = std::fs::read_to_string(state_dir.join("journal.jsonl")).unwrap();
    let intent_line = text
        .lines()
        .find(|line| line.contains(r#""type":"intent""#))
        .expect("an intent");
    assert!(intent_line.contains(UNUSUAL_POLICIES), "{intent_line}");
    let contents = journal(&state_dir);
    let backed_up = contents
        .records
        .iter()
        .find_map(|record| match record {
            Record::Intent { group, .. } => group.policies.as_deref(),
            _ => None,
        })
        .expect("the intent reads back");
    assert_eq!(backed_up.get(), UNUSUAL_POLICIES);

    restore_cmd(&fake, &original.id, &state_dir).assert_code(0);
    let groups = fake.groups(&a);
    let restored = groups
        .iter()
        .find(|g| g.name == "Équipe Sécurité")
        .expect("the group is back");
    assert_ne!(restored.id, original.id);
    assert_eq!(
        policy_shape(&restored.policies),
        policy_shape(&original.policies)
    );
    assert_eq!(
        policy_shape(&restored.policies),
        [
            (
                "allow".to_owned(),
                vec!["c8fed203ed3043cba015a93ad1616f1f".to_owned()],
                vec!["6d7f2f5f5b1d4a0a9b0a2b2a3b3c4d5e".to_owned()]
            ),
            (
                "deny".to_owned(),
                vec!["3030687196b94b638145a3953da19b46".to_owned()],
                vec!["7e8f3f6f6c2e5b1b0c1b3c3b4c4d5e6f".to_owned()]
            ),
        ]
    );
}

/// Delete with apply, then `restore --group <old id>`: the group comes back with the same
/// name, policies and members; the journal records the restore, and `cfgroups journal`
/// lists both.
#[test]
fn a_deleted_group_is_restored_from_the_journal() {
    let a = account(0);
    let original = group(0, 1, "Contractors 2024", 3).with_policies(&serde_json::json!([
        {"id": "11111111111111111111111111111111", "access": "allow",
         "permission_groups": [{"id": "c8fed203ed3043cba015a93ad1616f1f", "name": "Zone Read"},
                               {"id": "82e64a83756745bbbb1c9c2701bf816b", "name": "DNS Read"}],
         "resource_groups": [{"id": "6d7f2f5f5b1d4a0a9b0a2b2a3b3c4d5e",
                              "scope": [{"key": "com.cloudflare.api.account.zone.1", "objects": []}]}]},
        {"id": "22222222222222222222222222222222", "access": "deny",
         "permission_groups": [{"id": "3030687196b94b638145a3953da19b46"}],
         "resource_groups": [{"id": "7e8f3f6f6c2e5b1b0c1b3c3b4c4d5e6f",
                              "scope": {"key": "com.cloudflare.api.account.zone.2", "objects": []}},
                             {"id": "8f9a4a7a7d3f6c2c1d2c4d4c5d5e6f70",
                              "scope": {"key": "com.cloudflare.api.account.zone.3", "objects": []}}]}
    ]));
    let state = FakeState::new()
        .with_group(&a, original.clone())
        .with_group(&a, group(0, 2, "Team", 1));
    let fake = Fake::start(state);
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("s");
    let config = write_config(
        dir.path(),
        &[AccountConfig::new(a.clone())
            .absent("Contractors 2024")
            .present("Team")],
    );
    apply(&fake, &config, &state_dir)
        .unlimited()
        .run()
        .assert_code(0);
    assert_eq!(names(&fake, &a), ["Team"]);

    let out = restore_cmd(&fake, &original.id, &state_dir);
    out.assert_code(0);

    let groups = fake.groups(&a);
    let restored = groups
        .iter()
        .find(|g| g.name == "Contractors 2024")
        .expect("the group is back");
    assert_ne!(restored.id, original.id, "Cloudflare gives a new id");
    assert_eq!(
        policy_shape(&restored.policies),
        policy_shape(&original.policies)
    );
    let member_ids = |g: &FakeGroup| {
        let mut ids: Vec<String> = g.members.iter().map(|m| m.id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(member_ids(restored), member_ids(&original));
    assert!(out.stdout.contains(restored.id.as_str()), "{}", out.stdout);

    let contents = journal(&state_dir);
    assert!(contents.records.iter().any(|r| matches!(r,
        Record::Restore { group_id, new_group_id, account, .. }
            if group_id.as_str() == original.id && new_group_id.as_str() == restored.id && *account == a)));

    let out = cfgroups()
        .against(&fake)
        .arg("journal")
        .arg("--state-dir")
        .arg(&state_dir)
        .run();
    out.assert_code(0);
    let deletion = out
        .stdout
        .lines()
        .find(|l| l.contains(&format!("delete {} \"Contractors 2024\"", original.id)))
        .unwrap_or_else(|| panic!("no deletion line:\n{}", out.stdout));
    assert!(
        deletion.contains("Deleted") && deletion.contains("3 member(s) backed up"),
        "{deletion}"
    );
    assert!(
        out.stdout
            .contains(&format!("restore {} as {}", original.id, restored.id)),
        "{}",
        out.stdout
    );
}

/// One group with three members, deleted by `apply`; returns the fake, the temporary
/// directory, the state directory and the deleted group.
fn deleted_group_setup() -> (Fake, tempfile::TempDir, std::path::PathBuf, FakeGroup) {
    let a = account(0);
    let original = group(0, 1, "Contractors 2024", 3);
    let fake = Fake::start(
        FakeState::new()
            .with_group(&a, original.clone())
            .with_group(&a, group(0, 2, "Team", 1)),
    );
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("s");
    let config = write_config(
        dir.path(),
        &[AccountConfig::new(a)
            .absent("Contractors 2024")
            .present("Team")],
    );
    apply(&fake, &config, &state_dir)
        .unlimited()
        .run()
        .assert_code(0);
    (fake, dir, state_dir, original)
}

/// `cfgroups restore --group <group>`, journaling under `state_dir`.
fn restore_cmd(fake: &Fake, group: &str, state_dir: &std::path::Path) -> Run {
    restore_with(fake, group, state_dir, &[])
}

fn restore_with(fake: &Fake, group: &str, state_dir: &std::path::Path, extra: &[&str]) -> Run {
    cfgroups()
        .against(fake)
        .args(["restore", "--group", group, "--state-dir"])
        .arg(state_dir)
        .args(extra)
        .unlimited()
        .run()
}

fn creates(fake: &Fake) -> usize {
    fake.requests().count(Method::POST, Route::Create)
}

fn restores(state_dir: &std::path::Path) -> Vec<(GroupId, bool)> {
    journal(state_dir)
        .records
        .into_iter()
        .filter_map(|r| match r {
            Record::Restore {
                new_group_id,
                members_restored,
                ..
            } => Some((new_group_id, members_restored)),
            _ => None,
        })
        .collect()
}

/// A group whose delete failed still exists: restoring it would make a duplicate, so the
/// restore is refused and nothing is created.
#[test]
fn restoring_a_group_whose_delete_failed_is_refused() {
    let a = account(0);
    let kept = group(0, 1, "Contractors 2024", 2);
    let fake = Fake::start(FakeState::new().with_group(&a, kept.clone()));
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("s");
    let config = write_config(
        dir.path(),
        &[AccountConfig::new(a.clone()).absent("Contractors 2024")],
    );
    // 400 is not retried: the delete fails at once and is journaled as failed.
    fake.inject(Fault::Status(400).on(Route::Delete).method(Method::DELETE));
    apply(&fake, &config, &state_dir)
        .unlimited()
        .run()
        .assert_code(1);
    assert_eq!(names(&fake, &a), ["Contractors 2024"]);

    let out = restore_cmd(&fake, &kept.id, &state_dir);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains(&format!("group {} was not deleted", kept.id))
            && out.stderr.contains("failed")
            && out.stderr.contains("nothing to restore"),
        "{}",
        out.stderr
    );
    assert_eq!(creates(&fake), 0);
    assert_eq!(names(&fake, &a), ["Contractors 2024"]);
    assert!(restores(&state_dir).is_empty());
}

/// A second restore of the same group is refused, naming the group the first one made;
/// `--again` makes another on purpose.
#[test]
fn restoring_twice_is_refused_unless_again() {
    let (fake, _dir, state_dir, original) = deleted_group_setup();
    let a = account(0);
    restore_cmd(&fake, &original.id, &state_dir).assert_code(0);
    assert_eq!(names(&fake, &a), ["Contractors 2024", "Team"]);
    // Recorded as soon as the group exists, then again once its members are added.
    let first = restores(&state_dir);
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(first[0].0, first[1].0);
    let (new_id, members_restored) = (first[1].0.clone(), first[1].1);
    assert!(!first[0].1 && members_restored);

    let out = restore_cmd(&fake, &original.id, &state_dir);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains(&format!("already restored as {new_id}"))
            && out.stderr.contains("--again"),
        "{}",
        out.stderr
    );
    assert_eq!(creates(&fake), 1);
    assert_eq!(names(&fake, &a), ["Contractors 2024", "Team"]);

    restore_with(&fake, &original.id, &state_dir, &["--again"]).assert_code(0);
    assert_eq!(creates(&fake), 2);
    assert_eq!(
        names(&fake, &a),
        ["Contractors 2024", "Contractors 2024", "Team"]
    );
    let recorded = restores(&state_dir);
    assert_eq!(recorded.len(), 4, "{recorded:?}");
    assert_ne!(recorded[3].0, new_id);
}

/// The group is recreated but adding its members fails: the restore is on record, and a
/// rerun adds the members to that group instead of creating another.
#[test]
fn a_restore_whose_members_failed_is_finished_by_a_rerun() {
    let (fake, _dir, state_dir, original) = deleted_group_setup();
    let a = account(0);
    // A POST of members is not retried (it may have been processed): one fault fails it.
    fake.inject(Fault::Status(500).on(Route::Members).method(Method::POST));
    let out = restore_cmd(&fake, &original.id, &state_dir);
    out.assert_code(1);
    let recorded = restores(&state_dir);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let (new_id, members_restored) = recorded[0].clone();
    assert!(!members_restored);
    assert!(
        out.stderr.contains(new_id.as_str()) && out.stderr.contains("re-run"),
        "{}",
        out.stderr
    );
    let recreated = fake
        .groups(&a)
        .into_iter()
        .find(|g| g.id == new_id.as_str())
        .unwrap();
    assert!(recreated.members.is_empty());

    let out = restore_cmd(&fake, &original.id, &state_dir);
    out.assert_code(0);
    assert!(out.stdout.contains(new_id.as_str()), "{}", out.stdout);
    assert_eq!(creates(&fake), 1, "no second group");
    assert_eq!(names(&fake, &a), ["Contractors 2024", "Team"]);
    let recreated = fake
        .groups(&a)
        .into_iter()
        .find(|g| g.id == new_id.as_str())
        .unwrap();
    let mut ids: Vec<String> = recreated.members.iter().map(|m| m.id.clone()).collect();
    ids.sort();
    let mut want: Vec<String> = original.members.iter().map(|m| m.id.clone()).collect();
    want.sort();
    assert_eq!(ids, want);
    let recorded = restores(&state_dir);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(recorded[1], (new_id.clone(), true));

    // Finished: a further run is refused like any second restore.
    restore_cmd(&fake, &original.id, &state_dir).assert_code(1);
    assert_eq!(creates(&fake), 1);
}
