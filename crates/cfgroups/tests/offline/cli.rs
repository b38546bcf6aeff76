//! The real binary on fixtures: golden reports, exit codes, the bad-input corpus, and the
//! offline sources end to end.

use std::path::{Path, PathBuf};

use assert_cmd::prelude::*;
use predicates::prelude::*;
use testkit::{CommandExt, EXAMPLE_CONFIG, cfgroups};

/// The example snapshot as a `--source`.
const EXAMPLE_SNAPSHOT: &str = "snapshot:examples/snapshot.json";

fn plan_example(format: &str) -> String {
    let out = cfgroups()
        .args([
            "plan",
            "-c",
            EXAMPLE_CONFIG,
            "-s",
            EXAMPLE_SNAPSHOT,
            "-o",
            format,
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn golden_text_report() {
    insta::assert_snapshot!("plan_text", plan_example("text"));
}

#[test]
fn golden_json_report() {
    let out = plan_example("json");
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed["format_version"], 1);
    insta::assert_snapshot!("plan_json", out);
}

#[test]
fn golden_markdown_report() {
    insta::assert_snapshot!("plan_markdown", plan_example("markdown"));
}

#[test]
fn text_has_no_escape_codes_when_not_a_terminal() {
    assert!(!plan_example("text").contains('\u{1b}'));
}

#[test]
fn detailed_exitcode_is_two_on_drift_and_zero_in_sync() {
    cfgroups()
        .args(["plan", "-c", EXAMPLE_CONFIG, "-s", EXAMPLE_SNAPSHOT])
        .arg("--detailed-exitcode")
        .assert()
        .code(2);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("in-sync.yaml");
    std::fs::write(
        &config,
        "version: 1\naccounts:\n  - id: 9a7806061c88ada191ed06f989cc3dac\n    unmanaged: ignore\n    groups:\n      - {name: QA, state: present}\n      - {name: Gone, state: absent}\n",
    )
    .unwrap();
    cfgroups()
        .args(["plan", "-s", EXAMPLE_SNAPSHOT, "--detailed-exitcode", "-c"])
        .arg(&config)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("No drift."));
}

#[test]
fn an_account_missing_from_the_snapshot_fails_the_listing_and_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        "version: 1\naccounts:\n  - id: 00000000000000000000000000000000\n    unmanaged: delete\n",
    )
    .unwrap();
    cfgroups()
        .args(["plan", "-s", EXAMPLE_SNAPSHOT, "-o", "json", "-c"])
        .arg(&config)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(r#""status": "listing_failed""#))
        .stdout(predicate::str::contains("is not in snapshot"));
}

/// A listing that names one group twice cannot be trusted (it may hide or repeat others):
/// from a snapshot or from an `exec:` command, the account fails its listing and nothing in
/// it is deleted, though the group is declared absent.
#[test]
fn a_listing_that_names_a_group_twice_fails_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let account = "00000000000000000000000000000000";
    let group = r#"{"id": "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a", "name": "Gone", "created_on": "2024-03-01T12:21:02Z", "modified_on": "2024-03-01T12:21:02Z"}"#;
    let groups = format!(r#"{{"groups": [{group}, {group}]}}"#);
    let snapshot = dir.path().join("snapshot.json");
    std::fs::write(
        &snapshot,
        format!(r#"{{"format_version": 1, "accounts": {{"{account}": {groups}}}}}"#),
    )
    .unwrap();
    let printed = dir.path().join("account.json");
    std::fs::write(&printed, &groups).unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!("version: 1\naccounts:\n  - id: {account}\n    groups:\n      - {{name: Gone, state: absent}}\n"),
    )
    .unwrap();
    for source in [
        format!("snapshot:{}", snapshot.display()),
        format!("exec:sh -c 'cat {}' lister", printed.display()),
    ] {
        cfgroups()
            .args(["plan", "-o", "json", "-s", &source, "-c"])
            .arg(&config)
            .assert()
            .code(1)
            .stdout(predicate::str::contains(r#""status": "listing_failed""#))
            .stdout(predicate::str::contains("appears more than once"))
            .stdout(predicate::str::contains(r#""delete": 0"#));
    }
}

#[test]
fn validate_accepts_the_example() {
    cfgroups()
        .args(["validate", "-c", EXAMPLE_CONFIG])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "valid: 2 account(s), 9 declared group(s)",
        ));
}

/// Each fixture's first line (a directory's: its `expect` file's) says where and what the
/// error is: `# expect: [FILE:]LINE:COL message`, with `-` for no position, and FILE the
/// entry of a fixture directory the error names.
fn expectation(fixture: &Path) -> (Option<String>, String, String) {
    let expect_file = if fixture.is_dir() {
        fixture.join("expect")
    } else {
        fixture.to_owned()
    };
    let first = std::fs::read_to_string(&expect_file).unwrap();
    let spec = first
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{} has no expectation", expect_file.display()));
    let (position, message) = spec.split_once(' ').unwrap();
    // A file name has a dot; a line number does not.
    let (file, position) = match position.split_once(':') {
        Some((name, pos)) if name.contains('.') => (Some(name.to_owned()), pos),
        _ => (None, position),
    };
    (file, position.to_owned(), message.to_owned())
}

/// The directory of the bad-input corpus, by absolute path: the binary runs from the
/// repository root, the corpus lives with these tests.
pub(crate) fn bad_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad")
}

fn bad_fixtures() -> Vec<PathBuf> {
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(bad_corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    fixtures.sort();
    fixtures
}

#[test]
fn every_broken_config_is_refused_with_its_position_and_field() {
    let fixtures = bad_fixtures();
    assert!(
        fixtures.len() >= 15,
        "the corpus shrank to {}",
        fixtures.len()
    );
    for fixture in fixtures {
        let (file, position, message) = expectation(&fixture);
        let shown = match &file {
            Some(name) => fixture.join(name),
            None => fixture.clone(),
        };
        let expected = if position == "-" {
            format!("{}: {message}", shown.display())
        } else {
            format!("{}:{position}: {message}", shown.display())
        };
        let output = cfgroups()
            .args(["validate", "-c"])
            .arg(&fixture)
            .assert()
            .code(1)
            .get_output()
            .clone();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&expected),
            "{}:\n expected {expected}\n got {stderr}",
            fixture.display()
        );
        // The same config never reaches a plan, let alone a deletion.
        cfgroups()
            .args(["plan", "-s", EXAMPLE_SNAPSHOT, "-c"])
            .arg(&fixture)
            .assert()
            .code(1)
            .stdout(predicate::str::is_empty());
    }
}

