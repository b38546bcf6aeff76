//! The shared request budget's product promise against the fake API, with real time: zero
//! 429s, and never more requests than the server allows in any of its windows, counted by
//! the server as they arrive. The budget's exactness (how long each request waits, to the
//! millisecond) is property-tested on paused time in `tests/offline/budget_window.rs`, and
//! its pace at scale is measured by the `apply_budget` and `apply_lockout` benches.

use std::num::NonZeroU32;
use std::time::Duration;

use cfgroups::cloudflare::BudgetConfig;
use cfgroups::model::{AccountId, DeletionOutcome, GroupId};
use cfgroups_fake::{FakeCloudflare, FakeState, Method, Route};
use futures_util::future::join_all;
use testkit::client::{client_with, quick_retries};
use testkit::{TOKEN, account, fake};

/// Deletes every group of `account` at once through a client with `budget`; the fake's
/// request accounting afterwards.
async fn delete_all_at_once(fake: &FakeCloudflare, account: &AccountId, budget: BudgetConfig) {
    let (client, attempts) = client_with(
        fake,
        TOKEN,
        quick_retries(),
        budget,
        Duration::from_secs(10),
    );
    let ids: Vec<GroupId> = fake
        .groups(account)
        .into_iter()
        .map(|g| g.id.parse().unwrap())
        .collect();
    let outcomes = join_all(ids.iter().map(|id| client.delete_group(account, id))).await;
    for outcome in &outcomes {
        assert_eq!(outcome.as_ref().unwrap(), &DeletionOutcome::Deleted);
    }
    assert!(fake.groups(account).is_empty(), "every group is deleted");
    assert!(
        attempts
            .all()
            .iter()
            .all(|e| e.attempt == 1 && !e.rate_limited),
        "no request was retried or refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_deletions_at_once_never_exceed_the_server_limit() {
    const GROUPS: usize = 300;
    const SERVER_LIMIT: u32 = 100;
    const WINDOW: Duration = Duration::from_secs(2);
    let fake = fake()
        .seed(3)
        .rate_limit(SERVER_LIMIT, WINDOW)
        .state(FakeState::new().with_generated_groups(account(0), GROUPS, 11))
        .start()
        .await
        .unwrap();
    // The client is given 90% of the server's limit, as the default budget (1000 of 1200)
    // leaves room for the network's jitter.
    let budget = BudgetConfig::with_limit(NonZeroU32::new(SERVER_LIMIT * 9 / 10).unwrap(), WINDOW);
    delete_all_at_once(&fake, &account(0), budget).await;
    let requests = fake.requests();
    assert_eq!(requests.rate_limited(), 0, "no request was refused");
    assert_eq!(requests.count(Method::DELETE, Route::Delete), GROUPS);
    assert_eq!(requests.total(), GROUPS, "no retries were needed");
    assert!(requests.max_in_window(WINDOW) <= SERVER_LIMIT as usize);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stricter_declared_server_window_is_kept_with_the_default_budget() {
    // The server allows 30 requests per 2 s and says so in `Ratelimit-Policy`; the client
    // keeps its default budget (1000 per 5 minutes) and must hold to the server's figures.
    const GROUPS: usize = 75;
    const SERVER_LIMIT: u32 = 30;
    const WINDOW: Duration = Duration::from_secs(2);
    let fake = fake()
        .seed(5)
        .rate_limit(SERVER_LIMIT, WINDOW)
        .lockout(Duration::from_secs(60))
        .state(FakeState::new().with_generated_groups(account(0), GROUPS, 12))
        .start()
        .await
        .unwrap();
    delete_all_at_once(&fake, &account(0), BudgetConfig::default()).await;
    let requests = fake.requests();
    assert_eq!(requests.rate_limited(), 0, "no request was refused");
    assert_eq!(requests.total(), GROUPS);
    assert!(requests.max_in_window(WINDOW) <= SERVER_LIMIT as usize);
    fake.shutdown().await;
}
