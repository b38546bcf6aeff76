//! The plan: a pure diff of the desired state against what the sources observed. No I/O,
//! no async, no clock, so every safety rule it enforces can be tested exhaustively.
//!
//! Per account, every group lands in exactly one [`Action`]. The rules that make deletion
//! safe hold here by construction:
//! - an account whose listing failed plans nothing at all (safety rule 1);
//! - only groups declared `absent`, or unmanaged under `unmanaged: delete`, are candidates
//!   (rule 2);
//! - protected groups and names matching several groups are blocked (rule 4);
//! - more candidates than `max_deletes` blocks every one of them, unless forced (rule 5);
//! - a suspended account deletes nothing: what it would delete is `blocked` (`suspended`).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::config::{DesiredAccount, DesiredGroup, DesiredState, UnmanagedPolicy};
use crate::model::{AccountId, GroupId, GroupState, ListingFailure, Observed, ObservedGroup};
use crate::shown;

/// Knobs of a plan that are not part of the desired state.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Ignore `max_deletes` (one-shot `apply --force` only).
    pub force: bool,
}

/// What happens to one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Will be deleted.
    Delete,
    /// Would be deleted, but a safety rule stops it.
    Blocked,
    /// Declared present, not found.
    Missing,
    /// Found, not declared, and the account reports unmanaged groups.
    Unmanaged,
    /// As declared.
    InSync,
}

/// Why a group is in the plan at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    DeclaredAbsent,
    DeclaredPresent,
    NotDeclared,
}

/// The safety rule that stopped a deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BlockReason {
    /// The group matches a `protect` pattern.
    Protected { pattern: String },
    /// The declared name matches several live groups; deleting any would be a guess.
    AmbiguousName { matches: Vec<GroupId> },
    /// The declared id exists, but under another name than the one declared.
    IdNameMismatch { declared: String, live: String },
    /// The account plans more deletions than its `max_deletes` allows.
    OverMaxDeletes { planned: usize, max: u32 },
    /// Two declarations name the same live group with different states.
    ConflictingDeclarations,
    /// Not declared itself, but its name is the name a declaration gives another group (by
    /// id); pruning it would be a guess about which group the file means.
    NameOfAnotherDeclaredGroup { declared_id: GroupId },
    /// The account is suspended (`suspend: true`, or the daemon's `--suspend-file`): listed
    /// and reported, nothing deleted. `by` says which.
    Suspended { by: String },
}

/// One group's line in the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanItem {
    pub action: Action,
    pub cause: Cause,
    /// The live id when the group was found, else the declared id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<GroupId>,
    /// The live name when the group was found, else the declared name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<BlockReason>,
    /// A human explanation where the action alone would puzzle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The live group to delete, as listed but without its policies (the backup journaled
    /// before the DELETE is the group read fresh). Set on `delete` and `blocked` items.
    #[serde(skip)]
    pub observed: Option<ObservedGroup>,
    /// How a declaration found the live group, for the checks right before its DELETE;
    /// `None` for groups no declaration names.
    #[serde(skip)]
    pub matched_by: Option<MatchedBy>,
    /// How the group's deletion ended, in a report of the state after a cycle's deletions
    /// ([`crate::after_deletions`]); never set by [`plan`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion: Option<crate::after_deletions::Deletion>,
}

/// How a declaration found a live group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// By its id: exact, whatever the group is called.
    Id,
    /// By its name: right only while no other group has the name.
    Name,
}

/// Whether an account's listing could be trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Listing {
    Ok {
        groups: usize,
    },
    ListingFailed {
        error: String,
        /// The HTTP status of the refusal, when an answer came.
        #[serde(skip_serializing_if = "Option::is_none")]
        http_status: Option<u16>,
        /// Cloudflare's error codes, outermost first.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        codes: Vec<i64>,
        /// What to check: token scope, the account id, the base URL.
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
    },
}

impl Listing {
    /// A failed listing, as `failure` describes it.
    pub fn failed(failure: &ListingFailure) -> Self {
        Self::ListingFailed {
            error: failure.message.clone(),
            http_status: failure.status,
            codes: failure.codes.clone(),
            hint: failure.hint.clone(),
        }
    }
}

