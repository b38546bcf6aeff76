//! The few API operations that back up, delete and recreate groups, as a trait: the seam
//! between the executor (and `restore`) and the HTTP client, so that deletion, journaling
//! and crash recovery can be driven without HTTP. [`crate::cloudflare::Client`] is the one
//! implementation the product ships.

use std::future::Future;

use serde_json::Value;
use serde_json::value::RawValue;
use thiserror::Error;

use crate::cloudflare::{self, Client};
use crate::model::{AccountId, DeletionOutcome, GroupId, ObservedGroup};
use crate::refusal::Refusal;

/// What kind of failure a write met: what the caller may conclude from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteErrorKind {
    /// The group does not exist (HTTP 404).
    NotFound,
    /// Cloudflare refused the request, and would refuse it again the same way (400, 401,
    /// 403 and other final answers).
    Refused,
    /// The request did not complete (retries used up, timeouts, a broken connection). It may
    /// succeed later, and a DELETE may even have taken effect.
    Unavailable,
}

/// A write that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct WriteError {
    pub kind: WriteErrorKind,
    /// What went wrong, for people (already free of secrets).
    pub message: String,
}

/// The operations the executor and `restore` need. Members are opaque JSON objects, carried
/// into the journal as Cloudflare returned them.
pub trait GroupWriter: Send + Sync {
    /// Whether a deletion may start now. The executor asks right before each one (before
    /// its fresh read and again before its intent is journaled); `false` means it is not
    /// started. Always `true` unless the writer is gated, as the daemon's is by leadership
    /// ([`crate::daemon::election::LeaderWriter`]).
    fn may_write(&self) -> bool {
        true
    }

    /// The group as it is now, or `None` when it does not exist: the fresh read before a
    /// DELETE, and the confirmation of an answer that does not settle whether it is gone.
    fn get_group(
        &self,
        account: &AccountId,
        group: &GroupId,
    ) -> impl Future<Output = Result<Option<ObservedGroup>, WriteError>> + Send;

    /// Every group named exactly `name`: the fresh read before deleting a group matched by
    /// its name, which also shows whether another group now shares the name.
    fn groups_named(
        &self,
        account: &AccountId,
        name: &str,
    ) -> impl Future<Output = Result<Vec<ObservedGroup>, WriteError>> + Send;

    /// Every member of `group`, for the backup taken before it is deleted.
    fn list_members(
        &self,
        account: &AccountId,
        group: &GroupId,
    ) -> impl Future<Output = Result<Vec<Value>, WriteError>> + Send;

    /// Deletes `group`: [`DeletionOutcome::Deleted`], [`DeletionOutcome::AlreadyAbsent`] (a
    /// 404), or [`DeletionOutcome::Failed`] with the error, and with Cloudflare's refusal when
    /// it refused for good ([`crate::refusal`]).
    fn delete_group(
        &self,
        account: &AccountId,
        group: &GroupId,
    ) -> impl Future<Output = DeletionOutcome> + Send;

    /// Creates a group named `name` with `policies` (JSON text of the create endpoint's
    /// shape, see [`crate::restore::creatable_policies`]).
    fn create_group(
        &self,
        account: &AccountId,
        name: &str,
        policies: &RawValue,
    ) -> impl Future<Output = Result<ObservedGroup, WriteError>> + Send;

    /// Adds account members, by member id, to `group`.
    fn add_members(
        &self,
        account: &AccountId,
        group: &GroupId,
        member_ids: &[String],
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
}

impl From<cloudflare::Error> for WriteError {
    fn from(error: cloudflare::Error) -> Self {
        let kind = match &error {
            cloudflare::Error::Api { status: 404, .. } => WriteErrorKind::NotFound,
            cloudflare::Error::Api { .. } if !error.is_retryable() => WriteErrorKind::Refused,
            _ => WriteErrorKind::Unavailable,
        };
        Self {
            kind,
            message: error.to_string(),
        }
    }
}

impl GroupWriter for Client {
    async fn get_group(
        &self,
        account: &AccountId,
        group: &GroupId,
    ) -> Result<Option<ObservedGroup>, WriteError> {
        Ok(Client::get_group(self, account, group).await?)
    }

    async fn groups_named(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Vec<ObservedGroup>, WriteError> {
        Ok(Client::groups_named(self, account, name).await?)
    }

    async fn list_members(
        &self,
        account: &AccountId,
        group: &GroupId,
    ) -> Result<Vec<Value>, WriteError> {
        Ok(Client::list_members(self, account, group).await?)
    }

    async fn delete_group(&self, account: &AccountId, group: &GroupId) -> DeletionOutcome {
        Client::delete_group(self, account, group)
            .await
            .unwrap_or_else(|error| DeletionOutcome::Failed {
                refused: Refusal::from_error(&error),
                error: error.to_string(),
            })
    }

    async fn create_group(
        &self,
        account: &AccountId,
        name: &str,
        policies: &RawValue,
    ) -> Result<ObservedGroup, WriteError> {
        Ok(Client::create_group(self, account, name, policies).await?)
    }

    async fn add_members(
        &self,
        account: &AccountId,
        group: &GroupId,
        member_ids: &[String],
    ) -> Result<(), WriteError> {
        Ok(Client::add_members(self, account, group, member_ids).await?)
    }
}
