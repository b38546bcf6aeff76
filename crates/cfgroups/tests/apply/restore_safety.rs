//! Restores and the journal under attack, the real binary against the fake API: two
//! restores racing, a create whose answer is lost, a policy without `access`, warnings, and
//! a damaged backup line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cfgroups::journal::JOURNAL_FILE;
use cfgroups_fake::{FakeGroup, FakeState, Fault, Method, Route};
use testkit::*;

const NAME: &str = "Contractors 2024";

/// `group` deleted by `apply` from a fake built by `builder`; returns the fake, the temporary
/// directory, the state directory and the config that deleted it.
fn deleted(
    builder: cfgroups_fake::FakeCloudflareBuilder,
    group: &FakeGroup,
) -> (Fake, tempfile::TempDir, PathBuf, PathBuf) {
    let a = account(0);
    let fake = Fake::start_with(
        builder.state(
            FakeState::new()
                .with_group(&a, group.clone())
                .with_group(&a, testkit::group(0, 2, "Team", 1)),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("s");
    let config = write_config(
        dir.path(),
        &[AccountConfig::new(a).absent(&group.name).present("Team")],
    );
    apply(&fake, &config, &state_dir)
        .unlimited()
        .run()
        .assert_code(0);
    (fake, dir, state_dir, config)
}

fn restore(fake: &Fake, group: &str, state_dir: &Path, extra: &[&str]) -> Run {
    cfgroups()
        .against(fake)
        .args(["restore", "--group", group, "--state-dir"])
        .arg(state_dir)
        .args(extra)
        .unlimited()
        .run()
}

fn named(fake: &Fake, name: &str) -> usize {
    fake.groups(account(0))
        .iter()
        .filter(|g| g.name == name)
        .count()
}

fn creates(fake: &Fake) -> usize {
    fake.requests().count(Method::POST, Route::Create)
}

/// Two `restore` processes of the same group at once, over a slow API: one group is
/// created; the other restore says it is already restored.
#[test]
fn two_restores_racing_create_one_group() {
    let original = group(0, 1, NAME, 2);
    let (fake, _dir, state_dir, _) = deleted(fake().latency(Duration::from_millis(200)), &original);
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| restore(&fake, &original.id, &state_dir, &[])))
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(creates(&fake), 1, "{runs:#?}");
    assert_eq!(named(&fake, NAME), 1);
    let ok = runs.iter().filter(|r| r.code == Some(0)).count();
    let refused = runs
        .iter()
        .filter(|r| r.code == Some(1) && r.stderr.contains("already restored"))
        .count();
    assert_eq!((ok, refused), (1, 1), "{runs:#?}");
}

/// The create's answer is lost after Cloudflare made the group: the rerun finds it by name
/// (created after the deletion) and adopts it, adding the members, instead of creating a
/// second copy.
#[test]
fn a_restore_whose_create_answer_was_lost_adopts_the_group_on_the_rerun() {
    let original = group(0, 1, NAME, 2);
    let (fake, _dir, state_dir, _) = deleted(fake(), &original);
    fake.inject(Fault::DropConnectionAfterApply.on(Route::Create));
    restore(&fake, &original.id, &state_dir, &[]).assert_code(1);
    assert_eq!(named(&fake, NAME), 1, "the create took effect");

    let out = restore(&fake, &original.id, &state_dir, &[]);
    out.assert_code(0);
    assert!(out.stderr.contains("adopted"), "{}", out.stderr);
    assert_eq!(creates(&fake), 1, "{}", out.stderr);
    let groups = fake.groups(account(0));
    let restored = groups.iter().find(|g| g.name == NAME).unwrap();
    assert_eq!(restored.members.len(), 2);
    assert!(out.stdout.contains(restored.id.as_str()), "{}", out.stdout);
}

/// A backed-up policy without `access` is refused, naming the policy; never restored as
/// `allow`.
#[test]
fn a_policy_without_access_is_refused() {
    let original = group(0, 1, NAME, 1).with_policies(&serde_json::json!([
        {"id": "0123456789abcdef0123456789abcdef", "permission_groups": [{"id": "p"}], "resource_groups": []}
    ]));
    let (fake, _dir, state_dir, _) = deleted(fake(), &original);
    let out = restore(&fake, &original.id, &state_dir, &[]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("without `access`")
            && out.stderr.contains("0123456789abcdef0123456789abcdef"),
        "{}",
        out.stderr
    );
    assert_eq!(creates(&fake), 0);
}

/// A namesake that exists already, and a config that would delete the restored group again,
/// are warned about.
#[test]
fn a_restore_warns_about_a_namesake_and_a_config_that_deletes_it_again() {
    let original = group(0, 1, NAME, 1);
    let (fake, _dir, state_dir, config) = deleted(fake(), &original);
    fake.add_group(account(0), group(0, 7, NAME, 0));
    let out = restore(
        &fake,
        &original.id,
        &state_dir,
        &["--config", config.to_str().unwrap()],
    );
    out.assert_code(0);
    assert!(
        out.stderr.contains("warning: a group named") && out.stderr.contains("already exists"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("would delete the restored group") && out.stderr.contains("absent"),
        "{}",
        out.stderr
    );
}

/// A damaged backup line: `journal` reports it and exits 1; `restore` names the line
/// instead of saying there is no backup, and creates nothing.
#[test]
fn a_damaged_backup_line_is_reported_by_journal_and_restore() {
    let original = group(0, 1, NAME, 2);
    let (fake, _dir, state_dir, _) = deleted(fake(), &original);
    let path = state_dir.join(JOURNAL_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"members\":[", "\"members\":[{,", 1)).unwrap();

    let out = cfgroups()
        .args(["journal", "--state-dir"])
        .arg(&state_dir)
        .run();
    out.assert_code(1);
    assert!(
        out.stderr.contains("line 1 is not a readable record"),
        "{}",
        out.stderr
    );

    let out = restore(&fake, &original.id, &state_dir, &[]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("damaged") && out.stderr.contains("line 1"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("no backup"), "{}", out.stderr);
    assert_eq!(creates(&fake), 0);
}

/// A run that opens a journal with a damaged line warns, naming the line; a run on a sound
/// journal says nothing of the kind.
#[test]
fn a_run_warns_of_damaged_journal_lines_and_only_of_those() {
    let original = group(0, 1, NAME, 2);
    let (fake, _dir, state_dir, config) = deleted(fake(), &original);
    let warning = "journal lines that are not records";
    let out = apply(&fake, &config, &state_dir).unlimited().run();
    out.assert_code(0);
    assert!(!out.stderr.contains(warning), "{}", out.stderr);

    let path = state_dir.join(JOURNAL_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"members\":[", "\"members\":[{,", 1)).unwrap();
    let out = apply(&fake, &config, &state_dir).unlimited().run();
    out.assert_code(0);
    let said = out
        .stderr
        .lines()
        .find(|line| line.contains(warning))
        .unwrap_or_else(|| panic!("no warning: {}", out.stderr));
    assert!(said.contains("[1]"), "{said}");
}

/// A journal that is a symlink to /dev/zero is refused at once, naming the file and line.
#[test]
fn a_journal_symlinked_to_dev_zero_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(JOURNAL_FILE);
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    // Without the line limit the read never ends: the error is the proof.
    let out = cfgroups().arg("journal").arg("--journal").arg(&path).run();
    out.assert_code(1);
    assert!(
        out.stderr.contains("line 1 is longer than"),
        "{}",
        out.stderr
    );
}
