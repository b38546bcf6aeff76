//! A stateful local fake of Cloudflare's IAM user-groups API, for tests and local runs: the
//! server handle, its builder, and starting and stopping it.
//!
//! It shares no code with the client it tests: its ids, its state file and its responses
//! are its own, written from the API's documentation, so a parsing mistake on either side
//! shows up as a disagreement.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cfgroups_fake::FakeError> {
//! use std::time::Duration;
//! use cfgroups_fake::{FakeCloudflare, FakeState, Fault, Route};
//!
//! let account = "023e105f4ecef8ad9ca31a8372d0c353";
//! let fake = FakeCloudflare::builder()
//!     .token("test-token")
//!     .rate_limit(100, Duration::from_secs(2))
//!     .state(FakeState::new().with_generated_groups(account, 250, 1))
//!     .start()
//!     .await?;
//! println!("export CLOUDFLARE_BASE_URL={}", fake.base_url());
//! fake.inject(Fault::Status(503).on(Route::List).times(2));
//! // ... run the client ...
//! assert_eq!(fake.groups(account).len(), 250);
//! fake.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Behaviour choices where the reference leaves room (each is documented in its module):
//! - a well-formed account id the fake does not hold answers 403 `9109` ("Unauthorized to
//!   access requested resource"), what the API says for an account the credentials cannot
//!   see; a malformed account or group id answers 400 `7003` + `7000` (it does not route);
//!   a missing group answers 404 (code `1003`, the fake's choice);
//! - `GET /accounts/{account_id}` answers the account object; its `name` comes from the state
//!   file, or is `Account <account id>` when the file gives none;
//! - `PUT .../members` keeps members already in the group in their place and appends new ones
//!   in request order; `DELETE .../members/{member_id}` answers the removed member, and 404
//!   when the group does not hold it;
//! - the rate limit is a sliding window over every request, stricter than a fixed one; the
//!   request that finds it full starts a lockout (default: one window) during which
//!   everything gets 429, after which the window starts empty;
//! - a dropped connection closes the socket before any response byte: the client sees a
//!   connection error (hyper's "connection closed before message completed");
//! - a group provisioned by SCIM (`"scim": true` in the state file, [`FakeGroup::scim_managed`])
//!   is listed and read as any other, but every change to it is a 403 with code
//!   [`envelope::CODE_SCIM_MANAGED`] (`1010`, the fake's choice: the real answer is
//!   undocumented) and a message naming SCIM, every time;
//! - a read-only token ([`FakeCloudflareBuilder::read_only_token`]) reads, and gets 403
//!   `10000` "Authentication error" for anything else, as a token without "Account Settings
//!   Write" does;
//! - duplicate group names are allowed (creating one does not fail), so tests can set up
//!   ambiguous names;
//! - with [`FakeCloudflareBuilder::persist_to`] the state file is rewritten after every
//!   mutation.
//!
//! Module map: `state` (the store and saving it), `state_file` (reading the state file),
//! `generate` (real-shaped groups for benchmarks and fixtures),
//! `ids` (id checks), `routes` (endpoints), [`pagination`], `auth` (credential checks),
//! [`limits`] (rate limit and headers), `faults`, `accounting` (request counts and log),
//! [`envelope`] (response shapes and error codes), and `server` (the connection loop and
//! request pipeline).

mod accounting;
mod auth;
pub mod envelope;
mod faults;
mod generate;
mod ids;
pub mod limits;
pub mod pagination;
mod routes;
mod server;
mod state;
mod state_file;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub use accounting::{RequestRecord, Requests};
pub use axum::http::Method;
pub use faults::{Fault, FaultSpec, default_chaos_faults};
pub use ids::{Id, InvalidId};
pub use routes::{API_PREFIX, Route};
pub use state::{DEFAULT_TIMESTAMP, FakeAccount, FakeGroup, FakeMember, FakeState, SaveError};
pub use state_file::{FORMAT_VERSION, LoadError};

use auth::Credentials;
use faults::FaultPlan;
use limits::RateLimiter;
use server::{Shared, lock};
use state::Store;

/// Why the fake could not start or save.
#[derive(Debug, Error)]
pub enum FakeError {
    #[error("fake API: refusing to listen on {0}: only loopback addresses are allowed")]
    NotLoopback(SocketAddr),
    #[error("fake API: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("fake API: invalid rate limit: {0}")]
    RateLimit(String),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Save(#[from] SaveError),
}

/// How to start a [`FakeCloudflare`]; see [`FakeCloudflare::builder`].
#[derive(Debug)]
pub struct FakeCloudflareBuilder {
    credentials: Credentials,
    limit: u32,
    window: Duration,
    lockout: Option<Duration>,
    latency: Duration,
    state: FakeState,
    listen: SocketAddr,
    seed: Option<u64>,
    persist: Option<PathBuf>,
}

impl Default for FakeCloudflareBuilder {
    fn default() -> Self {
        Self {
            credentials: Credentials::default(),
            limit: limits::DEFAULT_LIMIT,
            window: limits::DEFAULT_WINDOW,
            lockout: None,
            latency: Duration::ZERO,
            state: FakeState::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: None,
            persist: None,
        }
    }
}

impl FakeCloudflareBuilder {
    /// Accepts `Authorization: Bearer <token>` (may be given several times).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.credentials.add_token(token.into());
        self
    }

