//! The live Cloudflare source against the local fake API over loopback HTTP: every fault
//! the fake can inject, through the real client and `CloudflareSource`, each checked for its
//! outcome, the attempts made (the fake's request log and the client's observer) and the
//! delay honoured; then `plan --source cloudflare` end to end with the real binary.

use std::process::Command;
use std::time::{Duration, Instant};

use assert_cmd::prelude::*;
use cfgroups::cloudflare::{BudgetConfig, Error, RetryPolicy};
use cfgroups::model::GroupId;
use cfgroups::source::{CloudflareSource, GroupSource, ListingError};
use cfgroups_fake::{FakeCloudflare, FakeState, Fault, Method, Route};
use serde_json::Value;
use testkit::client::{client, client_with, quick_retries};
use testkit::{
    CommandExt, EXAMPLE_CONFIG, EXAMPLE_PRODUCTION, EXAMPLE_SNAPSHOT, EXAMPLE_STAGING, Fake, TOKEN,
    WAIT, account, cfgroups, example_state, start_fake,
};

async fn fake_with_groups(count: usize) -> FakeCloudflare {
    start_fake(FakeState::new().with_generated_groups(account(0), count, 1)).await
}

/// The statuses the fake sent for every finished request, in order (`None`: no answer).
fn statuses(fake: &FakeCloudflare) -> Vec<Option<u16>> {
    fake.requests().log().iter().map(|r| r.status).collect()
}

/// Arrival times of every finished request, in arrival order.
fn arrivals(fake: &FakeCloudflare) -> Vec<Instant> {
    let mut at: Vec<Instant> = fake.requests().log().iter().map(|r| r.at).collect();
    at.sort();
    at
}

fn gaps(at: &[Instant]) -> Vec<Duration> {
    at.windows(2).map(|pair| pair[1] - pair[0]).collect()
}

#[tokio::test]
async fn a_5xx_once_is_retried_after_the_backoff_and_the_listing_succeeds() {
    let fake = fake_with_groups(3).await;
    for status in [500, 502, 503] {
        fake.reset_requests();
        let (client, attempts) = client(&fake);
        fake.inject(Fault::Status(status).on(Route::List));
        let groups = CloudflareSource::new(client)
            .list(&account(0))
            .await
            .unwrap_or_else(|err| panic!("HTTP {status} once should be retried: {err}"));
        assert_eq!(groups.len(), 3);
        assert_eq!(fake.requests().count(Method::GET, Route::List), 2);
        assert_eq!(statuses(&fake), [Some(status), Some(200)]);
        assert_eq!(attempts.statuses(), [(1, Some(status)), (2, Some(200))]);
        assert!(attempts.all()[1].retry);
        let gap = gaps(&arrivals(&fake))[0];
        assert!(
            gap >= quick_retries().initial_delay,
            "retried after {gap:?}, before the 50 ms backoff"
        );
    }
    fake.shutdown().await;
}

#[tokio::test]
async fn a_dropped_connection_is_retried_and_the_listing_succeeds() {
    let fake = fake_with_groups(3).await;
    let (client, attempts) = client(&fake);
    fake.inject(Fault::DropConnection.on(Route::List));
    let groups = CloudflareSource::new(client)
        .list(&account(0))
        .await
        .unwrap();
    assert_eq!(groups.len(), 3);
    assert_eq!(fake.requests().count(Method::GET, Route::List), 2);
    assert_eq!(statuses(&fake), [None, Some(200)]);
    assert_eq!(attempts.statuses(), [(1, None), (2, Some(200))]);
    assert!(gaps(&arrivals(&fake))[0] >= quick_retries().initial_delay);
    fake.shutdown().await;
}

