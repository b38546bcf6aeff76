//! The Kubernetes elector: a `coordination.k8s.io/v1` Lease, with client-go's
//! leader-election algorithm over kube-rs' plain `Api<Lease>`.
//!
//! Every retry period (with jitter) the replica reads the Lease and decides ([`decide`]):
//! - it does not exist: create it, holding it (a second creator gets 409 AlreadyExists);
//! - someone else holds it and, by this replica's own clock, the record has changed within
//!   the last `leaseDurationSeconds`: stand by. The record's timestamps are never compared
//!   with the local clock: expiry counts from when *this* replica saw the record change,
//!   so clock skew between nodes cannot make a live lease look expired;
//! - otherwise (it holds it, nobody does, or the holder stopped renewing): write itself as
//!   holder, renewing or taking over (`leaseTransitions` + 1 on a change of holder), with a
//!   full update (`PUT`) that carries the `resourceVersion` the decision was made from. If
//!   anyone wrote the Lease in between, the API server refuses it with 409 Conflict and the
//!   replica decides again next round: two replicas racing for an expired Lease cannot
//!   both win. No write is ever sent without that precondition.
//!
//! A standby also watches the Lease between rounds; an event that shows it released (no
//! holder) or deleted starts a round at once, so a clean handover takes a round trip
//! rather than a retry period. The watch is only a hint: decisions are made by the rounds.
//!
//! A successful write started at `t` lets the leader start writes until
//! `t + renew_deadline`; a leader that cannot renew by then steps down. On release the
//! leader writes an empty holder with a 1 s duration (as client-go's `ReleaseOnCancel`),
//! again under its `resourceVersion`, so a standby takes over on its next round.
//!
//! Why not a lease crate: `kube-lease-manager` renews with strategic-merge patches and
//! takes orphaned leases with server-side apply, neither carrying a `resourceVersion`, so a
//! renewal can land on a Lease another replica has just taken; `kubert`'s `LeaseManager`
//! does use `resourceVersion` preconditions, but pins kube 1.1 (a second Kubernetes client
//! stack next to kube 5, and the archived `serde_yaml` our supply-chain policy bans), and has
//! no renew deadline: its holder believes in its claim until the claim's expiry. The
//! algorithm here is client-go's, written out in this file and tested against a fake API
//! server that enforces `resourceVersion` as the real one does.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{PostParams, WatchEvent, WatchParams};
use thiserror::Error;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::KubernetesSettings;
use super::leadership::Publisher;
use super::lease::LeaseTiming;

/// The service account's namespace, inside a pod.
pub const SERVICE_ACCOUNT_NAMESPACE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The verbs this elector uses on `leases`, which its Role must grant: read, create the
/// first time, full update under `resourceVersion`, and watch (a standby, for releases);
/// never patch, never delete.
pub const VERBS: &[&str] = &["get", "create", "update", "watch"];

/// Why the Kubernetes elector could not start, or a round failed.
#[derive(Debug, Error)]
pub enum KubernetesError {
    #[error("cannot find a Kubernetes API server (no kubeconfig, not in a pod): {0}")]
    Config(#[source] kube::config::InferConfigError),
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("Kubernetes API: {0}")]
    Api(#[source] kube::Error),
    #[error("the Lease came back without a resourceVersion; refusing to update it without one")]
    NoResourceVersion,
}

impl KubernetesError {
    /// Another writer got there first (409): not a failure of the API, just a lost race.
    fn is_conflict(&self) -> bool {
        matches!(self, Self::Api(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists())
    }
}

/// The parts of a Lease the election reads, for noticing changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub holder: Option<String>,
    pub lease_duration_seconds: Option<i32>,
    pub acquire_time: Option<Timestamp>,
    pub renew_time: Option<Timestamp>,
    pub transitions: i32,
}

impl Record {
    pub fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            lease_duration_seconds: spec.lease_duration_seconds,
            acquire_time: spec.acquire_time.map(|t| t.0),
            renew_time: spec.renew_time.map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }
}

/// The record as this replica last saw it, and when (by its own clock) it last changed.
#[derive(Debug, Clone)]
pub struct Observed {
    pub record: Record,
    pub changed_at: Instant,
}

impl Observed {
    /// Notes `record`, seen at `now`: the clock restarts only if it changed.
    pub fn see(previous: Option<&Observed>, record: Record, now: Instant) -> Observed {
        match previous {
            Some(seen) if seen.record == record => seen.clone(),
            _ => Observed {
                record,
                changed_at: now,
            },
        }
    }
}

