//! Leader election for `cfgroups run`: with two or more replicas, exactly one (the leader)
//! talks to Cloudflare; the others stand by, watch and validate the config, serve health and
//! metrics, and take over when the leader goes away.
//!
//! The lock lives in an engine teams already run, not in a lock of our own:
//! - [`kubernetes`]: a `coordination.k8s.io/v1` Lease, read and written through kube-rs'
//!   `Api<Lease>`, every write a full update under the `resourceVersion` it was computed
//!   from, so two replicas racing for the lock cannot both win (the API server answers the
//!   second one 409 Conflict);
//! - [`etcd`]: etcd's own election API (campaign, leader, resign) on a lease kept alive by
//!   the replica, through etcd's v3 JSON gateway ([`etcd_gateway`]).
//!
//! Both share the timing in [`lease`] and publish through [`leadership`]: the controller
//! holds a [`Leadership`] value, checks it right before each batch of writes, and runs each
//! reconcile under a [`TermGuard`] whose token is cancelled the moment the term ends.
//! [`LeaderWriter`] (in [`gate`]) makes the executor ask once more right before each
//! deletion starts.
//!
//! Shutdown order, which [`Election::release`] leaves to its caller: the controller stops
//! first (a DELETE in flight finishes and is journaled), then the lock is released, so the
//! next leader starts only after the last write of this one.

pub mod etcd;
pub mod etcd_gateway;
pub mod gate;
pub mod kubernetes;
pub mod leadership;
pub mod lease;

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use gate::LeaderWriter;
pub use leadership::{Leadership, Publisher, Standing, Term, TermGuard};
pub use lease::{LeaseTiming, TimingError};

use crate::daemon::Metrics;

/// Which lock, and where.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A Lease in the cluster that kube-rs finds (a kubeconfig from `KUBECONFIG` or
    /// `~/.kube/config`, else the pod's service account).
    Kubernetes(KubernetesSettings),
    /// An election on an etcd cluster.
    Etcd(EtcdSettings),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Kubernetes(_) => "kubernetes",
            Self::Etcd(_) => "etcd",
        }
    }
}

/// Where the Lease lives.
#[derive(Debug, Clone, Default)]
pub struct KubernetesSettings {
    /// The Lease's namespace. Default: `POD_NAMESPACE` (the CLI reads it), else the pod's
    /// service account namespace file, else the kubeconfig context's namespace.
    pub namespace: Option<String>,
}

/// How to reach etcd.
#[derive(Debug, Clone, Default)]
pub struct EtcdSettings {
    /// Client URLs of the cluster's members (`http://` or `https://`); tried in order, the
    /// next one when a member does not answer.
    pub endpoints: Vec<String>,
    /// PEM file of the CA that signed the members' certificates (only it is trusted).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and its key, for members that require client certificates.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Files holding the user name and password, for clusters with authentication on.
    pub username_file: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
}

/// Everything an election needs.
#[derive(Debug, Clone)]
pub struct ElectionSettings {
    /// This replica's name in the lock: unique among the replicas (two replicas with one
    /// name would both believe they hold it). Default: the pod name or the host name.
    pub identity: String,
    /// The lock's name: the Lease's name, the etcd election's name. Replicas that share it
    /// elect one leader among themselves.
    pub lock_name: String,
    pub timing: LeaseTiming,
    pub backend: Backend,
}

