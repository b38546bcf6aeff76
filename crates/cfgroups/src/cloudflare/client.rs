//! The Cloudflare user groups API client: every operation cfgroups performs, each request
//! passing through the shared request budget and the retry policy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backon::Retryable;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use reqwest::redirect;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::base_url::BaseUrl;
use super::budget::{Budget, BudgetConfig, Permit, ServerSignals, parse_policy, parse_ratelimit};
use super::credentials::Credentials;
use super::envelope::ResultInfo;
use super::envelope::{ApiErrors, Envelope};
use super::error::{Error, LastFailure, TransportKind};
use super::observer::{NoopObserver, RequestEvent, RequestObserver};
use super::pager::{MAX_RELISTS, Next, PER_PAGE, PageItem, Pager};
use super::retry::{RetryPolicy, parse_retry_after};
use super::route::Route;
use crate::model::{AccountId, DeletionOutcome, GroupId, ObservedGroup};

/// The `User-Agent` every request carries.
pub const DEFAULT_USER_AGENT: &str = concat!("cfgroups/", env!("CARGO_PKG_VERSION"));

/// The largest response body read; anything larger is refused rather than buffered.
/// A page of 500 groups with policies is well under 5 MiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Pages of one listing fetched at once, once page 1 has said how many there are: enough
/// to hide the network's latency, few enough to stay well under Cloudflare's 200 requests
/// per second per IP when many accounts are listed together.
pub const PAGES_AT_ONCE: usize = 8;

/// How the client reaches Cloudflare. Build with [`ClientConfig::new`] for the defaults.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API base. Default [`DEFAULT_BASE_URL`](super::DEFAULT_BASE_URL); the CLI overrides
    /// it from `CLOUDFLARE_BASE_URL` / `--api-base-url` (as Cloudflare's SDKs do), and plain
    /// http is refused except to loopback.
    pub base_url: BaseUrl,
    /// Who to authenticate as.
    pub credentials: Credentials,
    /// Time allowed to establish a connection (TCP + TLS). Default 10 s: Cloudflare's edge
    /// answers in milliseconds, so a longer wait means a network problem worth retrying.
    pub connect_timeout: Duration,
    /// Time allowed for one attempt, from sending to the end of the body. Default 30 s:
    /// generous for a 500-item page, short enough that a hung connection is retried well
    /// inside the retry deadline.
    pub request_timeout: Duration,
    /// When to retry. Default [`RetryPolicy::default`].
    pub retry: RetryPolicy,
    /// The shared request budget. Default [`BudgetConfig::default`].
    pub budget: BudgetConfig,
    /// Default `cfgroups/<version>`, so Cloudflare's audit logs show what made a change.
    pub user_agent: String,
}

impl ClientConfig {
    /// The defaults, with `credentials`.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            base_url: BaseUrl::default(),
            credentials,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            budget: BudgetConfig::default(),
            user_agent: DEFAULT_USER_AGENT.to_owned(),
        }
    }
}

/// A Cloudflare API client. Cheap to clone; clones share the connection pool, the request
/// budget and the observer.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: BaseUrl,
    credentials: Credentials,
    retry: RetryPolicy,
    budget: Budget,
    observer: Arc<dyn RequestObserver>,
    /// Whether the API's being unreachable was said since the last answer: said at the first
    /// failed attempt, not after the retries (which can take a minute), and once, not per
    /// account.
    unreachable_said: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("credentials", &self.inner.credentials)
            .field("retry", &self.inner.retry)
            .field("budget", &self.inner.budget)
            .finish_non_exhaustive()
    }
}

/// A successful response, its `result` typed as the caller asked.
struct Reply<T> {
    envelope: Envelope<T>,
}

/// One attempt's result, with what the retry loop needs to know about it.
struct Attempt<T> {
    result: Result<Reply<T>, Error>,
    status: Option<u16>,
    retry_after: Option<Duration>,
}

/// What one operation's attempts have learnt so far, shared by the attempt and backon's
/// hooks (which run one after the other, never at once).
struct Tries {
    /// When the operation started.
    started: Instant,
    /// The operation's deadline, before time spent waiting in the budget is added.
    deadline: Duration,
    state: std::sync::Mutex<TriesState>,
}

