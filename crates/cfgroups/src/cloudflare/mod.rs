//! The live Cloudflare API client for IAM user groups.
//!
//! Defaults, and why (each is a field of [`ClientConfig`], [`RetryPolicy`] or
//! [`BudgetConfig`], documented there):
//! - base URL `https://api.cloudflare.com/client/v4`; plain http only to loopback;
//! - connect timeout 10 s, request timeout 30 s, no redirects followed;
//! - retries on 408/409/429/5xx, timeouts and broken connections (never on 400/401/403/404),
//!   and a DELETE also on `success: false`, up to 5 times, backoff 0.5 s doubling to 8 s
//!   with equal jitter, `Retry-After` honoured (clamped to 5 minutes), and every attempt
//!   inside a 60 s deadline per operation that time spent waiting for the budget does not
//!   count against; POSTs are retried only when the server cannot have acted on them;
//! - a process-wide budget, an exact sliding window of at most 1000 requests in any rolling
//!   5 minutes (Cloudflare allows 1200), all available at once; the server's
//!   `Ratelimit-Policy` held too where it is stricter, never more than its `Ratelimit`
//!   remaining before its reset, and after a 429 every request held for the announced
//!   lockout, up to 6 minutes;
//! - listings ask for 500 items a page; page 1's `total_count` names the other pages, which
//!   are fetched 8 at a time; pages that disagree with `total_count` or with each other fail
//!   the listing, which is asked for again up to 3 times.
//!
//! Files, one concept each: [`credentials`] (who we are), [`known_secrets`] (the secrets a
//! child process must neither inherit nor echo), [`base_url`] (where, safely),
//! [`route`] (which endpoint; ids into paths), [`envelope`] (the response shape),
//! [`error`] (what went wrong, retryable or not), [`retry`] (when to try again),
//! [`budget`] (how many requests may go), [`pager`] (when a listing is complete),
//! [`observer`] (the metrics hook), [`unreachable`] (why no answer came, for people),
//! [`client`] (the operations).

pub mod base_url;
pub mod budget;
pub mod client;
pub mod credentials;
pub mod envelope;
pub mod error;
pub mod known_secrets;
pub mod observer;
pub mod pager;
pub mod retry;
pub mod route;
pub mod unreachable;

pub use base_url::{BaseUrl, DEFAULT_BASE_URL};
pub use budget::{
    Budget, BudgetConfig, BudgetError, BudgetSnapshot, Permit, RateLimitHeader, RateLimitPolicy,
    ServerSignals, WaitReason, Waiting, parse_policy, parse_ratelimit,
};
pub use client::{Client, ClientConfig, DEFAULT_USER_AGENT};
pub use credentials::{CredentialOrigin, Credentials, CredentialsError};
pub use envelope::{ApiError, ApiErrors, Envelope, ResultInfo};
pub use error::{Error, LastFailure, TransportKind, is_retryable_status};
pub use known_secrets::KnownSecrets;
pub use observer::{NoopObserver, RequestEvent, RequestObserver};
pub use retry::{Jitter, RetryPolicy, parse_retry_after};
pub use route::{Route, RouteKind};
pub use unreachable::Unreachable;
