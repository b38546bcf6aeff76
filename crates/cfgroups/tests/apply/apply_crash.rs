//! `cfgroups apply` interrupted: killed with SIGKILL at random points, and stopped with
//! SIGTERM. The journal always parses, no group outside the plan is ever deleted, nothing is
//! deleted without its intent on disk first, and a rerun settles every interrupted intent
//! and converges.

use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cfgroups::journal::Record;
use cfgroups_fake::{Method, Requests, Route};
use testkit::*;

fn deletes(requests: &Requests) -> usize {
    requests.count(Method::DELETE, Route::Delete)
}

/// Waits for `child` to exit, at most `timeout`, collecting its output meanwhile (so a full
/// pipe never holds it up); the output and the time it took.
fn wait_exit(child: Child, timeout: Duration) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = wait_until("cfgroups to exit", timeout, || rx.try_recv().ok())
        .expect("the output of cfgroups");
    (output, started.elapsed())
}

/// SIGKILL at 30 random points of an apply (seeded, so a failure can be replayed; the count
/// is `CFGROUPS_APPLY_KILLS`, the seed `CFGROUPS_CHAOS_SEED`): half of
/// the kills land a random time after the start, half right after a random number of
/// DELETEs reached the API. After each kill the journal parses (only a torn last line may
/// be unreadable), nothing outside the plan is gone, and every deleted group was journaled
/// first; a rerun settles the killed run's intents and converges.
#[test]
fn kill_9_at_random_points_then_rerun_converges() {
    let runs: usize = env_or("CFGROUPS_APPLY_KILLS", 30);
    let mut rng = rng(env_or("CFGROUPS_CHAOS_SEED", 0x5eed_0009));
    let mut interrupted_intents = 0;
    let mut mid_run = 0;
    let started = Instant::now();
    for run_index in 0..runs {
        let scenario = scenario(2, 30, false);
        let planned = scenario.planned.len();
        let fake = Fake::start_with(
            testkit::fake()
                .state(scenario.state.clone())
                .latency(Duration::from_millis(8)),
        );
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &scenario.configs);
        let state = dir.path().join("state");
        let mut child = apply(&fake, &config, &state)
            .unlimited()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if rng.bool() {
            std::thread::sleep(Duration::from_millis(rng.u64(0..500)));
        } else {
            let after = rng.usize(0..planned);
            fake.wait_for(Duration::from_secs(30), |r| deletes(r) > after);
            std::thread::sleep(Duration::from_micros(rng.u64(0..8_000)));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        // Let requests the killed process left in flight finish at the fake.
        fake.wait_idle();

        let contents = journal(&state);
        let lines = std::fs::read_to_string(state.join(cfgroups::journal::JOURNAL_FILE))
            .map(|text| text.lines().count())
            .unwrap_or(0);
        assert!(
            contents.unreadable.is_empty() || contents.unreadable == [lines],
            "run {run_index}: unreadable lines {:?} of {lines}",
            contents.unreadable
        );
        let after_kill = fake.state();
        assert_only_planned_deleted(&scenario.state, &after_kill, &scenario.planned);
        assert_every_deletion_was_journaled_first(&scenario.state, &fake.state(), &contents);
        let unresolved = contents.unresolved().len();
        interrupted_intents += unresolved;
        let deleted = scenario.deleted(&after_kill);
        if status.code().is_none() && deleted > 0 && deleted < planned {
            mid_run += 1;
        }

        fake.set_latency(Duration::ZERO);
        let out = apply(&fake, &config, &state).unlimited().run();
        out.assert_code(0);
        if unresolved > 0 {
            assert!(out.stderr.contains("unsettled"), "{}", out.stderr);
        }
        scenario.assert_converged(&fake.state());
        let contents = journal(&state);
        assert_journal_covers(&contents, &scenario);
    }
    eprintln!(
        "{runs} kills ({mid_run} mid-run, {interrupted_intents} intents left without an \
         outcome and settled by the rerun) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        mid_run >= runs / 3,
        "too few kills landed mid-run: {mid_run}"
    );
}

/// SIGTERM mid-run: no new deletion starts, those in flight finish and are journaled, and
/// the process exits soon with 1 (not everything planned was done).
#[test]
fn sigterm_stops_between_deletes_and_leaves_no_half_journaled_delete() {
    let scenario = scenario(1, 40, false);
    let fake = Fake::start_with(
        testkit::fake()
            .state(scenario.state.clone())
            .latency(Duration::from_millis(50)),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &scenario.configs);
    let state = dir.path().join("state");
    let concurrency = 4;
    let child = apply(&fake, &config, &state)
        .unlimited()
        .args(["--apply-concurrency", &concurrency.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let at_signal = deletes(&fake.wait_for(Duration::from_secs(30), |r| deletes(r) >= 3));
    signal(child.id(), Signal::SIGTERM);
    let (output, took) = wait_exit(child, Duration::from_secs(20));
    fake.wait_idle();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("Stopping"), "{stderr}");
    // In flight at the signal: at most one deletion per slot had passed its last check.
    let sent = deletes(&fake.requests());
    assert!(
        sent <= at_signal + concurrency,
        "{sent} DELETEs, {at_signal} before the signal"
    );
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    assert!(stdout.contains("not started"), "{stdout}");

    let contents = journal(&state);
    assert!(contents.unreadable.is_empty());
    assert!(
        contents.unresolved().is_empty(),
        "{:?}",
        contents.unresolved()
    );
    let after = fake.state();
    assert_only_planned_deleted(&scenario.state, &after, &scenario.planned);
    assert_every_deletion_was_journaled_first(&scenario.state, &fake.state(), &contents);
    let deleted = scenario.deleted(&after);
    assert!(
        deleted < scenario.planned.len(),
        "the stop came too late to test anything"
    );
    let outcomes = contents
        .records
        .iter()
        .filter(|r| matches!(r, Record::Outcome { .. }))
        .count();
    assert_eq!(outcomes, sent, "one outcome per DELETE sent");
    eprintln!(
        "SIGTERM after {at_signal} DELETEs: {sent} sent in all, {deleted} deleted, exit in {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
}
