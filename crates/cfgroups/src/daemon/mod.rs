//! The long-running `run` command's parts: the config watch, the health and metrics server,
//! the Prometheus metrics and the systemd notifications the reconcile loop ties together.
//!
//! - [`watcher`]: a coalescing watch on the config's directory ("new complete content may
//!   be there");
//! - [`writes`]: which config files are being written right now (content is taken only once
//!   complete: closed by its writer, or renamed into place);
//! - [`reload`]: reading the config for the loop, and suspending deletions while no valid
//!   config is on disk;
//! - [`gate`]: the [`ReloadGate`] that compares content hashes ("changed");
//! - [`metrics`]: every `cfgroups_*` series, with typed update methods;
//! - [`server`]: `/healthz`, `/readyz` and `/metrics` over HTTP, and the [`Health`] state;
//! - [`read_timeout`]: the socket wrapper that closes a connection gone quiet;
//! - [`systemd`]: `sd_notify` readiness, status and watchdog pings;
//! - [`schedule`]: the interval tick with jitter and per-account retry backoff;
//! - [`refused`]: deletions Cloudflare refused for good, held off per group (waits doubling
//!   up to a day, reset when the config or the group changes);
//! - [`suspend`]: `run --suspend-file`, the operator's emergency brake without a commit;
//! - [`guard_metrics`]: the series of suspension, refused deletions and notifications;
//! - [`guards`]: what the loop does around each cycle for those guards;
//! - [`election`]: leader election (Kubernetes Lease or etcd), so that of several replicas
//!   exactly one talks to Cloudflare;
//! - [`rate_limit`]: the log lines and metrics of requests waiting for the rate limit;
//! - [`controller`]: the reconcile loop that ties them together.
//!
//! The loop is level-triggered: whatever wakes it (start, a watch event, the interval tick,
//! SIGHUP), it re-reads the config (unless a write is in progress), asks the [`ReloadGate`]
//! whether the content changed, and reconciles every account from scratch. No part here decides anything from which event
//! fired.

pub mod controller;
pub mod election;
pub mod gate;
pub mod guard_metrics;
pub mod guards;
pub mod metrics;
pub mod rate_limit;
pub mod read_timeout;
pub mod refused;
pub mod reload;
pub mod schedule;
pub mod server;
pub mod suspend;
pub mod systemd;
pub mod watcher;
pub mod writes;

pub use gate::{Reload, ReloadGate};
pub use metrics::{AccountResult, DriftKind, LeaderChange, Metrics, ReconcileResult};
pub use reload::{ReloadOutcome, Reloader};
pub use server::{
    DEFAULT_LISTEN, Health, ServerError, ServerHandle, ServerOptions, serve, serve_with,
};
pub use watcher::{ConfigWatcher, DEFAULT_DEBOUNCE, MIN_DEBOUNCE, WatchError};
pub use writes::{ConfigScope, Writes};
