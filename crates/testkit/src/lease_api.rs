//! A small in-process fake of the Kubernetes API server's Lease endpoints
//! (`coordination.k8s.io/v1`), strict where leader election depends on it: every write
//! bumps the `resourceVersion`; an update whose `resourceVersion` is not the current one is
//! refused with 409 Conflict, a create of an existing Lease with 409 AlreadyExists, as the
//! real API server does. An update with no `resourceVersion` is accepted (the real server
//! treats it as unconditional) but counted, so tests can assert there never is one.
//!
//! It serves watches of one Lease (`?watch=true&fieldSelector=metadata.name=NAME`) from a
//! `resourceVersion` on, as newline-delimited events. It records every verb called (for the
//! RBAC check) and can be told to fail every request (503), as an unreachable or overloaded
//! API server would.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

#[derive(Default)]
struct Store {
    /// (namespace, name) -> the Lease object as served.
    leases: BTreeMap<(String, String), Value>,
    version: u64,
    verbs: BTreeSet<String>,
    unconditional_updates: usize,
    writes: usize,
    failing: bool,
    /// Every (holder, resourceVersion) a successful write left, in order.
    history: Vec<(Option<String>, u64)>,
    /// Every write as a watch event: (namespace, name, resourceVersion, event JSON).
    events: Vec<(String, String, u64, Value)>,
    /// Open watches, each with the Lease it follows.
    watchers: Vec<(String, String, tokio::sync::mpsc::UnboundedSender<Value>)>,
}

/// A running fake; stops when dropped.
pub struct FakeLeaseApi {
    addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeLeaseApi {
    /// Serves on a loopback port chosen by the system.
    pub async fn start() -> FakeLeaseApi {
        let store = Arc::new(Mutex::new(Store::default()));
        let base = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases";
        let app = Router::new()
            .route(base, post(create).get(watch))
            .route(
                &format!("{base}/{{name}}"),
                get(read).put(update).patch(patch).delete(delete),
            )
            .fallback(other)
            .with_state(store.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeLeaseApi { addr, store, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client for this fake, in `namespace`.
    pub fn client(&self) -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut config = kube::Config::new(self.url().parse().expect("a URI"));
        config.default_namespace = "cfgroups".to_owned();
        kube::Client::try_from(config).expect("a kube client")
    }

    /// A kubeconfig file that points at this fake (for the daemon).
    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: fake\n  user: {{}}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\n",
            self.url()
        )
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every request from now on fails with 503 (until `false`).
    pub fn set_failing(&self, failing: bool) {
        self.store().failing = failing;
    }

    /// The Lease's holder now.
    pub fn holder(&self, namespace: &str, name: &str) -> Option<String> {
        self.lease(namespace, name).and_then(|l| {
            l["spec"]["holderIdentity"]
                .as_str()
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
        })
    }

    pub fn lease(&self, namespace: &str, name: &str) -> Option<Value> {
        self.store()
            .leases
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// The verbs called so far (`get`, `create`, `update`, `patch`, `delete`, ...).
    pub fn verbs(&self) -> BTreeSet<String> {
        self.store().verbs.clone()
    }

    /// Updates that carried no `resourceVersion` precondition.
    pub fn unconditional_updates(&self) -> usize {
        self.store().unconditional_updates
    }

    /// Successful writes so far.
    pub fn writes(&self) -> usize {
        self.store().writes
    }

    /// Every holder a successful write left, in order (consecutive repeats kept).
    pub fn holder_history(&self) -> Vec<Option<String>> {
        self.store()
            .history
            .iter()
            .map(|(h, _)| h.clone())
            .collect()
    }
}

impl Drop for FakeLeaseApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = State<Arc<Mutex<Store>>>;

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        axum::Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
        })),
    )
        .into_response()
}

fn lock(store: &Arc<Mutex<Store>>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

/// Common to every request: the verb is recorded, and a failing server answers 503.
fn enter(store: &mut Store, verb: &str) -> Option<Response> {
    store.verbs.insert(verb.to_owned());
    store.failing.then(|| {
        status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the fake is failing on purpose",
        )
    })
}

