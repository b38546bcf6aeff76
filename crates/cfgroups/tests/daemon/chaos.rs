//! Chaos and crash runs of the daemon (`cfgroups run`, the real binary) against the fake API:
//!
//! - `daemon_under_random_faults_never_deletes_wrongly_and_converges`: 20 accounts, 10% of
//!   requests failing at random (5xx, dropped connections before and after the server acted,
//!   429s, malformed and lying bodies, answers slower than the request timeout), the config
//!   edited between cycles (more groups marked absent, invalid edits, reverts). No DELETE
//!   ever targets a group that was not declared absent (or unmanaged under
//!   `unmanaged: delete`); once the faults stop, every absent group goes; memory stays flat.
//! - `kill_9_during_run_then_restart_converges`: SIGKILL at seeded random points while the
//!   daemon deletes, then a restart. After each kill the journal parses (a torn last line
//!   aside) and nothing outside the plan is gone; after the last restart every absent group
//!   is gone and every intent has an outcome.
//! - `a_server_limit_below_the_budget_is_backed_off_not_hammered`: the server allows 30
//!   requests per 2 s while the daemon's own budget allows 1000 per 5 min. The daemon waits
//!   out each lockout (a handful of 429s per lockout, not hundreds), counts them in
//!   `/metrics`, and still converges. Its CPU share is printed, not asserted: on a loaded
//!   machine the figure says more about the neighbours than about the daemon.
//!
//! Every scenario is seeded and sized by environment variables; the defaults keep
//! `cargo test` quick. The long version:
//!
//! ```sh
//! CFGROUPS_CHAOS_CYCLES=200 CFGROUPS_CHAOS_KILLS=50 CFGROUPS_CHAOS_RATE_DELETES=300 \
//!   cargo test -p cfgroups --test daemon chaos:: -- --nocapture --test-threads 1
//! ```
//!
//! `CFGROUPS_CHAOS_SEED` replays a run (default 1); every test prints its figures with
//! `--nocapture`. No assertion depends on timing, so the tests also hold run in parallel
//! (as CI runs them); `--test-threads 1` only keeps the printed figures apart.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use cfgroups::journal::JOURNAL_FILE;
use cfgroups::model::{AccountId, GroupId};
use cfgroups_fake::{FakeState, Fault, Method, RequestRecord, Route, default_chaos_faults};
use testkit::daemon::{Daemon, DaemonOptions};
use testkit::*;

/// The seed of every random choice in this file.
fn seed() -> u64 {
    env_or("CFGROUPS_CHAOS_SEED", 1)
}

/// `cfgroups run` on `config` against `fake`, journaling under `state`, ticking every
/// `interval`, with `args` after the usual ones; waits until it says it has started.
fn start_daemon(
    fake: &Fake,
    config: &Path,
    state: &Path,
    interval: Duration,
    args: &[&str],
) -> Daemon {
    DaemonOptions::new(config, state, fake)
        .interval(interval)
        .args(args.iter().copied())
        .blocking_start()
}

/// Replaces `dir/groups.yaml` the way an editor does: a whole new file renamed over the old.
fn replace_config(dir: &Path, text: &str) {
    write_by_rename(&dir.join("groups.yaml"), text);
}

