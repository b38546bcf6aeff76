//! The etcd elector: etcd's election service on a lease this replica keeps alive.
//!
//! One loop, woken every retry period (with jitter) and by the campaign's answer:
//! - no lease yet (or it expired): grant one of `lease_duration` seconds;
//! - otherwise keep it alive once. The start of the last keep-alive that succeeded is the
//!   renewal instant: a leader may start writes until `renew_deadline` after it. A
//!   keep-alive that fails past that instant steps the leader down; one that finds the
//!   lease gone steps it down at once and starts over with a new lease;
//! - a leader also asks who leads, and steps down if it is not its own key (someone
//!   deleted it, or the lease expired and another campaigner won);
//! - a standby campaigns (a long request, in its own task, that returns when this replica's
//!   key is the oldest in the election), and learns the holder's identity from `leader`.
//!
//! The term number is the leader key's create revision: etcd hands out revisions in order,
//! so a later term always has a larger number. When etcd comes back after an outage during
//! which the leader stepped down, its lease usually still exists (etcd extends leases when
//! it restarts); the same key then wins the campaign again at once and this replica
//! resumes. On release the leader resigns (deleting its key: the next campaigner wins now)
//! and revokes its lease.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::etcd_gateway::{Gateway, GatewayError, LeaderKey, LeaseId};
use super::leadership::Publisher;
use super::lease::LeaseTiming;

/// Campaigns in one etcd election as one replica.
#[derive(Debug)]
pub struct EtcdElector {
    gateway: Arc<Gateway>,
    /// The election's name (its key prefix).
    name: String,
    identity: String,
    timing: LeaseTiming,
}

/// The loop's state.
struct State {
    lease: Option<LeaseId>,
    /// The start of the last keep-alive (or grant) of `lease` that succeeded.
    renewed_at: Option<Instant>,
    /// This replica's key, while it leads.
    leading: Option<LeaderKey>,
    /// The campaign in flight, if any.
    campaign: Option<JoinHandle<Result<LeaderKey, GatewayError>>>,
}

impl EtcdElector {
    pub fn new(gateway: Gateway, name: &str, identity: &str, timing: LeaseTiming) -> Self {
        Self {
            gateway: Arc::new(gateway),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
        }
    }

