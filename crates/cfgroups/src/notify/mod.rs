//! Notifications: telling people what changed and why, through the sinks of the desired
//! state's `notify:` section (a generic JSON webhook, or a Slack-compatible incoming
//! webhook), without ever holding up a reconcile.
//!
//! - [`event`]: one notification and its JSON payload;
//! - [`slack`]: the same event as a Slack message;
//! - [`tracker`]: deduplication across cycles (on change, plus reminders; `recovered` when a
//!   problem ends);
//! - [`delivery`]: each sink's bounded queue and task, retries with backoff, counting;
//! - [`url`]: a sink's URL, from its environment variable or file, never shown.
//!
//! The [`Notifier`] is what `run` and `apply --notify` hold: it renders each routed event
//! for each of its sinks and queues it without waiting.

pub mod delivery;
pub mod event;
pub mod slack;
pub mod tracker;
pub mod url;

use std::sync::Arc;
use std::time::Duration;

pub use delivery::{Delivery, DeliveryCounts, DeliveryObserver, Policy};
pub use event::Event;
pub use tracker::{CycleFacts, Routed, Tracker};

use crate::config::{SinkConfig, SinkKind};
use delivery::{Message, SinkWorker};

/// Why notifications cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot build the notifications' HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// Sinks whose URL cannot be used now: (sink, why). Never the URL itself.
    #[error("notification sink(s) without a usable URL: {}", describe(.0))]
    Urls(Vec<(String, url::UrlError)>),
}

fn describe(problems: &[(String, url::UrlError)]) -> String {
    problems
        .iter()
        .map(|(sink, error)| format!("{sink}: {error}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks that every sink's URL can be read and is acceptable now (`run` at start, `apply
/// --notify`); the problems, by sink.
pub fn check_urls(sinks: &[SinkConfig]) -> Result<(), NotifyError> {
    let problems: Vec<(String, url::UrlError)> = sinks
        .iter()
        .filter_map(|sink| {
            url::resolve(&sink.url)
                .err()
                .map(|error| (sink.name.clone(), error))
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(NotifyError::Urls(problems))
    }
}

/// The sinks' delivery tasks.
pub struct Notifier {
    workers: Vec<SinkWorker>,
    http: reqwest::Client,
    policy: Policy,
    observer: Arc<dyn DeliveryObserver>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field(
                "sinks",
                &self
                    .workers
                    .iter()
                    .map(|w| w.config.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Starts a delivery task per sink (on the current tokio runtime), reporting to
    /// `observer`.
    pub fn start(
        sinks: &[SinkConfig],
        observer: Arc<dyn DeliveryObserver>,
        policy: Policy,
    ) -> Result<Self, NotifyError> {
        // reqwest is built without a default crypto provider; installing one twice is
        // harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("cfgroups/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            // A redirect would carry the message somewhere the config never named.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(NotifyError::Client)?;
        let mut notifier = Self {
            workers: Vec::new(),
            http,
            policy,
            observer,
        };
        notifier.reconfigure(sinks);
        Ok(notifier)
    }

    /// The sinks in use.
    pub fn sinks(&self) -> Vec<SinkConfig> {
        self.workers.iter().map(|w| w.config.clone()).collect()
    }

    /// Uses `sinks` from now on: a sink whose settings did not change keeps its queue; a
    /// removed or changed one is closed after delivering what it holds (in the background).
    pub fn reconfigure(&mut self, sinks: &[SinkConfig]) {
        let mut kept = Vec::with_capacity(sinks.len());
        for worker in std::mem::take(&mut self.workers) {
            if sinks.contains(&worker.config) {
                kept.push(worker);
            } else {
                let observer = self.observer.clone();
                let name = worker.config.name.clone();
                tokio::spawn(async move {
                    let abandoned = worker.close(Duration::from_secs(60)).await;
                    for _ in 0..abandoned {
                        observer.delivered(&name, Delivery::Dropped);
                    }
                });
            }
        }
        for sink in sinks {
            if !kept.iter().any(|w| w.config == *sink) {
                kept.push(SinkWorker::start(
                    sink.clone(),
                    self.http.clone(),
                    self.policy,
                    self.observer.clone(),
                ));
            }
        }
        kept.sort_by_key(|w| sinks.iter().position(|s| *s == w.config));
        self.workers = kept;
    }

    /// Queues every routed event for its sinks, each rendered as its sink's kind wants;
    /// never waits. A message that finds its sink's queue full is dropped and counted.
    pub fn send(&self, routed: &[Routed]) {
        for item in routed {
            for worker in self
                .workers
                .iter()
                .filter(|w| item.sinks.contains(&w.config.name))
            {
                let body = match worker.config.kind {
                    SinkKind::Webhook => item.event.to_json(),
                    SinkKind::Slack => slack::to_json(&item.event),
                };
                let message = Message {
                    body,
                    event: item.event.event,
                };
                if !worker.enqueue(message) {
                    self.observer
                        .delivered(&worker.config.name, Delivery::Dropped);
                }
            }
        }
    }

    /// Stops taking messages and waits up to `grace` for the queued ones; what is left then
    /// is dropped and counted.
    pub async fn close(self, grace: Duration) {
        let observer = self.observer;
        let closing = self.workers.into_iter().map(|worker| {
            let observer = observer.clone();
            async move {
                let name = worker.config.name.clone();
                let abandoned = worker.close(grace).await;
                for _ in 0..abandoned {
                    observer.delivered(&name, Delivery::Dropped);
                }
            }
        });
        futures_util::future::join_all(closing).await;
    }
}
