//! The security pass: private files are checked, and plain http is refused beyond loopback.

use std::os::unix::fs::PermissionsExt;

use assert_cmd::Command;
use predicates::prelude::*;

fn cfgroups() -> Command {
    let mut cmd = Command::cargo_bin("cfgroups").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env_remove("CLOUDFLARE_API_TOKEN")
        .env_remove("CLOUDFLARE_EMAIL")
        .env_remove("CLOUDFLARE_API_KEY")
        .env_remove("CLOUDFLARE_BASE_URL")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("NO_COLOR", "1");
    cmd
}

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
            "examples/groups.yaml",
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
            "examples/groups.yaml",
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
    let state = cfgroups::fake_api::FakeState::load(std::path::Path::new("examples/snapshot.json"))
        .unwrap();
    let fake = cfgroups::fake_api::FakeCloudflare::builder()
        .token("state-dir-token")
        .state(state)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("state");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let base_url = fake.base_url();
    let output = tokio::task::spawn_blocking(move || {
        cfgroups()
            .env("CLOUDFLARE_BASE_URL", base_url)
            .env("CLOUDFLARE_API_TOKEN", "state-dir-token")
            .args([
                "apply",
                "-c",
                "examples/groups.yaml",
                "--yes",
                "--state-dir",
            ])
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
