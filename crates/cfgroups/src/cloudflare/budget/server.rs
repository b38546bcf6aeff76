//! What the server says about its own limit, and the rule that follows from it: the
//! `Ratelimit` header (`r` requests remain, the next frees in `t` seconds) and the
//! `Ratelimit-Policy` header (the quota `q` per window `w`).
//!
//! The server's `r` counts every client of the token (people on the dashboard, other tools),
//! so it is the authority whenever it is stricter than the budget: after an answer that says
//! `r` remain, no more than `r` further requests go before `t` has passed. The answer
//! describes the server's count when that request arrived; requests that were already in
//! flight then may not have been counted yet, so they are taken off `r`. Once `t` has
//! passed, at least one place has freed: one more request may go (and, with nothing in
//! flight, one always may), and its answer tells the rest.

use std::time::Duration;

use tokio::time::Instant;

use super::window::Room;

/// The longest `t` or window believed from a header: longer values are clamped, so that a
/// broken header cannot hold requests for days.
pub const MAX_HEADER_SECONDS: u64 = 86_400;

/// Cloudflare's `Ratelimit: "default";r=<remaining>;t=<seconds to reset>` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeader {
    pub remaining: u64,
    pub reset: Duration,
}

/// One policy of Cloudflare's `Ratelimit-Policy: "default";q=<quota>;w=<window seconds>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimitPolicy {
    pub quota: u64,
    pub window: Duration,
}

/// The `key=value` parameters of each comma-separated item of a structured header, the
/// first element (the policy's name) skipped.
fn items(value: &str) -> impl Iterator<Item = Vec<(&str, &str)>> {
    value.split(',').map(|item| {
        item.split(';')
            .skip(1)
            .filter_map(|param| param.split_once('='))
            .map(|(key, val)| (key.trim(), val.trim().trim_matches('"')))
            .collect()
    })
}

fn seconds(value: &str) -> Option<Duration> {
    value
        .parse::<u64>()
        .ok()
        .map(|secs| Duration::from_secs(secs.min(MAX_HEADER_SECONDS)))
}

fn param<'a>(params: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Parses a `Ratelimit` header value. With several comma-separated policies, the most
/// restrictive one (fewest remaining) is returned; `None` when no item has both `r` and `t`.
pub fn parse_ratelimit(value: &str) -> Option<RateLimitHeader> {
    items(value)
        .filter_map(|params| {
            Some(RateLimitHeader {
                remaining: param(&params, "r")?.parse().ok()?,
                reset: seconds(param(&params, "t")?)?,
            })
        })
        .min_by_key(|header| header.remaining)
}

/// Parses a `Ratelimit-Policy` header value: every item with a quota `q` and a non-zero
/// window `w`.
pub fn parse_policy(value: &str) -> Vec<RateLimitPolicy> {
    items(value)
        .filter_map(|params| {
            Some(RateLimitPolicy {
                quota: param(&params, "q")?.parse().ok()?,
                window: seconds(param(&params, "w")?)?,
            })
        })
        .filter(|policy| !policy.window.is_zero())
        .collect()
}

impl RateLimitPolicy {
    /// Whether a budget of `max_requests` per `window` already keeps to this policy: it
    /// admits at most `max_requests * ceil(self.window / window)` in any span of this
    /// policy's window.
    pub fn implied_by(&self, max_requests: u32, window: Duration) -> bool {
        let spans = self.window.as_nanos().div_ceil(window.as_nanos().max(1));
        u128::from(max_requests).saturating_mul(spans) <= u128::from(self.quota)
    }
}

/// The rule drawn from the latest `Ratelimit` header: at most `allowed` admissions after
/// admission number `after` until `until`, then one more (or any, with nothing in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    /// The admission whose answer carried the header (admissions are numbered from 1).
    pub after: u64,
    pub allowed: u64,
    pub until: Instant,
}

