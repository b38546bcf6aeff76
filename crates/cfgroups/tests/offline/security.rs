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
        // The whole mode, as chmod writes it: not the group/other bits alone ("044").
        .stderr(predicate::str::contains("mode=\"0644\""))
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
    assert!(stderr.contains("mode=\"0755\""), "{stderr}");
    fake.shutdown().await;
}

/// A base URL with a password in it, or a token pasted where the URL goes: refused, and the
/// secret printed nowhere, not even by `--help`.
#[test]
fn a_refused_base_url_is_never_echoed_whole() {
    let password = "hunter2-s3cr3t-pass";
    let pasted = "v1.0-0123456789abcdef0123456789abcdef-pasted";
    for (base_url, shown) in [
        (
            format!("https://deploy:{password}@api.cloudflare.com/client/v4"),
            "\"https://api.cloudflare.com\": user info is not allowed".to_owned(),
        ),
        (
            pasted.to_owned(),
            format!("\"<not shown: {} characters>\"", pasted.len()),
        ),
    ] {
        let run = cfgroups()
            .env("CLOUDFLARE_API_TOKEN", "TOKEN-FOR-BASE-URL-TEST")
            .env("CLOUDFLARE_BASE_URL", &base_url)
            .env("RUST_LOG", "trace")
            .args(["plan", "-c", EXAMPLE_CONFIG])
            .run();
        run.assert_code(1);
        let printed = format!("{}\n{}", run.stdout, run.stderr);
        assert!(printed.contains(&shown), "{printed}");
        for secret in [password, pasted, "deploy"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }

        let help = cfgroups()
            .env("CLOUDFLARE_BASE_URL", &base_url)
            .args(["plan", "--help"])
            .run();
        help.assert_code(0);
        assert!(
            help.stdout.contains("CLOUDFLARE_BASE_URL"),
            "{}",
            help.stdout
        );
        assert!(!help.stdout.contains(&base_url), "{}", help.stdout);
    }
}
