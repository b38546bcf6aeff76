//! Scenarios of many accounts with groups to delete next to groups that must survive, and the
//! checks every deletion test makes: nothing outside the plan is deleted, nothing without its
//! intent journaled first, and the journal covers every planned deletion.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cfgroups::journal::{self, Contents, JOURNAL_FILE, Record};
use cfgroups::model::{AccountId, GroupId};
use cfgroups_fake::{FakeCloudflare, FakeGroup, FakeState, Method, Requests, Route};

use crate::config::{AccountConfig, account, group, group_id};

/// Accounts full of groups to delete and groups that must survive.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub state: FakeState,
    pub configs: Vec<AccountConfig>,
    /// Every group the plan deletes.
    pub planned: BTreeSet<(AccountId, GroupId)>,
    /// Protected groups that an `unmanaged: delete` account would otherwise delete: they
    /// stay, and are reported blocked.
    pub blocked: usize,
}

/// `accounts` accounts, each with `absent` groups declared absent (with 0–2 members and a
/// policy each), three declared present, and two protected `SCIM-*` groups. Even accounts
/// report two unmanaged groups as well; with `prune`, odd accounts are `unmanaged: delete`
/// and their only undeclared groups are the protected ones, which are then blocked.
pub fn scenario(accounts: usize, absent: usize, prune: bool) -> Scenario {
    let mut state = FakeState::new();
    let mut configs = Vec::new();
    let mut planned = BTreeSet::new();
    let mut blocked = 0;
    for a in 0..accounts {
        let id = account(a);
        let pruning = prune && a % 2 == 1;
        let mut config = AccountConfig::new(id.clone())
            .max_deletes(absent as u32 + 10)
            .unmanaged(if pruning { "delete" } else { "report" });
        config.protect = vec!["SCIM-*".to_owned()];
        state = state.with_account(&id);
        for n in 0..absent {
            let name = format!("Retired {a}-{n}");
            state = state.with_group(&id, group(a, n, &name, n % 3));
            config = config.absent(&name);
            planned.insert((id.clone(), group_id(a, n)));
        }
        for j in 0..3 {
            let name = format!("Team {a}-{j}");
            state = state.with_group(&id, group(a, 10_000 + j, &name, 1));
            config = config.present(&name);
        }
        for j in 0..2 {
            state = state.with_group(&id, group(a, 30_000 + j, &format!("SCIM-{a}-{j}"), 1));
            if pruning {
                blocked += 1;
            }
        }
        if !pruning {
            for j in 0..2 {
                state = state.with_group(&id, group(a, 20_000 + j, &format!("Stray {a}-{j}"), 0));
            }
        }
        configs.push(config);
    }
    Scenario {
        state,
        configs,
        planned,
        blocked,
    }
}

impl Scenario {
    /// Asserts the fake holds exactly the desired state: every planned group gone, every
    /// other group as it was.
    pub fn assert_converged(&self, after: &FakeState) {
        assert_only_planned_deleted(&self.state, after, &self.planned);
        let left = groups_by_id(after);
        let remaining: Vec<_> = self
            .planned
            .iter()
            .filter(|key| left.contains_key(*key))
            .collect();
        assert!(remaining.is_empty(), "not deleted: {remaining:?}");
    }

    /// Every planned group whose deletion the fake has performed.
    pub fn deleted(&self, after: &FakeState) -> usize {
        let left = groups_by_id(after);
        self.planned
            .iter()
            .filter(|k| !left.contains_key(*k))
            .count()
    }
}

/// Every group of every account, by (account, id).
pub fn groups_by_id(state: &FakeState) -> BTreeMap<(AccountId, GroupId), FakeGroup> {
    state
        .accounts
        .iter()
        .flat_map(|(account, entry)| {
            let account: AccountId = account.parse().expect("a valid account id");
            entry.groups.iter().map(move |g| {
                let id: GroupId = g.id.parse().expect("a valid group id");
                ((account.clone(), id), g.clone())
            })
        })
        .collect()
}

/// Asserts that `after` is `before` minus only groups in `allowed` (the groups the plan may
/// delete), every other group untouched.
pub fn assert_only_planned_deleted(
    before: &FakeState,
    after: &FakeState,
    allowed: &BTreeSet<(AccountId, GroupId)>,
) {
    let before = groups_by_id(before);
    let after = groups_by_id(after);
    for (key, group) in &after {
        assert_eq!(
            before.get(key),
            Some(group),
            "group {key:?} appeared or changed"
        );
    }
    for (key, group) in &before {
        if !after.contains_key(key) {
            assert!(
                allowed.contains(key),
                "group {} {:?} in account {} was deleted, but the plan never allowed it",
                group.id,
                group.name,
                key.0
            );
        }
    }
}

