//! Where observed groups come from: the `GroupSource` trait, the `--source` spec that picks
//! one, and the bounded concurrent listing of every declared account. `document` reads the
//! snapshot format that the snapshot and exec sources share; `split` reads a snapshot file
//! one account at a time.

pub mod cloudflare;
mod document;
pub mod exec;
pub mod snapshot;
pub mod spec;
mod split;

use std::collections::HashSet;
use std::future::Future;

use futures_util::StreamExt;
use thiserror::Error;

use crate::model::{AccountId, GroupId, ListingFailure, Observed, ObservedGroup};

pub use cloudflare::CloudflareSource;
pub use exec::{ExecOptions, ExecSource};
pub use snapshot::SnapshotSource;
pub use spec::{AnySource, OpenError, SourceOptions, SourceSpec};

/// Why one account could not be listed. Any of these means the account gets no deletions
/// this cycle (safety rule 1).
#[derive(Debug, Error)]
pub enum ListingError {
    #[error("account {account} is not in snapshot {path}")]
    NotInSnapshot { account: AccountId, path: String },
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    #[error(transparent)]
    Exec(#[from] exec::ExecError),
    #[error(transparent)]
    Api(#[from] crate::cloudflare::Error),
    #[error("inconsistent listing: group {0} appears more than once")]
    DuplicateId(GroupId),
}

/// A pluggable listing source: everything that can say which groups an account has.
pub trait GroupSource: Send + Sync {
    /// How the source is named in reports, e.g. `snapshot:examples/snapshot.json`.
    fn describe(&self) -> String;

    /// Every group of `account`, or why the listing is not trustworthy.
    fn list(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = Result<Vec<ObservedGroup>, ListingError>> + Send;
}

/// Default number of accounts listed at once: a listing mostly waits on the network.
pub const DEFAULT_LISTING_CONCURRENCY: usize = 16;

/// Lists `accounts` through `source`, at most `concurrency` at a time, and rejects any
/// listing that names the same group twice. A failed listing keeps its error with every
/// cause, for the reports.
pub async fn list_accounts<S: GroupSource>(
    source: &S,
    accounts: &[AccountId],
    concurrency: usize,
) -> Observed {
    futures_util::stream::iter(accounts.iter().cloned())
        .map(|account| async move {
            let listing = source
                .list(&account)
                .await
                .and_then(reject_duplicates)
                .map_err(|error| ListingFailure::from_error(&error));
            (account, listing)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

fn reject_duplicates(groups: Vec<ObservedGroup>) -> Result<Vec<ObservedGroup>, ListingError> {
    let mut seen = HashSet::with_capacity(groups.len());
    for group in &groups {
        if !seen.insert(&group.id) {
            return Err(ListingError::DuplicateId(group.id.clone()));
        }
    }
    Ok(groups)
}