    /// Accepts `Authorization: Bearer <token>` for reading only, as a token with "Account
    /// Settings Read" but not "Write": every `GET` is answered, anything else is a 403
    /// `10000` (may be given several times).
    pub fn read_only_token(mut self, token: impl Into<String>) -> Self {
        self.credentials.add_read_only_token(token.into());
        self
    }

    /// Accepts `X-Auth-Email: <email>` + `X-Auth-Key: <key>` (may be given several times).
    pub fn api_key(mut self, email: impl Into<String>, key: impl Into<String>) -> Self {
        self.credentials.add_key(email.into(), key.into());
        self
    }

    /// At most `limit` requests in any sliding `window` (default 1200 per 300 s).
    pub fn rate_limit(mut self, limit: u32, window: Duration) -> Self {
        self.limit = limit;
        self.window = window;
        self
    }

    /// How long every request is refused once the limit is exceeded (default: the window).
    pub fn lockout(mut self, lockout: Duration) -> Self {
        self.lockout = Some(lockout);
        self
    }

    /// Added to every request before it is answered (default none).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// The accounts, groups and members to start with (default: no accounts).
    pub fn state(mut self, state: FakeState) -> Self {
        self.state = state;
        self
    }

    /// Where to listen (default `127.0.0.1:0`, a free port). Only loopback is allowed.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Seeds the generator of new group ids, for reproducible runs (default: random).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Saves the state to `path` after every mutation (create, update, delete, member
    /// changes).
    pub fn persist_to(mut self, path: impl Into<PathBuf>) -> Self {
        self.persist = Some(path.into());
        self
    }

