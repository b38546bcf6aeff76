//! The security pass: private files are checked, and plain http is refused beyond loopback.

use std::os::unix::fs::PermissionsExt;

use assert_cmd::prelude::*;
use predicates::prelude::*;
use testkit::{CommandExt, EXAMPLE_CONFIG, cfgroups, example_state, start_fake};

#[test]
fn a_token_file_readable_by_others_is_warned_about_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "PERMISSIVE-TOKEN-5e6f\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A non-loopback http base URL is refused before any request is sent.
    let assert = cfgroups()
        .args([
            "plan",
            "-c",
            EXAMPLE_CONFIG,
            "--api-base-url",
            "http://api.example.com/client/v4",
            "--api-token-file",
        ])
        .arg(&token)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "the API token file is accessible to other users",
        ))
        .stderr(predicate::str::contains("loopback"));
    let output = assert.get_output();
    for stream in [&output.stdout, &output.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains("PERMISSIVE-TOKEN-5e6f"));
    }

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    cfgroups()
        .args([
            "plan",
            "-c",
            EXAMPLE_CONFIG,
            "--api-base-url",
            "http://api.example.com/client/v4",
            "--api-token-file",
        ])
        .arg(&token)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("accessible to other users").not());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_state_directory_is_warned_about() {
    let fake = start_fake(example_state()).await;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("state");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let base_url = fake.base_url();
    let output = tokio::task::spawn_blocking(move || {
        cfgroups()
            .api(&base_url)
            .args(["apply", "-c", EXAMPLE_CONFIG, "--yes", "--state-dir"])
            .arg(&shared)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the state directory (journal backups) is accessible to other users"),
        "{stderr}"
    );
    fake.shutdown().await;
}