/// Why an election could not start.
#[derive(Debug, Error)]
pub enum ElectionError {
    #[error("leader election timing: {0}")]
    Timing(#[from] TimingError),
    #[error(
        "the replica identity must be 1 to 253 printable ASCII characters without spaces, got {0:?}"
    )]
    Identity(String),
    #[error(
        "the lock name must be a lowercase DNS subdomain (a-z, 0-9, '-', '.'; at most 253), got {0:?}"
    )]
    LockName(String),
    #[error(transparent)]
    Kubernetes(#[from] kubernetes::KubernetesError),
    #[error(transparent)]
    Etcd(#[from] etcd_gateway::GatewayError),
}

/// A running elector.
#[derive(Debug)]
pub struct Election {
    release: CancellationToken,
    task: JoinHandle<()>,
    /// How long a release may take before it is abandoned.
    release_timeout: Duration,
}

impl Election {
    /// Validates `settings`, connects, and starts campaigning in the background. The
    /// [`Leadership`] starts as a standby and follows the election from then on.
    pub async fn start(
        settings: ElectionSettings,
        metrics: Metrics,
    ) -> Result<(Leadership, Election), ElectionError> {
        settings.timing.validate()?;
        check_identity(&settings.identity)?;
        check_lock_name(&settings.lock_name)?;
        let (publisher, leadership) = Publisher::new(&settings.identity, metrics);
        let release = CancellationToken::new();
        let timing = settings.timing;
        tracing::info!(
            backend = settings.backend.name(),
            identity = %settings.identity,
            lock = %settings.lock_name,
            lease_duration = ?timing.lease_duration,
            renew_deadline = ?timing.renew_deadline,
            retry_period = ?timing.retry_period,
            "leader election: standing by until this replica holds the lock"
        );
        let task = match settings.backend {
            Backend::Kubernetes(kubernetes) => {
                let elector = kubernetes::LeaseElector::connect(
                    &kubernetes,
                    &settings.lock_name,
                    &settings.identity,
                    timing,
                )
                .await?;
                tokio::spawn(elector.run(publisher, release.clone()))
            }
            Backend::Etcd(etcd) => {
                let gateway = etcd_gateway::Gateway::connect(&etcd, timing.request_timeout())?;
                let elector = etcd::EtcdElector::new(
                    gateway,
                    &settings.lock_name,
                    &settings.identity,
                    timing,
                );
                tokio::spawn(elector.run(publisher, release.clone()))
            }
        };
        Ok((
            leadership,
            Election {
                release,
                task,
                release_timeout: timing.renew_deadline,
            },
        ))
    }

    /// [`start`](Self::start) on a Kubernetes Lease through an `Api<Lease>` made elsewhere
    /// (tests point one at a fake API server); `settings.backend` is not used.
    pub fn start_on_lease_api(
        settings: ElectionSettings,
        api: kube::Api<k8s_openapi::api::coordination::v1::Lease>,
        namespace: &str,
        metrics: Metrics,
    ) -> Result<(Leadership, Election), ElectionError> {
        settings.timing.validate()?;
        check_identity(&settings.identity)?;
        check_lock_name(&settings.lock_name)?;
        let (publisher, leadership) = Publisher::new(&settings.identity, metrics);
        let release = CancellationToken::new();
        let elector = kubernetes::LeaseElector::with_api(
            api,
            namespace,
            &settings.lock_name,
            &settings.identity,
            settings.timing,
        );
        let task = tokio::spawn(elector.run(publisher, release.clone()));
        Ok((
            leadership,
            Election {
                release,
                task,
                release_timeout: settings.timing.renew_deadline,
            },
        ))
    }

    /// Stops campaigning and, if this replica leads, releases the lock so a standby takes
    /// over at once instead of waiting for the lease to expire. Call it after the
    /// controller has stopped: the release is the last thing this leader does.
    pub async fn release(self) {
        self.release.cancel();
        let mut task = self.task;
        if tokio::time::timeout(self.release_timeout, &mut task)
            .await
            .is_err()
        {
            tracing::warn!(
                "the lock was not released in time; the standby takes over when the lease expires"
            );
            task.abort();
        }
    }
}

impl Election {
    /// Stops campaigning at once without releasing anything, as a crash would: the lock
    /// frees itself when the lease expires. For tests of exactly that.
    pub fn abort(self) {
        self.task.abort();
    }
}

/// Checks a replica identity: what the lock records and the `User-Agent` carries.
pub fn check_identity(identity: &str) -> Result<(), ElectionError> {
    let ok = !identity.is_empty()
        && identity.len() <= 253
        && identity.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ElectionError::Identity(identity.to_owned()))
    }
}

/// A Lease's name is a DNS subdomain; the same rule keeps etcd election names tidy.
fn check_lock_name(name: &str) -> Result<(), ElectionError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
    if ok {
        Ok(())
    } else {
        Err(ElectionError::LockName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_and_lock_names_are_checked() {
        for good in ["cfgroups-0", "host.example.com", "pod_a:1"] {
            assert!(check_identity(good).is_ok(), "{good}");
        }
        for bad in ["", "two words", "tab\there", "ünïcode"] {
            assert!(check_identity(bad).is_err(), "{bad:?}");
        }
        for good in ["cfgroups", "cfgroups-production", "cfgroups.team-a"] {
            assert!(check_lock_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Cfgroups",
            "-cfgroups",
            "cfgroups-",
            "a..b",
            "a/b",
            "a_b",
        ] {
            assert!(check_lock_name(bad).is_err(), "{bad:?}");
        }
    }
}
