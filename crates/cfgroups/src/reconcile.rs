//! The one reconcile pipeline, shared by `apply` and the daemon: list every account fresh,
//! settle the journal from that listing, plan, and execute the plan's deletions through the
//! journal. The callers add only what is theirs around these steps: `apply` prints, checks a
//! reviewed plan and asks before [`Pipeline::execute`]; the daemon runs
//! [`Pipeline::reconcile`] on its schedule and reports through metrics.
//!
//! Each step re-derives everything from the fresh listing; nothing is carried from one cycle
//! to the next but the journal.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::apply::{self, ApplyError, ApplyOptions, ApplySummary, Held, NEVER_HELD, Progress};
use crate::config::DesiredState;
use crate::journal::{self, Journal, JournalError, Record};
use crate::model::{AccountId, ListingFailure, Observed};
use crate::plan::{self, Plan, PlanOptions};
use crate::saved_plan::{self, SavedPlan};
use crate::shown::Escaped;
use crate::source::{self, GroupSource};
use crate::writer::GroupWriter;

/// How the pipeline lists and deletes.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Accounts listed at once.
    pub listing_concurrency: usize,
    /// How deletions run.
    pub apply: ApplyOptions,
    /// Knobs of the plan (`--force`, one-shot `apply` only).
    pub plan: PlanOptions,
}

/// One cycle's view: the desired state it planned from, the fresh listing, what it settled
/// in the journal, and the plan.
#[derive(Debug)]
pub struct Cycle {
    /// The run id this cycle journals under.
    pub run_id: String,
    /// What the plan was made from; its rules are checked again before each DELETE.
    pub desired: DesiredState,
    pub observed: Observed,
    /// Outcomes the listing decided for deletions earlier runs left open.
    pub settled: Vec<Record>,
    pub plan: Plan,
}

/// How a daemon reconcile ended.
#[derive(Debug)]
pub enum Reconciled {
    /// A stop came while listing: nothing was planned or changed.
    Abandoned,
    /// The cycle ran; `applied` is `None` when nothing was executed (a dry run, nothing to
    /// delete, or a stop before the deletions).
    Done {
        /// Boxed: a cycle is large, and `Abandoned` carries nothing.
        cycle: Box<Cycle>,
        applied: Option<Result<ApplySummary, ApplyError>>,
    },
}

/// The planned deletions moved between a plan and its confirmation.
#[derive(Debug)]
pub struct Moved {
    /// `+ ...` not approved, `- ...` approved but no longer planned.
    pub differences: Vec<String>,
}

/// The reconcile pipeline over a listing source and a writer, journaling every deletion.
#[derive(Debug)]
pub struct Pipeline<S, W> {
    source: S,
    writer: W,
    journal: Arc<Journal>,
    options: PipelineOptions,
}

impl<S: GroupSource, W: GroupWriter> Pipeline<S, W> {
    pub fn new(source: S, writer: W, journal: Arc<Journal>, options: PipelineOptions) -> Self {
        Self {
            source,
            writer,
            journal,
            options,
        }
    }

    /// The listing source, e.g. for its name in reports.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The journal every deletion is recorded in.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Lists every account of `desired` fresh, settles the journal from the listing, and
    /// plans. A journal that cannot be read or written fails the cycle: nothing is deleted
    /// without its backup on disk.
    pub async fn observe(&self, desired: &DesiredState) -> Result<Cycle, JournalError> {
        let observed = source::list_accounts(
            &self.source,
            &desired.account_ids(),
            self.options.listing_concurrency,
        )
        .await;
        for (account, listing) in &observed {
            if let Err(failure) = listing {
                log_listing_failure(account, failure);
            }
        }
        let settled = journal::settle(&self.journal, &observed)?;
        let plan = plan::plan(desired, &observed, self.options.plan);
        Ok(Cycle {
            run_id: journal::new_run_id(),
            desired: desired.clone(),
            observed,
            settled,
            plan,
        })
    }

