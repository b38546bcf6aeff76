//! The long-running `run` command's parts: the config watch, the health and metrics server,
//! the Prometheus metrics and the systemd notifications the reconcile loop ties together.
//!
//! - [`watcher`]: a debounced watch on the config's directory ("maybe changed") and the
//!   [`ReloadGate`] that compares content hashes ("changed");
//! - [`metrics`]: every `cfgroups_*` series, with typed update methods;
//! - [`server`]: `/healthz`, `/readyz` and `/metrics` over HTTP, and the [`Health`] state;
//! - [`systemd`]: `sd_notify` readiness, status and watchdog pings;
//! - [`schedule`]: the interval tick with jitter and per-account retry backoff;
//! - [`rate_limit`]: the log lines and metrics of requests waiting for the rate limit;
//! - [`controller`]: the reconcile loop that ties them together.
//!
//! The loop is level-triggered: whatever wakes it (start, a watch event, the interval tick,
//! SIGHUP), it re-reads the config, asks the [`ReloadGate`] whether the content changed, and
//! reconciles every account from scratch. No part here decides anything from which event
//! fired.

pub mod controller;
pub mod metrics;
pub mod rate_limit;
pub mod schedule;
pub mod server;
pub mod systemd;
pub mod watcher;

pub use metrics::{DriftKind, Metrics, ReconcileResult};
pub use server::{DEFAULT_LISTEN, Health, ServerError, ServerHandle, serve};
pub use watcher::{ConfigWatcher, DEFAULT_DEBOUNCE, MIN_DEBOUNCE, Reload, ReloadGate, WatchError};