#[derive(Default)]
struct TriesState {
    attempts: u32,
    /// Time spent waiting for the request budget (a full window, a lockout): not the
    /// operation's own time, so it does not count against its deadline.
    budget_wait: Duration,
    /// The last answer's `Retry-After`.
    retry_after: Option<Duration>,
    /// The last failed attempt, once the next one is under way.
    last: Option<LastFailure>,
    /// The retry that the deadline did not leave time for.
    gave_up_before: Option<Duration>,
}

impl Tries {
    fn new(deadline: Duration) -> Self {
        Self {
            started: Instant::now(),
            deadline,
            state: std::sync::Mutex::default(),
        }
    }

    /// The instant the operation must be done by: its deadline after it started, pushed
    /// back by every wait for the budget.
    fn deadline(&self) -> Instant {
        self.started + self.deadline + self.state().budget_wait
    }

    fn waited(&self, wait: Duration) {
        self.state().budget_wait += wait;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TriesState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a new attempt and returns its number (1 for the first).
    fn start(&self) -> u32 {
        let mut state = self.state();
        state.attempts += 1;
        state.attempts
    }

    fn count(&self) -> u32 {
        self.state().attempts
    }

    /// The answer's `Retry-After`, to be honoured by the next retry's delay. A 429's is
    /// not: the budget holds every request for it, outside the deadline.
    fn answered(&self, status: Option<u16>, retry_after: Option<Duration>) {
        self.state().retry_after = retry_after.filter(|_| status != Some(429));
    }

    fn retry_after(&self) -> Option<Duration> {
        self.state().retry_after
    }

    fn remember(&self, err: &Error) {
        self.state().last = Some(LastFailure::from(err));
    }

    fn last(&self) -> Option<Box<LastFailure>> {
        self.state().last.clone().map(Box::new)
    }

    fn give_up_before(&self, delay: Duration) {
        self.state().gave_up_before = Some(delay);
    }

    fn gave_up_before(&self) -> Option<Duration> {
        self.state().gave_up_before
    }
}

impl Client {
    /// A client with a budget of its own and no observer.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let budget = Budget::new(config.budget.clone());
        Self::with_parts(config, budget, Arc::new(NoopObserver))
    }

