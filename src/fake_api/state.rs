//! What the fake stores: accounts, their user groups and the groups' members, the JSON state
//! file they load from and save to, and the mutations the endpoints make.
//!
//! The state file is the snapshot format (`{"format_version":1,"accounts":{"<account id>":
//! {"groups":[...]}}}`) where a group may also carry `"members": [{"id","email","status"}]`,
//! so a snapshot written by `export` loads as it is (its groups simply have no members).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

use crate::model::{AccountId, GroupId};
use crate::source::snapshot::{
    SNAPSHOT_FORMAT_VERSION, Snapshot, SnapshotError, load_versioned, parse_versioned,
};

/// The timestamp a group gets when its state file gives none.
pub const DEFAULT_TIMESTAMP: &str = "2024-03-01T12:21:02Z";

/// Why a state file could not be written.
#[derive(Debug, Error)]
#[error("cannot write fake API state to {path}: {source}")]
pub struct SaveError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Every account the fake knows, with its groups: the state file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FakeState {
    pub format_version: u32,
    pub accounts: BTreeMap<AccountId, FakeAccount>,
}

/// One account's groups, in creation order (the order an unsorted listing returns).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FakeAccount {
    #[serde(default)]
    pub groups: Vec<FakeGroup>,
}

/// A user group as the API returns it, plus its members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FakeGroup {
    pub id: GroupId,
    pub name: String,
    #[serde(default = "default_timestamp")]
    pub created_on: String,
    #[serde(default = "default_timestamp")]
    pub modified_on: String,
    /// Opaque policy objects, returned as they were stored.
    #[serde(default = "empty_array")]
    pub policies: Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<FakeMember>,
}

/// A member of a user group, as `GET .../members` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeMember {
    pub id: String,
    pub email: String,
    #[serde(default = "accepted")]
    pub status: String,
}

fn default_timestamp() -> String {
    DEFAULT_TIMESTAMP.to_owned()
}

fn empty_array() -> Value {
    Value::Array(Vec::new())
}

fn accepted() -> String {
    "accepted".to_owned()
}

/// Now, as the API formats timestamps (`2024-03-01T12:21:02Z`).
pub(crate) fn now_timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Whether `value` is a Cloudflare-style id: 32 lowercase hex characters.
pub(crate) fn is_hex_id(value: &str) -> bool {
    value.len() == 32
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A fresh 32-lowercase-hex id.
pub(crate) fn random_hex_id(rng: &mut fastrand::Rng) -> String {
    format!("{:016x}{:016x}", rng.u64(..), rng.u64(..))
}

impl Default for FakeState {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeState {
    /// No accounts at all: every account id is then answered with `403`/`9109`.
    pub fn new() -> Self {
        Self {
            format_version: SNAPSHOT_FORMAT_VERSION,
            accounts: BTreeMap::new(),
        }
    }

    /// Adds an account with no groups (kept as it is if it exists).
    pub fn with_account(mut self, account: &AccountId) -> Self {
        self.accounts.entry(account.clone()).or_default();
        self
    }

    /// Adds a group to an account, creating the account if needed.
    pub fn with_group(mut self, account: &AccountId, group: FakeGroup) -> Self {
        self.accounts
            .entry(account.clone())
            .or_default()
            .groups
            .push(group);
        self
    }

    /// Adds `count` groups named `group-0000`, `group-0001`, ... with ids drawn from `seed`,
    /// so big listings are easy to set up and the same seed gives the same ids.
    pub fn with_generated_groups(mut self, account: &AccountId, count: usize, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let entry = self.accounts.entry(account.clone()).or_default();
        for index in 0..count {
            let id = fresh_group_id(entry, &mut rng);
            entry
                .groups
                .push(FakeGroup::new(id, format!("group-{index:04}")));
        }
        self
    }

    /// Parses state text (JSON, or YAML as snapshots allow); `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SnapshotError> {
        parse_versioned(text, origin, |state: &FakeState| state.format_version)
    }

    /// Reads a state (or snapshot) file.
    pub fn load(path: &Path) -> Result<Self, SnapshotError> {
        load_versioned(path, Self::parse)
    }

    /// Writes the state as pretty JSON, atomically (a temporary file renamed over `path`).
    pub fn save(&self, path: &Path) -> Result<(), SaveError> {
        let fail = |source| SaveError {
            path: path.to_owned(),
            source,
        };
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| fail(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        text.push('\n');
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, text).map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(fail)
    }

    /// The groups of `account`, or none when the account is unknown.
    pub fn groups(&self, account: &AccountId) -> &[FakeGroup] {
        self.accounts
            .get(account)
            .map_or(&[], |entry| entry.groups.as_slice())
    }
}

impl From<Snapshot> for FakeState {
    fn from(snapshot: Snapshot) -> Self {
        let accounts = snapshot
            .accounts
            .into_iter()
            .map(|(id, account)| {
                let groups = account
                    .groups
                    .into_iter()
                    .map(|g| FakeGroup {
                        id: g.id,
                        name: g.name,
                        created_on: g.created_on.unwrap_or_else(default_timestamp),
                        modified_on: g.modified_on.unwrap_or_else(default_timestamp),
                        policies: g.policies.unwrap_or_else(empty_array),
                        members: Vec::new(),
                    })
                    .collect();
                (id, FakeAccount { groups })
            })
            .collect();
        Self {
            format_version: SNAPSHOT_FORMAT_VERSION,
            accounts,
        }
    }
}

impl FakeGroup {
    /// A group with no policies and no members, created and modified at [`DEFAULT_TIMESTAMP`].
    pub fn new(id: GroupId, name: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
            created_on: default_timestamp(),
            modified_on: default_timestamp(),
            policies: empty_array(),
            members: Vec::new(),
        }
    }

    /// The same group with these members.
    pub fn with_members(mut self, members: Vec<FakeMember>) -> Self {
        self.members = members;
        self
    }

    /// The group object exactly as the API returns it (members are a separate endpoint).
    pub fn to_api_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "created_on": self.created_on,
            "modified_on": self.modified_on,
            "policies": self.policies,
        })
    }
}

