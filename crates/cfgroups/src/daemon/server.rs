//! The health and metrics HTTP server: `GET /healthz`, `GET /readyz` and `GET /metrics`, and
//! nothing else, plus the [`Health`] state the reconcile loop updates.
//!
//! - `/healthz` (liveness) answers 503 once the loop has not ticked for twice its interval:
//!   a wedged loop should be restarted, a slow API should not, and a reconcile that takes a
//!   whole interval still ticks in time.
//! - `/readyz` (readiness) answers 200 while the daemon does its job: on the leader (or
//!   without election), once a config is loaded and the latest listing of every account
//!   succeeded (the first full reconcile included); 503 before that and while any account
//!   cannot be listed, naming the accounts. A later bad reload does not clear it: the
//!   daemon keeps enforcing the last good config, which the metrics and logs report. A
//!   standby is ready once its config is valid: it is the replica that takes over, and
//!   marking it unready would only hold a rolling update for nothing.
//! - `/metrics` serves [`Metrics::encode`] as OpenMetrics text.
//!
//! Any other path is 404, any other method on these paths 405. The server binds loopback by
//! default ([`DEFAULT_LISTEN`]): nothing it serves needs to leave the host, and what it
//! serves (account ids) is not for everyone.
//!
//! No client can hold the daemon up ([`ServerOptions`]): a request's headers must arrive
//! within 5 s, a connection that sends nothing for 10 s is closed, and shutdown waits at most
//! 2 s for connections in flight before dropping them, so SIGTERM completes even while a
//! client sits on a half-sent request.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::metrics::{CONTENT_TYPE, Metrics};
use super::read_timeout::ReadTimeout;

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
    /// `Ok` when ready; else why not, for the `/readyz` body.
    ready: Result<(), String>,
    last_tick: Instant,
}

/// Why a daemon that has just started is not ready.
const STARTING: &str = "no config loaded or first reconcile not completed";

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("Health")
            .field("interval", &self.inner.interval)
            .field("ready", &state.ready.is_ok())
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
                    ready: Err(STARTING.to_owned()),
                    last_tick: now,
                }),
            }),
        }
    }

    /// Marks the daemon ready (a config is loaded and the first reconcile completed) or not.
    pub fn set_ready(&self, ready: bool) {
        self.state().ready = if ready {
            Ok(())
        } else {
            Err(STARTING.to_owned())
        };
    }

    /// Marks the daemon not ready, saying why (`/readyz` answers 503 with it).
    pub fn set_not_ready(&self, reason: String) {
        self.state().ready = Err(reason);
    }

    pub fn is_ready(&self) -> bool {
        self.state().ready.is_ok()
    }

    /// `Ok` when ready, else why not.
    pub fn readiness(&self) -> Result<(), String> {
        self.state().ready.clone()
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
    match app.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn metrics_text(State(app): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], app.metrics.encode()).into_response()
}

/// How long the server waits for clients, and for itself at shutdown.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// Time for a request's headers to arrive, from its first byte. Default 5 s: a health
    /// check is one short line and a few headers.
    pub header_read_timeout: Duration,
    /// Time a connection may wait for any byte from its client, mid-request or idle between
    /// keep-alive requests. Default 10 s.
    pub read_timeout: Duration,
    /// Time shutdown waits for connections in flight before dropping them. Default 2 s: a
    /// scrape is answered in milliseconds, and systemd's stop timeout is far longer.
    pub shutdown_grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(2),
        }
    }
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

    /// Stops accepting connections, lets in-flight requests finish within the shutdown grace,
    /// drops the connections still open after it, and waits for that.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        // An error means the server already stopped; the task's result says why.
        let _ = self.shutdown.send(());
        self.task
            .await
            .map_err(|source| ServerError::Task { source })?
    }
}

/// Binds `addr` and serves in a background task until the handle is shut down or dropped,
/// with the default [`ServerOptions`].
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    metrics: Metrics,
) -> Result<ServerHandle, ServerError> {
    serve_with(addr, health, metrics, ServerOptions::default()).await
}

/// [`serve`] with other timeouts.
pub async fn serve_with(
    addr: SocketAddr,
    health: Health,
    metrics: Metrics,
    options: ServerOptions,
) -> Result<ServerHandle, ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    let (shutdown, stop) = oneshot::channel::<()>();
    let app = router(health, metrics);
    let task = tokio::spawn(accept_loop(listener, app, options, stop));
    tracing::info!(address = %bound, "health and metrics server listening");
    Ok(ServerHandle {
        addr: bound,
        shutdown,
        task,
    })
}