/// One account's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountPlan {
    pub id: AccountId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub unmanaged: UnmanagedPolicy,
    pub max_deletes: u32,
    pub listing: Listing,
    /// Why the account is suspended (nothing in it is deleted), when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended: Option<String>,
    /// Unmanaged groups left alone silently under `unmanaged: ignore`.
    pub ignored: usize,
    /// Sorted by action, then name, then id.
    pub items: Vec<PlanItem>,
}

/// Counts of every action over a plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub accounts: usize,
    pub delete: usize,
    pub blocked: usize,
    pub missing: usize,
    pub unmanaged: usize,
    pub in_sync: usize,
    pub listing_failed: usize,
}

impl Summary {
    /// Drift is anything but `in_sync`: a deletion, a block, a missing or unmanaged group,
    /// or an account that could not be listed.
    pub fn drift(&self) -> bool {
        self.delete + self.blocked + self.missing + self.unmanaged + self.listing_failed > 0
    }
}

/// The whole plan, accounts in declaration order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub accounts: Vec<AccountPlan>,
}

impl std::ops::Add for Summary {
    type Output = Summary;

    fn add(self, other: Summary) -> Summary {
        Summary {
            accounts: self.accounts + other.accounts,
            delete: self.delete + other.delete,
            blocked: self.blocked + other.blocked,
            missing: self.missing + other.missing,
            unmanaged: self.unmanaged + other.unmanaged,
            in_sync: self.in_sync + other.in_sync,
            listing_failed: self.listing_failed + other.listing_failed,
        }
    }
}

impl AccountPlan {
    /// This account's counts: the one place actions are counted, for reports and metrics.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary {
            accounts: 1,
            listing_failed: usize::from(matches!(self.listing, Listing::ListingFailed { .. })),
            ..Summary::default()
        };
        for item in &self.items {
            *match item.action {
                Action::Delete => &mut summary.delete,
                Action::Blocked => &mut summary.blocked,
                Action::Missing => &mut summary.missing,
                Action::Unmanaged => &mut summary.unmanaged,
                Action::InSync => &mut summary.in_sync,
            } += 1;
        }
        summary
    }
}

impl Plan {
    /// The counts over every account.
    pub fn summary(&self) -> Summary {
        self.accounts
            .iter()
            .map(AccountPlan::summary)
            .fold(Summary::default(), |sum, account| sum + account)
    }

    /// Every planned deletion, as (account, live group).
    pub fn deletions(&self) -> impl Iterator<Item = (&AccountId, &ObservedGroup)> {
        self.accounts.iter().flat_map(|account| {
            account
                .items
                .iter()
                .filter(|item| item.action == Action::Delete)
                .filter_map(move |item| item.observed.as_ref().map(|g| (&account.id, g)))
        })
    }
}

/// Diffs `desired` against `observed`. Accounts missing from `observed` count as failed
/// listings.
pub fn plan(desired: &DesiredState, observed: &Observed, options: PlanOptions) -> Plan {
    let accounts = desired
        .accounts
        .iter()
        .map(|account| match observed.get(&account.id) {
            Some(Ok(groups)) => plan_account(account, groups, options),
            Some(Err(failure)) => failed(account, failure),
            None => failed(
                account,
                &ListingFailure::new("the source returned no listing".to_owned()),
            ),
        })
        .collect();
    Plan { accounts }
}

fn failed(account: &DesiredAccount, failure: &ListingFailure) -> AccountPlan {
    AccountPlan {
        id: account.id.clone(),
        label: account.label.clone(),
        unmanaged: account.unmanaged,
        max_deletes: account.max_deletes,
        listing: Listing::failed(failure),
        suspended: account.suspended.clone(),
        ignored: 0,
        items: Vec::new(),
    }
}

fn item(action: Action, cause: Cause, group: &ObservedGroup) -> PlanItem {
    PlanItem {
        action,
        cause,
        id: Some(group.id.clone()),
        name: Some(group.name.clone()),
        blocked: None,
        note: None,
        observed: matches!(action, Action::Delete | Action::Blocked).then(|| ObservedGroup {
            id: group.id.clone(),
            name: group.name.clone(),
            created_on: group.created_on.clone(),
            modified_on: group.modified_on.clone(),
            // Not needed: what is journaled is the group read fresh before its DELETE.
            policies: None,
        }),
        matched_by: None,
        deletion: None,
    }
}

