//! The shared request budget under a real burst: 300 deletions requested at once against
//! the fake API limited to 100 requests per 2 s, with the client budgeted at 90% of that.
//! Nothing may be refused, everything must be deleted, and the budget must actually be
//! used (the steady pace within 10% of the budget), not merely respected.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use cfgroups::cloudflare::BudgetConfig;
use cfgroups::model::{DeletionOutcome, GroupId};
use cfgroups_fake::{FakeState, Method, Route};
use futures_util::future::join_all;
use testkit::client::{client_with, quick_retries};
use testkit::{TOKEN, account, fake};

const GROUPS: usize = 300;
const SERVER_LIMIT: u32 = 100;
const WINDOW: Duration = Duration::from_secs(2);
const CLIENT_LIMIT: u32 = SERVER_LIMIT * 9 / 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_deletions_at_once_stay_under_the_limit_at_full_pace() {
    let fake = fake()
        .seed(3)
        .rate_limit(SERVER_LIMIT, WINDOW)
        .state(FakeState::new().with_generated_groups(account(0), GROUPS, 11))
        .start()
        .await
        .unwrap();
    let budget = BudgetConfig::with_limit(NonZeroU32::new(CLIENT_LIMIT).unwrap(), WINDOW);
    let burst = budget.burst.get() as usize;
    let (client, attempts) = client_with(
        &fake,
        TOKEN,
        quick_retries(),
        budget,
        Duration::from_secs(10),
    );
    let account = account(0);
    let ids: Vec<GroupId> = fake
        .groups(&account)
        .into_iter()
        .map(|g| g.id.parse().unwrap())
        .collect();
    assert_eq!(ids.len(), GROUPS);

    let started = Instant::now();
    let outcomes = join_all(ids.iter().map(|id| client.delete_group(&account, id))).await;
    let elapsed = started.elapsed();

    for outcome in &outcomes {
        assert_eq!(outcome.as_ref().unwrap(), &DeletionOutcome::Deleted);
    }
    assert!(fake.groups(&account).is_empty(), "every group is deleted");
    let requests = fake.requests();
    assert_eq!(requests.rate_limited(), 0, "no request was refused");
    assert_eq!(requests.with_status(429), 0);
    assert_eq!(requests.count(Method::DELETE, Route::Delete), GROUPS);
    assert_eq!(requests.total(), GROUPS, "no retries were needed");
    assert!(
        attempts
            .all()
            .iter()
            .all(|e| e.attempt == 1 && !e.rate_limited)
    );
    assert!(requests.max_in_window(WINDOW) <= CLIENT_LIMIT as usize);

    // The steady pace after the initial burst, as the server saw it.
    let mut arrivals: Vec<Instant> = requests.log().iter().map(|r| r.at).collect();
    arrivals.sort();
    let steady = &arrivals[burst..];
    let span = steady[steady.len() - 1] - steady[0];
    let measured = (steady.len() - 1) as f64 / span.as_secs_f64();
    let target = f64::from(CLIENT_LIMIT) / WINDOW.as_secs_f64();
    let snapshot = client.budget().snapshot();
    println!(
        "budget: {GROUPS} deletions in {:.2}s; steady pace {measured:.1} req/s against a budget \
         of {target:.1} req/s ({:+.1}%); burst {burst}; peak {} in any {}s window; 0 x 429; \
         last server-reported remaining {:?}, pacing {:?}",
        elapsed.as_secs_f64(),
        (measured / target - 1.0) * 100.0,
        requests.max_in_window(WINDOW),
        WINDOW.as_secs(),
        snapshot.server_remaining,
        snapshot.pacing_interval,
    );
    assert!(
        (target * 0.9..=target * 1.1).contains(&measured),
        "steady pace {measured:.1}/s is not within 10% of the budget {target:.1}/s"
    );
    fake.shutdown().await;
}
