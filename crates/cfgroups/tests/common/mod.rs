//! Shared helpers of the apply tests: the fake Cloudflare API on a runtime of its own (so
//! synchronous tests can drive the real binary against it), desired-state files, the
//! `cfgroups` command wired to the fake, and checks over the fake's final state. Driving
//! `cfgroups run` is `tests/daemon_support`'s job.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cfgroups::fake_api::{
    FakeCloudflare, FakeCloudflareBuilder, FakeGroup, FakeMember, FakeState, Requests,
};
use cfgroups::model::{AccountId, GroupId};

pub const TOKEN: &str = "apply-test-token";

/// The `n`-th test account id.
pub fn account(n: usize) -> AccountId {
    format!("a{n:031x}").parse().unwrap()
}

/// A group id unique per (account, group) number.
pub fn group_id(account: usize, n: usize) -> GroupId {
    format!("{account:08x}{n:024x}").parse().unwrap()
}

/// A member id.
pub fn member_id(n: usize) -> String {
    format!("e{n:031x}")
}

/// A group with `members` members and one policy, so backups have something to carry.
pub fn group(account: usize, n: usize, name: &str, members: usize) -> FakeGroup {
    let mut group = FakeGroup::new(group_id(account, n), name).with_members(
        (0..members)
            .map(|m| FakeMember::new(member_id(n * 10 + m), format!("m{n}-{m}@example.com")))
            .collect(),
    );
    group.policies = serde_json::json!([{
        "id": format!("{:032x}", n),
        "access": "allow",
        "permission_groups": [{"id": "c8fed203ed3043cba015a93ad1616f1f", "name": "Zone Read"}],
        "resource_groups": [{"id": "6d7f2f5f5b1d4a0a9b0a2b2a3b3c4d5e", "scope": {"key": "com.cloudflare.api.account.a", "objects": []}}]
    }]);
    group
}

/// The fake Cloudflare API served from a runtime of its own: synchronous tests can run the
/// real binary against it while it answers. Dropping it shuts the server down.
pub struct Fake {
    fake: Option<FakeCloudflare>,
    runtime: tokio::runtime::Runtime,
}

impl Fake {
    /// A fake with the test token, a limit that never bites, and `state`.
    pub fn start(state: FakeState) -> Self {
        Self::start_with(Self::builder().state(state))
    }

    pub fn builder() -> FakeCloudflareBuilder {
        FakeCloudflare::builder()
            .token(TOKEN)
            .rate_limit(1_000_000, Duration::from_secs(1))
            .seed(7)
    }

    pub fn start_with(builder: FakeCloudflareBuilder) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let fake = runtime.block_on(builder.start()).unwrap();
        Self {
            fake: Some(fake),
            runtime,
        }
    }

    pub fn api(&self) -> &FakeCloudflare {
        self.fake.as_ref().unwrap()
    }

    /// Waits until the request accounting satisfies `condition`; panics after `timeout`.
    pub fn wait_for(&self, timeout: Duration, condition: impl Fn(&Requests) -> bool) -> Requests {
        self.runtime
            .block_on(self.api().wait_for_requests(timeout, condition))
            .expect("the fake never saw the expected requests")
    }

    /// Waits until every request that arrived has been answered (or abandoned).
    pub fn wait_idle(&self) {
        self.wait_for(Duration::from_secs(30), |r| r.log().len() == r.total());
    }
}

impl std::ops::Deref for Fake {
    type Target = FakeCloudflare;

    fn deref(&self) -> &FakeCloudflare {
        self.api()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(fake) = self.fake.take() {
            self.runtime.block_on(fake.shutdown());
        }
    }
}

/// The path of the `cfgroups` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cfgroups"))
}

/// `cfgroups` pointed at `fake`, with the test token and a clean environment.
pub fn cfgroups(fake: &Fake) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin());
    cmd.env("CLOUDFLARE_BASE_URL", fake.base_url())
        .env("CLOUDFLARE_API_TOKEN", TOKEN)
        .env_remove("CLOUDFLARE_EMAIL")
        .env_remove("CLOUDFLARE_API_KEY")
        .env_remove("CFGROUPS_CONFIG")
        .env_remove("STATE_DIRECTORY")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    cmd
}

/// `cfgroups apply --yes` for `config`, journaling under `state`.
pub fn apply(fake: &Fake, config: &Path, state: &Path) -> std::process::Command {
    let mut cmd = cfgroups(fake);
    cmd.arg("apply")
        .arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        .arg("--yes");
    cmd
}

/// A finished command, with its output as text.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

