//! What editors and shells get: the committed JSON Schema and its agreement with the code,
//! the examples and the bad-input corpus; completions and man pages; `--color`; closed pipes;
//! and an example in every command's help.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use assert_cmd::prelude::*;
use clap::CommandFactory;
use predicates::prelude::*;
use testkit::{cfgroups, repo_root as root};

const SCHEMA_FILE: &str = "cfgroups.schema.json";
const MODELINE_PREFIX: &str = "# yaml-language-server: $schema=";

fn stdout_of(args: &[&str]) -> String {
    let out = cfgroups()
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

fn committed_schema() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join(SCHEMA_FILE)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft7::new(&committed_schema()).expect("the schema compiles as draft-07")
}

/// Every error the schema finds in `instance`, one per line.
fn schema_errors(validator: &jsonschema::Validator, instance: &serde_json::Value) -> String {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------
// The schema

#[test]
fn the_committed_schema_matches_the_code() {
    let printed = stdout_of(&["schema"]);
    let committed = std::fs::read_to_string(root().join(SCHEMA_FILE)).unwrap();
    assert!(
        printed == committed,
        "{SCHEMA_FILE} is out of date with src/config/schema.rs; regenerate it with\n\n    \
         cargo run -q -- schema > {SCHEMA_FILE}\n\nand commit the result."
    );
}

#[test]
fn the_schema_is_draft_07_with_documented_fields_and_id_patterns() {
    let schema = committed_schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert!(
        jsonschema::meta::is_valid(&schema),
        "not a valid JSON Schema"
    );
    let definitions = &schema["definitions"];
    for id in ["AccountId", "GroupId"] {
        assert_eq!(definitions[id]["pattern"], "^[0-9a-f]{32}$", "{id}");
    }
    // The field docs of src/config/schema.rs are the descriptions editors show.
    assert!(
        schema["properties"]["defaults"]["description"]
            .as_str()
            .unwrap()
            .contains("inherited by every account")
    );
    assert!(
        definitions["Account"]["properties"]["protect"]["description"]
            .as_str()
            .unwrap()
            .contains("never deleted")
    );
    // Every property of every object says what it is for.
    let mut objects = vec![&schema];
    objects.extend(definitions.as_object().unwrap().values());
    for object in objects {
        if let Some(properties) = object["properties"].as_object() {
            for (name, property) in properties {
                assert!(
                    property["description"]
                        .as_str()
                        .is_some_and(|d| d.len() > 10),
                    "property {name} has no description"
                );
            }
        }
    }
}

/// The relative path from `file`'s directory to the schema at the repository root.
fn schema_path_from(file: &Path) -> String {
    let relative = file.strip_prefix(root()).unwrap();
    let depth = relative.components().count() - 1;
    format!("{}{SCHEMA_FILE}", "../".repeat(depth))
}

fn yaml_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            found.push(path);
        }
    }
    found.sort();
}

/// Every YAML document of a file, as JSON values.
fn documents(text: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| serde_json::Value::deserialize(doc).unwrap())
        .collect()
}

fn is_desired_state(doc: &serde_json::Value) -> bool {
    doc.get("version").is_some() && doc.get("accounts").is_some()
}

/// Desired states embedded in Kubernetes ConfigMaps: every `data` value that is one.
fn embedded_desired_states(doc: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    if doc["kind"] != "ConfigMap" {
        return Vec::new();
    }
    doc["data"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| {
            let parsed: serde_json::Value = serde_yaml::from_str(value.as_str()?).ok()?;
            is_desired_state(&parsed).then(|| (key.clone(), parsed))
        })
        .collect()
}

#[test]
fn every_example_desired_state_names_the_schema_and_validates_against_it() {
    let validator = validator();
    let mut files = Vec::new();
    yaml_files(&root().join("examples"), &mut files);
    let mut checked = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let docs = documents(&text);
        let shown = file.strip_prefix(root()).unwrap().display().to_string();
        if docs.iter().any(is_desired_state) {
            let modeline = format!("{MODELINE_PREFIX}{}", schema_path_from(file));
            assert_eq!(
                text.lines().next(),
                Some(modeline.as_str()),
                "{shown} must start with its schema modeline"
            );
            assert!(
                file.parent()
                    .unwrap()
                    .join(schema_path_from(file))
                    .is_file(),
                "{shown}: the modeline's path does not reach {SCHEMA_FILE}"
            );
            for doc in &docs {
                let errors = schema_errors(&validator, doc);
                assert!(errors.is_empty(), "{shown}:\n{errors}");
            }
            checked.push(shown);
        } else {
            assert!(
                !text.contains(SCHEMA_FILE),
                "{shown} is not a desired state but names its schema"
            );
            for doc in &docs {
                for (key, embedded) in embedded_desired_states(doc) {
                    let errors = schema_errors(&validator, &embedded);
                    assert!(errors.is_empty(), "{shown} data.{key}:\n{errors}");
                    checked.push(format!("{shown} data.{key}"));
                }
            }
        }
    }
    assert!(
        checked.iter().any(|c| c == "examples/groups.yaml"),
        "checked only {checked:?}"
    );
    assert!(checked.len() >= 3, "checked only {checked:?}");
}

