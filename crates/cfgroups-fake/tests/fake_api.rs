//! The fake Cloudflare user-groups API, driven over real HTTP on loopback with plain reqwest:
//! endpoints, pagination, auth errors, rate limiting, every fault kind, the request
//! accounting and the state file.

use std::time::{Duration, Instant};

use cfgroups_fake::{
    FakeCloudflare, FakeCloudflareBuilder, FakeGroup, FakeMember, FakeState, Fault, Id, Method,
    Route,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const OTHER_ACCOUNT: &str = "0000000000000000000000000000beef";
const TOKEN: &str = "test-token";
const EMAIL: &str = "user@example.com";
const KEY: &str = "key123";
/// Long enough for a loaded two-core machine, short enough to fail a hung test quickly.
const PATIENCE: Duration = Duration::from_secs(20);

fn member_id(n: u32) -> String {
    format!("{n:032x}")
}

fn builder() -> FakeCloudflareBuilder {
    FakeCloudflare::builder()
        .token(TOKEN)
        .api_key(EMAIL, KEY)
        .seed(7)
}

async fn start_with(state: FakeState) -> FakeCloudflare {
    builder().state(state).start().await.unwrap()
}

async fn start_with_groups(count: usize) -> FakeCloudflare {
    start_with(FakeState::new().with_generated_groups(ACCOUNT, count, 1)).await
}

/// A client with this overall timeout. The crate builds reqwest without a default TLS
/// provider; plain http needs none, but reqwest refuses to build until one is installed.
fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

fn client() -> reqwest::Client {
    client_with_timeout(PATIENCE)
}

fn groups_url(fake: &FakeCloudflare) -> String {
    format!("{}/accounts/{ACCOUNT}/iam/user_groups", fake.base_url())
}

/// An authenticated request, answered with its status, headers and JSON body.
async fn call(
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = client().request(method, url).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap();
    (status, headers, body)
}

async fn get(url: &str) -> (StatusCode, Value) {
    let (status, _, body) = call(Method::GET, url, None).await;
    (status, body)
}

fn error_codes(body: &Value) -> Vec<i64> {
    assert_eq!(body["success"], json!(false), "{body}");
    assert_eq!(body["messages"], json!([]), "{body}");
    assert_eq!(body["result"], Value::Null, "{body}");
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_i64().unwrap())
        .collect()
}

