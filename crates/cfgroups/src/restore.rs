//! Recreating a deleted group from its journal backup: deciding what is left to do (only a
//! group whose deletion is recorded as done, and only once unless asked again; a restore
//! that stopped after creating the group is finished, not repeated), then doing it through a
//! [`GroupWriter`], journaling the new group as soon as it exists.
//!
//! One restore at a time: the journal's restore lock ([`RestoreLock`]) is held from reading
//! the journal to recording the new group, so two restores of the same group create one.
//! A "restore started" record is journaled (synced) before the create request: if its
//! answer is lost, the next restore looks the group up by name (only groups created after
//! the deletion count) and adopts it instead of creating a second copy, or refuses when it
//! cannot tell.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use thiserror::Error;

use crate::config::DesiredState;
use crate::journal::{self, Journal, JournalError, Record, RestoreLock};
use crate::model::{AccountId, DeletionOutcome, GroupId, Observed, ObservedGroup};
use crate::plan::{self, Action, PlanOptions};
use crate::writer::{GroupWriter, WriteError};

/// Why a restore did not happen, or did not finish.
#[derive(Debug, Error)]
pub enum RestoreError {
    #[error("no backup of group {group} in {journal}{damaged}")]
    NoBackup {
        group: GroupId,
        journal: String,
        /// A note on the journal's damaged lines, if it has any.
        damaged: String,
    },
    #[error(
        "the backup of group {group} is damaged: line {line} of {journal} names the group but \
         is not a readable record (`cfgroups journal` lists damaged lines). Nothing was \
         created. Repair the line from a copy of the journal, or recreate the group by hand \
         from what the line still shows"
    )]
    BackupDamaged {
        group: GroupId,
        journal: String,
        line: usize,
    },
    #[error(
        "line {line} of {journal} names group {group} and comes after its latest readable \
         backup (line {backup_line}), but is not a readable record: it may hold a later \
         backup or outcome. Nothing was created. Repair or remove the line (`cfgroups \
         journal` lists damaged lines), then run the restore again"
    )]
    LaterLineDamaged {
        group: GroupId,
        journal: String,
        line: usize,
        backup_line: usize,
    },
    #[error(
        "group {group} was not deleted (its last recorded outcome is failed: {error}); \
         nothing to restore. If it is gone all the same, the next `apply` (or daemon \
         reconcile) records that from a fresh listing"
    )]
    DeleteFailed { group: GroupId, error: String },
    #[error(
        "group {group} was not deleted (its last recorded outcome is missing: the \
         deletion was interrupted); nothing to restore. The next `apply` (or daemon \
         reconcile) settles it from a fresh listing"
    )]
    DeleteInterrupted { group: GroupId },
    #[error(
        "group {group} was already restored as {new_group_id}; pass --again to create \
         another copy"
    )]
    AlreadyRestored {
        group: GroupId,
        new_group_id: GroupId,
    },
    #[error(
        "the backup of group {group} has a policy without `access` (policy {policy}); \
         refusing to guess whether it allowed or denied. Nothing was created"
    )]
    PolicyWithoutAccess { group: GroupId, policy: String },
    #[error(
        "the backup of group {group} holds policies of an unexpected shape ({source}); \
         nothing was created"
    )]
    Policies {
        group: GroupId,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "an earlier restore of group {group} (started {started}) sent its create request but \
         never learned the answer, so group {name:?} may exist already, and cfgroups cannot \
         tell which: {why}. Nothing was created. Check the groups named {name:?} in account \
         {account} (Cloudflare dashboard, or `cfgroups export --account {account}`); if one \
         is the restored group, delete the others; to create a copy anyway, pass --again"
    )]
    Unknown {
        group: GroupId,
        account: AccountId,
        name: String,
        started: String,
        why: String,
    },
    #[error("cannot recreate group {name:?}: {source}")]
    Create {
        name: String,
        #[source]
        source: WriteError,
    },
    #[error(
        "group {name:?} was recreated as {new_group_id} but the journal could not record it: {source}"
    )]
    RecordCreated {
        name: String,
        new_group_id: GroupId,
        #[source]
        source: JournalError,
    },
    #[error(
        "group {name:?} was recreated as {new_group_id} but its members could not be added; \
         re-run `cfgroups restore --group {group}` to add them to {new_group_id}: {source}"
    )]
    AddMembers {
        name: String,
        group: GroupId,
        new_group_id: GroupId,
        #[source]
        source: WriteError,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// What a restore has left to do for a group, from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreStep {
    /// Create the group, then add its members.
    Create,
    /// The group was recreated as this id but its members were never added: add them only.
    AddMembers(GroupId),
    /// An earlier restore's create went out without an answer, and the lookup by name found
    /// the group it created: adopt it and add the members.
    Adopt(GroupId),
}

