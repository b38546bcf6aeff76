//! Building the API client and the listing source from command-line arguments.

use anyhow::Context;

use super::{ApiArgs, SourceArgs};
use std::sync::Arc;

use crate::cloudflare::observer::{NoopObserver, RequestObserver};
use crate::cloudflare::{
    BaseUrl, Budget, BudgetConfig, Client, ClientConfig, CredentialOrigin, Credentials,
};
use crate::permissions;
use crate::source::{AnySource, CloudflareSource, SourceOptions, SourceSpec};

/// A client for the live API: credentials from the environment or a token file, the base
/// URL from `--api-base-url` / `CLOUDFLARE_BASE_URL`, and the request budget.
pub fn client(args: &ApiArgs) -> anyhow::Result<Client> {
    observed_client(args, Arc::new(NoopObserver))
}

/// [`client`], reporting every request attempt to `observer` (the daemon's metrics).
pub fn observed_client(
    args: &ApiArgs,
    observer: Arc<dyn RequestObserver>,
) -> anyhow::Result<Client> {
    let credentials = Credentials::from_process(args.api_token_file.as_deref())
        .context("no usable Cloudflare credentials")?;
    if let CredentialOrigin::TokenFile(path) | CredentialOrigin::SystemdCredential(path) =
        credentials.origin()
    {
        permissions::warn_if_shared(path, "the API token file");
    }
    let mut config = ClientConfig::new(credentials);
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
            let options = SourceOptions {
                exec_timeout: args.exec_timeout,
            };
            AnySource::open_offline(offline, &options).context("cannot open the listing source")
        }
    }
}
