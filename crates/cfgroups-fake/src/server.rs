//! The HTTP side: the accept loop, one hyper connection per socket with a kill switch (how a
//! dropped-connection fault closes the socket without an answer), and the pipeline every
//! request goes through:
//!
//! accounting -> added latency -> rate limit -> injected fault -> authentication -> handler
//! -> list-page faults -> `Ratelimit` headers -> accounting.
//!
//! A dropped connection is real: the handler signals the connection task, which drops the
//! hyper connection and with it the socket, so the client sees the connection close before
//! any response byte (a connection error, never a 5xx).

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinSet;

use crate::accounting::{RequestLog, RequestRecord};
use crate::auth::Credentials;
use crate::envelope::{self, ApiError, HttpResponse, Payload};
use crate::faults::{Fault, FaultPlan};
use crate::limits::{Admission, RateLimiter};
use crate::routes::{self, Call, Reply, Route, Target};
use crate::state::Store;

/// The largest request body the fake reads.
const MAX_BODY: usize = 1 << 20;

/// What the truncated-JSON fault sends.
const MALFORMED_BODY: &[u8] = br#"{"success":true,"errors":[],"messages":[],"result":[{"id":"#;

/// Everything the handlers and the handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) credentials: Credentials,
    pub(crate) latency: Mutex<Duration>,
    pub(crate) store: Mutex<Store>,
    pub(crate) limiter: Mutex<RateLimiter>,
    pub(crate) faults: Mutex<FaultPlan>,
    pub(crate) log: Mutex<RequestLog>,
    /// Bumped on every accounting change, so tests can wait on conditions.
    pub(crate) changes: watch::Sender<u64>,
    /// Where the state is saved after every mutation, if anywhere.
    pub(crate) persist: Option<PathBuf>,
    /// Called as each request arrives, before anything else happens to it.
    pub(crate) on_arrival: Mutex<Option<ArrivalHook>>,
}

/// A test's hook on arriving requests; see [`crate::FakeCloudflare::on_arrival`].
#[derive(Clone)]
pub(crate) struct ArrivalHook(pub(crate) Arc<dyn Fn(&RequestRecord) + Send + Sync>);

impl std::fmt::Debug for ArrivalHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArrivalHook")
    }
}

/// Locks a mutex, carrying on if a panicking holder poisoned it: the fake's state stays
/// usable for the assertions that follow.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Saves the state to the persist file, if one is set (called with the store locked, so
    /// saves happen in mutation order).
    pub(crate) fn persist(&self, store: &Store) {
        if let Some(path) = &self.persist
            && let Err(error) = store.state.save(path)
        {
            tracing::warn!(%error, "fake API could not save its state");
        }
    }
}

/// Accepts connections until `stop` fires, then aborts every open connection.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, shared.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "fake API accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let kill = Arc::new(Notify::new());
    let service = {
        let kill = kill.clone();
        service_fn(move |request| {
            let shared = shared.clone();
            let kill = kill.clone();
            async move { Ok::<_, Infallible>(handle(shared, kill, request).await) }
        })
    };
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "fake API connection ended with an error");
            }
        }
        // Dropping the connection closes the socket with no response written.
        _ = kill.notified() => {}
    }
}

async fn handle(
    shared: Arc<Shared>,
    kill: Arc<Notify>,
    request: Request<Incoming>,
) -> HttpResponse {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_owned());
    let route = Target::parse(&path).route(&method);
    let user_agent = request
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    lock(&shared.log).arrive(&method, route);
    shared.bump();
    let record = RequestRecord {
        at: Instant::now(),
        method: method.clone(),
        path: path_and_query,
        route,
        user_agent,
        status: None,
    };
    let hook = lock(&shared.on_arrival).clone();
    if let Some(ArrivalHook(hook)) = hook {
        hook(&record);
    }
    let in_flight = InFlight {
        shared: shared.clone(),
        record: Some(record),
    };

    let outcome = respond(&shared, request, &method, &path, route).await;
    in_flight.finish(outcome.as_ref().map(|r| r.status().as_u16()));
    match outcome {
        Some(response) => response,
        None => {
            kill.notify_one();
            // The connection task drops this future with the socket.
            std::future::pending().await
        }
    }
}

/// A request being answered. If hyper drops the handler because the client went away (say,
/// it timed out on a slow answer), the request is still logged, with no status.
struct InFlight {
    shared: Arc<Shared>,
    record: Option<RequestRecord>,
}