/// What to do with the Lease this round.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Someone else holds a live lease: stand by.
    Standby { holder: String },
    /// Write this spec (over the observed `resourceVersion`): renew or take over.
    Hold(LeaseSpec),
}

/// client-go's `tryAcquireOrRenew` decision, given the record as seen and when it last
/// changed.
pub fn decide(
    observed: &Observed,
    identity: &str,
    timing: &LeaseTiming,
    now: Instant,
    wall: Timestamp,
) -> Decision {
    let record = &observed.record;
    if let Some(holder) = &record.holder
        && holder != identity
    {
        let duration = record
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(timing.lease_duration, Duration::from_secs);
        if now < observed.changed_at + duration {
            return Decision::Standby {
                holder: holder.clone(),
            };
        }
    }
    let ours = record.holder.as_deref() == Some(identity);
    let (acquire_time, transitions) = if ours {
        (record.acquire_time.unwrap_or(wall), record.transitions)
    } else {
        (wall, record.transitions.saturating_add(1))
    };
    Decision::Hold(LeaseSpec {
        holder_identity: Some(identity.to_owned()),
        lease_duration_seconds: Some(i32::try_from(timing.lease_seconds()).unwrap_or(i32::MAX)),
        acquire_time: Some(MicroTime(acquire_time)),
        renew_time: Some(MicroTime(wall)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    })
}

/// How a round ended.
enum Round {
    /// This replica holds the Lease, in term `transitions`.
    Holding { term: u64 },
    /// Someone else does; the Lease's `resourceVersion`, to watch from.
    HeldBy(String, Option<String>),
}

/// Events of the watched Lease.
type LeaseEvents = BoxStream<'static, Result<WatchEvent<Lease>, kube::Error>>;

/// How long the API server keeps one watch open before the standby opens another.
const WATCH_SECONDS: u32 = 290;

/// Campaigns for one Lease as one replica.
pub struct LeaseElector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    timing: LeaseTiming,
}

