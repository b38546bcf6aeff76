//! Deduplication across cycles: from what one cycle found and did to the events worth
//! sending. A state that persists is sent once, when it starts or changes, and again only
//! as a reminder (each sink's `reminder` interval); when it ends, `recovered` is sent.
//!
//! What is tracked, per account: whether its listing failed, whether it is suspended, its
//! drift counts (after the cycle's deletions); per group: blocked (and by which rule), or its
//! deletion failed (and how: Cloudflare's status and code, or a transient error). Deletions
//! are one-off events, sent as they happen.
//!
//! What a cycle cannot see is left as it was: an account whose listing failed keeps its
//! drift and group states; a group whose deletion was not attempted (held off, a dry run,
//! stopped) keeps its state; an account outside the cycle (a retry of others) is untouched.
//! The memory lives as long as the process: a restarted daemon sends the current problems
//! once more, and `apply --notify`, with no memory, sends everything it finds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use super::event::{AccountRef, Context, DriftCounts, Event, GroupRef, Reason};
use crate::apply::Attempt;
use crate::config::SinkConfig;
use crate::model::{AccountId, DeletionOutcome, GroupId, ListingFailure};
use crate::plan::{AccountPlan, Action, BlockReason, Cause, Listing, Plan, PlanItem};
use crate::report;

/// What one cycle found and did.
#[derive(Debug, Clone, Copy)]
pub struct CycleFacts<'a> {
    /// The run id the cycle journaled under.
    pub run_id: &'a str,
    /// The cycle's plan; only its accounts are looked at.
    pub plan: &'a Plan,
    /// Every deletion attempted, as it ended.
    pub attempts: &'a [Attempt],
    /// Where the journal is, for the restore command of a deletion.
    pub state_dir: &'a Path,
}

/// An event and the sinks it goes to.
#[derive(Debug, Clone)]
pub struct Routed {
    pub event: Event,
    /// Sink names.
    pub sinks: Vec<String>,
}

/// What a tracked state is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Topic {
    Listing,
    Suspended,
    Drift,
    /// A group, by its live id (or its declared name when no single group is meant).
    Group(GroupKey),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum GroupKey {
    Id(GroupId),
    Name(String),
}

/// A state that holds now: what tells it apart from another state of the same topic, and
/// the event that announces it.
struct Current {
    fingerprint: String,
    event: Event,
}

/// A tracked state.
#[derive(Debug)]
struct Entry {
    fingerprint: String,
    /// The event that announced it (reminders repeat it).
    event: Event,
    /// When each sink was last told of it.
    last_sent: HashMap<String, Instant>,
}

/// The states announced so far.
#[derive(Debug, Default)]
pub struct Tracker {
    states: BTreeMap<(AccountId, Topic), Entry>,
}