    /// Binds the listener and starts serving on the current tokio runtime.
    pub async fn start(self) -> Result<FakeCloudflare, FakeError> {
        if !self.listen.ip().is_loopback() {
            return Err(FakeError::NotLoopback(self.listen));
        }
        if self.limit == 0 || self.window.is_zero() {
            return Err(FakeError::RateLimit(format!(
                "{} per {:?} admits nothing",
                self.limit, self.window
            )));
        }
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|source| FakeError::Bind {
                addr: self.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| FakeError::Bind {
            addr: self.listen,
            source,
        })?;
        let seed = self.seed.unwrap_or_else(|| fastrand::u64(..));
        let shared = Arc::new(Shared {
            credentials: self.credentials,
            latency: Mutex::new(self.latency),
            store: Mutex::new(Store::new(self.state, seed)),
            limiter: Mutex::new(RateLimiter::new(
                self.limit,
                self.window,
                self.lockout.unwrap_or(self.window),
            )),
            faults: Mutex::new(FaultPlan::default()),
            log: Mutex::new(Default::default()),
            changes: watch::channel(0).0,
            persist: self.persist,
            on_arrival: Mutex::new(None),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server::serve(listener, shared.clone(), stopped));
        tracing::debug!(%addr, "fake Cloudflare API listening");
        Ok(FakeCloudflare {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running fake API. Dropping it stops the server; [`FakeCloudflare::shutdown`] also waits
/// for it.
#[derive(Debug)]
pub struct FakeCloudflare {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl FakeCloudflare {
    pub fn builder() -> FakeCloudflareBuilder {
        FakeCloudflareBuilder::default()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API base a client should use, e.g. `http://127.0.0.1:40123/client/v4`.
    pub fn base_url(&self) -> String {
        format!("http://{}{API_PREFIX}", self.addr)
    }

    /// Queues a one-shot fault (a bare [`Fault`] fires once on the next request it applies to).
    pub fn inject(&self, fault: impl Into<FaultSpec>) {
        lock(&self.shared.faults).push(fault.into());
    }

    /// Every request draws a fault from [`default_chaos_faults`] with probability `rate`.
    pub fn set_random_faults(&self, seed: u64, rate: f64) {
        self.set_random_faults_from(seed, rate, default_chaos_faults());
    }

    /// Like [`FakeCloudflare::set_random_faults`], drawing from `faults`.
    pub fn set_random_faults_from(&self, seed: u64, rate: f64, faults: Vec<Fault>) {
        lock(&self.shared.faults).set_random(seed, rate, faults);
    }

    /// Drops every queued fault and turns random faults off.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Queued faults not yet fired.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).pending()
    }

    /// Changes the latency added to every request from now on.
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.shared.latency) = latency;
    }

    /// Forgets counted requests and ends any lockout.
    pub fn reset_rate_limit(&self) {
        lock(&self.shared.limiter).reset();
    }

    /// A copy of the request accounting so far.
    pub fn requests(&self) -> Requests {
        lock(&self.shared.log).snapshot()
    }

    /// Calls `hook` with each request as it arrives, before latency, the rate limit, faults
    /// or the handler: a test sees the world as it is at that moment (for example, what a
    /// client had written to disk before it sent a DELETE). Replaces any earlier hook.
    pub fn on_arrival(&self, hook: impl Fn(&RequestRecord) + Send + Sync + 'static) {
        *lock(&self.shared.on_arrival) = Some(server::ArrivalHook(Arc::new(hook)));
    }

    /// Clears the request accounting.
    pub fn reset_requests(&self) {
        lock(&self.shared.log).reset();
    }

    /// Waits until `condition` holds for the request accounting (checked on every change),
    /// or `timeout` passes; the accounting that satisfied it, or `None` on timeout.
    pub async fn wait_for_requests(
        &self,
        timeout: Duration,
        condition: impl Fn(&Requests) -> bool,
    ) -> Option<Requests> {
        let mut changes = self.shared.changes.subscribe();
        tokio::time::timeout(timeout, async {
            loop {
                let requests = self.requests();
                if condition(&requests) {
                    return requests;
                }
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await
        .ok()
    }

    /// The groups of `account` now (empty when the account is unknown).
    pub fn groups(&self, account: impl AsRef<str>) -> Vec<FakeGroup> {
        lock(&self.shared.store).state.groups(account).to_vec()
    }

    /// The members of one group now, or `None` when there is no such group.
    pub fn members(
        &self,
        account: impl AsRef<str>,
        group: impl AsRef<str>,
    ) -> Option<Vec<FakeMember>> {
        lock(&self.shared.store)
            .group(account.as_ref(), group.as_ref())
            .map(|g| g.members.clone())
    }

    /// A copy of the whole state.
    pub fn state(&self) -> FakeState {
        lock(&self.shared.store).state.clone()
    }

    /// Replaces the whole state.
    pub fn set_state(&self, state: FakeState) {
        lock(&self.shared.store).state = state;
    }

    /// Makes `account` known (with no groups if it is new). An id that is not 32 lowercase
    /// hex is stored, but no request can reach it.
    pub fn add_account(&self, account: impl AsRef<str>) {
        lock(&self.shared.store).state.entry(account);
    }

    /// Adds a group as it is (the account is created if needed).
    pub fn add_group(&self, account: impl AsRef<str>, group: FakeGroup) {
        self.world().add_group(account, group);
    }

    /// A handle on the state that an [`on_arrival`](Self::on_arrival) hook can keep: the
    /// world changing behind the API's back at the moment a request arrives.
    pub fn world(&self) -> World {
        World {
            shared: self.shared.clone(),
        }
    }

    /// Adds a group named `name` with a fresh id (the account is created if needed) and
    /// returns the id.
    pub fn create_group(&self, account: impl AsRef<str>, name: impl Into<String>) -> String {
        let account = account.as_ref();
        let mut store = lock(&self.shared.store);
        let id = store.fresh_group_id(account);
        store
            .state
            .entry(account)
            .groups
            .push(FakeGroup::new(id.clone(), name));
        id
    }

    /// Removes a group behind the API's back (as another admin would); whether it existed.
    pub fn remove_group(&self, account: impl AsRef<str>, group: impl AsRef<str>) -> bool {
        self.world().remove_group(account, group)
    }

    /// Writes the current state to `path` in the state file format.
    pub fn save(&self, path: &Path) -> Result<(), FakeError> {
        Ok(lock(&self.shared.store).state.save(path)?)
    }

    /// Stops accepting, closes every connection and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "fake API server task failed");
        }
    }
}

/// The fake's state as another admin sees it: changes made here bypass the API (no request
/// is logged, no rate limit applies). Cheap to clone; see [`FakeCloudflare::world`].
#[derive(Debug, Clone)]
pub struct World {
    shared: Arc<Shared>,
}

impl World {
    /// Adds a group as it is (the account is created if needed).
    pub fn add_group(&self, account: impl AsRef<str>, group: FakeGroup) {
        lock(&self.shared.store)
            .state
            .entry(account)
            .groups
            .push(group);
    }

    /// Removes a group; whether it existed.
    pub fn remove_group(&self, account: impl AsRef<str>, group: impl AsRef<str>) -> bool {
        lock(&self.shared.store).delete_group(account.as_ref(), group.as_ref())
    }

    /// Renames a group; whether it existed.
    pub fn rename_group(
        &self,
        account: impl AsRef<str>,
        group: impl AsRef<str>,
        name: impl Into<String>,
    ) -> bool {
        lock(&self.shared.store)
            .update_group(account.as_ref(), group.as_ref(), Some(name.into()), None)
            .is_some()
    }
}

impl Drop for FakeCloudflare {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
