//! Safety rule 8 across every command that touches the API or its results: `apply`,
//! `journal`, `restore` and the daemon, at every log level. The token must appear in no
//! output, no journal, no report and no metric.

use std::process::Output;
use std::time::Duration;

use cfgroups_fake::{Method, Route};
use testkit::daemon::DaemonOptions;
use testkit::{
    CommandExt, EXAMPLE_CONFIG as CONFIG, Signal, TOKEN, example_state, repo_root, start_fake,
};

/// "Contractors 2024" in examples/snapshot.json: declared absent, so `apply` deletes it.
const DELETED: &str = "c3d4e5f60718293a4b5c6d7e8f90a1b2";

/// `cfgroups args` against `base_url`, logging at `level`.
fn cfgroups(base_url: &str, level: &str, args: &[&str]) -> Output {
    testkit::cfgroups()
        .api(base_url)
        .env("RUST_LOG", level)
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
        let fake = start_fake(example_state()).await;
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
        let mut daemon = DaemonOptions::new(&repo_root().join(CONFIG), &state_dir, &fake)
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
        daemon.signal(Signal::SIGTERM);
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