impl Remaining {
    /// From a header on the answer to admission `seq`, admitted while `in_flight_before`
    /// other requests were in flight, received at `now`.
    pub fn from_header(
        header: RateLimitHeader,
        seq: u64,
        in_flight_before: usize,
        now: Instant,
    ) -> Self {
        let in_flight = u64::try_from(in_flight_before).unwrap_or(u64::MAX);
        Self {
            after: seq,
            allowed: header.remaining.saturating_sub(in_flight),
            until: now + header.reset,
        }
    }

    /// Admissions made since the header's request, with `admitted_total` admitted so far.
    pub fn used(&self, admitted_total: u64) -> u64 {
        admitted_total.saturating_sub(self.after)
    }

    /// Whether the server's word lets one more request go at `now`.
    pub fn room(&self, admitted_total: u64, in_flight: usize, now: Instant) -> Room {
        let used = self.used(admitted_total);
        if now < self.until {
            if used < self.allowed {
                Room::Now
            } else {
                Room::At(self.until)
            }
        } else if used <= self.allowed || in_flight == 0 {
            Room::Now
        } else {
            Room::Answer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratelimit_header_parsing() {
        assert_eq!(
            parse_ratelimit(r#""default";r=50;t=30"#),
            Some(RateLimitHeader {
                remaining: 50,
                reset: Duration::from_secs(30)
            })
        );
        assert_eq!(
            parse_ratelimit(r#""burst";r=90;t=12, "default";r=7;t=200"#),
            Some(RateLimitHeader {
                remaining: 7,
                reset: Duration::from_secs(200)
            })
        );
        assert_eq!(
            parse_ratelimit(r#"default; t=5 ; r=0"#),
            Some(RateLimitHeader {
                remaining: 0,
                reset: Duration::from_secs(5)
            })
        );
        assert_eq!(
            parse_ratelimit(r#""default";r=1;t=99999999"#).map(|h| h.reset),
            Some(Duration::from_secs(MAX_HEADER_SECONDS))
        );
        assert_eq!(parse_ratelimit(r#""default";r=5"#), None);
        assert_eq!(parse_ratelimit(r#""default";r=x;t=5"#), None);
        assert_eq!(parse_ratelimit(""), None);
    }

    #[test]
    fn policy_header_parsing() {
        assert_eq!(
            parse_policy(r#""burst";q=100;w=60, "default";q=1200;w=300"#),
            vec![
                RateLimitPolicy {
                    quota: 100,
                    window: Duration::from_secs(60)
                },
                RateLimitPolicy {
                    quota: 1200,
                    window: Duration::from_secs(300)
                }
            ]
        );
        assert!(parse_policy(r#""default";q=5;w=0"#).is_empty());
        assert!(parse_policy(r#""default";q=5"#).is_empty());
    }

    #[test]
    fn a_policy_is_implied_only_when_the_budget_cannot_exceed_it() {
        let five_min = Duration::from_secs(300);
        let policy = |quota, secs| RateLimitPolicy {
            quota,
            window: Duration::from_secs(secs),
        };
        assert!(policy(1200, 300).implied_by(1000, five_min));
        assert!(!policy(50, 20).implied_by(1000, five_min));
        assert!(!policy(1200, 600).implied_by(1000, five_min));
        assert!(policy(2000, 600).implied_by(1000, five_min));
    }

    #[test]
    fn the_server_word_allows_r_then_one_more_after_t() {
        let now = Instant::now();
        let header = RateLimitHeader {
            remaining: 5,
            reset: Duration::from_secs(10),
        };
        // Answer to admission 3, admitted while 2 others were in flight: 3 more may go.
        let rule = Remaining::from_header(header, 3, 2, now);
        assert_eq!(rule.allowed, 3);
        assert_eq!(rule.room(5, 4, now), Room::Now);
        assert_eq!(
            rule.room(6, 4, now),
            Room::At(now + Duration::from_secs(10))
        );
        let later = now + Duration::from_secs(10);
        assert_eq!(rule.room(6, 4, later), Room::Now);
        assert_eq!(rule.room(7, 4, later), Room::Answer);
        assert_eq!(rule.room(7, 0, later), Room::Now);
    }
}
