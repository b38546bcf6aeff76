//! Delivering to one sink, off the reconcile path: each sink has a bounded queue and a task
//! of its own that POSTs one message at a time, retrying with exponential backoff and jitter
//! (backon) up to the sink's `attempts`, each attempt bounded by its `timeout`. Enqueueing
//! never waits: a message that finds the queue full (a slow or failing sink) is dropped and
//! counted, so no sink can block or slow a reconcile, and no sink can hold up another.
//!
//! Retried: no answer (connect error, timeout, broken connection), 408, 429 and 5xx. Any
//! other status other than 2xx is final (counted `failed`). Nothing about the URL is ever
//! logged: errors are stripped of it, and name the sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::CONTENT_TYPE;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::url;
use crate::config::{EventKind, SinkConfig};

/// Messages waiting per sink, by default; one more is dropped.
pub const DEFAULT_QUEUE: usize = 256;

/// How a notification ended, for `cfgroups_notifications_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// The sink accepted it (2xx), perhaps after retries.
    Delivered,
    /// Every attempt failed, the sink refused it (a 4xx), or its URL could not be read.
    Failed,
    /// Never sent: the sink's queue was full, or the process stopped before its turn.
    Dropped,
}

impl Delivery {
    pub const ALL: [Delivery; 3] = [Self::Delivered, Self::Failed, Self::Dropped];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
        }
    }
}

/// Told of every sink and every message's end: the daemon's metrics, `apply`'s tally.
pub trait DeliveryObserver: Send + Sync {
    /// `sink` exists (so its series can start at zero).
    fn sink_added(&self, _sink: &str) {}
    /// A message to `sink` ended as `result`.
    fn delivered(&self, sink: &str, result: Delivery);
}

/// How many messages ended each way, over every sink: `apply`'s tally.
#[derive(Debug, Default)]
pub struct DeliveryCounts {
    delivered: AtomicUsize,
    failed: AtomicUsize,
    dropped: AtomicUsize,
}

impl DeliveryCounts {
    /// Messages that ended as `result` so far.
    pub fn get(&self, result: Delivery) -> usize {
        self.counter(result).load(Ordering::SeqCst)
    }

    fn counter(&self, result: Delivery) -> &AtomicUsize {
        match result {
            Delivery::Delivered => &self.delivered,
            Delivery::Failed => &self.failed,
            Delivery::Dropped => &self.dropped,
        }
    }
}

impl DeliveryObserver for DeliveryCounts {
    fn delivered(&self, _sink: &str, result: Delivery) {
        self.counter(result).fetch_add(1, Ordering::SeqCst);
    }
}

/// Retry timing shared by every sink (tests shorten it).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The wait before the first retry; doubles, with jitter.
    pub first_retry: Duration,
    /// The longest wait between attempts.
    pub max_retry: Duration,
    /// Messages a sink's queue holds.
    pub queue: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(30),
            queue: DEFAULT_QUEUE,
        }
    }
}

/// A message on its way: the body as POSTed, and what it is, for logs.
#[derive(Debug)]
pub struct Message {
    pub body: Vec<u8>,
    pub event: EventKind,
}

/// One sink's queue and delivery task.
#[derive(Debug)]
pub struct SinkWorker {
    pub config: SinkConfig,
    queue: mpsc::Sender<Message>,
    /// Enqueued and not yet ended.
    pending: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

/// Why one attempt failed; never holds the URL.
#[derive(Debug, Error)]
enum AttemptError {
    #[error("HTTP {0}")]
    Status(u16),
    #[error("{0}")]
    Transport(String),
}

impl AttemptError {
    fn retryable(&self) -> bool {
        match self {
            Self::Status(status) => matches!(status, 408 | 429) || (500..=599).contains(status),
            Self::Transport(_) => true,
        }
    }
}

impl SinkWorker {
    /// Starts the delivery task of `config` (on the current tokio runtime).
    pub fn start(
        config: SinkConfig,
        http: reqwest::Client,
        policy: Policy,
        observer: Arc<dyn DeliveryObserver>,
    ) -> Self {
        observer.sink_added(&config.name);
        let (queue, receiver) = mpsc::channel(policy.queue.max(1));
        let pending = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(deliver_all(
            config.clone(),
            http,
            policy,
            observer,
            receiver,
            pending.clone(),
        ));
        Self {
            config,
            queue,
            pending,
            task,
        }
    }

    /// Queues `message` without waiting; when the queue is full it is dropped (and counted
    /// by the caller through the returned `false`).
    pub fn enqueue(&self, message: Message) -> bool {
        let event = message.event;
        self.pending.fetch_add(1, Ordering::SeqCst);
        match self.queue.try_send(message) {
            Ok(()) => true,
            Err(_) => {
                self.pending.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!(
                    sink = %self.config.name,
                    event = event.as_str(),
                    "notification dropped: the sink's queue is full (the sink is slow or failing)"
                );
                false
            }
        }
    }

    /// Closes the queue and waits up to `grace` for what is queued to be delivered; what is
    /// left then is abandoned. Returns how many messages were abandoned.
    pub async fn close(self, grace: Duration) -> usize {
        let Self {
            queue,
            pending,
            mut task,
            config,
        } = self;
        drop(queue);
        if tokio::time::timeout(grace, &mut task).await.is_ok() {
            return 0;
        }
        task.abort();
        let _ = task.await;
        let abandoned = pending.load(Ordering::SeqCst);
        if abandoned > 0 {
            tracing::warn!(
                sink = %config.name,
                abandoned,
                "stopping: notifications not delivered in time are dropped"
            );
        }
        abandoned
    }
}

async fn deliver_all(
    config: SinkConfig,
    http: reqwest::Client,
    policy: Policy,
    observer: Arc<dyn DeliveryObserver>,
    mut receiver: mpsc::Receiver<Message>,
    pending: Arc<AtomicUsize>,
) {
    while let Some(message) = receiver.recv().await {
        let result = deliver(&config, &http, &policy, &message).await;
        pending.fetch_sub(1, Ordering::SeqCst);
        observer.delivered(&config.name, result);
    }
}

/// Sends one message with retries; how it ended.
async fn deliver(
    config: &SinkConfig,
    http: &reqwest::Client,
    policy: &Policy,
    message: &Message,
) -> Delivery {
    let url = match url::resolve(&config.url) {
        Ok(url) => url,
        Err(error) => {
            tracing::error!(sink = %config.name, %error, "notification not sent: no usable URL");
            return Delivery::Failed;
        }
    };
    let attempt = || async {
        let response = http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .timeout(config.timeout)
            .body(message.body.clone())
            .send()
            .await
            .map_err(|e| AttemptError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(AttemptError::Status(status.as_u16()))
        }
    };
    let backoff = ExponentialBuilder::new()
        .with_min_delay(policy.first_retry)
        .with_max_delay(policy.max_retry)
        .with_factor(2.0)
        .with_jitter()
        .with_max_times(config.attempts.saturating_sub(1) as usize);
    let result = attempt
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(AttemptError::retryable)
        .notify(|error, wait| {
            tracing::info!(
                sink = %config.name,
                event = message.event.as_str(),
                %error,
                retry_in_ms = wait.as_millis() as u64,
                "notification not delivered yet; retrying"
            );
        })
        .await;
    match result {
        Ok(()) => {
            tracing::debug!(sink = %config.name, event = message.event.as_str(), "notification delivered");
            Delivery::Delivered
        }
        Err(error) => {
            tracing::warn!(
                sink = %config.name,
                event = message.event.as_str(),
                %error,
                "notification given up"
            );
            Delivery::Failed
        }
    }
}
