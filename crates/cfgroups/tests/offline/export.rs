//! `cfgroups export` end to end: what it writes round-trips through `plan` with no drift,
//! from a snapshot and from the live API (the local fake), and a failed listing writes
//! nothing.

use std::path::Path;

use assert_cmd::prelude::*;
use cfgroups_fake::{FakeCloudflare, Fault, Route};
use predicates::prelude::*;
use testkit::{
    CommandExt, EXAMPLE_CONFIG, EXAMPLE_PRODUCTION as PRODUCTION, EXAMPLE_SNAPSHOT as SNAPSHOT,
    EXAMPLE_STAGING as STAGING, TOKEN, cfgroups, example_state, start_fake,
};

/// `cfgroups export` of both example accounts with `extra` arguments; its stdout.
fn export(source: &str, extra: &[&str]) -> String {
    let out = cfgroups()
        .args(["export", "--account", STAGING, "--account", PRODUCTION])
        .args(["--source", source])
        .args(extra)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

fn plan_json(config: &Path, source: &str) -> serde_json::Value {
    let out = cfgroups()
        .args(["plan", "-o", "json", "-s", source, "-c"])
        .arg(config)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn an_exported_desired_state_plans_with_no_drift() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("snapshot:{SNAPSHOT}");
    for (format, file) in [("yaml", "export.yaml"), ("json", "export.json")] {
        let exported = export(&source, &["--output", format]);
        let path = dir.path().join(file);
        std::fs::write(&path, &exported).unwrap();
        cfgroups()
            .args(["validate", "-c"])
            .arg(&path)
            .assert()
            .success()
            .stdout(predicate::str::contains(
                "2 account(s), 13 declared group(s)",
            ));
        cfgroups()
            .args(["plan", "--detailed-exitcode", "-s", &source, "-c"])
            .arg(&path)
            .assert()
            .code(0)
            .stdout(predicate::str::contains("No drift."));
    }
}

#[test]
fn the_yaml_export_has_a_header_and_declares_shared_names_by_id() {
    let exported = export(&format!("snapshot:{SNAPSHOT}"), &[]);
    let header: Vec<&str> = exported
        .lines()
        .take_while(|l| l.starts_with('#'))
        .collect();
    assert!(
        header[0].contains(&format!("from snapshot:{SNAPSHOT}")),
        "{exported}"
    );
    assert!(header[0].contains(" at 20"), "no export time: {exported}");
    // Two live groups are named "Interns" in the example: both are declared by id only.
    assert_eq!(
        exported
            .matches("# name \"Interns\" is shared by 2 groups: declared by id only\n      - id: ")
            .count(),
        2,
        "{exported}"
    );
    assert!(!exported.contains("name: Interns"), "{exported}");
    // Accounts sorted by id, groups by name.
    let production = exported.find(PRODUCTION).unwrap();
    let staging = exported.find(STAGING).unwrap();
    assert!(production < staging);
    let administrators = exported.find("name: Administrators").unwrap();
    let engineering = exported.find("name: Engineering").unwrap();
    assert!(administrators < engineering);
}

#[test]
fn the_json_export_puts_its_header_on_stderr() {
    let assert = cfgroups()
        .args(["export", "--account", PRODUCTION, "--output", "json"])
        .args(["--source", &format!("snapshot:{SNAPSHOT}")])
        .assert()
        .success()
        .stderr(predicate::str::contains(format!(
            "Desired state exported by cfgroups {}",
            env!("CARGO_PKG_VERSION")
        )));
    let stdout: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(stdout["version"], 1);
    assert!(stdout.get("exported_at").is_none());
}

#[test]
fn an_exported_snapshot_plans_like_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let original = plan_json(Path::new(EXAMPLE_CONFIG), &format!("snapshot:{SNAPSHOT}"));
    for (format, file) in [("json", "snapshot.json"), ("yaml", "snapshot.yaml")] {
        let exported = export(
            &format!("snapshot:{SNAPSHOT}"),
            &["--snapshot", "--output", format],
        );
        let path = dir.path().join(file);
        std::fs::write(&path, &exported).unwrap();
        let replayed = plan_json(
            Path::new(EXAMPLE_CONFIG),
            &format!("snapshot:{}", path.display()),
        );
        assert_eq!(replayed["accounts"], original["accounts"], "{format}");
        assert_eq!(replayed["summary"], original["summary"], "{format}");
    }
    let json: serde_json::Value = serde_json::from_str(&export(
        &format!("snapshot:{SNAPSHOT}"),
        &["--snapshot", "--output", "json"],
    ))
    .unwrap();
    assert_eq!(json["exported_from"], format!("snapshot:{SNAPSHOT}"));
    assert!(json["exported_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn export_is_deterministic_with_source_date_epoch() {
    let run = |extra: &[&str]| {
        let out = cfgroups()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["export", "--account", STAGING, "--account", PRODUCTION])
            .args([
                "--account",
                STAGING,
                "--source",
                &format!("snapshot:{SNAPSHOT}"),
            ])
            .args(extra)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).unwrap()
    };
    for extra in [&[][..], &["--snapshot"], &["--snapshot", "-o", "json"]] {
        let first = run(extra);
        assert_eq!(first, run(extra), "{extra:?}");
        assert!(first.contains("2023-11-14T22:13:20Z"), "{first}");
        // A repeated --account is exported once.
        assert_eq!(first.matches(STAGING).count(), 1, "{first}");
    }
}

#[test]
fn a_failed_listing_exports_nothing_and_exits_one() {
    cfgroups()
        .args(["export", "--account", PRODUCTION])
        .args(["--account", "00000000000000000000000000000000"])
        .args(["--source", &format!("snapshot:{SNAPSHOT}")])
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(
            "00000000000000000000000000000000: account 00000000000000000000000000000000 is not in snapshot",
        ));
    cfgroups()
        .args(["export", "--account", PRODUCTION, "--snapshot"])
        .args(["--source", "exec:sh -c 'echo denied >&2; exit 3'"])
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("denied"));
}

