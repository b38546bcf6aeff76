//! The plan engine, one test per action and per blocked reason, plus the property tests
//! that try to make it delete something it must not.

use std::path::Path;

use cfgroups::config::{self, DesiredAccount, DesiredGroup, DesiredState, UnmanagedPolicy};
use cfgroups::model::{GroupId, GroupState, ListingFailure, Observed, ObservedGroup};
use cfgroups::plan::{Action, BlockReason, Cause, Listing, Plan, PlanOptions, plan};
use cfgroups::protect::Protect;
use cfgroups::source::ListingError;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use testkit::{account, oracle};

fn gid(n: u8) -> GroupId {
    format!("{n:032x}").parse().unwrap()
}

fn live(n: u8, name: &str) -> ObservedGroup {
    ObservedGroup {
        id: gid(n),
        name: name.to_owned(),
        created_on: None,
        modified_on: None,
        policies: None,
    }
}

fn desired(yaml_groups: &str, extra: &str) -> DesiredState {
    let text = format!(
        "version: 1\naccounts:\n  - id: {}\n{extra}    groups:\n{yaml_groups}",
        account(0)
    );
    config::parse(&text, Path::new("test.yaml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn observed(groups: Vec<ObservedGroup>) -> Observed {
    [(account(0), Ok(groups))].into_iter().collect()
}

/// The listing failure of a listing that named `group` twice.
fn duplicate(group: GroupId) -> ListingFailure {
    ListingFailure::from_error(&ListingError::DuplicateId(group))
}

fn run(desired: &DesiredState, groups: Vec<ObservedGroup>) -> Plan {
    plan(desired, &observed(groups), PlanOptions::default())
}

/// (action, name, blocked reason) of every item, for compact assertions.
fn lines(plan: &Plan) -> Vec<(Action, String, Option<BlockReason>)> {
    plan.accounts[0]
        .items
        .iter()
        .map(|i| {
            (
                i.action,
                i.name.clone().unwrap_or_default(),
                i.blocked.clone(),
            )
        })
        .collect()
}

#[test]
fn declared_absent_by_name_is_deleted() {
    let d = desired("      - {name: Old, state: absent}\n", "");
    let p = run(&d, vec![live(1, "Old"), live(2, "Keep")]);
    assert_eq!(p.accounts[0].items[0].action, Action::Delete);
    assert_eq!(p.accounts[0].items[0].cause, Cause::DeclaredAbsent);
    let deletions: Vec<_> = p.deletions().map(|(_, g)| g.id.clone()).collect();
    assert_eq!(deletions, vec![gid(1)]);
}

#[test]
fn declared_absent_by_id_is_deleted_and_the_live_group_is_carried_for_the_journal() {
    let d = desired(&format!("      - {{id: {}, state: absent}}\n", gid(7)), "");
    let p = run(&d, vec![live(7, "Whatever")]);
    let (_, group) = p.deletions().next().unwrap();
    assert_eq!(group, &live(7, "Whatever"));
}

#[test]
fn absent_and_gone_is_in_sync() {
    let d = desired(
        &format!(
            "      - {{name: Gone, state: absent}}\n      - {{id: {}, state: absent}}\n",
            gid(9)
        ),
        "",
    );
    let p = run(&d, vec![]);
    assert!(
        p.accounts[0]
            .items
            .iter()
            .all(|i| i.action == Action::InSync)
    );
    assert!(!p.summary().drift());
}

#[test]
fn present_and_found_is_in_sync_and_present_and_not_found_is_missing() {
    let d = desired(
        "      - {name: Here, state: present}\n      - {name: Nowhere, state: present}\n",
        "",
    );
    let p = run(&d, vec![live(1, "Here")]);
    assert_eq!(
        lines(&p),
        vec![
            (Action::Missing, "Nowhere".into(), None),
            (Action::InSync, "Here".into(), None),
        ]
    );
}

#[test]
fn present_by_id_under_another_name_is_missing_with_a_note() {
    let d = desired(
        &format!("      - {{id: {}, name: Eng, state: present}}\n", gid(3)),
        "",
    );
    let p = run(&d, vec![live(3, "Engineering")]);
    let item = &p.accounts[0].items[0];
    assert_eq!(item.action, Action::Missing);
    assert!(item.note.as_deref().unwrap().contains("\"Engineering\""));
    assert_eq!(p.summary().unmanaged, 0, "the live group was claimed by id");
}

#[test]
fn undeclared_groups_follow_the_unmanaged_policy() {
    let groups = || vec![live(1, "Declared"), live(2, "Stray")];
    let decl = "      - {name: Declared, state: present}\n";
    let report = run(&desired(decl, "    unmanaged: report\n"), groups());
    assert_eq!(report.summary().unmanaged, 1);
    assert_eq!(report.deletions().count(), 0);

    let ignore = run(&desired(decl, "    unmanaged: ignore\n"), groups());
    assert_eq!(ignore.accounts[0].ignored, 1);
    assert!(!ignore.summary().drift());

    let prune = run(&desired(decl, "    unmanaged: delete\n"), groups());
    let item = &prune.accounts[0].items[0];
    assert_eq!(
        (item.action, item.cause),
        (Action::Delete, Cause::NotDeclared)
    );
    assert_eq!(item.name.as_deref(), Some("Stray"));
}

#[test]
fn blocked_when_protected() {
    let d = desired(
        "      - {name: Declared, state: present}\n",
        "    unmanaged: delete\n    protect: [\"SCIM-*\"]\n",
    );
    let p = run(&d, vec![live(1, "Declared"), live(2, "SCIM-Okta")]);
    assert_eq!(
        lines(&p),
        vec![
            (
                Action::Blocked,
                "SCIM-Okta".into(),
                Some(BlockReason::Protected {
                    pattern: "SCIM-*".into()
                })
            ),
            (Action::InSync, "Declared".into(), None),
        ]
    );
}

#[test]
fn blocked_when_absent_by_id_is_protected_by_its_live_name() {
    let d = desired(
        &format!("      - {{id: {}, state: absent}}\n", gid(4)),
        "    protect: [Admins]\n",
    );
    let p = run(&d, vec![live(4, "Admins")]);
    assert!(matches!(
        p.accounts[0].items[0].blocked,
        Some(BlockReason::Protected { .. })
    ));
    assert_eq!(p.deletions().count(), 0);
}

#[test]
fn blocked_when_the_name_is_ambiguous() {
    let d = desired("      - {name: Twins, state: absent}\n", "");
    let p = run(&d, vec![live(1, "Twins"), live(2, "Twins")]);
    assert_eq!(
        lines(&p),
        vec![(
            Action::Blocked,
            "Twins".into(),
            Some(BlockReason::AmbiguousName {
                matches: vec![gid(1), gid(2)]
            })
        )]
    );
    assert_eq!(p.summary().unmanaged, 0, "both twins are accounted for");
}

#[test]
fn blocked_when_id_and_name_disagree() {
    let d = desired(
        &format!("      - {{id: {}, name: Legacy, state: absent}}\n", gid(5)),
        "",
    );
    let p = run(&d, vec![live(5, "Legacy Team")]);
    assert_eq!(
        p.accounts[0].items[0].blocked,
        Some(BlockReason::IdNameMismatch {
            declared: "Legacy".into(),
            live: "Legacy Team".into()
        })
    );
}

#[test]
fn blocked_when_over_max_deletes_and_force_overrides() {
    let d = desired(
        "      - {name: A, state: absent}\n      - {name: B, state: absent}\n      - {name: C, state: absent}\n",
        "    max_deletes: 2\n",
    );
    let groups = vec![live(1, "A"), live(2, "B"), live(3, "C")];
    let p = run(&d, groups.clone());
    assert_eq!(p.deletions().count(), 0);
    assert!(
        p.accounts[0]
            .items
            .iter()
            .all(|i| i.blocked == Some(BlockReason::OverMaxDeletes { planned: 3, max: 2 }))
    );

    let forced = plan(&d, &observed(groups), PlanOptions { force: true });
    assert_eq!(forced.deletions().count(), 3);
}

#[test]
fn blocked_when_two_declarations_disagree_about_one_group() {
    let d = desired(
        &format!(
            "      - {{id: {}, state: present}}\n      - {{name: Shared, state: absent}}\n",
            gid(6)
        ),
        "",
    );
    let p = run(&d, vec![live(6, "Shared")]);
    assert_eq!(p.deletions().count(), 0);
    assert!(
        p.accounts[0]
            .items
            .iter()
            .any(|i| i.blocked == Some(BlockReason::ConflictingDeclarations))
    );
}

#[test]
fn a_failed_listing_plans_nothing() {
    let d = desired(
        "      - {name: Old, state: absent}\n",
        "    unmanaged: delete\n",
    );
    let failed: Observed = [(account(0), Err(duplicate(gid(1))))].into_iter().collect();
    let p = plan(&d, &failed, PlanOptions { force: true });
    assert!(matches!(
        p.accounts[0].listing,
        Listing::ListingFailed { .. }
    ));
    assert!(p.accounts[0].items.is_empty());
    assert_eq!(p.summary().listing_failed, 1);
    assert!(p.summary().drift());

    let missing = plan(&d, &Observed::new(), PlanOptions::default());
    assert_eq!(missing.summary().listing_failed, 1);
}

// ---- properties -------------------------------------------------------------------------
//
// Judged by `testkit::oracle`, the design's deletion rules restated from scratch with a
// `protect` matcher of its own: it shares no code with the planner, so a planner that
// breaks a rule cannot also bend the check.

/// The id of group 1, so that protection by id is exercised too.
const PROTECTED_ID: &str = "00000000000000000000000000000001";
/// Few names for many groups: namesakes, conflicts and protected names come up often.
const NAMES: [&str; 5] = ["alpha", "beta", "gamma", "delta", "SCIM-x"];

#[derive(Debug, Clone)]
struct Case {
    declared: Vec<DesiredGroup>,
    live: Vec<ObservedGroup>,
    policy: UnmanagedPolicy,
    max_deletes: u32,
    protect: Vec<String>,
    listing_fails: bool,
    /// `suspend: true`: listed and reported, nothing deleted.
    suspended: bool,
}

/// The rules' verdict on deleting `group` in this case (see [`testkit::oracle`]).
fn forbidden(case: &Case, group: &ObservedGroup) -> Option<&'static str> {
    let world = oracle::World {
        declared: &case.declared,
        live: &case.live,
        unmanaged: case.policy,
        protect: &case.protect,
        listed: !case.listing_fails,
        suspended: case.suspended,
    };
    oracle::forbidden(&world, group)
}

fn case() -> impl Strategy<Value = Case> {
    let live = prop::collection::btree_map(0u8..12, 0usize..NAMES.len(), 0..10).prop_map(|m| {
        m.into_iter()
            .map(|(id, name)| live(id, NAMES[name]))
            .collect::<Vec<_>>()
    });
    let decl = (
        prop::option::of(0usize..NAMES.len()),
        prop::option::of(0u8..12),
        any::<bool>(),
    );
    let policy = prop_oneof![
        Just(UnmanagedPolicy::Ignore),
        Just(UnmanagedPolicy::Report),
        Just(UnmanagedPolicy::Delete)
    ];
    let protect = prop::sample::subsequence(vec!["SCIM-*", "beta", PROTECTED_ID], 0..3);
    (
        live,
        prop::collection::vec(decl, 0..8),
        policy,
        0u32..6,
        protect,
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(live, decls, policy, max_deletes, protect, listing_fails, suspended)| {
                let protect: Vec<String> = protect.into_iter().map(str::to_owned).collect();
                let mut declared: Vec<DesiredGroup> = Vec::new();
                for (name, id, absent) in decls {
                    let group = DesiredGroup {
                        name: name.map(|n| NAMES[n].to_owned()),
                        id: id.map(gid),
                        state: if absent {
                            GroupState::Absent
                        } else {
                            GroupState::Present
                        },
                    };
                    declared.push(group);
                }
                Case {
                    declared,
                    live,
                    policy,
                    max_deletes,
                    protect,
                    listing_fails,
                    suspended,
                }
            },
        )
        // Only what the loader accepts: every declaration named somehow, no name or id twice,
        // nothing both protected and absent. The loader's own checks are tested elsewhere.
        .prop_map(|mut case| {
            let protect = case.protect.clone();
            let mut kept: Vec<DesiredGroup> = Vec::new();
            for group in case.declared {
                let duplicate = kept.iter().any(|d| {
                    (d.name.is_some() && d.name == group.name)
                        || (d.id.is_some() && d.id == group.id)
                });
                let protected_absent = group.state == GroupState::Absent
                    && protect.iter().any(|p| match p.strip_suffix('*') {
                        Some(prefix) => {
                            group.name.as_deref().is_some_and(|n| n.starts_with(prefix))
                        }
                        None => {
                            group.name.as_deref() == Some(p.as_str())
                                || group.id.as_ref().map(GroupId::as_str) == Some(p.as_str())
                        }
                    });
                if (group.name.is_some() || group.id.is_some()) && !duplicate && !protected_absent {
                    kept.push(group);
                }
            }
            case.declared = kept;
            case
        })
}

fn state_of(case: &Case) -> DesiredState {
    DesiredState {
        accounts: vec![DesiredAccount {
            id: account(0),
            label: None,
            unmanaged: case.policy,
            max_deletes: case.max_deletes,
            protect: Protect::new(case.protect.clone()).unwrap(),
            groups: case.declared.clone(),
            file: "prop.yaml".into(),
            suspended: case
                .suspended
                .then(|| "suspend: true in prop.yaml".to_owned()),
        }],
        files: vec![],
        content_hash: String::new(),
        file_hashes: Default::default(),
        notify: vec![],
    }
}

fn observe(case: &Case, live: Vec<ObservedGroup>) -> Observed {
    let listing = if case.listing_fails {
        Err(duplicate(gid(0)))
    } else {
        Ok(live)
    };
    [(account(0), listing)].into_iter().collect()
}

/// 2000 cases each (`PROPTEST_CASES=N` for a longer run); failures are kept in
/// `plan.proptest-regressions` beside this file (the default would put them under
/// `tests/proptest-regressions/`, this binary's `main.rs` being taken for a crate root) and
/// replayed first on every run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(2000);
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::with_cases(cases)
    }
}

