//! The daemon's writer, gated by leadership: every write operation goes to the inner writer
//! unchanged, and [`GroupWriter::may_write`] answers whether this replica's term is still
//! valid by the clock, so the executor asks the election right before each deletion starts.

use serde_json::Value;
use serde_json::value::RawValue;

use super::leadership::Leadership;
use crate::model::{AccountId, DeletionOutcome, GroupId, ObservedGroup};
use crate::writer::{GroupWriter, WriteError};

/// `inner`, allowed to start deletions only while `leadership` holds a valid term.
#[derive(Debug, Clone)]
pub struct LeaderWriter<W> {
    inner: W,
    leadership: Leadership,
}

impl<W> LeaderWriter<W> {
    pub fn new(inner: W, leadership: Leadership) -> Self {
        Self { inner, leadership }
    }

    /// The writer underneath.
    pub fn inner(&self) -> &W {
        &self.inner
    }
}

impl<W: GroupWriter> GroupWriter for LeaderWriter<W> {
    fn may_write(&self) -> bool {
        self.leadership.is_leader() && self.inner.may_write()
    }

    async fn get_group(
        &self,
        account: &AccountId,
        group: &GroupId,
    ) -> Result<Option<ObservedGroup>, WriteError> {
        self.inner.get_group(account, group).await
    }

    async fn groups_named(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Vec<ObservedGroup>, WriteError> {
        self.inner.groups_named(account, name).await
    }

    async fn list_members(
        &self,
        account: &AccountId,
        group: &GroupId,
    ) -> Result<Vec<Value>, WriteError> {
        self.inner.list_members(account, group).await
    }

    async fn delete_group(&self, account: &AccountId, group: &GroupId) -> DeletionOutcome {
        self.inner.delete_group(account, group).await
    }

    async fn create_group(
        &self,
        account: &AccountId,
        name: &str,
        policies: &RawValue,
    ) -> Result<ObservedGroup, WriteError> {
        self.inner.create_group(account, name, policies).await
    }

    async fn add_members(
        &self,
        account: &AccountId,
        group: &GroupId,
        member_ids: &[String],
    ) -> Result<(), WriteError> {
        self.inner.add_members(account, group, member_ids).await
    }
}
