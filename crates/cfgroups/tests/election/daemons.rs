//! `cfgroups run` replicas with leader election against the fake Cloudflare API, the same
//! scenarios on a real etcd and on the fake Lease API: exactly one writer, and standbys
//! that send Cloudflare nothing; `kill -9` of the leader and a standby deleting the next
//! group within lease + retry; SIGTERM and a handover well inside the lease; the lock
//! service failing, the leader stopping before its lease could expire and resuming after;
//! and (etcd) twenty forced handovers with edits in between, where every request at the
//! fake came from the leader of its moment and the final state is exact.
//!
//! Figures are printed (`--nocapture`); assertions use generous bounds.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cfgroups_fake::Method;
use testkit::Signal;
use testkit::daemon::metric;

use crate::replicas::{LEASE, Lock, RETRY, Replicas, group_name, sender};

/// A lock service the test can make fail.
enum Server {
    Etcd(testkit::etcd::Etcd),
    Kubernetes {
        api: testkit::lease_api::FakeLeaseApi,
        _dir: tempfile::TempDir,
        kubeconfig: PathBuf,
    },
}

impl Server {
    async fn etcd() -> Server {
        Server::Etcd(testkit::etcd::Etcd::start())
    }

    async fn kubernetes() -> Server {
        let api = testkit::lease_api::FakeLeaseApi::start().await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, api.kubeconfig("cfgroups")).expect("the kubeconfig");
        Server::Kubernetes {
            api,
            _dir: dir,
            kubeconfig,
        }
    }

    fn lock(&self) -> Lock {
        match self {
            Server::Etcd(etcd) => Lock::Etcd {
                endpoint: etcd.endpoint(),
            },
            Server::Kubernetes { kubeconfig, .. } => Lock::Kubernetes {
                kubeconfig: kubeconfig.clone(),
            },
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Server::Etcd(_) => "etcd",
            Server::Kubernetes { .. } => "kubernetes",
        }
    }

    /// etcd stops; the Lease API answers 503 to everything.
    fn fail(&mut self) {
        match self {
            Server::Etcd(etcd) => etcd.stop(),
            Server::Kubernetes { api, .. } => api.set_failing(true),
        }
    }

    fn recover(&mut self) {
        match self {
            Server::Etcd(etcd) => etcd.restart(),
            Server::Kubernetes { api, .. } => api.set_failing(false),
        }
    }

    /// Kubernetes: no update without its `resourceVersion`.
    fn check(&self) {
        if let Server::Kubernetes { api, .. } = self {
            assert_eq!(
                api.unconditional_updates(),
                0,
                "a Lease update without resourceVersion"
            );
        }
    }
}

async fn one_writer_and_silent_standbys(server: Server) {
    let mut replicas = Replicas::new(server.lock(), 3).await;
    replicas.start_all().await;
    let leader = replicas.leader().await;
    let name = replicas.replicas[leader].name.clone();
    for i in 0..3 {
        let daemon = replicas.daemon(i);
        daemon.wait_ready().await;
        daemon
            .wait_metrics("the holder", |text| {
                metric(
                    text,
                    &format!("cfgroups_leader_holder_info{{holder=\"{name}\"}}"),
                )
            })
            .await;
    }
    replicas.mark_absent(0);
    replicas.wait_deleted(0).await;
    assert_eq!(
        replicas.leader().await,
        leader,
        "the leader changed without a reason"
    );
    let requests = replicas.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(
            sender(request).as_deref(),
            Some(name.as_str()),
            "{} {} came from a standby",
            request.method,
            request.path
        );
    }
    assert_eq!(replicas.remaining(), replicas.expected_remaining());
    server.check();
}

async fn kill_9_then_a_standby_deletes_within_lease_and_retry(server: Server) {
    let mut replicas = Replicas::new(server.lock(), 2).await;
    replicas.start_all().await;
    let leader = replicas.leader().await;
    let other = 1 - leader;
    let killed = Instant::now();
    replicas.kill(leader);
    replicas.mark_absent(1);
    let deleted = replicas.wait_deleted(1).await;
    let took = deleted.duration_since(killed);
    println!(
        "{}: kill -9 of the leader to the standby's DELETE: {took:?} (lease {LEASE:?}, retry {RETRY:?})",
        server.name()
    );
    let delete = replicas
        .requests()
        .into_iter()
        .find(|r| r.method == Method::DELETE)
        .expect("a DELETE");
    assert_eq!(
        sender(&delete).as_deref(),
        Some(replicas.replicas[other].name.as_str())
    );
    assert!(
        took < LEASE + RETRY + Duration::from_secs(10),
        "took {took:?}"
    );
    server.check();
}

