//! What the fake stores: accounts (with an optional name), their user groups and the
//! groups' members, saving them to the state file, and the mutations the endpoints make.
//!
//! Ids are plain strings here, so tests can hand the fake any id they hold; ids are checked
//! where they enter from outside: request paths and bodies (see `routes`) and state files
//! (see `state_file`, which also owns the file format).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use thiserror::Error;

use crate::generate::Generator;
use crate::ids::Id;
use crate::state_file::{self, FORMAT_VERSION, GroupRecord, LoadError, MemberRecord, StateRecord};

/// The timestamp a group (or account) gets when its state file gives none.
pub const DEFAULT_TIMESTAMP: &str = "2024-03-01T12:21:02Z";

/// Why a state file could not be written.
#[derive(Debug, Error)]
#[error("cannot write fake API state to {path}: {source}")]
pub struct SaveError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Every account the fake knows, by account id, with its groups: the state file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StateRecord")]
pub struct FakeState {
    pub format_version: u32,
    pub accounts: BTreeMap<String, FakeAccount>,
}

/// One account: its name, if the state gives one, and its groups in creation order (the
/// order an unsorted listing returns).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FakeAccount {
    /// What `GET /accounts/{account_id}` answers as `name`; without one the fake answers
    /// `Account <account id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub groups: Vec<FakeGroup>,
}

/// A user group as the API returns it, plus its members.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "GroupRecord")]
pub struct FakeGroup {
    pub id: String,
    pub name: String,
    pub created_on: String,
    pub modified_on: String,
    /// The policies, as JSON text returned exactly as it was stored: a number beyond a
    /// float's range, a big integer or an escape comes back byte for byte, as the real API
    /// returns what it holds. Set it with [`FakeGroup::with_policies`] or
    /// [`FakeGroup::with_policies_text`].
    pub policies: Box<RawValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<FakeMember>,
    /// Provisioned by SCIM: the identity provider owns it, so every change through the API
    /// (delete, rename, members) is refused with [`crate::envelope::CODE_SCIM_MANAGED`].
    /// Not part of the group object the API returns.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scim: bool,
}

/// Equal when every field is, the policies compared as text (as they are served).
impl PartialEq for FakeGroup {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.name == other.name
            && self.created_on == other.created_on
            && self.modified_on == other.modified_on
            && self.policies.get() == other.policies.get()
            && self.members == other.members
    }
}

/// A member of a user group, as `GET .../members` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "MemberRecord")]
pub struct FakeMember {
    pub id: String,
    pub email: String,
    pub status: String,
}

/// No policies: `[]`.
fn no_policies() -> Box<RawValue> {
    json_text(&Value::Array(Vec::new()))
}

/// A tree as compact JSON text. Writing a `Value` out cannot fail: its keys are strings.
pub(crate) fn json_text(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| no_policies())
}

/// Now, as the API formats timestamps (`2024-03-01T12:21:02Z`).
pub(crate) fn now_timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
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
            format_version: FORMAT_VERSION,
            accounts: BTreeMap::new(),
        }
    }

    /// Adds an account with no groups (kept as it is if it exists). An id that is not 32
    /// lowercase hex is stored, but no request can reach it.
    pub fn with_account(mut self, account: impl AsRef<str>) -> Self {
        self.entry(account);
        self
    }

    /// Names an account, creating it if needed.
    pub fn with_account_name(mut self, account: impl AsRef<str>, name: impl Into<String>) -> Self {
        self.entry(account).name = Some(name.into());
        self
    }

    /// Adds a group to an account, creating the account if needed.
    pub fn with_group(mut self, account: impl AsRef<str>, group: FakeGroup) -> Self {
        self.entry(account).groups.push(group);
        self
    }

    /// Adds `count` groups named `group-0000`, `group-0001`, ... with ids drawn from `seed`,
    /// so big listings are easy to set up and the same seed gives the same ids.
    pub fn with_generated_groups(
        mut self,
        account: impl AsRef<str>,
        count: usize,
        seed: u64,
    ) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let entry = self.entry(account);
        for index in 0..count {
            let id = fresh_group_id(entry, &mut rng);
            entry
                .groups
                .push(FakeGroup::new(id, format!("group-{index:04}")));
        }
        self
    }

    /// Adds `count` real-shaped groups (see the `generate` module: 0-3 policies with
    /// permission and resource groups in both `scope` shapes, 0-5 members, names with spaces
    /// and letters beyond ASCII, ending in their index `0000`, `0001`, ...), all drawn from
    /// `seed`: the same seed gives the same groups.
    pub fn with_real_shaped_groups(
        mut self,
        account: impl AsRef<str>,
        count: usize,
        seed: u64,
    ) -> Self {
        let account = account.as_ref();
        let mut generator = Generator::new(account, seed);
        let entry = self.entry(account);
        let mut taken: std::collections::HashSet<String> =
            entry.groups.iter().map(|g| g.id.clone()).collect();
        entry.groups.reserve(count);
        for index in 0..count {
            let id = loop {
                let candidate = generator.id();
                if taken.insert(candidate.clone()) {
                    break candidate;
                }
            };
            entry.groups.push(generator.group(id, index));
        }
        self
    }

    /// Parses state text (JSON, or YAML when it does not start with `{`); `origin` names it
    /// in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, LoadError> {
        state_file::parse(text, origin)
    }

    /// Reads a state (or snapshot) file.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        state_file::load(path)
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
    pub fn groups(&self, account: impl AsRef<str>) -> &[FakeGroup] {
        self.accounts
            .get(account.as_ref())
            .map_or(&[], |entry| entry.groups.as_slice())
    }

    /// The account, created empty if it is new.
    pub(crate) fn entry(&mut self, account: impl AsRef<str>) -> &mut FakeAccount {
        self.accounts
            .entry(account.as_ref().to_owned())
            .or_default()
    }
}

