//! The `cloudflare` source: listings straight from the live API, through the shared
//! client (and so its budget and retry policy).

use super::{GroupSource, ListingError};
use crate::cloudflare::Client;
use crate::model::{AccountId, ObservedGroup};

/// Lists groups with the Cloudflare API.
#[derive(Debug, Clone)]
pub struct CloudflareSource {
    client: Client,
}

impl CloudflareSource {
    /// A source over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The client it lists with, for the other reads a command makes (an account's name).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl GroupSource for CloudflareSource {
    fn describe(&self) -> String {
        "cloudflare".to_owned()
    }

    async fn list(&self, account: &AccountId) -> Result<Vec<ObservedGroup>, ListingError> {
        Ok(self.client.list_groups(account).await?)
    }
}
