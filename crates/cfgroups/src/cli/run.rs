//! `run`: start the daemon — load the config, serve health and metrics, watch the config,
//! handle signals, join the leader election if asked, and hand over to the reconcile loop.
//! On shutdown the loop stops first (a deletion in flight finishes and is journaled), and
//! only then is the lock released.

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{Exit, RunArgs, connect, election};
use crate::apply::ApplyOptions;
use crate::config;
use crate::daemon::controller::{Controller, ControllerOptions, Telemetry, Wakers};
use crate::daemon::election::{Election, LeaderWriter, Leadership};
use crate::daemon::guards::Guards;
use crate::daemon::refused::RefusedDeletions;
use crate::daemon::suspend::SuspendFile;
use crate::daemon::{ConfigWatcher, Health, Metrics, rate_limit, serve, systemd};
use crate::journal::{JOURNAL_FILE, Journal};
use crate::notify::{self, Notifier, Policy};
use crate::plan::PlanOptions;
use crate::reconcile::{Pipeline, PipelineOptions};
use crate::source::CloudflareSource;
use crate::state_dir;

pub async fn run(args: &RunArgs) -> anyhow::Result<Exit> {
    let desired = config::load(&args.config.config)?;
    let state_dir = state_dir::resolve(args.state.state_dir.clone());
    let journal = Arc::new(Journal::open(&state_dir.join(JOURNAL_FILE))?);
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"));
    metrics.record_reload(true, SystemTime::now());
    let election_settings = election::settings(&args.election)?;
    let replica = election_settings.as_ref().map(|s| s.identity.clone());
    let client =
        connect::observed_client(&args.api, Arc::new(metrics.clone()), replica.as_deref())?;
    let _rate_limit_watch = rate_limit::watch(client.budget().clone(), metrics.clone());
    // Notifications: every sink's URL must be usable at start (a typo in a variable name is
    // better found now than at the first deletion).
    let notifier = if desired.notify.is_empty() {
        None
    } else {
        notify::check_urls(&desired.notify)?;
        let observer = Arc::new(metrics.guards().clone());
        Some(Notifier::start(
            &desired.notify,
            observer,
            Policy::default(),
        )?)
    };
    let health = Health::new(args.interval);
    let server = serve(args.listen, health.clone(), metrics.clone())
        .await
        .context("cannot serve health and metrics")?;
    let (watcher, config_changed) = ConfigWatcher::start(&args.config.config, args.debounce)?;
    let stop = CancellationToken::new();
    let (hangup_tx, hangup) = mpsc::channel(1);
    let (shutdown_tx, shutdown) = watch::channel(false);
    handle_signals(stop.clone(), hangup_tx, shutdown_tx)?;
    // Campaigning starts once nothing else can fail the start: a lock won by a process that
    // then exits is held until its lease expires.
    let (leadership, election) = match election_settings {
        None => (Leadership::always(), None),
        Some(settings) => {
            let (leadership, election) = Election::start(settings, metrics.clone())
                .await
                .context("cannot start the leader election")?;
            (leadership, Some(election))
        }
    };
    tracing::info!(
        listen = %server.local_addr(),
        accounts = desired.accounts.len(),
        dry_run = args.dry_run,
        leader_election = ?args.election.leader_election,
        interval = %humantime::format_duration(args.interval),
        "cfgroups daemon started"
    );

    let telemetry = Telemetry {
        metrics,
        health,
        budget: client.budget().clone(),
    };
    // The daemon never forces past `max_deletes`: that override is one-shot `apply --force`.
    let pipeline = Pipeline::new(
        CloudflareSource::new(client.clone()),
        LeaderWriter::new(client, leadership.clone()),
        journal,
        PipelineOptions {
            listing_concurrency: usize::from(args.concurrency),
            apply: ApplyOptions {
                backup_members: !args.no_backup_members,
                concurrency: usize::from(args.apply_concurrency),
            },
            plan: PlanOptions::default(),
        },
    );
    let options = ControllerOptions {
        config: args.config.config.clone(),
        state_dir: state_dir.clone(),
        dry_run: args.dry_run,
        interval: args.interval,
        debounce: args.debounce,
    };
    let guards = Guards::new(
        RefusedDeletions::default(),
        args.suspend_file.clone().map(SuspendFile::new),
    )
    .with_notifier(notifier, state_dir);
    let controller = Controller::new(options, desired, pipeline, telemetry, stop, leadership)
        .with_guards(guards);
    if let Err(e) = systemd::notify_ready() {
        tracing::warn!(error = %e, "systemd readiness notification failed");
    }
    controller
        .run(Wakers {
            config_changed,
            writes: watcher.writes().clone(),
            hangup,
            shutdown,
        })
        .await;
    if let Some(election) = election {
        election.release().await;
    }
    server.shutdown().await?;
    Ok(Exit::Success)
}

/// SIGHUP wakes the loop; the first SIGTERM/SIGINT stops it between deletions; a second
/// one exits at once.
fn handle_signals(
    stop: CancellationToken,
    hangup: mpsc::Sender<()>,
    shutdown: watch::Sender<bool>,
) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        loop {
            let stopping = tokio::select! {
                Some(()) = hup.recv() => false,
                Some(()) = term.recv() => true,
                Some(()) = int.recv() => true,
                else => return,
            };
            if !stopping {
                let _ = hangup.try_send(());
                continue;
            }
            if stop.is_cancelled() {
                tracing::warn!("second stop signal: exiting now");
                std::process::exit(130);
            }
            tracing::info!("stopping: finishing the deletion in flight, starting no new one");
            stop.cancel();
            let _ = shutdown.send(true);
            if let Err(e) = systemd::notify_stopping() {
                tracing::warn!(error = %e, "systemd stopping notification failed");
            }
        }
    });
    Ok(())
}
