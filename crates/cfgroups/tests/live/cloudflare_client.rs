//! HTTP behaviour of the Cloudflare client against a scripted stub on 127.0.0.1: pagination,
//! listing consistency, delete idempotency, retry classification, `Retry-After`, and that
//! the token never leaks into errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use cfgroups::cloudflare::{
    BaseUrl, Client, ClientConfig, Credentials, Error, Jitter, RequestEvent, RetryPolicy,
};
use cfgroups::model::{DeletionOutcome, GroupId};
use cfgroups::source::{CloudflareSource, GroupSource, ListingError};
use secrecy::SecretString;
use serde_json::{Value, json};
use testkit::account;
use tokio::time::Instant;

/// A token in Cloudflare's own shape, which the stub may echo back.
const TOKEN: &str = "cfut_SECRET_TOKEN_do_not_leak_0123456789";
const GROUP: &str = "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a";

/// A request as the stub saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    at: Instant,
}

/// The stub's answer: status, extra headers, JSON body.
type Reply = (u16, Vec<(&'static str, String)>, Value);
type Script = Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

#[derive(Clone)]
struct Stub {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Script,
}

async fn handle(State(stub): State<Stub>, request: Request) -> Response {
    let query = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let seen = Seen {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        query,
        headers: request.headers().clone(),
        at: Instant::now(),
    };
    let index = {
        let mut all = stub.seen.lock().unwrap();
        all.push(seen.clone());
        all.len() - 1
    };
    let (status, headers, body) = (stub.script)(&seen, index);
    let mut response = Response::builder().status(StatusCode::from_u16(status).unwrap());
    response = response.header("content-type", "application/json");
    for (name, value) in headers {
        response = response.header(name, value);
    }
    response.body(Body::from(body.to_string())).unwrap()
}

/// Starts a stub answering every request with `script(request, index)`; returns a client
/// pointed at it and the log of requests.
async fn stub(
    script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
) -> (Client, Arc<Mutex<Vec<Seen>>>, Arc<Mutex<Vec<RequestEvent>>>) {
    stub_with(fast_retries(), script).await
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
        jitter: Jitter::None,
        deadline: Duration::from_secs(20),
        ..RetryPolicy::default()
    }
}

async fn stub_with(
    retry: RetryPolicy,
    script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
) -> (Client, Arc<Mutex<Vec<Seen>>>, Arc<Mutex<Vec<RequestEvent>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = Stub {
        seen: seen.clone(),
        script: Arc::new(script),
    };
    let router = axum::Router::new().fallback(handle).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let credentials = Credentials::api_token(SecretString::from(TOKEN)).unwrap();
    let mut config = ClientConfig::new(credentials);
    config.base_url = BaseUrl::parse(&format!("http://{addr}/client/v4")).unwrap();
    config.retry = retry;
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let observer = move |event: &RequestEvent| sink.lock().unwrap().push(event.clone());
    let budget = cfgroups::cloudflare::Budget::new(config.budget.clone());
    let client = Client::with_parts(config, budget, Arc::new(observer)).unwrap();
    (client, seen, events)
}

fn group_id() -> GroupId {
    GROUP.parse().unwrap()
}

fn group(n: usize) -> Value {
    json!({"id": format!("{n:032x}"), "name": format!("group {n}"),
           "created_on": "2024-03-01T12:21:02Z", "modified_on": "2024-03-01T12:21:02Z",
           "policies": [], "unknown_field": true})
}

fn ok(result: Value) -> Reply {
    (
        200,
        vec![],
        json!({"success": true, "errors": [], "messages": [], "result": result}),
    )
}

fn failure(status: u16, code: i64, message: &str) -> Reply {
    (
        status,
        vec![],
        json!({"success": false, "errors": [{"code": code, "message": message}],
               "messages": [], "result": null}),
    )
}

/// A listing of `total` groups served honestly, with `total_count` as reported.
fn page_of(seen: &Seen, total: usize, reported_total: usize) -> Reply {
    let page: usize = seen.query["page"].parse().unwrap();
    let per_page: usize = seen.query["per_page"].parse().unwrap();
    let items: Vec<Value> = ((page - 1) * per_page..(page * per_page).min(total))
        .map(group)
        .collect();
    let count = items.len();
    (
        200,
        vec![],
        json!({"success": true, "errors": [], "messages": [], "result": items,
               "result_info": {"page": page, "per_page": per_page, "count": count,
                               "total_count": reported_total}}),
    )
}

#[tokio::test]
async fn listing_stops_without_a_trailing_request() {
    let (client, seen, _) = stub(|seen, _| page_of(seen, 1000, 1000)).await;
    let groups = client.list_groups(&account(0)).await.unwrap();
    assert_eq!(groups.len(), 1000);
    let seen = seen.lock().unwrap().clone();
    // Two full pages reach total_count: no third request.
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].path,
        format!("/client/v4/accounts/{}/iam/user_groups", account(0))
    );
    assert_eq!(seen[1].query["page"], "2");
    assert_eq!(seen[1].query["per_page"], "500");
    assert_eq!(seen[0].headers["authorization"], format!("Bearer {TOKEN}"));
    assert!(
        seen[0].headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("cfgroups/")
    );

    // A short page ends a listing too.
    let (client, seen, _) = stub(|seen, _| page_of(seen, 501, 501)).await;
    assert_eq!(client.list_groups(&account(0)).await.unwrap().len(), 501);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_listing_that_disagrees_with_total_count_fails_after_listing_again() {
    // Page 2 comes back short while total_count promised more, every time: the listing is
    // asked for three more times (two pages each), then fails.
    let (client, seen, _) = stub(|seen, _| page_of(seen, 550, 600)).await;
    let err = client.list_groups(&account(0)).await.unwrap_err();
    assert!(matches!(err, Error::InconsistentListing { .. }), "{err:?}");
    assert_eq!(seen.lock().unwrap().len(), 2 * 4);

    // Through the listing source, the account's listing fails as a whole.
    let (client, _, _) = stub(|seen, _| page_of(seen, 10, 5)).await;
    let source = CloudflareSource::new(client);
    assert_eq!(source.describe(), "cloudflare");
    let err = source.list(&account(0)).await.unwrap_err();
    assert!(
        matches!(err, ListingError::Api(Error::InconsistentListing { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn members_are_paginated_and_kept_opaque() {
    let (client, seen, _) = stub(|seen, _| {
        let mut reply = page_of(seen, 3, 3);
        reply
            .1
            .push(("ratelimit", r#""default";r=900;t=120"#.to_owned()));
        reply
    })
    .await;
    let members = client.list_members(&account(0), &group_id()).await.unwrap();
    assert_eq!(client.budget().snapshot().server_remaining, Some(900));
    assert_eq!(members.len(), 3);
    assert_eq!(members[0]["unknown_field"], true);
    assert!(
        seen.lock().unwrap()[0]
            .path
            .ends_with(&format!("{GROUP}/members"))
    );
}

#[tokio::test]
async fn delete_404_is_already_absent_and_get_404_is_none() {
    let (client, seen, _) = stub(|_, _| failure(404, 1003, "user group not found")).await;
    let outcome = client.delete_group(&account(0), &group_id()).await.unwrap();
    assert_eq!(outcome, DeletionOutcome::AlreadyAbsent);
    assert_eq!(
        client.get_group(&account(0), &group_id()).await.unwrap(),
        None
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "404 is never retried");
    assert_eq!(seen[0].method, "DELETE");
    assert_eq!(
        seen[0].path,
        format!("/client/v4/accounts/{}/iam/user_groups/{GROUP}", account(0))
    );

    let (client, _, _) = stub(|_, _| ok(json!({"id": GROUP}))).await;
    let outcome = client.delete_group(&account(0), &group_id()).await.unwrap();
    assert_eq!(outcome, DeletionOutcome::Deleted);
}

#[tokio::test]
async fn a_503_is_retried_until_success() {
    let (client, seen, events) = stub(|_, index| {
        if index < 2 {
            failure(503, 0, "service unavailable")
        } else {
            ok(json!({"id": GROUP, "name": "Ops"}))
        }
    })
    .await;
    let group = client.get_group(&account(0), &group_id()).await.unwrap();
    assert_eq!(group.unwrap().name, "Ops");
    assert_eq!(seen.lock().unwrap().len(), 3);
    let events = events.lock().unwrap();
    let attempts: Vec<(u32, Option<u16>, bool)> = events
        .iter()
        .map(|e| (e.attempt, e.status, e.retry))
        .collect();
    assert_eq!(
        attempts,
        vec![
            (1, Some(503), false),
            (2, Some(503), true),
            (3, Some(200), true)
        ]
    );
}

#[tokio::test]
async fn a_403_is_final_and_the_token_never_leaks() {
    // A hostile or buggy server echoing the credential back must not get it into logs.
    let (client, seen, _) =
        stub(|_, _| failure(403, 10000, &format!("Authentication error for {TOKEN}"))).await;
    let err = client
        .delete_group(&account(0), &group_id())
        .await
        .unwrap_err();
    assert_eq!(seen.lock().unwrap().len(), 1, "403 is not retried");
    assert_eq!(err.status(), Some(403));
    assert!(!err.is_retryable());
    let text = format!("{err} {err:?} {client:?}");
    assert!(text.contains("[10000] Authentication error"), "{text}");
    assert!(!text.contains(TOKEN), "token leaked: {text}");
}

#[tokio::test]
async fn success_false_under_200_is_an_error() {
    let (client, seen, _) = stub(|_, _| failure(200, 9109, "Unauthorized to access")).await;
    let err = client.list_groups(&account(0)).await.unwrap_err();
    assert_eq!(err.status(), Some(200));
    assert_eq!(err.codes(), vec![9109]);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_answer_saying_success_while_carrying_errors_is_not_trusted() {
    // A DELETE "succeeded" with an error attached: neither a deletion nor a plain failure.
    let (client, _, _) = stub(|_, _| {
        (
            200,
            vec![],
            json!({"success": true, "errors": [{"code": 1001, "message": "partially applied"}],
                   "messages": [], "result": {"id": GROUP}}),
        )
    })
    .await;
    let err = client
        .delete_group(&account(0), &group_id())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("the answer says success but carries errors")
            && text.contains("[1001] partially applied"),
        "{text}"
    );
    // The same contradiction in a listing fails it rather than taking its groups.
    let (client, _, _) = stub(|_, _| {
        (
            200,
            vec![],
            json!({"success": true, "errors": [{"code": 1001, "message": "partial"}],
                   "messages": [], "result": [group(1)],
                   "result_info": {"page": 1, "per_page": 50, "count": 1, "total_count": 1}}),
        )
    })
    .await;
    assert!(client.list_groups(&account(0)).await.is_err());
}

#[tokio::test]
async fn a_post_is_not_retried_after_a_503() {
    let (client, seen, _) = stub(|_, _| failure(503, 0, "unavailable")).await;
    let err = client
        .create_group(
            &account(0),
            "Ops",
            &serde_json::value::RawValue::from_string("[]".to_owned()).unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn retry_after_is_honoured_and_pauses_the_budget() {
    let (client, seen, events) = stub(|_, index| {
        if index == 0 {
            let mut reply = failure(429, 971, "Please wait and consider throttling");
            reply.1.push(("retry-after", "1".to_owned()));
            reply
        } else {
            ok(json!({"id": GROUP}))
        }
    })
    .await;
    client.delete_group(&account(0), &group_id()).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(
        seen[1].at - seen[0].at >= Duration::from_secs(1),
        "retried before Retry-After"
    );
    assert!(events.lock().unwrap()[0].rate_limited);
}

#[tokio::test]
async fn a_lockout_longer_than_the_deadline_is_waited_out_outside_it() {
    // A 1 s deadline per operation, and a lockout of 2 s: the wait is not the operation's
    // own time, so the DELETE goes after the lockout and succeeds.
    let retry = RetryPolicy {
        deadline: Duration::from_secs(1),
        ..fast_retries()
    };
    let (client, seen, _) = stub_with(retry, |_, index| {
        if index == 0 {
            let mut reply = failure(429, 971, "Please wait and consider throttling");
            reply.1.push(("retry-after", "2".to_owned()));
            reply
        } else {
            ok(json!({"id": GROUP}))
        }
    })
    .await;
    let outcome = client.delete_group(&account(0), &group_id()).await.unwrap();
    assert_eq!(outcome, cfgroups::model::DeletionOutcome::Deleted);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].at - seen[0].at >= Duration::from_secs(2));
}

#[tokio::test]
async fn a_lockout_longer_than_max_rate_limit_wait_fails_at_once() {
    // A client that sits out lockouts of up to 60 s, told to wait 120 s.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = |_: &Seen, _: usize| {
        let mut reply = failure(429, 971, "Please wait");
        reply.1.push(("retry-after", "120".to_owned()));
        reply
    };
    let state = Stub {
        seen: seen.clone(),
        script: Arc::new(script),
    };
    let router = axum::Router::new().fallback(handle).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let credentials = Credentials::api_token(SecretString::from(TOKEN)).unwrap();
    let mut config = ClientConfig::new(credentials);
    config.base_url = BaseUrl::parse(&format!("http://{addr}/client/v4")).unwrap();
    config.retry = fast_retries();
    config.budget.max_wait = Duration::from_secs(60);
    let client = Client::new(config).unwrap();

    let started = std::time::Instant::now();
    let err = client
        .delete_group(&account(0), &group_id())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RateLimitWait { .. }), "{err:?}");
    assert_eq!(err.status(), Some(429));
    assert!(err.to_string().contains("--max-rate-limit-wait"), "{err}");
    // Every request is held by the lockout: the next operation fails without a request.
    let err = client.list_groups(&account(0)).await.unwrap_err();
    assert!(
        matches!(err, Error::RateLimitWait { attempts: 0, .. }),
        "{err:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(client.budget().snapshot().paused_for.is_some());
    // Waiting would take 60 s at least (the most it sits out); half of that tells them apart.
    assert!(started.elapsed() < Duration::from_secs(30), "it waited");
}
