//! The hook through which every attempted request can be seen (for metrics), without the
//! client knowing anything about metrics.

use std::time::Duration;

use reqwest::Method;

use super::route::RouteKind;

/// One finished attempt of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEvent {
    pub method: Method,
    pub route: RouteKind,
    /// The HTTP status, or `None` when no response arrived (connection error, timeout).
    pub status: Option<u16>,
    /// 1 for the first attempt, 2 for the first retry, and so on.
    pub attempt: u32,
    /// Whether this attempt was a retry (`attempt > 1`).
    pub retry: bool,
    /// Whether the answer was HTTP 429.
    pub rate_limited: bool,
    /// Time from sending the request to having its whole response.
    pub elapsed: Duration,
}

/// Receives a [`RequestEvent`] after every attempt. Called inline on the request path, so
/// implementations must be quick and must not block.
pub trait RequestObserver: Send + Sync {
    fn on_request(&self, event: &RequestEvent);
}

/// Observes nothing; the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl RequestObserver for NoopObserver {
    fn on_request(&self, _event: &RequestEvent) {}
}

impl<F> RequestObserver for F
where
    F: Fn(&RequestEvent) + Send + Sync,
{
    fn on_request(&self, event: &RequestEvent) {
        self(event)
    }
}
