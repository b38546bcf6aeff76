//! Fault injection: a queue of one-shot faults that tests fill through the server handle,
//! optionally matched to a route kind and method, and a seeded random fault rate for chaos
//! runs. The queue is consulted first; the first entry that matches the request fires.
//!
//! Faults are applied after the rate limit (a locked-out client sees 429s, not faults) and
//! before authentication (they stand for failures in front of the API).

use std::collections::VecDeque;
use std::time::Duration;

use axum::http::Method;

use crate::routes::Route;

/// Something to go wrong with one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// This HTTP status (500, 502, 503, ...) with an error envelope; nothing is changed.
    /// A number that is not an HTTP status becomes 500. A 429 carries the rate limit's `971`
    /// body but no `Retry-After` (the API does not always send one).
    Status(u16),
    /// The socket is closed without any response; nothing is changed. The client sees a
    /// connection error.
    DropConnection,
    /// The request takes effect (a DELETE deletes), then the socket is closed without a
    /// response: the lost-answer case a retrying client must survive.
    DropConnectionAfterApply,
    /// HTTP 200, `Content-Type: application/json`, and a truncated JSON body.
    MalformedJson,
    /// HTTP 200 with `"success": false` and an error; nothing is changed.
    SuccessFalse,
    /// The request takes effect at once, but the answer is sent only after this long (to
    /// outlast a client timeout).
    Slow(Duration),
    /// A list page whose `result_info.total_count` is off by this much (floored at 0).
    /// Only list requests (groups or members) match it.
    WrongTotalCount(i64),
    /// A list page that silently leaves out its last item: `result` and `count` agree with
    /// each other, only `total_count` betrays the gap. Only list requests match it.
    DropItem,
    /// HTTP 429 with `Retry-After: <seconds>` and the `971` body, without a lockout.
    RateLimited(u64),
}

impl Fault {
    /// This fault, only for requests of this route kind.
    pub fn on(self, route: Route) -> FaultSpec {
        FaultSpec::from(self).on(route)
    }

    /// This fault, only for requests with this method.
    pub fn method(self, method: Method) -> FaultSpec {
        FaultSpec::from(self).method(method)
    }

    /// This fault, for the next `n` matching requests.
    pub fn times(self, n: u32) -> FaultSpec {
        FaultSpec::from(self).times(n)
    }

    /// Whether this fault can happen to a request of this kind.
    pub(crate) fn applies_to(&self, method: &Method, route: Route) -> bool {
        match self {
            Self::WrongTotalCount(_) | Self::DropItem => route.is_listing(method),
            _ => true,
        }
    }
}

/// A queued fault: what, for which requests, how many times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSpec {
    fault: Fault,
    route: Option<Route>,
    method: Option<Method>,
    remaining: u32,
}

impl From<Fault> for FaultSpec {
    /// Once, for any request it can apply to.
    fn from(fault: Fault) -> Self {
        Self {
            fault,
            route: None,
            method: None,
            remaining: 1,
        }
    }
}

impl FaultSpec {
    pub fn on(mut self, route: Route) -> Self {
        self.route = Some(route);
        self
    }

    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Fires for the next `n` matching requests (0 = never).
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = n;
        self
    }

    fn matches(&self, method: &Method, route: Route) -> bool {
        self.remaining > 0
            && self.route.is_none_or(|r| r == route)
            && self.method.as_ref().is_none_or(|m| m == method)
            && self.fault.applies_to(method, route)
    }
}

/// The faults a random chaos run draws from unless told otherwise: every kind except
/// [`Fault::Slow`] (whose length only a test can choose).
pub fn default_chaos_faults() -> Vec<Fault> {
    vec![
        Fault::Status(500),
        Fault::Status(502),
        Fault::Status(503),
        Fault::DropConnection,
        Fault::DropConnectionAfterApply,
        Fault::MalformedJson,
        Fault::SuccessFalse,
        Fault::WrongTotalCount(1),
        Fault::DropItem,
        Fault::RateLimited(1),
    ]
}

#[derive(Debug)]
struct RandomFaults {
    rng: fastrand::Rng,
    rate: f64,
    menu: Vec<Fault>,
}

/// The queued and random faults of one server.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    queue: VecDeque<FaultSpec>,
    random: Option<RandomFaults>,
}

impl FaultPlan {
    pub(crate) fn push(&mut self, spec: FaultSpec) {
        if spec.remaining > 0 {
            self.queue.push_back(spec);
        }
    }

    /// Every request draws with probability `rate` (clamped to 0..=1) a fault from `menu`
    /// that applies to it, from a generator seeded with `seed`.
    pub(crate) fn set_random(&mut self, seed: u64, rate: f64, menu: Vec<Fault>) {
        self.random = (rate > 0.0 && !menu.is_empty()).then(|| RandomFaults {
            rng: fastrand::Rng::with_seed(seed),
            rate: rate.clamp(0.0, 1.0),
            menu,
        });
    }

    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.random = None;
    }

    /// Queued faults that have not fired yet, counting each repetition.
    pub(crate) fn pending(&self) -> usize {
        self.queue.iter().map(|s| s.remaining as usize).sum()
    }

    /// The fault for this request, if any; a queued fault is used up by firing.
    pub(crate) fn next(&mut self, method: &Method, route: Route) -> Option<Fault> {
        if let Some(index) = self.queue.iter().position(|s| s.matches(method, route)) {
            let spec = &mut self.queue[index];
            spec.remaining -= 1;
            let fault = spec.fault.clone();
            if spec.remaining == 0 {
                self.queue.remove(index);
            }
            return Some(fault);
        }
        let random = self.random.as_mut()?;
        if random.rng.f64() >= random.rate {
            return None;
        }
        let candidates: Vec<&Fault> = random
            .menu
            .iter()
            .filter(|f| f.applies_to(method, route))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let pick = random.rng.usize(..candidates.len());
        Some(candidates[pick].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_faults_match_route_and_count_down() {
        let mut plan = FaultPlan::default();
        plan.push(Fault::Status(503).on(Route::List).times(2));
        assert_eq!(plan.next(&Method::DELETE, Route::Delete), None);
        assert_eq!(
            plan.next(&Method::GET, Route::List),
            Some(Fault::Status(503))
        );
        assert_eq!(plan.pending(), 1);
        assert_eq!(
            plan.next(&Method::GET, Route::List),
            Some(Fault::Status(503))
        );
        assert_eq!(plan.next(&Method::GET, Route::List), None);
    }

    #[test]
    fn list_only_faults_wait_for_a_list() {
        let mut plan = FaultPlan::default();
        plan.push(Fault::DropItem.into());
        assert_eq!(plan.next(&Method::GET, Route::Get), None);
        assert_eq!(plan.next(&Method::POST, Route::Members), None);
        assert_eq!(
            plan.next(&Method::GET, Route::Members),
            Some(Fault::DropItem)
        );
    }

    #[test]
    fn random_faults_are_reproducible() {
        let draw = || {
            let mut plan = FaultPlan::default();
            plan.set_random(42, 0.3, default_chaos_faults());
            (0..200)
                .map(|_| plan.next(&Method::GET, Route::List))
                .collect::<Vec<_>>()
        };
        let a = draw();
        assert_eq!(a, draw());
        let hits = a.iter().filter(|f| f.is_some()).count();
        assert!((30..=90).contains(&hits), "{hits}");
    }
}