    /// A client that shares `budget` (e.g. with other clients using the same token) and
    /// reports every attempt to `observer`. `config.budget` is ignored.
    pub fn with_parts(
        config: ClientConfig,
        budget: Budget,
        observer: Arc<dyn RequestObserver>,
    ) -> Result<Self, Error> {
        // reqwest is built without a default crypto provider; installing one twice is
        // harmless (the second call reports the first one is in place).
        let _ = rustls::crypto::ring::default_provider().install_default();

        let mut headers: HeaderMap = config.credentials.headers();
        let user_agent = HeaderValue::from_str(&config.user_agent)
            .map_err(|_| Error::InvalidUserAgent(config.user_agent.clone()))?;
        headers.insert(USER_AGENT, user_agent);

        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A redirect could carry the X-Auth-Key header to another host; Cloudflare's
            // API never redirects, so none is followed.
            .redirect(redirect::Policy::none());
        if config.base_url.is_loopback() {
            builder = builder.no_proxy();
        } else {
            builder = builder.https_only(true);
        }
        let http = builder.build().map_err(Error::ClientBuild)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base_url: config.base_url,
                credentials: config.credentials,
                retry: config.retry,
                budget,
                observer,
                unreachable_said: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// Says at once, as a warning, that the API cannot be reached and why, while the retries
    /// go on; an answer resets it, so that the next outage is said too.
    fn say_unreachable(&self, err: &Error, deadline: Duration) {
        use std::sync::atomic::Ordering;
        if let Some(unreachable) = err.unreachable()
            && !self.inner.unreachable_said.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                endpoint = %unreachable.endpoint,
                "{unreachable}; retrying for up to {}s",
                deadline.as_secs()
            );
        }
    }

    /// The request budget, for metrics.
    pub fn budget(&self) -> &Budget {
        &self.inner.budget
    }

    /// The API base this client talks to.
    pub fn base_url(&self) -> &BaseUrl {
        &self.inner.base_url
    }

    /// Every user group of `account`, paginated 500 at a time. Fails, rather than returning
    /// a partial view, when the pages disagree with `total_count` or repeat a group.
    pub async fn list_groups(&self, account: &AccountId) -> Result<Vec<ObservedGroup>, Error> {
        let route = Route::ListGroups {
            account: account.clone(),
        };
        self.list_all(&route, &[]).await
    }

    /// The account's name (`GET /accounts/{account_id}`), what people call it; `None` when
    /// the answer has none.
    pub async fn account_name(&self, account: &AccountId) -> Result<Option<String>, Error> {
        let route = Route::GetAccount {
            account: account.clone(),
        };
        /// Just the account object's name; every other field is skipped.
        #[derive(serde::Deserialize)]
        struct Account {
            #[serde(default)]
            name: Option<String>,
        }
        let reply = self.send::<Account>(&route, &[], None).await?;
        Ok(reply
            .envelope
            .result
            .and_then(|account| account.name)
            .filter(|name| !name.trim().is_empty()))
    }

    /// Every group of `account` named exactly `name` (the list endpoint's `name` filter), so
    /// that a deletion by name can be confirmed to hit the only group of that name.
    pub async fn groups_named(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Vec<ObservedGroup>, Error> {
        let route = Route::ListGroups {
            account: account.clone(),
        };
        let groups: Vec<ObservedGroup> =
            self.list_all(&route, &[("name", name.to_owned())]).await?;
        // The filter is the server's; what it returns is checked here.
        match groups.iter().find(|group| group.name != name) {
            Some(other) => Err(Error::Decode {
                route,
                status: 200,
                message: format!(
                    "asked for groups named {name:?}, got group {} named {:?}",
                    other.id, other.name
                ),
            }),
            None => Ok(groups),
        }
    }

    /// One group as Cloudflare has it now, or `None` on 404.
    pub async fn get_group(
        &self,
        account: &AccountId,
        group: &GroupId,
    ) -> Result<Option<ObservedGroup>, Error> {
        let route = Route::GetGroup {
            account: account.clone(),
            group: group.clone(),
        };
        match self.send::<ObservedGroup>(&route, &[], None).await {
            Ok(reply) => {
                let found = reply.envelope.result.ok_or_else(|| Error::Decode {
                    route: route.clone(),
                    status: 200,
                    message: format!("group {group}: the answer holds no group object"),
                })?;
                if found.id != *group {
                    return Err(Error::Decode {
                        route,
                        status: 200,
                        message: format!(
                            "expected the group object with id {group}, got id {}",
                            found.id
                        ),
                    });
                }
                Ok(Some(found))
            }
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Every member of a group, as opaque JSON objects, paginated like
    /// [`list_groups`](Self::list_groups).
    pub async fn list_members(
        &self,
        account: &AccountId,
        group: &GroupId,
    ) -> Result<Vec<Value>, Error> {
        let route = Route::ListMembers {
            account: account.clone(),
            group: group.clone(),
        };
        self.list_all(&route, &[]).await
    }

    /// Deletes a group: [`DeletionOutcome::Deleted`], or [`DeletionOutcome::AlreadyAbsent`]
    /// on a 404 (it is already gone, which is what was wanted). Failures are the `Err`.
    pub async fn delete_group(
        &self,
        account: &AccountId,
        group: &GroupId,
    ) -> Result<DeletionOutcome, Error> {
        let route = Route::DeleteGroup {
            account: account.clone(),
            group: group.clone(),
        };
        match self.send::<IgnoredAny>(&route, &[], None).await {
            Ok(_) => Ok(DeletionOutcome::Deleted),
            Err(err) if is_not_found(&err) => {
                tracing::info!(
                    %account, %group, codes = ?err.codes(),
                    "group already absent (HTTP 404 on delete)"
                );
                Ok(DeletionOutcome::AlreadyAbsent)
            }
            Err(err) => Err(err),
        }
    }

    /// Creates a group with `policies`: the JSON text of the array Cloudflare documents,
    /// sent as it is. Not idempotent: retried only when the server cannot have acted on the
    /// request.
    pub async fn create_group(
        &self,
        account: &AccountId,
        name: &str,
        policies: &RawValue,
    ) -> Result<ObservedGroup, Error> {
        #[derive(Serialize)]
        struct CreateBody<'a> {
            name: &'a str,
            policies: &'a RawValue,
        }
        let route = Route::CreateGroup {
            account: account.clone(),
        };
        let body = encode(&route, &CreateBody { name, policies })?;
        let reply = self.send::<ObservedGroup>(&route, &[], Some(&body)).await?;
        reply.envelope.result.ok_or_else(|| Error::Decode {
            route,
            status: 200,
            message: "created group: the answer holds no group object".to_owned(),
        })
    }

    /// Adds account members (by member id) to a group.
    pub async fn add_members(
        &self,
        account: &AccountId,
        group: &GroupId,
        member_ids: &[String],
    ) -> Result<(), Error> {
        let route = Route::AddMembers {
            account: account.clone(),
            group: group.clone(),
        };
        let body = Value::Array(member_ids.iter().map(|id| json!({ "id": id })).collect());
        let body = encode(&route, &body)?;
        self.send::<IgnoredAny>(&route, &[], Some(&body))
            .await
            .map(drop)
    }

    /// Every item of a paginated list, `filter` added to each page's query, each page read
    /// straight into typed items. A listing whose pages do not parse or do not add up is
    /// asked for again, up to [`MAX_RELISTS`] times: the next answer is usually sound.
    async fn list_all<T: DeserializeOwned + PageItem + Send>(
        &self,
        route: &Route,
        filter: &[(&str, String)],
    ) -> Result<Vec<T>, Error> {
        let mut relists = 0;
        loop {
            match self.list_once(route, filter).await {
                Err(err) if err.is_unsound_listing() && relists < MAX_RELISTS => {
                    relists += 1;
                    tracing::warn!(%route, relist = relists, error = %err, "the listing does not add up: listing again");
                }
                result => return result,
            }
        }
    }

    /// One listing: page 1, then either every other page at once (page 1 gave
    /// `total_count`) or one page after another, checked together by the [`Pager`].
    async fn list_once<T: DeserializeOwned + PageItem + Send>(
        &self,
        route: &Route,
        filter: &[(&str, String)],
    ) -> Result<Vec<T>, Error> {
        let inconsistent = |detail| Error::InconsistentListing {
            route: route.clone(),
            detail,
        };
        let mut pager = Pager::new(PER_PAGE);
        let per_page = pager.per_page();
        let mut items = Vec::new();
        let mut page = 1;
        loop {
            let (page_items, info) = self.fetch_page::<T>(route, filter, page, per_page).await?;
            let next = pager
                .accept(page, page_items.iter().map(PageItem::page_id), info)
                .map_err(inconsistent)?;
            items.extend(page_items);
            match next {
                Next::Done => return Ok(items),
                // Only pages fetched together leave others pending; never one in order.
                Next::Pending => {
                    return Err(inconsistent(format!("page {page} left pages unasked for")));
                }
                Next::Page(following) => page = following,
                Next::Pages(rest) => {
                    let mut pages = futures_util::stream::iter(rest)
                        .map(|page| async move {
                            (
                                page,
                                self.fetch_page::<T>(route, filter, page, per_page).await,
                            )
                        })
                        .buffer_unordered(PAGES_AT_ONCE);
                    let mut by_page = BTreeMap::new();
                    while let Some((page, fetched)) = pages.next().await {
                        let (page_items, info) = fetched?;
                        pager
                            .accept(page, page_items.iter().map(PageItem::page_id), info)
                            .map_err(inconsistent)?;
                        by_page.insert(page, page_items);
                    }
                    pager.finish().map_err(inconsistent)?;
                    items.extend(by_page.into_values().flatten());
                    return Ok(items);
                }
            }
        }
    }

    /// Page `page` of a listing, read straight into typed items, and its `result_info`.
    async fn fetch_page<T: DeserializeOwned>(
        &self,
        route: &Route,
        filter: &[(&str, String)],
        page: u64,
        per_page: u64,
    ) -> Result<(Vec<T>, Option<ResultInfo>), Error> {
        let mut query = vec![
            ("page", page.to_string()),
            ("per_page", per_page.to_string()),
        ];
        query.extend(filter.iter().cloned());
        let reply = self.send::<Vec<T>>(route, &query, None).await?;
        match reply.envelope.result {
            Some(items) => Ok((items, reply.envelope.result_info)),
            None => Err(Error::Decode {
                route: route.clone(),
                status: 200,
                message: format!("page {page}: result is not a list but null"),
            }),
        }
    }

    /// Sends one request with retries (backon drives them: which errors, how long between
    /// attempts, when to stop), every attempt under the budget and the operation's deadline.
    /// Time spent waiting for the budget does not count against the deadline.
    async fn send<T: DeserializeOwned>(
        &self,
        route: &Route,
        query: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Reply<T>, Error> {
        let policy = &self.inner.retry;
        let tries = Tries::new(policy.deadline);
        let result = (|| self.attempt_before(&tries, route, query, body))
            .retry(policy)
            .sleep(tokio::time::sleep)
            .when(|err: &Error| {
                err.is_retryable_on(route)
                    && (route.is_idempotent() || err.certainly_not_processed())
            })
            .adjust(|err: &Error, backoff: Option<Duration>| {
                let Some(backoff) = backoff else {
                    tracing::warn!(%route, attempts = tries.count(), error = %err, "giving up: retries exhausted");
                    return None;
                };
                let delay = policy.delay_before_retry(backoff, tries.retry_after());
                if Instant::now() + delay > tries.deadline() {
                    tries.give_up_before(delay);
                    return None;
                }
                Some(delay)
            })
            .notify(|err: &Error, delay: Duration| {
                self.say_unreachable(err, policy.deadline);
                tracing::debug!(
                    %route, attempt = tries.count(), delay_ms = delay.as_millis() as u64, error = %err,
                    "retrying"
                );
                tries.remember(err);
            })
            .await;
        match (result, tries.gave_up_before()) {
            (Err(err), Some(delay)) => Err(Error::DeadlineExceeded {
                route: route.clone(),
                deadline: policy.deadline,
                attempts: tries.count(),
                waiting: format!("for a retry in {:.1}s", delay.as_secs_f64()),
                last: Some(Box::new(LastFailure::from(&err))),
            }),
            (result, _) => result,
        }
    }

    /// One attempt, admitted by the budget and answered before the deadline, reported to the
    /// observer.
    async fn attempt_before<T: DeserializeOwned>(
        &self,
        tries: &Tries,
        route: &Route,
        query: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Reply<T>, Error> {
        let policy = &self.inner.retry;
        let waiting_since = Instant::now();
        let permit = match self.inner.budget.acquire().await {
            Ok(permit) => permit,
            Err(source) => {
                return Err(Error::RateLimitWait {
                    route: route.clone(),
                    source,
                    attempts: tries.count(),
                    last: tries.last(),
                });
            }
        };
        tries.waited(waiting_since.elapsed());
        let attempt = tries.start();
        let started = Instant::now();
        let outcome =
            tokio::time::timeout_at(tries.deadline(), self.attempt(route, query, body, permit))
                .await
                .map_err(|_| Error::DeadlineExceeded {
                    route: route.clone(),
                    deadline: policy.deadline,
                    attempts: tries.count(),
                    waiting: "for the response".to_owned(),
                    last: tries.last(),
                })?;
        self.inner.observer.on_request(&RequestEvent {
            method: route.method(),
            route: route.kind(),
            status: outcome.status,
            attempt,
            retry: attempt > 1,
            rate_limited: outcome.status == Some(429),
            elapsed: started.elapsed(),
        });
        tries.answered(outcome.status, outcome.retry_after);
        outcome.result
    }

    /// One attempt: send, read, tell the budget what the answer said, classify.
    async fn attempt<T: DeserializeOwned>(
        &self,
        route: &Route,
        query: &[(&str, String)],
        body: Option<&[u8]>,
        permit: Permit,
    ) -> Attempt<T> {
        let failed = |result: Error| Attempt {
            result: Err(result),
            status: None,
            retry_after: None,
        };
        let url = match self.inner.base_url.join(&route.path()) {
            Ok(url) => url,
            Err(err) => return failed(err),
        };
        let mut request = self.inner.http.request(route.method(), url);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(err) => return failed(transport(route, err)),
        };
        self.inner
            .unreachable_said
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let status = response.status().as_u16();
        let headers = response.headers();
        let retry_after = header_text(headers, RETRY_AFTER.as_str())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        permit.answered(&ServerSignals {
            status,
            ratelimit: header_text(headers, "ratelimit").and_then(parse_ratelimit),
            policies: header_text(headers, "ratelimit-policy")
                .map(parse_policy)
                .unwrap_or_default(),
            retry_after,
        });

        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                        return Attempt {
                            result: Err(Error::Decode {
                                route: route.clone(),
                                status,
                                message: format!("body larger than {MAX_BODY_BYTES} bytes"),
                            }),
                            status: Some(status),
                            retry_after,
                        };
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(err) => {
                    return Attempt {
                        result: Err(transport(route, err)),
                        status: Some(status),
                        retry_after,
                    };
                }
            }
        }
        Attempt {
            result: self.classify(route, status, &bytes, retry_after),
            status: Some(status),
            retry_after,
        }
    }

    fn classify<T: DeserializeOwned>(
        &self,
        route: &Route,
        status: u16,
        bytes: &[u8],
        retry_after: Option<Duration>,
    ) -> Result<Reply<T>, Error> {
        let scrub = |text: &str| self.inner.credentials.redact(text);
        // A failure's payload does not matter: only its errors are read.
        let errors = || {
            serde_json::from_slice::<Envelope<IgnoredAny>>(bytes)
                .map(|envelope| ApiErrors(envelope.errors).scrubbed(&scrub))
                .unwrap_or_default()
        };
        match status {
            200..=299 => match decode::<T>(bytes) {
                Ok(envelope) if envelope.success && envelope.errors.is_empty() => {
                    Ok(Reply { envelope })
                }
                // An answer that contradicts itself is not trusted either way.
                Ok(envelope) if envelope.success => Err(Error::Decode {
                    route: route.clone(),
                    status,
                    message: format!(
                        "the answer says success but carries errors: {}",
                        ApiErrors(envelope.errors).scrubbed(&scrub)
                    ),
                }),
                Ok(envelope) => Err(Error::Api {
                    route: route.clone(),
                    status,
                    errors: ApiErrors(envelope.errors).scrubbed(&scrub),
                }),
                Err(message) => match serde_json::from_slice::<Envelope<IgnoredAny>>(bytes) {
                    // A failure whose payload is not the expected shape is still a failure.
                    Ok(envelope) if !envelope.success => Err(Error::Api {
                        route: route.clone(),
                        status,
                        errors: ApiErrors(envelope.errors).scrubbed(&scrub),
                    }),
                    _ => Err(Error::Decode {
                        route: route.clone(),
                        status,
                        message: scrub(&message),
                    }),
                },
            },
            429 => Err(Error::RateLimited {
                route: route.clone(),
                retry_after,
                errors: errors(),
            }),
            _ => Err(Error::Api {
                route: route.clone(),
                status,
                errors: errors(),
            }),
        }
    }
}