#[test]
fn every_error_is_listed_not_just_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("many.yaml");
    std::fs::write(
        &config,
        "version: 1
accounts:
  - id: 023e105f4ecef8ad9ca31a8372d0c353
    groups:
      - {name: A, state: gone}
      - {name: B, colour: red, state: absent}
  - id: nothex
  - id: 9a7806061c88ada191ed06f989cc3dac
    max_deletes: many
",
    )
    .unwrap();
    let assert = cfgroups()
        .args(["validate", "-c"])
        .arg(&config)
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("4 problems"), "{stderr}");
    for expected in [
        "many.yaml:5:19: accounts[0].groups[0].state: unknown variant `gone`",
        "many.yaml:6:19: accounts[0].groups[1].colour: unknown field `colour`",
        "many.yaml:7:5: accounts[1].id: account id \"nothex\"",
        "many.yaml:9:5: accounts[2].max_deletes: invalid type",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in\n{stderr}"
        );
    }
}

/// One unknown key or wrong value hides no other error of the same mapping: a file with
/// four typos needs one run, not four.
#[test]
fn every_unknown_key_and_error_of_one_mapping_is_listed_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("typos.yaml");
    std::fs::write(
        &config,
        "version: 1
colour: blue
accounts:
  - id: 023e105f4ecef8ad9ca31a8372d0c353
    lable: production
    max_delets: 3
    unmanaged: purge
    protect: [Admins, 42]
    groups:
      - {name: A, state: absent, colour: red, size: 3}
      - {name: B, stat: absent}
      - {name: A, state: present}
  - id: nothex
    groups:
      - {name: C, state: gone}
",
    )
    .unwrap();
    let run = cfgroups().args(["validate", "-c"]).arg(&config).run();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    for expected in [
        "typos.yaml:2:1: colour: unknown field `colour`",
        "typos.yaml:5:5: accounts[0].lable: unknown field `lable`",
        "typos.yaml:6:5: accounts[0].max_delets: unknown field `max_delets`",
        "typos.yaml:7:5: accounts[0].unmanaged: unknown variant `purge`",
        "typos.yaml:8:23: accounts[0].protect[1]: YAML reads the unquoted 42",
        "accounts[0].groups[0].colour: unknown field `colour`",
        "accounts[0].groups[0].size: unknown field `size`",
        "accounts[0].groups[1].stat: unknown field `stat`",
        "accounts[0].groups[2].name: duplicate group: name \"A\"",
        "accounts[1].id: account id \"nothex\"",
        "accounts[1].groups[0].state: unknown variant `gone`",
    ] {
        assert!(
            run.stderr.contains(expected),
            "missing {expected:?} in\n{}",
            run.stderr
        );
    }
}

#[test]
fn non_utf8_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("latin1.yaml");
    std::fs::write(&config, b"version: 1\naccounts:\n  - id: caf\xe9\n").unwrap();
    cfgroups()
        .args(["validate", "-c"])
        .arg(&config)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not UTF-8 text"));
}

