//! Safety rule 8, end to end: a credential never appears in anything the binary prints,
//! whatever the command, the report format, the log format, or how the run fails, even
//! with every log target at `trace` (where HTTP libraries log requests and connections).
//!
//! No default log filter (such as `hyper=info`) is needed for this: at `trace`, reqwest and
//! hyper-util log connections and pool events but never header values; hyper itself logs
//! nothing unless built with its unstable `tracing` feature; and the client marks its
//! credential headers sensitive, so even a `Debug` of a header map shows `Sensitive`. This
//! test is the guard should any of that change with a dependency upgrade.

use std::net::TcpListener;
use std::process::Output;

use cfgroups_fake::FakeCloudflare;
use testkit::{EXAMPLE_CONFIG as CONFIG, Fake, TOKEN, cfgroups, example_state};

const EMAIL: &str = "admin@example.com";
/// Global API keys are alphanumeric (the fake checks the shape).
const API_KEY: &str = "SECRETKEY9f8e7d6c5b4a";

/// How the binary authenticates in one run.
#[derive(Clone, Copy, Debug)]
enum Auth {
    Token,
    GlobalKey,
}

impl Auth {
    fn secret(self) -> &'static str {
        match self {
            Self::Token => TOKEN,
            Self::GlobalKey => API_KEY,
        }
    }
}

/// One run of the binary: what it was, and everything it printed.
struct Run {
    what: String,
    output: Output,
}

/// Runs `args` against `base_url` with `auth` in the environment, `RUST_LOG=trace` and
/// `--log-format log_format`.
fn run(base_url: &str, auth: Auth, log_format: &str, args: &[&str]) -> Run {
    let mut cmd = cfgroups();
    cmd.env("RUST_LOG", "trace")
        .env("CLOUDFLARE_BASE_URL", base_url)
        .args(["--log-format", log_format])
        .args(args);
    match auth {
        Auth::Token => cmd.env("CLOUDFLARE_API_TOKEN", TOKEN),
        Auth::GlobalKey => cmd
            .env("CLOUDFLARE_EMAIL", EMAIL)
            .env("CLOUDFLARE_API_KEY", API_KEY),
    };
    let output = cmd.output().unwrap();
    Run {
        what: format!("{auth:?} --log-format {log_format} {}", args.join(" ")),
        output,
    }
}

/// A base URL where nothing listens: a port that was free a moment ago.
fn unreachable_base_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/client/v4")
}

fn assert_no_secret(runs: &[Run], secret: &str) {
    for run in runs {
        let stdout = String::from_utf8_lossy(&run.output.stdout);
        let stderr = String::from_utf8_lossy(&run.output.stderr);
        for (stream, text) in [("stdout", &stdout), ("stderr", &stderr)] {
            if let Some(at) = text.find(secret) {
                let start = text[..at]
                    .char_indices()
                    .rev()
                    .nth(300)
                    .map_or(0, |(i, _)| i);
                panic!(
                    "the secret appears in the {stream} of `{}`, after: {}",
                    run.what,
                    &text[start..at]
                );
            }
        }
    }
}

fn plan(format: &'static str) -> Vec<&'static str> {
    vec!["plan", "-c", CONFIG, "-s", "cloudflare", "-o", format]
}

/// Every command of `cases` against its base URL, with both log formats, all at once (the
/// failing runs spend most of their time in retry backoff).
fn run_all(cases: &[(String, Auth, Vec<&'static str>, Option<i32>)]) -> Vec<Run> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .flat_map(|(base_url, auth, args, code)| {
                ["pretty", "json"].map(|format| {
                    scope.spawn(move || {
                        let run = run(base_url, *auth, format, args);
                        assert_eq!(
                            run.output.status.code(),
                            *code,
                            "`{}`: {}",
                            run.what,
                            String::from_utf8_lossy(&run.output.stderr)
                        );
                        run
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Everything every run printed, stdout and stderr.
fn printed(runs: &[Run]) -> String {
    runs.iter()
        .flat_map(|run| [&run.output.stdout, &run.output.stderr])
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .collect()
}

#[test]
fn no_token_appears_in_any_output_even_at_trace_level() {
    let good = Fake::start(example_state());
    // A fake that knows another token: ours gets HTTP 403.
    let refusing = Fake::start_with(
        FakeCloudflare::builder()
            .token("some-other-token")
            .state(example_state()),
    );
    let good_url = good.base_url();
    let refusing_url = refusing.base_url();
    let unreachable = unreachable_base_url();
    let ok = Some(0);
    let failed = Some(1);
    let cases = vec![
        (good_url.clone(), Auth::Token, plan("text"), ok),
        (good_url.clone(), Auth::Token, plan("json"), ok),
        (good_url.clone(), Auth::Token, plan("markdown"), ok),
        (
            good_url.clone(),
            Auth::Token,
            vec!["validate", "-c", CONFIG],
            ok,
        ),
        (refusing_url, Auth::Token, plan("json"), failed),
        (unreachable, Auth::Token, plan("text"), failed),
    ];
    let runs = run_all(&cases);
    assert_no_secret(&runs, TOKEN);

    // The runs did log at trace level, did reach the fake, and did fail as intended.
    let printed = printed(&runs);
    assert!(
        printed.contains("TRACE"),
        "nothing was logged at trace level"
    );
    assert!(printed.contains(r#""level":"TRACE""#), "no JSON trace logs");
    assert!(
        printed.contains("HTTP 403"),
        "the bad token was not refused"
    );
    assert!(
        printed.contains("connection failed"),
        "the unreachable URL was reached"
    );
    assert!(good.requests().total() >= 6);
}

#[test]
fn no_global_api_key_appears_in_any_output_even_at_trace_level() {
    let good = Fake::start_with(
        FakeCloudflare::builder()
            .api_key(EMAIL, API_KEY)
            .state(example_state()),
    );
    let refusing = Fake::start_with(
        FakeCloudflare::builder()
            .api_key(EMAIL, "some-other-key")
            .state(example_state()),
    );
    let cases = vec![
        (good.base_url(), Auth::GlobalKey, plan("json"), Some(0)),
        (good.base_url(), Auth::GlobalKey, plan("markdown"), Some(0)),
        (refusing.base_url(), Auth::GlobalKey, plan("text"), Some(1)),
    ];
    let runs = run_all(&cases);
    assert_no_secret(&runs, Auth::GlobalKey.secret());
    let printed = printed(&runs);
    assert!(printed.contains("TRACE"));
    assert!(printed.contains("HTTP 403"), "the bad key was not refused");
}