/// Reads a response body as an envelope around a `T`, in one pass. Only a body that does
/// not parse is read again, with the field path tracked, to name the mistake, e.g.
/// `result[3].id: user group id "x" is not 32 lowercase hexadecimal characters at line 1
/// column 2040`.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<Envelope<T>, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed =
        Envelope::<T>::deserialize(&mut de).and_then(|envelope| de.end().map(|()| envelope));
    parsed.map_err(|first| {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize::<_, Envelope<T>>(&mut de) {
            Err(err) if err.path().to_string() != "." => format!("{}: {}", err.path(), err.inner()),
            _ => first.to_string(),
        }
    })
}

/// A request body as JSON bytes, encoded once for every attempt.
fn encode(route: &Route, body: &impl Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(body).map_err(|source| Error::Encode {
        route: route.clone(),
        source,
    })
}

fn is_not_found(err: &Error) -> bool {
    matches!(err, Error::Api { status: 404, .. })
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn transport(route: &Route, source: reqwest::Error) -> Error {
    let kind = if source.is_timeout() {
        TransportKind::Timeout
    } else if source.is_connect() {
        TransportKind::Connect
    } else if source.is_builder() || source.is_redirect() {
        TransportKind::Other
    } else {
        TransportKind::Connection
    };
    Error::Transport {
        route: route.clone(),
        kind,
        source,
    }
}