#[test]
fn a_config_directory_is_read_as_one_desired_state() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("10-production.yaml"),
        "version: 1\naccounts:\n  - id: 023e105f4ecef8ad9ca31a8372d0c353\n    unmanaged: ignore\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("20-staging.yml"),
        "version: 1\naccounts:\n  - id: 9a7806061c88ada191ed06f989cc3dac\n    unmanaged: ignore\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), "not config").unwrap();
    cfgroups()
        .args(["validate", "-c"])
        .arg(dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "2 account(s), 0 declared group(s) in 2 file(s)",
        ));

    let empty = tempfile::tempdir().unwrap();
    cfgroups()
        .args(["validate", "-c"])
        .arg(empty.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no *.yaml or *.yml files"));
}

#[test]
fn exec_source_end_to_end_matches_the_snapshot_plan() {
    let lister = "exec:python3 -c \"import json,sys; d=json.load(open('examples/snapshot.json')); print(json.dumps(d['accounts'][sys.argv[1]]))\"";
    let via_exec = cfgroups()
        .args(["plan", "-c", EXAMPLE_CONFIG, "-o", "json", "-s", lister])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let via_exec: serde_json::Value = serde_json::from_slice(&via_exec).unwrap();
    let via_snapshot: serde_json::Value = serde_json::from_str(&plan_example("json")).unwrap();
    assert_eq!(via_exec["accounts"], via_snapshot["accounts"]);
}

#[test]
fn a_failing_exec_source_is_a_listing_failure_naming_the_command() {
    cfgroups()
        .args([
            "plan",
            "-c",
            EXAMPLE_CONFIG,
            "-s",
            "exec:sh -c 'echo denied >&2; exit 7'",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("listing failed"))
        .stdout(predicate::str::contains("denied"))
        .stdout(predicate::str::contains("0 to delete"));
}

#[test]
fn help_documents_exit_codes() {
    cfgroups()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes:"))
        .stdout(predicate::str::contains("a usage error"))
        .stdout(predicate::str::contains("never a usage error"));
}

/// 2 means drift (`plan --detailed-exitcode`) and nothing else: a typo in a flag, a missing
/// required flag or a bad value exits 1, so CI can tell a broken job from a plan with changes.
#[test]
fn usage_errors_exit_one_leaving_two_to_drift() {
    for args in [
        &["plan", "-c", EXAMPLE_CONFIG, "--detailed-exitcod"][..],
        &["plan", "--detailed-exitcode"][..],
        &["plan", "-c", EXAMPLE_CONFIG, "--output", "yaml"][..],
        &["apply", "-c", EXAMPLE_CONFIG, "--apply-concurrency", "0"][..],
        &["no-such-command"][..],
        &[][..],
    ] {
        let run = cfgroups().args(args).run();
        assert_eq!(run.code, Some(1), "cfgroups {args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("error:") || run.stderr.contains("Usage:"),
            "cfgroups {args:?}: {}",
            run.stderr
        );
    }
    for args in [&["--help"][..], &["plan", "--help"][..], &["--version"][..]] {
        let run = cfgroups().args(args).run();
        assert_eq!(run.code, Some(0), "cfgroups {args:?}: {}", run.stderr);
        assert!(!run.stdout.is_empty(), "cfgroups {args:?}");
    }
}

#[test]
fn plan_out_saves_exactly_the_planned_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan.json");
    cfgroups()
        .args([
            "plan",
            "-c",
            EXAMPLE_CONFIG,
            "-s",
            EXAMPLE_SNAPSHOT,
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let saved = cfgroups::saved_plan::SavedPlan::load(&out).unwrap();
    let ids: Vec<&str> = saved.deletions.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "c3d4e5f60718293a4b5c6d7e8f90a1b2",
            "4b5c6d7e8f90a1b2c3d4e5f60718293a"
        ]
    );
}

