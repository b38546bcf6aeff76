//! Runs the fake Cloudflare user-groups API on loopback, serving a state file and saving it
//! back after every mutation (and once more on Ctrl-C), so `cfgroups` can be tried end to end
//! without touching a real account:
//!
//! ```text
//! cargo run -p cfgroups-fake -- --state state.json \
//!     [--listen 127.0.0.1:8787] [--token T]... [--read-only-token T]... [--api-key EMAIL:KEY]... \
//!     [--rate-limit 1200/300s] [--lockout 300s] [--latency 20ms] [--account ID]...
//! ```
//!
//! The state file is the snapshot format, where an account may also carry a `"name"` and a
//! group `"members"` and `"scim": true` (provisioned by SCIM: every change is refused); a missing file starts empty (name accounts with `--account`) and is
//! created on the first mutation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cfgroups_fake::{FakeCloudflare, FakeState, Id};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "A local fake of Cloudflare's IAM user-groups API")]
struct Args {
    /// State file to serve and save back to (snapshot format; accounts may carry "name",
    /// groups "members").
    #[arg(long)]
    state: PathBuf,
    /// Where to listen; only loopback addresses are accepted.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// A bearer token to accept (repeatable).
    #[arg(long = "token", default_value = "test-token")]
    tokens: Vec<String>,
    /// A bearer token to accept for reading only (repeatable): anything but GET gets 403
    /// 10000, as a token without "Account Settings Write" does.
    #[arg(long = "read-only-token")]
    read_only_tokens: Vec<String>,
    /// A legacy EMAIL:KEY pair to accept (repeatable).
    #[arg(long = "api-key", value_parser = parse_key_pair)]
    api_keys: Vec<(String, String)>,
    /// Requests allowed per sliding window, as LIMIT/WINDOW.
    #[arg(long, default_value = "1200/300s", value_parser = parse_rate)]
    rate_limit: (u32, Duration),
    /// How long requests are refused once the limit is exceeded (default: the window).
    #[arg(long, value_parser = humantime::parse_duration)]
    lockout: Option<Duration>,
    /// Latency added to every request.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    latency: Duration,
    /// An account to serve even when the state file has none of its groups (repeatable).
    #[arg(long = "account")]
    accounts: Vec<Id>,
}

fn parse_rate(value: &str) -> Result<(u32, Duration), String> {
    let (limit, window) = value
        .split_once('/')
        .ok_or_else(|| format!("{value:?} is not LIMIT/WINDOW, e.g. 1200/300s"))?;
    let limit = limit
        .parse()
        .map_err(|e| format!("bad limit {limit:?}: {e}"))?;
    let window = humantime::parse_duration(window).map_err(|e| format!("bad window: {e}"))?;
    Ok((limit, window))
}

fn parse_key_pair(value: &str) -> Result<(String, String), String> {
    value
        .split_once(':')
        .map(|(email, key)| (email.to_owned(), key.to_owned()))
        .ok_or_else(|| "expected EMAIL:KEY".to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let mut state = if args.state.exists() {
        FakeState::load(&args.state)?
    } else {
        FakeState::new()
    };
    for account in &args.accounts {
        state = state.with_account(account);
    }
    let (limit, window) = args.rate_limit;
    let mut builder = FakeCloudflare::builder()
        .listen(args.listen)
        .rate_limit(limit, window)
        .latency(args.latency)
        .state(state)
        .persist_to(&args.state);
    if let Some(lockout) = args.lockout {
        builder = builder.lockout(lockout);
    }
    for token in &args.tokens {
        builder = builder.token(token);
    }
    for token in &args.read_only_tokens {
        builder = builder.read_only_token(token);
    }
    for (email, key) in &args.api_keys {
        builder = builder.api_key(email, key);
    }
    let fake = builder.start().await?;

    let accounts = fake.state().accounts.len();
    eprintln!(
        "fake Cloudflare API on {} serving {accounts} account(s) from {}; Ctrl-C to stop",
        fake.base_url(),
        args.state.display()
    );
    println!("export CLOUDFLARE_BASE_URL={}", fake.base_url());

    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    fake.save(&args.state)?;
    eprintln!("state saved to {}", args.state.display());
    fake.shutdown().await;
    Ok(())
}
