//! The notifier's delivery, in process, against the test receiver: what is retried, what is
//! given up, what is dropped, and that queueing never waits.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cfgroups::config::{EventKind, SinkConfig, SinkKind, UrlSource};
use cfgroups::notify::event::{AccountRef, Context, DriftCounts};
use cfgroups::notify::{Delivery, DeliveryCounts, Event, Notifier, Policy, Routed};
use tempfile::TempDir;
use testkit::receiver::{Answer, Receiver};
use testkit::{WAIT, account, eventually};

/// Every delivery's end so far: (delivered, failed, dropped).
fn totals(counts: &DeliveryCounts) -> (usize, usize, usize) {
    (
        counts.get(Delivery::Delivered),
        counts.get(Delivery::Failed),
        counts.get(Delivery::Dropped),
    )
}

async fn wait_for(counts: &DeliveryCounts, what: &str, expected: (usize, usize, usize)) {
    eventually(what, WAIT, async || {
        (totals(counts) == expected).then_some(())
    })
    .await;
}

/// A webhook sink named `hook` whose URL file holds `url`.
fn sink(dir: &TempDir, url: &str, attempts: u32, timeout: Duration) -> SinkConfig {
    let file = dir.path().join("hook-url");
    std::fs::write(&file, format!("{url}\n")).unwrap();
    SinkConfig {
        name: "hook".to_owned(),
        kind: SinkKind::Webhook,
        url: UrlSource::File(file),
        events: BTreeSet::from([EventKind::Drift]),
        reminder: None,
        timeout,
        attempts,
        file: PathBuf::from("groups.yaml"),
    }
}

fn fast(queue: usize) -> Policy {
    Policy {
        first_retry: Duration::from_millis(10),
        max_retry: Duration::from_millis(50),
        queue,
    }
}

fn event(n: usize) -> Vec<Routed> {
    let context = Context::now("run");
    vec![Routed {
        event: Event::drift(
            &context,
            AccountRef {
                id: account(1),
                label: None,
            },
            DriftCounts {
                delete: n,
                blocked: 0,
                missing: 0,
                unmanaged: 0,
            },
        ),
        sinks: vec!["hook".to_owned()],
    }]
}

fn start(sink: SinkConfig, policy: Policy) -> (Notifier, Arc<DeliveryCounts>) {
    let counts = Arc::new(DeliveryCounts::default());
    let notifier = Notifier::start(&[sink], counts.clone(), policy).unwrap();
    (notifier, counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried_until_the_sink_accepts() {
    let receiver = Receiver::start().await;
    receiver.answer_next(2, Answer::Status(500));
    let dir = TempDir::new().unwrap();
    let (notifier, counts) = start(
        sink(&dir, &receiver.url("/hook"), 4, Duration::from_secs(5)),
        fast(8),
    );
    notifier.send(&event(1));
    wait_for(&counts, "delivered after two 500s", (1, 0, 0)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.body == received[0].body));
    assert_eq!(received[0].json()["event"], "drift");
    notifier.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_keeps_failing_is_given_up_after_its_attempts_and_a_4xx_at_once() {
    let receiver = Receiver::start().await;
    receiver.answer(Answer::Status(503));
    let dir = TempDir::new().unwrap();
    let (notifier, counts) = start(
        sink(&dir, &receiver.url("/hook"), 3, Duration::from_secs(5)),
        fast(8),
    );
    notifier.send(&event(1));
    wait_for(&counts, "given up after three attempts", (0, 1, 0)).await;
    assert_eq!(receiver.received().len(), 3);

    receiver.answer(Answer::Status(400));
    notifier.send(&event(2));
    wait_for(&counts, "a 400 given up at once", (0, 2, 0)).await;
    assert_eq!(receiver.received().len(), 4, "a 400 is not retried");
    notifier.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_is_down_fails_after_its_attempts() {
    let dir = TempDir::new().unwrap();
    let (notifier, counts) = start(
        sink(
            &dir,
            &Receiver::down_url("/hook").await,
            2,
            Duration::from_secs(5),
        ),
        fast(8),
    );
    notifier.send(&event(1));
    wait_for(&counts, "given up on a sink that is down", (0, 1, 0)).await;
    notifier.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_times_out_each_attempt_and_is_given_up() {
    let receiver = Receiver::start().await;
    receiver.answer(Answer::Hang);
    let dir = TempDir::new().unwrap();
    let (notifier, counts) = start(
        sink(&dir, &receiver.url("/hook"), 2, Duration::from_millis(200)),
        fast(8),
    );
    notifier.send(&event(1));
    wait_for(&counts, "given up on a sink that hangs", (0, 1, 0)).await;
    assert_eq!(receiver.received().len(), 2);
    receiver.release();
    notifier.close(Duration::from_secs(5)).await;
}

/// A hung sink with room for one message: while the first is in flight and the second
/// waits, every further message is dropped and counted at once; queueing never waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_without_waiting() {
    let receiver = Receiver::start().await;
    receiver.answer(Answer::Hang);
    let dir = TempDir::new().unwrap();
    let (notifier, counts) = start(
        sink(&dir, &receiver.url("/hook"), 1, Duration::from_secs(60)),
        fast(1),
    );
    notifier.send(&event(0));
    receiver
        .wait_for("the first message in flight", |r| r.len() == 1)
        .await;
    // The sink hangs until released below: a send that waited for room would never return.
    for n in 1..=4 {
        notifier.send(&event(n));
    }
    assert_eq!(totals(&counts), (0, 0, 3), "one queued, three dropped");
    assert_eq!(receiver.in_flight(), 1);

    receiver.release();
    wait_for(&counts, "the held and the queued delivered", (2, 0, 3)).await;
    let sent: Vec<u64> = receiver
        .received()
        .iter()
        .map(|r| r.json()["drift"]["delete"].as_u64().unwrap_or(99))
        .collect();
    assert_eq!(sent, [0, 1], "in order; the rest were dropped");
    notifier.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_waits_at_most_its_grace_and_counts_what_is_left_as_dropped() {
    let receiver = Receiver::start().await;
    receiver.answer(Answer::Hang);
    let dir = TempDir::new().unwrap();
    let (notifier, counts) = start(
        sink(&dir, &receiver.url("/hook"), 1, Duration::from_secs(60)),
        fast(8),
    );
    notifier.send(&event(0));
    notifier.send(&event(1));
    receiver
        .wait_for("the first message in flight", |r| r.len() == 1)
        .await;
    notifier.close(Duration::from_millis(100)).await;
    assert_eq!(totals(&counts), (0, 0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_or_clear_text_url_fails_without_showing_it() {
    let dir = TempDir::new().unwrap();
    let mut bad = sink(
        &dir,
        "http://hooks.example.com/T0/SECRET-PATH",
        1,
        Duration::from_secs(1),
    );
    let error = cfgroups::notify::check_urls(std::slice::from_ref(&bad)).unwrap_err();
    assert!(!error.to_string().contains("SECRET-PATH"), "{error}");
    assert!(error.to_string().contains("hook"), "{error}");
    bad.url = UrlSource::File(dir.path().join("missing"));
    let (notifier, counts) = start(bad, fast(8));
    notifier.send(&event(0));
    wait_for(&counts, "no usable URL: failed", (0, 1, 0)).await;
    notifier.close(Duration::from_secs(1)).await;
}
