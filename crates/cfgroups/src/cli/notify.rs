//! `apply --notify`: the config's notification sinks for one run. Started before anything
//! is listed (a sink whose URL cannot be used stops the apply before it touches anything),
//! told once at the end what the run found and did, then given a bounded time to deliver.
//! With no memory of earlier runs, every current problem is sent (and no `recovered`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::time::Instant;

use crate::apply::Attempt;
use crate::config::DesiredState;
use crate::notify::{self, CycleFacts, Delivery, DeliveryCounts, Notifier, Policy, Tracker};
use crate::plan::Plan;

/// How long `apply` waits for its notifications at the end.
pub const GRACE: Duration = Duration::from_secs(30);

/// The run's notifications.
pub struct RunNotifications {
    notifier: Notifier,
    tally: Arc<DeliveryCounts>,
    state_dir: PathBuf,
}

impl RunNotifications {
    /// The sinks of `desired`, when `--notify` was given; an error when there are none or a
    /// URL cannot be used.
    pub fn start(
        wanted: bool,
        desired: &DesiredState,
        state_dir: &Path,
    ) -> anyhow::Result<Option<Self>> {
        if !wanted {
            return Ok(None);
        }
        if desired.notify.is_empty() {
            bail!("--notify: the config declares no notification sinks (a `notify:` section)");
        }
        notify::check_urls(&desired.notify).context("--notify")?;
        let tally = Arc::new(DeliveryCounts::default());
        let notifier = Notifier::start(&desired.notify, tally.clone(), Policy::default())?;
        Ok(Some(Self {
            notifier,
            tally,
            state_dir: state_dir.to_owned(),
        }))
    }

    /// Sends what the run `run_id` found (`plan`) and did (`attempts`), waits up to
    /// [`GRACE`] for delivery, and says how it went on stderr.
    pub async fn finish(self, run_id: &str, plan: &Plan, attempts: &[Attempt]) {
        let facts = CycleFacts {
            run_id,
            plan,
            attempts,
            state_dir: &self.state_dir,
        };
        let routed = Tracker::new().observe(&facts, &self.notifier.sinks(), Instant::now());
        self.notifier.send(&routed);
        self.notifier.close(GRACE).await;
        eprintln!(
            "Notifications: {} delivered, {} failed, {} dropped.",
            self.tally.get(Delivery::Delivered),
            self.tally.get(Delivery::Failed),
            self.tally.get(Delivery::Dropped)
        );
    }
}
