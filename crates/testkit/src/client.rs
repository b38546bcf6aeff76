//! The product's HTTP client pointed at a fake API: quick retries whose delays stay
//! measurable, a chosen budget and timeout, and an observer that records every attempt.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cfgroups::cloudflare::{
    BaseUrl, Budget, BudgetConfig, Client, ClientConfig, Credentials, Jitter, RequestEvent,
    RetryPolicy,
};
use cfgroups_fake::FakeCloudflare;
use secrecy::SecretString;

use crate::fake::TOKEN;
use crate::wait::{WAIT, eventually};

/// A retry policy that keeps tests fast while its delays stay measurable: 50 ms, then
/// 100 ms, 200 ms, no jitter, three retries.
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        max_retries: 3,
        jitter: Jitter::None,
        deadline: Duration::from_secs(30),
        ..RetryPolicy::default()
    }
}

/// Every attempt a client made, as its observer saw them.
#[derive(Clone, Default)]
pub struct Attempts(Arc<Mutex<Vec<RequestEvent>>>);

impl Attempts {
    fn record(&self, event: &RequestEvent) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }

    pub fn all(&self) -> Vec<RequestEvent> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until `condition` holds for the attempts so far; panics after [`WAIT`].
    pub async fn wait_until(&self, condition: impl Fn(&[RequestEvent]) -> bool) {
        eventually("the expected attempts", WAIT, async || {
            condition(&self.all()).then_some(())
        })
        .await;
    }

    /// `(attempt number, status)` of every attempt, in order.
    pub fn statuses(&self) -> Vec<(u32, Option<u16>)> {
        self.all().iter().map(|e| (e.attempt, e.status)).collect()
    }
}

/// A client for `fake` with `token`, `retry`, a budget of `budget` and `request_timeout`,
/// recording its attempts.
pub fn client_with(
    fake: &FakeCloudflare,
    token: &str,
    retry: RetryPolicy,
    budget: BudgetConfig,
    request_timeout: Duration,
) -> (Client, Attempts) {
    let credentials = Credentials::api_token(SecretString::from(token)).expect("credentials");
    let mut config = ClientConfig::new(credentials);
    config.base_url = BaseUrl::parse(&fake.base_url()).expect("the fake's base URL");
    config.retry = retry;
    config.request_timeout = request_timeout;
    let attempts = Attempts::default();
    let sink = attempts.clone();
    let observer = move |event: &RequestEvent| sink.record(event);
    let client = Client::with_parts(config, Budget::new(budget), Arc::new(observer))
        .expect("a client for the fake");
    (client, attempts)
}

/// A client for `fake` with the test token, [`quick_retries`] and the default budget.
pub fn client(fake: &FakeCloudflare) -> (Client, Attempts) {
    client_with(
        fake,
        TOKEN,
        quick_retries(),
        BudgetConfig::default(),
        Duration::from_secs(10),
    )
}
