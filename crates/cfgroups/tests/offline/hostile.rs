//! Hostile inputs: each is refused with a clear error, without a panic, a hang or a memory
//! blow-up, and none ever reaches a plan.

use std::io::Write;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use testkit::cfgroups;

fn validate(config: &Path) -> assert_cmd::assert::Assert {
    Command::from_std(cfgroups())
        .args(["validate", "--config"])
        .arg(config)
        .timeout(std::time::Duration::from_secs(60))
        .assert()
}

const HEADER: &str = "version: 1\naccounts:\n  - id: 023e105f4ecef8ad9ca31a8372d0c353\n";

#[test]
fn a_100_mb_config_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(HEADER.as_bytes()).unwrap();
    let line = format!("# {}\n", "x".repeat(1021));
    for _ in 0..(100 * 1024) {
        file.write_all(line.as_bytes()).unwrap();
    }
    drop(file);
    validate(&path)
        .code(1)
        .stderr(predicate::str::contains("may be at most 33554432 bytes"));
}

#[test]
fn deeply_nested_yaml_is_an_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        (
            "flow.yaml",
            format!(
                "{HEADER}    label: {}{}\n",
                "[".repeat(100_000),
                "]".repeat(100_000)
            ),
        ),
        (
            "block.yaml",
            format!(
                "{HEADER}    label:\n{}",
                (0..5_000)
                    .map(|depth| format!("{}- \n", "  ".repeat(depth + 3)))
                    .collect::<String>()
            ),
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        validate(&path)
            .code(1)
            .stderr(predicate::str::contains(name));
    }
}

#[test]
fn exponential_aliases_are_refused() {
    let mut text =
        String::from("version: 1\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        let prev = i - 1;
        text.push_str(&format!(
            "x{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
        ));
    }
    text.push_str("accounts:\n  - id: 023e105f4ecef8ad9ca31a8372d0c353\n    label: *a11\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("laughs.yaml");
    std::fs::write(&path, text).unwrap();
    validate(&path)
        .code(1)
        .stderr(predicate::str::contains("laughs.yaml"));
}

#[test]
fn a_symlink_loop_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yaml");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    validate(&a)
        .code(1)
        .stderr(predicate::str::contains("a.yaml: cannot read"));
    // In a config directory, the looping entries are not regular files: nothing to read.
    validate(dir.path())
        .code(1)
        .stderr(predicate::str::contains("no *.yaml or *.yml files"));
}

#[test]
fn binary_garbage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.yaml");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&path, bytes).unwrap();
    validate(&path)
        .code(1)
        .stderr(predicate::str::contains("garbage.yaml"));
}
