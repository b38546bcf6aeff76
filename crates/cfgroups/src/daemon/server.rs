//! The health and metrics HTTP server: `GET /healthz`, `GET /readyz` and `GET /metrics`, and
//! nothing else, plus the [`Health`] state the reconcile loop updates.
//!
//! - `/healthz` (liveness) answers 503 once the loop has not ticked for twice its interval:
//!   a wedged loop should be restarted, a slow API should not, and a reconcile that takes a
//!   whole interval still ticks in time.
//! - `/readyz` (readiness) answers 200 once a config is loaded and the first reconcile has
//!   completed. A later bad reload does not clear it: the daemon keeps enforcing the last
//!   good config, which the metrics and logs report.
//! - `/metrics` serves [`Metrics::encode`] as OpenMetrics text.
//!
//! Any other path is 404, any other method on these paths 405. The server binds loopback by
//! default ([`DEFAULT_LISTEN`]): nothing it serves needs to leave the host, and what it
//! serves (account ids) is not for everyone.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::metrics::{CONTENT_TYPE, Metrics};

/// Where the server listens unless told otherwise: loopback, port 9184.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9184);

/// Why the server could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("health server failed: {source}")]
    Serve {
        #[source]
        source: std::io::Error,
    },
    #[error("health server task failed: {source}")]
    Task {
        #[source]
        source: tokio::task::JoinError,
    },
}

/// The clock [`Health`] reads; replaceable so tests can move time without sleeping.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The loop's liveness and readiness, shared between the loop (writer) and the server
/// (reader). Cheap to clone: clones share the same state.
#[derive(Clone)]
pub struct Health {
    inner: Arc<HealthInner>,
}

struct HealthInner {
    /// The loop's reconcile interval: a tick older than twice this means the loop is stuck.
    interval: Duration,
    clock: Clock,
    state: Mutex<HealthState>,
}

struct HealthState {
    ready: bool,
    last_tick: Instant,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("Health")
            .field("interval", &self.inner.interval)
            .field("ready", &state.ready)
            .field("last_tick", &state.last_tick)
            .finish()
    }
}

impl Health {
    /// Not ready, and ticked now, for a loop that reconciles every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self::with_clock(interval, Arc::new(Instant::now))
    }

    /// [`new`](Self::new) with another clock.
    pub fn with_clock(interval: Duration, clock: Clock) -> Self {
        let now = clock();
        Self {
            inner: Arc::new(HealthInner {
                interval,
                clock,
                state: Mutex::new(HealthState {
                    ready: false,
                    last_tick: now,
                }),
            }),
        }
    }

    /// Marks the daemon ready (a config is loaded and the first reconcile completed) or not.
    pub fn set_ready(&self, ready: bool) {
        self.state().ready = ready;
    }

    pub fn is_ready(&self) -> bool {
        self.state().ready
    }

    /// Records that the loop is making progress. Call it at every loop iteration and between
    /// accounts of a long reconcile.
    pub fn tick(&self) {
        let now = (self.inner.clock)();
        self.state().last_tick = now;
    }

    /// How long since the last [`tick`](Self::tick).
    pub fn since_last_tick(&self) -> Duration {
        let now = (self.inner.clock)();
        now.saturating_duration_since(self.state().last_tick)
    }

    /// Whether the loop ticked within twice its interval.
    pub fn is_live(&self) -> bool {
        self.since_last_tick() <= self.inner.interval.saturating_mul(2)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HealthState> {
        // The state is two plain fields, valid whatever a panicking holder did.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Clone)]
struct AppState {
    health: Health,
    metrics: Metrics,
}

/// The router on its own, for embedding or for tests that skip the socket.
pub fn router(health: Health, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AppState { health, metrics })
}

async fn healthz(State(app): State<AppState>) -> Response {
    if app.health.is_live() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let stale = app.health.since_last_tick();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("reconcile loop has not ticked for {}s\n", stale.as_secs()),
        )
            .into_response()
    }
}

