//! Building the API client and the listing source from command-line arguments.

use anyhow::Context;

use super::{ApiArgs, SourceArgs};
use std::sync::Arc;

use crate::cloudflare::observer::{NoopObserver, RequestObserver};
use crate::cloudflare::{
    BaseUrl, Budget, BudgetConfig, Client, ClientConfig, CredentialOrigin, Credentials,
};
use crate::permissions;
use crate::source::{AnySource, CloudflareSource, ExecOptions, SourceOptions, SourceSpec};

/// A client for the live API: credentials from the environment or a token file, the base
/// URL from `--api-base-url` / `CLOUDFLARE_BASE_URL`, and the request budget.
pub fn client(args: &ApiArgs) -> anyhow::Result<Client> {
    observed_client(args, Arc::new(NoopObserver), None)
}

/// [`client`], reporting every request attempt to `observer` (the daemon's metrics). With
/// a `replica` name (leader election), the `User-Agent` carries it, so Cloudflare's audit
/// log tells which replica made each change.
pub fn observed_client(
    args: &ApiArgs,
    observer: Arc<dyn RequestObserver>,
    replica: Option<&str>,
) -> anyhow::Result<Client> {
    // Each credentials error already says what is wrong with them, with its own prefix.
    let credentials = Credentials::from_process(args.api_token_file.as_deref())?;
    if let CredentialOrigin::TokenFile(path) | CredentialOrigin::SystemdCredential(path) =
        credentials.origin()
    {
        permissions::warn_if_shared(path, "the API token file");
    }
    let mut config = ClientConfig::new(credentials);
    if let Some(replica) = replica {
        config.user_agent = format!("{} (replica {replica})", config.user_agent);
    }
    if let Some(url) = &args.api_base_url {
        config.base_url = BaseUrl::parse(url)?;
    }
    config.connect_timeout = args.connect_timeout;
    config.request_timeout = args.request_timeout;
    config.budget = BudgetConfig {
        max_wait: args.max_rate_limit_wait,
        ..BudgetConfig::with_limit(args.max_requests, args.budget_window)
    };
    let budget = Budget::new(config.budget.clone());
    Ok(Client::with_parts(config, budget, observer)?)
}

/// The source `--source` names.
pub fn source(args: &SourceArgs) -> anyhow::Result<AnySource> {
    match &args.source {
        SourceSpec::Cloudflare => Ok(AnySource::Cloudflare(CloudflareSource::new(client(
            &args.api,
        )?))),
        offline => {
            let mut exec = ExecOptions::new(args.exec_timeout, args.api.api_token_file.as_deref());
            exec.pass_credentials = args.exec_pass_credentials;
            let options = SourceOptions { exec };
            AnySource::open_offline(offline, &options).context("cannot open the listing source")
        }
    }
}