fn declared_item(action: Action, declared: &DesiredGroup) -> PlanItem {
    PlanItem {
        action,
        cause: match declared.state {
            GroupState::Present => Cause::DeclaredPresent,
            GroupState::Absent => Cause::DeclaredAbsent,
        },
        id: declared.id.clone(),
        name: declared.name.clone(),
        blocked: None,
        note: None,
        observed: None,
        matched_by: None,
        deletion: None,
    }
}

fn blocked(mut item: PlanItem, reason: BlockReason) -> PlanItem {
    item.action = Action::Blocked;
    item.blocked = Some(reason);
    item
}

/// A deletion candidate, unless a protect pattern covers the live group.
fn candidate(
    account: &DesiredAccount,
    cause: Cause,
    group: &ObservedGroup,
    matched_by: Option<MatchedBy>,
) -> PlanItem {
    let deletion = PlanItem {
        matched_by,
        ..item(Action::Delete, cause, group)
    };
    match account.protect.matching(Some(&group.id), Some(&group.name)) {
        Some(pattern) => blocked(
            deletion,
            BlockReason::Protected {
                pattern: pattern.to_owned(),
            },
        ),
        None => deletion,
    }
}

fn plan_account(
    account: &DesiredAccount,
    groups: &[ObservedGroup],
    options: PlanOptions,
) -> AccountPlan {
    let mut by_id: HashMap<&GroupId, &ObservedGroup> = HashMap::with_capacity(groups.len());
    let mut by_name: HashMap<&str, Vec<&ObservedGroup>> = HashMap::with_capacity(groups.len());
    for group in groups {
        by_id.insert(&group.id, group);
        by_name.entry(group.name.as_str()).or_default().push(group);
    }
    // Which declaration state claimed each live group; a group claimed twice with different
    // states is a conflict and is never deleted.
    let mut claimed: HashMap<&GroupId, GroupState> = HashMap::with_capacity(groups.len());
    let mut items = Vec::with_capacity(groups.len() + account.groups.len());

    for declared in account.groups.iter().filter(|g| g.id.is_some()) {
        let Some(id) = &declared.id else { continue };
        let Some(live) = by_id.get(id).copied() else {
            let action = match declared.state {
                GroupState::Present => Action::Missing,
                GroupState::Absent => Action::InSync,
            };
            items.push(declared_item(action, declared));
            continue;
        };
        claimed.insert(&live.id, declared.state);
        let renamed = declared.name.as_ref().filter(|name| **name != live.name);
        items.push(match (declared.state, renamed) {
            (GroupState::Present, None) => item(Action::InSync, Cause::DeclaredPresent, live),
            (GroupState::Present, Some(name)) => PlanItem {
                note: Some(format!(
                    "declared as {name:?}, but group {} is named {:?}",
                    live.id, live.name
                )),
                ..declared_item(Action::Missing, declared)
            },
            (GroupState::Absent, None) => {
                candidate(account, Cause::DeclaredAbsent, live, Some(MatchedBy::Id))
            }
            (GroupState::Absent, Some(name)) => blocked(
                item(Action::Delete, Cause::DeclaredAbsent, live),
                BlockReason::IdNameMismatch {
                    declared: name.clone(),
                    live: live.name.clone(),
                },
            ),
        });
    }

    let mut lookalikes = Lookalikes::new(groups);
    for declared in account.groups.iter().filter(|g| g.id.is_none()) {
        let Some(name) = &declared.name else { continue };
        let matches = by_name.get(name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let conflict = matches.iter().any(|g| {
            claimed
                .get(&g.id)
                .is_some_and(|state| *state != declared.state)
        });
        let overlap = matches.iter().any(|g| claimed.contains_key(&g.id));
        for live in matches {
            claimed.entry(&live.id).or_insert(declared.state);
        }
        if conflict {
            let mut conflicted = blocked(
                declared_item(Action::Blocked, declared),
                BlockReason::ConflictingDeclarations,
            );
            conflicted.note =
                Some("another declaration gives this group's id another state".into());
            items.push(conflicted);
            continue;
        }
        if overlap && matches.len() == 1 {
            // The id declaration of the same group, with the same state, already speaks for it.
            continue;
        }
        if matches.is_empty()
            && let Some(note) = lookalikes.note(name)
        {
            let action = match declared.state {
                GroupState::Present => Action::Missing,
                GroupState::Absent => Action::InSync,
            };
            items.push(PlanItem {
                note: Some(note),
                ..declared_item(action, declared)
            });
            continue;
        }
        items.push(match (declared.state, matches) {
            (GroupState::Present, []) => declared_item(Action::Missing, declared),
            (GroupState::Present, [live, ..]) => {
                let mut found = item(Action::InSync, Cause::DeclaredPresent, live);
                if matches.len() > 1 {
                    found.note = Some(format!("{} groups have this name", matches.len()));
                }
                found
            }
            (GroupState::Absent, []) => declared_item(Action::InSync, declared),
            (GroupState::Absent, [live]) => {
                candidate(account, Cause::DeclaredAbsent, live, Some(MatchedBy::Name))
            }
            (GroupState::Absent, several) => blocked(
                declared_item(Action::Blocked, declared),
                BlockReason::AmbiguousName {
                    matches: several.iter().map(|g| g.id.clone()).collect(),
                },
            ),
        });
    }

    // Names that declarations bind to an id: a group of such a name that no declaration
    // claims is not the group the file speaks of, but pruning it would still be a guess.
    let bound_names: HashMap<&str, &GroupId> = account
        .groups
        .iter()
        .filter_map(|d| Some((d.name.as_deref()?, d.id.as_ref()?)))
        .collect();
    let mut ignored = 0;
    for live in groups.iter().filter(|g| !claimed.contains_key(&g.id)) {
        if let Some(declared_id) = bound_names.get(live.name.as_str()) {
            let reason = BlockReason::NameOfAnotherDeclaredGroup {
                declared_id: (*declared_id).clone(),
            };
            match account.unmanaged {
                UnmanagedPolicy::Ignore => ignored += 1,
                UnmanagedPolicy::Report => items.push(PlanItem {
                    note: Some(format!(
                        "a declaration gives this name to group {declared_id}"
                    )),
                    ..item(Action::Unmanaged, Cause::NotDeclared, live)
                }),
                UnmanagedPolicy::Delete => items.push(blocked(
                    item(Action::Delete, Cause::NotDeclared, live),
                    reason,
                )),
            }
            continue;
        }
        match account.unmanaged {
            UnmanagedPolicy::Ignore => ignored += 1,
            UnmanagedPolicy::Report => {
                items.push(item(Action::Unmanaged, Cause::NotDeclared, live))
            }
            UnmanagedPolicy::Delete => {
                items.push(candidate(account, Cause::NotDeclared, live, None))
            }
        }
    }

    // A group that any declaration, by its id or by its name, wants present is never
    // deleted, whichever other declaration would delete it: two declarations disagree.
    let present_ids: HashSet<&GroupId> = account
        .groups
        .iter()
        .filter(|d| d.state == GroupState::Present)
        .filter_map(|d| d.id.as_ref())
        .collect();
    let present_names: HashSet<&str> = account
        .groups
        .iter()
        .filter(|d| d.state == GroupState::Present)
        .filter_map(|d| d.name.as_deref())
        .collect();
    for item in items.iter_mut().filter(|i| i.action == Action::Delete) {
        let wanted = item.id.as_ref().is_some_and(|id| present_ids.contains(id))
            || item
                .name
                .as_deref()
                .is_some_and(|name| present_names.contains(name));
        if wanted {
            item.action = Action::Blocked;
            item.blocked = Some(BlockReason::ConflictingDeclarations);
            item.note = Some("another declaration wants this group present".into());
        }
    }

    let planned = items.iter().filter(|i| i.action == Action::Delete).count();
    if planned > account.max_deletes as usize && !options.force {
        for item in items.iter_mut().filter(|i| i.action == Action::Delete) {
            item.action = Action::Blocked;
            item.blocked = Some(BlockReason::OverMaxDeletes {
                planned,
                max: account.max_deletes,
            });
        }
    }

    // Suspended: every deletion still planned is held back, and shown for what it would be.
    if let Some(by) = &account.suspended {
        for item in items.iter_mut().filter(|i| i.action == Action::Delete) {
            item.action = Action::Blocked;
            item.blocked = Some(BlockReason::Suspended { by: by.clone() });
        }
    }

    items.sort_by(|a, b| (a.action, &a.name, &a.id).cmp(&(b.action, &b.name, &b.id)));
    AccountPlan {
        id: account.id.clone(),
        label: account.label.clone(),
        unmanaged: account.unmanaged,
        max_deletes: account.max_deletes,
        listing: Listing::Ok {
            groups: groups.len(),
        },
        suspended: account.suspended.clone(),
        ignored,
        items,
    }
}

/// Live groups by [`shown::lookalike_key`], built only when a declared name matches no group
/// exactly: then a group whose name merely looks the same is pointed out, since the person
/// who wrote the declaration most likely meant it (and it is neither deleted nor matched).
struct Lookalikes<'a> {
    groups: &'a [ObservedGroup],
    by_key: Option<HashMap<String, Vec<&'a ObservedGroup>>>,
}