#[tokio::test]
async fn malformed_json_under_200_fails_the_listing_without_a_retry() {
    // 600 groups: page 1 is fine, page 2 is truncated JSON. A first, no-op fault takes
    // page 1 so that the malformed body lands on page 2: the half-read listing must not
    // come back as a (partial) success.
    let fake = fake_with_groups(600).await;
    let (client, attempts) = client(&fake);
    fake.inject(Fault::Slow(Duration::ZERO).on(Route::List));
    fake.inject(Fault::MalformedJson.on(Route::List));
    let err = CloudflareSource::new(client)
        .list(&account(0))
        .await
        .unwrap_err();
    let ListingError::Api(err) = err else {
        panic!("expected an API error, got {err:?}");
    };
    assert!(matches!(err, Error::Decode { status: 200, .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("cannot decode"), "{err}");
    // Page 1, then page 2 once: a body that does not parse is not asked for again.
    let requests = fake.requests();
    assert_eq!(requests.count(Method::GET, Route::List), 2);
    assert!(requests.log()[1].path.contains("page=2"));
    assert_eq!(attempts.statuses(), [(1, Some(200)), (1, Some(200))]);
    fake.shutdown().await;
}

#[tokio::test]
async fn success_false_under_200_is_an_error_and_not_retried() {
    let fake = fake_with_groups(3).await;
    let (client, attempts) = client(&fake);
    fake.inject(Fault::SuccessFalse.on(Route::List));
    let err = CloudflareSource::new(client)
        .list(&account(0))
        .await
        .unwrap_err();
    let ListingError::Api(err) = err else {
        panic!("expected an API error, got {err:?}");
    };
    assert!(matches!(err, Error::Api { status: 200, .. }), "{err:?}");
    assert_eq!(err.codes(), [1000]);
    assert_eq!(fake.requests().count(Method::GET, Route::List), 1);
    assert_eq!(attempts.statuses(), [(1, Some(200))]);
    fake.shutdown().await;
}

#[tokio::test]
async fn a_slow_answer_times_out_and_the_fast_retry_succeeds() {
    let fake = fake_with_groups(3).await;
    let timeout = Duration::from_millis(500);
    let slow = Duration::from_secs(20);
    let (client, attempts) = client_with(
        &fake,
        TOKEN,
        quick_retries(),
        BudgetConfig::default(),
        timeout,
    );
    fake.inject(Fault::Slow(slow).on(Route::List));
    let started = Instant::now();
    let groups = client.list_groups(&account(0)).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(groups.len(), 3);
    assert_eq!(fake.requests().count(Method::GET, Route::List), 2);
    let events = attempts.all();
    assert_eq!(attempts.statuses(), [(1, None), (2, Some(200))]);
    assert!(
        events[0].elapsed >= timeout,
        "gave up after {:?}",
        events[0].elapsed
    );
    assert!(elapsed >= timeout + quick_retries().initial_delay);
    assert!(
        elapsed < slow / 2,
        "waited for the slow answer: {elapsed:?}"
    );
    // The abandoned request is logged without a status once the fake notices.
    let requests = fake
        .wait_for_requests(WAIT, |r| r.log().len() == 2)
        .await
        .unwrap();
    assert_eq!(requests.dropped(), 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn a_lying_total_count_fails_the_listing() {
    let fake = fake_with_groups(3).await;
    for delta in [1, -1, 500] {
        fake.reset_requests();
        let (client, attempts) = client(&fake);
        fake.inject(Fault::WrongTotalCount(delta).on(Route::List));
        let err = CloudflareSource::new(client)
            .list(&account(0))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ListingError::Api(Error::InconsistentListing { .. })),
            "total_count off by {delta}: {err:?}"
        );
        assert_eq!(fake.requests().count(Method::GET, Route::List), 1);
        assert_eq!(attempts.statuses(), [(1, Some(200))]);
    }
    fake.shutdown().await;
}

#[tokio::test]
async fn a_page_that_drops_an_item_fails_the_listing() {
    for total in [3, 600] {
        let fake = fake_with_groups(total).await;
        let (client, attempts) = client(&fake);
        fake.inject(Fault::DropItem.on(Route::List));
        let err = CloudflareSource::new(client)
            .list(&account(0))
            .await
            .unwrap_err();
        let ListingError::Api(Error::InconsistentListing { detail, .. }) = &err else {
            panic!("{total} groups, one dropped: {err:?}");
        };
        assert!(detail.contains("short"), "{detail}");
        assert_eq!(fake.requests().count(Method::GET, Route::List), 1);
        assert_eq!(attempts.statuses(), [(1, Some(200))]);
        fake.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_pauses_every_request_then_succeeds() {
    // A second account, for a request that must be held by another request's 429.
    let other = account(1);
    let state = FakeState::new()
        .with_generated_groups(account(0), 3, 1)
        .with_generated_groups(&other, 2, 2);
    let fake = start_fake(state).await;
    let held: GroupId = fake.groups(&other)[0].id.parse().unwrap();
    let (client, attempts) = client(&fake);
    fake.inject(Fault::RateLimited(1).on(Route::List));

    let lister = client.clone();
    let listing = tokio::spawn(async move { lister.list_groups(&account(0)).await });
    attempts
        .wait_until(|events| events.iter().any(|e| e.rate_limited))
        .await;
    assert!(client.budget().snapshot().paused_for.is_some());
    // Another account, another route: held by the same pause.
    let get = client.get_group(&other, &held).await.unwrap();
    assert!(get.is_some());
    assert_eq!(listing.await.unwrap().unwrap().len(), 3);

    let requests = fake.requests();
    let log = requests.log();
    assert_eq!(requests.rate_limited(), 1);
    let limited = log.iter().find(|r| r.status == Some(429)).unwrap();
    let retried = log
        .iter()
        .find(|r| r.route == Route::List && r.status == Some(200))
        .unwrap();
    let other_get = log.iter().find(|r| r.route == Route::Get).unwrap();
    let second = Duration::from_secs(1);
    assert!(
        retried.at - limited.at >= second,
        "retried before Retry-After"
    );
    assert!(
        other_get.at - limited.at >= second,
        "another request went out during the pause"
    );
    assert_eq!(requests.total(), 3);
    let list_attempts: Vec<_> = attempts
        .all()
        .iter()
        .filter(|e| e.route == cfgroups::cloudflare::RouteKind::ListGroups)
        .map(|e| (e.attempt, e.status))
        .collect();
    assert_eq!(list_attempts, [(1, Some(429)), (2, Some(200))]);
    fake.shutdown().await;
}

#[tokio::test]
async fn a_bad_token_is_final_after_one_attempt_with_a_clear_error() {
    let fake = fake_with_groups(3).await;
    let wrong = "SECRET-WRONG-TOKEN-4d5e6f";
    let (client, attempts) = client_with(
        &fake,
        wrong,
        quick_retries(),
        BudgetConfig::default(),
        Duration::from_secs(10),
    );
    let err = CloudflareSource::new(client)
        .list(&account(0))
        .await
        .unwrap_err();
    let ListingError::Api(api) = &err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!(api.status(), Some(403));
    assert_eq!(api.codes(), [10000]);
    assert!(!api.is_retryable());
    let text = err.to_string();
    assert!(text.contains("HTTP 403"), "{text}");
    assert!(text.contains("[10000] Authentication error"), "{text}");
    assert!(!format!("{text} {err:?}").contains(wrong));
    assert_eq!(fake.requests().total(), 1);
    assert_eq!(attempts.statuses(), [(1, Some(403))]);
    fake.shutdown().await;
}

#[tokio::test]
async fn faults_beyond_the_retry_limit_fail_the_listing() {
    let fake = fake_with_groups(3).await;
    let policy = quick_retries();
    let tries = policy.max_retries + 1;
    let (client, attempts) = client(&fake);
    fake.inject(Fault::Status(503).on(Route::List).times(tries));
    let err = CloudflareSource::new(client)
        .list(&account(0))
        .await
        .unwrap_err();
    let ListingError::Api(api) = &err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!(api.status(), Some(503));
    assert_eq!(fake.pending_faults(), 0, "every fault was met");
    assert_eq!(
        fake.requests().count(Method::GET, Route::List),
        tries as usize
    );
    let expected: Vec<_> = (1..=tries).map(|n| (n, Some(503))).collect();
    assert_eq!(attempts.statuses(), expected);
    // The backoff between attempts: 50, 100, 200 ms.
    let delays: Vec<Duration> = policy.backoff().collect();
    for (gap, delay) in gaps(&arrivals(&fake)).into_iter().zip(delays) {
        assert!(gap >= delay, "retried after {gap:?}, before {delay:?}");
    }

    // Another mix of retryable faults, also beyond the limit: dropped connections and 502s.
    fake.reset_requests();
    let (client, _) = client_with(
        &fake,
        TOKEN,
        RetryPolicy {
            max_retries: 1,
            ..quick_retries()
        },
        BudgetConfig::default(),
        Duration::from_secs(10),
    );
    fake.inject(Fault::DropConnection.on(Route::List));
    fake.inject(Fault::Status(502).on(Route::List));
    let err = client.list_groups(&account(0)).await.unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert_eq!(statuses(&fake), [None, Some(502)]);
    fake.shutdown().await;
}

// ---- the real binary against the fake --------------------------------------------------

fn json_of(stdout: &[u8]) -> Value {
    serde_json::from_slice(stdout).unwrap_or_else(|err| {
        panic!(
            "not JSON ({err}): {}",
            String::from_utf8_lossy(stdout)
                .chars()
                .take(2000)
                .collect::<String>()
        )
    })
}

/// `plan -o json` through `source`.
fn plan_json(cmd: &mut Command, source: &str) -> Value {
    let out = cmd
        .args(["plan", "-c", EXAMPLE_CONFIG, "-o", "json", "-s", source])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    json_of(&out)
}

/// The report without its `source` field.
fn without_source(mut report: Value) -> Value {
    report.as_object_mut().unwrap().remove("source");
    report
}

/// The account's entry in a JSON report.
fn account_report<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("account {id} missing from {report}"))
}

fn actions(account: &Value) -> Vec<&str> {
    account["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["action"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn plan_from_the_live_source_matches_the_snapshot_plan() {
    let fake = Fake::start(example_state());

    let offline = plan_json(
        cfgroups().against(&fake),
        &format!("snapshot:{EXAMPLE_SNAPSHOT}"),
    );
    assert_eq!(
        offline["summary"]["delete"], 2,
        "the example plans deletions"
    );
    assert_eq!(
        fake.requests().total(),
        0,
        "the snapshot source makes no request"
    );

    let live = plan_json(cfgroups().against(&fake), "cloudflare");
    assert_eq!(live["source"], "cloudflare");
    assert_eq!(without_source(live), without_source(offline.clone()));
    // One list page per account (each holds fewer than 500 groups), nothing else.
    let requests = fake.requests();
    assert_eq!(requests.count(Method::GET, Route::List), 2);
    assert_eq!(requests.total(), 2);

    // The exec source, with a lister that reads the same fake API.
    let dir = tempfile::tempdir().unwrap();
    let lister = dir.path().join("list.py");
    std::fs::write(
        &lister,
        "import json, os, sys, urllib.request\n\
         url = os.environ['CLOUDFLARE_BASE_URL'] + '/accounts/' + sys.argv[1] + '/iam/user_groups?per_page=500'\n\
         request = urllib.request.Request(url, headers={'Authorization': 'Bearer ' + os.environ['CLOUDFLARE_API_TOKEN']})\n\
         opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n\
         print(json.dumps({'groups': json.load(opener.open(request))['result']}))\n",
    )
    .unwrap();
    let source = format!("exec:python3 {}", lister.display());
    let via_exec = plan_json(cfgroups().against(&fake), &source);
    assert_eq!(via_exec["source"], Value::String(source.clone()));
    assert_eq!(without_source(via_exec), without_source(offline));
    assert_eq!(fake.requests().count(Method::GET, Route::List), 4);
}

/// Runs `plan -o json --concurrency 1` (so the first list request is the production
/// account's) and checks that production failed its listing and plans nothing to delete,
/// while staging was listed and planned as usual. Returns the report.
fn plan_with_failed_production(fake: &FakeCloudflare, expect_in_error: &str) -> Value {
    let offline = plan_json(
        cfgroups().against(fake),
        &format!("snapshot:{EXAMPLE_SNAPSHOT}"),
    );
    assert!(
        actions(account_report(&offline, EXAMPLE_PRODUCTION)).contains(&"delete"),
        "with a good listing, production plans a deletion"
    );
    let out = cfgroups()
        .against(fake)
        .args([
            "plan",
            "-c",
            EXAMPLE_CONFIG,
            "-o",
            "json",
            "-s",
            "cloudflare",
        ])
        .args(["--concurrency", "1"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let report = json_of(&out.stdout);
    assert_eq!(report["summary"]["listing_failed"], 1, "{report:#}");
    let production = account_report(&report, EXAMPLE_PRODUCTION);
    assert_eq!(production["listing"]["status"], "listing_failed");
    let error = production["listing"].to_string();
    assert!(error.contains(expect_in_error), "{error}");
    assert!(
        !actions(production).contains(&"delete"),
        "a failed listing planned deletions: {production:#}"
    );
    let staging = account_report(&report, EXAMPLE_STAGING);
    assert_eq!(staging["listing"]["status"], "ok");
    assert!(actions(staging).contains(&"delete"), "{staging:#}");
    let staging_deletes = actions(staging).iter().filter(|a| **a == "delete").count();
    assert_eq!(report["summary"]["delete"], staging_deletes);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not be listed"), "{stderr}");
    report
}

#[test]
fn plan_with_a_lying_total_count_fails_that_account_and_deletes_nothing_there() {
    let fake = Fake::start(example_state());
    fake.inject(Fault::WrongTotalCount(1).on(Route::List));
    plan_with_failed_production(&fake, "inconsistent listing");
    assert_eq!(fake.requests().count(Method::GET, Route::List), 2);
}

#[test]
fn plan_with_faults_beyond_the_retry_limit_deletes_nothing_there() {
    // The binary's default policy: the first attempt and 5 retries, all answered 503.
    let fake = Fake::start(example_state());
    let tries = RetryPolicy::default().max_retries + 1;
    fake.inject(Fault::Status(503).on(Route::List).times(tries));
    plan_with_failed_production(&fake, "HTTP 503");
    assert_eq!(fake.pending_faults(), 0);
    let requests = fake.requests();
    assert_eq!(requests.with_status(503), tries as usize);
    assert_eq!(requests.count(Method::GET, Route::List), tries as usize + 1);
    // The default backoff starts at 250-500 ms (equal jitter) and doubles.
    let first_gap = gaps(&arrivals(&fake))[0];
    assert!(first_gap >= Duration::from_millis(250), "{first_gap:?}");
}