impl FakeAccount {
    /// The account object `GET /accounts/{account_id}` returns.
    pub fn to_api_json(&self, id: &str) -> Value {
        let name = self.name.clone().unwrap_or_else(|| format!("Account {id}"));
        json!({
            "id": id,
            "name": name,
            "type": "standard",
            "settings": {"enforce_twofactor": false},
            "created_on": DEFAULT_TIMESTAMP,
        })
    }
}

impl FakeGroup {
    /// A group with no policies and no members, created and modified at [`DEFAULT_TIMESTAMP`].
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            created_on: DEFAULT_TIMESTAMP.to_owned(),
            modified_on: DEFAULT_TIMESTAMP.to_owned(),
            policies: no_policies(),
            members: Vec::new(),
            scim: false,
        }
    }

    /// The same group with 0-3 real-shaped policies drawn from `seed` (see
    /// [`FakeState::with_real_shaped_groups`]); `account` is the account their resource
    /// groups point at.
    pub fn with_real_shaped_policies(mut self, account: &str, seed: u64) -> Self {
        self.policies = Generator::new(account, seed).policies();
        self
    }

    /// The same group with these policies (written as compact JSON text).
    pub fn with_policies(mut self, policies: &Value) -> Self {
        self.policies = json_text(policies);
        self
    }

    /// The same group with these policies, kept as this exact text; `Err` when it is not
    /// JSON.
    pub fn with_policies_text(mut self, policies: &str) -> Result<Self, serde_json::Error> {
        self.policies = RawValue::from_string(policies.to_owned())?;
        Ok(self)
    }

    /// The same group, provisioned by SCIM: the API refuses to delete or change it.
    pub fn scim_managed(mut self) -> Self {
        self.scim = true;
        self
    }

    /// The same group with these members.
    pub fn with_members(mut self, members: Vec<FakeMember>) -> Self {
        self.members = members;
        self
    }

    /// The group object exactly as the API returns it (members are a separate endpoint).
    pub fn api_object(&self) -> ApiGroup {
        ApiGroup {
            id: self.id.clone(),
            name: self.name.clone(),
            created_on: self.created_on.clone(),
            modified_on: self.modified_on.clone(),
            policies: self.policies.clone(),
        }
    }

    /// The group object as a tree, for comparing with a response read as one. `Null` when
    /// the policies hold what a tree cannot (a number beyond a float's range): compare
    /// [`FakeGroup::api_object`]'s text then.
    pub fn to_api_json(&self) -> Value {
        serde_json::to_value(self.api_object()).unwrap_or(Value::Null)
    }
}

/// A group object as the API sends it; its policies are written out as the stored text.
#[derive(Debug, Clone, Serialize)]
pub struct ApiGroup {
    pub id: String,
    pub name: String,
    pub created_on: String,
    pub modified_on: String,
    pub policies: Box<RawValue>,
}

impl FakeMember {
    /// An accepted member.
    pub fn new(id: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            email: email.into(),
            status: "accepted".to_owned(),
        }
    }

    /// The member object as `GET .../members` returns it.
    pub fn to_api_json(&self) -> Value {
        json!({"id": self.id, "email": self.email, "status": self.status})
    }
}