impl<'a> Lookalikes<'a> {
    fn new(groups: &'a [ObservedGroup]) -> Self {
        Self {
            groups,
            by_key: None,
        }
    }

    /// A warning naming the live groups whose names look like `declared` but differ.
    fn note(&mut self, declared: &str) -> Option<String> {
        let groups = self.groups;
        let by_key = self.by_key.get_or_insert_with(|| {
            let mut by_key: HashMap<String, Vec<&ObservedGroup>> = HashMap::new();
            for group in groups {
                by_key
                    .entry(shown::lookalike_key(&group.name))
                    .or_default()
                    .push(group);
            }
            by_key
        });
        let similar = by_key.get(&shown::lookalike_key(declared))?;
        let described: Vec<String> = similar
            .iter()
            .filter(|g| g.name != declared)
            .map(|g| {
                format!(
                    "{} ({}; differs by {})",
                    shown::Quoted(&g.name),
                    g.id,
                    shown::difference(declared, &g.name)
                )
            })
            .collect();
        (!described.is_empty()).then(|| {
            format!(
                "warning: no group is named exactly {}, but {} looks the same; names must match exactly",
                shown::Quoted(declared),
                described.join(", ")
            )
        })
    }
}

/// What changed about a planned deletion's group between the listing and the read right
/// before its DELETE. Any of these means the group is not deleted this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// The group is no longer what was planned under its id.
    Renamed { from: String, to: String },
    /// Its fresh identity is protected.
    Protected { pattern: String },
    /// It was matched by name, and that name is no longer one group's.
    NameShared { name: String, groups: usize },
}