/// What the journal says a restore should do, before any lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Step(RestoreStep),
    /// An earlier restore started the create and never recorded the answer, at `started`.
    Unknown {
        started: String,
    },
}

/// How to restore.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions<'a> {
    /// Create another copy of a group already restored (or whose earlier restore has an
    /// unknown outcome).
    pub again: bool,
    /// The desired state the restored group will meet: warn when it would delete it again.
    pub desired: Option<&'a DesiredState>,
}

/// A finished restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub account: AccountId,
    pub name: String,
    pub new_group_id: GroupId,
    /// Members added to the new group.
    pub members: usize,
    /// What this run did: create the group, adopt it, or only finish an earlier restore's
    /// members.
    pub step: RestoreStep,
    /// Whether the backup carried members at all (not with `--no-backup-members`).
    pub members_backed_up: bool,
    /// What a person should know: a namesake exists, the config would delete it again.
    pub warnings: Vec<String>,
}

fn decide(
    outcome: Option<&DeletionOutcome>,
    latest_restore: Option<&Record>,
    group: &GroupId,
    again: bool,
) -> Result<Decision, RestoreError> {
    match outcome {
        Some(DeletionOutcome::Deleted | DeletionOutcome::AlreadyAbsent) => {}
        Some(DeletionOutcome::Failed { error, .. } | DeletionOutcome::Moved { reason: error }) => {
            return Err(RestoreError::DeleteFailed {
                group: group.clone(),
                error: error.clone(),
            });
        }
        None => {
            return Err(RestoreError::DeleteInterrupted {
                group: group.clone(),
            });
        }
    }
    if again {
        return Ok(Decision::Step(RestoreStep::Create));
    }
    match latest_restore {
        Some(Record::Restore {
            new_group_id,
            members_restored: false,
            ..
        }) => Ok(Decision::Step(RestoreStep::AddMembers(
            new_group_id.clone(),
        ))),
        Some(Record::Restore { new_group_id, .. }) => Err(RestoreError::AlreadyRestored {
            group: group.clone(),
            new_group_id: new_group_id.clone(),
        }),
        Some(Record::RestoreStarted { at, .. }) => Ok(Decision::Unknown {
            started: at.clone(),
        }),
        _ => Ok(Decision::Step(RestoreStep::Create)),
    }
}

/// What the journal holds for a restore of one group.
struct Found {
    intent: journal::index::IntentEntry,
    outcome: Option<DeletionOutcome>,
    backup: Option<journal::index::BackupAt>,
    latest_restore: Option<Record>,
    unreadable: Vec<journal::index::Unreadable>,
}

