//! Everything that can go wrong talking to Cloudflare, and for each failure whether trying
//! again can help. No variant ever carries a credential: server-provided text is scrubbed
//! of the secret before it is stored here.

use std::time::Duration;

use thiserror::Error;

use super::budget::BudgetError;
use super::envelope::ApiErrors;
use super::route::{Route, RouteKind};
use super::unreachable::Unreachable;

/// How a request failed below HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// The connection could not be established (refused, DNS, TLS handshake).
    Connect,
    /// The connect or request timeout elapsed.
    Timeout,
    /// The connection broke while the request or response was in flight.
    Connection,
    /// The request could not even be built; retrying cannot help.
    Other,
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Connect => "connection failed",
            Self::Timeout => "timed out",
            Self::Connection => "connection error",
            Self::Other => "request error",
        })
    }
}

/// A failed Cloudflare API operation.
#[derive(Debug, Error)]
pub enum Error {
    /// Cloudflare answered with an error status, or with `success: false` (then `status`
    /// is the HTTP status it came with, often 200).
    #[error("{route}: HTTP {status}: {errors}")]
    Api {
        route: Route,
        status: u16,
        errors: ApiErrors,
    },
    /// HTTP 429: the account's or token's rate limit was hit.
    #[error("{route}: rate limited (HTTP 429{}): {errors}", retry_after_text(*.retry_after))]
    RateLimited {
        route: Route,
        retry_after: Option<Duration>,
        errors: ApiErrors,
    },
    /// The request did not get an HTTP response. Shown with where it went and why in an
    /// operator's words (`cannot reach 127.0.0.1:8787: connection refused`).
    #[error("{route}: {kind}: {}", Unreachable::of(source))]
    Transport {
        route: Route,
        kind: TransportKind,
        #[source]
        source: reqwest::Error,
    },
    /// A successful status came with a body that is not the expected JSON.
    #[error("{route}: cannot decode the response (HTTP {status}): {message}")]
    Decode {
        route: Route,
        status: u16,
        message: String,
    },
    /// The pages of a listing do not add up: it cannot be trusted as a complete view.
    #[error("{route}: inconsistent listing: {detail}")]
    InconsistentListing { route: Route, detail: String },
    /// The operation's deadline passed, or would pass before the next attempt could start.
    #[error(
        "{route}: gave up after {attempts} attempt(s): the {}s deadline does not leave time {waiting}{}",
        deadline.as_secs(),
        last_text(last.as_deref())
    )]
    DeadlineExceeded {
        route: Route,
        deadline: Duration,
        attempts: u32,
        /// What the next attempt would have waited for.
        waiting: String,
        /// The last attempt's failure, if an attempt was made (boxed: errors stay small).
        last: Option<Box<LastFailure>>,
    },
    /// The request budget will not admit the request: Cloudflare announced a wait (a
    /// lockout, or its reset with nothing remaining) longer than allowed.
    #[error("{route}: not sent: {source}{}", last_text(last.as_deref()))]
    RateLimitWait {
        route: Route,
        #[source]
        source: BudgetError,
        /// Attempts made before the wait was refused.
        attempts: u32,
        /// The last attempt's failure, if an attempt was made.
        last: Option<Box<LastFailure>>,
    },
    /// The configured API base URL is unusable or unsafe. `url` is only what may be shown of
    /// it (scheme and host, or its length): the value itself may hold a secret.
    #[error("invalid API base URL {url:?}: {reason}")]
    InvalidBaseUrl { url: String, reason: String },
    /// The configured `User-Agent` cannot be sent as a header.
    #[error("invalid user agent {0:?}: not a valid HTTP header value")]
    InvalidUserAgent(String),
    /// The HTTP client could not be constructed (e.g. no TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    ClientBuild(#[source] reqwest::Error),
    /// A request body could not be written as JSON; nothing was sent.
    #[error("{route}: cannot encode the request body: {source}")]
    Encode {
        route: Route,
        #[source]
        source: serde_json::Error,
    },
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(after) => format!(", retry after {}s", after.as_secs()),
        None => String::new(),
    }
}

/// What is kept of an attempt's failure once the next attempt is under way: enough to report
/// it and to classify the operation's final error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastFailure {
    pub message: String,
    pub status: Option<u16>,
    pub codes: Vec<i64>,
}

impl From<&Error> for LastFailure {
    fn from(error: &Error) -> Self {
        Self {
            message: error.to_string(),
            status: error.status(),
            codes: error.codes(),
        }
    }
}

impl std::fmt::Display for LastFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn last_text(last: Option<&LastFailure>) -> String {
    match last {
        Some(error) => format!("; last error: {error}"),
        None => String::new(),
    }
}