async fn sigterm_hands_over_without_waiting_for_the_lease(server: Server) {
    // Kubernetes' default timing: without a release the standby would wait about 15 s.
    let mut replicas = Replicas::new(server.lock(), 2)
        .await
        .with_timing("15s", "10s", "2s");
    replicas.start_all().await;
    let leader = replicas.leader().await;
    let other = 1 - leader;
    let term = Instant::now();
    replicas.daemon(leader).signal(Signal::SIGTERM);
    replicas
        .daemon(other)
        .wait_metrics("the standby to lead", |text| {
            metric(text, "cfgroups_leader").filter(|v| *v == 1.0)
        })
        .await;
    let handover = term.elapsed();
    println!(
        "{}: SIGTERM of the leader to the standby leading: {handover:?} (lease 15 s)",
        server.name()
    );
    replicas.terminate(leader).await;
    replicas.mark_absent(2);
    replicas.wait_deleted(2).await;
    assert!(
        handover < Duration::from_secs(5),
        "the standby waited {handover:?}: the lock was not released"
    );
    server.check();
}

async fn a_failing_lock_service_stops_the_leader_before_its_lease_could_expire(mut server: Server) {
    let mut replicas = Replicas::new(server.lock(), 2).await;
    replicas.start_all().await;
    let leader = replicas.leader().await;
    let failed = Instant::now();
    server.fail();
    replicas
        .daemon(leader)
        .wait_metrics("the leader to step down", |text| {
            metric(text, "cfgroups_leader").filter(|v| *v == 0.0)
        })
        .await;
    let step_down = failed.elapsed();
    println!(
        "{}: lock service down to the leader stepping down: {step_down:?} (renew deadline 2 s, lease {LEASE:?})",
        server.name()
    );
    assert!(
        step_down < LEASE,
        "stopped writing only after {step_down:?}"
    );

    // Nobody writes while the lock cannot be held, whatever the config says.
    let before = replicas.requests().len();
    replicas.mark_absent(3);
    tokio::time::sleep(LEASE + Duration::from_secs(1)).await;
    let during: Vec<_> = replicas.requests().into_iter().skip(before).collect();
    assert!(during.is_empty(), "requests without a lock: {during:#?}");
    assert!(
        replicas
            .leader_within(Duration::from_millis(500))
            .await
            .is_none()
    );

    let recovered = Instant::now();
    server.recover();
    replicas.wait_deleted(3).await;
    println!(
        "{}: lock service back to the pending DELETE: {:?}",
        server.name(),
        recovered.elapsed()
    );
    assert_eq!(replicas.remaining(), replicas.expected_remaining());
    server.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_three_replicas_one_writer_and_standbys_send_cloudflare_nothing() {
    one_writer_and_silent_standbys(Server::etcd().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_kill_9_of_the_leader_then_a_standby_deletes_within_lease_and_retry() {
    kill_9_then_a_standby_deletes_within_lease_and_retry(Server::etcd().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_sigterm_of_the_leader_hands_over_without_waiting_for_the_lease() {
    sigterm_hands_over_without_waiting_for_the_lease(Server::etcd().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_stopping_stops_the_leader_before_its_lease_could_expire_and_it_resumes() {
    a_failing_lock_service_stops_the_leader_before_its_lease_could_expire(Server::etcd().await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_two_replicas_one_writer_and_standbys_send_cloudflare_nothing() {
    one_writer_and_silent_standbys(Server::kubernetes().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_kill_9_of_the_leader_then_a_standby_deletes_after_expiry() {
    kill_9_then_a_standby_deletes_within_lease_and_retry(Server::kubernetes().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_sigterm_of_the_leader_releases_the_lease() {
    sigterm_hands_over_without_waiting_for_the_lease(Server::kubernetes().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_renewal_failure_steps_the_leader_down_before_its_lease_could_expire() {
    a_failing_lock_service_stops_the_leader_before_its_lease_could_expire(
        Server::kubernetes().await,
    )
    .await;
}

/// How a handover is forced.
#[derive(Debug, Clone, Copy)]
enum Force {
    Terminate,
    Kill,
    /// SIGSTOP until another replica leads and deletes, then SIGCONT.
    Freeze,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_twenty_forced_handovers_with_edits_never_overlap_and_end_exact() {
    let server = Server::etcd().await;
    let mut replicas = Replicas::new(server.lock(), 3).await;
    replicas.start_all().await;
    // (from, leader name) of each stretch of time, in order.
    let mut stretches: Vec<(Instant, String)> = Vec::new();
    let started = Instant::now();
    let mut next_group = 4;
    for round in 0..20 {
        let leader = replicas.leader().await;
        let name = replicas.replicas[leader].name.clone();
        if stretches.last().is_none_or(|(_, last)| *last != name) {
            stretches.push((
                stretches.last().map_or(started, |_| Instant::now()),
                name.clone(),
            ));
        }
        replicas.mark_absent(next_group);
        replicas.wait_deleted(next_group).await;
        next_group += 1;

        let force = [Force::Terminate, Force::Kill, Force::Freeze][round % 3];
        let boundary = Instant::now();
        stretches.push((boundary, String::new())); // nobody until the next leader is known
        match force {
            Force::Terminate => {
                replicas.terminate(leader).await;
                replicas.start(leader).await;
            }
            Force::Kill => {
                replicas.kill(leader);
                replicas.start(leader).await;
            }
            Force::Freeze => {
                replicas.freeze(leader);
                let new = replicas.leader().await;
                assert_ne!(new, leader);
                let new_name = replicas.replicas[new].name.clone();
                stretches.push((Instant::now(), new_name));
                // The frozen leader's lease expired under it: the new one writes.
                replicas.mark_absent(next_group);
                replicas.wait_deleted(next_group).await;
                next_group += 1;
                replicas.thaw(leader);
                replicas
                    .daemon(leader)
                    .wait_metrics("the thawed replica to know it is a standby", |text| {
                        metric(text, "cfgroups_leader").filter(|v| *v == 0.0)
                    })
                    .await;
            }
        }
    }
    // The leader after the last handover, so its first requests have an owner.
    let last = replicas.leader().await;
    stretches.push((Instant::now(), replicas.replicas[last].name.clone()));
    assert_eq!(
        replicas.remaining(),
        replicas.expected_remaining(),
        "the final state is not exact"
    );

    // Every request came from the replica leading at its moment: a stretch's leader is
    // recorded as soon as the metrics show it, and the gap after each forced handover
    // belongs to nobody but the next leader.
    let requests = replicas.requests();
    let mut deletes_by_group = std::collections::BTreeMap::<String, usize>::new();
    for request in &requests {
        let from = sender(request).expect("every request names its replica");
        let current = stretches.iter().rev().find(|(at, _)| *at <= request.at);
        let next_leader = stretches
            .iter()
            .skip_while(|(at, _)| *at <= request.at)
            .find(|(_, name)| !name.is_empty())
            .map(|(_, name)| name.clone());
        let allowed = match current {
            Some((_, name)) if !name.is_empty() => {
                *name == from || next_leader.as_deref() == Some(from.as_str())
            }
            _ => next_leader.as_deref() == Some(from.as_str()),
        };
        if !allowed {
            let offset = |at: Instant| at.saturating_duration_since(started);
            let timeline: Vec<String> = stretches
                .iter()
                .map(|(at, name)| format!("{:?} {name}", offset(*at)))
                .collect();
            let nearby: Vec<String> = requests
                .iter()
                .filter(|r| {
                    r.at.saturating_duration_since(request.at)
                        .max(request.at.saturating_duration_since(r.at))
                        < Duration::from_secs(3)
                })
                .map(|r| {
                    format!(
                        "{:?} {:?} {} {} {:?}",
                        offset(r.at),
                        sender(r),
                        r.method,
                        r.path,
                        r.status
                    )
                })
                .collect();
            panic!(
                "{} {} from {from} at {:?} outside its leadership\ntimeline: {timeline:#?}\nnearby: {nearby:#?}",
                request.method,
                request.path,
                offset(request.at)
            );
        }
        if request.method == Method::DELETE && request.status == Some(200) {
            *deletes_by_group.entry(request.path.clone()).or_default() += 1;
        }
    }
    assert!(
        deletes_by_group.values().all(|n| *n == 1),
        "a group deleted twice: {deletes_by_group:?}"
    );
    assert_eq!(deletes_by_group.len(), replicas.absent.len());
    let expected: Vec<String> = replicas.absent.iter().map(|n| group_name(*n)).collect();
    println!(
        "etcd: 20 handovers, {} groups deleted once each, {} requests, all from the leader of their moment: {expected:?}",
        deletes_by_group.len(),
        requests.len()
    );
}
