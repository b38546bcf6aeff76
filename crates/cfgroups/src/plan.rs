//! The plan: a pure diff of the desired state against what the sources observed. No I/O,
//! no async, no clock, so every safety rule it enforces can be tested exhaustively.
//!
//! Per account, every group lands in exactly one [`Action`]. The rules that make deletion
//! safe hold here by construction:
//! - an account whose listing failed plans nothing at all (safety rule 1);
//! - only groups declared `absent`, or unmanaged under `unmanaged: delete`, are candidates
//!   (rule 2);
//! - protected groups and names matching several groups are blocked (rule 4);
//! - more candidates than `max_deletes` blocks every one of them, unless forced (rule 5).

use std::collections::HashMap;

use serde::Serialize;

use crate::config::{DesiredAccount, DesiredGroup, DesiredState, UnmanagedPolicy};
use crate::model::{AccountId, GroupId, GroupState, Observed, ObservedGroup};

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
    /// The live group to delete, as listed: what the journal backs up. Set on `delete` and
    /// `blocked` items.
    #[serde(skip)]
    pub observed: Option<ObservedGroup>,
}

/// Whether an account's listing could be trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Listing {
    Ok { groups: usize },
    ListingFailed { error: String },
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
            Some(Err(error)) => failed(account, error.to_string()),
            None => failed(account, "the source returned no listing".to_owned()),
        })
        .collect();
    Plan { accounts }
}

fn failed(account: &DesiredAccount, error: String) -> AccountPlan {
    AccountPlan {
        id: account.id.clone(),
        label: account.label.clone(),
        unmanaged: account.unmanaged,
        max_deletes: account.max_deletes,
        listing: Listing::ListingFailed { error },
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
        observed: matches!(action, Action::Delete | Action::Blocked).then(|| group.clone()),
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
    }
}

fn blocked(mut item: PlanItem, reason: BlockReason) -> PlanItem {
    item.action = Action::Blocked;
    item.blocked = Some(reason);
    item
}

/// A deletion candidate, unless a protect pattern covers the live group.
fn candidate(account: &DesiredAccount, cause: Cause, group: &ObservedGroup) -> PlanItem {
    let deletion = item(Action::Delete, cause, group);
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
            (GroupState::Absent, None) => candidate(account, Cause::DeclaredAbsent, live),
            (GroupState::Absent, Some(name)) => blocked(
                item(Action::Delete, Cause::DeclaredAbsent, live),
                BlockReason::IdNameMismatch {
                    declared: name.clone(),
                    live: live.name.clone(),
                },
            ),
        });
    }

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
            (GroupState::Absent, [live]) => candidate(account, Cause::DeclaredAbsent, live),
            (GroupState::Absent, several) => blocked(
                declared_item(Action::Blocked, declared),
                BlockReason::AmbiguousName {
                    matches: several.iter().map(|g| g.id.clone()).collect(),
                },
            ),
        });
    }

    let mut ignored = 0;
    for live in groups.iter().filter(|g| !claimed.contains_key(&g.id)) {
        match account.unmanaged {
            UnmanagedPolicy::Ignore => ignored += 1,
            UnmanagedPolicy::Report => {
                items.push(item(Action::Unmanaged, Cause::NotDeclared, live))
            }
            UnmanagedPolicy::Delete => items.push(candidate(account, Cause::NotDeclared, live)),
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

    items.sort_by(|a, b| (a.action, &a.name, &a.id).cmp(&(b.action, &b.name, &b.id)));
    AccountPlan {
        id: account.id.clone(),
        label: account.label.clone(),
        unmanaged: account.unmanaged,
        max_deletes: account.max_deletes,
        listing: Listing::Ok {
            groups: groups.len(),
        },
        ignored,
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_that_could_not_be_listed_counts_as_one_failed_listing() {
        let plan = AccountPlan {
            id: "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap(),
            label: None,
            unmanaged: UnmanagedPolicy::Report,
            max_deletes: 10,
            listing: Listing::ListingFailed {
                error: "boom".to_owned(),
            },
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
}
