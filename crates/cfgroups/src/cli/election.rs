//! `run`'s leader-election flags into [`ElectionSettings`]: the backend, the identity (the
//! flag or `POD_NAME`, else the host name), the timing and the backend's own settings.

use anyhow::Context;

use super::{ElectionArgs, ElectionBackend};
use crate::daemon::election::{
    Backend, ElectionSettings, EtcdSettings, KubernetesSettings, LeaseTiming, check_identity,
};

/// The election the flags ask for; `None` for `--leader-election none`.
pub fn settings(args: &ElectionArgs) -> anyhow::Result<Option<ElectionSettings>> {
    let backend = match args.leader_election {
        ElectionBackend::None => return Ok(None),
        ElectionBackend::Kubernetes => Backend::Kubernetes(KubernetesSettings {
            namespace: args.lease_namespace.clone(),
        }),
        ElectionBackend::Etcd => {
            if args.etcd_endpoints.is_empty() {
                anyhow::bail!("--leader-election etcd needs --etcd-endpoints URL[,URL...]");
            }
            Backend::Etcd(EtcdSettings {
                endpoints: args.etcd_endpoints.clone(),
                ca_file: args.etcd_ca_file.clone(),
                cert_file: args.etcd_cert_file.clone(),
                key_file: args.etcd_key_file.clone(),
                username_file: args.etcd_username_file.clone(),
                password_file: args.etcd_password_file.clone(),
            })
        }
    };
    let identity = match args.identity.as_deref().map(str::trim) {
        Some(identity) if !identity.is_empty() => identity.to_owned(),
        _ => hostname().context(
            "cannot tell this replica's identity: pass --identity NAME (or set POD_NAME)",
        )?,
    };
    check_identity(&identity)?;
    Ok(Some(ElectionSettings {
        identity,
        lock_name: args.lock_name.clone(),
        timing: LeaseTiming {
            lease_duration: args.lease_duration,
            renew_deadline: args.renew_deadline,
            retry_period: args.retry_period,
        },
        backend,
    }))
}

/// The host name, as the kernel knows it.
fn hostname() -> anyhow::Result<String> {
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned());
    from_kernel
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|name| !name.is_empty())
        .context("no host name in /proc/sys/kernel/hostname or $HOSTNAME")
}
