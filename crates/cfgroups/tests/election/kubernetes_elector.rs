//! The Kubernetes elector against a fake Lease API that enforces `resourceVersion` as the
//! API server does (409 on a stale update): one writer among replicas racing for the same
//! Lease; release hands over at once; a crashed leader is replaced once its lease expires;
//! an API server that stops answering makes the leader step down before its lease could
//! expire, and leadership comes back with it; twenty handovers never overlap; and no write
//! ever goes out without its `resourceVersion` precondition, nor with a verb the example
//! Role does not grant.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cfgroups::daemon::Metrics;
use cfgroups::daemon::election::kubernetes::VERBS;
use cfgroups::daemon::election::{
    Backend, Election, ElectionSettings, KubernetesSettings, Leadership,
};
use testkit::lease_api::FakeLeaseApi;
use testkit::{WAIT, eventually};

use crate::support::short_timing;

const NAMESPACE: &str = "cfgroups";

struct Replica {
    name: String,
    leadership: Leadership,
    election: Option<Election>,
}

fn replica(api: &FakeLeaseApi, name: &str, lock: &str) -> Replica {
    let settings = ElectionSettings {
        identity: name.to_owned(),
        lock_name: lock.to_owned(),
        timing: short_timing(),
        backend: Backend::Kubernetes(KubernetesSettings::default()),
    };
    let leases = kube::Api::namespaced(api.client(), NAMESPACE);
    let (leadership, election) =
        Election::start_on_lease_api(settings, leases, NAMESPACE, Metrics::new("test"))
            .expect("the election starts");
    Replica {
        name: name.to_owned(),
        leadership,
        election: Some(election),
    }
}

fn leaders(replicas: &[Replica]) -> Vec<usize> {
    replicas
        .iter()
        .enumerate()
        .filter(|(_, r)| r.election.is_some() && r.leadership.is_leader())
        .map(|(i, _)| i)
        .collect()
}