impl std::fmt::Display for Moved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Renamed { from, to } => {
                write!(f, "renamed from {from:?} to {to:?} since it was listed")
            }
            Self::Protected { pattern } => write!(f, "now protected by {pattern:?}"),
            Self::NameShared { name, groups } => write!(
                f,
                "{groups} groups are now named {name:?}; deleting by that name would be a guess"
            ),
        }
    }
}

/// Re-applies the plan's rules to `fresh`, the group read again right before its DELETE:
/// it must still be the group that was planned (same id and name), unprotected, and, when a
/// declaration matched it by name, the only group of that name (`named`: how many groups a
/// fresh exact-name query returned). The desired state cannot change within a cycle, so a
/// group that kept its name is still declared the way it was planned.
pub fn recheck(
    account: &DesiredAccount,
    item: &PlanItem,
    fresh: &ObservedGroup,
    named: usize,
) -> Result<(), Moved> {
    let planned = item.observed.as_ref().map(|g| g.name.as_str());
    if item.id.as_ref() != Some(&fresh.id) || planned != Some(fresh.name.as_str()) {
        return Err(Moved::Renamed {
            from: planned.unwrap_or_default().to_owned(),
            to: fresh.name.clone(),
        });
    }
    if let Some(pattern) = account.protect.matching(Some(&fresh.id), Some(&fresh.name)) {
        return Err(Moved::Protected {
            pattern: pattern.to_owned(),
        });
    }
    if item.matched_by == Some(MatchedBy::Name) && named != 1 {
        return Err(Moved::NameShared {
            name: fresh.name.clone(),
            groups: named,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_one_kind_of_change_alone_is_drift_and_in_sync_is_not() {
        let one = |set: fn(&mut Summary)| {
            let mut summary = Summary::default();
            set(&mut summary);
            summary
        };
        let each: [fn(&mut Summary); 5] = [
            |s| s.delete = 1,
            |s| s.blocked = 1,
            |s| s.missing = 1,
            |s| s.unmanaged = 1,
            |s| s.listing_failed = 1,
        ];
        for set in each {
            let summary = one(set);
            assert!(summary.drift(), "{summary:?}");
        }
        assert!(!one(|s| s.in_sync = 7).drift());
    }

    #[test]
    fn an_account_that_could_not_be_listed_counts_as_one_failed_listing() {
        let plan = AccountPlan {
            id: "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap(),
            label: None,
            unmanaged: UnmanagedPolicy::Report,
            max_deletes: 10,
            listing: Listing::failed(&ListingFailure::new("boom".to_owned())),
            suspended: None,
            ignored: 0,
            items: Vec::new(),
        };
        assert_eq!(
            plan.summary(),
            Summary {
                accounts: 1,
                listing_failed: 1,
                ..Summary::default()
            }
        );
        let whole = Plan {
            accounts: vec![plan.clone(), plan],
        };
        assert_eq!(whole.summary().listing_failed, 2);
        assert!(whole.summary().drift());
    }

    fn desired(groups: &str) -> DesiredState {
        let yaml = format!(
            "version: 1\naccounts:\n  - id: 023e105f4ecef8ad9ca31a8372d0c353\n    groups:\n{groups}"
        );
        crate::config::parse(&yaml, std::path::Path::new("groups.yaml")).unwrap()
    }

    fn listed(groups: &[(&str, &str)]) -> Observed {
        let account: AccountId = "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap();
        let groups = groups
            .iter()
            .map(|(id, name)| ObservedGroup {
                id: id.parse().unwrap(),
                name: (*name).to_owned(),
                created_on: None,
                modified_on: None,
                policies: None,
            })
            .collect();
        Observed::from([(account, Ok(groups))])
    }

    #[test]
    fn a_present_name_shared_by_several_live_groups_says_how_many() {
        let one = "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a";
        let two = "9a7806061c88ada191ed06f989cc3dac";
        let note_of = |live: &[(&str, &str)]| {
            let plan = plan(
                &desired("      - {name: Ops, state: present}\n"),
                &listed(live),
                PlanOptions::default(),
            );
            let item = plan.accounts[0]
                .items
                .iter()
                .find(|i| i.cause == Cause::DeclaredPresent)
                .cloned()
                .unwrap();
            assert_eq!(item.action, Action::InSync);
            item.note
        };
        assert_eq!(
            note_of(&[(one, "Ops"), (two, "Ops")]).as_deref(),
            Some("2 groups have this name")
        );
        assert_eq!(note_of(&[(one, "Ops")]), None);
    }

    #[test]
    fn an_unclaimed_group_named_like_a_group_declared_by_id_is_never_pruned_and_is_said() {
        let declared = "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a";
        let other = "9a7806061c88ada191ed06f989cc3dac";
        let third = "0c2282666be49ee714186ebf9a8137e9";
        let with = |unmanaged: &str| {
            let yaml = format!(
                "version: 1\naccounts:\n  - id: 023e105f4ecef8ad9ca31a8372d0c353\n    unmanaged: {unmanaged}\n    groups:\n      - {{id: {declared}, name: Ops, state: present}}\n"
            );
            let desired = crate::config::parse(&yaml, std::path::Path::new("g.yaml")).unwrap();
            plan(
                &desired,
                &listed(&[(declared, "Ops"), (other, "Ops"), (third, "Ops")]),
                PlanOptions::default(),
            )
        };
        // Both namesakes are counted as ignored, not one and not none.
        let ignore = with("ignore");
        assert_eq!(ignore.accounts[0].ignored, 2);
        assert_eq!(ignore.deletions().count(), 0);
        let report = with("report");
        let notes: Vec<Option<&str>> = report.accounts[0]
            .items
            .iter()
            .filter(|i| i.cause == Cause::NotDeclared)
            .map(|i| i.note.as_deref())
            .collect();
        let expected = format!("a declaration gives this name to group {declared}");
        assert_eq!(notes, [Some(expected.as_str()), Some(expected.as_str())]);
        let prune = with("delete");
        assert_eq!(prune.deletions().count(), 0);
        assert_eq!(prune.summary().blocked, 2);
    }

    #[test]
    fn recheck_refuses_a_renamed_a_protected_or_a_shared_name_and_says_which() {
        let id = "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a";
        let yaml = format!(
            "version: 1\naccounts:\n  - id: 023e105f4ecef8ad9ca31a8372d0c353\n    protect: [\"Break-glass*\"]\n    groups:\n      - {{id: {id}, state: absent}}\n      - {{name: Temp, state: absent}}\n"
        );
        let desired = crate::config::parse(&yaml, std::path::Path::new("g.yaml")).unwrap();
        let other = "9a7806061c88ada191ed06f989cc3dac";
        let plan = plan(
            &desired,
            &listed(&[(id, "Contractors"), (other, "Temp")]),
            PlanOptions::default(),
        );
        let account = &desired.accounts[0];
        let by_id = plan.accounts[0]
            .items
            .iter()
            .find(|i| i.id.as_ref().is_some_and(|i| i.as_str() == id))
            .unwrap();
        let by_name = plan.accounts[0]
            .items
            .iter()
            .find(|i| i.name.as_deref() == Some("Temp"))
            .unwrap();
        let fresh = |id: &str, name: &str| ObservedGroup {
            id: id.parse().unwrap(),
            name: name.to_owned(),
            created_on: None,
            modified_on: None,
            policies: None,
        };
        assert_eq!(
            recheck(account, by_id, &fresh(id, "Contractors"), 1),
            Ok(())
        );
        assert_eq!(recheck(account, by_name, &fresh(other, "Temp"), 1), Ok(()));
        let renamed = recheck(account, by_id, &fresh(id, "Payroll"), 1).unwrap_err();
        assert_eq!(
            renamed.to_string(),
            "renamed from \"Contractors\" to \"Payroll\" since it was listed"
        );
        // Renamed into protection: the rename is what is said.
        assert!(matches!(
            recheck(account, by_id, &fresh(id, "Break-glass admins"), 1),
            Err(Moved::Renamed { .. })
        ));
        // The same group under rules that protect it (the check stands on its own).
        let guarded = crate::config::parse(
            &yaml.replace("Break-glass*", "Contr*"),
            std::path::Path::new("g.yaml"),
        )
        .unwrap();
        let protected =
            recheck(&guarded.accounts[0], by_id, &fresh(id, "Contractors"), 1).unwrap_err();
        assert_eq!(protected.to_string(), "now protected by \"Contr*\"");
        let shared = recheck(account, by_name, &fresh(other, "Temp"), 2).unwrap_err();
        assert_eq!(
            shared.to_string(),
            "2 groups are now named \"Temp\"; deleting by that name would be a guess"
        );
        // A group declared by id is not asked about its name's other holders.
        assert_eq!(
            recheck(account, by_id, &fresh(id, "Contractors"), 3),
            Ok(())
        );
    }

    #[test]
    fn a_group_absent_by_id_and_present_by_name_is_blocked_not_deleted() {
        let id = "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a";
        for groups in [
            format!("      - {{id: {id}, state: absent}}\n      - {{name: Ops, state: present}}\n"),
            format!("      - {{name: Ops, state: present}}\n      - {{id: {id}, state: absent}}\n"),
            format!("      - {{id: {id}, state: present}}\n      - {{name: Ops, state: absent}}\n"),
        ] {
            let plan = plan(
                &desired(&groups),
                &listed(&[(id, "Ops")]),
                PlanOptions::default(),
            );
            assert_eq!(plan.deletions().count(), 0, "{groups}");
            let blocked: Vec<&PlanItem> = plan.accounts[0]
                .items
                .iter()
                .filter(|i| i.blocked == Some(BlockReason::ConflictingDeclarations))
                .collect();
            assert!(
                !blocked.is_empty(),
                "{groups}: {:?}",
                plan.accounts[0].items
            );
        }
    }

    #[test]
    fn a_declared_name_that_only_looks_like_a_live_one_is_pointed_out_not_matched() {
        let id = "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a";
        for live in ["Contr\u{0430}ctors", "Contractors ", "Contr\u{200b}actors"] {
            let plan = plan(
                &desired("      - {name: Contractors, state: absent}\n"),
                &listed(&[(id, live)]),
                PlanOptions::default(),
            );
            assert_eq!(plan.deletions().count(), 0);
            let declared = plan.accounts[0]
                .items
                .iter()
                .find(|i| i.cause == Cause::DeclaredAbsent)
                .unwrap();
            let note = declared.note.as_deref().unwrap_or_default();
            assert!(
                note.starts_with("warning:") && note.contains(id),
                "{live:?}: {note}"
            );
        }
        let exact = plan(
            &desired("      - {name: Contractors, state: absent}\n"),
            &listed(&[(id, "Contractors")]),
            PlanOptions::default(),
        );
        assert_eq!(exact.deletions().count(), 1);
    }
}
