//! The Cloudflare user groups API client: every operation cfgroups performs, each request
//! passing through the shared request budget and the retry policy.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backon::Retryable;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use reqwest::redirect;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::base_url::BaseUrl;
use super::budget::{Budget, BudgetConfig, RateLimitHeader, parse_ratelimit};
use super::credentials::Credentials;
use super::envelope::{ApiErrors, Envelope};
use super::error::{Error, LastFailure, TransportKind};
use super::observer::{NoopObserver, RequestEvent, RequestObserver};
use super::pager::{Next, PER_PAGE, Pager};
use super::retry::{RetryPolicy, parse_retry_after};
use super::route::Route;
use crate::model::{AccountId, DeletionOutcome, GroupId, ObservedGroup};

/// The `User-Agent` every request carries.
pub const DEFAULT_USER_AGENT: &str = concat!("cfgroups/", env!("CARGO_PKG_VERSION"));

/// The largest response body read; anything larger is refused rather than buffered.
/// A page of 500 groups with policies is well under 5 MiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

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

/// A successful response.
struct Reply {
    envelope: Envelope,
}

/// One attempt's result, with what the retry loop needs to know about it.
struct Attempt {
    result: Result<Reply, Error>,
    status: Option<u16>,
    retry_after: Option<Duration>,
}

/// What one operation's attempts have learnt so far, shared by the attempt and backon's
/// hooks (which run one after the other, never at once).
#[derive(Default)]
struct Tries {
    state: std::sync::Mutex<TriesState>,
}

#[derive(Default)]
struct TriesState {
    attempts: u32,
    /// The last answer's `Retry-After`.
    retry_after: Option<Duration>,
    /// The last failed attempt, once the next one is under way.
    last: Option<LastFailure>,
    /// The retry that the deadline did not leave time for.
    gave_up_before: Option<Duration>,
}

impl Tries {
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

    fn answered(&self, retry_after: Option<Duration>) {
        self.state().retry_after = retry_after;
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
        let items = self.list_all(&route, &[]).await?;
        groups_from(&route, items)
    }