impl FakeMember {
    /// An accepted member.
    pub fn new(id: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            email: email.into(),
            status: accepted(),
        }
    }

    pub(crate) fn to_api_json(&self) -> Value {
        json!({"id": self.id, "email": self.email, "status": self.status})
    }
}

fn fresh_group_id(account: &FakeAccount, rng: &mut fastrand::Rng) -> GroupId {
    loop {
        let candidate = random_hex_id(rng);
        if account.groups.iter().all(|g| g.id.as_str() != candidate)
            && let Ok(id) = candidate.parse::<GroupId>()
        {
            return id;
        }
    }
}

/// The live state behind the server, with the randomness that makes new ids.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) state: FakeState,
    rng: fastrand::Rng,
}

impl Store {
    pub(crate) fn new(state: FakeState, seed: u64) -> Self {
        Self {
            state,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    pub(crate) fn account(&self, account: &AccountId) -> Option<&FakeAccount> {
        self.state.accounts.get(account)
    }

    pub(crate) fn group(&self, account: &AccountId, group: &GroupId) -> Option<&FakeGroup> {
        self.account(account)?
            .groups
            .iter()
            .find(|g| &g.id == group)
    }

    /// Creates a group with a fresh id; each policy without an `id` is given one, as the
    /// API does. `None` when the account is unknown.
    pub(crate) fn create_group(
        &mut self,
        account: &AccountId,
        name: String,
        mut policies: Vec<Value>,
    ) -> Option<FakeGroup> {
        for policy in &mut policies {
            if let Some(object) = policy.as_object_mut()
                && !object.contains_key("id")
            {
                object.insert("id".to_owned(), Value::String(random_hex_id(&mut self.rng)));
            }
        }
        let entry = self.state.accounts.get_mut(account)?;
        let now = now_timestamp();
        let group = FakeGroup {
            id: fresh_group_id(entry, &mut self.rng),
            name,
            created_on: now.clone(),
            modified_on: now,
            policies: Value::Array(policies),
            members: Vec::new(),
        };
        entry.groups.push(group.clone());
        Some(group)
    }

    /// Removes a group; whether it existed.
    pub(crate) fn delete_group(&mut self, account: &AccountId, group: &GroupId) -> bool {
        let Some(entry) = self.state.accounts.get_mut(account) else {
            return false;
        };
        let before = entry.groups.len();
        entry.groups.retain(|g| &g.id != group);
        entry.groups.len() != before
    }

    /// Adds members by id (ids already in the group are kept as they are) and returns the
    /// members named by the request. A member new to the account gets a made-up address.
    pub(crate) fn add_members(
        &mut self,
        account: &AccountId,
        group: &GroupId,
        ids: Vec<String>,
    ) -> Option<Vec<FakeMember>> {
        let entry = self.state.accounts.get_mut(account)?;
        let known: Vec<FakeMember> = entry
            .groups
            .iter()
            .flat_map(|g| g.members.iter().cloned())
            .collect();
        let target = entry.groups.iter_mut().find(|g| &g.id == group)?;
        let mut named = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(existing) = target.members.iter().find(|m| m.id == id) {
                named.push(existing.clone());
                continue;
            }
            let member = known
                .iter()
                .find(|m| m.id == id)
                .cloned()
                .unwrap_or_else(|| {
                    let local = id.get(..8).unwrap_or(id.as_str());
                    FakeMember::new(id.clone(), format!("{local}@example.com"))
                });
            target.members.push(member.clone());
            named.push(member);
        }
        target.modified_on = now_timestamp();
        Some(named)
    }

    /// A new group id for a group seeded through the handle.
    pub(crate) fn fresh_group_id(&mut self, account: &AccountId) -> GroupId {
        let entry = self.state.accounts.entry(account.clone()).or_default();
        fresh_group_id(entry, &mut self.rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    #[test]
    fn state_round_trips_through_a_file_with_members() {
        let account: AccountId = ACCOUNT.parse().unwrap();
        let group = FakeGroup::new("3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a".parse().unwrap(), "Ops")
            .with_members(vec![FakeMember::new(
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "a@example.com",
            )]);
        let state = FakeState::new().with_group(&account, group);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        state.save(&path).unwrap();
        assert_eq!(FakeState::load(&path).unwrap(), state);
    }

    #[test]
    fn a_plain_snapshot_loads_with_defaults() {
        let text = format!(
            r#"{{"format_version":1,"accounts":{{"{ACCOUNT}":{{"groups":[
                {{"id":"3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a","name":"Ops"}}]}}}}}}"#
        );
        let state = FakeState::parse(&text, "s.json").unwrap();
        let group = &state.groups(&ACCOUNT.parse().unwrap())[0];
        assert_eq!(group.created_on, DEFAULT_TIMESTAMP);
        assert_eq!(group.policies, json!([]));
        assert!(group.members.is_empty());
    }

    #[test]
    fn generated_groups_are_unique_and_reproducible() {
        let account: AccountId = ACCOUNT.parse().unwrap();
        let a = FakeState::new().with_generated_groups(&account, 300, 7);
        let b = FakeState::new().with_generated_groups(&account, 300, 7);
        assert_eq!(a, b);
        let mut ids: Vec<_> = a.groups(&account).iter().map(|g| g.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 300);
    }
}
