//! The request budget's promises under random load, on paused time (`tokio::time::pause`):
//! random arrival patterns, random answer times and random server headers (`Ratelimit`,
//! `Ratelimit-Policy`, 429 with or without `Retry-After`).
//!
//! Every event (a request arriving, admitted, answered) is logged in the order it happens,
//! then replayed against an oracle written from the rules as documented:
//! - **never too many**: no rolling `window` holds more than `max_requests` admissions; no
//!   request goes during an announced lockout, beyond the server's `Ratelimit` remaining
//!   before its reset, or into a full declared window (`Ratelimit-Policy`, counted from
//!   admission until `w` after the answer, so the server's own count can never exceed `q`
//!   whatever the network's delays);
//! - **never too late**: at every moment a request waits, the configured window is full or
//!   the server has said otherwise (a lockout, nothing remaining, a full declared window, or
//!   no answer yet to learn its limits from while one request is out); so the moment room
//!   appears, the request goes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cfgroups::cloudflare::{Budget, BudgetConfig, RateLimitHeader, RateLimitPolicy, ServerSignals};
use proptest::prelude::*;
use tokio::time::Instant;

/// Something that happened to request `id`, in the order it happened.
#[derive(Debug, Clone)]
enum Event {
    Arrived { id: usize },
    Admitted { id: usize, seq: u64 },
    Answered { id: usize, signals: ServerSignals },
}

#[derive(Debug, Clone)]
struct Logged {
    at: Instant,
    event: Event,
}

/// One simulated request: when it arrives (after the previous one), how long its answer
/// takes, and what the answer says.
#[derive(Debug, Clone)]
struct Request {
    gap_ms: u64,
    latency_ms: u64,
    signals: ServerSignals,
}

/// Runs `requests` through a budget on paused time; the event log, in order.
fn simulate(config: BudgetConfig, requests: Vec<Request>) -> Vec<Logged> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a paused runtime");
    runtime.block_on(async move {
        let budget = Budget::new(config);
        let log: Arc<Mutex<Vec<Logged>>> = Arc::default();
        let record = {
            let log = log.clone();
            move |event| {
                log.lock().unwrap().push(Logged {
                    at: Instant::now(),
                    event,
                })
            }
        };
        let start = Instant::now();
        let mut offset = Duration::ZERO;
        let mut tasks = Vec::new();
        for (id, request) in requests.into_iter().enumerate() {
            offset += Duration::from_millis(request.gap_ms);
            let budget = budget.clone();
            let record = record.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(start + offset).await;
                record(Event::Arrived { id });
                let permit = budget.acquire().await.expect("no wait is refused");
                record(Event::Admitted {
                    id,
                    seq: permit.seq(),
                });
                tokio::time::sleep(Duration::from_millis(request.latency_ms)).await;
                record(Event::Answered {
                    id,
                    signals: request.signals.clone(),
                });
                permit.answered(&request.signals);
            }));
        }
        for task in tasks {
            task.await.expect("a request task");
        }
        log.lock().unwrap().clone()
    })
}

/// The rule in force from the last `Ratelimit` header.
#[derive(Debug, Clone, Copy)]
struct Word {
    after: u64,
    allowed: u64,
    until: Instant,
}

/// The world as the rules describe it, rebuilt event by event.
struct Oracle {
    config: BudgetConfig,
    /// (seq, admitted at, answered at)
    requests: Vec<(u64, Instant, Option<Instant>)>,
    seq_of: Vec<Option<u64>>,
    in_flight_before: Vec<usize>,
    paused_until: Option<Instant>,
    word: Option<Word>,
    policies: Vec<RateLimitPolicy>,
    heard: bool,
}

impl Oracle {
    fn new(config: BudgetConfig, ids: usize) -> Self {
        Self {
            config,
            requests: Vec::new(),
            seq_of: vec![None; ids],
            in_flight_before: vec![0; ids],
            paused_until: None,
            word: None,
            policies: Vec::new(),
            heard: false,
        }
    }

    fn in_flight(&self) -> usize {
        self.requests
            .iter()
            .filter(|(_, _, done)| done.is_none())
            .count()
    }