proptest! {
    #![proptest_config(config())]

    /// Every planned deletion is one the design allows.
    #[test]
    fn every_deletion_is_allowed_by_the_rules(case in case(), force in any::<bool>()) {
        let p = plan(&state_of(&case), &observe(&case, case.live.clone()), PlanOptions { force });
        for (_, group) in p.deletions() {
            prop_assert!(forbidden(&case, group).is_none(),
                "{:?} deleted although {}", group.name, forbidden(&case, group).unwrap_or_default());
        }
    }

    /// The converse: the planner does not block what the rules allow (without it, a planner
    /// that deletes nothing would pass). Only without `max_deletes` in the way.
    #[test]
    fn every_allowed_deletion_is_planned(mut case in case()) {
        case.max_deletes = u32::MAX;
        let p = plan(&state_of(&case), &observe(&case, case.live.clone()), PlanOptions::default());
        let planned: Vec<&GroupId> = p.deletions().map(|(_, g)| &g.id).collect();
        for group in case.live.iter().filter(|g| forbidden(&case, g).is_none()) {
            prop_assert!(planned.contains(&&group.id), "{:?} is allowed but not planned", group.name);
        }
    }

    /// Rule 1 with something at stake: the same case listed successfully would delete; with
    /// the listing failed, nothing is planned.
    #[test]
    fn a_failed_listing_plans_no_deletion(mut case in case()) {
        case.listing_fails = false;
        case.suspended = false;
        case.max_deletes = u32::MAX;
        case.live.push(live(13, "omega"));
        case.declared.push(DesiredGroup { name: None, id: Some(gid(13)), state: GroupState::Absent });
        let listed = plan(&state_of(&case), &observe(&case, case.live.clone()), PlanOptions { force: true });
        prop_assert!(listed.deletions().count() > 0);
        case.listing_fails = true;
        let failed = plan(&state_of(&case), &observe(&case, case.live.clone()), PlanOptions { force: true });
        prop_assert_eq!(failed.deletions().count(), 0);
        prop_assert_eq!(failed.summary().listing_failed, 1);
    }

    /// A suspended account plans no deletion, and reports as `blocked` (suspended) exactly
    /// what it would delete when resumed.
    #[test]
    fn a_suspended_account_blocks_exactly_what_it_would_delete(mut case in case(), force in any::<bool>()) {
        case.suspended = false;
        let options = PlanOptions { force };
        let resumed = plan(&state_of(&case), &observe(&case, case.live.clone()), options);
        case.suspended = true;
        let suspended = plan(&state_of(&case), &observe(&case, case.live.clone()), options);
        prop_assert_eq!(suspended.deletions().count(), 0);
        let mut would: Vec<&GroupId> = resumed.deletions().map(|(_, g)| &g.id).collect();
        let mut held: Vec<&GroupId> = suspended.accounts[0].items.iter()
            .filter(|i| matches!(i.blocked, Some(BlockReason::Suspended { .. })))
            .filter_map(|i| i.id.as_ref())
            .collect();
        would.sort();
        held.sort();
        prop_assert_eq!(would, held);
        prop_assert!(suspended.accounts[0].suspended.is_some());
    }

    /// Rule 5: more candidates than `max_deletes` blocks all of them, not some.
    #[test]
    fn over_max_deletes_nothing_is_deleted_and_forced_everything_is(case in case()) {
        let forced = plan(&state_of(&case), &observe(&case, case.live.clone()), PlanOptions { force: true });
        let candidates = forced.deletions().count();
        let p = plan(&state_of(&case), &observe(&case, case.live.clone()), PlanOptions::default());
        if candidates > case.max_deletes as usize {
            prop_assert_eq!(p.deletions().count(), 0);
        } else {
            prop_assert_eq!(p.deletions().count(), candidates);
        }
    }

    /// Applying the planned deletions and planning again deletes nothing more, except by a
    /// name that the first plan blocked as ambiguous: once the other namesakes are gone it
    /// names one group, and the file says that group is absent.
    #[test]
    fn applying_a_plan_converges(case in case(), force in any::<bool>()) {
        let options = PlanOptions { force };
        let first = plan(&state_of(&case), &observe(&case, case.live.clone()), options);
        let deleted: Vec<GroupId> = first.deletions().map(|(_, g)| g.id.clone()).collect();
        let ambiguous: Vec<String> = first.accounts[0].items.iter()
            .filter(|i| matches!(i.blocked, Some(BlockReason::AmbiguousName { .. })))
            .filter_map(|i| i.name.clone())
            .collect();
        let after: Vec<ObservedGroup> = case.live.iter().filter(|g| !deleted.contains(&g.id)).cloned().collect();
        let second = plan(&state_of(&case), &observe(&case, after), options);
        for (_, group) in second.deletions() {
            prop_assert!(ambiguous.contains(&group.name), "{} deleted on the second pass", group.name);
        }
    }
}