/// Restores `group` from the latest backup in `journal`, creating it through `writer`.
/// The journal records the new group as soon as it exists, and again once its members are
/// added, so an interrupted restore is finished by running it again.
pub async fn restore<W: GroupWriter>(
    journal: &Journal,
    group: &GroupId,
    options: RestoreOptions<'_>,
    writer: &W,
) -> Result<Restored, RestoreError> {
    let lock_path = journal.path().to_owned();
    let _lock = tokio::task::spawn_blocking(move || RestoreLock::acquire(&lock_path))
        .await
        .unwrap_or_else(|join| {
            Err(JournalError::Io {
                path: journal::restore_lock::lock_path(journal.path()),
                source: std::io::Error::other(join.to_string()),
            })
        })?;
    let journal_name = journal.path().display().to_string();
    let (found, unreadable) = journal.with_index(|index| {
        let unreadable = index.unreadable().to_vec();
        let found = index.latest(group).map(|latest| Found {
            intent: latest.intent.clone(),
            outcome: latest.outcome.clone(),
            backup: index.backup(&latest.intent.account, group).cloned(),
            latest_restore: index
                .latest_restore(&latest.intent.account, group)
                .map(|(_, record)| record.clone()),
            unreadable: unreadable.clone(),
        });
        (found, unreadable)
    })?;
    // Damaged lines that name the group: a backup or outcome that cannot be read.
    let mut damaged = Vec::new();
    for line in &unreadable {
        let bytes = journal.bytes_at(line.offset, line.line)?;
        if contains(&bytes, group.as_str().as_bytes()) {
            damaged.push(line.line);
        }
    }
    let Some(found) = found else {
        if let Some(&line) = damaged.last() {
            return Err(RestoreError::BackupDamaged {
                group: group.clone(),
                journal: journal_name,
                line,
            });
        }
        return Err(RestoreError::NoBackup {
            group: group.clone(),
            journal: journal_name,
            damaged: damaged_note(&unreadable),
        });
    };
    if let Some(&line) = damaged.iter().find(|line| **line > found.intent.line) {
        return Err(RestoreError::LaterLineDamaged {
            group: group.clone(),
            journal: journal_name,
            line,
            backup_line: found.intent.line,
        });
    }
    let account = found.intent.account.clone();
    let decision = decide(
        found.outcome.as_ref(),
        found.latest_restore.as_ref(),
        group,
        options.again,
    )?;
    let (backup, members) = read_backup(journal, &found, group, &damaged, &journal_name)?;
    let policies = creatable_policies(&backup)?;
    let member_ids: Vec<String> = members
        .iter()
        .flatten()
        .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();

    let mut warnings = Vec::new();
    let step = match decision {
        Decision::Step(RestoreStep::Create) => {
            match writer.groups_named(&account, &backup.name).await {
                Ok(namesakes) if !namesakes.is_empty() => {
                    warnings.push(namesake_warning(&account, &backup.name, &namesakes))
                }
                Ok(_) => {}
                Err(e) => warnings.push(format!(
                    "could not check whether a group named {:?} exists already: {e}",
                    backup.name
                )),
            }
            RestoreStep::Create
        }
        Decision::Step(step) => step,
        Decision::Unknown { started } => {
            let unknown = |why: String| RestoreError::Unknown {
                group: group.clone(),
                account: account.clone(),
                name: backup.name.clone(),
                started: started.clone(),
                why,
            };
            let namesakes = writer
                .groups_named(&account, &backup.name)
                .await
                .map_err(|e| unknown(format!("the lookup by name failed: {e}")))?;
            match created_since(&namesakes, &found.intent.at).map_err(unknown)? {
                Some(adopted) => {
                    let others: Vec<ObservedGroup> = namesakes
                        .iter()
                        .filter(|g| g.id != adopted)
                        .cloned()
                        .collect();
                    if !others.is_empty() {
                        warnings.push(namesake_warning(&account, &backup.name, &others));
                    }
                    RestoreStep::Adopt(adopted)
                }
                None => {
                    if !namesakes.is_empty() {
                        warnings.push(namesake_warning(&account, &backup.name, &namesakes));
                    }
                    RestoreStep::Create
                }
            }
        }
    };

    let restore_run = journal::new_run_id();
    let record = |new_group_id: &GroupId, members_restored: bool| Record::Restore {
        at: journal::now(),
        run: restore_run.clone(),
        account: account.clone(),
        group_id: group.clone(),
        new_group_id: new_group_id.clone(),
        members_restored,
    };
    // A group without members to add is finished as soon as it exists.
    let finished_on_record = member_ids.is_empty();
    let new_group_id = match &step {
        RestoreStep::AddMembers(new_group_id) => new_group_id.clone(),
        RestoreStep::Adopt(new_group_id) => {
            journal.append(&record(new_group_id, finished_on_record))?;
            new_group_id.clone()
        }
        RestoreStep::Create => {
            journal.append(&Record::RestoreStarted {
                at: journal::now(),
                run: restore_run.clone(),
                account: account.clone(),
                group_id: group.clone(),
                name: backup.name.clone(),
            })?;
            let created = writer
                .create_group(&account, &backup.name, &policies)
                .await
                .map_err(|source| RestoreError::Create {
                    name: backup.name.clone(),
                    source,
                })?;
            journal
                .append(&record(&created.id, finished_on_record))
                .map_err(|source| RestoreError::RecordCreated {
                    name: backup.name.clone(),
                    new_group_id: created.id.clone(),
                    source,
                })?;
            created.id
        }
    };
    if !member_ids.is_empty() {
        writer
            .add_members(&account, &new_group_id, &member_ids)
            .await
            .map_err(|source| RestoreError::AddMembers {
                name: backup.name.clone(),
                group: group.clone(),
                new_group_id: new_group_id.clone(),
                source,
            })?;
        journal.append(&record(&new_group_id, true))?;
    }
    if let Some(desired) = options.desired {
        let restored = ObservedGroup {
            id: new_group_id.clone(),
            ..backup.clone()
        };
        if let Some(warning) = deleted_again(desired, &account, &restored) {
            warnings.push(warning);
        }
    }
    Ok(Restored {
        account,
        name: backup.name.clone(),
        new_group_id,
        members: member_ids.len(),
        step,
        members_backed_up: members.is_some(),
        warnings,
    })
}