/// Broken configs whose fault is a matter of shape, which the schema states.
const SCHEMA_REJECTS: &[&str] = &[
    "empty.yaml",                    // not an object
    "empty-name.yaml",               // name: pattern \S
    "group-without-name-or-id.yaml", // anyOf required name / id
    "missing-accounts.yaml",         // required
    "missing-state.yaml",            // required
    "negative-max-deletes.yaml",     // minimum 0
    "no-accounts.yaml",              // minItems 1
    "path-characters-in-id.yaml",    // id pattern
    "short-account-id.yaml",         // id pattern
    "unknown-group-key.yaml",        // additionalProperties false
    "unknown-state.yaml",            // enum
    "unknown-top-level-key.yaml",    // additionalProperties false
    "unknown-unmanaged-policy.yaml", // enum
    "unsupported-version.yaml",      // const 1
    "uppercase-group-id.yaml",       // id pattern
    "wrong-type-max-deletes.yaml",   // type integer
];

/// Broken configs a JSON Schema cannot see: only `cfgroups validate` finds these.
const ONLY_VALIDATE_REJECTS: &[&str] = &[
    "account-in-two-files",           // spans files
    "account-twice-in-one-file.yaml", // uniqueness of a field across items
    "bad-protect-glob.yaml",          // glob syntax
    "duplicate-id.yaml",              // uniqueness of a field across items
    "duplicate-name.yaml",            // uniqueness of a field across items
    "duplicate-yaml-key.yaml",        // YAML, not the data model
    "invalid-yaml.yaml",              // not YAML at all
    "protected-and-absent.yaml",      // a rule across fields
    "protected-by-default-glob.yaml", // a rule across fields and globs
    "all-digit-account-id.yaml",      // a number beyond 64 bits: no JSON value to check
    "all-digit-group-id.yaml",        // a number beyond 64 bits: no JSON value to check
    "broken-symlink-in-directory",    // the file system, not a document
    "directory-named-yml",            // the file system, not a document
    "symlink-loop-in-directory",      // the file system, not a document
    "wrong-case-extension",           // the file system, not a document
];