    /// Lists again after `approved` was shown and agreed to (perhaps long ago), and returns
    /// the fresh cycle only if it plans exactly the deletions that were approved.
    pub async fn confirm(
        &self,
        desired: &DesiredState,
        approved: &Cycle,
    ) -> Result<Result<Cycle, Moved>, JournalError> {
        let fresh = self.observe(desired).await?;
        let approved = SavedPlan::new(&approved.plan, &desired.content_hash);
        let differences = approved.difference(&saved_plan::deletions(&fresh.plan));
        Ok(if differences.is_empty() {
            Ok(fresh)
        } else {
            Err(Moved { differences })
        })
    }

    /// Carries out the cycle's planned deletions; see [`apply::execute`].
    pub async fn execute(
        &self,
        cycle: &Cycle,
        stop: &CancellationToken,
        on_progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<ApplySummary, ApplyError> {
        self.execute_holding(cycle, NEVER_HELD, stop, on_progress)
            .await
    }

    /// [`execute`](Self::execute), except the deletions `held` holds off.
    pub async fn execute_holding(
        &self,
        cycle: &Cycle,
        held: Held<'_>,
        stop: &CancellationToken,
        on_progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<ApplySummary, ApplyError> {
        apply::execute(
            &cycle.plan,
            &cycle.desired,
            &self.writer,
            &self.journal,
            &self.options.apply,
            &cycle.run_id,
            held,
            stop,
            on_progress,
        )
        .await
    }

    /// A whole unattended cycle, as the daemon runs it: observe (abandoned at once when
    /// `stop` is cancelled, since listing changes nothing), then, unless `dry_run`, execute
    /// every deletion but those `held` holds off.
    pub async fn reconcile(
        &self,
        desired: &DesiredState,
        dry_run: bool,
        held: Held<'_>,
        stop: &CancellationToken,
        on_progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<Reconciled, JournalError> {
        let cycle = tokio::select! {
            cycle = self.observe(desired) => cycle?,
            () = stop.cancelled() => return Ok(Reconciled::Abandoned),
        };
        let act = !dry_run && !stop.is_cancelled() && cycle.plan.deletions().next().is_some();
        let applied = if act {
            Some(self.execute_holding(&cycle, held, stop, on_progress).await)
        } else {
            None
        };
        Ok(Reconciled::Done {
            cycle: Box::new(cycle),
            applied,
        })
    }
}

/// One warning per account that cannot be listed, with what Cloudflare said (status,
/// codes, message) and what to check: the error alone sits in a report nobody reads while
/// the daemon retries.
fn log_listing_failure(account: &AccountId, failure: &ListingFailure) {
    tracing::warn!(
        %account,
        status = failure.status,
        codes = ?failure.codes,
        error = %Escaped(&failure.message),
        hint = failure.hint.as_deref().unwrap_or(""),
        "account {account} cannot be listed; nothing in it is deleted this cycle"
    );
}

#[cfg(test)]
mod tests {
    //! The pipeline over an in-memory API: deletions, the journal's ordering, and a crash in
    //! the middle of a DELETE settled by the next run, all without HTTP.

    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Mutex;

    use serde_json::value::RawValue;
    use serde_json::{Value, json};
    use tokio::sync::Notify;

    use super::*;
    use crate::config;
    use crate::journal::JOURNAL_FILE;
    use crate::model::{AccountId, DeletionOutcome, GroupId, ObservedGroup};
    use crate::source::ListingError;
    use crate::writer::{WriteError, WriteErrorKind};

    const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    fn group(n: u8, name: &str) -> ObservedGroup {
        ObservedGroup {
            id: format!("{n:032x}").parse().unwrap(),
            name: name.to_owned(),
            created_on: None,
            modified_on: None,
            policies: Some(raw(
                json!([{"access": "allow", "permission_groups": [{"id": "p"}]}]),
            )),
        }
    }

    fn raw(value: Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(&value).unwrap()
    }

    /// How a DELETE behaves.
    #[derive(Clone, Copy, PartialEq)]
    enum Crash {
        /// Answers normally.
        No,
        /// The process dies after the DELETE took effect, before its answer.
        AfterDelete,
        /// The process dies while the DELETE is in flight, before it took effect.
        BeforeDelete,
        /// Answers 404 without deleting anything.
        LyingNotFound,
        /// Deletes, then answers with an error (the answer was lost and the retry failed).
        FailedButDone,
        /// Refuses every DELETE (a SCIM-managed group): HTTP 403, for good.
        Refused,
    }

    /// One account's groups in memory, a log of what was done, and what the journal held
    /// when each DELETE arrived.
    struct MemoryApi {
        groups: Mutex<Vec<ObservedGroup>>,
        journal: std::path::PathBuf,
        /// (group, journal lines naming it when its DELETE arrived)
        deletes: Mutex<Vec<(GroupId, usize)>>,
        crash: Mutex<BTreeMap<GroupId, Crash>>,
        crashed: Notify,
        /// Fresh reads (GET by id, exact-name queries) served.
        reads: std::sync::atomic::AtomicUsize,
    }

    impl MemoryApi {
        fn new(groups: Vec<ObservedGroup>, journal: &Path) -> Self {
            Self {
                groups: Mutex::new(groups),
                journal: journal.to_owned(),
                deletes: Mutex::new(Vec::new()),
                crash: Mutex::new(BTreeMap::new()),
                crashed: Notify::new(),
                reads: std::sync::atomic::AtomicUsize::new(0),
            }
        }

        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = self
                .groups
                .lock()
                .unwrap()
                .iter()
                .map(|g| g.name.clone())
                .collect();
            names.sort();
            names
        }
    }

    impl GroupSource for &MemoryApi {
        fn describe(&self) -> String {
            "memory".to_owned()
        }

        async fn list(&self, _account: &AccountId) -> Result<Vec<ObservedGroup>, ListingError> {
            Ok(self.groups.lock().unwrap().clone())
        }
    }

    impl GroupWriter for &MemoryApi {
        async fn get_group(
            &self,
            _account: &AccountId,
            group: &GroupId,
        ) -> Result<Option<ObservedGroup>, WriteError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let found = self
                .groups
                .lock()
                .unwrap()
                .iter()
                .find(|g| g.id == *group)
                .cloned();
            Ok(found)
        }

        async fn groups_named(
            &self,
            _account: &AccountId,
            name: &str,
        ) -> Result<Vec<ObservedGroup>, WriteError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let named = self
                .groups
                .lock()
                .unwrap()
                .iter()
                .filter(|g| g.name == name)
                .cloned()
                .collect();
            Ok(named)
        }

        async fn list_members(
            &self,
            _account: &AccountId,
            group: &GroupId,
        ) -> Result<Vec<Value>, WriteError> {
            if self.groups.lock().unwrap().iter().any(|g| g.id == *group) {
                Ok(vec![json!({"id": "m1", "email": "someone@example.com"})])
            } else {
                Err(WriteError {
                    kind: WriteErrorKind::NotFound,
                    message: "HTTP 404".to_owned(),
                })
            }
        }

        async fn delete_group(&self, _account: &AccountId, group: &GroupId) -> DeletionOutcome {
            let journaled = std::fs::read_to_string(&self.journal)
                .unwrap_or_default()
                .lines()
                .filter(|line| line.contains(group.as_str()))
                .count();
            self.deletes
                .lock()
                .unwrap()
                .push((group.clone(), journaled));
            let crash = {
                let mut crashes = self.crash.lock().unwrap();
                match crashes.get(group) {
                    Some(Crash::Refused) => Crash::Refused,
                    _ => crashes.remove(group).unwrap_or(Crash::No),
                }
            };
            if crash == Crash::Refused {
                return DeletionOutcome::Failed {
                    error: "HTTP 403: SCIM-managed".to_owned(),
                    refused: Some(crate::refusal::Refusal::new(
                        403,
                        &crate::cloudflare::ApiErrors(vec![crate::cloudflare::ApiError {
                            code: 1010,
                            message: "provisioned by SCIM".to_owned(),
                            documentation_url: None,
                            source: None,
                            error_chain: None,
                        }]),
                    )),
                };
            }
            if !matches!(crash, Crash::BeforeDelete | Crash::LyingNotFound) {
                self.groups.lock().unwrap().retain(|g| g.id != *group);
            }
            match crash {
                Crash::AfterDelete | Crash::BeforeDelete => {
                    self.crashed.notify_one();
                    std::future::pending::<()>().await;
                    unreachable!("a crashed process answers nothing")
                }
                Crash::LyingNotFound => DeletionOutcome::AlreadyAbsent,
                Crash::FailedButDone => DeletionOutcome::failed("connection reset"),
                Crash::No | Crash::Refused => DeletionOutcome::Deleted,
            }
        }

        async fn create_group(
            &self,
            _account: &AccountId,
            _name: &str,
            _policies: &RawValue,
        ) -> Result<ObservedGroup, WriteError> {
            unreachable!("the pipeline never creates groups")
        }

        async fn add_members(
            &self,
            _account: &AccountId,
            _group: &GroupId,
            _member_ids: &[String],
        ) -> Result<(), WriteError> {
            unreachable!("the pipeline never adds members")
        }
    }

