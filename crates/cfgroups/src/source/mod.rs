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

use crate::hint;
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

impl ListingError {
    /// The failure as the reports and logs carry it: the message with its causes, and for
    /// the live API the status, Cloudflare's codes and a hint of what to check.
    pub fn failure(&self) -> ListingFailure {
        let Self::Api(api) = self else {
            return ListingFailure::from_error(self);
        };
        match api.unreachable() {
            // The error's own line says where and why; the HTTP stack's causes below it
            // ("error sending request for url", "client error (Connect)") add nothing.
            Some(unreachable) => ListingFailure {
                hint: Some(hint::for_unreachable(&unreachable)),
                ..ListingFailure::new(api.to_string())
            },
            None => {
                let codes = api.codes();
                let status = api.status();
                ListingFailure {
                    status,
                    hint: status.and_then(|status| hint::for_answer(status, &codes)),
                    codes,
                    ..ListingFailure::from_error(self)
                }
            }
        }
    }
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
                .map_err(|error| error.failure());
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
