//! Helpers shared by the tests that run the live Cloudflare source against the local fake
//! API: the fake with a known token, clients pointed at it, and an observer that records
//! every attempt.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cfgroups::cloudflare::{
    BaseUrl, Budget, BudgetConfig, Client, ClientConfig, Credentials, Jitter, RequestEvent,
    RetryPolicy,
};
use cfgroups::fake_api::{FakeCloudflare, FakeState};
use cfgroups::model::AccountId;
use secrecy::SecretString;

/// The token the fake accepts.
pub const TOKEN: &str = "SECRET-TOKEN-b1f2c3";
/// The production account of `examples/`.
pub const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";
/// How long a test waits for something that should happen at once, on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn account() -> AccountId {
    ACCOUNT.parse().unwrap()
}

/// Starts the fake on a free loopback port, accepting [`TOKEN`], serving `state`.
pub async fn start_fake(state: FakeState) -> FakeCloudflare {
    FakeCloudflare::builder()
        .token(TOKEN)
        .seed(7)
        .state(state)
        .start()
        .await
        .unwrap()
}

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
#[derive(Clone)]
pub struct Attempts {
    events: Arc<Mutex<Vec<RequestEvent>>>,
    /// Bumped after every event, so a test can wait for one instead of sleeping.
    changed: tokio::sync::watch::Sender<usize>,
}

impl Default for Attempts {
    fn default() -> Self {
        Self {
            events: Arc::default(),
            changed: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Attempts {
    fn record(&self, event: &RequestEvent) {
        self.events.lock().unwrap().push(event.clone());
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn all(&self) -> Vec<RequestEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until `condition` holds for the attempts so far; panics after [`PATIENCE`].
    pub async fn wait_until(&self, condition: impl Fn(&[RequestEvent]) -> bool) {
        let mut changes = self.changed.subscribe();
        tokio::time::timeout(PATIENCE, async {
            while !condition(&self.all()) {
                changes.changed().await.unwrap();
            }
        })
        .await
        .expect("the expected attempts did not happen");
    }

    /// `(attempt number, status)` of every attempt, in order.
    pub fn statuses(&self) -> Vec<(u32, Option<u16>)> {
        self.all().iter().map(|e| (e.attempt, e.status)).collect()
    }
}

/// A client for `fake` with `token`, `retry` and a budget of `budget`, recording attempts.
pub fn client_with(
    fake: &FakeCloudflare,
    token: &str,
    retry: RetryPolicy,
    budget: BudgetConfig,
    request_timeout: Duration,
) -> (Client, Attempts) {
    let credentials = Credentials::api_token(SecretString::from(token)).unwrap();
    let mut config = ClientConfig::new(credentials);
    config.base_url = BaseUrl::parse(&fake.base_url()).unwrap();
    config.retry = retry;
    config.request_timeout = request_timeout;
    let attempts = Attempts::default();
    let sink = attempts.clone();
    let observer = move |event: &RequestEvent| sink.record(event);
    let client = Client::with_parts(config, Budget::new(budget), Arc::new(observer)).unwrap();
    (client, attempts)
}

/// A client for `fake` with the right token, [`quick_retries`] and the default budget.
pub fn client(fake: &FakeCloudflare) -> (Client, Attempts) {
    client_with(
        fake,
        TOKEN,
        quick_retries(),
        BudgetConfig::default(),
        Duration::from_secs(10),
    )
}