    /// Why a request could not go at `at`, or `None` if it could.
    fn blocked(&self, at: Instant) -> Option<&'static str> {
        let window = self.config.window;
        let in_window = self
            .requests
            .iter()
            .filter(|(_, admitted, _)| at.duration_since(*admitted) < window)
            .count();
        if in_window >= self.config.max_requests.get() as usize {
            return Some("the configured window is full");
        }
        if self.paused_until.is_some_and(|until| at < until) {
            return Some("a lockout");
        }
        if !self.heard && self.in_flight() > 0 {
            return Some("the first answer, not yet arrived");
        }
        if let Some(word) = self.word {
            let used = self
                .requests
                .iter()
                .filter(|(seq, _, _)| *seq > word.after)
                .count() as u64;
            let blocked = if at < word.until {
                used >= word.allowed
            } else {
                used > word.allowed && self.in_flight() > 0
            };
            if blocked {
                return Some("the server's remaining");
            }
        }
        for policy in &self.policies {
            let occupying = self
                .requests
                .iter()
                .filter(|(_, _, done)| {
                    done.is_none_or(|done| at.duration_since(done) < policy.window)
                })
                .count() as u64;
            if occupying >= policy.quota {
                return Some("a declared window is full");
            }
        }
        None
    }

    /// The instants after `from` (up to `to`) at which a rule may stop blocking.
    fn boundaries(&self, from: Instant, to: Instant) -> Vec<Instant> {
        let mut points = Vec::new();
        for (_, admitted, done) in &self.requests {
            points.push(*admitted + self.config.window);
            for policy in &self.policies {
                if let Some(done) = done {
                    points.push(*done + policy.window);
                }
            }
        }
        points.extend(self.paused_until);
        points.extend(self.word.map(|word| word.until));
        points.retain(|p| *p > from && *p < to);
        points
    }

    fn apply(&mut self, logged: &Logged) {
        match &logged.event {
            Event::Arrived { .. } => {}
            Event::Admitted { id, seq } => {
                self.in_flight_before[*id] = self.in_flight();
                self.seq_of[*id] = Some(*seq);
                self.requests.push((*seq, logged.at, None));
            }
            Event::Answered { id, signals } => {
                let seq = self.seq_of[*id].expect("admitted before answered");
                let now = logged.at;
                self.heard = true;
                if let Some(request) = self.requests.iter_mut().find(|(s, _, _)| *s == seq) {
                    request.2 = Some(now);
                }
                if signals.status == 429 {
                    let pause = signals
                        .retry_after
                        .or(signals.ratelimit.map(|h| h.reset))
                        .unwrap_or(self.config.pause_after_429);
                    let until = now + pause;
                    self.paused_until = Some(self.paused_until.map_or(until, |old| old.max(until)));
                }
                if !signals.policies.is_empty() {
                    let (max, window) = (self.config.max_requests.get(), self.config.window);
                    self.policies = signals
                        .policies
                        .iter()
                        .filter(|p| !p.implied_by(max, window))
                        .copied()
                        .collect();
                }
                let newer = self.word.is_none_or(|word| seq > word.after);
                match signals.ratelimit {
                    Some(header) if newer => {
                        self.word = Some(Word {
                            after: seq,
                            allowed: header
                                .remaining
                                .saturating_sub(self.in_flight_before[*id] as u64),
                            until: now + header.reset,
                        })
                    }
                    None if newer && self.word.is_some_and(|word| now >= word.until) => {
                        self.word = None
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Replays `events`; panics naming the first broken promise.
fn check(config: &BudgetConfig, ids: usize, events: &[Logged]) {
    let mut oracle = Oracle::new(config.clone(), ids);
    let mut waiting: Vec<Option<Instant>> = vec![None; ids];
    for (index, logged) in events.iter().enumerate() {
        match &logged.event {
            Event::Arrived { id } => waiting[*id] = Some(logged.at),
            Event::Admitted { id, .. } => {
                if let Some(reason) = oracle.blocked(logged.at) {
                    panic!("request {id} went at {:?} despite {reason}", logged.at);
                }
                waiting[*id] = None;
            }
            Event::Answered { .. } => {}
        }
        oracle.apply(logged);
        // Until the next event, nothing changes but time: every waiting request must stay
        // blocked, at this instant and at every instant a rule could stop blocking.
        let next = events.get(index + 1).map(|e| e.at);
        let same_instant = next == Some(logged.at);
        if same_instant || !waiting.iter().any(Option::is_some) {
            continue;
        }
        let to = next.unwrap_or(logged.at);
        let mut points = vec![logged.at];
        points.extend(oracle.boundaries(logged.at, to));
        for at in points {
            if oracle.blocked(at).is_none() {
                let id = waiting.iter().position(Option::is_some).unwrap_or(0);
                panic!("request {id} waited at {at:?} although nothing blocked it");
            }
        }
    }
    assert!(waiting.iter().all(Option::is_none), "a request never went");
    // The user-facing promise, counted directly: no rolling window holds more.
    let mut admitted: Vec<Instant> = oracle.requests.iter().map(|(_, at, _)| *at).collect();
    admitted.sort();
    for (i, first) in admitted.iter().enumerate() {
        let in_window = admitted[i..]
            .iter()
            .take_while(|at| at.duration_since(*first) < config.window)
            .count();
        assert!(in_window <= config.max_requests.get() as usize);
    }
}

fn config(max_requests: u32, window_ms: u64) -> BudgetConfig {
    BudgetConfig {
        pause_after_429: Duration::from_millis(1500),
        max_wait: Duration::from_secs(3600),
        ..BudgetConfig::with_limit(
            max_requests.try_into().expect("non-zero"),
            Duration::from_millis(window_ms),
        )
    }
}

fn silent() -> ServerSignals {
    ServerSignals {
        status: 200,
        ..ServerSignals::default()
    }
}

/// What a server may say in an answer: any mix of a `Ratelimit` reading, a declared policy
/// (its window no longer than the budget's, where the budget's memory of answers reaches),
/// and a 429 with or without `Retry-After`.
fn signals(window_ms: u64) -> impl Strategy<Value = ServerSignals> {
    (
        prop::bool::weighted(0.1),
        prop::option::weighted(0.6, (0u64..8, 0u64..4)),
        prop::option::weighted(0.3, (1u64..6, 1u64..=window_ms)),
        prop::option::of(0u64..3),
    )
        .prop_map(|(limited, ratelimit, policy, retry_after)| ServerSignals {
            status: if limited { 429 } else { 200 },
            ratelimit: ratelimit.map(|(remaining, reset)| RateLimitHeader {
                remaining,
                reset: Duration::from_secs(reset),
            }),
            policies: policy
                .map(|(quota, window)| RateLimitPolicy {
                    quota,
                    window: Duration::from_millis(window),
                })
                .into_iter()
                .collect(),
            retry_after: retry_after.filter(|_| limited).map(Duration::from_secs),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A server that says nothing: the budget alone decides, exactly.
    #[test]
    fn with_a_silent_server_the_window_is_exact(
        max_requests in 1u32..8,
        window_ms in 50u64..3000,
        shape in prop::collection::vec((0u64..700, 0u64..400), 1..40),
    ) {
        let config = config(max_requests, window_ms);
        let requests: Vec<Request> = shape
            .into_iter()
            .map(|(gap_ms, latency_ms)| Request { gap_ms, latency_ms, signals: silent() })
            .collect();
        let count = requests.len();
        let events = simulate(config.clone(), requests);
        check(&config, count, &events);
    }

    /// A server that speaks: lockouts, remaining counts and declared windows, at random.
    #[test]
    fn with_random_server_headers_the_rules_hold_and_nothing_waits_needlessly(
        max_requests in 1u32..12,
        window_ms in 200u64..3000,
        shape in prop::collection::vec((0u64..500, 0u64..400), 1..40),
        said in prop::collection::vec(signals(3000), 40),
    ) {
        let config = config(max_requests, window_ms);
        let requests: Vec<Request> = shape
            .into_iter()
            .zip(said)
            .map(|((gap_ms, latency_ms), mut signals)| {
                for policy in &mut signals.policies {
                    policy.window = policy.window.min(Duration::from_millis(window_ms));
                }
                Request { gap_ms, latency_ms, signals }
            })
            .collect();
        let count = requests.len();
        let events = simulate(config.clone(), requests);
        check(&config, count, &events);
    }
}