    /// The account's name (`GET /accounts/{account_id}`), what people call it; `None` when
    /// the answer has none.
    pub async fn account_name(&self, account: &AccountId) -> Result<Option<String>, Error> {
        let route = Route::GetAccount {
            account: account.clone(),
        };
        let reply = self.send(&route, &[], None).await?;
        Ok(reply
            .envelope
            .result
            .as_ref()
            .and_then(|result| result.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
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
        let items = self.list_all(&route, &[("name", name.to_owned())]).await?;
        let groups = groups_from(&route, items)?;
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
        match self.send(&route, &[], None).await {
            Ok(reply) => {
                let result = reply.envelope.result.unwrap_or(Value::Null);
                let found: ObservedGroup =
                    serde_json::from_value(result).map_err(|err| Error::Decode {
                        route: route.clone(),
                        status: 200,
                        message: format!("group {group}: {err}"),
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
        match self.send(&route, &[], None).await {
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

    /// Creates a group with `policies` (the JSON array Cloudflare documents). Not
    /// idempotent: retried only when the server cannot have acted on the request.
    pub async fn create_group(
        &self,
        account: &AccountId,
        name: &str,
        policies: Value,
    ) -> Result<ObservedGroup, Error> {
        let route = Route::CreateGroup {
            account: account.clone(),
        };
        let body = json!({ "name": name, "policies": policies });
        let reply = self.send(&route, &[], Some(&body)).await?;
        let result = reply.envelope.result.unwrap_or(Value::Null);
        serde_json::from_value(result).map_err(|err| Error::Decode {
            route,
            status: 200,
            message: format!("created group: {err}"),
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
        self.send(&route, &[], Some(&body)).await.map(drop)
    }

    /// Every item of a paginated list, `filter` added to each page's query.
    async fn list_all(
        &self,
        route: &Route,
        filter: &[(&str, String)],
    ) -> Result<Vec<Value>, Error> {
        let mut pager = Pager::new(PER_PAGE);
        let mut items = Vec::new();
        loop {
            let mut query = vec![
                ("page", pager.page().to_string()),
                ("per_page", pager.per_page().to_string()),
            ];
            query.extend(filter.iter().cloned());
            let reply = self.send(route, &query, None).await?;
            let page_items = match reply.envelope.result {
                Some(Value::Array(page_items)) => page_items,
                other => {
                    return Err(Error::Decode {
                        route: route.clone(),
                        status: 200,
                        message: format!(
                            "page {}: result is not a list but {}",
                            pager.page(),
                            json_kind(other.as_ref())
                        ),
                    });
                }
            };
            let ids = page_items
                .iter()
                .map(|item| item.get("id").and_then(Value::as_str));
            let next = pager
                .accept(ids, reply.envelope.result_info)
                .map_err(|detail| Error::InconsistentListing {
                    route: route.clone(),
                    detail,
                })?;
            items.extend(page_items);
            if next == Next::Done {
                return Ok(items);
            }
        }
    }

    /// Sends one request with retries (backon drives them: which errors, how long between
    /// attempts, when to stop), every attempt under the budget and the operation's deadline.
    async fn send(
        &self,
        route: &Route,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, Error> {
        let policy = &self.inner.retry;
        let deadline = Instant::now() + policy.deadline;
        let tries = Tries::default();
        let result = (|| self.attempt_before(deadline, &tries, route, query, body))
            .retry(policy)
            .sleep(tokio::time::sleep)
            .when(|err: &Error| {
                err.is_retryable() && (route.is_idempotent() || err.certainly_not_processed())
            })
            .adjust(|err: &Error, backoff: Option<Duration>| {
                let Some(backoff) = backoff else {
                    tracing::warn!(%route, attempts = tries.count(), error = %err, "giving up: retries exhausted");
                    return None;
                };
                let delay = policy.delay_before_retry(backoff, tries.retry_after());
                if Instant::now() + delay > deadline {
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

    /// One attempt, admitted by the budget and answered before `deadline`, reported to the
    /// observer.
    async fn attempt_before(
        &self,
        deadline: Instant,
        tries: &Tries,
        route: &Route,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, Error> {
        let policy = &self.inner.retry;
        let exceeded = |waiting: String| Error::DeadlineExceeded {
            route: route.clone(),
            deadline: policy.deadline,
            attempts: tries.count(),
            waiting,
            last: tries.last(),
        };
        if let Err(wait) = self.inner.budget.acquire(Some(deadline)).await {
            return Err(exceeded(wait.to_string()));
        }
        let attempt = tries.start();
        let started = Instant::now();
        let outcome = tokio::time::timeout_at(deadline, self.attempt(route, query, body))
            .await
            .map_err(|_| exceeded("for the response".to_owned()))?;
        self.inner.observer.on_request(&RequestEvent {
            method: route.method(),
            route: route.kind(),
            status: outcome.status,
            attempt,
            retry: attempt > 1,
            rate_limited: outcome.status == Some(429),
            elapsed: started.elapsed(),
        });
        tries.answered(outcome.retry_after);
        outcome.result
    }

    /// One attempt: send, read, feed the budget, classify.
    async fn attempt(
        &self,
        route: &Route,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Attempt {
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
            request = request.json(body);
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
        let ratelimit = header_text(headers, "ratelimit").and_then(parse_ratelimit);
        let retry_after = header_text(headers, RETRY_AFTER.as_str())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        self.feed_budget(status, ratelimit, retry_after);

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

    fn feed_budget(
        &self,
        status: u16,
        ratelimit: Option<RateLimitHeader>,
        retry_after: Option<Duration>,
    ) {
        let budget = &self.inner.budget;
        if status == 429 {
            budget.on_rate_limited(retry_after, ratelimit);
        } else if let Some(header) = ratelimit {
            budget.observe(header);
        }
    }

    fn classify(
        &self,
        route: &Route,
        status: u16,
        bytes: &[u8],
        retry_after: Option<Duration>,
    ) -> Result<Reply, Error> {
        let scrub = |text: &str| self.inner.credentials.redact(text);
        let parsed = serde_json::from_slice::<Envelope>(bytes);
        let errors = |parsed: Result<Envelope, serde_json::Error>| {
            parsed
                .map(|envelope| ApiErrors(envelope.errors).scrubbed(&scrub))
                .unwrap_or_default()
        };
        match status {
            200..=299 => match parsed {
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
                Err(err) => Err(Error::Decode {
                    route: route.clone(),
                    status,
                    message: scrub(&err.to_string()),
                }),
            },
            429 => Err(Error::RateLimited {
                route: route.clone(),
                retry_after,
                errors: errors(parsed),
            }),
            _ => Err(Error::Api {
                route: route.clone(),
                status,
                errors: errors(parsed),
            }),
        }
    }
}

/// Parses listed group objects, naming the first one that does not parse.
fn groups_from(route: &Route, items: Vec<Value>) -> Result<Vec<ObservedGroup>, Error> {
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            serde_json::from_value(item).map_err(|err| Error::Decode {
                route: route.clone(),
                status: 200,
                message: format!("group #{index}: {err}"),
            })
        })
        .collect()
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

fn json_kind(value: Option<&Value>) -> &'static str {
    match value {
        None | Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "a string",
        Some(Value::Array(_)) => "a list",
        Some(Value::Object(_)) => "an object",
    }
}
