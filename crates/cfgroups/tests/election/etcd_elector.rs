//! The etcd elector against a real etcd (Debian's `etcd-server`, started on loopback by
//! the test): one leader among three; release hands over at once; a crashed leader is
//! replaced once its lease expires, never before its validity ended; an etcd outage makes
//! the leader stop writing before its lease could expire, and it resumes when etcd returns;
//! across many handovers no two replicas ever hold a valid term at once.
//!
//! The measured figures are printed (`--nocapture`); the assertions use generous bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cfgroups::daemon::Metrics;
use cfgroups::daemon::election::{Backend, Election, ElectionSettings, EtcdSettings, Leadership};
use testkit::etcd::Etcd;
use testkit::{WAIT, eventually};

use crate::support::short_timing;

struct Replica {
    name: String,
    leadership: Leadership,
    election: Option<Election>,
}

async fn replica(etcd: &Etcd, name: &str, lock: &str) -> Replica {
    let settings = ElectionSettings {
        identity: name.to_owned(),
        lock_name: lock.to_owned(),
        timing: short_timing(),
        backend: Backend::Etcd(EtcdSettings {
            endpoints: vec![etcd.endpoint()],
            ..EtcdSettings::default()
        }),
    };
    let (leadership, election) = Election::start(settings, Metrics::new("test"))
        .await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_three_replicas_exactly_one_leads_and_the_others_know_who() {
    let etcd = Etcd::start();
    let mut replicas = Vec::new();
    for name in ["replica-a", "replica-b", "replica-c"] {
        replicas.push(replica(&etcd, name, "one-of-three").await);
    }
    let overlap = Overlap::watch(replicas.iter().map(|r| r.leadership.clone()).collect());
    let leader = eventually("a leader", WAIT, async || {
        match leaders(&replicas).as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    })
    .await;
    let name = replicas[leader].name.clone();
    for replica in &replicas {
        eventually("every replica to know the holder", WAIT, async || {
            (replica.leadership.holder().as_deref() == Some(name.as_str())).then_some(())
        })
        .await;
    }
    // Several renewals later it still leads, alone.
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lock_is_taken_over_at_once_with_a_later_term() {
    let etcd = Etcd::start();
    let mut replicas = vec![
        replica(&etcd, "replica-a", "release").await,
        replica(&etcd, "replica-b", "release").await,
    ];
    let first = eventually("a leader", WAIT, async || {
        leaders(&replicas).first().copied()
    })
    .await;
    let first_term = replicas[first].leadership.current_term().unwrap().number;
    let other = 1 - first;
    eventually("the standby to be campaigning", WAIT, async || {
        replicas[other].leadership.holder().is_some().then_some(())
    })
    .await;

    let released = Instant::now();
    replicas[first].election.take().unwrap().release().await;
    eventually("the standby to lead", WAIT, async || {
        replicas[other].leadership.is_leader().then_some(())
    })
    .await;
    let handover = released.elapsed();
    println!("etcd: handover after release took {handover:?}");
    let term = replicas[other].leadership.current_term().unwrap().number;
    assert!(term > first_term, "term {term} after {first_term}");
    assert!(
        handover < short_timing().lease_duration,
        "the standby waited for the lease to expire ({handover:?}): release did not free the lock"
    );
    replicas[other].election.take().unwrap().release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_replaced_after_its_lease_expires_never_before_its_validity_ends() {
    let etcd = Etcd::start();
    let timing = short_timing();
    let mut replicas = vec![
        replica(&etcd, "replica-a", "crash").await,
        replica(&etcd, "replica-b", "crash").await,
    ];
    let first = eventually("a leader", WAIT, async || {
        leaders(&replicas).first().copied()
    })
    .await;
    let other = 1 - first;
    let old = replicas[first].leadership.clone();

    let crashed = Instant::now();
    replicas[first].election.take().unwrap().abort();
    // Its last renewal's validity, as its own controller would check it.
    let old_valid_until = old.current_term().and_then(|t| t.valid_until);
    eventually("the standby to lead", WAIT, async || {
        replicas[other].leadership.is_leader().then_some(())
    })
    .await;
    let took_over = tokio::time::Instant::now();
    let takeover = crashed.elapsed();
    println!(
        "etcd: takeover after a crash took {takeover:?} (lease {:?})",
        timing.lease_duration
    );
    if let Some(until) = old_valid_until {
        assert!(
            took_over >= until,
            "the new leader started while the old one could still write"
        );
    }
    assert!(!old.is_leader());
    assert!(
        takeover < timing.lease_duration + timing.retry_period * 2 + Duration::from_secs(5),
        "takeover took {takeover:?}"
    );
    replicas[other].election.take().unwrap().release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_etcd_stops_the_leader_stops_before_its_lease_could_expire_and_resumes_after() {
    let mut etcd = Etcd::start();
    let timing = short_timing();
    let mut replicas = vec![
        replica(&etcd, "replica-a", "outage").await,
        replica(&etcd, "replica-b", "outage").await,
    ];
    let overlap = Overlap::watch(replicas.iter().map(|r| r.leadership.clone()).collect());
    let leader = eventually("a leader", WAIT, async || {
        leaders(&replicas).first().copied()
    })
    .await;

    let stopped = Instant::now();
    etcd.stop();
    eventually("the leader to step down", WAIT, async || {
        (!replicas[leader].leadership.is_leader()).then_some(())
    })
    .await;
    let step_down = stopped.elapsed();
    println!(
        "etcd: the leader stopped writing {step_down:?} after etcd stopped (renew deadline {:?}, lease {:?})",
        timing.renew_deadline, timing.lease_duration
    );
    // Its last renewal started before etcd stopped, so etcd would have kept the lease at
    // least `lease_duration` after that: stopping within it is stopping before expiry.
    assert!(
        step_down < timing.lease_duration,
        "stopped writing only after {step_down:?}"
    );
    tokio::time::sleep(timing.lease_duration).await;
    assert!(leaders(&replicas).is_empty(), "someone leads without etcd");

    etcd.restart();
    let resumed = Instant::now();
    eventually("a leader once etcd is back", WAIT, async || {
        leaders(&replicas).first().copied()
    })
    .await;
    println!(
        "etcd: a leader again {:?} after etcd came back",
        resumed.elapsed()
    );
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
    let etcd = Etcd::start();
    let names = ["replica-a", "replica-b", "replica-c"];
    let mut replicas = Vec::new();
    for name in names {
        replicas.push(replica(&etcd, name, "handovers").await);
    }
    let mut last_term = 0;
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
        assert!(
            term > last_term,
            "round {round}: term {term} after {last_term}"
        );
        last_term = term;
        // Alternate a clean release with a crash, then bring the replica back.
        let election = replicas[leader].election.take().unwrap();
        if round % 2 == 0 {
            election.release().await;
        } else {
            election.abort();
        }
        let name = replicas[leader].name.clone();
        replicas[leader] = replica(&etcd, &name, "handovers").await;
        max_overlap = max_overlap.max(overlap.finish().await);
    }
    assert!(max_overlap <= 1, "two replicas held a valid term at once");
    for replica in &mut replicas {
        replica.election.take().unwrap().release().await;
    }
}