/// A random id no group of `account` has.
fn fresh_group_id(account: &FakeAccount, rng: &mut fastrand::Rng) -> String {
    loop {
        let candidate = Id::random(rng).into_string();
        if account.groups.iter().all(|g| g.id != candidate) {
            return candidate;
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

    pub(crate) fn account(&self, account: &str) -> Option<&FakeAccount> {
        self.state.accounts.get(account)
    }

    pub(crate) fn group(&self, account: &str, group: &str) -> Option<&FakeGroup> {
        self.account(account)?.groups.iter().find(|g| g.id == group)
    }

    fn group_mut(&mut self, account: &str, group: &str) -> Option<&mut FakeGroup> {
        self.state
            .accounts
            .get_mut(account)?
            .groups
            .iter_mut()
            .find(|g| g.id == group)
    }

    /// Gives each policy without an `id` a fresh one, as the API does.
    fn identify_policies(&mut self, policies: &mut [Value]) {
        for policy in policies {
            if let Some(object) = policy.as_object_mut()
                && !object.contains_key("id")
            {
                let id = Id::random(&mut self.rng).into_string();
                object.insert("id".to_owned(), Value::String(id));
            }
        }
    }

    /// Creates a group with a fresh id. `None` when the account is unknown.
    pub(crate) fn create_group(
        &mut self,
        account: &str,
        name: String,
        mut policies: Vec<Value>,
    ) -> Option<FakeGroup> {
        self.identify_policies(&mut policies);
        let entry = self.state.accounts.get_mut(account)?;
        let now = now_timestamp();
        let group = FakeGroup {
            id: fresh_group_id(entry, &mut self.rng),
            name,
            created_on: now.clone(),
            modified_on: now,
            policies: json_text(&Value::Array(policies)),
            members: Vec::new(),
            scim: false,
        };
        entry.groups.push(group.clone());
        Some(group)
    }

    /// Renames a group and/or replaces its policies (what is `None` stays); the group as it
    /// is now, or `None` when there is no such group.
    pub(crate) fn update_group(
        &mut self,
        account: &str,
        group: &str,
        name: Option<String>,
        policies: Option<Vec<Value>>,
    ) -> Option<FakeGroup> {
        let policies = policies.map(|mut policies| {
            self.identify_policies(&mut policies);
            json_text(&Value::Array(policies))
        });
        let target = self.group_mut(account, group)?;
        if let Some(name) = name {
            target.name = name;
        }
        if let Some(policies) = policies {
            target.policies = policies;
        }
        target.modified_on = now_timestamp();
        Some(target.clone())
    }

    /// Whether the group exists and is provisioned by SCIM (no change through the API).
    pub(crate) fn is_scim(&self, account: &str, group: &str) -> bool {
        self.group(account, group).is_some_and(|g| g.scim)
    }

    /// Removes a group; whether it existed.
    pub(crate) fn delete_group(&mut self, account: &str, group: &str) -> bool {
        let Some(entry) = self.state.accounts.get_mut(account) else {
            return false;
        };
        let before = entry.groups.len();
        entry.groups.retain(|g| g.id != group);
        entry.groups.len() != before
    }

    /// Adds members by id (ids already in the group are kept as they are) and returns the
    /// members named by the request. A member new to the account gets a made-up address.
    pub(crate) fn add_members(
        &mut self,
        account: &str,
        group: &str,
        ids: Vec<String>,
    ) -> Option<Vec<FakeMember>> {
        let entry = self.state.accounts.get_mut(account)?;
        let known: Vec<FakeMember> = entry
            .groups
            .iter()
            .flat_map(|g| g.members.iter().cloned())
            .collect();
        let target = entry.groups.iter_mut().find(|g| g.id == group)?;
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

    /// Makes the members exactly those named (`[]` empties the group): members already in
    /// the group keep their place, new ones are appended in request order. The group's
    /// members now, or `None` when there is no such group.
    pub(crate) fn replace_members(
        &mut self,
        account: &str,
        group: &str,
        ids: Vec<String>,
    ) -> Option<Vec<FakeMember>> {
        let mut unique = Vec::with_capacity(ids.len());
        for id in ids {
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        let target = self.group_mut(account, group)?;
        let kept = std::mem::take(&mut target.members);
        target.members = kept
            .into_iter()
            .filter(|m| unique.contains(&m.id))
            .collect();
        self.add_members(account, group, unique)?;
        self.group(account, group).map(|g| g.members.clone())
    }

    /// Removes one member from a group: the group exists and held the member (`Ok(member)`),
    /// the group exists without it (`Err(true)`), or there is no such group (`Err(false)`).
    pub(crate) fn remove_member(
        &mut self,
        account: &str,
        group: &str,
        member: &str,
    ) -> Result<FakeMember, bool> {
        let target = self.group_mut(account, group).ok_or(false)?;
        let index = target
            .members
            .iter()
            .position(|m| m.id == member)
            .ok_or(true)?;
        let removed = target.members.remove(index);
        target.modified_on = now_timestamp();
        Ok(removed)
    }

    /// A new group id for a group seeded through the handle.
    pub(crate) fn fresh_group_id(&mut self, account: &str) -> String {
        let entry = self.state.entry(account);
        fresh_group_id(entry, &mut self.rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";
    const GROUP: &str = "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a";

    fn member(n: u32) -> String {
        format!("{n:032x}")
    }

    #[test]
    fn state_round_trips_through_a_file_with_members_and_names() {
        let group = FakeGroup::new(GROUP, "Ops").with_members(vec![FakeMember::new(
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "a@example.com",
        )]);
        let state = FakeState::new()
            .with_group(ACCOUNT, group)
            .with_account_name(ACCOUNT, "Acme Corp");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        state.save(&path).unwrap();
        assert_eq!(FakeState::load(&path).unwrap(), state);
    }

    #[test]
    fn a_plain_snapshot_loads_with_defaults() {
        let text = format!(
            r#"{{"format_version":1,"accounts":{{"{ACCOUNT}":{{"groups":[
                {{"id":"{GROUP}","name":"Ops"}}]}}}}}}"#
        );
        let state = FakeState::parse(&text, "s.json").unwrap();
        let group = &state.groups(ACCOUNT)[0];
        assert_eq!(group.created_on, DEFAULT_TIMESTAMP);
        assert_eq!(group.policies.get(), "[]");
        assert!(group.members.is_empty());
        assert_eq!(state.accounts[ACCOUNT].name, None);
    }

    #[test]
    fn deserializing_directly_validates_ids_too() {
        let text = r#"{"format_version":1,"accounts":{"nope":{"groups":[]}}}"#;
        assert!(serde_json::from_str::<FakeState>(text).is_err());
        let group = r#"{"id":"short","name":"x"}"#;
        assert!(serde_json::from_str::<FakeGroup>(group).is_err());
    }

    #[test]
    fn generated_groups_are_unique_and_reproducible() {
        let a = FakeState::new().with_generated_groups(ACCOUNT, 300, 7);
        let b = FakeState::new().with_generated_groups(ACCOUNT, 300, 7);
        assert_eq!(a, b);
        let mut ids: Vec<_> = a.groups(ACCOUNT).iter().map(|g| g.id.clone()).collect();
        assert!(ids.iter().all(|id| crate::ids::is_id(id)));
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 300);
    }

    #[test]
    fn real_shaped_groups_are_unique_reproducible_and_round_trip() {
        let a = FakeState::new().with_real_shaped_groups(ACCOUNT, 300, 7);
        let b = FakeState::new().with_real_shaped_groups(ACCOUNT, 300, 7);
        assert_eq!(a, b);
        let mut names: Vec<_> = a.groups(ACCOUNT).iter().map(|g| g.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 300);
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(FakeState::parse(&text, "s.json").unwrap(), a);
    }

    #[test]
    fn policies_are_served_as_stored() {
        let text = r#"[{"access":"allow","n":1e400,"big":123456789012345678901234567890}]"#;
        let group = FakeGroup::new(GROUP, "Ops")
            .with_policies_text(text)
            .unwrap();
        let served = serde_json::to_string(&group.api_object()).unwrap();
        assert!(served.contains(text), "{served}");
        assert!(
            FakeGroup::new(GROUP, "Ops")
                .with_policies_text("[oops")
                .is_err()
        );
    }

    #[test]
    fn accounts_answer_with_their_name_or_a_default() {
        let named = FakeAccount {
            name: Some("Acme".into()),
            groups: Vec::new(),
        };
        assert_eq!(named.to_api_json(ACCOUNT)["name"], json!("Acme"));
        assert_eq!(
            FakeAccount::default().to_api_json(ACCOUNT)["name"],
            json!(format!("Account {ACCOUNT}"))
        );
    }

    #[test]
    fn members_can_be_replaced_and_removed() {
        let state = FakeState::new().with_group(
            ACCOUNT,
            FakeGroup::new(GROUP, "Ops").with_members(vec![
                FakeMember::new(member(1), "one@example.com"),
                FakeMember::new(member(2), "two@example.com"),
            ]),
        );
        let mut store = Store::new(state, 1);
        let now = store
            .replace_members(ACCOUNT, GROUP, vec![member(2), member(3), member(3)])
            .unwrap();
        let ids: Vec<_> = now.iter().map(|m| m.id.clone()).collect();
        assert_eq!(ids, [member(2), member(3)]);
        assert_eq!(now[0].email, "two@example.com");
        assert_eq!(store.group(ACCOUNT, GROUP).unwrap().members, now);
        assert_eq!(
            store.remove_member(ACCOUNT, GROUP, &member(2)),
            Ok(now[0].clone())
        );
        assert_eq!(store.remove_member(ACCOUNT, GROUP, &member(2)), Err(true));
        assert_eq!(
            store.remove_member(ACCOUNT, &member(9), &member(3)),
            Err(false)
        );
        assert_eq!(
            store.replace_members(ACCOUNT, GROUP, Vec::new()),
            Some(Vec::new())
        );
        assert!(store.group(ACCOUNT, GROUP).unwrap().members.is_empty());
    }
}