impl Tracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// The events `facts` call for at `now`, each routed to the `sinks` that want it.
    pub fn observe(
        &mut self,
        facts: &CycleFacts<'_>,
        sinks: &[SinkConfig],
        now: Instant,
    ) -> Vec<Routed> {
        let context = Context::now(facts.run_id);
        let mut out = Vec::new();
        let route = |event: Event, out: &mut Vec<Routed>| -> Vec<String> {
            let names: Vec<String> = sinks
                .iter()
                .filter(|s| s.wants(event.event))
                .map(|s| s.name.clone())
                .collect();
            if !names.is_empty() {
                out.push(Routed {
                    event,
                    sinks: names.clone(),
                });
            }
            names
        };
        for account in &facts.plan.accounts {
            let attempts: Vec<&Attempt> = facts
                .attempts
                .iter()
                .filter(|a| a.account == account.id)
                .collect();
            let account_ref = AccountRef {
                id: account.id.clone(),
                label: account.label.clone(),
            };
            for attempt in &attempts {
                if attempt.outcome == DeletionOutcome::Deleted {
                    let event = deleted_event(&context, &account_ref, account, attempt, facts);
                    route(event, &mut out);
                }
            }
            let Seen {
                current,
                kept,
                groups_unseen,
            } = current_states(&context, &account_ref, account, &attempts);

            for (topic, now_state) in current.into_iter() {
                let key = (account.id.clone(), topic);
                match self.states.get_mut(&key) {
                    Some(entry) if entry.fingerprint == now_state.fingerprint => {
                        remind(entry, sinks, &context, now, &mut out);
                    }
                    _ => {
                        let sent = route(now_state.event.clone(), &mut out);
                        self.states.insert(
                            key,
                            Entry {
                                fingerprint: now_state.fingerprint,
                                event: now_state.event,
                                last_sent: sent.into_iter().map(|s| (s, now)).collect(),
                            },
                        );
                    }
                }
            }
            // Whatever was tracked for this account, holds no more, and could be seen: over.
            let over: Vec<(AccountId, Topic)> = self
                .states
                .keys()
                .filter(|(id, topic)| {
                    *id == account.id
                        && !kept.contains(topic)
                        && !(groups_unseen && matches!(topic, Topic::Group(_)))
                })
                .cloned()
                .collect();
            for key in over {
                if let Some(entry) = self.states.remove(&key) {
                    route(Event::recovered(&context, &entry.event), &mut out);
                }
            }
        }
        out
    }

    /// Forgets an account that left the config (no `recovered` is sent).
    pub fn forget_account(&mut self, account: &AccountId) {
        self.states.retain(|(id, _), _| id != account);
    }
}

/// Re-sends `entry` to each sink whose reminder interval has passed since it last told it.
fn remind(
    entry: &mut Entry,
    sinks: &[SinkConfig],
    context: &Context,
    now: Instant,
    out: &mut Vec<Routed>,
) {
    let due: Vec<String> = sinks
        .iter()
        .filter(|s| s.wants(entry.event.event))
        .filter(|s| {
            s.reminder.is_some_and(|every: Duration| {
                entry
                    .last_sent
                    .get(&s.name)
                    .is_none_or(|last| now.saturating_duration_since(*last) >= every)
            })
        })
        .map(|s| s.name.clone())
        .collect();
    if due.is_empty() {
        return;
    }
    for sink in &due {
        entry.last_sent.insert(sink.clone(), now);
    }
    out.push(Routed {
        event: entry.event.reminder(context),
        sinks: due,
    });
}

/// What a cycle saw of one account.
struct Seen {
    /// The states that hold now.
    current: BTreeMap<Topic, Current>,
    /// Every topic still on: those, plus the ones the cycle could not see (kept as they were).
    kept: BTreeSet<Topic>,
    /// The account was not listed: no group state can be judged.
    groups_unseen: bool,
}