/// The journal of a state directory.
pub fn journal(state_dir: &Path) -> Contents {
    journal::read(&state_dir.join(JOURNAL_FILE)).expect("the journal reads")
}

/// Asserts the journal holds, for every planned group, an intent with the group as the fake
/// held it (name, policies) and its members (or a reference to such an earlier backup of
/// the group), and a `deleted` or `already_absent` outcome of the same run; and no other
/// intent.
pub fn assert_journal_covers(contents: &Contents, scenario: &Scenario) {
    let before = groups_by_id(&scenario.state);
    let mut intents = BTreeMap::new();
    let mut backups = BTreeSet::new();
    for record in &contents.records {
        if let Record::IntentRef {
            run,
            account,
            group_id,
            backup_sha256,
            ..
        } = record
        {
            let key = (account.clone(), group_id.clone());
            assert!(
                backups.contains(&(key.clone(), backup_sha256.clone())),
                "a reference to a backup not journaled before: {key:?}"
            );
            intents
                .entry(key)
                .or_insert_with(Vec::new)
                .push(run.clone());
        }
        if let Record::Intent {
            run,
            account,
            group,
            members,
            backup_sha256,
            ..
        } = record
        {
            let key = (account.clone(), group.id.clone());
            assert!(
                scenario.planned.contains(&key),
                "intent for a group outside the plan: {key:?}"
            );
            let live = &before[&key];
            assert_eq!(group.name, live.name);
            assert_eq!(
                group.policies.as_deref().map(|raw| raw.get()),
                Some(live.policies.get()),
                "the backup holds the listed policies byte for byte"
            );
            let mut ids: Vec<&str> = members
                .as_ref()
                .expect("members backed up")
                .iter()
                .map(|m| m["id"].as_str().expect("a member id"))
                .collect();
            let mut live_ids: Vec<&str> = live.members.iter().map(|m| m.id.as_str()).collect();
            ids.sort();
            live_ids.sort();
            assert_eq!(ids, live_ids, "members of {}", group.id);
            if let Some(hash) = backup_sha256 {
                backups.insert((key.clone(), hash.clone()));
            }
            intents
                .entry(key)
                .or_insert_with(Vec::new)
                .push(run.clone());
        }
    }
    for key in &scenario.planned {
        let runs = intents
            .get(key)
            .unwrap_or_else(|| panic!("no intent for {key:?}"));
        let settled = runs.iter().any(|run| {
            contents.records.iter().any(|r| {
                matches!(r, Record::Outcome { run: r_run, account, group_id, outcome, .. }
                    if r_run == run && *account == key.0 && *group_id == key.1
                        && outcome.is_gone())
            })
        });
        assert!(
            settled,
            "no deleted outcome for {key:?}: {:?}",
            contents
                .records
                .iter()
                .filter_map(|r| match r {
                    Record::Intent { run, account, .. }
                    | Record::IntentRef { run, account, .. }
                        if *account == key.0 && *r.group_id() == key.1 =>
                    {
                        Some(format!("intent {run}"))
                    }
                    Record::Outcome {
                        run,
                        account,
                        group_id,
                        outcome,
                        ..
                    } if *account == key.0 && *group_id == key.1 =>
                        Some(format!("outcome {run} {outcome:?}")),
                    _ => None,
                })
                .collect::<Vec<_>>()
        );
    }
    assert!(
        contents.unresolved().is_empty(),
        "intents without an outcome: {:?}",
        contents.unresolved()
    );
}

/// Total DELETE requests that reached the fake, answered or not.
pub fn delete_count(fake: &FakeCloudflare) -> usize {
    fake.requests().count(Method::DELETE, Route::Delete)
}

/// The (account, group) every DELETE the fake received was aimed at, answered or not.
pub fn delete_targets(requests: &Requests) -> BTreeSet<(AccountId, GroupId)> {
    requests
        .log()
        .iter()
        .filter(|r| r.method == Method::DELETE)
        .map(|r| {
            let parts: Vec<&str> = r.path.split('/').collect();
            // /client/v4/accounts/{account}/iam/user_groups/{group}
            (
                parts[4].parse().expect("an account id in the path"),
                parts[7].parse().expect("a group id in the path"),
            )
        })
        .collect()
}

/// Asserts that every group of `before` the fake no longer holds has its intent in the
/// journal: nothing is deleted before its backup is on disk.
pub fn assert_every_deletion_was_journaled_first(
    before: &FakeState,
    after: &FakeState,
    contents: &Contents,
) {
    let left = groups_by_id(after);
    for key in groups_by_id(before)
        .into_keys()
        .filter(|k| !left.contains_key(k))
    {
        assert!(
            contents
                .records
                .iter()
                .any(|r| r.is_intent() && *r.account() == key.0 && *r.group_id() == key.1),
            "{key:?} was deleted without an intent in the journal"
        );
    }
}
