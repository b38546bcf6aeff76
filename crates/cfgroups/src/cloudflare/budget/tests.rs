//! The budget's rules one at a time, on paused time: the whole window at once, the exact
//! moment a full window frees, the lockout gate and its bound, the server's word and its
//! declared window. (The same rules under random load are property-tested in
//! `tests/offline/budget_window.rs`.)

use super::*;

fn config(max_requests: u32, window_secs: u64) -> BudgetConfig {
    BudgetConfig::with_limit(
        NonZeroU32::new(max_requests).unwrap(),
        Duration::from_secs(window_secs),
    )
}

fn signals(status: u16) -> ServerSignals {
    ServerSignals {
        status,
        ..ServerSignals::default()
    }
}

async fn acquire_concurrently(budget: &Budget, n: usize) -> Vec<Instant> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let budget = budget.clone();
        tasks.push(tokio::spawn(async move {
            let permit = budget.acquire().await.unwrap();
            let at = Instant::now();
            permit.answered(&signals(200));
            at
        }));
    }
    let mut times = Vec::new();
    for task in tasks {
        times.push(task.await.unwrap());
    }
    times.sort();
    times
}

fn offsets(start: Instant, times: &[Instant]) -> Vec<u64> {
    times.iter().map(|t| (*t - start).as_secs()).collect()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_whole_window_goes_at_once_and_the_rest_exactly_as_it_frees() {
    let budget = Budget::new(config(6, 60));
    let start = Instant::now();
    budget.acquire().await.unwrap().answered(&signals(200));
    // The first answer is in: five more go at once, then six as the first six leave.
    let times = acquire_concurrently(&budget, 12).await;
    assert_eq!(
        offsets(start, &times),
        [0, 0, 0, 0, 0, 60, 60, 60, 60, 60, 60, 120]
    );
    assert_eq!(budget.snapshot().admitted_total, 13);
    // At 120 s the admissions of 60 s have just left the window.
    assert_eq!(budget.snapshot().used_in_window, 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn until_the_first_answer_one_request_goes_at_a_time() {
    let budget = Budget::new(config(10, 60));
    let first = budget.acquire().await.unwrap();
    let second = {
        let budget = budget.clone();
        tokio::spawn(async move { budget.acquire().await.map(drop) })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!second.is_finished());
    // A request that got no answer teaches nothing: the next one goes alone too.
    drop(first);
    second.await.unwrap().unwrap();
    let third = budget.acquire().await.unwrap();
    third.answered(&signals(200));
    let start = Instant::now();
    let times = acquire_concurrently(&budget, 7).await;
    assert!(times.iter().all(|at| *at == start));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_full_window_frees_one_place_per_leaving_admission() {
    let budget = Budget::new(config(3, 10));
    let start = Instant::now();
    for gap in [0, 2, 3] {
        tokio::time::sleep(Duration::from_secs(gap)).await;
        budget.acquire().await.unwrap().answered(&signals(200));
    }
    // Admitted at 0, 2 and 5: the next ones go at 10, 12 and 15.
    let times = acquire_concurrently(&budget, 3).await;
    assert_eq!(offsets(start, &times), [10, 12, 15]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_429_holds_everyone_for_retry_after() {
    let budget = Budget::new(config(1000, 300));
    budget.acquire().await.unwrap().answered(&signals(200));
    let permit = budget.acquire().await.unwrap();
    permit.answered(&ServerSignals {
        retry_after: Some(Duration::from_secs(30)),
        ..signals(429)
    });
    assert_eq!(budget.snapshot().paused_for, Some(Duration::from_secs(30)));
    let start = Instant::now();
    let times = acquire_concurrently(&budget, 10).await;
    assert!(
        times
            .iter()
            .all(|at| *at - start == Duration::from_secs(30))
    );
    assert_eq!(budget.snapshot().paused_for, None);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_lockout_longer_than_max_wait_fails_at_once() {
    let budget = Budget::new(BudgetConfig {
        max_wait: Duration::from_secs(10),
        ..BudgetConfig::default()
    });
    budget.acquire().await.unwrap().answered(&signals(429));
    let start = Instant::now();
    let err = budget.acquire().await.unwrap_err();
    assert_eq!(
        err,
        BudgetError::TooLong {
            reason: WaitReason::Lockout,
            ready_in: Duration::from_secs(60),
            max_wait: Duration::from_secs(10),
        }
    );
    assert_eq!(
        Instant::now(),
        start,
        "it must not wait for a hopeless lockout"
    );
    assert!(err.to_string().contains("--max-rate-limit-wait"), "{err}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn nothing_remaining_holds_until_the_reset_then_one_probes() {
    let budget = Budget::new(config(1000, 300));
    let start = Instant::now();
    budget.acquire().await.unwrap().answered(&ServerSignals {
        ratelimit: Some(RateLimitHeader {
            remaining: 0,
            reset: Duration::from_secs(42),
        }),
        ..signals(200)
    });
    // Two requests: after the reset one goes; the other waits for its answer.
    let first = budget.acquire().await.unwrap();
    assert_eq!(Instant::now() - start, Duration::from_secs(42));
    let second = {
        let budget = budget.clone();
        tokio::spawn(async move { budget.acquire().await.map(|p| (Instant::now(), p)) })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !second.is_finished(),
        "a second request went before the probe's answer"
    );
    assert_eq!(
        budget.snapshot().waiting,
        Some(Waiting {
            reason: WaitReason::ServerReset,
            ready_in: None
        })
    );
    first.answered(&ServerSignals {
        ratelimit: Some(RateLimitHeader {
            remaining: 10,
            reset: Duration::from_secs(1),
        }),
        ..signals(200)
    });
    let (at, _) = second.await.unwrap().unwrap();
    assert_eq!(at - start, Duration::from_secs(47));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_server_remaining_counts_requests_in_flight() {
    let budget = Budget::new(config(1000, 300));
    budget.acquire().await.unwrap().answered(&signals(200));
    let start = Instant::now();
    let mut permits = Vec::new();
    for _ in 0..4 {
        permits.push(budget.acquire().await.unwrap());
    }
    // The first answer says 3 remain; three others were in flight: nothing more may go.
    permits.remove(0).answered(&ServerSignals {
        ratelimit: Some(RateLimitHeader {
            remaining: 3,
            reset: Duration::from_secs(20),
        }),
        ..signals(200)
    });
    drop(budget.acquire().await.unwrap());
    assert_eq!(Instant::now() - start, Duration::from_secs(20));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_stricter_declared_policy_is_held_from_the_answers() {
    let budget = Budget::new(config(1000, 300));
    let start = Instant::now();
    let declared = ServerSignals {
        policies: vec![RateLimitPolicy {
            quota: 2,
            window: Duration::from_secs(20),
        }],
        ..signals(200)
    };
    let first = budget.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    first.answered(&declared);
    assert_eq!(budget.snapshot().server_policies, declared.policies);
    // The first request holds a place until 20 s after its answer (at 1 s): one more now,
    // the next at 21 s.
    let second = budget.acquire().await.unwrap();
    assert_eq!(Instant::now() - start, Duration::from_secs(1));
    second.answered(&declared);
    drop(budget.acquire().await.unwrap());
    assert_eq!(Instant::now() - start, Duration::from_secs(21));
    // A looser policy is implied by the budget and not held.
    budget.acquire().await.unwrap().answered(&ServerSignals {
        policies: vec![RateLimitPolicy {
            quota: 1200,
            window: Duration::from_secs(300),
        }],
        ..signals(200)
    });
    assert!(budget.snapshot().server_policies.is_empty());
}
