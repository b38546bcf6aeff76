//! An `exec:` listing command is a stranger to the credentials: it inherits none of them,
//! and whatever secret it prints anyway (read from a file, say) appears in no report format
//! and no log line, at any log level.

use std::path::Path;

use testkit::{CommandExt, EXAMPLE_CONFIG, TOKEN, cfgroups};

/// The global key, set beside the token as a careless environment would.
const KEY: &str = "GLOBAL-KEY-9d8c7b6a5f4e3d2c1b0a";

/// A lister that prints the Cloudflare variables it got and the token file to stderr and
/// fails, so that its stderr lands in the report.
fn hostile_lister(dir: &Path, token_file: &Path) -> String {
    let script = dir.join("list.sh");
    let text = format!(
        "env | grep -e '^CLOUDFLARE_' -e '^CF_API_' >&2\n\
         echo \"cloudflare variables: $(env | grep -c -e '^CLOUDFLARE_' -e '^CF_API_')\" >&2\n\
         echo \"leaking: $(cat '{}')\" >&2\n\
         exit 1\n",
        token_file.display()
    );
    std::fs::write(&script, text).unwrap();
    format!("exec:sh {}", script.display())
}

#[test]
fn an_exec_lister_gets_no_credentials_and_no_report_or_log_shows_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let source = hostile_lister(dir.path(), &token_file);
    for format in ["text", "json", "markdown"] {
        for level in ["info", "trace"] {
            let run = cfgroups()
                .env("CLOUDFLARE_API_TOKEN", TOKEN)
                .env("CLOUDFLARE_EMAIL", "ops@example.com")
                .env("CLOUDFLARE_API_KEY", KEY)
                .env("RUST_LOG", level)
                .args(["plan", "-c", EXAMPLE_CONFIG, "-s", &source, "-o", format])
                .run();
            run.assert_code(1);
            let shown = format!("{}\n{}", run.stdout, run.stderr);
            let context = format!("{format} at {level}:\n{shown}");
            assert!(!shown.contains(TOKEN), "{context}");
            assert!(!shown.contains(KEY), "{context}");
            assert!(!shown.contains("ops@example.com"), "{context}");
            // The lister ran and got no credential variable; its stderr reached the report,
            // scrubbed (Markdown escapes the brackets of `[REDACTED]`).
            assert!(shown.contains("cloudflare variables: 0"), "{context}");
            assert!(shown.contains("leaking: "), "{context}");
            assert!(shown.contains("REDACTED"), "{context}");
        }
    }
}

#[test]
fn a_token_file_is_scrubbed_from_what_an_exec_lister_prints() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "FILE-TOKEN-0f1e2d3c4b5a69788796\n").unwrap();
    let source = hostile_lister(dir.path(), &token_file);
    let run = cfgroups()
        .args(["plan", "-c", EXAMPLE_CONFIG, "-s", &source, "-o", "json"])
        .arg("--api-token-file")
        .arg(&token_file)
        .run();
    run.assert_code(1);
    let shown = format!("{}\n{}", run.stdout, run.stderr);
    assert!(
        !shown.contains("FILE-TOKEN-0f1e2d3c4b5a69788796"),
        "{shown}"
    );
    assert!(shown.contains("leaking: [REDACTED]"), "{shown}");
}

#[test]
fn exec_pass_credentials_hands_them_over() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("list.sh");
    std::fs::write(
        &script,
        "[ -n \"$CLOUDFLARE_API_TOKEN\" ] || exit 3\nprintf '{\"groups\":[]}'\n",
    )
    .unwrap();
    let source = format!("exec:sh {}", script.display());
    let plan = |pass: bool| {
        let mut command = cfgroups();
        command.env("CLOUDFLARE_API_TOKEN", TOKEN).args([
            "plan",
            "-c",
            EXAMPLE_CONFIG,
            "-s",
            &source,
            "-o",
            "json",
        ]);
        if pass {
            command.arg("--exec-pass-credentials");
        }
        command.run()
    };
    let withheld = plan(false);
    withheld.assert_code(1);
    assert!(
        withheld.stdout.contains("exited with exit status: 3"),
        "{}",
        withheld.stdout
    );
    let passed = plan(true);
    assert!(
        passed.stdout.contains("\"listing_failed\": 0"),
        "{}",
        passed.stdout
    );
}