impl std::fmt::Debug for LeaseElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseElector")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl LeaseElector {
    /// Finds the API server (kubeconfig, else the pod's service account) and the namespace.
    pub async fn connect(
        settings: &KubernetesSettings,
        name: &str,
        identity: &str,
        timing: LeaseTiming,
    ) -> Result<Self, KubernetesError> {
        // kube's rustls wants a process-wide crypto provider; a second install is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = kube::Config::infer()
            .await
            .map_err(KubernetesError::Config)?;
        let namespace = settings
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .or_else(|| {
                std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
                    .ok()
                    .map(|ns| ns.trim().to_owned())
                    .filter(|ns| !ns.is_empty())
            })
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(KubernetesError::Client)?;
        Ok(Self::with_api(
            Api::namespaced(client, &namespace),
            &namespace,
            name,
            identity,
            timing,
        ))
    }

    /// An elector over an `Api<Lease>` already made (tests point it at a fake API server).
    pub fn with_api(
        api: Api<Lease>,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: LeaseTiming,
    ) -> Self {
        Self {
            api,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
        }
    }

    /// Campaigns until `release` is cancelled, then releases the Lease if it holds it.
    pub async fn run(self, publisher: Publisher, release: CancellationToken) {
        tracing::info!(namespace = %self.namespace, lease = %self.name, "leader election on a Kubernetes Lease");
        let mut observed: Option<Observed> = None;
        let mut next_round = Instant::now();
        let mut events: Option<LeaseEvents> = None;
        loop {
            let valid_until = publisher.term().and_then(|t| t.valid_until);
            let deadline = async {
                match valid_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = release.cancelled() => break,
                () = deadline => {
                    publisher.step_down("could not renew the Lease within the renew deadline", None);
                    continue;
                }
                event = next_event(&mut events) => {
                    match event {
                        Some(Ok(WatchEvent::Added(lease) | WatchEvent::Modified(lease)))
                            if Record::of(&lease).holder.is_none() =>
                        {
                            tracing::debug!("the Lease was released; trying now");
                            next_round = Instant::now();
                        }
                        Some(Ok(WatchEvent::Deleted(_))) => next_round = Instant::now(),
                        Some(Ok(_)) => {}
                        // Ended or broken: the next round opens another.
                        Some(Err(_)) | None => events = None,
                    }
                    continue;
                }
                () = tokio::time::sleep_until(next_round) => {}
            }
            next_round = Instant::now() + self.timing.jittered_retry();

            let started = Instant::now();
            let bound = valid_until.unwrap_or(started + self.timing.request_timeout());
            let round = tokio::time::timeout_at(bound, self.round(&mut observed, started)).await;
            match round {
                Ok(Ok(Round::Holding { term })) => {
                    events = None;
                    let until = self.timing.valid_until(started);
                    match publisher.term() {
                        Some(current) if current.number == term => publisher.renewed(until),
                        _ => publisher.lead(term, until),
                    }
                }
                Ok(Ok(Round::HeldBy(holder, version))) => {
                    if publisher.term().is_some() {
                        publisher.step_down("another replica holds the Lease", Some(holder));
                    } else {
                        publisher.observe_holder(Some(holder));
                    }
                    if events.is_none()
                        && let Some(version) = version
                    {
                        events = self.watch(&version).await;
                    }
                }
                Ok(Err(e)) if e.is_conflict() => {
                    tracing::debug!("the Lease changed under this replica's write; deciding again");
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot read or write the Lease"),
                Err(_elapsed) => tracing::warn!("the Lease request timed out"),
            }
        }
        self.release(&publisher).await;
    }

    /// Opens a watch on the Lease from `version`; `None` if it cannot be opened now.
    async fn watch(&self, version: &str) -> Option<LeaseEvents> {
        let params = WatchParams::default()
            .fields(&format!("metadata.name={}", self.name))
            .timeout(WATCH_SECONDS);
        let opening = self.api.watch(&params, version);
        match tokio::time::timeout(self.timing.request_timeout(), opening).await {
            Ok(Ok(stream)) => Some(stream.boxed()),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot watch the Lease; polling only");
                None
            }
            Err(_) => None,
        }
    }

    /// One read-decide-write round.
    async fn round(
        &self,
        observed: &mut Option<Observed>,
        now: Instant,
    ) -> Result<Round, KubernetesError> {
        let wall = Timestamp::now();
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(KubernetesError::Api)?;
        let Some(mut lease) = current else {
            let Decision::Hold(spec) = decide(
                &Observed {
                    record: Record::of(&Lease::default()),
                    changed_at: now,
                },
                &self.identity,
                &self.timing,
                now,
                wall,
            ) else {
                unreachable!("an empty record is never held by another replica")
            };
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    lease_transitions: Some(0),
                    ..spec
                }),
            };
            let created = self
                .api
                .create(&PostParams::default(), &lease)
                .await
                .map_err(KubernetesError::Api)?;
            *observed = Some(Observed::see(None, Record::of(&created), now));
            return Ok(Round::Holding { term: 0 });
        };

        let seen = Observed::see(observed.as_ref(), Record::of(&lease), now);
        *observed = Some(seen.clone());
        match decide(&seen, &self.identity, &self.timing, now, wall) {
            Decision::Standby { holder } => Ok(Round::HeldBy(
                holder,
                lease.metadata.resource_version.clone(),
            )),
            Decision::Hold(spec) => {
                if lease.metadata.resource_version.is_none() {
                    return Err(KubernetesError::NoResourceVersion);
                }
                let term = u64::try_from(spec.lease_transitions.unwrap_or(0)).unwrap_or(0);
                lease.spec = Some(LeaseSpec {
                    // Fields this elector does not manage (preferredHolder, strategy) stay.
                    preferred_holder: lease.spec.as_ref().and_then(|s| s.preferred_holder.clone()),
                    strategy: lease.spec.as_ref().and_then(|s| s.strategy.clone()),
                    ..spec
                });
                let updated = self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                    .map_err(KubernetesError::Api)?;
                *observed = Some(Observed::see(None, Record::of(&updated), now));
                Ok(Round::Holding { term })
            }
        }
    }

    /// Writes an empty holder with a 1 s duration if this replica holds the Lease.
    async fn release(&self, publisher: &Publisher) {
        if publisher.term().is_none() {
            return;
        }
        publisher.step_down("released the lock on shutdown", None);
        let released = tokio::time::timeout(self.timing.request_timeout(), async {
            let mut lease = self
                .api
                .get(&self.name)
                .await
                .map_err(KubernetesError::Api)?;
            let record = Record::of(&lease);
            if record.holder.as_deref() != Some(self.identity.as_str()) {
                return Ok(false);
            }
            if lease.metadata.resource_version.is_none() {
                return Err(KubernetesError::NoResourceVersion);
            }
            let now = MicroTime(Timestamp::now());
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
                spec.acquire_time = Some(now.clone());
                spec.renew_time = Some(now);
            }
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
                .map_err(KubernetesError::Api)?;
            Ok(true)
        })
        .await;
        match released {
            Ok(Ok(true)) => {
                tracing::info!("released the Lease; a standby takes over on its next round")
            }
            Ok(Ok(false)) => {
                tracing::info!("the Lease had another holder already; nothing to release")
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot release the Lease; it expires by itself")
            }
            Err(_) => tracing::warn!("releasing the Lease timed out; it expires by itself"),
        }
    }
}