/// Journal lines in the state directory.
fn journal_lines(state: &Path) -> usize {
    std::fs::read_to_string(state.join(JOURNAL_FILE))
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

/// The accounts of the random-faults scenario and which of their groups are declared absent.
struct Desired {
    accounts: usize,
    /// Candidate groups per account, declared present until an edit marks them absent.
    pool: usize,
    absent: BTreeSet<(usize, usize)>,
}

impl Desired {
    /// Accounts whose unmanaged groups are deleted (their stray group may go at any time).
    fn prunes(a: usize) -> bool {
        a.is_multiple_of(5)
    }

    fn pool_name(a: usize, n: usize) -> String {
        format!("Pool {a}-{n}")
    }

    /// Every account: the pool, two teams, a protected SCIM group and an undeclared stray.
    fn state(&self) -> FakeState {
        let mut state = FakeState::new();
        for a in 0..self.accounts {
            let id = account(a);
            state = state.with_account(&id);
            for n in 0..self.pool {
                state = state.with_group(&id, group(a, n, &Self::pool_name(a, n), n % 3));
            }
            for j in 0..2 {
                state = state.with_group(&id, group(a, 10_000 + j, &format!("Team {a}-{j}"), 1));
            }
            state = state.with_group(&id, group(a, 30_000, &format!("SCIM-{a}"), 1));
            state = state.with_group(&id, group(a, 20_000, &format!("Stray {a}"), 0));
        }
        state
    }

    /// The config: `absent` pool groups absent, the rest of the pool and the teams present.
    /// With `everything`, all pool and team groups are absent and every account prunes:
    /// what a wrongly applied invalid edit would delete.
    fn configs(&self, everything: bool) -> Vec<AccountConfig> {
        (0..self.accounts)
            .map(|a| {
                let mut config = AccountConfig::new(account(a))
                    .max_deletes(self.pool as u32 + 10)
                    .unmanaged(if everything || Self::prunes(a) {
                        "delete"
                    } else {
                        "report"
                    });
                config.protect = vec!["SCIM-*".to_owned()];
                for n in 0..self.pool {
                    let name = Self::pool_name(a, n);
                    config = if everything || self.absent.contains(&(a, n)) {
                        config.absent(&name)
                    } else {
                        config.present(&name)
                    };
                }
                for j in 0..2 {
                    let name = format!("Team {a}-{j}");
                    config = if everything {
                        config.absent(&name)
                    } else {
                        config.present(&name)
                    };
                }
                config
            })
            .collect()
    }

    /// The groups a DELETE may target: every pool group ever declared absent, and the strays
    /// of pruning accounts.
    fn allowed(&self) -> BTreeSet<(AccountId, GroupId)> {
        self.absent
            .iter()
            .map(|&(a, n)| (account(a), group_id(a, n)))
            .chain(
                (0..self.accounts)
                    .filter(|a| Self::prunes(*a))
                    .map(|a| (account(a), group_id(a, 20_000))),
            )
            .collect()
    }
}

/// Marks one to six more pool groups absent (when any are left); the new config text.
fn mark_more_absent(desired: &mut Desired, rng: &mut fastrand::Rng) -> String {
    for _ in 0..rng.usize(1..=6) {
        let present: Vec<(usize, usize)> = (0..desired.accounts)
            .flat_map(|a| (0..desired.pool).map(move |n| (a, n)))
            .filter(|k| !desired.absent.contains(k))
            .collect();
        if present.is_empty() {
            break;
        }
        desired.absent.insert(present[rng.usize(..present.len())]);
    }
    config_text(&desired.configs(false))
}

/// Scenario 1. `CFGROUPS_CHAOS_CYCLES` reconciles (default 15) of `cfgroups run` with a 1 s
/// interval against 20 accounts while 10% of requests fail at random; between cycles the
/// config is edited: usually a few more groups marked absent, sometimes an invalid file
/// (which would delete every group if it were applied) followed by a revert to the last
/// good file. A group once declared absent is never declared present again, so "ever
/// declared absent" is exactly the set a DELETE may target.
#[test]
fn daemon_under_random_faults_never_deletes_wrongly_and_converges() {
    let cycles: u64 = env_or("CFGROUPS_CHAOS_CYCLES", 15);
    let seed = seed();
    let mut rng = rng(seed);
    let accounts = 20;
    // Enough candidates for about four new absent groups per cycle.
    let pool = ((cycles as usize * 4).div_ceil(accounts) + 2).max(4);
    let mut desired = Desired {
        accounts,
        pool,
        absent: BTreeSet::new(),
    };
    let initial = desired.state();
    let fake = Fake::start(initial.clone());
    let mut menu = default_chaos_faults();
    menu.push(Fault::Slow(Duration::from_millis(1500)));
    fake.set_random_faults_from(seed, 0.10, menu);

    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&conf).unwrap();
    let mut good = config_text(&desired.configs(false));
    replace_config(&conf, &good);

    let started = Instant::now();
    let daemon = start_daemon(
        &fake,
        &conf.join("groups.yaml"),
        &state,
        Duration::from_secs(1),
        &[
            "--debounce",
            "50ms",
            "--request-timeout",
            "400ms",
            "--max-requests",
            "1000000",
            "--budget-window",
            "1s",
        ],
    );
    let cpu_start = daemon.cpu_time();
    let mut rss = Vec::new();
    let mut edits = BTreeMap::<&str, usize>::new();
    let mut last_seen = 0;
    let mut invalid_pending = false;
    let patience = Duration::from_secs(90);
    for cycle in 0..cycles {
        last_seen = wait_until("the next reconcile", patience, || {
            let n = daemon.blocking_reconciles();
            (n > last_seen).then_some(n)
        });
        rss.push(daemon.rss_kib());
        if cycle + 1 == cycles {
            break;
        }
        if invalid_pending {
            // Revert the bad edit: the last good file again, byte for byte.
            replace_config(&conf, &good);
            wait_until("the revert to be reloaded", patience, || {
                (daemon.blocking_metric_total("cfgroups_config_last_reload_successful") == 1.0)
                    .then_some(())
            });
            invalid_pending = false;
            *edits.entry("revert").or_default() += 1;
        } else if rng.f64() < 0.2 {
            let mut text = config_text(&desired.configs(true));
            match rng.u8(0..3) {
                0 => text.push_str("surprise: true\n"),
                1 => text = text.replacen("state: absent", "state: gone", 1),
                _ => text.clear(),
            }
            replace_config(&conf, &text);
            wait_until("the invalid edit to be refused", patience, || {
                (daemon.blocking_metric_total("cfgroups_config_last_reload_successful") == 0.0)
                    .then_some(())
            });
            invalid_pending = true;
            *edits.entry("invalid").or_default() += 1;
        } else {
            good = mark_more_absent(&mut desired, &mut rng);
            replace_config(&conf, &good);
            *edits.entry("absent").or_default() += 1;
        }
    }
    let chaos_took = started.elapsed();
    let cpu_chaos = daemon.cpu_time() - cpu_start;

    // Faults off, with a last edit still to carry out: every group declared absent goes,
    // and nothing else.
    good = mark_more_absent(&mut desired, &mut rng);
    replace_config(&conf, &good);
    fake.clear_faults();
    let allowed = desired.allowed();
    let converged_at = wait_until("convergence", Duration::from_secs(120), || {
        let left = groups_by_id(&fake.state());
        allowed
            .iter()
            .all(|k| !left.contains_key(k))
            .then(Instant::now)
    });
    fake.wait_idle();
    let requests = fake.requests();
    let wrong: Vec<_> = delete_targets(&requests)
        .into_iter()
        .filter(|k| !allowed.contains(k))
        .collect();
    assert!(
        wrong.is_empty(),
        "seed {seed}: DELETEs of groups never declared absent: {wrong:?}"
    );
    let after = fake.state();
    assert_only_planned_deleted(&initial, &after, &allowed);
    let contents = journal(&state);
    assert!(contents.unreadable.is_empty(), "{:?}", contents.unreadable);
    assert_every_deletion_was_journaled_first(&initial, &after, &contents);

    // Memory, for the record: the last samples against the early ones. The promise (RSS back
    // near its idle figure after a cycle) is the daemon benchmark's to check, on a quiet
    // machine; here other tests share the cores.
    let early = rss.iter().take(3).copied().max().unwrap();
    let late = rss.iter().rev().take(3).copied().max().unwrap();
    eprintln!(
        "seed {seed}: {} reconciles in {:.1}s ({} deletes planned over time, edits {edits:?}); \
         {} requests, {} 5xx, {} 429, {} dropped; {} DELETEs sent, 0 wrong; converged {:.1}s \
         after the faults stopped; RSS early {early} KiB, late {late} KiB; \
         CPU {:.1}% of wall",
        last_seen,
        chaos_took.as_secs_f64(),
        allowed.len(),
        requests.total(),
        (500..600).map(|s| requests.with_status(s)).sum::<usize>(),
        requests.rate_limited(),
        requests.dropped(),
        requests.count(Method::DELETE, Route::Delete),
        converged_at
            .duration_since(started + chaos_took)
            .as_secs_f64(),
        cpu_chaos.as_secs_f64() * 100.0 / chaos_took.as_secs_f64(),
    );
    drop(daemon);
}

