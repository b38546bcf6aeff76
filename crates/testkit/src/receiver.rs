//! A local HTTP receiver for notifications (axum on `127.0.0.1:0`): it records every POST
//! (path and body), and answers as the test says: 200, a status for the next N requests,
//! or not at all until released (a hanging sink). Stopped when dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::routing::post;
use tokio::sync::{Notify, oneshot, watch};

use crate::wait::WAIT;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub body: Vec<u8>,
}

impl Received {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200.
    Ok,
    /// This status.
    Status(u16),
    /// Nothing, until [`Receiver::release`] (then 200).
    Hang,
}

#[derive(Debug)]
struct Shared {
    received: Mutex<Vec<Received>>,
    /// (answer, for how many more requests; `None`: from now on)
    answers: Mutex<Vec<(Answer, Option<usize>)>>,
    /// Requests being answered right now.
    in_flight: Mutex<usize>,
    changes: watch::Sender<u64>,
    release: Notify,
}

impl Shared {
    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// The answer for the next request.
    fn next_answer(&self) -> Answer {
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((answer, left)) = answers.first_mut() {
            match left {
                None => return *answer,
                Some(0) => {
                    answers.remove(0);
                }
                Some(n) => {
                    *n -= 1;
                    return *answer;
                }
            }
        }
        Answer::Ok
    }
}

/// A running receiver.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
}

async fn receive(State(shared): State<Arc<Shared>>, uri: Uri, body: Bytes) -> StatusCode {
    shared
        .received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Received {
            path: uri.path().to_owned(),
            body: body.to_vec(),
        });
    *shared.in_flight.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    shared.changed();
    let status = match shared.next_answer() {
        Answer::Ok => StatusCode::OK,
        Answer::Status(code) => {
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Answer::Hang => {
            shared.release.notified().await;
            StatusCode::OK
        }
    };
    *shared.in_flight.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
    shared.changed();
    status
}

impl Receiver {
    /// Starts a receiver answering 200, on the current tokio runtime.
    pub async fn start() -> Self {
        let (changes, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            answers: Mutex::new(Vec::new()),
            in_flight: Mutex::new(0),
            changes,
            release: Notify::new(),
        });
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("an address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            addr,
            shared,
            stop: Some(stop),
        }
    }

    /// The URL of `path` (e.g. `/hook/SECRET`) on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// An address where nothing listens (a sink that is down).
    pub async fn down_url(path: &str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("an address");
        drop(listener);
        format!("http://{addr}{path}")
    }

    /// Answers `answer` from now on.
    pub fn answer(&self, answer: Answer) {
        *self
            .shared
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = vec![(answer, None)];
    }

    /// Answers `answer` to the next `times` requests, then as before.
    pub fn answer_next(&self, times: usize, answer: Answer) {
        self.shared
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(0, (answer, Some(times)));
    }

    /// Lets every hanging request answer 200, and the later ones not hang.
    pub fn release(&self) {
        self.answer(Answer::Ok);
        self.shared.release.notify_waiters();
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Requests arrived and not answered yet.
    pub fn in_flight(&self) -> usize {
        *self
            .shared
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `condition` holds for the requests received (checked on every change);
    /// panics naming `what` after [`WAIT`].
    pub async fn wait_for(
        &self,
        what: &str,
        condition: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        self.wait_within(what, WAIT, condition).await
    }

    /// [`wait_for`](Self::wait_for) with a timeout of its own.
    pub async fn wait_within(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let mut changes = self.shared.changes.subscribe();
        let found = tokio::time::timeout(timeout, async {
            loop {
                let received = self.received();
                if condition(&received) {
                    return received;
                }
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            let bodies: Vec<String> = self.received().iter().map(Received::text).collect();
            panic!("timed out after {timeout:?} waiting for {what}; received:\n{bodies:#?}")
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.release.notify_waiters();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