/// Accepts connections until `stop` fires (or its sender is dropped), then asks every open
/// connection to finish and drops those that have not within the grace.
async fn accept_loop(
    listener: TcpListener,
    app: Router,
    options: ServerOptions,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), ServerError> {
    let (closing, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, app.clone(), options, closing_rx.clone()));
                }
                // Out of file descriptors, say: not the server's end. Pause, then go on.
                Err(error) => {
                    tracing::warn!(%error, "health server cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = closing.send(true);
    let drained = tokio::time::timeout(options.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            connections = connections.len(),
            "health server: dropping connections still open after the shutdown grace"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// One client connection, HTTP/1.1, within the timeouts; on `closing`, finishes the request
/// in flight (if any) and closes.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    options: ServerOptions,
    mut closing: watch::Receiver<bool>,
) {
    let io = TokioIo::new(ReadTimeout::new(stream, options.read_timeout));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let connection = builder.serve_connection(io, TowerToHyperService::new(app));
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        // The guard `wait_for` returns is dropped at once: it must not live across an await.
        _ = async { closing.wait_for(|closing| *closing).await.map(|_| ()) } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "health server connection ended with an error");
    }
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
        health.set_not_ready("account 023e105f4ecef8ad9ca31a8372d0c353 cannot be listed".into());
        let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 503);
        assert!(
            ready
                .text()
                .await
                .unwrap()
                .contains("023e105f4ecef8ad9ca31a8372d0c353")
        );
        health.set_ready(true);

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

    /// Connects and sends `sent`, then nothing more.
    async fn stalled_client(addr: SocketAddr, sent: &[u8]) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(sent).await.unwrap();
        stream
    }

    /// Waits for the server to close `stream`: what it sent (possibly nothing), or a panic
    /// after `within`.
    async fn closed_by_server(stream: &mut tokio::net::TcpStream, within: Duration) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut received = Vec::new();
        match tokio::time::timeout(within, stream.read_to_end(&mut received)).await {
            Ok(_) => received,
            Err(_) => panic!("the server kept the connection open for {within:?}"),
        }
    }

    #[tokio::test]
    async fn shutdown_completes_while_a_client_holds_a_half_sent_request() {
        let health = Health::new(Duration::from_secs(300));
        let server = serve(loopback(), health, Metrics::new("0")).await.unwrap();
        let addr = server.local_addr();
        let _stalled = stalled_client(addr, b"GET /heal").await;
        // A complete request on a later connection is answered, so the stalled one (earlier
        // in the accept queue) is being served.
        let live = client()
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(live.status(), 200);

        let started = Instant::now();
        match tokio::time::timeout(Duration::from_secs(20), server.shutdown()).await {
            Ok(result) => result.unwrap(),
            Err(_) => panic!("shutdown waited on the half-sent request for 20 s"),
        }
        let took = started.elapsed();
        let grace = ServerOptions::default().shutdown_grace;
        assert!(
            took < grace + Duration::from_secs(3),
            "shutdown took {took:?}"
        );
    }

    #[tokio::test]
    async fn a_client_that_stops_mid_request_is_disconnected() {
        let options = ServerOptions {
            header_read_timeout: Duration::from_millis(300),
            read_timeout: Duration::from_millis(600),
            ..ServerOptions::default()
        };
        let health = Health::new(Duration::from_secs(300));
        let server = serve_with(loopback(), health, Metrics::new("0"), options)
            .await
            .unwrap();
        let mut half = stalled_client(server.local_addr(), b"GET /metrics HTTP/1.1\r\nHo").await;
        closed_by_server(&mut half, Duration::from_secs(10)).await;
        let mut silent = stalled_client(server.local_addr(), b"").await;
        closed_by_server(&mut silent, Duration::from_secs(10)).await;
        server.shutdown().await.unwrap();
    }

    /// A byte now and then defeats a read timeout alone; the header timeout still applies.
    #[tokio::test]
    async fn headers_dripped_a_byte_at_a_time_are_cut_off() {
        use tokio::io::AsyncWriteExt;
        let options = ServerOptions {
            header_read_timeout: Duration::from_millis(500),
            read_timeout: Duration::from_secs(30),
            ..ServerOptions::default()
        };
        let health = Health::new(Duration::from_secs(300));
        let server = serve_with(loopback(), health, Metrics::new("0"), options)
            .await
            .unwrap();
        let stream = stalled_client(server.local_addr(), b"GET /healthz HTTP/1.1\r\n").await;
        let (mut reader, mut writer) = stream.into_split();
        let drip = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if writer.write_all(b"X").await.is_err() {
                    return;
                }
            }
        });
        let started = Instant::now();
        let mut received = Vec::new();
        let read = tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut received);
        // Either end may notice first: the read sees the close, or the write fails.
        let _ = tokio::time::timeout(Duration::from_secs(20), read).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "the drip kept the connection for {took:?}"
        );
        drip.abort();
        server.shutdown().await.unwrap();
    }
}
