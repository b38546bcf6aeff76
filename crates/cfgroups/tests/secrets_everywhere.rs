//! Safety rule 8 across every command that touches the API or its results: `apply`,
//! `journal`, `restore` and the daemon, at every log level. The token must appear in no
//! output, no journal, no report and no metric.

mod daemon_support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use cfgroups::fake_api::{FakeCloudflare, FakeState, Method, Route};
use daemon_support::{DaemonOptions, TOKEN};

const CONFIG: &str = "examples/groups.yaml";
/// "Contractors 2024" in examples/snapshot.json: declared absent, so `apply` deletes it.
const DELETED: &str = "c3d4e5f60718293a4b5c6d7e8f90a1b2";

fn manifest(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn cfgroups(base_url: &str, level: &str, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cfgroups"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("CLOUDFLARE_EMAIL")
        .env_remove("CLOUDFLARE_API_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("CLOUDFLARE_API_TOKEN", TOKEN)
        .env("CLOUDFLARE_BASE_URL", base_url)
        .env("RUST_LOG", level)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_at_any_log_level_lets_the_token_out() {
    for level in ["error", "warn", "info", "debug", "trace"] {
        let state = FakeState::load(&manifest("examples/snapshot.json")).unwrap();
        let fake = FakeCloudflare::builder()
            .token(TOKEN)
            .state(state)
            .start()
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let state_arg = state_dir.to_str().unwrap().to_owned();
        let base_url = fake.base_url();

        let outputs = tokio::task::spawn_blocking({
            let base_url = base_url.clone();
            move || {
                let apply = cfgroups(
                    &base_url,
                    level,
                    &["apply", "-c", CONFIG, "--yes", "--state-dir", &state_arg],
                );
                let journal = cfgroups(&base_url, level, &["journal", "--state-dir", &state_arg]);
                let journal_json = cfgroups(
                    &base_url,
                    level,
                    &["journal", "-o", "json", "--state-dir", &state_arg],
                );
                let restore = cfgroups(
                    &base_url,
                    level,
                    &["restore", "--group", DELETED, "--state-dir", &state_arg],
                );
                [apply, journal, journal_json, restore]
            }
        })
        .await
        .unwrap();
        assert!(
            text(&outputs[3]).contains("Restored group"),
            "{}",
            text(&outputs[3])
        );

        // The restored group is declared absent: the daemon deletes it again.
        // The test finds the daemon's address in its start line, logged at info.
        let filter = format!("{level},cfgroups::cli::run=info");
        let mut daemon = DaemonOptions::new(&manifest(CONFIG), &state_dir, &fake)
            .env("RUST_LOG", &filter)
            .start()
            .await;
        daemon.wait_ready().await;
        let metrics = daemon.metrics().await;
        // apply deleted two groups, the daemon the restored one: the API was really used.
        assert_eq!(
            fake.requests().count(Method::DELETE, Route::Delete),
            3,
            "at {level}"
        );
        daemon.signal(libc::SIGTERM);
        assert!(daemon.wait_exit(Duration::from_secs(20)).await.is_some());

        let mut everything: Vec<(String, String)> = outputs
            .iter()
            .zip(["apply", "journal", "journal json", "restore"])
            .map(|(output, what)| (what.to_owned(), text(output)))
            .collect();
        everything.push(("daemon log".into(), daemon.log.text()));
        everything.push(("metrics".into(), metrics));
        for file in ["journal.jsonl", "last-report.json"] {
            everything.push((
                file.into(),
                std::fs::read_to_string(state_dir.join(file)).unwrap(),
            ));
        }
        for (what, text) in &everything {
            assert!(
                !text.contains(TOKEN),
                "the token appears in the {what} at {level}"
            );
        }
        fake.shutdown().await;
    }
}