/// Scenario 2. `CFGROUPS_CHAOS_KILLS` (default 8) SIGKILLs of `cfgroups run` at seeded
/// random points while it deletes (every request takes 15 ms, so a cycle is in the middle
/// of its deletions for a while), each followed by a restart on the same journal.
#[test]
fn kill_9_during_run_then_restart_converges() {
    let kills: usize = env_or("CFGROUPS_CHAOS_KILLS", 8);
    let seed = seed();
    let mut rng = rng(seed ^ 0x9);
    // About twelve deletions per kill, so the last kill still lands mid-plan.
    let scenario = scenario(4, (kills * 12).div_ceil(4) + 10, false);
    let planned = scenario.planned.len();
    let fake = Fake::start_with(
        testkit::fake()
            .state(scenario.state.clone())
            .latency(Duration::from_millis(15)),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &scenario.configs);
    let state = dir.path().join("state");
    let interval = Duration::from_secs(1);
    let args = ["--max-requests", "1000000", "--budget-window", "1s"];
    let started = Instant::now();
    let mut torn = BTreeSet::new();
    let mut mid_plan = 0;
    let mut open_after_kills = 0;
    for kill in 0..kills {
        let left = planned - scenario.deleted(&fake.state());
        let daemon = start_daemon(&fake, &config, &state, interval, &args);
        // Either a random moment (listing, settling the journal, or deleting), or right after
        // some of this run's DELETEs completed, with the fake then slowed so that the kill
        // is certain to land while deletions remain.
        let frozen = left >= 2 * 16 + 10 && rng.bool();
        if frozen {
            let done = planned - left;
            let after = done + rng.usize(0..8);
            fake.wait_for(Duration::from_secs(30), |r| {
                r.log()
                    .iter()
                    .filter(|r| r.route == Route::Delete && r.status == Some(200))
                    .count()
                    > after
            });
            fake.set_latency(Duration::from_millis(300));
            std::thread::sleep(Duration::from_micros(rng.u64(0..15_000)));
        } else {
            std::thread::sleep(Duration::from_millis(rng.u64(0..300)));
        }
        daemon.kill();
        fake.wait_idle();

        let contents = journal(&state);
        let lines = journal_lines(&state);
        if contents.unreadable.last() == Some(&lines) {
            torn.insert(lines);
        }
        assert!(
            contents.unreadable.iter().all(|l| torn.contains(l)),
            "kill {kill}: unreadable journal lines {:?} of {lines} (torn last lines: {torn:?})",
            contents.unreadable
        );
        let after = fake.state();
        assert_only_planned_deleted(&scenario.state, &after, &scenario.planned);
        assert_every_deletion_was_journaled_first(&scenario.state, &after, &contents);
        open_after_kills += contents.unresolved().len();
        let deleted = scenario.deleted(&after);
        if frozen {
            assert!(
                deleted > planned - left && deleted < planned,
                "kill {kill} should have landed mid-plan ({deleted} of {planned})"
            );
            mid_plan += 1;
        }
        fake.set_latency(Duration::from_millis(15));
    }
    let outside: Vec<_> = delete_targets(&fake.requests())
        .into_iter()
        .filter(|k| !scenario.planned.contains(k))
        .collect();
    assert!(outside.is_empty(), "DELETEs outside the plan: {outside:?}");

    // The last restart converges and settles every intent the kills left open.
    fake.set_latency(Duration::ZERO);
    let unsettled = journal(&state).unresolved().len();
    let deleted_by_kills = scenario.deleted(&fake.state());
    let daemon = start_daemon(&fake, &config, &state, interval, &args);
    wait_until(
        "convergence after the last restart",
        Duration::from_secs(60),
        || {
            let contents = journal(&state);
            (scenario.deleted(&fake.state()) == planned && contents.unresolved().is_empty())
                .then_some(())
        },
    );
    drop(daemon);
    fake.wait_idle();
    scenario.assert_converged(&fake.state());
    assert_journal_covers(&journal(&state), &scenario);
    eprintln!(
        "seed {seed}: {kills} kills of `run` ({mid_plan} mid-plan; {deleted_by_kills} of \
         {planned} deleted before the last restart; {open_after_kills} intents left open by \
         the kills, each settled by the next start, {unsettled} by the last; {} torn journal \
         lines), 0 deletions outside the plan, converged; {:.1}s",
        torn.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Another client with the same token, as a person or another tool would be: a quarter of
/// `every` after it starts, then every `every`, it sends requests (listings of an account the daemon does not manage) until the
/// server locks it out. Stops when dropped.
struct Neighbour {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Neighbour {
    const ACCOUNT: usize = 99;

    fn start(fake: SocketAddr, every: Duration) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let path = format!(
                "/client/v4/accounts/{}/iam/user_groups",
                account(Self::ACCOUNT)
            );
            let mut lockouts = 0;
            let mut wait = every / 4;
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                wait = every;
                for _ in 0..200 {
                    if get_status(fake, &path) == Some(429) {
                        lockouts += 1;
                        break;
                    }
                }
            }
            lockouts
        });
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops it; how many lockouts it caused.
    fn stop(mut self) -> usize {
        self.stop.take();
        self.thread.take().unwrap().join().unwrap()
    }

    fn owns(record: &RequestRecord) -> bool {
        record.path.contains(&account(Self::ACCOUNT).to_string())
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One GET with the test token; the status, or `None` when there was no answer.
fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// For each lockout (the first 429 after a quiet spell), the daemon's requests that arrived
/// during it: each got a 429.
fn daemon_requests_per_lockout(log: &[RequestRecord], lockout: Duration) -> Vec<usize> {
    let mut refused: Vec<&RequestRecord> = log.iter().filter(|r| r.status == Some(429)).collect();
    refused.sort_by_key(|r| r.at);
    let mut starts: Vec<Instant> = Vec::new();
    for r in &refused {
        if starts
            .last()
            .is_none_or(|s| r.at.duration_since(*s) >= lockout)
        {
            starts.push(r.at);
        }
    }
    starts
        .iter()
        .map(|start| {
            log.iter()
                .filter(|r| !Neighbour::owns(r))
                .filter(|r| r.at >= *start && r.at.duration_since(*start) < lockout)
                .count()
        })
        .collect()
}

/// Scenario 3. The server allows 30 requests per 2 s (then locks out for 2 s), the daemon's
/// budget 1000 per 5 minutes: the daemon must learn the real limit from the server. The
/// server's `Ratelimit` header alone keeps it under the limit (it paces), so another client
/// of the same token trips the lockout every 5 s, as a person or a script sharing the
/// token would; the daemon then meets 429s and must wait them out.
/// `CFGROUPS_CHAOS_RATE_DELETES` (default 30) groups to delete, across 3 accounts.
#[test]
fn a_server_limit_below_the_budget_is_backed_off_not_hammered() {
    let deletes: usize = env_or("CFGROUPS_CHAOS_RATE_DELETES", 30);
    let accounts = 3;
    let scenario = scenario(accounts, deletes.div_ceil(accounts), false);
    let planned = scenario.planned.len();
    let lockout = Duration::from_secs(2);
    let fake = Fake::start_with(
        testkit::fake()
            .state(scenario.state.clone())
            .rate_limit(30, Duration::from_secs(2))
            .lockout(lockout),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &scenario.configs);
    let state = dir.path().join("state");
    let started = Instant::now();
    let daemon = start_daemon(
        &fake,
        &config,
        &state,
        Duration::from_secs(2),
        &["--max-requests", "1000", "--budget-window", "5m"],
    );
    let cpu_start = daemon.cpu_time();
    let neighbour = Neighbour::start(fake.addr(), Duration::from_secs(5));
    // Two requests per deletion, paced under 15 a second, and locked out 2 s in every 5.
    let patience = Duration::from_secs(30 + planned as u64 * 3 / 2);
    wait_until("convergence under the server's limit", patience, || {
        (scenario.deleted(&fake.state()) == planned).then_some(())
    });
    let took = started.elapsed();
    let cpu = daemon.cpu_time() - cpu_start;
    let neighbour_lockouts = neighbour.stop();
    fake.wait_idle();
    let rate_limited = daemon.blocking_metric_total("cfgroups_api_rate_limited_total");
    drop(daemon);
    scenario.assert_converged(&fake.state());

    let requests = fake.requests();
    let daemon_429s = requests
        .log()
        .iter()
        .filter(|r| r.status == Some(429) && !Neighbour::owns(r))
        .count();
    let per_lockout = daemon_requests_per_lockout(requests.log(), lockout);
    let cpu_share = cpu.as_secs_f64() / took.as_secs_f64();
    eprintln!(
        "{planned} deletions in {:.1}s under 30 requests per 2 s: {} daemon requests, \
         {} lockouts ({neighbour_lockouts} tripped by the other client), daemon requests \
         per lockout {per_lockout:?} ({daemon_429s} 429s in all), \
         cfgroups_api_rate_limited_total {rate_limited}, CPU {:.1}% of wall",
        took.as_secs_f64(),
        requests
            .log()
            .iter()
            .filter(|r| !Neighbour::owns(r))
            .count(),
        per_lockout.len(),
        cpu_share * 100.0
    );
    assert!(rate_limited > 0.0, "the daemon never reported a 429");
    assert_eq!(rate_limited as usize, daemon_429s, "every 429 is counted");
    assert!(
        per_lockout.iter().all(|n| *n <= 8),
        "the daemon kept sending during a lockout: {per_lockout:?}"
    );
}
