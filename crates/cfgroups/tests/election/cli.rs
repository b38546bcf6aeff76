//! `run --leader-election` refuses, at start and with a message that says what to fix,
//! settings that cannot work: etcd without endpoints, timing that could let two writers
//! overlap, an identity the lock cannot record, no Kubernetes API to find. The environment
//! fallbacks are the flags' own.

use testkit::{AccountConfig, CommandExt, account, cfgroups, start_fake, write_config};

/// Runs `cfgroups run` with `args` after the config, against a fake that is never reached;
/// its exit code and stderr.
async fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let fake = start_fake(cfgroups_fake::FakeState::new()).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), &[AccountConfig::new(account(1))]);
    let output = cfgroups()
        .against(&fake)
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path())
        .args(args)
        .envs(env.iter().copied())
        .env("HOME", dir.path())
        .run();
    (output.code, output.stderr)
}

#[tokio::test]
async fn etcd_without_endpoints_is_refused_by_flag_and_by_environment() {
    let (code, stderr) = run(&["--leader-election", "etcd", "--identity", "a"], &[]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--etcd-endpoints"), "{stderr}");
    let (code, stderr) = run(
        &["--identity", "a"],
        &[("CFGROUPS_LEADER_ELECTION", "etcd")],
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--etcd-endpoints"), "{stderr}");
}

#[tokio::test]
async fn timing_that_could_let_two_writers_overlap_is_refused() {
    let etcd = [
        "--leader-election",
        "etcd",
        "--etcd-endpoints",
        "http://127.0.0.1:9",
        "--identity",
        "a",
    ];
    let (code, stderr) = run(
        &[
            &etcd[..],
            &["--lease-duration", "10s", "--renew-deadline", "10s"],
        ]
        .concat(),
        &[],
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("longer than the renew deadline"),
        "{stderr}"
    );
    let (code, stderr) = run(&etcd, &[("CFGROUPS_RETRY_PERIOD", "9s")]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("retry"), "{stderr}");
}

#[tokio::test]
async fn an_identity_the_lock_cannot_record_is_refused() {
    let (code, stderr) = run(
        &[
            "--leader-election",
            "etcd",
            "--etcd-endpoints",
            "http://127.0.0.1:9",
        ],
        &[("POD_NAME", "two words")],
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("identity"), "{stderr}");
}

#[tokio::test]
async fn kubernetes_without_an_api_server_to_find_says_so() {
    let (code, stderr) = run(
        &["--leader-election", "kubernetes", "--identity", "a"],
        &[("KUBECONFIG", "/nonexistent/kubeconfig")],
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("Kubernetes API server"), "{stderr}");
}

#[tokio::test]
async fn credentials_in_an_etcd_url_are_refused() {
    let (code, stderr) = run(
        &[
            "--leader-election",
            "etcd",
            "--etcd-endpoints",
            "http://user:secret@127.0.0.1:2379",
            "--identity",
            "a",
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("credentials do not go in the URL"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("secret"),
        "the password was echoed: {stderr}"
    );
}