fn names(body: &Value) -> Vec<String> {
    body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls `condition` until it holds; for state that changes without a request finishing.
async fn eventually(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "condition never held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn pages_walk_every_group_with_exact_result_info() {
    let fake = start_with_groups(250).await;
    let expected: Vec<String> = fake
        .groups(ACCOUNT)
        .iter()
        .map(|g| g.id.to_string())
        .collect();
    for per_page in [1u64, 7, 100, 250, 500] {
        let mut seen = Vec::new();
        let mut page = 1u64;
        loop {
            let url = format!("{}?page={page}&per_page={per_page}", groups_url(&fake));
            let (status, body) = get(&url).await;
            assert_eq!(status, StatusCode::OK);
            let result = body["result"].as_array().unwrap();
            let offset = (page - 1) * per_page;
            let count = per_page.min(250u64.saturating_sub(offset));
            assert_eq!(
                body["result_info"],
                json!({"page": page, "per_page": per_page, "count": count, "total_count": 250}),
                "per_page {per_page} page {page}"
            );
            if result.is_empty() {
                break;
            }
            seen.extend(result.iter().map(|g| g["id"].as_str().unwrap().to_owned()));
            page += 1;
        }
        assert_eq!(seen, expected, "per_page {per_page}");
    }
    // Defaults: page 1, 100 per page; and a page far past the end.
    let (_, body) = get(&groups_url(&fake)).await;
    assert_eq!(
        body["result_info"],
        json!({"page": 1, "per_page": 100, "count": 100, "total_count": 250})
    );
    let (status, body) = get(&format!("{}?page=99", groups_url(&fake))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"], json!([]));
    assert_eq!(
        body["result_info"],
        json!({"page": 99, "per_page": 100, "count": 0, "total_count": 250})
    );
    let group = &body["result"];
    assert!(group.is_array());
    fake.shutdown().await;
}

#[tokio::test]
async fn group_objects_have_the_documented_fields() {
    let fake = start_with_groups(1).await;
    let (_, body) = get(&groups_url(&fake)).await;
    assert_eq!(body["success"], json!(true));
    assert_eq!(body["errors"], json!([]));
    assert_eq!(body["messages"], json!([]));
    let group = body["result"][0].as_object().unwrap();
    let mut keys: Vec<&str> = group.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["created_on", "id", "modified_on", "name", "policies"]
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn page_and_per_page_out_of_bounds_are_400_envelopes() {
    let fake = start_with_groups(3).await;
    for query in [
        "per_page=0",
        "per_page=501",
        "per_page=-1",
        "per_page=abc",
        "page=0",
        "page=-2",
        "direction=sideways",
    ] {
        let (status, body) = get(&format!("{}?{query}", groups_url(&fake))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(error_codes(&body).len(), 1, "{query}");
    }
    let (status, body) = get(&format!("{}?per_page=500", groups_url(&fake))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result_info"]["per_page"], json!(500));
    fake.shutdown().await;
}

#[tokio::test]
async fn filters_and_direction() {
    let mut state = FakeState::new();
    for (i, name) in [
        "Engineering",
        "Admins",
        "Contractors 2024",
        "engineering-oncall",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("{:032x}", i + 1);
        state = state.with_group(ACCOUNT, FakeGroup::new(id, *name));
    }
    let fake = start_with(state).await;
    let url = groups_url(&fake);
    let list = |query: &str| format!("{url}?{query}");

    let (_, body) = get(&list("name=Engineering")).await;
    assert_eq!(names(&body), ["Engineering"]);
    assert_eq!(body["result_info"]["total_count"], json!(1));
    let (_, body) = get(&list("fuzzyName=engineering")).await;
    assert_eq!(names(&body), ["Engineering", "engineering-oncall"]);
    let (_, body) = get(&list(&format!("id={:032x}", 3))).await;
    assert_eq!(names(&body), ["Contractors 2024"]);
    let (_, body) = get(&list("name=Nobody")).await;
    assert_eq!(body["result"], json!([]));
    assert_eq!(body["result_info"]["total_count"], json!(0));
    let (_, body) = get(&list("direction=asc")).await;
    assert_eq!(
        names(&body),
        [
            "Admins",
            "Contractors 2024",
            "Engineering",
            "engineering-oncall"
        ]
    );
    let (_, body) = get(&list("direction=desc&per_page=2&page=2")).await;
    assert_eq!(names(&body), ["Contractors 2024", "Admins"]);
    // Without direction: creation order.
    let (_, body) = get(&url).await;
    assert_eq!(
        names(&body),
        [
            "Engineering",
            "Admins",
            "Contractors 2024",
            "engineering-oncall"
        ]
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn get_delete_and_missing_groups() {
    let fake = start_with_groups(3).await;
    let victim = fake.groups(ACCOUNT)[1].clone();
    let url = format!("{}/{}", groups_url(&fake), victim.id);

    let (status, body) = get(&url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"], victim.to_api_json());

    let (status, _, body) = call(Method::DELETE, &url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"errors": [], "messages": [], "success": true, "result": {"id": victim.id.to_string()}})
    );
    assert_eq!(fake.groups(ACCOUNT).len(), 2);
    assert!(fake.groups(ACCOUNT).iter().all(|g| g.id != victim.id));

    let (status, body) = get(&url).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_codes(&body), [1003]);
    let (status, _, body) = call(Method::DELETE, &url, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_codes(&body), [1003]);
    fake.shutdown().await;
}

#[tokio::test]
async fn malformed_ids_do_not_route_and_unknown_accounts_are_forbidden() {
    let fake = start_with_groups(1).await;
    let base = fake.base_url();
    for bad in [
        format!("{base}/accounts/not-an-account/iam/user_groups"),
        format!("{base}/accounts/{}/iam/user_groups", ACCOUNT.to_uppercase()),
        format!("{}/abc", groups_url(&fake)),
        format!("{}/{}0", groups_url(&fake), ACCOUNT),
        format!("{}/../x/members", groups_url(&fake)),
        format!("{base}/accounts/{ACCOUNT}/iam/nothing_here"),
    ] {
        let (status, body) = get(&bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_codes(&body), [7003, 7000], "{bad}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("Could not route to /client/v4/"),
            "{body}"
        );
    }
    let (status, body) = get(&format!("{base}/accounts/{OTHER_ACCOUNT}/iam/user_groups")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_codes(&body), [9109]);
    // The API has no PATCH: updates are PUT.
    let (status, _, body) = call(
        Method::PATCH,
        &format!("{}/{}", groups_url(&fake), fake.groups(ACCOUNT)[0].id),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_codes(&body).len(), 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn create_returns_a_fresh_group() {
    let fake = start_with(FakeState::new().with_account(ACCOUNT)).await;
    let policy = json!({"access": "allow", "permission_groups": [{"id": "c8fed203ed3043cba015a93ad1616f1f"}],
                        "resource_groups": [{"id": "6d7f2f5f5b1d4a0e9081fdc98d432fd1"}]});
    let (status, _, body) = call(
        Method::POST,
        &groups_url(&fake),
        Some(json!({"name": "Engineering", "policies": [policy]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let group = &body["result"];
    let id = group["id"].as_str().unwrap();
    assert!(id.parse::<Id>().is_ok(), "{id}");
    assert_eq!(group["name"], json!("Engineering"));
    assert!(
        humantime::parse_rfc3339(group["created_on"].as_str().unwrap()).is_ok(),
        "{group}"
    );
    assert_eq!(group["created_on"], group["modified_on"]);
    assert_eq!(group["policies"][0]["access"], json!("allow"));
    assert!(group["policies"][0]["id"].as_str().unwrap().len() == 32);

    let stored = fake.groups(ACCOUNT);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].to_api_json(), *group);
    let (_, listed) = get(&groups_url(&fake)).await;
    assert_eq!(listed["result"][0], *group);

    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": 3}),
        json!([1]),
    ] {
        let (status, _, body) = call(Method::POST, &groups_url(&fake), Some(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_codes(&body), [1001]);
    }
    fake.shutdown().await;
}

#[tokio::test]
async fn members_are_paginated_and_can_be_added() {
    let group_id = "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a";
    let members = (1..=3)
        .map(|n| FakeMember::new(member_id(n), format!("m{n}@example.com")))
        .collect();
    let fake = start_with(FakeState::new().with_group(
        ACCOUNT,
        FakeGroup::new(group_id, "Ops").with_members(members),
    ))
    .await;
    let url = format!("{}/{group_id}/members", groups_url(&fake));

    let (status, body) = get(&format!("{url}?per_page=2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["result"],
        json!([{"id": member_id(1), "email": "m1@example.com", "status": "accepted"},
               {"id": member_id(2), "email": "m2@example.com", "status": "accepted"}])
    );
    assert_eq!(
        body["result_info"],
        json!({"page": 1, "per_page": 2, "count": 2, "total_count": 3})
    );
    let (_, body) = get(&format!("{url}?per_page=2&page=2")).await;
    assert_eq!(body["result"].as_array().unwrap().len(), 1);

    let (status, _, body) = call(
        Method::POST,
        &url,
        Some(json!([{"id": member_id(9)}, {"id": member_id(1)}])),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"][0]["id"], json!(member_id(9)));
    assert_eq!(body["result"][1]["email"], json!("m1@example.com"));
    let stored = fake.members(ACCOUNT, group_id).unwrap();
    assert_eq!(stored.len(), 4);
    let (_, body) = get(&url).await;
    assert_eq!(body["result_info"]["total_count"], json!(4));

    for bad in [
        json!({"id": member_id(5)}),
        json!([{"id": "short"}]),
        json!([{}]),
    ] {
        let (status, _, body) = call(Method::POST, &url, Some(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_codes(&body), [1001]);
    }
    let missing = format!("{}/{}/members", groups_url(&fake), member_id(77));
    let (status, body) = get(&missing).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_codes(&body), [1003]);
    fake.shutdown().await;
}

/// Request headers for the auth cases.
type Headers = &'static [(&'static str, &'static str)];

#[tokio::test]
async fn both_auth_schemes_and_every_auth_error() {
    let fake = start_with_groups(1).await;
    let url = groups_url(&fake);
    let send = |headers: Headers| {
        let url = url.clone();
        async move {
            let mut request = client().get(&url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let error = |code: i64, message: &str, chain: Value| {
        let mut item = json!({"code": code, "message": message});
        if chain != Value::Null {
            item["error_chain"] = chain;
        }
        json!({"success": false, "errors": [item], "messages": [], "result": null})
    };
    let invalid = |chain: Value| error(6003, "Invalid request headers", chain);

    let (status, _) = send(&[("authorization", "Bearer test-token")]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&[("x-auth-email", EMAIL), ("x-auth-key", KEY)]).await;
    assert_eq!(status, StatusCode::OK);

    let cases: [(Headers, StatusCode, Value); 8] = [
        (
            &[],
            StatusCode::BAD_REQUEST,
            invalid(json!([
                {"code": 6102, "message": "Invalid format for X-Auth-Email header"},
                {"code": 6103, "message": "Invalid format for X-Auth-Key header"}])),
        ),
        (
            &[("authorization", "Basic dXNlcjpwYXNz")],
            StatusCode::BAD_REQUEST,
            invalid(json!([{"code": 6111, "message": "Invalid format for Authorization header"}])),
        ),
        (
            &[("authorization", "Bearer bad token")],
            StatusCode::BAD_REQUEST,
            invalid(json!([{"code": 6111, "message": "Invalid format for Authorization header"}])),
        ),
        (
            &[("x-auth-email", "not-an-email"), ("x-auth-key", KEY)],
            StatusCode::BAD_REQUEST,
            invalid(json!([{"code": 6102, "message": "Invalid format for X-Auth-Email header"}])),
        ),
        (
            &[("x-auth-email", EMAIL), ("x-auth-key", "not a key!")],
            StatusCode::BAD_REQUEST,
            invalid(json!([{"code": 6103, "message": "Invalid format for X-Auth-Key header"}])),
        ),
        (
            &[("x-auth-email", EMAIL)],
            StatusCode::BAD_REQUEST,
            invalid(json!([{"code": 6103, "message": "Invalid format for X-Auth-Key header"}])),
        ),
        (
            &[("authorization", "Bearer wrong-token")],
            StatusCode::FORBIDDEN,
            error(10000, "Authentication error", Value::Null),
        ),
        (
            &[("x-auth-email", "other@example.com"), ("x-auth-key", KEY)],
            StatusCode::FORBIDDEN,
            error(10000, "Authentication error", Value::Null),
        ),
    ];
    for (headers, expected_status, expected_body) in cases {
        let (status, body) = send(headers).await;
        assert_eq!(status, expected_status, "{headers:?}");
        assert_eq!(body, expected_body, "{headers:?}");
    }
    fake.shutdown().await;
}

#[tokio::test]
async fn every_response_carries_ratelimit_headers() {
    let fake = builder()
        .rate_limit(10, Duration::from_secs(60))
        .state(FakeState::new().with_account(ACCOUNT))
        .start()
        .await
        .unwrap();
    let header = |headers: &reqwest::header::HeaderMap, name: &str| {
        headers.get(name).unwrap().to_str().unwrap().to_owned()
    };
    let (_, headers, _) = call(Method::GET, &groups_url(&fake), None).await;
    assert_eq!(header(&headers, "ratelimit"), "\"default\";r=9;t=60");
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        "\"default\";q=10;w=60"
    );
    assert!(headers.get("retry-after").is_none());
    // Errors carry them too.
    let (status, headers, _) = call(Method::GET, &format!("{}/bad", groups_url(&fake)), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let value = header(&headers, "ratelimit");
    assert!(value.starts_with("\"default\";r=8;t="), "{value}");
    fake.shutdown().await;
}

#[tokio::test]
async fn exceeding_the_limit_locks_out_with_429_and_retry_after() {
    let fake = builder()
        .rate_limit(5, Duration::from_secs(30))
        .lockout(Duration::from_millis(2500))
        .state(FakeState::new().with_account(ACCOUNT))
        .start()
        .await
        .unwrap();
    let url = groups_url(&fake);
    for _ in 0..5 {
        let (status, _) = get(&url).await;
        assert_eq!(status, StatusCode::OK);
    }
    let tripped_at = Instant::now();
    for _ in 0..3 {
        let (status, headers, body) = call(Method::GET, &url, None).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        // 2.5 s rounded up, or less as the lockout runs down; never 0.
        let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=3).contains(&retry_after), "{retry_after}");
        assert_eq!(
            headers["ratelimit"].to_str().unwrap(),
            format!("\"default\";r=0;t={retry_after}")
        );
        assert_eq!(
            body,
            json!({"success": false, "messages": [], "result": null, "errors": [
                {"code": 971, "message": "Please wait and consider throttling your request speed"}]})
        );
    }
    // Other endpoints are locked out too.
    let (status, _, _) = call(Method::DELETE, &format!("{url}/{ACCOUNT}"), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(fake.requests().rate_limited(), 4);

    // Timing is the point here: once the lockout is over, requests pass again.
    tokio::time::sleep(Duration::from_millis(2600).saturating_sub(tripped_at.elapsed())).await;
    let (status, headers, _) = call(Method::GET, &url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"default\";r=4;"),
        "the window starts empty after a lockout"
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn the_lockout_defaults_to_the_window() {
    let fake = builder()
        .rate_limit(1, Duration::from_secs(120))
        .state(FakeState::new().with_account(ACCOUNT))
        .start()
        .await
        .unwrap();
    let url = groups_url(&fake);
    assert_eq!(get(&url).await.0, StatusCode::OK);
    let (status, headers, _) = call(Method::GET, &url, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "120");
    fake.shutdown().await;
}

#[tokio::test]
async fn latency_is_added_to_every_request() {
    let fake = builder()
        .latency(Duration::from_millis(200))
        .state(FakeState::new().with_account(ACCOUNT))
        .start()
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(get(&groups_url(&fake)).await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
    fake.set_latency(Duration::ZERO);
    fake.shutdown().await;
}

#[tokio::test]
async fn status_faults_fire_on_their_route_the_given_number_of_times() {
    let fake = start_with_groups(2).await;
    let url = groups_url(&fake);
    let one = format!("{url}/{}", fake.groups(ACCOUNT)[0].id);
    fake.inject(Fault::Status(503).on(Route::List).times(2));
    fake.inject(Fault::Status(500).on(Route::Get));
    fake.inject(Fault::Status(502).method(Method::DELETE));
    assert_eq!(fake.pending_faults(), 4);

    // A GET of one group is not a list: it takes the 500 meant for it.
    let (status, body) = get(&one).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_codes(&body), [1000]);
    for _ in 0..2 {
        let (status, body) = get(&url).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error_codes(&body), [1000]);
    }
    assert_eq!(get(&url).await.0, StatusCode::OK);
    let (status, _, body) = call(Method::DELETE, &one, None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error_codes(&body), [1000]);
    assert_eq!(
        fake.groups(ACCOUNT).len(),
        2,
        "a failed delete deletes nothing"
    );
    assert_eq!(fake.pending_faults(), 0);
    assert_eq!(call(Method::DELETE, &one, None).await.0, StatusCode::OK);
    fake.shutdown().await;
}

#[tokio::test]
async fn a_dropped_connection_is_a_connection_error_at_the_client() {
    let fake = start_with_groups(2).await;
    let url = groups_url(&fake);
    let http = client();

    fake.inject(Fault::DropConnection.on(Route::List));
    let error = http
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect_err("the connection should drop");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    assert!(error.is_request() || error.is_connect(), "{error:?}");

    // Before applying: the group survives.
    let first = fake.groups(ACCOUNT)[0].id.clone();
    fake.inject(Fault::DropConnection.on(Route::Delete));
    let error = http
        .delete(format!("{url}/{first}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect_err("the connection should drop");
    assert!(!error.is_status(), "{error:?}");
    assert_eq!(fake.groups(ACCOUNT).len(), 2);

    // After applying: the group is gone but the client never heard.
    fake.inject(Fault::DropConnectionAfterApply.on(Route::Delete));
    assert!(
        http.delete(format!("{url}/{first}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .is_err()
    );
    assert_eq!(fake.groups(ACCOUNT).len(), 1);
    let (status, _, _) = call(Method::DELETE, &format!("{url}/{first}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let requests = fake.requests();
    assert_eq!(requests.dropped(), 3);
    assert!(
        requests
            .log()
            .iter()
            .filter(|r| r.status.is_none())
            .all(|r| r.route == Route::List || r.route == Route::Delete)
    );
    // The same client carries on over a fresh connection.
    assert_eq!(get(&url).await.0, StatusCode::OK);
    fake.shutdown().await;
}

#[tokio::test]
async fn malformed_json_and_success_false_come_with_200() {
    let fake = start_with_groups(2).await;
    let url = groups_url(&fake);
    fake.inject(Fault::MalformedJson);
    let response = client().get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.json::<Value>().await.is_err());

    fake.inject(Fault::SuccessFalse.on(Route::List));
    let (status, body) = get(&url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error_codes(&body), [1000]);
    assert_eq!(get(&url).await.0, StatusCode::OK);
    fake.shutdown().await;
}

#[tokio::test]
async fn a_slow_answer_outlasts_a_client_timeout_but_still_takes_effect() {
    let fake = start_with_groups(2).await;
    let victim = fake.groups(ACCOUNT)[0].id.clone();
    fake.inject(Fault::Slow(Duration::from_secs(3)).on(Route::Delete));
    let impatient = client_with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let error = impatient
        .delete(format!("{}/{victim}", groups_url(&fake)))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect_err("should time out");
    assert!(error.is_timeout(), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    eventually(|| fake.groups(ACCOUNT).len() == 1).await;
    // The abandoned request is logged without a status once the server notices.
    let requests = fake
        .wait_for_requests(PATIENCE, |r| r.log().len() == 1)
        .await
        .expect("the abandoned request is logged");
    assert_eq!(requests.log()[0].status, None);
    assert_eq!(requests.log()[0].route, Route::Delete);

    // A patient client gets the answer after the delay.
    fake.inject(Fault::Slow(Duration::from_millis(300)).on(Route::List));
    let started = Instant::now();
    assert_eq!(get(&groups_url(&fake)).await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    fake.shutdown().await;
}

#[tokio::test]
async fn list_faults_lie_about_total_count_or_drop_an_item() {
    let fake = start_with_groups(10).await;
    let url = format!("{}?per_page=4", groups_url(&fake));

    fake.inject(Fault::WrongTotalCount(3).on(Route::List));
    let (_, body) = get(&url).await;
    assert_eq!(
        body["result_info"],
        json!({"page": 1, "per_page": 4, "count": 4, "total_count": 13})
    );
    assert_eq!(body["result"].as_array().unwrap().len(), 4);

    // A list-only fault waits for a list request, skipping others.
    fake.inject(Fault::DropItem);
    let one = format!("{}/{}", groups_url(&fake), fake.groups(ACCOUNT)[0].id);
    assert_eq!(get(&one).await.0, StatusCode::OK);
    assert_eq!(fake.pending_faults(), 1);
    let (_, body) = get(&url).await;
    assert_eq!(body["result"].as_array().unwrap().len(), 3);
    assert_eq!(
        body["result_info"],
        json!({"page": 1, "per_page": 4, "count": 3, "total_count": 10})
    );
    let (_, honest) = get(&url).await;
    assert_eq!(honest["result"].as_array().unwrap().len(), 4);
    assert_eq!(
        body["result"].as_array().unwrap()[..],
        honest["result"].as_array().unwrap()[..3]
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn an_injected_429_has_its_retry_after_and_no_lockout() {
    let fake = start_with_groups(1).await;
    let url = groups_url(&fake);
    fake.inject(Fault::RateLimited(7));
    let (status, headers, body) = call(Method::GET, &url, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(headers["ratelimit"], "\"default\";r=0;t=7");
    assert_eq!(error_codes(&body), [971]);
    assert_eq!(get(&url).await.0, StatusCode::OK);
    assert_eq!(fake.requests().rate_limited(), 1);
    fake.shutdown().await;
}

/// What a client saw for each of `n` sequential list requests.
async fn outcomes(fake: &FakeCloudflare, n: usize) -> Vec<Option<u16>> {
    let http = client();
    let mut seen = Vec::with_capacity(n);
    for _ in 0..n {
        let response = http.get(groups_url(fake)).bearer_auth(TOKEN).send().await;
        seen.push(match response {
            Ok(response) => Some(response.status().as_u16()),
            Err(_) => None,
        });
    }
    seen
}

#[tokio::test]
async fn random_faults_follow_their_seed() {
    let first = start_with_groups(3).await;
    first.set_random_faults(99, 0.5);
    let second = start_with_groups(3).await;
    second.set_random_faults(99, 0.5);
    let a = outcomes(&first, 60).await;
    let b = outcomes(&second, 60).await;
    assert_eq!(a, b);
    let healthy = a.iter().filter(|s| **s == Some(200)).count();
    assert!((10..60).contains(&healthy), "{a:?}");
    assert!(a.iter().any(|s| s.is_none_or(|s| s >= 429)), "{a:?}");

    first.clear_faults();
    assert!(outcomes(&first, 5).await.iter().all(|s| *s == Some(200)));
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn requests_are_counted_by_kind_and_logged() {
    let fake = builder()
        .rate_limit(6, Duration::from_secs(60))
        .state(FakeState::new().with_generated_groups(ACCOUNT, 3, 1))
        .start()
        .await
        .unwrap();
    let url = groups_url(&fake);
    let id = fake.groups(ACCOUNT)[0].id.clone();
    let started = Instant::now();
    get(&format!("{url}?page=1")).await;
    get(&format!("{url}?page=2")).await;
    get(&format!("{url}/{id}")).await;
    get(&format!("{url}/{id}/members")).await;
    call(Method::POST, &url, Some(json!({"name": "New"}))).await;
    call(Method::DELETE, &format!("{url}/{id}"), None).await;
    call(Method::DELETE, &format!("{url}/{id}"), None).await; // the 7th: 429

    let requests = fake
        .wait_for_requests(PATIENCE, |r| r.log().len() == 7)
        .await
        .expect("all seven requests finish");
    assert_eq!(requests.total(), 7);
    assert_eq!(requests.count(Method::GET, Route::List), 2);
    assert_eq!(requests.count(Method::GET, Route::Get), 1);
    assert_eq!(requests.count(Method::GET, Route::Members), 1);
    assert_eq!(requests.count(Method::POST, Route::Create), 1);
    assert_eq!(requests.count(Method::DELETE, Route::Delete), 2);
    assert_eq!(requests.count(Method::POST, Route::Members), 0);
    assert_eq!(requests.rate_limited(), 1);
    assert_eq!(requests.with_status(200), 6);
    let log = requests.log();
    assert_eq!(
        log[1].path,
        format!("/client/v4/accounts/{ACCOUNT}/iam/user_groups?page=2")
    );
    assert_eq!(log[6].method, Method::DELETE);
    assert_eq!(log[6].status, Some(429));
    assert!(log.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(log[0].at >= started);
    assert_eq!(requests.max_in_window(Duration::from_secs(3600)), 7);

    fake.reset_requests();
    assert_eq!(fake.requests().total(), 0);
    fake.shutdown().await;
}

#[tokio::test]
async fn state_loads_saves_and_persists_with_members() {
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.json");
    let group_id = "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a";
    std::fs::write(
        &seed_path,
        json!({"format_version": 1, "accounts": {ACCOUNT: {"groups": [
            {"id": group_id, "name": "Ops", "created_on": "2024-03-01T12:21:02Z",
             "modified_on": "2024-03-02T12:21:02Z", "policies": [{"id": "p", "access": "allow"}],
             "members": [{"id": member_id(1), "email": "a@example.com", "status": "pending"}]},
            {"id": member_id(2), "name": "Plain"}]}}})
        .to_string(),
    )
    .unwrap();
    let state = FakeState::load(&seed_path).unwrap();
    let persisted = dir.path().join("live.json");
    let fake = builder()
        .state(state.clone())
        .persist_to(&persisted)
        .start()
        .await
        .unwrap();
    assert_eq!(fake.state(), state);
    let url = format!("{}/{group_id}/members", groups_url(&fake));
    let (_, body) = get(&url).await;
    assert_eq!(
        body["result"],
        json!([{"id": member_id(1), "email": "a@example.com", "status": "pending"}])
    );

    assert!(!persisted.exists(), "reads do not write");
    let (status, _, _) = call(
        Method::DELETE,
        &format!("{}/{}", groups_url(&fake), member_id(2)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let saved = FakeState::load(&persisted).unwrap();
    assert_eq!(saved.groups(ACCOUNT).len(), 1);
    assert_eq!(saved.groups(ACCOUNT)[0].members.len(), 1);
    assert_eq!(saved, fake.state());

    let copy = dir.path().join("copy.json");
    fake.save(&copy).unwrap();
    assert_eq!(FakeState::load(&copy).unwrap(), fake.state());
    fake.shutdown().await;
}

#[tokio::test]
async fn handle_seeds_and_reads_state() {
    let fake = start_with(FakeState::new()).await;
    fake.add_account(ACCOUNT);
    let id = fake.create_group(ACCOUNT, "Seeded");
    assert!(id.parse::<Id>().is_ok(), "{id}");
    fake.add_group(ACCOUNT, FakeGroup::new(member_id(5), "Added"));
    let (_, body) = get(&groups_url(&fake)).await;
    assert_eq!(names(&body), ["Seeded", "Added"]);
    assert!(fake.remove_group(ACCOUNT, &id));
    assert!(!fake.remove_group(ACCOUNT, &id));
    assert_eq!(fake.groups(ACCOUNT).len(), 1);
    assert!(fake.groups(OTHER_ACCOUNT).is_empty());
    fake.set_state(FakeState::new());
    let (status, _) = get(&groups_url(&fake)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    fake.shutdown().await;
}

#[tokio::test]
async fn only_loopback_and_shutdown_really_stops() {
    let refused = FakeCloudflare::builder()
        .listen("0.0.0.0:0".parse().unwrap())
        .start()
        .await;
    assert!(refused.is_err());
    assert!(
        FakeCloudflare::builder()
            .rate_limit(0, Duration::from_secs(1))
            .start()
            .await
            .is_err()
    );

    let fake = start_with_groups(1).await;
    let url = groups_url(&fake);
    assert_eq!(get(&url).await.0, StatusCode::OK);
    let addr = fake.addr();
    fake.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    let dropped = start_with_groups(1).await;
    let addr = dropped.addr();
    drop(dropped);
    let deadline = Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the listener outlived its handle"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_plain_snapshot_is_valid_state_and_bad_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("snapshot.json");
    // What an export writes: group objects as the list endpoint returns them, no members,
    // unknown fields, both `scope` shapes and non-ASCII names.
    std::fs::write(
        &snapshot,
        json!({"format_version": 1, "accounts": {ACCOUNT: {"groups": [
            {"id": member_id(1), "name": "Finance Auditors", "created_on": "2025-09-04T01:58:20Z",
             "modified_on": "2025-11-02T09:14:51Z", "beta_flag": true,
             "policies": [{"id": member_id(2), "access": "allow",
                           "permission_groups": [{"id": member_id(3), "name": "Account Settings Read"}],
                           "resource_groups": [{"id": member_id(4),
                                                "scope": {"key": "k", "objects": [{"key": "*"}]}}]},
                          {"id": member_id(5), "access": "deny", "permission_groups": [],
                           "resource_groups": [{"id": member_id(6),
                                                "scope": [{"key": "k", "objects": [{"key": "*"}]}]}]}]},
            {"id": member_id(7), "name": "Équipe données"}]}}})
        .to_string(),
    )
    .unwrap();
    let state = FakeState::load(&snapshot).unwrap();
    assert_eq!(state.groups(ACCOUNT).len(), 2);
    let fake = start_with(state).await;
    let (_, body) = get(&groups_url(&fake)).await;
    assert_eq!(names(&body), ["Finance Auditors", "Équipe données"]);
    assert_eq!(
        body["result"][0]["policies"][1]["resource_groups"][0]["scope"][0]["key"],
        json!("k")
    );
    assert!(body["result"][0].get("beta_flag").is_none());
    fake.shutdown().await;

    let yaml = dir.path().join("state.yaml");
    std::fs::write(
        &yaml,
        format!("format_version: 1\naccounts:\n  \"{ACCOUNT}\":\n    name: Acme\n    groups: []\n"),
    )
    .unwrap();
    let state = FakeState::load(&yaml).unwrap();
    assert_eq!(state.accounts[ACCOUNT].name.as_deref(), Some("Acme"));

    for (text, needle) in [
        (
            r#"{"format_version": 2, "accounts": {}}"#.to_owned(),
            "unsupported format_version 2",
        ),
        (
            json!({"format_version": 1, "accounts": {"NOT-AN-ID": {"groups": []}}}).to_string(),
            "not 32 lowercase hexadecimal",
        ),
        (
            json!({"format_version": 1, "accounts": {ACCOUNT: {"groups": [{"id": "x", "name": "n"}]}}})
                .to_string(),
            "groups[0].id",
        ),
        ("{\"format_version\": 1, \"accounts\": {".to_owned(), "line 1"),
    ] {
        let path = dir.path().join("bad.json");
        std::fs::write(&path, &text).unwrap();
        let error = FakeState::load(&path).unwrap_err().to_string();
        assert!(error.contains(needle), "{text}: {error}");
        assert!(error.contains("bad.json"), "{error}");
    }
    let missing = FakeState::load(&dir.path().join("absent.json")).unwrap_err();
    assert!(missing.to_string().contains("absent.json"), "{missing}");
}

#[tokio::test]
async fn get_account_answers_the_account_object_with_its_name() {
    let named = "0000000000000000000000000000abcd";
    let fake = start_with(
        FakeState::new()
            .with_account(ACCOUNT)
            .with_account_name(named, "Acme Corp"),
    )
    .await;
    let base = fake.base_url();
    let (status, headers, body) =
        call(Method::GET, &format!("{base}/accounts/{named}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], json!(true));
    assert_eq!(body["errors"], json!([]));
    assert_eq!(body["messages"], json!([]));
    assert_eq!(body["result"]["id"], json!(named));
    assert_eq!(body["result"]["name"], json!("Acme Corp"));
    assert!(headers.get("ratelimit").is_some());
    assert!(headers.get("ratelimit-policy").is_some());
    let (_, body) = get(&format!("{base}/accounts/{ACCOUNT}")).await;
    assert_eq!(body["result"]["name"], json!(format!("Account {ACCOUNT}")));

    let (status, body) = get(&format!("{base}/accounts/{OTHER_ACCOUNT}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_codes(&body), [9109]);
    let (status, body) = get(&format!("{base}/accounts/nope")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_codes(&body), [7003, 7000]);
    let (status, _, body) = call(Method::DELETE, &format!("{base}/accounts/{ACCOUNT}"), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_codes(&body).len(), 1);

    let requests = fake
        .wait_for_requests(PATIENCE, |r| r.log().len() == 5)
        .await
        .expect("all five requests finish");
    assert_eq!(requests.count(Method::GET, Route::Account), 4);
    assert_eq!(requests.count(Method::DELETE, Route::Other), 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn put_updates_a_group() {
    let fake = start_with_groups(2).await;
    let before = fake.groups(ACCOUNT)[0].clone();
    let url = format!("{}/{}", groups_url(&fake), before.id);

    let policy = json!({"access": "deny", "permission_groups": [{"id": member_id(1)}],
                        "resource_groups": [{"id": member_id(2)}]});
    let (status, _, body) = call(
        Method::PUT,
        &url,
        Some(json!({"name": "Renamed", "policies": [policy]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let group = &body["result"];
    assert_eq!(group["id"], json!(before.id));
    assert_eq!(group["name"], json!("Renamed"));
    assert_eq!(group["created_on"], json!(before.created_on));
    assert_ne!(group["modified_on"], json!(before.modified_on));
    assert_eq!(group["policies"][0]["access"], json!("deny"));
    assert!(
        group["policies"][0]["id"]
            .as_str()
            .unwrap()
            .parse::<Id>()
            .is_ok()
    );
    assert_eq!(fake.groups(ACCOUNT)[0].to_api_json(), *group);

    // Only what is given changes.
    let (status, _, body) = call(Method::PUT, &url, Some(json!({"name": "Again"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"]["policies"], group["policies"]);

    for (bad, pointer) in [
        (json!({"name": ""}), Some("/name")),
        (json!({"name": 7}), Some("/name")),
        (json!({"policies": {}}), Some("/policies")),
        (json!([]), None),
    ] {
        let (status, _, body) = call(Method::PUT, &url, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_codes(&body), [1001], "{bad}");
        match pointer {
            Some(pointer) => assert_eq!(body["errors"][0]["source"]["pointer"], json!(pointer)),
            None => assert!(body["errors"][0].get("source").is_none(), "{body}"),
        }
    }
    let missing = format!("{}/{}", groups_url(&fake), member_id(99));
    let (status, _, body) = call(Method::PUT, &missing, Some(json!({"name": "x"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_codes(&body), [1003]);
    assert_eq!(fake.requests().count(Method::PUT, Route::Update), 7);
    fake.shutdown().await;
}

#[tokio::test]
async fn members_can_be_replaced_and_removed() {
    let group_id = "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a";
    let members = (1..=3)
        .map(|n| FakeMember::new(member_id(n), format!("m{n}@example.com")))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let persisted = dir.path().join("live.json");
    let fake = builder()
        .state(FakeState::new().with_group(
            ACCOUNT,
            FakeGroup::new(group_id, "Ops").with_members(members),
        ))
        .persist_to(&persisted)
        .start()
        .await
        .unwrap();
    let url = format!("{}/{group_id}/members", groups_url(&fake));
    let ids = |members: &[FakeMember]| members.iter().map(|m| m.id.clone()).collect::<Vec<_>>();

    // PUT replaces: kept members keep their place, new ones follow.
    let (status, _, body) = call(
        Method::PUT,
        &url,
        Some(json!([{"id": member_id(8)}, {"id": member_id(3)}])),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["result"],
        json!([{"id": member_id(3), "email": "m3@example.com", "status": "accepted"},
               {"id": member_id(8), "email": format!("{}@example.com", &member_id(8)[..8]),
                "status": "accepted"}])
    );
    assert_eq!(
        ids(&fake.members(ACCOUNT, group_id).unwrap()),
        [member_id(3), member_id(8)]
    );
    assert_eq!(
        FakeState::load(&persisted).unwrap().groups(ACCOUNT)[0]
            .members
            .len(),
        2
    );

    // DELETE removes one member and answers it.
    let (status, _, body) = call(Method::DELETE, &format!("{url}/{}", member_id(3)), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "errors": [], "messages": [],
               "result": {"id": member_id(3), "email": "m3@example.com", "status": "accepted"}})
    );
    assert_eq!(
        ids(&fake.members(ACCOUNT, group_id).unwrap()),
        [member_id(8)]
    );
    let (status, _, body) = call(Method::DELETE, &format!("{url}/{}", member_id(3)), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_codes(&body), [1003]);
    let (status, _, body) = call(Method::DELETE, &format!("{url}/short"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_codes(&body), [7003, 7000]);
    let elsewhere = format!(
        "{}/{}/members/{}",
        groups_url(&fake),
        member_id(77),
        member_id(8)
    );
    let (status, _, body) = call(Method::DELETE, &elsewhere, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_codes(&body), [1003]);

    // PUT [] empties the group.
    let (status, _, body) = call(Method::PUT, &url, Some(json!([]))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"], json!([]));
    assert_eq!(fake.members(ACCOUNT, group_id), Some(Vec::new()));
    let (_, body) = get(&url).await;
    assert_eq!(
        body["result_info"],
        json!({"page": 1, "per_page": 100, "count": 0, "total_count": 0})
    );

    let (status, _, body) = call(Method::PUT, &url, Some(json!([{"id": "x"}]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["source"]["pointer"], json!("/0/id"));
    let requests = fake.requests();
    assert_eq!(requests.count(Method::PUT, Route::Members), 3);
    assert_eq!(requests.count(Method::DELETE, Route::RemoveMember), 4);
    fake.shutdown().await;
}

#[tokio::test]
async fn an_injected_429_status_has_the_rate_limit_body() {
    let fake = start_with_groups(1).await;
    fake.inject(Fault::Status(429).on(Route::List));
    let (status, headers, body) = call(Method::GET, &groups_url(&fake), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_codes(&body), [971]);
    assert!(headers.get("retry-after").is_none());
    assert!(headers.get("ratelimit").is_some());
    assert!(headers.get("ratelimit-policy").is_some());
    fake.shutdown().await;
}

#[tokio::test]
async fn every_kind_of_answer_carries_both_ratelimit_headers() {
    let fake = builder()
        .rate_limit(50, Duration::from_secs(60))
        .state(FakeState::new().with_generated_groups(ACCOUNT, 2, 1))
        .start()
        .await
        .unwrap();
    let base = fake.base_url();
    let groups = groups_url(&fake);
    let one = format!("{groups}/{}", fake.groups(ACCOUNT)[0].id);
    let http = client();
    let cases = [
        (Method::GET, groups.clone(), Some(TOKEN), StatusCode::OK),
        (Method::GET, one.clone(), Some(TOKEN), StatusCode::OK),
        (
            Method::GET,
            format!("{one}/members"),
            Some(TOKEN),
            StatusCode::OK,
        ),
        (
            Method::GET,
            format!("{base}/accounts/{ACCOUNT}"),
            Some(TOKEN),
            StatusCode::OK,
        ),
        (Method::GET, groups.clone(), None, StatusCode::BAD_REQUEST),
        (
            Method::GET,
            groups.clone(),
            Some("wrong"),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            format!("{groups}/{}", member_id(4)),
            Some(TOKEN),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PATCH,
            one.clone(),
            Some(TOKEN),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            format!("{base}/nothing"),
            Some(TOKEN),
            StatusCode::BAD_REQUEST,
        ),
        (Method::DELETE, one.clone(), Some(TOKEN), StatusCode::OK),
    ];
    for (method, url, token, expected) in cases {
        let mut request = http.request(method.clone(), &url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), expected, "{method} {url}");
        let headers = response.headers();
        let ratelimit = headers["ratelimit"].to_str().unwrap();
        assert!(
            ratelimit.starts_with("\"default\";r=") && ratelimit.contains(";t="),
            "{ratelimit}"
        );
        assert_eq!(headers["ratelimit-policy"], "\"default\";q=50;w=60");
        assert_eq!(headers["content-type"], "application/json");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["success"], json!(expected == StatusCode::OK), "{body}");
    }
    fake.shutdown().await;
}

#[tokio::test]
async fn a_scim_group_is_read_but_every_change_to_it_is_refused_every_time() {
    let scim = "5c1a000000000000000000000000000a";
    let state = FakeState::new()
        .with_group(
            ACCOUNT,
            FakeGroup::new(scim, "SCIM-Engineering").scim_managed(),
        )
        .with_group(ACCOUNT, FakeGroup::new(member_id(2), "Plain"));
    let fake = start_with(state).await;
    let url = format!("{}/{scim}", groups_url(&fake));

    // Read as any other group; nothing in the object says SCIM.
    let (status, body) = get(&url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"]["name"], json!("SCIM-Engineering"));
    assert!(body["result"].get("scim").is_none(), "{body}");
    let (_, list) = get(&groups_url(&fake)).await;
    assert_eq!(names(&list), ["SCIM-Engineering", "Plain"]);

    for _ in 0..3 {
        let (status, _, body) = call(Method::DELETE, &url, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(error_codes(&body), [1010]);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("SCIM"),
            "{body}"
        );
    }
    let changes = [
        (Method::PUT, url.clone(), Some(json!({"name": "Renamed"}))),
        (Method::PUT, format!("{url}/members"), Some(json!([]))),
        (
            Method::POST,
            format!("{url}/members"),
            Some(json!([{"id": member_id(1)}])),
        ),
        (
            Method::DELETE,
            format!("{url}/members/{}", member_id(1)),
            None,
        ),
    ];
    for (method, target, body) in changes {
        let (status, _, answer) = call(method.clone(), &target, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {target}");
        assert_eq!(error_codes(&answer), [1010], "{method} {target}");
    }
    assert_eq!(fake.groups(ACCOUNT)[0].name, "SCIM-Engineering");

    // Other groups are deleted as usual.
    let (status, _, _) = call(
        Method::DELETE,
        &format!("{}/{}", groups_url(&fake), member_id(2)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fake.groups(ACCOUNT).len(), 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn the_scim_mark_round_trips_through_the_state_file() {
    let scim = "5c1a000000000000000000000000000a";
    let text = json!({"format_version": 1, "accounts": {ACCOUNT: {"groups": [
        {"id": scim, "name": "SCIM-Ops", "scim": true},
        {"id": member_id(2), "name": "Plain"}]}}})
    .to_string();
    let state = FakeState::parse(&text, "state.json").unwrap();
    assert!(state.groups(ACCOUNT)[0].scim);
    assert!(!state.groups(ACCOUNT)[1].scim);
    let saved = serde_json::to_value(&state).unwrap();
    assert_eq!(saved["accounts"][ACCOUNT]["groups"][0]["scim"], json!(true));
    assert!(
        saved["accounts"][ACCOUNT]["groups"][1]
            .get("scim")
            .is_none()
    );
}

#[tokio::test]
async fn a_read_only_token_lists_but_cannot_delete() {
    let fake = builder()
        .read_only_token("reader")
        .state(FakeState::new().with_generated_groups(ACCOUNT, 2, 1))
        .start()
        .await
        .unwrap();
    let victim = fake.groups(ACCOUNT)[0].id.clone();
    let read = client()
        .get(groups_url(&fake))
        .bearer_auth("reader")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    for _ in 0..2 {
        let refused = client()
            .delete(format!("{}/{victim}", groups_url(&fake)))
            .bearer_auth("reader")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(error_codes(&body), [10000]);
    }
    assert_eq!(fake.groups(ACCOUNT).len(), 2);
    fake.shutdown().await;
}
