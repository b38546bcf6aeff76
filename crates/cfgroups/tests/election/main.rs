//! Leader election: the electors on their own against a real etcd and a fake Kubernetes
//! Lease API, then `cfgroups run` replicas against the fake Cloudflare API on both.
//! `--nocapture` prints the measured handover, takeover and step-down times.

mod cli;
mod daemons;
mod etcd_elector;
mod kubernetes_elector;
mod replicas;
mod support;
