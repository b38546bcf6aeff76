//! Building the API client and the listing source from command-line arguments.

use anyhow::Context;

use super::{ApiArgs, SourceArgs};
use crate::cloudflare::{BaseUrl, BudgetConfig, Client, ClientConfig, Credentials};
use crate::source::{AnySource, CloudflareSource, SourceOptions, SourceSpec};

/// A client for the live API: credentials from the environment or a token file, the base
/// URL from `--api-base-url` / `CLOUDFLARE_BASE_URL`, and the request budget.
pub fn client(args: &ApiArgs) -> anyhow::Result<Client> {
    let credentials = Credentials::from_process(args.api_token_file.as_deref())
        .context("no usable Cloudflare credentials")?;
    let mut config = ClientConfig::new(credentials);
    if let Some(url) = &args.api_base_url {
        config.base_url = BaseUrl::parse(url)?;
    }
    config.connect_timeout = args.connect_timeout;
    config.request_timeout = args.request_timeout;
    config.budget = BudgetConfig::with_limit(args.max_requests, args.budget_window);
    Ok(Client::new(config)?)
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