#[test]
fn the_schema_rejects_every_broken_config_a_schema_can_express() {
    let validator = validator();
    let mut fixtures: Vec<String> = std::fs::read_dir(crate::cli::bad_corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fixtures.sort();
    for fixture in &fixtures {
        assert!(
            SCHEMA_REJECTS.contains(&fixture.as_str())
                != ONLY_VALIDATE_REJECTS.contains(&fixture.as_str()),
            "list tests/fixtures/bad/{fixture} in exactly one of SCHEMA_REJECTS and ONLY_VALIDATE_REJECTS"
        );
    }
    for fixture in SCHEMA_REJECTS {
        let text = std::fs::read_to_string(crate::cli::bad_corpus().join(fixture))
            .unwrap_or_else(|e| panic!("{fixture}: {e}"));
        let doc: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        assert!(
            !validator.is_valid(&doc),
            "the schema accepts tests/fixtures/bad/{fixture}"
        );
    }
}

#[test]
fn the_schema_accepts_what_validate_accepts() {
    let validator = validator();
    let doc: serde_json::Value = serde_yaml::from_str(
        "version: 1
defaults: {unmanaged: delete, max_deletes: 0, protect: [\"SCIM-*\"]}
accounts:
  - id: 023e105f4ecef8ad9ca31a8372d0c353
    label: ~
    groups:
      - {name: A, state: present}
      - {id: 3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a, state: absent}
      - {id: 4f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a, name: \" B \", state: absent}
  - id: 9a7806061c88ada191ed06f989cc3dac
",
    )
    .unwrap();
    let errors = schema_errors(&validator, &doc);
    assert!(errors.is_empty(), "{errors}");
}

// ---------------------------------------------------------------------------------------
// Shells and man pages

fn subcommand_names() -> Vec<String> {
    cfgroups::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_owned())
        .collect()
}

#[test]
fn completions_cover_every_command_in_every_shell() {
    let names = subcommand_names();
    assert!(names.iter().any(|n| n == "export"), "{names:?}");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.len() > 1000, "{shell}: {script}");
        for name in &names {
            assert!(script.contains(name.as_str()), "{shell} lacks {name}");
        }
        // Flags are completed too.
        assert!(script.contains("detailed-exitcode"), "{shell}");
    }
    cfgroups()
        .args(["completions", "tcsh"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("possible values"));
}

#[test]
fn man_pages_name_every_command() {
    let page = stdout_of(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH cfgroups 1"),
        "{page}"
    );
    assert!(page.contains(".TH cfgroups 1"), "{page}");
    for name in subcommand_names() {
        // roff escapes `-` as `\-`.
        assert!(
            page.contains(&format!("cfgroups\\-{name}(1)")),
            "man lacks {name}"
        );
    }
    let plan = stdout_of(&["man", "plan"]);
    assert!(plan.contains(".TH cfgroups-plan 1"), "{plan}");
    assert!(plan.contains("\\-\\-detailed\\-exitcode"), "{plan}");
    // What clap cannot derive: exit codes, the environment read, the files kept.
    for page in [&page, &plan] {
        for section in [
            ".SH \"EXIT STATUS\"",
            ".SH \"ENVIRONMENT\"",
            ".SH \"FILES\"",
        ] {
            assert!(page.contains(section), "no {section} in\n{page}");
        }
        assert!(page.contains("CLOUDFLARE_API_TOKEN"), "{page}");
        assert!(page.contains("journal.jsonl"), "{page}");
        assert!(page.contains("Never a usage error"), "{page}");
    }
    cfgroups()
        .args(["man", "frobnicate"])
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("no command \"frobnicate\""));
}

#[test]
fn every_command_help_has_an_example() {
    let mut command = cfgroups::cli::Cli::command();
    command.build();
    // `help` is clap's own.
    for sub in command.get_subcommands().filter(|c| c.get_name() != "help") {
        let help = sub.clone().render_long_help().to_string();
        assert!(
            help.contains("Example:") || help.contains("Examples:"),
            "`cfgroups {} --help` has no example:\n{help}",
            sub.get_name()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Colour and pipes

const PLAN: &[&str] = &[
    "plan",
    "-c",
    "examples/groups.yaml",
    "-s",
    "snapshot:examples/snapshot.json",
];

fn plan_with(color: Option<&str>, env: &[(&str, &str)], remove_no_color: bool) -> String {
    let mut cmd = cfgroups();
    cmd.args(PLAN);
    if let Some(color) = color {
        cmd.args(["--color", color]);
    }
    if remove_no_color {
        cmd.env_remove("NO_COLOR");
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn color_flag_decides_and_no_color_is_respected() {
    const ESC: &str = "\u{1b}[";
    // `always` colours even into a pipe and despite NO_COLOR: the flag is explicit.
    let always = plan_with(Some("always"), &[], false);
    assert!(always.contains(ESC), "{always}");
    let plain = plan_with(Some("never"), &[], false);
    assert!(!plain.contains(ESC));
    // Colour is decoration only: stripping it gives the plain report.
    let stripped: String = always
        .split(ESC)
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part
            } else {
                part.split_once('m').map_or(part, |(_, rest)| rest)
            }
        })
        .collect();
    assert_eq!(stripped, plain);
    // `never` wins over a forced terminal colour.
    assert!(!plan_with(Some("never"), &[("CLICOLOR_FORCE", "1")], true).contains(ESC));
    // `auto` (the default): a pipe gets none, NO_COLOR gets none, CLICOLOR_FORCE forces it.
    assert!(!plan_with(None, &[], true).contains(ESC));
    assert!(!plan_with(Some("auto"), &[], false).contains(ESC));
    assert!(plan_with(Some("auto"), &[("CLICOLOR_FORCE", "1")], true).contains(ESC));
    cfgroups()
        .args(PLAN)
        .args(["--color", "sometimes"])
        .assert()
        .code(1);
}

fn big_snapshot(dir: &Path) -> PathBuf {
    let groups: Vec<serde_json::Value> = (0..4000)
        .map(|i| serde_json::json!({"id": format!("{i:032x}"), "name": format!("Group {i:05}")}))
        .collect();
    let snapshot = serde_json::json!({"format_version": 1, "accounts": {
        "023e105f4ecef8ad9ca31a8372d0c353": {"groups": groups}}});
    let path = dir.join("big.json");
    std::fs::write(&path, snapshot.to_string()).unwrap();
    path
}

/// Runs cfgroups with `args`, reads `lines` lines of its stdout (0: none), closes the pipe,
/// and returns the exit code and stderr.
fn with_closed_stdout(args: &[&str], lines: usize) -> (Option<i32>, String) {
    let mut child = cfgroups()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::with_capacity(16, child.stdout.take().unwrap());
    for _ in 0..lines {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "the output ended early");
    }
    // Closes the pipe under the writer.
    drop(reader);
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = format!("snapshot:{}", big_snapshot(dir.path()).display());
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        "version: 1\naccounts:\n  - id: 023e105f4ecef8ad9ca31a8372d0c353\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let cases: [(&[&str], usize); 5] = [
        // `cfgroups plan ... | head -1`: 4000 unmanaged groups are far more than a pipe holds.
        (&["plan", "-c", &config, "-s", &snapshot], 1),
        (
            &[
                "export",
                "--account",
                "023e105f4ecef8ad9ca31a8372d0c353",
                "-s",
                &snapshot,
            ],
            1,
        ),
        (&["plan", "-c", &config, "-s", &snapshot, "-o", "json"], 0),
        (&["completions", "zsh"], 0),
        (&["man"], 1),
    ];
    for (args, lines) in cases {
        let (code, stderr) = with_closed_stdout(args, lines);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.to_lowercase().contains("broken pipe") && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}