/// What the cycle of `account` saw.
fn current_states(
    context: &Context,
    account_ref: &AccountRef,
    account: &AccountPlan,
    attempts: &[&Attempt],
) -> Seen {
    let mut current = BTreeMap::new();
    let mut kept = BTreeSet::new();
    if let Some(by) = &account.suspended {
        current.insert(
            Topic::Suspended,
            Current {
                fingerprint: by.clone(),
                event: Event::suspended(context, account_ref.clone(), by),
            },
        );
    }
    let Listing::Ok { .. } = &account.listing else {
        if let Listing::ListingFailed {
            error,
            http_status,
            codes,
            hint,
        } = &account.listing
        {
            let failure = ListingFailure {
                message: error.clone(),
                status: *http_status,
                codes: codes.clone(),
                hint: hint.clone(),
            };
            current.insert(
                Topic::Listing,
                Current {
                    fingerprint: "failed".to_owned(),
                    event: Event::listing_failed(context, account_ref.clone(), &failure),
                },
            );
        }
        // Unlisted: drift and groups are unknown, and stay as they were.
        kept.insert(Topic::Drift);
        kept.extend(current.keys().cloned());
        return Seen {
            current,
            kept,
            groups_unseen: true,
        };
    };

    let gone = attempts.iter().filter(|a| a.outcome.is_gone()).count();
    let summary = account.summary();
    let drift = DriftCounts {
        delete: summary.delete.saturating_sub(gone),
        blocked: summary.blocked,
        missing: summary.missing,
        unmanaged: summary.unmanaged,
    };
    if drift.any() {
        current.insert(
            Topic::Drift,
            Current {
                fingerprint: format!("{drift:?}"),
                event: Event::drift(context, account_ref.clone(), drift),
            },
        );
    }
    for item in &account.items {
        let Some(key) = group_key(item) else {
            continue;
        };
        let group = GroupRef {
            id: item.id.clone(),
            name: item.name.clone(),
        };
        match (item.action, &item.blocked) {
            (Action::Blocked, Some(reason)) => {
                let why = Reason::new(block_kind(reason), report::explain(item));
                current.insert(
                    Topic::Group(key),
                    Current {
                        fingerprint: format!("blocked {reason:?}"),
                        event: Event::blocked(context, account_ref.clone(), group, why),
                    },
                );
            }
            (Action::Delete, _) => {
                let attempt = item
                    .id
                    .as_ref()
                    .and_then(|id| attempts.iter().find(|a| a.group.id == *id));
                match attempt.map(|a| &a.outcome) {
                    Some(DeletionOutcome::Failed { error, refused }) => {
                        let (fingerprint, why) = match refused {
                            Some(refusal) => (
                                format!("refused {} {:?}", refusal.status, refusal.code),
                                Reason::refused(refusal),
                            ),
                            None => (
                                "failed".to_owned(),
                                Reason::new("error", crate::shown::Escaped(error).to_string()),
                            ),
                        };
                        let group = attempt.map_or(group.clone(), |a| GroupRef {
                            id: Some(a.group.id.clone()),
                            name: Some(a.group.name.clone()),
                        });
                        current.insert(
                            Topic::Group(key),
                            Current {
                                fingerprint,
                                event: Event::delete_failed(
                                    context,
                                    account_ref.clone(),
                                    group,
                                    why,
                                ),
                            },
                        );
                    }
                    // Gone: whatever was tracked for it is over.
                    Some(outcome) if outcome.is_gone() => {}
                    // Not attempted, or moved since planned: unknown, kept as it was.
                    _ => {
                        kept.insert(Topic::Group(key));
                    }
                }
            }
            _ => {}
        }
    }
    kept.extend(current.keys().cloned());
    Seen {
        current,
        kept,
        groups_unseen: false,
    }
}

fn group_key(item: &PlanItem) -> Option<GroupKey> {
    match (&item.id, &item.name) {
        (Some(id), _) => Some(GroupKey::Id(id.clone())),
        (None, Some(name)) => Some(GroupKey::Name(name.clone())),
        (None, None) => None,
    }
}

/// The block reason's kind, as the JSON report names it.
fn block_kind(reason: &BlockReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str().map(str::to_owned)))
        .unwrap_or_else(|| "blocked".to_owned())
}