    fn desired() -> DesiredState {
        desired_with("")
    }

    /// The test account declaring `Keep` present and `Gone A`, `Gone B` absent by name,
    /// with `extra` (indented YAML lines) added to the account.
    fn desired_with(extra: &str) -> DesiredState {
        let yaml = format!(
            "version: 1\naccounts:\n  - id: {ACCOUNT}\n{extra}    groups:\n\
             \x20     - {{name: Keep, state: present}}\n\
             \x20     - {{name: Gone A, state: absent}}\n\
             \x20     - {{name: Gone B, state: absent}}\n\
             \x20     - {{id: {:032x}, state: absent}}\n",
            4
        );
        config::parse(&yaml, Path::new("groups.yaml")).unwrap()
    }

    fn pipeline<'a>(api: &'a MemoryApi, journal: &Path) -> Pipeline<&'a MemoryApi, &'a MemoryApi> {
        let options = PipelineOptions {
            listing_concurrency: 1,
            apply: ApplyOptions {
                backup_members: true,
                concurrency: 1,
            },
            plan: PlanOptions::default(),
        };
        Pipeline::new(api, api, Arc::new(Journal::open(journal).unwrap()), options)
    }

    #[tokio::test]
    async fn a_held_deletion_is_not_attempted_and_is_counted_and_reported_held_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let api = MemoryApi::new(vec![group(2, "Gone A"), group(3, "Gone B")], &path);
        let pipeline = pipeline(&api, &path);
        let cycle = pipeline.observe(&desired()).await.unwrap();
        let attempts = crate::apply::Attempts::default();
        let held = |_: &AccountId, group: &ObservedGroup| group.name == "Gone A";
        let applied = pipeline
            .execute_holding(&cycle, &held, &CancellationToken::new(), &|progress| {
                attempts.push(progress.account, progress.group, progress.outcome)
            })
            .await
            .unwrap();
        assert_eq!(api.names(), vec!["Gone A"]);
        let total = applied.total();
        assert_eq!((total.deleted, total.held_off), (1, 1), "{total:?}");
        assert!(applied.members_backed_up);
        let held_off: Vec<&str> = applied
            .groups
            .iter()
            .filter(|r| r.held_off)
            .map(|r| r.group.name.as_str())
            .collect();
        assert_eq!(held_off, ["Gone A"]);
        // The progress callback saw the one attempt, and only it.
        let seen: Vec<(String, &str)> = attempts
            .into_inner()
            .iter()
            .map(|a| (a.group.name.clone(), a.outcome.as_str()))
            .collect();
        assert_eq!(seen, [("Gone B".to_owned(), "deleted")]);
    }

    #[tokio::test]
    async fn a_crash_mid_delete_is_settled_by_the_next_run_and_the_state_converges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let (keep, gone_a, gone_b) = (group(1, "Keep"), group(2, "Gone A"), group(3, "Gone B"));
        let api = MemoryApi::new(vec![keep, gone_a.clone(), gone_b.clone()], &path);
        api.crash.lock().unwrap().extend([
            (gone_a.id.clone(), Crash::AfterDelete),
            (gone_b.id.clone(), Crash::BeforeDelete),
        ]);

        let never = CancellationToken::new();
        // First run: "Gone A" is deleted but the process dies before its answer.
        let first = pipeline(&api, &path);
        let cycle = first.observe(&desired()).await.unwrap();
        assert_eq!(cycle.plan.summary().delete, 2);
        tokio::select! {
            _ = first.execute(&cycle, &never, &|_| {}) => panic!("the crash should cut the run short"),
            () = api.crashed.notified() => {}
        }
        drop(first);
        let contents = journal::read(&path).unwrap();
        assert_eq!(
            contents.unresolved().len(),
            1,
            "one intent without an outcome"
        );

        // Second run: the listing shows "Gone A" gone, so the open intent is settled as
        // deleted; "Gone B" dies in flight before taking effect.
        let second = pipeline(&api, &path);
        let cycle = second.observe(&desired()).await.unwrap();
        assert!(matches!(
            cycle.settled.as_slice(),
            [Record::Outcome { group_id, outcome: DeletionOutcome::Deleted, .. }] if *group_id == gone_a.id
        ));
        tokio::select! {
            _ = second.execute(&cycle, &never, &|_| {}) => panic!("the crash should cut the run short"),
            () = api.crashed.notified() => {}
        }
        drop(second);

        // Third run: "Gone B" is still listed, so its intent is settled as failed, and the
        // fresh plan deletes it again.
        let third = pipeline(&api, &path);
        let cycle = third.observe(&desired()).await.unwrap();
        assert!(matches!(
            cycle.settled.as_slice(),
            [Record::Outcome { group_id, outcome: DeletionOutcome::Failed { .. }, .. }] if *group_id == gone_b.id
        ));
        let applied = third
            .execute(&cycle, &CancellationToken::new(), &|_| {})
            .await
            .unwrap();
        assert!(applied.complete());
        assert_eq!(api.names(), vec!["Keep"]);

        // Every DELETE found its group's intent, with the backup, already in the journal.
        let deletes = api.deletes.lock().unwrap().clone();
        assert_eq!(deletes.len(), 3);
        for (group, journaled) in &deletes {
            assert!(
                *journaled >= 1,
                "DELETE of {group} before its intent was journaled"
            );
        }
        let contents = journal::read(&path).unwrap();
        assert!(contents.unresolved().is_empty());
        assert!(contents.failed_deletions().is_empty());
        for gone in [&gone_a, &gone_b] {
            assert!(matches!(
                contents.backup_of(&gone.id),
                Some(Record::Intent { group, members: Some(members), .. }) if group == gone && members.len() == 1
            ));
        }
    }

    #[tokio::test]
    async fn a_writer_whose_term_has_run_out_starts_no_deletion_even_without_a_stop() {
        use crate::daemon::Metrics;
        use crate::daemon::election::{LeaderWriter, Publisher};
        use tokio::time::Instant;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let api = MemoryApi::new(vec![group(2, "Gone A"), group(3, "Gone B")], &path);
        let (publisher, leadership) = Publisher::new("replica-a", Metrics::new("0"));
        let options = PipelineOptions {
            listing_concurrency: 1,
            apply: ApplyOptions {
                backup_members: true,
                concurrency: 1,
            },
            plan: PlanOptions::default(),
        };
        let gated = Pipeline::new(
            &api,
            LeaderWriter::new(&api, leadership.clone()),
            Arc::new(Journal::open(&path).unwrap()),
            options,
        );

        // Leading when the cycle was planned; the term's validity runs out before the
        // deletions start, and no elector has said anything yet: the clock decides.
        publisher.lead(1, Instant::now() + std::time::Duration::from_millis(50));
        let cycle = gated.observe(&desired()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        let never = CancellationToken::new();
        let summary = gated.execute(&cycle, &never, &|_| {}).await.unwrap();
        assert_eq!(summary.total().not_started, 2);
        assert!(
            api.deletes.lock().unwrap().is_empty(),
            "deleted without a valid term"
        );
        assert!(
            journal::read(&path).unwrap().unresolved().is_empty(),
            "nothing journaled"
        );

        // Renewed: the same cycle goes through.
        publisher.lead(1, Instant::now() + std::time::Duration::from_secs(60));
        let summary = gated.execute(&cycle, &never, &|_| {}).await.unwrap();
        assert!(summary.complete());
        assert_eq!(api.names(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_journal_that_cannot_be_written_stops_every_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let api = MemoryApi::new(vec![group(2, "Gone A"), group(3, "Gone B")], &path);
        let pipeline = pipeline(&api, &path);
        let cycle = pipeline.observe(&desired()).await.unwrap();
        // The journal's path now names another file: every append is refused.
        let other = dir.path().join("other.jsonl");
        std::fs::write(&other, "").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let result = pipeline
            .execute(&cycle, &CancellationToken::new(), &|_| {})
            .await;
        assert!(
            matches!(
                result,
                Err(ApplyError::Journal(JournalError::Replaced { .. }))
            ),
            "{result:?}"
        );
        assert!(
            api.deletes.lock().unwrap().is_empty(),
            "deleted without a backup"
        );
        assert_eq!(api.names(), vec!["Gone A", "Gone B"]);
    }

    /// Plans against `api`, lets `change` move the world, then executes that plan.
    async fn plan_then(
        api: &MemoryApi,
        path: &Path,
        desired: &DesiredState,
        change: impl FnOnce(&mut Vec<ObservedGroup>),
    ) -> ApplySummary {
        let pipeline = pipeline(api, path);
        let cycle = pipeline.observe(desired).await.unwrap();
        change(&mut api.groups.lock().unwrap());
        pipeline
            .execute(&cycle, &CancellationToken::new(), &|_| {})
            .await
            .unwrap()
    }

    fn intents_for(path: &Path, group: &GroupId) -> Vec<ObservedGroup> {
        journal::read(path)
            .unwrap()
            .records
            .into_iter()
            .filter_map(|record| match record {
                Record::Intent { group: g, .. } if g.id == *group => Some(g),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_group_renamed_to_a_protected_name_after_the_plan_is_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let (by_name, by_id) = (group(2, "Gone A"), group(4, "Old Contractors"));
        let api = MemoryApi::new(vec![by_name.clone(), by_id.clone()], &path);
        let desired = desired_with("    protect: [\"Break-glass*\"]\n");
        let applied = plan_then(&api, &path, &desired, |groups| {
            for group in groups.iter_mut() {
                group.name = format!("Break-glass {}", group.name);
            }
        })
        .await;
        assert_eq!(applied.total().moved, 2, "{applied:?}");
        assert_eq!(applied.total().deleted, 0);
        assert_eq!(
            api.names(),
            vec!["Break-glass Gone A", "Break-glass Old Contractors"]
        );
        assert!(api.deletes.lock().unwrap().is_empty());
        assert!(intents_for(&path, &by_name.id).is_empty());
        assert!(intents_for(&path, &by_id.id).is_empty());
    }

    #[tokio::test]
    async fn a_namesake_created_after_the_plan_stops_a_deletion_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let api = MemoryApi::new(vec![group(2, "Gone A"), group(4, "Old")], &path);
        let applied = plan_then(&api, &path, &desired(), |groups| {
            groups.push(group(9, "Gone A"));
        })
        .await;
        // The name match is refused; the id match is exact and goes ahead.
        assert_eq!(applied.total().moved, 1, "{applied:?}");
        assert_eq!(applied.total().deleted, 1);
        assert_eq!(api.names(), vec!["Gone A", "Gone A"]);
    }

    #[tokio::test]
    async fn the_backup_is_the_group_as_it_was_right_before_the_delete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let listed = group(2, "Gone A");
        let api = MemoryApi::new(vec![listed.clone()], &path);
        let current = raw(json!([{"access": "deny", "permission_groups": [{"id": "changed"}]}]));
        let applied = plan_then(&api, &path, &desired(), |groups| {
            groups[0].policies = Some(current.clone());
        })
        .await;
        assert!(applied.complete(), "{applied:?}");
        let backups = intents_for(&path, &listed.id);
        assert_eq!(backups.len(), 1);
        assert_eq!(
            backups[0].policies.as_deref().map(RawValue::get),
            Some(current.get())
        );
        assert_eq!(api.reads.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_404_from_a_group_that_still_exists_is_a_failure_and_a_lost_success_is_a_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let (lied_about, done) = (group(2, "Gone A"), group(3, "Gone B"));
        let api = MemoryApi::new(vec![lied_about.clone(), done.clone()], &path);
        api.crash.lock().unwrap().extend([
            (lied_about.id.clone(), Crash::LyingNotFound),
            (done.id.clone(), Crash::FailedButDone),
        ]);
        let applied = plan_then(&api, &path, &desired(), |_| {}).await;
        assert_eq!(applied.total().failed, 1, "{applied:?}");
        assert_eq!(applied.total().deleted, 1);
        assert_eq!(applied.total().already_absent, 0);
        assert_eq!(api.names(), vec!["Gone A"]);
        let contents = journal::read(&path).unwrap();
        let outcomes = contents.latest_outcomes();
        let outcome = |id: &GroupId| {
            outcomes
                .iter()
                .find(|((_, group), _)| *group == id)
                .map(|(_, outcome)| (*outcome).clone())
        };
        assert!(matches!(
            outcome(&lied_about.id),
            Some(DeletionOutcome::Failed { .. })
        ));
        assert_eq!(outcome(&done.id), Some(DeletionOutcome::Deleted));
    }

    #[tokio::test]
    async fn a_group_gone_before_its_fresh_read_is_already_absent_without_a_delete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let api = MemoryApi::new(vec![group(2, "Gone A"), group(4, "Old")], &path);
        let applied = plan_then(&api, &path, &desired(), |groups| groups.clear()).await;
        assert_eq!(applied.total().already_absent, 2, "{applied:?}");
        assert!(api.deletes.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_group_that_is_never_deleted_has_its_unchanged_backup_journaled_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let scim = group(2, "Gone A");
        let api = MemoryApi::new(vec![scim.clone()], &path);
        api.crash
            .lock()
            .unwrap()
            .insert(scim.id.clone(), Crash::Refused);
        let pipeline = pipeline(&api, &path);
        let never = CancellationToken::new();
        for _ in 0..5 {
            let cycle = pipeline.observe(&desired()).await.unwrap();
            let applied = pipeline.execute(&cycle, &never, &|_| {}).await.unwrap();
            assert_eq!(applied.total().failed, 1);
        }
        let records = journal::read(&path).unwrap().records;
        let full = records
            .iter()
            .filter(|r| matches!(r, Record::Intent { .. }))
            .count();
        let references = records
            .iter()
            .filter(|r| matches!(r, Record::IntentRef { .. }))
            .count();
        assert_eq!((full, references), (1, 4), "{records:#?}");
        // A changed group is backed up in full again.
        api.groups.lock().unwrap()[0].policies = Some(raw(json!([{"access": "deny"}])));
        let cycle = pipeline.observe(&desired()).await.unwrap();
        pipeline.execute(&cycle, &never, &|_| {}).await.unwrap();
        let records = journal::read(&path).unwrap().records;
        assert!(matches!(
            records.iter().rev().find(|r| r.is_intent()),
            Some(Record::Intent { .. })
        ));
    }
}
