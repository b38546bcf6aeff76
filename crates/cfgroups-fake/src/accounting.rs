//! Request accounting for tests: how many requests of each kind arrived, how many 429s went
//! out, and a log of every finished request with its arrival time, for throughput checks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::Method;

use crate::routes::Route;

/// One finished request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// When the request arrived (before any added latency).
    pub at: Instant,
    pub method: Method,
    /// Path and query string, e.g. `/client/v4/accounts/../iam/user_groups?page=2`.
    pub path: String,
    pub route: Route,
    /// The `User-Agent` header, when the request had a readable one: tells apart the
    /// clients of one fake (several daemons sharing a token, each naming itself).
    pub user_agent: Option<String>,
    /// The status sent; `None` when no response was delivered: a fault dropped the
    /// connection, or the client went away first (e.g. it timed out on a slow answer).
    pub status: Option<u16>,
}

/// A copy of the server's request accounting at one moment.
#[derive(Debug, Clone, Default)]
pub struct Requests {
    arrived: usize,
    by_kind: HashMap<(Method, Route), usize>,
    rate_limited: usize,
    log: Vec<RequestRecord>,
}

impl Requests {
    /// Every request that arrived, finished or not.
    pub fn total(&self) -> usize {
        self.arrived
    }

    /// Requests that arrived with this method for this kind of route.
    pub fn count(&self, method: Method, route: Route) -> usize {
        self.by_kind.get(&(method, route)).copied().unwrap_or(0)
    }

    /// 429 responses sent, from the rate limit or injected.
    pub fn rate_limited(&self) -> usize {
        self.rate_limited
    }

    /// Finished requests in the order they finished.
    pub fn log(&self) -> &[RequestRecord] {
        &self.log
    }

    /// Finished requests that got this status.
    pub fn with_status(&self, status: u16) -> usize {
        self.log.iter().filter(|r| r.status == Some(status)).count()
    }

    /// Finished requests that got no response (see [`RequestRecord::status`]).
    pub fn dropped(&self) -> usize {
        self.log.iter().filter(|r| r.status.is_none()).count()
    }

    /// The most requests that arrived within any span of `window`: what a sliding-window
    /// rate limiter of that window would have counted at its fullest.
    pub fn max_in_window(&self, window: Duration) -> usize {
        let mut arrivals: Vec<Instant> = self.log.iter().map(|r| r.at).collect();
        arrivals.sort();
        let mut best = 0;
        let mut start = 0;
        for end in 0..arrivals.len() {
            while arrivals[end].duration_since(arrivals[start]) >= window {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }
}

/// The live accounting behind [`Requests`].
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    current: Requests,
}

impl RequestLog {
    pub(crate) fn arrive(&mut self, method: &Method, route: Route) {
        self.current.arrived += 1;
        *self
            .current
            .by_kind
            .entry((method.clone(), route))
            .or_default() += 1;
    }

    pub(crate) fn finish(&mut self, record: RequestRecord) {
        if record.status == Some(429) {
            self.current.rate_limited += 1;
        }
        self.current.log.push(record);
    }

    pub(crate) fn snapshot(&self) -> Requests {
        self.current.clone()
    }

    pub(crate) fn reset(&mut self) {
        self.current = Requests::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_and_window() {
        let mut log = RequestLog::default();
        let start = Instant::now();
        for i in 0..5u64 {
            log.arrive(&Method::GET, Route::List);
            log.finish(RequestRecord {
                at: start + Duration::from_millis(i * 400),
                method: Method::GET,
                path: "/".into(),
                route: Route::List,
                user_agent: None,
                status: Some(if i == 4 { 429 } else { 200 }),
            });
        }
        let requests = log.snapshot();
        assert_eq!(requests.total(), 5);
        assert_eq!(requests.count(Method::GET, Route::List), 5);
        assert_eq!(requests.count(Method::DELETE, Route::Delete), 0);
        assert_eq!(requests.rate_limited(), 1);
        assert_eq!(requests.max_in_window(Duration::from_secs(1)), 3);
    }
}