/// Why a group was deleted, and the command that brings it back.
fn deleted_event(
    context: &Context,
    account_ref: &AccountRef,
    account: &AccountPlan,
    attempt: &Attempt,
    facts: &CycleFacts<'_>,
) -> Event {
    let cause = account
        .items
        .iter()
        .find(|i| i.id.as_ref() == Some(&attempt.group.id))
        .map(|i| i.cause);
    let why = match cause {
        Some(Cause::NotDeclared) => Reason::new("not_declared", "not declared (unmanaged: delete)"),
        _ => Reason::new("declared_absent", "declared absent"),
    };
    let state_dir = facts.state_dir.display().to_string();
    let quoted = shlex::try_quote(&state_dir)
        .map(|q| q.into_owned())
        .unwrap_or(state_dir);
    Event::deleted(
        context,
        account_ref.clone(),
        GroupRef {
            id: Some(attempt.group.id.clone()),
            name: Some(attempt.group.name.clone()),
        },
        why,
        format!(
            "cfgroups restore --group {} --state-dir {quoted}",
            attempt.group.id
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use super::*;
    use crate::cloudflare::{ApiError, ApiErrors};
    use crate::config::{self, EventKind, SinkKind, UrlSource};
    use crate::model::{Observed, ObservedGroup};
    use crate::plan::{self, PlanOptions};
    use crate::refusal::Refusal;

    const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    fn sink(name: &str, events: &[EventKind], reminder: Option<Duration>) -> SinkConfig {
        SinkConfig {
            name: name.to_owned(),
            kind: SinkKind::Webhook,
            url: UrlSource::Env("X".into()),
            events: events.iter().copied().collect::<BTreeSet<_>>(),
            reminder,
            timeout: Duration::from_secs(1),
            attempts: 1,
            file: PathBuf::from("groups.yaml"),
        }
    }

    fn every_event() -> Vec<EventKind> {
        vec![
            EventKind::Deleted,
            EventKind::DeleteFailed,
            EventKind::Blocked,
            EventKind::ListingFailed,
            EventKind::Drift,
            EventKind::Suspended,
            EventKind::Recovered,
        ]
    }

    fn group(n: u8, name: &str) -> ObservedGroup {
        ObservedGroup {
            id: format!("{n:032x}").parse().unwrap(),
            name: name.to_owned(),
            created_on: None,
            modified_on: None,
            policies: None,
        }
    }

    /// The account declaring `Temp` and `SCIM` absent, planned against `live` (or a failed
    /// listing).
    fn plan_of(live: Option<Vec<ObservedGroup>>) -> Plan {
        let desired = config::parse(
            &format!(
                "version: 1\naccounts:\n  - id: {ACCOUNT}\n    label: production\n    groups:\n      - {{name: Temp, state: absent}}\n      - {{name: SCIM, state: absent}}\n"
            ),
            Path::new("groups.yaml"),
        )
        .unwrap();
        let listing = live.ok_or_else(|| crate::model::ListingFailure::new("HTTP 503".to_owned()));
        let observed: Observed = [(ACCOUNT.parse().unwrap(), listing)].into_iter().collect();
        plan::plan(&desired, &observed, PlanOptions::default())
    }

    fn attempt(group: &ObservedGroup, outcome: DeletionOutcome) -> Attempt {
        Attempt {
            account: ACCOUNT.parse().unwrap(),
            group: group.clone(),
            outcome,
        }
    }

    fn refused() -> DeletionOutcome {
        DeletionOutcome::Failed {
            error: "HTTP 403".into(),
            refused: Some(Refusal::new(
                403,
                &ApiErrors(vec![ApiError {
                    code: 1010,
                    message: "provisioned by SCIM".into(),
                    documentation_url: None,
                    source: None,
                    error_chain: None,
                }]),
            )),
        }
    }

    fn run(
        tracker: &mut Tracker,
        plan: &Plan,
        attempts: &[Attempt],
        sinks: &[SinkConfig],
    ) -> Vec<(EventKind, Option<EventKind>, bool, Vec<String>)> {
        let facts = CycleFacts {
            run_id: "run",
            plan,
            attempts,
            state_dir: Path::new("/var/lib/cfgroups"),
        };
        tracker
            .observe(&facts, sinks, Instant::now())
            .into_iter()
            .map(|r| {
                (
                    r.event.event,
                    r.event.recovered_from,
                    r.event.reminder,
                    r.sinks,
                )
            })
            .collect()
    }

    fn kinds(events: &[(EventKind, Option<EventKind>, bool, Vec<String>)]) -> Vec<String> {
        events
            .iter()
            .map(|(kind, from, reminder, _)| {
                let mut text = kind.as_str().to_owned();
                if let Some(from) = from {
                    text.push_str(&format!("({})", from.as_str()));
                }
                if *reminder {
                    text.push_str(" again");
                }
                text
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_persisting_state_is_sent_once_then_on_change_and_recovered_when_it_ends() {
        let sinks = [sink("all", &every_event(), None)];
        let mut tracker = Tracker::new();
        let (temp_a, temp_b) = (group(1, "Temp"), group(2, "Temp"));
        let ambiguous = plan_of(Some(vec![temp_a.clone(), temp_b.clone()]));
        assert_eq!(
            kinds(&run(&mut tracker, &ambiguous, &[], &sinks)),
            ["drift", "blocked"]
        );
        for _ in 0..3 {
            assert!(run(&mut tracker, &ambiguous, &[], &sinks).is_empty());
        }
        // One namesake gone: the other is deleted; the block and the drift are over.
        let single = plan_of(Some(vec![temp_b.clone()]));
        let done = [attempt(&temp_b, DeletionOutcome::Deleted)];
        assert_eq!(
            kinds(&run(&mut tracker, &single, &done, &sinks)),
            ["deleted", "recovered(drift)", "recovered(blocked)"]
        );
        assert!(run(&mut tracker, &plan_of(Some(vec![])), &[], &sinks).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_sent_once_while_held_off_and_retried_and_recovers_on_deletion() {
        let sinks = [sink("all", &every_event(), None)];
        let mut tracker = Tracker::new();
        let scim = group(3, "SCIM");
        let plan = plan_of(Some(vec![scim.clone()]));
        let first = run(&mut tracker, &plan, &[attempt(&scim, refused())], &sinks);
        assert_eq!(kinds(&first), ["drift", "delete_failed"]);
        // Held off (no attempt), then refused the same way again: nothing new.
        assert!(run(&mut tracker, &plan, &[], &sinks).is_empty());
        assert!(run(&mut tracker, &plan, &[attempt(&scim, refused())], &sinks).is_empty());
        // A different failure is a change.
        let transient = [attempt(&scim, DeletionOutcome::failed("HTTP 503"))];
        assert_eq!(
            kinds(&run(&mut tracker, &plan, &transient, &sinks)),
            ["delete_failed"]
        );
        let done = [attempt(&scim, DeletionOutcome::Deleted)];
        assert_eq!(
            kinds(&run(&mut tracker, &plan, &done, &sinks)),
            ["deleted", "recovered(drift)", "recovered(delete_failed)"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_account_that_cannot_be_listed_keeps_its_group_states() {
        let sinks = [sink("all", &every_event(), None)];
        let mut tracker = Tracker::new();
        let ambiguous = plan_of(Some(vec![group(1, "Temp"), group(2, "Temp")]));
        run(&mut tracker, &ambiguous, &[], &sinks);
        assert_eq!(
            kinds(&run(&mut tracker, &plan_of(None), &[], &sinks)),
            ["listing_failed"]
        );
        assert!(run(&mut tracker, &plan_of(None), &[], &sinks).is_empty());
        assert_eq!(
            kinds(&run(&mut tracker, &ambiguous, &[], &sinks)),
            ["recovered(listing_failed)"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reminders_go_only_to_the_sinks_that_want_them_when_due() {
        let hour = Duration::from_secs(3600);
        let sinks = [
            sink("pager", &[EventKind::Blocked], Some(hour)),
            sink("audit", &[EventKind::Blocked, EventKind::Deleted], None),
            sink("deletions", &[EventKind::Deleted], Some(hour)),
        ];
        let mut tracker = Tracker::new();
        let ambiguous = plan_of(Some(vec![group(1, "Temp"), group(2, "Temp")]));
        let first = run(&mut tracker, &ambiguous, &[], &sinks);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].3, ["pager", "audit"]);
        tokio::time::advance(hour / 2).await;
        assert!(run(&mut tracker, &ambiguous, &[], &sinks).is_empty());
        tokio::time::advance(hour / 2).await;
        let again = run(&mut tracker, &ambiguous, &[], &sinks);
        assert_eq!(kinds(&again), ["blocked again"]);
        assert_eq!(again[0].3, ["pager"]);
        assert!(run(&mut tracker, &ambiguous, &[], &sinks).is_empty());
    }
}
