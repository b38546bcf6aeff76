//! `apply::execute` under a misbehaving API: random 5xx, dropped connections (before and
//! after the server acted), 429s, malformed bodies, lying listings and timeouts. Whatever
//! goes wrong, nothing outside the plan is ever deleted, and a second apply with the faults
//! gone converges to exactly the desired state.
//!
//! These run in process with a fast retry policy, so hundreds of faults cost little time.

use std::sync::Arc;
use std::time::Duration;

use cfgroups::apply::{ApplyOptions, ApplySummary};
use cfgroups::cloudflare::{
    BaseUrl, BudgetConfig, Client, ClientConfig, Credentials, Jitter, RetryPolicy,
};
use cfgroups::config::DesiredState;
use cfgroups::journal::{self, JOURNAL_FILE, Journal};
use cfgroups::model::DeletionOutcome;
use cfgroups::plan::{Plan, PlanOptions};
use cfgroups::reconcile::{Pipeline, PipelineOptions};
use cfgroups::source::CloudflareSource;
use cfgroups_fake::{FakeCloudflare, Fault, Method, Route, default_chaos_faults};
use testkit::*;
use tokio_util::sync::CancellationToken;

/// A client with the test token, quick retries, short pauses and a short timeout.
fn client(fake: &FakeCloudflare) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = ClientConfig::new(Credentials::api_token(TOKEN.to_owned().into()).unwrap());
    config.base_url = BaseUrl::parse(&fake.base_url()).unwrap();
    config.request_timeout = Duration::from_millis(200);
    config.retry = RetryPolicy {
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
        max_retries: 5,
        jitter: Jitter::Equal,
        deadline: Duration::from_secs(10),
        max_retry_after: Duration::from_millis(20),
        ..RetryPolicy::default()
    };
    config.budget = BudgetConfig {
        pause_after_429: Duration::from_millis(20),
        max_pause: Duration::from_millis(20),
        ..BudgetConfig::with_limit(1_000_000.try_into().unwrap(), Duration::from_secs(1))
    };
    Client::new(config).unwrap()
}

/// What `cfgroups apply` does, in process, through the reconcile pipeline: list every
/// account, settle interrupted intents, plan, delete.
async fn apply_once(
    desired: &DesiredState,
    client: &Client,
    journal: &Arc<Journal>,
    list_concurrency: usize,
) -> (Plan, ApplySummary) {
    let options = PipelineOptions {
        listing_concurrency: list_concurrency,
        apply: ApplyOptions {
            backup_members: true,
            concurrency: 4,
        },
        plan: PlanOptions::default(),
    };
    let pipeline = Pipeline::new(
        CloudflareSource::new(client.clone()),
        client.clone(),
        journal.clone(),
        options,
    );
    let cycle = pipeline.observe(desired).await.unwrap();
    let summary = pipeline
        .execute(&cycle, &CancellationToken::new(), &|_| {})
        .await
        .unwrap();
    (cycle.plan, summary)
}

async fn chaos_then_converge(seed: u64, rate: f64) {
    let scenario = scenario(4, 30, false);
    let fake = start_fake(scenario.state.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let desired = cfgroups::config::load(&write_config(dir.path(), &scenario.configs)).unwrap();
    let journal = Arc::new(Journal::open(&dir.path().join(JOURNAL_FILE)).unwrap());
    let client = client(&fake);

    // Every kind of fault, plus answers slower than the client waits for.
    let mut menu = default_chaos_faults();
    menu.push(Fault::Slow(Duration::from_millis(400)));
    fake.set_random_faults_from(seed, rate, menu);
    let (_, faulty) = apply_once(&desired, &client, &journal, 4).await;
    let after_faults = fake.state();
    assert_only_planned_deleted(&scenario.state, &after_faults, &scenario.planned);
    let targets = delete_targets(&fake.requests());
    assert!(
        targets.is_subset(&scenario.planned),
        "seed {seed}: a DELETE outside the plan: {:?}",
        targets.difference(&scenario.planned).collect::<Vec<_>>()
    );
    // Every group a DELETE reached is either gone or was answered without acting.
    let total = faulty.total();
    assert!(
        total.deleted + total.already_absent <= scenario.planned.len(),
        "seed {seed}: {total:?}"
    );

    fake.clear_faults();
    let (plan, clean) = apply_once(&desired, &client, &journal, 4).await;
    assert!(clean.complete(), "seed {seed}: {clean:?}");
    assert_eq!(plan.summary().listing_failed, 0);
    scenario.assert_converged(&fake.state());
    assert_eq!(
        scenario.deleted(&after_faults) + plan.summary().delete,
        scenario.planned.len(),
        "seed {seed}: the second apply deletes exactly what the first left"
    );
    let contents = journal::read(journal.path()).unwrap();
    assert!(contents.unreadable.is_empty());
    assert_journal_covers(&contents, &scenario);
    let faults = fake.requests();
    eprintln!(
        "seed {seed} rate {rate}: first apply {total:?}; {} requests, {} 5xx, {} 429, {} dropped",
        faults.total(),
        (500..600).map(|s| faults.with_status(s)).sum::<usize>(),
        faults.rate_limited(),
        faults.dropped()
    );
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_never_delete_outside_the_plan_and_a_rerun_converges() {
    for (seed, rate) in [(1, 0.1), (7, 0.15), (42, 0.2), (1234, 0.2)] {
        chaos_then_converge(seed, rate).await;
    }
}

/// A delete whose answer is lost after the server acted is retried, finds 404, has that
/// 404 confirmed by a GET, and counts as already absent; the journal says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_delete_answer_is_retried_into_already_absent() {
    let scenario = scenario(1, 1, false);
    let fake = start_fake(scenario.state.clone()).await;
    fake.inject(Fault::DropConnectionAfterApply.on(Route::Delete));
    let dir = tempfile::tempdir().unwrap();
    let desired = cfgroups::config::load(&write_config(dir.path(), &scenario.configs)).unwrap();
    let journal = Arc::new(Journal::open(&dir.path().join(JOURNAL_FILE)).unwrap());
    let (_, summary) = apply_once(&desired, &client(&fake), &journal, 1).await;
    assert_eq!(summary.total().already_absent, 1, "{summary:?}");
    assert!(summary.complete());
    assert_eq!(fake.requests().count(Method::DELETE, Route::Delete), 2);
    // The retried DELETE's 404, then the confirming GET's (the fresh read before the
    // DELETE was an exact-name listing: the group is declared by name).
    assert_eq!(fake.requests().with_status(404), 2);
    assert_eq!(fake.requests().count(Method::GET, Route::Get), 1);
    scenario.assert_converged(&fake.state());
    let contents = journal::read(journal.path()).unwrap();
    assert!(contents.records.iter().any(|r| matches!(
        r,
        journal::Record::Outcome {
            outcome: DeletionOutcome::AlreadyAbsent,
            ..
        }
    )));
    fake.shutdown().await;
}

/// Safety rule 1 with a listing that keeps failing: the first account's listing answers
/// 500 through every retry, so that account deletes nothing while the other proceeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_keeps_failing_deletes_nothing_in_that_account() {
    let scenario = scenario(2, 5, false);
    let fake = start_fake(scenario.state.clone()).await;
    // More failures than the policy's six attempts; accounts are listed one at a time.
    fake.inject(Fault::Status(500).on(Route::List).times(6));
    let dir = tempfile::tempdir().unwrap();
    let desired = cfgroups::config::load(&write_config(dir.path(), &scenario.configs)).unwrap();
    let journal = Arc::new(Journal::open(&dir.path().join(JOURNAL_FILE)).unwrap());
    let (plan, summary) = apply_once(&desired, &client(&fake), &journal, 1).await;
    assert_eq!(fake.pending_faults(), 0);
    assert_eq!(plan.summary().listing_failed, 1);
    assert_eq!(summary.total().deleted, 5);
    assert_eq!(fake.groups(account(0)), scenario.state.groups(account(0)));
    assert_eq!(
        fake.groups(account(1)).len(),
        scenario.state.groups(account(1)).len() - 5
    );
    fake.shutdown().await;
}