pub fn run(cmd: &mut std::process::Command) -> Run {
    let output = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .expect("cfgroups runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// One account of a desired-state file.
#[derive(Debug, Clone, Default)]
pub struct AccountConfig {
    pub id: Option<AccountId>,
    pub unmanaged: Option<&'static str>,
    pub max_deletes: Option<u32>,
    pub protect: Vec<String>,
    /// `(name, id, state)` lines.
    pub groups: Vec<(Option<String>, Option<GroupId>, &'static str)>,
}

impl AccountConfig {
    pub fn new(id: AccountId) -> Self {
        Self {
            id: Some(id),
            ..Self::default()
        }
    }

    pub fn absent(mut self, name: &str) -> Self {
        self.groups.push((Some(name.to_owned()), None, "absent"));
        self
    }

    pub fn present(mut self, name: &str) -> Self {
        self.groups.push((Some(name.to_owned()), None, "present"));
        self
    }

    pub fn absent_id(mut self, id: &GroupId, name: &str) -> Self {
        self.groups
            .push((Some(name.to_owned()), Some(id.clone()), "absent"));
        self
    }
}

/// Writes a desired-state file for `accounts` and returns its path.
pub fn write_config(dir: &Path, accounts: &[AccountConfig]) -> PathBuf {
    let mut text = String::from("version: 1\naccounts:\n");
    for account in accounts {
        text.push_str(&format!("  - id: {}\n", account.id.as_ref().unwrap()));
        if let Some(unmanaged) = account.unmanaged {
            text.push_str(&format!("    unmanaged: {unmanaged}\n"));
        }
        if let Some(max) = account.max_deletes {
            text.push_str(&format!("    max_deletes: {max}\n"));
        }
        if !account.protect.is_empty() {
            let quoted: Vec<String> = account.protect.iter().map(|p| format!("{p:?}")).collect();
            text.push_str(&format!("    protect: [{}]\n", quoted.join(", ")));
        }
        text.push_str("    groups:\n");
        if account.groups.is_empty() {
            text.truncate(text.len() - "    groups:\n".len());
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
            text.push_str(&format!("      - {{{}}}\n", fields.join(", ")));
        }
    }
    let path = dir.join("groups.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Every group of every account, by (account, id).
pub fn groups_by_id(state: &FakeState) -> BTreeMap<(AccountId, GroupId), FakeGroup> {
    state
        .accounts
        .iter()
        .flat_map(|(account, entry)| {
            entry
                .groups
                .iter()
                .map(move |g| ((account.clone(), g.id.clone()), g.clone()))
        })
        .collect()
}

/// Asserts that `after` is `before` minus exactly the groups in `deleted`, every other
/// group untouched, and returns nothing; `allowed` are the groups the plan may delete.
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
pub fn journal(state: &Path) -> cfgroups::journal::Contents {
    cfgroups::journal::read(&state.join(cfgroups::journal::JOURNAL_FILE)).unwrap()
}

/// A pseudo-random generator for test choices, seeded for reproducibility.
pub fn rng(seed: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed)
}

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
        let mut config = AccountConfig::new(id.clone());
        config.max_deletes = Some(absent as u32 + 10);
        config.protect = vec!["SCIM-*".to_owned()];
        config.unmanaged = Some(if pruning { "delete" } else { "report" });
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

/// A budget so wide it never waits: for tests about behaviour, not pacing.
pub fn unlimited(cmd: &mut std::process::Command) -> &mut std::process::Command {
    cmd.args(["--max-requests", "1000000", "--budget-window", "1s"])
}

/// Asserts the journal holds, for every planned group, an intent with the group as the fake
/// held it (name, policies) and its members, and a `deleted` or `already_absent` outcome
/// of the same run; and no other intent.
pub fn assert_journal_covers(contents: &cfgroups::journal::Contents, scenario: &Scenario) {
    use cfgroups::journal::{Outcome, Record};
    let before = groups_by_id(&scenario.state);
    let mut intents = BTreeMap::new();
    for record in &contents.records {
        if let Record::Intent {
            run,
            account,
            group,
            members,
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
            assert_eq!(group.policies.as_ref(), Some(&live.policies));
            let ids: Vec<&str> = members
                .as_ref()
                .expect("members backed up")
                .iter()
                .map(|m| m["id"].as_str().unwrap())
                .collect();
            let mut live_ids: Vec<&str> = live.members.iter().map(|m| m.id.as_str()).collect();
            let mut ids_sorted = ids.clone();
            ids_sorted.sort();
            live_ids.sort();
            assert_eq!(ids_sorted, live_ids, "members of {}", group.id);
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
                        && matches!(outcome, Outcome::Deleted | Outcome::AlreadyAbsent))
            })
        });
        assert!(
            settled,
            "no deleted outcome for {key:?}: {:?}",
            contents
                .records
                .iter()
                .filter_map(|r| match r {
                    Record::Intent {
                        run,
                        account,
                        group,
                        ..
                    } if *account == key.0 && group.id == key.1 => Some(format!("intent {run}")),
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

/// `name` from the environment, parsed, or `default` when it is unset; panics on a value that
/// does not parse, so a typo in a long-run command is not silently a short run.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} does not parse")),
        Err(_) => default,
    }
}

/// The (account, group) every DELETE the fake received was aimed at, answered or not.
pub fn delete_targets(requests: &Requests) -> BTreeSet<(AccountId, GroupId)> {
    requests
        .log()
        .iter()
        .filter(|r| r.method == cfgroups::fake_api::Method::DELETE)
        .map(|r| {
            let parts: Vec<&str> = r.path.split('/').collect();
            // /client/v4/accounts/{account}/iam/user_groups/{group}
            (parts[4].parse().unwrap(), parts[7].parse().unwrap())
        })
        .collect()
}

/// Every group of `before` the fake no longer holds has its intent in the journal: nothing
/// is deleted before its backup is on disk.
pub fn assert_every_deletion_was_journaled_first(
    before: &FakeState,
    after: &FakeState,
    contents: &cfgroups::journal::Contents,
) {
    use cfgroups::journal::Record;
    let left = groups_by_id(after);
    for key in groups_by_id(before)
        .into_keys()
        .filter(|k| !left.contains_key(k))
    {
        assert!(
            contents.records.iter().any(|r| matches!(r,
                Record::Intent { account, group, .. } if *account == key.0 && group.id == key.1)),
            "{key:?} was deleted without an intent in the journal"
        );
    }
}
