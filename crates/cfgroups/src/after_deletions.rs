//! The plan as it stands after a cycle's deletions: what the daemon's report, metrics and
//! log line describe. A group deleted (or found already gone) is no longer "to delete": it is
//! in sync, and says how it got there; a deletion that failed, moved or never started stays
//! "to delete", with why. Pure: no I/O, no clock.

use std::collections::HashMap;

use serde::{Serialize, Serializer};

use crate::apply::{ApplySummary, GroupResult};
use crate::model::{AccountId, DeletionOutcome, GroupId};
use crate::plan::{Action, Plan};

/// How a planned deletion ended, as a report item carries it: the journal's outcome
/// (`{"outcome": "deleted"}`, `{"outcome": "failed", "error": ...}`, ...),
/// `{"outcome": "held_off"}` or `{"outcome": "not_started"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// It was attempted, and ended so.
    Ended(DeletionOutcome),
    /// Not attempted by design: the daemon holds it off this cycle (Cloudflare refused it
    /// for good before, or the suspend file appeared).
    HeldOff,
    /// Not reached: a stop, a journal failure, a lost term.
    NotStarted,
}

impl Deletion {
    /// How `result` ended.
    pub fn of(result: &GroupResult) -> Self {
        match (&result.outcome, result.held_off) {
            (_, true) => Self::HeldOff,
            (Some(outcome), false) => Self::Ended(outcome.clone()),
            (None, false) => Self::NotStarted,
        }
    }

    /// The outcome's name: `deleted`, `already_absent`, `failed`, `moved`, `held_off`,
    /// `not_started`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Ended(outcome) => outcome.as_str(),
            Self::HeldOff => "held_off",
            Self::NotStarted => "not_started",
        }
    }

    /// Whether the group is gone.
    fn is_gone(&self) -> bool {
        matches!(self, Self::Ended(outcome) if outcome.is_gone())
    }
}

impl Serialize for Deletion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::Ended(outcome) => outcome.serialize(serializer),
            other => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("outcome", other.as_str())?;
                map.end()
            }
        }
    }
}

/// One deletion of a cycle, for the report's `deletions` list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeletionReport {
    pub account: AccountId,
    pub id: GroupId,
    pub name: String,
    #[serde(flatten)]
    pub deletion: Deletion,
}

/// `plan` after `applied`: each `delete` item whose group is gone becomes `in_sync`, and
/// every `delete` item carries how its deletion ended. Items of groups the apply never
/// reached stay as they were, marked not started.
pub fn plan_after(plan: &Plan, applied: &ApplySummary) -> Plan {
    let outcomes: HashMap<(&AccountId, &GroupId), Deletion> = applied
        .groups
        .iter()
        .map(|result| ((&result.account, &result.group.id), Deletion::of(result)))
        .collect();
    let mut after = plan.clone();
    for account in &mut after.accounts {
        for item in &mut account.items {
            if item.action != Action::Delete {
                continue;
            }
            let deletion = item
                .id
                .as_ref()
                .and_then(|id| outcomes.get(&(&account.id, id)))
                .cloned()
                .unwrap_or(Deletion::NotStarted);
            if deletion.is_gone() {
                item.action = Action::InSync;
            }
            item.deletion = Some(deletion);
        }
        // The report's order: by action, then name, then id (as the plan sorts).
        account
            .items
            .sort_by(|a, b| (a.action, &a.name, &a.id).cmp(&(b.action, &b.name, &b.id)));
    }
    after
}

/// Every deletion of `applied`, sorted by account, name and id.
pub fn deletions(applied: &ApplySummary) -> Vec<DeletionReport> {
    let mut list: Vec<DeletionReport> = applied
        .groups
        .iter()
        .map(|result| DeletionReport {
            account: result.account.clone(),
            id: result.group.id.clone(),
            name: result.group.name.clone(),
            deletion: Deletion::of(result),
        })
        .collect();
    list.sort_by(|a, b| (&a.account, &a.name, &a.id).cmp(&(&b.account, &b.name, &b.id)));
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::GroupResult;
    use crate::model::ObservedGroup;
    use crate::plan::{PlanOptions, plan};

    const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    fn group(n: u8, name: &str) -> ObservedGroup {
        ObservedGroup {
            id: format!("{n:032x}").parse().unwrap(),
            name: name.to_owned(),
            created_on: None,
            modified_on: None,
            policies: None,
        }
    }

    #[test]
    fn deleted_groups_are_in_sync_and_failed_ones_still_to_delete() {
        let yaml = format!(
            "version: 1\naccounts:\n  - id: {ACCOUNT}\n    groups:\n\
             \x20     - {{name: A, state: absent}}\n\
             \x20     - {{name: B, state: absent}}\n\
             \x20     - {{name: C, state: absent}}\n\
             \x20     - {{name: D, state: absent}}\n\
             \x20     - {{name: E, state: absent}}\n\
             \x20     - {{name: Keep, state: present}}\n"
        );
        let desired = crate::config::parse(&yaml, std::path::Path::new("g.yaml")).unwrap();
        let account: AccountId = ACCOUNT.parse().unwrap();
        let groups = vec![
            group(1, "A"),
            group(2, "B"),
            group(3, "C"),
            group(4, "D"),
            group(5, "Keep"),
            group(6, "E"),
        ];
        let observed = crate::model::Observed::from([(account.clone(), Ok(groups.clone()))]);
        let before = plan(&desired, &observed, PlanOptions::default());
        assert_eq!(before.summary().delete, 5);
        let result = |group: &ObservedGroup, outcome| GroupResult {
            account: account.clone(),
            group: group.clone(),
            outcome,
            held_off: false,
        };
        let applied = ApplySummary {
            groups: vec![
                result(&groups[0], Some(DeletionOutcome::Deleted)),
                result(&groups[1], Some(DeletionOutcome::AlreadyAbsent)),
                result(
                    &groups[2],
                    Some(DeletionOutcome::Failed {
                        error: "HTTP 403".to_owned(),
                        refused: None,
                    }),
                ),
                result(&groups[3], None),
                GroupResult {
                    held_off: true,
                    ..result(&groups[5], None)
                },
            ],
            ..ApplySummary::default()
        };
        let after = plan_after(&before, &applied);
        let summary = after.summary();
        assert_eq!((summary.delete, summary.in_sync), (3, 3), "{after:#?}");
        let json = serde_json::to_value(&after.accounts[0].items).unwrap();
        let outcome_of = |name: &str| {
            json.as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == name)
                .map(|i| (i["action"].clone(), i["deletion"].clone()))
                .unwrap()
        };
        assert_eq!(
            outcome_of("A"),
            ("in_sync".into(), serde_json::json!({"outcome": "deleted"}))
        );
        assert_eq!(
            outcome_of("B").1,
            serde_json::json!({"outcome": "already_absent"})
        );
        assert_eq!(
            outcome_of("C"),
            (
                "delete".into(),
                serde_json::json!({"outcome": "failed", "error": "HTTP 403"})
            )
        );
        assert_eq!(
            outcome_of("D"),
            (
                "delete".into(),
                serde_json::json!({"outcome": "not_started"})
            )
        );
        assert_eq!(
            outcome_of("E"),
            ("delete".into(), serde_json::json!({"outcome": "held_off"}))
        );
        assert!(outcome_of("Keep").1.is_null());

        let listed = serde_json::to_value(deletions(&applied)).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 5);
        assert_eq!(listed[4]["outcome"], "held_off");
        assert_eq!(listed[0]["name"], "A");
        assert_eq!(listed[0]["outcome"], "deleted");
        assert_eq!(listed[2]["error"], "HTTP 403");
    }
}