/// The backup the latest intent holds or refers to, read from its line.
fn read_backup(
    journal: &Journal,
    found: &Found,
    group: &GroupId,
    damaged: &[usize],
    journal_name: &str,
) -> Result<(ObservedGroup, Option<Vec<Value>>), RestoreError> {
    let damaged_backup = || match damaged.last() {
        Some(&line) => RestoreError::BackupDamaged {
            group: group.clone(),
            journal: journal_name.to_owned(),
            line,
        },
        None => RestoreError::NoBackup {
            group: group.clone(),
            journal: journal_name.to_owned(),
            damaged: format!(
                " (line {} refers to an earlier backup, sha256 {}, that is not in the journal{})",
                found.intent.line,
                found.intent.backup_sha256,
                damaged_note(&found.unreadable)
            ),
        },
    };
    let Some(at) = found
        .backup
        .as_ref()
        .filter(|at| at.backup_sha256 == found.intent.backup_sha256)
    else {
        return Err(damaged_backup());
    };
    match journal.record_at(at.offset, at.line)? {
        Some(Record::Intent { group, members, .. }) => Ok((group, members)),
        _ => Err(RestoreError::BackupDamaged {
            group: group.clone(),
            journal: journal_name.to_owned(),
            line: at.line,
        }),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn damaged_note(unreadable: &[journal::index::Unreadable]) -> String {
    if unreadable.is_empty() {
        return String::new();
    }
    let lines: Vec<String> = unreadable.iter().map(|u| u.line.to_string()).collect();
    format!(
        "; note: line(s) {} of it are damaged and may have held it (`cfgroups journal` lists them)",
        lines.join(", ")
    )
}

fn namesake_warning(account: &AccountId, name: &str, namesakes: &[ObservedGroup]) -> String {
    let ids: Vec<&str> = namesakes.iter().map(|g| g.id.as_str()).collect();
    format!(
        "a group named {name:?} already exists in account {account} ({}): the restored group \
         shares its name, and a declaration by that name matches neither while both exist",
        ids.join(", ")
    )
}

/// Among `namesakes`, the one group created after the deletion (journaled at `deleted_at`),
/// `None` when there is none; an error saying why when that cannot be told.
fn created_since(namesakes: &[ObservedGroup], deleted_at: &str) -> Result<Option<GroupId>, String> {
    let parse = |at: &str| humantime::parse_rfc3339_weak(at).ok();
    let deleted = parse(deleted_at)
        .ok_or_else(|| format!("the deletion's time {deleted_at:?} cannot be read"))?;
    let mut created_after = Vec::new();
    for group in namesakes {
        let created = group
            .created_on
            .as_deref()
            .and_then(parse)
            .ok_or_else(|| format!("group {} does not say when it was created", group.id))?;
        if created >= deleted {
            created_after.push(group.id.clone());
        }
    }
    match created_after.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        several => Err(format!(
            "{} groups by that name were created after the deletion: {}",
            several.len(),
            several
                .iter()
                .map(GroupId::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// A warning when `desired` would delete `restored` (in `account`) again: declared absent
/// by name, or unmanaged under `unmanaged: delete`. The same planner as `plan` decides.
fn deleted_again(
    desired: &DesiredState,
    account: &AccountId,
    restored: &ObservedGroup,
) -> Option<String> {
    let rules = desired.accounts.iter().find(|a| a.id == *account)?;
    let observed: Observed = [(account.clone(), Ok(vec![restored.clone()]))]
        .into_iter()
        .collect();
    let plan = plan::plan(desired, &observed, PlanOptions::default());
    let item = plan
        .accounts
        .iter()
        .flat_map(|a| &a.items)
        .find(|item| item.action == Action::Delete && item.id.as_ref() == Some(&restored.id))?;
    let why = match item.cause {
        plan::Cause::DeclaredAbsent => "it is declared absent".to_owned(),
        _ => "it is not declared and the account has `unmanaged: delete`".to_owned(),
    };
    Some(format!(
        "{} would delete the restored group {:?} ({}) again: {why}; change the config before \
         the next apply or daemon cycle",
        rules.file.display(),
        restored.name,
        restored.id
    ))
}

/// The policies of a backed-up group (the journal's raw JSON text), reduced to what the
/// create endpoint accepts: each policy's `access` and the ids of its permission and
/// resource groups, every value copied as the text it was. A policy without `access` is
/// refused: defaulting it would turn a lost `deny` into an `allow`.
///
/// This is the only place backed-up policies are parsed, and only what the create shape
/// needs: values are borrowed from the text, unknown keys are skipped unread, and numbers
/// no float holds do not matter.
pub fn creatable_policies(group: &ObservedGroup) -> Result<Box<RawValue>, RestoreError> {
    let unexpected = |source| RestoreError::Policies {
        group: group.id.clone(),
        source,
    };
    let listed: Vec<ListedPolicy<'_>> = match group.policies.as_deref() {
        Some(text) => Option::<Vec<ListedPolicy<'_>>>::deserialize(
            &mut serde_json::Deserializer::from_str(text.get()),
        )
        .map_err(unexpected)?
        .unwrap_or_default(),
        None => Vec::new(),
    };
    let creatable = listed
        .into_iter()
        .enumerate()
        .map(|(n, policy)| {
            let access = policy
                .access
                .filter(|access| access.get().starts_with('"'))
                .ok_or_else(|| RestoreError::PolicyWithoutAccess {
                    group: group.id.clone(),
                    policy: policy
                        .id
                        .and_then(|id| serde_json::from_str::<String>(id.get()).ok())
                        .unwrap_or_else(|| format!("#{}", n + 1)),
                })?;
            Ok(CreatablePolicy {
                access,
                permission_groups: ids(policy.permission_groups),
                resource_groups: ids(policy.resource_groups),
            })
        })
        .collect::<Result<Vec<_>, RestoreError>>()?;
    serde_json::value::to_raw_value(&creatable).map_err(unexpected)
}

/// The ids of listed permission or resource groups; groups without one are left out.
fn ids(groups: Option<Vec<WithId<'_>>>) -> Vec<IdOnly<'_>> {
    groups
        .into_iter()
        .flatten()
        .filter_map(|group| group.id.map(|id| IdOnly { id }))
        .collect()
}

/// A listed policy, as far as the create shape (and naming it) needs.
#[derive(Deserialize)]
struct ListedPolicy<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    access: Option<&'a RawValue>,
    #[serde(borrow, default)]
    permission_groups: Option<Vec<WithId<'a>>>,
    #[serde(borrow, default)]
    resource_groups: Option<Vec<WithId<'a>>>,
}

/// A listed permission or resource group: only its id matters.
#[derive(Deserialize)]
struct WithId<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

/// A policy as the create endpoint takes it.
#[derive(Serialize)]
struct CreatablePolicy<'a> {
    access: &'a RawValue,
    permission_groups: Vec<IdOnly<'a>>,
    resource_groups: Vec<IdOnly<'a>>,
}

#[derive(Serialize)]
struct IdOnly<'a> {
    id: &'a RawValue,
}

#[cfg(test)]
mod tests {
    //! Restores over an in-memory API: the lock, the lost create answer, the warnings, the
    //! refused policy, damaged and referenced backups.

    use std::path::Path;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::journal::JOURNAL_FILE;
    use crate::writer::WriteErrorKind;

    fn raw(value: Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(&value).unwrap()
    }

    /// The create shape as a tree, to compare.
    fn creatable(group: &ObservedGroup) -> Value {
        serde_json::from_str(creatable_policies(group).unwrap().get()).unwrap()
    }

    const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    fn account() -> AccountId {
        ACCOUNT.parse().unwrap()
    }

    fn deleted(n: u8, name: &str) -> ObservedGroup {
        ObservedGroup {
            id: format!("{n:032x}").parse().unwrap(),
            name: name.to_owned(),
            created_on: Some("2024-03-01T12:21:02Z".into()),
            modified_on: None,
            policies: Some(raw(
                json!([{"id": "p1", "access": "deny", "permission_groups": [{"id": "pg"}]}]),
            )),
        }
    }

    /// How the in-memory API answers a create.
    #[derive(Clone, Copy, PartialEq)]
    enum Create {
        Normal,
        /// Creates the group, then the answer is lost.
        LostAnswer,
        /// Waits (up to a bound) until a second create is in flight, to let a race happen.
        Slow,
    }

    struct MemoryApi {
        groups: Mutex<Vec<ObservedGroup>>,
        creates: AtomicUsize,
        in_create: AtomicUsize,
        create: Mutex<Create>,
        next_id: AtomicUsize,
    }

    impl MemoryApi {
        fn new(groups: Vec<ObservedGroup>, create: Create) -> Self {
            Self {
                groups: Mutex::new(groups),
                creates: AtomicUsize::new(0),
                in_create: AtomicUsize::new(0),
                create: Mutex::new(create),
                next_id: AtomicUsize::new(0xa0),
            }
        }
    }

    impl GroupWriter for MemoryApi {
        async fn get_group(
            &self,
            _account: &AccountId,
            group: &GroupId,
        ) -> Result<Option<ObservedGroup>, WriteError> {
            Ok(self
                .groups
                .lock()
                .unwrap()
                .iter()
                .find(|g| g.id == *group)
                .cloned())
        }

        async fn groups_named(
            &self,
            _account: &AccountId,
            name: &str,
        ) -> Result<Vec<ObservedGroup>, WriteError> {
            Ok(self
                .groups
                .lock()
                .unwrap()
                .iter()
                .filter(|g| g.name == name)
                .cloned()
                .collect())
        }

        async fn list_members(
            &self,
            _account: &AccountId,
            _group: &GroupId,
        ) -> Result<Vec<Value>, WriteError> {
            Ok(Vec::new())
        }

        async fn delete_group(&self, _account: &AccountId, _group: &GroupId) -> DeletionOutcome {
            DeletionOutcome::Deleted
        }

        async fn create_group(
            &self,
            _account: &AccountId,
            name: &str,
            policies: &RawValue,
        ) -> Result<ObservedGroup, WriteError> {
            let mode = *self.create.lock().unwrap();
            if mode == Create::Slow {
                self.in_create.fetch_add(1, Ordering::SeqCst);
                let started = std::time::Instant::now();
                while self.in_create.load(Ordering::SeqCst) < 2
                    && started.elapsed() < Duration::from_millis(300)
                {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            self.creates.fetch_add(1, Ordering::SeqCst);
            let n = self.next_id.fetch_add(1, Ordering::SeqCst);
            let created = ObservedGroup {
                id: format!("{n:032x}").parse().unwrap(),
                name: name.to_owned(),
                created_on: Some(journal::now()),
                modified_on: None,
                policies: Some(policies.to_owned()),
            };
            self.groups.lock().unwrap().push(created.clone());
            if mode == Create::LostAnswer {
                *self.create.lock().unwrap() = Create::Normal;
                return Err(WriteError {
                    kind: WriteErrorKind::Unavailable,
                    message: "connection reset".to_owned(),
                });
            }
            Ok(created)
        }

        async fn add_members(
            &self,
            _account: &AccountId,
            _group: &GroupId,
            _member_ids: &[String],
        ) -> Result<(), WriteError> {
            Ok(())
        }
    }

    /// A journal recording the deletion of `group` (with one member), under `dir`.
    fn journal_with_deleted(dir: &Path, group: &ObservedGroup) -> Journal {
        let journal = Journal::open(&dir.join(JOURNAL_FILE)).unwrap();
        journal
            .append_intent(
                "r1",
                &account(),
                group,
                Some(vec![json!({"id": "m1", "email": "a@example.com"})]),
            )
            .unwrap();
        journal
            .append(&Record::Outcome {
                at: journal::now(),
                run: "r1".into(),
                account: account(),
                group_id: group.id.clone(),
                outcome: DeletionOutcome::Deleted,
            })
            .unwrap();
        journal
    }

    #[test]
    fn policies_are_reduced_to_the_create_shape() {
        let mut group = deleted(1, "G");
        group.policies = Some(raw(json!([{
            "id": "f267e341f3dd4697bd3b9f71dd96247f", "access": "deny",
            "permission_groups": [{"id": "p1", "name": "Admin", "meta": {"k": "v"}}],
            "resource_groups": [{"id": "r1", "scope": {"key": "k", "objects": []}},
                                {"name": "no id"},
                                {"id": "r2", "scope": [{"key": "k2", "objects": [{"key": "*"}]}]}]
        }, {"access": "allow", "permission_groups": null}])));
        assert_eq!(
            creatable(&group),
            json!([
                {"access": "deny", "permission_groups": [{"id": "p1"}],
                 "resource_groups": [{"id": "r1"}, {"id": "r2"}]},
                {"access": "allow", "permission_groups": [], "resource_groups": []}
            ])
        );
        group.policies = None;
        assert_eq!(creatable(&group), json!([]));
        group.policies = Some(raw(Value::Null));
        assert_eq!(creatable(&group), json!([]));
    }

    #[test]
    fn what_the_create_shape_does_not_need_is_not_read() {
        let mut group = deleted(1, "G");
        group.policies = Some(
            RawValue::from_string(
                r#"[{"access":"allow","condition":{"n":1e400,"m":[1.0E-5,123456789012345678901234567890]},
                    "permission_groups":[{"id":"p\u00e9","meta":{"x":-1e-400}}],"resource_groups":[]}]"#
                    .to_owned(),
            )
            .unwrap(),
        );
        assert_eq!(
            creatable_policies(&group).unwrap().get(),
            r#"[{"access":"allow","permission_groups":[{"id":"p\u00e9"}],"resource_groups":[]}]"#
        );
    }

    #[test]
    fn policies_of_another_shape_are_refused() {
        let mut group = deleted(1, "G");
        for listed in [
            r#"{"access":"allow"}"#,
            r#"["allow"]"#,
            r#"[{"access":"allow","permission_groups":"p1"}]"#,
        ] {
            group.policies = Some(RawValue::from_string(listed.to_owned()).unwrap());
            assert!(
                matches!(
                    creatable_policies(&group),
                    Err(RestoreError::Policies { .. })
                ),
                "{listed}"
            );
        }
        group.policies = Some(raw(json!([{"id": "x", "access": 1}])));
        assert!(matches!(
            creatable_policies(&group),
            Err(RestoreError::PolicyWithoutAccess { policy, .. }) if policy == "x"
        ));
    }

    #[tokio::test]
    async fn a_policy_without_access_is_refused_naming_it_and_nothing_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let mut group = deleted(1, "No Access");
        group.policies = Some(raw(json!([
            {"id": "aaaa", "access": "allow"},
            {"id": "bbbb", "permission_groups": [{"id": "pg"}]}
        ])));
        let journal = journal_with_deleted(dir.path(), &group);
        let api = MemoryApi::new(Vec::new(), Create::Normal);
        let error = restore(&journal, &group.id, RestoreOptions::default(), &api)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, RestoreError::PolicyWithoutAccess { policy, .. } if policy == "bbbb"),
            "{error}"
        );
        assert_eq!(api.creates.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_concurrent_restores_of_the_same_group_create_one_group() {
        let dir = tempfile::tempdir().unwrap();
        let group = deleted(1, "Raced");
        let path = dir.path().join(JOURNAL_FILE);
        journal_with_deleted(dir.path(), &group);
        let api = MemoryApi::new(Vec::new(), Create::Slow);
        // Two restores, each with its own journal handle, as two processes would have.
        let (first, second) = (Journal::open(&path).unwrap(), Journal::open(&path).unwrap());
        let (a, b) = tokio::join!(
            restore(&first, &group.id, RestoreOptions::default(), &api),
            restore(&second, &group.id, RestoreOptions::default(), &api),
        );
        assert_eq!(api.creates.load(Ordering::SeqCst), 1, "{a:?} {b:?}");
        let refused = [&a, &b]
            .iter()
            .filter(|r| matches!(r, Err(RestoreError::AlreadyRestored { .. })))
            .count();
        assert_eq!(refused, 1, "{a:?} {b:?}");
    }

    #[tokio::test]
    async fn a_lost_create_answer_is_adopted_by_the_rerun_not_created_twice() {
        let dir = tempfile::tempdir().unwrap();
        let group = deleted(1, "Lost");
        let journal = journal_with_deleted(dir.path(), &group);
        let api = MemoryApi::new(Vec::new(), Create::LostAnswer);
        let first = restore(&journal, &group.id, RestoreOptions::default(), &api).await;
        assert!(
            matches!(first, Err(RestoreError::Create { .. })),
            "{first:?}"
        );
        assert_eq!(api.creates.load(Ordering::SeqCst), 1);

        let again = restore(&journal, &group.id, RestoreOptions::default(), &api)
            .await
            .unwrap();
        let created = api.groups.lock().unwrap()[0].id.clone();
        assert_eq!(again.step, RestoreStep::Adopt(created.clone()));
        assert_eq!(again.new_group_id, created);
        assert_eq!(
            api.creates.load(Ordering::SeqCst),
            1,
            "created a second copy"
        );
        // And it is finished: a third run says so.
        let third = restore(&journal, &group.id, RestoreOptions::default(), &api).await;
        assert!(
            matches!(third, Err(RestoreError::AlreadyRestored { .. })),
            "{third:?}"
        );
    }

    #[tokio::test]
    async fn a_lost_create_answer_that_cannot_be_told_apart_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let group = deleted(1, "Lost");
        let journal = journal_with_deleted(dir.path(), &group);
        let api = MemoryApi::new(Vec::new(), Create::LostAnswer);
        restore(&journal, &group.id, RestoreOptions::default(), &api)
            .await
            .unwrap_err();
        // Someone else made a group by that name, and nothing says when.
        let mut other = deleted(7, "Lost");
        other.created_on = None;
        api.groups.lock().unwrap().push(other);
        let error = restore(&journal, &group.id, RestoreOptions::default(), &api)
            .await
            .unwrap_err();
        assert!(matches!(error, RestoreError::Unknown { .. }), "{error}");
        assert!(
            error.to_string().contains("Check the groups named"),
            "{error}"
        );
        assert_eq!(api.creates.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_restore_warns_about_a_namesake_and_a_config_that_deletes_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let group = deleted(1, "Contractors");
        let journal = journal_with_deleted(dir.path(), &group);
        let api = MemoryApi::new(vec![deleted(9, "Contractors")], Create::Normal);
        let yaml = format!(
            "version: 1\naccounts:\n  - id: {ACCOUNT}\n    groups:\n      - {{name: Contractors, state: absent}}\n"
        );
        let desired = crate::config::parse(&yaml, Path::new("groups.yaml")).unwrap();
        let options = RestoreOptions {
            again: false,
            desired: Some(&desired),
        };
        let restored = restore(&journal, &group.id, options, &api).await.unwrap();
        assert_eq!(restored.warnings.len(), 2, "{:?}", restored.warnings);
        assert!(restored.warnings[0].contains("already exists"));
        assert!(restored.warnings[1].contains("would delete the restored group"));
        assert!(restored.warnings[1].contains("declared absent"));
    }

    #[tokio::test]
    async fn a_damaged_backup_line_is_named_instead_of_no_backup() {
        let dir = tempfile::tempdir().unwrap();
        let group = deleted(1, "Damaged");
        let path = dir.path().join(JOURNAL_FILE);
        drop(journal_with_deleted(dir.path(), &group));
        let text = std::fs::read_to_string(&path).unwrap();
        let damaged = text.replacen("\"members\":[", "\"members\":[{,", 1);
        std::fs::write(&path, damaged).unwrap();
        let journal = Journal::open(&path).unwrap();
        let api = MemoryApi::new(Vec::new(), Create::Normal);
        let error = restore(&journal, &group.id, RestoreOptions::default(), &api)
            .await
            .unwrap_err();
        assert!(
            matches!(error, RestoreError::BackupDamaged { line: 1, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("line 1"), "{error}");
        assert_eq!(api.creates.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_unchanged_backup_is_journaled_once_and_a_reference_restores_it() {
        let dir = tempfile::tempdir().unwrap();
        let group = deleted(1, "SCIM");
        let journal = journal_with_deleted(dir.path(), &group);
        let members = Some(vec![json!({"id": "m1", "email": "a@example.com"})]);
        let second = journal
            .append_intent("r2", &account(), &group, members)
            .unwrap();
        assert!(matches!(second, Record::IntentRef { .. }), "{second:?}");
        journal
            .append(&Record::Outcome {
                at: journal::now(),
                run: "r2".into(),
                account: account(),
                group_id: group.id.clone(),
                outcome: DeletionOutcome::Deleted,
            })
            .unwrap();
        let api = MemoryApi::new(Vec::new(), Create::Normal);
        let restored = restore(&journal, &group.id, RestoreOptions::default(), &api)
            .await
            .unwrap();
        assert_eq!((restored.name.as_str(), restored.members), ("SCIM", 1));
        let contents = journal::read(journal.path()).unwrap();
        assert!(contents.backup_of(&group.id).is_some());
    }
}