    /// Campaigns until `release` is cancelled, then resigns and revokes the lease.
    pub async fn run(self, publisher: Publisher, release: CancellationToken) {
        let mut state = State {
            lease: None,
            renewed_at: None,
            leading: None,
            campaign: None,
        };
        let mut next_tick = Instant::now();
        loop {
            let valid_until = match (&state.leading, state.renewed_at) {
                (Some(_), Some(at)) => Some(self.timing.valid_until(at)),
                _ => None,
            };
            let deadline = async {
                match valid_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let campaign = async {
                match state.campaign.as_mut() {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = release.cancelled() => break,
                () = deadline => {
                    self.step_down_if_late(&mut state, &publisher);
                    continue;
                }
                answer = campaign => {
                    state.campaign = None;
                    match answer {
                        Ok(Ok(key)) => self.won(&mut state, key, &publisher),
                        Ok(Err(e)) => tracing::warn!(error = %e, "etcd campaign failed; retrying"),
                        Err(join) => tracing::warn!(error = %join, "etcd campaign task failed; retrying"),
                    }
                    continue;
                }
                () = tokio::time::sleep_until(next_tick) => {}
            }
            next_tick = Instant::now() + self.timing.jittered_retry();
            self.tick(&mut state, &publisher).await;
        }
        self.release(state, &publisher).await;
    }

    /// One round: hold a lease, renew it, check or seek leadership.
    async fn tick(&self, state: &mut State, publisher: &Publisher) {
        let Some(lease) = state.lease else {
            let started = Instant::now();
            match self.gateway.grant(self.timing.lease_seconds()).await {
                Ok((lease, ttl)) => {
                    tracing::debug!(%lease, ttl, "etcd lease granted");
                    state.lease = Some(lease);
                    state.renewed_at = Some(started);
                    self.campaign(state);
                }
                Err(e) => tracing::warn!(error = %e, "cannot get an etcd lease; retrying"),
            }
            return;
        };

        let started = Instant::now();
        let deadline = match (&state.leading, state.renewed_at) {
            (Some(_), Some(renewed)) => self.timing.valid_until(renewed),
            _ => started + self.timing.request_timeout(),
        };
        let renewal = tokio::time::timeout_at(deadline, self.gateway.keep_alive(lease)).await;
        match renewal {
            Ok(Ok(Some(_ttl))) => {
                state.renewed_at = Some(started);
                if state.leading.is_some() {
                    publisher.renewed(self.timing.valid_until(started));
                }
            }
            Ok(Ok(None)) => {
                tracing::warn!(%lease, "the etcd lease expired; starting over with a new one");
                self.lose(state, publisher, "the etcd lease expired");
                state.lease = None;
                state.renewed_at = None;
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot renew the etcd lease");
                self.step_down_if_late(state, publisher);
                return;
            }
            Err(_elapsed) => {
                tracing::warn!("renewing the etcd lease timed out");
                self.step_down_if_late(state, publisher);
                return;
            }
        }

        match &state.leading {
            Some(key) => match self.gateway.leader(&self.name).await {
                Ok(Some(leader)) if leader.key == key.key => {}
                Ok(other) => {
                    let holder = other.map(|l| l.value);
                    tracing::warn!(
                        ?holder,
                        "this replica's key no longer leads the etcd election"
                    );
                    self.lose(state, publisher, "another key leads the etcd election");
                    publisher.observe_holder(holder);
                }
                // Renewal decides; a failed look-up alone changes nothing.
                Err(e) => tracing::debug!(error = %e, "cannot ask etcd who leads"),
            },
            None => {
                if state.campaign.is_none() {
                    self.campaign(state);
                }
                match self.gateway.leader(&self.name).await {
                    Ok(leader) => publisher.observe_holder(leader.map(|l| l.value)),
                    Err(e) => tracing::debug!(error = %e, "cannot ask etcd who leads"),
                }
            }
        }
    }

    /// Starts a campaign with the current lease, in its own task.
    fn campaign(&self, state: &mut State) {
        let Some(lease) = state.lease else { return };
        if let Some(old) = state.campaign.take() {
            old.abort();
        }
        let gateway = Arc::clone(&self.gateway);
        let name = self.name.clone();
        let identity = self.identity.clone();
        state.campaign = Some(tokio::spawn(async move {
            gateway.campaign(&name, lease, &identity).await
        }));
    }

    /// The campaign returned: this replica's key is the oldest. It leads if its lease is
    /// known alive; otherwise the next round renews and campaigns again.
    fn won(&self, state: &mut State, key: LeaderKey, publisher: &Publisher) {
        let valid_until = state.renewed_at.map(|at| self.timing.valid_until(at));
        match valid_until {
            Some(until) if state.lease == Some(key.lease) && Instant::now() < until => {
                publisher.lead(u64::try_from(key.rev).unwrap_or(0), until);
                state.leading = Some(key);
            }
            _ => {
                tracing::debug!("won an etcd campaign with a lease not known alive; renewing first")
            }
        }
    }

    /// A renewal failed: the leader steps down once its renew deadline has passed.
    fn step_down_if_late(&self, state: &mut State, publisher: &Publisher) {
        let late = state
            .renewed_at
            .is_none_or(|at| Instant::now() >= self.timing.valid_until(at));
        if late && state.leading.is_some() {
            self.lose(
                state,
                publisher,
                "could not renew the etcd lease within the renew deadline",
            );
        }
    }

    /// Steps down (if leading) and forgets the campaign; the lease is kept.
    fn lose(&self, state: &mut State, publisher: &Publisher, reason: &str) {
        if let Some(task) = state.campaign.take() {
            task.abort();
        }
        if state.leading.take().is_some() {
            publisher.step_down(reason, None);
        }
    }

    /// Resigns if leading and revokes the lease, each under the request timeout.
    async fn release(&self, mut state: State, publisher: &Publisher) {
        if let Some(task) = state.campaign.take() {
            task.abort();
        }
        if let Some(key) = state.leading.take() {
            publisher.step_down("released the lock on shutdown", None);
            match self.gateway.resign(&key).await {
                Ok(()) => {
                    tracing::info!("resigned from the etcd election; a standby takes over now")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot resign; the lease's revocation or expiry frees the lock")
                }
            }
        }
        if let Some(lease) = state.lease.take()
            && let Err(e) = self.gateway.revoke(lease).await
        {
            tracing::warn!(error = %e, "cannot revoke the etcd lease; it expires by itself");
        }
    }
}