/// Samples every leadership every millisecond and remembers the most valid terms at once.
struct Overlap {
    max: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Overlap {
    fn watch(leaderships: Vec<Leadership>) -> Overlap {
        let max = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (max.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let now = leaderships.iter().filter(|l| l.is_leader()).count();
                m.fetch_max(now, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        Overlap { max, stop, task }
    }

    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.max.load(Ordering::Relaxed)
    }
}

/// Every write carried its precondition, and only verbs the elector declares were used.
fn assert_clean_api_use(api: &FakeLeaseApi) {
    assert_eq!(
        api.unconditional_updates(),
        0,
        "an update without resourceVersion"
    );
    for verb in api.verbs() {
        assert!(
            VERBS.contains(&verb.as_str()),
            "the elector used {verb:?}, not in {VERBS:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_five_replicas_racing_for_a_new_lease_exactly_one_leads() {
    let api = FakeLeaseApi::start().await;
    let mut replicas: Vec<Replica> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|n| replica(&api, &format!("replica-{n}"), "race"))
        .collect();
    let overlap = Overlap::watch(replicas.iter().map(|r| r.leadership.clone()).collect());
    let leader = eventually("a leader", WAIT, async || {
        match leaders(&replicas).as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    })
    .await;
    let name = replicas[leader].name.clone();
    assert_eq!(
        api.holder(NAMESPACE, "race").as_deref(),
        Some(name.as_str())
    );
    for replica in &replicas {
        eventually("every replica to know the holder", WAIT, async || {
            (replica.leadership.holder().as_deref() == Some(name.as_str())).then_some(())
        })
        .await;
    }
    tokio::time::sleep(short_timing().renew_deadline * 2).await;
    assert_eq!(leaders(&replicas), vec![leader]);
    assert_eq!(
        overlap.finish().await,
        1,
        "two replicas held a valid term at once"
    );
    for replica in &mut replicas {
        replica.election.take().unwrap().release().await;
    }
    assert_clean_api_use(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_is_taken_over_without_waiting_for_expiry() {
    let api = FakeLeaseApi::start().await;
    let mut replicas = vec![
        replica(&api, "replica-a", "release"),
        replica(&api, "replica-b", "release"),
    ];
    let first = eventually("a leader", WAIT, async || {
        leaders(&replicas).first().copied()
    })
    .await;
    let first_term = replicas[first].leadership.current_term().unwrap().number;
    let other = 1 - first;
    eventually("the standby to see the holder", WAIT, async || {
        replicas[other].leadership.holder().is_some().then_some(())
    })
    .await;

    let released = Instant::now();
    replicas[first].election.take().unwrap().release().await;
    assert_eq!(
        api.holder(NAMESPACE, "release"),
        None,
        "released: no holder"
    );
    eventually("the standby to lead", WAIT, async || {
        replicas[other].leadership.is_leader().then_some(())
    })
    .await;
    let handover = released.elapsed();
    println!("kubernetes: handover after release took {handover:?}");
    assert!(replicas[other].leadership.current_term().unwrap().number > first_term);
    assert!(
        handover < short_timing().lease_duration,
        "the standby waited for expiry ({handover:?})"
    );
    replicas[other].election.take().unwrap().release().await;
    assert!(
        api.verbs().contains("watch"),
        "the standby did not watch the Lease"
    );
    assert_clean_api_use(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_replaced_once_its_lease_expires_never_before_its_validity_ends() {
    let api = FakeLeaseApi::start().await;
    let timing = short_timing();
    let mut replicas = vec![
        replica(&api, "replica-a", "crash"),
        replica(&api, "replica-b", "crash"),
    ];
    let first = eventually("a leader", WAIT, async || {
        leaders(&replicas).first().copied()
    })
    .await;
    let other = 1 - first;
    let old = replicas[first].leadership.clone();
    let crashed = Instant::now();
    replicas[first].election.take().unwrap().abort();
    let old_valid_until = old.current_term().and_then(|t| t.valid_until);
    eventually("the standby to lead", WAIT, async || {
        replicas[other].leadership.is_leader().then_some(())
    })
    .await;
    let took_over = tokio::time::Instant::now();
    let takeover = crashed.elapsed();
    println!(
        "kubernetes: takeover after a crash took {takeover:?} (lease {:?})",
        timing.lease_duration
    );
    if let Some(until) = old_valid_until {
        assert!(
            took_over >= until,
            "the new leader started while the old one could still write"
        );
    }
    assert!(
        takeover >= timing.lease_duration - timing.renew_deadline,
        "taken over before the lease could have expired ({takeover:?})"
    );
    assert!(
        takeover < timing.lease_duration + timing.retry_period * 2 + Duration::from_secs(5),
        "takeover took {takeover:?}"
    );
    replicas[other].election.take().unwrap().release().await;
    assert_clean_api_use(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_steps_down_before_its_lease_could_expire() {
    let api = FakeLeaseApi::start().await;
    let timing = short_timing();
    let mut replicas = vec![
        replica(&api, "replica-a", "renewal"),
        replica(&api, "replica-b", "renewal"),
    ];
    let overlap = Overlap::watch(replicas.iter().map(|r| r.leadership.clone()).collect());
    let leader = eventually("a leader", WAIT, async || {
        leaders(&replicas).first().copied()
    })
    .await;

    let failing = Instant::now();
    api.set_failing(true);
    eventually("the leader to step down", WAIT, async || {
        (!replicas[leader].leadership.is_leader()).then_some(())
    })
    .await;
    let step_down = failing.elapsed();
    println!(
        "kubernetes: the leader stopped writing {step_down:?} after the API server failed (renew deadline {:?})",
        timing.renew_deadline
    );
    assert!(
        step_down < timing.lease_duration,
        "stopped only after {step_down:?}"
    );
    tokio::time::sleep(timing.lease_duration).await;
    assert!(
        leaders(&replicas).is_empty(),
        "someone leads without the API server"
    );

    api.set_failing(false);
    eventually(
        "a leader once the API server answers again",
        WAIT,
        async || leaders(&replicas).first().copied(),
    )
    .await;
    assert_eq!(
        overlap.finish().await,
        1,
        "two replicas held a valid term at once"
    );
    for replica in &mut replicas {
        replica.election.take().unwrap().release().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_forced_handovers_never_overlap_and_terms_only_grow() {
    let api = FakeLeaseApi::start().await;
    let mut replicas: Vec<Replica> = ["replica-a", "replica-b", "replica-c"]
        .iter()
        .map(|n| replica(&api, n, "handovers"))
        .collect();
    let mut last_term = None;
    let mut max_overlap = 0;
    for round in 0..20 {
        let overlap = Overlap::watch(replicas.iter().map(|r| r.leadership.clone()).collect());
        let leader = eventually("a leader", WAIT, async || {
            match leaders(&replicas).as_slice() {
                [one] => Some(*one),
                _ => None,
            }
        })
        .await;
        let term = replicas[leader].leadership.current_term().unwrap().number;
        if let Some(last) = last_term {
            assert!(term > last, "round {round}: term {term} after {last}");
        }
        last_term = Some(term);
        let election = replicas[leader].election.take().unwrap();
        if round % 2 == 0 {
            election.release().await;
        } else {
            election.abort();
        }
        let name = replicas[leader].name.clone();
        replicas[leader] = replica(&api, &format!("{name}-{round}"), "handovers");
        max_overlap = max_overlap.max(overlap.finish().await);
    }
    assert!(max_overlap <= 1, "two replicas held a valid term at once");
    for replica in &mut replicas {
        replica.election.take().unwrap().release().await;
    }
    assert_clean_api_use(&api);
}