impl Error {
    /// Whether the same request may succeed if sent again: 408, 409, 429 and 5xx statuses,
    /// timeouts and broken connections. 400, 401, 403, 404 and other 4xx are final, as are
    /// undecodable bodies, inconsistent listings and configuration errors.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { status, .. } => is_retryable_status(*status),
            Self::RateLimited { .. } => true,
            Self::Transport { kind, .. } => *kind != TransportKind::Other,
            Self::Decode { .. }
            | Self::InconsistentListing { .. }
            | Self::DeadlineExceeded { .. }
            | Self::RateLimitWait { .. }
            | Self::InvalidBaseUrl { .. }
            | Self::InvalidUserAgent(_)
            | Self::ClientBuild(_)
            | Self::Encode { .. } => false,
        }
    }

    /// Whether `route` is worth sending again after this error: [`is_retryable`], and for a
    /// DELETE also a `success: false` answer under a 2xx status. A DELETE is idempotent,
    /// and a group that is already gone answers 404, which is success.
    ///
    /// [`is_retryable`]: Self::is_retryable
    pub fn is_retryable_on(&self, route: &Route) -> bool {
        self.is_retryable()
            || (route.kind() == RouteKind::DeleteGroup
                && matches!(
                    self,
                    Self::Api {
                        status: 200..=299,
                        ..
                    }
                ))
    }

    /// Whether a listing failed because its answer did not parse or its pages did not add
    /// up: asking again usually gives a sound answer.
    pub fn is_unsound_listing(&self) -> bool {
        matches!(
            self,
            Self::Decode {
                status: 200..=299,
                ..
            } | Self::InconsistentListing { .. }
        )
    }

    /// Whether the request certainly never reached the server, so that even a request
    /// that is not idempotent (a POST) can be sent again without doing its work twice.
    pub fn certainly_not_processed(&self) -> bool {
        match self {
            Self::RateLimited { .. } => true,
            Self::Api { status, .. } => *status == 408,
            Self::Transport { kind, .. } => *kind == TransportKind::Connect,
            _ => false,
        }
    }

    /// The HTTP status Cloudflare answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Decode { status, .. } => Some(*status),
            Self::RateLimited { .. } => Some(429),
            Self::DeadlineExceeded { last, .. } | Self::RateLimitWait { last, .. } => {
                last.as_ref().and_then(|last| last.status)
            }
            _ => None,
        }
    }

    /// Where the request went and why it got no answer, when it got none.
    pub fn unreachable(&self) -> Option<Unreachable> {
        match self {
            Self::Transport { source, .. } => Some(Unreachable::of(source)),
            _ => None,
        }
    }

    /// Cloudflare's error codes, outermost first (empty when it sent none).
    pub fn codes(&self) -> Vec<i64> {
        match self {
            Self::Api { errors, .. } | Self::RateLimited { errors, .. } => errors.codes(),
            Self::DeadlineExceeded { last, .. } | Self::RateLimitWait { last, .. } => last
                .as_ref()
                .map(|last| last.codes.clone())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// Statuses worth retrying: 408 Request Timeout, 409 Conflict, 429 Too Many Requests and
/// every 5xx.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || (500..=599).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudflare::envelope::ApiError;

    fn route() -> Route {
        Route::ListGroups {
            account: "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap(),
        }
    }

    fn api(status: u16) -> Error {
        Error::Api {
            route: route(),
            status,
            errors: ApiErrors(vec![ApiError {
                code: 10000,
                message: "Authentication error".into(),
                documentation_url: None,
                source: None,
                error_chain: None,
            }]),
        }
    }

    #[test]
    fn classification_of_statuses() {
        for status in [408, 409, 429, 500, 502, 503, 504, 599] {
            assert!(api(status).is_retryable(), "{status} should be retried");
        }
        for status in [200, 301, 400, 401, 403, 404, 405, 410, 422] {
            assert!(
                !api(status).is_retryable(),
                "{status} should not be retried"
            );
        }
        let limited = Error::RateLimited {
            route: route(),
            retry_after: Some(Duration::from_secs(3)),
            errors: ApiErrors::default(),
        };
        assert!(limited.is_retryable());
        assert!(limited.certainly_not_processed());
        assert!(!api(503).certainly_not_processed());
        let decode = Error::Decode {
            route: route(),
            status: 200,
            message: "expected value".into(),
        };
        assert!(!decode.is_retryable());
        let listing = Error::InconsistentListing {
            route: route(),
            detail: "x".into(),
        };
        assert!(!listing.is_retryable());
    }

    #[test]
    fn text_names_the_route_status_and_codes() {
        let text = api(403).to_string();
        assert_eq!(
            text,
            "GET /accounts/023e105f4ecef8ad9ca31a8372d0c353/iam/user_groups: HTTP 403: \
             [10000] Authentication error"
        );
        let deadline = Error::DeadlineExceeded {
            route: route(),
            deadline: Duration::from_secs(60),
            attempts: 3,
            waiting: "for the next retry in 8s".into(),
            last: Some(Box::new(LastFailure::from(&api(503)))),
        };
        assert!(deadline.to_string().contains("after 3 attempt(s)"));
        assert!(deadline.to_string().contains("HTTP 503"));
        assert_eq!(deadline.status(), Some(503));
        assert_eq!(deadline.codes(), vec![10000]);
    }
}