/// The next event of the watch, or never when there is none.
async fn next_event(
    events: &mut Option<LeaseEvents>,
) -> Option<Result<WatchEvent<Lease>, kube::Error>> {
    match events {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "replica-a";

    fn record(holder: Option<&str>, transitions: i32) -> Record {
        Record {
            holder: holder.map(str::to_owned),
            lease_duration_seconds: Some(15),
            acquire_time: Some(Timestamp::UNIX_EPOCH),
            renew_time: Some(Timestamp::UNIX_EPOCH),
            transitions,
        }
    }

    fn hold(decision: Decision) -> LeaseSpec {
        match decision {
            Decision::Hold(spec) => spec,
            other => panic!("expected to hold, got {other:?}"),
        }
    }

    #[test]
    fn a_live_lease_of_another_replica_is_left_alone_until_it_stops_changing_for_its_duration() {
        let timing = LeaseTiming::default();
        let seen_at = Instant::now();
        let observed = Observed {
            record: record(Some("replica-b"), 3),
            changed_at: seen_at,
        };
        let wall = Timestamp::now();
        assert_eq!(
            decide(
                &observed,
                ME,
                &timing,
                seen_at + Duration::from_millis(14_999),
                wall
            ),
            Decision::Standby {
                holder: "replica-b".into()
            }
        );
        let spec = hold(decide(
            &observed,
            ME,
            &timing,
            seen_at + Duration::from_secs(15),
            wall,
        ));
        assert_eq!(spec.holder_identity.as_deref(), Some(ME));
        assert_eq!(
            spec.lease_transitions,
            Some(4),
            "a change of holder is a transition"
        );
        assert_eq!(spec.acquire_time, Some(MicroTime(wall)));
    }

    #[test]
    fn expiry_counts_from_when_this_replica_saw_a_change_not_from_the_record_timestamps() {
        // The holder's renewTime is decades old by our clock (skewed clocks), but we saw
        // the record change just now: it is live.
        let now = Instant::now();
        let observed = Observed::see(None, record(Some("replica-b"), 1), now);
        assert!(matches!(
            decide(
                &observed,
                ME,
                &LeaseTiming::default(),
                now,
                Timestamp::now()
            ),
            Decision::Standby { .. }
        ));
        // The same record seen again later does not restart the clock; a new renewal does.
        let later = now + Duration::from_secs(10);
        let again = Observed::see(Some(&observed), record(Some("replica-b"), 1), later);
        assert_eq!(again.changed_at, now);
        let mut renewed = record(Some("replica-b"), 1);
        renewed.renew_time = Some(Timestamp::now());
        let fresh = Observed::see(Some(&again), renewed, later);
        assert_eq!(fresh.changed_at, later);
    }

    #[test]
    fn the_holder_renews_keeping_its_acquire_time_and_transitions() {
        let now = Instant::now();
        let observed = Observed::see(None, record(Some(ME), 7), now);
        let spec = hold(decide(
            &observed,
            ME,
            &LeaseTiming::default(),
            now,
            Timestamp::now(),
        ));
        assert_eq!(spec.lease_transitions, Some(7));
        assert_eq!(spec.acquire_time, Some(MicroTime(Timestamp::UNIX_EPOCH)));
        assert_eq!(spec.lease_duration_seconds, Some(15));
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let now = Instant::now();
        let mut released = record(None, 2);
        released.lease_duration_seconds = Some(1);
        let observed = Observed::see(None, released, now);
        let spec = hold(decide(
            &observed,
            ME,
            &LeaseTiming::default(),
            now,
            Timestamp::now(),
        ));
        assert_eq!(spec.lease_transitions, Some(3));
    }
}