#[test]
fn log_lines_carry_no_colour_when_stderr_is_not_a_terminal() {
    let output = cfgroups()
        .env("RUST_LOG", "debug")
        .env_remove("NO_COLOR")
        .args(["plan", "-c", EXAMPLE_CONFIG, "-s", "exec:sh -c 'exit 3'"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ERROR"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

/// With no --state-dir, $STATE_DIRECTORY, $XDG_STATE_HOME or $HOME, the state directory
/// falls back to ./.cfgroups, and a warning names it: the journal there holds the only
/// backups of deleted groups.
#[test]
fn the_current_directory_fallback_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let out = cfgroups()
        .current_dir(dir.path())
        .env_remove("HOME")
        .arg("journal")
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("WARN") && stderr.contains(".cfgroups") && stderr.contains("backups"),
        "{stderr}"
    );
}

/// `0s` never means "off": each duration flag refuses values below its minimum, naming it,
/// before anything starts.
#[test]
fn nonsensical_durations_are_refused_with_the_minimum() {
    for (command, flag, value, minimum) in [
        ("run", "--interval", "0s", "at least 1s"),
        ("run", "--interval", "500ms", "at least 1s"),
        ("run", "--budget-window", "0s", "at least 1s"),
        ("run", "--debounce", "1ms", "at least 10ms"),
        ("run", "--request-timeout", "0s", "at least 1ms"),
        ("run", "--connect-timeout", "0s", "at least 1ms"),
        ("plan", "--exec-timeout", "0s", "at least 1ms"),
        ("apply", "--budget-window", "0s", "at least 1s"),
    ] {
        let run = cfgroups()
            .args([command, "-c", EXAMPLE_CONFIG, flag, value])
            .run();
        assert_ne!(run.code, Some(0), "{command} {flag} {value}");
        assert!(
            run.stderr.contains(minimum) && run.stderr.contains(flag),
            "{command} {flag} {value}: {}",
            run.stderr
        );
    }
}

/// A byte order mark, as some Windows editors write, is not a second document.
#[test]
fn a_config_starting_with_a_byte_order_mark_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("groups.yaml");
    std::fs::write(
        &config,
        "\u{feff}version: 1\naccounts:\n  - id: 023e105f4ecef8ad9ca31a8372d0c353\n    groups:\n      - {name: Engineering, state: present}\n",
    )
    .unwrap();
    cfgroups()
        .args(["validate", "-c"])
        .arg(&config)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "valid: 1 account(s), 1 declared group(s)",
        ));
}

/// An error is said once: a cause the message already shows (`Address already in use (os
/// error 98)`) is not repeated after it, and no prefix is doubled.
#[test]
fn errors_say_each_cause_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = cfgroups()
        .api("http://127.0.0.1:9/client/v4")
        .args(["run", "-c", EXAMPLE_CONFIG, "--listen"])
        .arg(taken.local_addr().unwrap().to_string())
        .arg("--state-dir")
        .arg(dir.path())
        .run();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("os error 98").count(),
        1,
        "{}",
        run.stderr
    );

    let run = cfgroups().args(["plan", "-c", EXAMPLE_CONFIG]).run();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("no Cloudflare credentials"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("Cloudflare credentials").count(),
        1,
        "{}",
        run.stderr
    );
}

/// `journal --output json` is versioned like the report: every line carries
/// `format_version`, so a line filtered out of the stream, or merged from several
/// replicas' journals, still says what it is.
#[test]
fn journal_json_lines_carry_their_format_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let intent = r#"{"type":"intent","at":"2026-01-01T00:00:00Z","run":"r1","account":"023e105f4ecef8ad9ca31a8372d0c353","group":{"id":"00000000000000000000000000000001","name":"G"},"members":[]}"#;
    let outcome = r#"{"type":"outcome","at":"2026-01-01T00:00:01Z","run":"r1","account":"023e105f4ecef8ad9ca31a8372d0c353","group_id":"00000000000000000000000000000001","outcome":"deleted"}"#;
    std::fs::write(&path, format!("{intent}\n{outcome}\n")).unwrap();
    let run = cfgroups()
        .args(["journal", "--output", "json", "--journal"])
        .arg(&path)
        .run();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    for line in &lines {
        assert_eq!(line["format_version"], 1, "{line}");
    }
    assert_eq!(lines[0]["type"], "intent");
    assert_eq!(lines[1]["outcome"], "deleted");
}

/// An API nobody answers is said as such, with host and port, at the first failed attempt
/// (a warning on stderr) rather than after the retries, and the report says it too.
#[test]
fn an_unreachable_api_is_said_at_once_with_its_host_and_port() {
    use std::io::BufRead;
    // A port just freed: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let mut child = cfgroups()
        .api(&format!("http://{endpoint}/client/v4"))
        .args(["plan", "-c", EXAMPLE_CONFIG])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said_after = None;
    let mut rest = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if said_after.is_none()
            && line.contains(&format!("cannot reach {endpoint}: connection refused"))
        {
            said_after = Some(started.elapsed());
        }
        rest.push(line);
    }
    let output = child.wait_with_output().unwrap();
    let said_after = said_after.unwrap_or_else(|| panic!("never said: {}", rest.join("\n")));
    // Said after the retries would be at least 7.75 s in: five backoffs of 0.5-8 s with
    // equal jitter. Half of that tells the two apart on a loaded machine.
    assert!(
        said_after < std::time::Duration::from_millis(3_875),
        "said only after {said_after:?}"
    );
    assert_eq!(output.status.code(), Some(1));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        report.contains(&format!("cannot reach {endpoint}: connection refused")),
        "{report}"
    );
    assert!(
        report.contains(&format!("hint: nothing accepts connections at {endpoint}")),
        "{report}"
    );
    assert!(
        report.contains("No account could be listed: nothing was planned or deleted."),
        "{report}"
    );
}
