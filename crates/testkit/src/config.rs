//! The tests' vocabulary of ids and groups, and their desired-state files: account and group
//! ids by number, fake groups with members and a policy, and the YAML of a set of accounts,
//! written in place or by rename.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use cfgroups::model::{AccountId, GroupId};
use cfgroups_fake::{FakeGroup, FakeMember};

/// The `n`-th test account id.
pub fn account(n: usize) -> AccountId {
    format!("a{n:031x}").parse().expect("a valid account id")
}

/// A group id unique per (account, group) number.
pub fn group_id(account: usize, n: usize) -> GroupId {
    format!("{account:08x}{n:024x}")
        .parse()
        .expect("a valid group id")
}

/// The `n`-th member id.
pub fn member_id(n: usize) -> String {
    format!("e{n:031x}")
}

/// Group `n` of `account`, named `name`, with `members` members and 0-3 real-shaped policies
/// drawn from `n` (the fake's generator), so backups carry what real ones do.
pub fn group(account: usize, n: usize, name: &str, members: usize) -> FakeGroup {
    FakeGroup::new(group_id(account, n), name)
        .with_members(
            (0..members)
                .map(|m| FakeMember::new(member_id(n * 10 + m), format!("m{n}-{m}@example.com")))
                .collect(),
        )
        .with_real_shaped_policies(self::account(account).as_str(), n as u64)
}

/// One account of a desired-state file.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    pub id: AccountId,
    /// `unmanaged:` (`ignore`, `report`, `delete`); the file's default when `None`.
    pub unmanaged: Option<&'static str>,
    pub max_deletes: Option<u32>,
    pub protect: Vec<String>,
    /// `label:`, none when `None`.
    pub label: Option<String>,
    /// `suspend:`, none when `None`.
    pub suspend: Option<bool>,
    /// `(name, id, state)` of every declared group.
    pub groups: Vec<(Option<String>, Option<GroupId>, &'static str)>,
}

impl AccountConfig {
    pub fn new(id: AccountId) -> Self {
        Self {
            id,
            unmanaged: None,
            max_deletes: None,
            protect: Vec::new(),
            label: None,
            suspend: None,
            groups: Vec::new(),
        }
    }

    pub fn label(mut self, label: &str) -> Self {
        self.label = Some(label.to_owned());
        self
    }

    /// `suspend: true` or `false`.
    pub fn suspend(mut self, suspend: bool) -> Self {
        self.suspend = Some(suspend);
        self
    }

    pub fn unmanaged(mut self, policy: &'static str) -> Self {
        self.unmanaged = Some(policy);
        self
    }

    pub fn max_deletes(mut self, max: u32) -> Self {
        self.max_deletes = Some(max);
        self
    }

    /// Declares the group named `name` in `state` (`present` or `absent`).
    pub fn declare(mut self, name: &str, state: &'static str) -> Self {
        self.groups.push((Some(name.to_owned()), None, state));
        self
    }

    /// Declares every `(name, state)` of `groups`.
    pub fn declare_all(self, groups: &[(&str, &'static str)]) -> Self {
        groups
            .iter()
            .fold(self, |config, (name, state)| config.declare(name, state))
    }

    pub fn absent(self, name: &str) -> Self {
        self.declare(name, "absent")
    }

    pub fn present(self, name: &str) -> Self {
        self.declare(name, "present")
    }

    /// Declares the group `id`, expected to be named `name`, absent.
    pub fn absent_id(mut self, id: &GroupId, name: &str) -> Self {
        self.groups
            .push((Some(name.to_owned()), Some(id.clone()), "absent"));
        self
    }
}

/// The desired-state file declaring `accounts`.
pub fn config_text(accounts: &[AccountConfig]) -> String {
    let mut text = String::from("version: 1\naccounts:\n");
    for account in accounts {
        let _ = writeln!(text, "  - id: {}", account.id);
        if let Some(label) = &account.label {
            let _ = writeln!(text, "    label: {label:?}");
        }
        if let Some(suspend) = account.suspend {
            let _ = writeln!(text, "    suspend: {suspend}");
        }
        if let Some(unmanaged) = account.unmanaged {
            let _ = writeln!(text, "    unmanaged: {unmanaged}");
        }
        if let Some(max) = account.max_deletes {
            let _ = writeln!(text, "    max_deletes: {max}");
        }
        if !account.protect.is_empty() {
            let quoted: Vec<String> = account.protect.iter().map(|p| format!("{p:?}")).collect();
            let _ = writeln!(text, "    protect: [{}]", quoted.join(", "));
        }
        if !account.groups.is_empty() {
            text.push_str("    groups:\n");
        }
        for (name, id, state) in &account.groups {
            let mut fields = Vec::new();
            if let Some(name) = name {
                fields.push(format!("name: {name:?}"));
            }
            if let Some(id) = id {
                fields.push(format!("id: {id}"));
            }
            fields.push(format!("state: {state}"));
            let _ = writeln!(text, "      - {{{}}}", fields.join(", "));
        }
    }
    text
}

/// Writes the desired-state file of `accounts` to `dir/groups.yaml`; its path.
pub fn write_config(dir: &Path, accounts: &[AccountConfig]) -> PathBuf {
    let path = dir.join("groups.yaml");
    write_in_place(&path, &config_text(accounts));
    path
}

/// Writes `contents` to `path` in place (truncate and write): the inode stays.
pub fn write_in_place(path: &Path, contents: &str) {
    std::fs::write(path, contents)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Writes `contents` next to `path` and renames it over `path`, as editors save.
pub fn write_by_rename(path: &Path, contents: &str) {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp~");
    let temp = PathBuf::from(temp);
    write_in_place(&temp, contents);
    std::fs::rename(&temp, path)
        .unwrap_or_else(|e| panic!("cannot rename over {}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_declares_every_account_and_group() {
        let mut config = AccountConfig::new(account(1))
            .unmanaged("delete")
            .max_deletes(3)
            .present("Team")
            .absent_id(&group_id(1, 2), "Old \"one\"");
        config.protect = vec!["SCIM-*".to_owned()];
        let text = config_text(&[config, AccountConfig::new(account(2))]);
        assert_eq!(
            text,
            format!(
                "version: 1\naccounts:\n  - id: {}\n    unmanaged: delete\n    max_deletes: 3\n    \
                 protect: [\"SCIM-*\"]\n    groups:\n      - {{name: \"Team\", state: present}}\n      \
                 - {{name: \"Old \\\"one\\\"\", id: {}, state: absent}}\n  - id: {}\n",
                account(1),
                group_id(1, 2),
                account(2)
            )
        );
        let parsed = cfgroups::config::parse(&text, Path::new("groups.yaml")).unwrap();
        assert_eq!(parsed.accounts.len(), 2);
        assert_eq!(parsed.accounts[0].groups.len(), 2);
    }

    #[test]
    fn ids_are_distinct_per_number() {
        assert_ne!(account(1), account(2));
        assert_ne!(group_id(1, 2), group_id(2, 1));
    }
}