fn stamp(store: &mut Store, lease: &mut Value, namespace: &str, name: &str, kind: &str) {
    store.version += 1;
    store.writes += 1;
    lease["apiVersion"] = json!("coordination.k8s.io/v1");
    lease["kind"] = json!("Lease");
    lease["metadata"]["name"] = json!(name);
    lease["metadata"]["namespace"] = json!(namespace);
    lease["metadata"]["resourceVersion"] = json!(store.version.to_string());
    let holder = lease["spec"]["holderIdentity"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(str::to_owned);
    store.history.push((holder, store.version));
    let event = json!({ "type": kind, "object": lease.clone() });
    store.events.push((
        namespace.to_owned(),
        name.to_owned(),
        store.version,
        event.clone(),
    ));
    store.watchers.retain(|(ns, n, sender)| {
        ns != namespace || n != name || sender.send(event.clone()).is_ok()
    });
}

async fn read(State(store): Shared, Path((namespace, name)): Path<(String, String)>) -> Response {
    let mut store = lock(&store);
    if let Some(failure) = enter(&mut store, "get") {
        return failure;
    }
    match store.leases.get(&(namespace, name.clone())) {
        Some(lease) => axum::Json(lease.clone()).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("leases \"{name}\" not found"),
        ),
    }
}

async fn create(
    State(store): Shared,
    Path(namespace): Path<String>,
    axum::Json(mut lease): axum::Json<Value>,
) -> Response {
    let mut store = lock(&store);
    if let Some(failure) = enter(&mut store, "create") {
        return failure;
    }
    let Some(name) = lease["metadata"]["name"].as_str().map(str::to_owned) else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "metadata.name is required",
        );
    };
    if lease["metadata"]
        .get("resourceVersion")
        .is_some_and(|v| !v.is_null())
    {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "resourceVersion may not be set on create",
        );
    }
    let key = (namespace.clone(), name.clone());
    if store.leases.contains_key(&key) {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("leases \"{name}\" already exists"),
        );
    }
    stamp(&mut store, &mut lease, &namespace, &name, "ADDED");
    store.leases.insert(key, lease.clone());
    (StatusCode::CREATED, axum::Json(lease)).into_response()
}

async fn update(
    State(store): Shared,
    Path((namespace, name)): Path<(String, String)>,
    axum::Json(mut lease): axum::Json<Value>,
) -> Response {
    let mut store = lock(&store);
    if let Some(failure) = enter(&mut store, "update") {
        return failure;
    }
    let key = (namespace.clone(), name.clone());
    let Some(current) = store.leases.get(&key) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("leases \"{name}\" not found"),
        );
    };
    let current_version = current["metadata"]["resourceVersion"].clone();
    match lease["metadata"]
        .get("resourceVersion")
        .filter(|v| !v.is_null())
    {
        None => store.unconditional_updates += 1,
        Some(sent) if *sent != current_version => {
            return status(
                StatusCode::CONFLICT,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on leases.coordination.k8s.io \"{name}\": \
                     the object has been modified; please apply your changes to the latest version and try again"
                ),
            );
        }
        Some(_) => {}
    }
    stamp(&mut store, &mut lease, &namespace, &name, "MODIFIED");
    store.leases.insert(key, lease.clone());
    axum::Json(lease).into_response()
}

/// `GET .../leases?watch=true&fieldSelector=metadata.name=NAME&resourceVersion=N`: the
/// events of that Lease after `N`, then every new one, until the client goes away.
async fn watch(
    State(store): Shared,
    Path(namespace): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut store = lock(&store);
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    if let Some(failure) = enter(&mut store, if watching { "watch" } else { "list" }) {
        return failure;
    }
    let name = query
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(str::to_owned);
    let (true, Some(name)) = (watching, name) else {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the fake only watches one Lease by name",
        );
    };
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    for (ns, n, version, event) in &store.events {
        if *ns == namespace && *n == name && *version > from {
            let _ = sender.send(event.clone());
        }
    }
    store.watchers.push((namespace, name, sender));
    let lines = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = receiver.recv().await?;
        Some((
            Ok::<_, std::convert::Infallible>(format!("{event}\n")),
            receiver,
        ))
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}

async fn patch(State(store): Shared) -> Response {
    let mut store = lock(&store);
    if let Some(failure) = enter(&mut store, "patch") {
        return failure;
    }
    status(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "the fake does not patch",
    )
}

async fn delete(State(store): Shared) -> Response {
    let mut store = lock(&store);
    if let Some(failure) = enter(&mut store, "delete") {
        return failure;
    }
    status(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "the fake does not delete",
    )
}

async fn other(State(store): Shared, method: Method, uri: axum::http::Uri) -> Response {
    let mut store = lock(&store);
    store.verbs.insert(format!("{method} {uri}"));
    status(StatusCode::NOT_FOUND, "NotFound", "not a Lease endpoint")
}