impl InFlight {
    fn finish(mut self, status: Option<u16>) {
        if let Some(mut record) = self.record.take() {
            record.status = status;
            self.log(record);
        }
    }

    fn log(&self, record: RequestRecord) {
        lock(&self.shared.log).finish(record);
        self.shared.bump();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            self.log(record);
        }
    }
}

/// The response, or `None` to drop the connection without one.
async fn respond(
    shared: &Shared,
    request: Request<Incoming>,
    method: &Method,
    path: &str,
    route: Route,
) -> Option<HttpResponse> {
    let latency = *lock(&shared.latency);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let admission = lock(&shared.limiter).admit(Instant::now());
    let mut response = match admission {
        Admission::Limited { .. } => ApiError::rate_limited().into_response(),
        Admission::Allowed { .. } => {
            let fault = lock(&shared.faults).next(method, route);
            match answer(shared, request, method, path, fault).await {
                Answer::Respond(response) => response,
                Answer::Drop => return None,
            }
        }
    };
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let admission = match retry_after {
        // An injected 429 reports its own wait.
        Some(retry_after_secs) => Admission::Limited { retry_after_secs },
        None => admission,
    };
    lock(&shared.limiter).write_headers(admission, response.headers_mut());
    Some(response)
}

enum Answer {
    Respond(HttpResponse),
    Drop,
}

async fn answer(
    shared: &Shared,
    request: Request<Incoming>,
    method: &Method,
    path: &str,
    fault: Option<Fault>,
) -> Answer {
    if let Some(fault) = &fault {
        match fault {
            Fault::DropConnection => return Answer::Drop,
            Fault::Status(code) => {
                let status =
                    StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Answer::Respond(ApiError::injected(status).into_response());
            }
            Fault::RateLimited(seconds) => {
                let mut response = ApiError::rate_limited().into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, (*seconds).into());
                return Answer::Respond(response);
            }
            Fault::MalformedJson => {
                return Answer::Respond(envelope::raw_json_response(
                    StatusCode::OK,
                    MALFORMED_BODY.to_vec(),
                ));
            }
            Fault::SuccessFalse => {
                let body = ApiError::injected(StatusCode::INTERNAL_SERVER_ERROR).body();
                return Answer::Respond(envelope::json_response(StatusCode::OK, &body));
            }
            Fault::DropConnectionAfterApply
            | Fault::Slow(_)
            | Fault::WrongTotalCount(_)
            | Fault::DropItem => {}
        }
    }

    let result = match shared
        .credentials
        .check(request.headers())
        .and_then(|access| access.allows(method))
    {
        Err(error) => Err(error),
        Ok(()) => {
            let query = request.uri().query().map(str::to_owned);
            match axum::body::to_bytes(Body::new(request.into_body()), MAX_BODY).await {
                Err(error) => Err(ApiError::invalid_input(format!(
                    "cannot read request body: {error}"
                ))),
                Ok(body) => {
                    let call = Call {
                        method,
                        path,
                        target: Target::parse(path),
                        query: query.as_deref(),
                        body,
                    };
                    let mut store = lock(&shared.store);
                    let result = routes::dispatch(&mut store, &call);
                    if let Ok(Reply { mutated: true, .. }) = &result {
                        shared.persist(&store);
                    }
                    result
                }
            }
        }
    };
    let response = match result {
        Err(error) => error.into_response(),
        Ok(mut reply) => {
            if let Some(fault) = &fault {
                alter_list(&mut reply.result, fault);
            }
            envelope::success_response(reply.status, &reply.result)
        }
    };
    match fault {
        Some(Fault::DropConnectionAfterApply) => Answer::Drop,
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            Answer::Respond(response)
        }
        _ => Answer::Respond(response),
    }
}

/// Applies a list-page fault to a page of a listing (anything else is left alone).
fn alter_list(result: &mut Payload, fault: &Fault) {
    let Payload::Page { items, info } = result else {
        return;
    };
    match fault {
        Fault::WrongTotalCount(delta) => {
            let total = i64::try_from(info.total_count).unwrap_or(i64::MAX);
            info.total_count = u64::try_from(total.saturating_add(*delta).max(0)).unwrap_or(0);
        }
        Fault::DropItem if items.pop().is_some() => {
            info.count = info.count.saturating_sub(1);
        }
        _ => {}
    }
}