/// A DELETE that took effect but whose answer was lost, and whose retry then failed, is
/// confirmed by a GET: the group is gone, so it is recorded as deleted at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_took_effect_but_failed_is_confirmed_deleted_by_a_get() {
    let scenario = scenario(1, 1, false);
    let fake = start_fake(scenario.state.clone()).await;
    fake.inject(Fault::DropConnectionAfterApply.on(Route::Delete));
    fake.inject(Fault::SuccessFalse.on(Route::Delete));
    let dir = tempfile::tempdir().unwrap();
    let desired = cfgroups::config::load(&write_config(dir.path(), &scenario.configs)).unwrap();
    let journal = Arc::new(Journal::open(&dir.path().join(JOURNAL_FILE)).unwrap());
    let (_, summary) = apply_once(&desired, &client(&fake), &journal, 1).await;
    assert_eq!(summary.total().deleted, 1, "{summary:?}");
    assert!(summary.complete());
    scenario.assert_converged(&fake.state());
    fake.shutdown().await;
}

/// A DELETE that took effect but whose answer was lost, whose retry then failed, and whose
/// confirming GET could not answer either, is recorded as failed; the next apply's listing
/// no longer shows the group and settles the journal: the group is recorded as deleted, and
/// nothing is sent for it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_took_effect_but_failed_is_settled_by_the_next_listing() {
    let scenario = scenario(1, 1, false);
    let fake = start_fake(scenario.state.clone()).await;
    fake.inject(Fault::DropConnectionAfterApply.on(Route::Delete));
    fake.inject(Fault::SuccessFalse.on(Route::Delete));
    // The confirmation after the DELETE never gets an answer (the fresh read before it is
    // an exact-name listing: the group is declared by name).
    fake.inject(Fault::Status(500).on(Route::Get).times(6));
    let dir = tempfile::tempdir().unwrap();
    let desired = cfgroups::config::load(&write_config(dir.path(), &scenario.configs)).unwrap();
    let journal = Arc::new(Journal::open(&dir.path().join(JOURNAL_FILE)).unwrap());
    let client = client(&fake);
    let (_, first) = apply_once(&desired, &client, &journal, 1).await;
    assert_eq!(first.total().failed, 1, "{first:?}");
    scenario.assert_converged(&fake.state());

    let (plan, second) = apply_once(&desired, &client, &journal, 1).await;
    assert_eq!(plan.summary().delete, 0);
    assert!(second.complete());
    assert_eq!(fake.requests().count(Method::DELETE, Route::Delete), 2);
    let contents = journal::read(journal.path()).unwrap();
    let outcomes: Vec<&DeletionOutcome> = contents
        .records
        .iter()
        .filter_map(|r| match r {
            journal::Record::Outcome { outcome, .. } => Some(outcome),
            _ => None,
        })
        .collect();
    assert!(
        matches!(
            outcomes.as_slice(),
            [DeletionOutcome::Failed { .. }, DeletionOutcome::Deleted]
        ),
        "{outcomes:?}"
    );
    // Settled once: a third listing adds nothing.
    let (_, _) = apply_once(&desired, &client, &journal, 1).await;
    assert_eq!(
        journal::read(journal.path()).unwrap().records.len(),
        contents.records.len()
    );
    fake.shutdown().await;
}