#[test]
fn export_needs_an_account() {
    cfgroups()
        .args(["export", "--source", &format!("snapshot:{SNAPSHOT}")])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--account <ID>"));
}

/// Runs the binary against `fake` off the runtime's worker threads.
async fn against_fake(fake: &FakeCloudflare, args: Vec<String>) -> std::process::Output {
    let base_url = fake.base_url();
    tokio::task::spawn_blocking(move || cfgroups().api(&base_url).args(args).output().unwrap())
        .await
        .unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_from_the_live_api_plans_with_no_drift_against_it() {
    let fake = start_fake(example_state()).await;
    let exported = against_fake(
        &fake,
        strings(&[
            "export",
            "--account",
            PRODUCTION,
            "--account",
            STAGING,
            "--source",
            "cloudflare",
        ]),
    )
    .await;
    assert!(exported.status.success(), "{exported:?}");
    let text = String::from_utf8(exported.stdout).unwrap();
    assert!(text.contains("from cloudflare."), "{text}");
    assert!(!text.contains(TOKEN), "the token leaked into the export");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("live.yaml");
    std::fs::write(&config, &text).unwrap();
    let config = config.display().to_string();
    let plan = against_fake(
        &fake,
        strings(&["plan", "--detailed-exitcode", "--config", &config]),
    )
    .await;
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&plan.stdout),
        String::from_utf8_lossy(&plan.stderr)
    );

    // The same state exported as a snapshot plans the example exactly as the live API does.
    let snapshot = against_fake(
        &fake,
        strings(&[
            "export",
            "--account",
            PRODUCTION,
            "--account",
            STAGING,
            "--snapshot",
        ]),
    )
    .await;
    assert!(snapshot.status.success(), "{snapshot:?}");
    let snapshot_path = dir.path().join("live-snapshot.yaml");
    std::fs::write(&snapshot_path, &snapshot.stdout).unwrap();
    let live = against_fake(
        &fake,
        strings(&["plan", "-o", "json", "--config", EXAMPLE_CONFIG]),
    )
    .await;
    let live: serde_json::Value = serde_json::from_slice(&live.stdout).unwrap();
    let replayed = plan_json(
        Path::new(EXAMPLE_CONFIG),
        &format!("snapshot:{}", snapshot_path.display()),
    );
    assert_eq!(replayed["accounts"], live["accounts"]);
    fake.shutdown().await;
}

/// From the live API each account's `label:` is its name (`GET /accounts/{id}`); a name the
/// token may not read leaves a comment instead, and is no failure of the export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_come_from_account_names_and_an_unreadable_one_is_a_comment() {
    let fake = start_fake(example_state().with_account_name(STAGING, "Acme: Staging #2")).await;
    // Names are read in account order: the production account's is refused.
    fake.inject(Fault::Status(403).on(Route::Account).times(1));
    let exported = against_fake(
        &fake,
        strings(&["export", "--account", PRODUCTION, "--account", STAGING]),
    )
    .await;
    assert!(exported.status.success(), "{exported:?}");
    let text = String::from_utf8(exported.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "  - id: {PRODUCTION}\n    # label: not set: cannot read the account's name: HTTP 403"
        )),
        "{text}"
    );
    assert!(
        text.contains("the token may not read the account object"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  - id: {STAGING}\n    label: 'Acme: Staging #2'\n"
        )),
        "{text}"
    );
    let desired = cfgroups::config::parse(&text, Path::new("export.yaml")).unwrap();
    assert_eq!(desired.accounts[0].label, None);
    assert_eq!(
        desired.accounts[1].label.as_deref(),
        Some("Acme: Staging #2")
    );
    fake.shutdown().await;
}

/// `--out-dir` writes one file per account, each starting with the schema modeline, and
/// never overwrites a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_dir_writes_one_file_per_account_with_the_schema_modeline() {
    let fake = start_fake(example_state().with_account_name(PRODUCTION, "Production")).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("accounts");
    let args = |out: &Path| {
        vec![
            "export".to_owned(),
            "--account".to_owned(),
            PRODUCTION.to_owned(),
            "--account".to_owned(),
            STAGING.to_owned(),
            "--out-dir".to_owned(),
            out.display().to_string(),
        ]
    };
    let exported = against_fake(&fake, args(&out)).await;
    assert!(exported.status.success(), "{exported:?}");
    assert!(exported.stdout.is_empty());
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [format!("{PRODUCTION}.yaml"), format!("{STAGING}.yaml")]
    );
    for name in &names {
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../cfgroups.schema.json\n"),
            "{name}: {text}"
        );
    }
    let production = std::fs::read_to_string(out.join(&names[0])).unwrap();
    assert!(
        production.contains("    label: Production\n"),
        "{production}"
    );
    // Together they are the desired state, and it plans with no drift.
    let desired = cfgroups::config::load(&out).unwrap();
    assert_eq!(desired.accounts.len(), 2);
    let plan = against_fake(
        &fake,
        strings(&[
            "plan",
            "--detailed-exitcode",
            "--config",
            &out.display().to_string(),
        ]),
    )
    .await;
    assert_eq!(plan.status.code(), Some(0), "{plan:?}");

    // A second export into the same directory refuses, and leaves the files alone.
    std::fs::write(out.join(&names[1]), "# edited by hand\n").unwrap();
    let again = against_fake(&fake, args(&out)).await;
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("never overwrites"),
        "{again:?}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join(&names[1])).unwrap(),
        "# edited by hand\n"
    );
    fake.shutdown().await;
}