async fn readyz(State(app): State<AppState>) -> Response {
    if app.health.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no config loaded or first reconcile not completed\n",
        )
            .into_response()
    }
}

async fn metrics_text(State(app): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], app.metrics.encode()).into_response()
}

/// A running server. Dropping it also stops the server, without waiting.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl ServerHandle {
    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, lets in-flight requests finish, and waits for that.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        // An error means the server already stopped; the task's result says why.
        let _ = self.shutdown.send(());
        self.task
            .await
            .map_err(|source| ServerError::Task { source })?
    }
}

/// Binds `addr` and serves in a background task until the handle is shut down or dropped.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    metrics: Metrics,
) -> Result<ServerHandle, ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    let (shutdown, stop) = oneshot::channel::<()>();
    let app = router(health, metrics);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // Sent or dropped: stop either way.
                let _ = stop.await;
            })
            .await
            .map_err(|source| ServerError::Serve { source })
    });
    tracing::info!(address = %bound, "health and metrics server listening");
    Ok(ServerHandle {
        addr: bound,
        shutdown,
        task,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn loopback() -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
    }

    fn client() -> reqwest::Client {
        // reqwest wants a TLS provider even for plain http; another test may have installed
        // it already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// A clock that moves only when told to.
    fn manual_clock() -> (Clock, Arc<AtomicU64>) {
        let start = Instant::now();
        let offset_ms = Arc::new(AtomicU64::new(0));
        let offset = offset_ms.clone();
        let clock: Clock =
            Arc::new(move || start + Duration::from_millis(offset.load(Ordering::SeqCst)));
        (clock, offset_ms)
    }

    #[tokio::test]
    async fn endpoints_answer_and_readiness_follows_set_ready() {
        let health = Health::new(Duration::from_secs(300));
        let metrics = Metrics::new("9.9.9");
        let server = serve(loopback(), health.clone(), metrics.clone())
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr());
        let http = client();

        let live = http.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(live.status(), 200);

        let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 503);
        health.set_ready(true);
        let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);

        metrics.record_retry();
        let response = http.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()[reqwest::header::CONTENT_TYPE],
            CONTENT_TYPE
        );
        let text = response.text().await.unwrap();
        assert!(text.contains("cfgroups_build_info{version=\"9.9.9\"} 1"));
        assert!(text.contains("cfgroups_api_retries_total 1"));

        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn only_the_three_paths_and_get_are_served() {
        let health = Health::new(Duration::from_secs(300));
        let server = serve(loopback(), health, Metrics::new("0")).await.unwrap();
        let base = format!("http://{}", server.local_addr());
        let http = client();

        for path in ["/", "/metrics/", "/health", "/debug/pprof"] {
            let response = http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 404, "{path}");
        }
        let response = http.post(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 405);
        let response = http.delete(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(response.status(), 405);

        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn healthz_fails_when_the_loop_stops_ticking() {
        let (clock, offset_ms) = manual_clock();
        let health = Health::with_clock(Duration::from_secs(60), clock);
        let server = serve(loopback(), health.clone(), Metrics::new("0"))
            .await
            .unwrap();
        let url = format!("http://{}/healthz", server.local_addr());
        let http = client();

        // Exactly twice the interval is still alive.
        offset_ms.store(120_000, Ordering::SeqCst);
        assert_eq!(http.get(&url).send().await.unwrap().status(), 200);

        offset_ms.store(120_001, Ordering::SeqCst);
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert!(response.text().await.unwrap().contains("120s"));

        health.tick();
        assert_eq!(http.get(&url).send().await.unwrap().status(), 200);

        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn binding_a_taken_port_is_an_error() {
        let first = serve(
            loopback(),
            Health::new(Duration::from_secs(1)),
            Metrics::new("0"),
        )
        .await
        .unwrap();
        let error = serve(
            first.local_addr(),
            Health::new(Duration::from_secs(1)),
            Metrics::new("0"),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, ServerError::Bind { .. }), "{error}");
        first.shutdown().await.unwrap();
    }
}
