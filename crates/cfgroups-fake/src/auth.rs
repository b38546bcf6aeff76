//! Credential checks, as the real API makes them: `Authorization: Bearer <token>`, or the
//! legacy `X-Auth-Email` + `X-Auth-Key` pair.
//!
//! A header that is missing or malformed is a 400 `6003` naming it in `error_chain` (`6111`
//! for `Authorization`, `6102` for `X-Auth-Email`, `6103` for `X-Auth-Key`); a request with
//! no credential headers at all gets both `6102` and `6103`, as the API answers a request
//! that did not try the token scheme. Well-formed credentials that match nothing are a 403
//! `10000`. A read-only token (one without "Account Settings Write") is accepted for `GET`;
//! anything else it sends is a 403 `10000` too, which is how the API answers a token that
//! lacks the permission an endpoint needs. The format checks are syntactic (charset, shape), not the real lengths, so tests
//! can use short readable secrets.

use std::collections::HashSet;
use std::fmt;

use axum::http::{HeaderMap, header};

use crate::envelope::{
    ApiError, CODE_BAD_AUTH_EMAIL, CODE_BAD_AUTH_KEY, CODE_BAD_AUTHORIZATION, ErrorItem,
};

/// The credentials the fake accepts. Debug output never shows them.
#[derive(Clone, Default)]
pub(crate) struct Credentials {
    tokens: HashSet<String>,
    /// Tokens that may only read.
    read_only: HashSet<String>,
    keys: HashSet<(String, String)>,
}

/// What accepted credentials may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read and write.
    Write,
    /// `GET` only: "Account Settings Read" without "Write".
    ReadOnly,
}

impl Access {
    /// Whether a request with `method` is allowed: a read-only token gets 403 `10000` for
    /// anything but `GET`.
    pub(crate) fn allows(self, method: &axum::http::Method) -> Result<(), ApiError> {
        if self == Self::ReadOnly && method != axum::http::Method::GET {
            return Err(ApiError::missing_permission());
        }
        Ok(())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("tokens", &self.tokens.len())
            .field("read_only", &self.read_only.len())
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Credentials {
    pub(crate) fn add_token(&mut self, token: String) {
        self.tokens.insert(token);
    }

    pub(crate) fn add_read_only_token(&mut self, token: String) {
        self.read_only.insert(token);
    }

    pub(crate) fn add_key(&mut self, email: String, key: String) {
        self.keys.insert((email, key));
    }

    /// Accepts the request's credentials or says why not. `Authorization` wins when both
    /// schemes are present.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<Access, ApiError> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .filter(|t| is_token(t))
                .ok_or_else(|| {
                    ApiError::invalid_headers(vec![ErrorItem::new(
                        CODE_BAD_AUTHORIZATION,
                        "Invalid format for Authorization header",
                    )])
                })?;
            return if self.tokens.contains(token) {
                Ok(Access::Write)
            } else if self.read_only.contains(token) {
                Ok(Access::ReadOnly)
            } else {
                Err(ApiError::authentication())
            };
        }
        let email = header_str(headers, "x-auth-email").filter(|e| is_email(e));
        let key = header_str(headers, "x-auth-key").filter(|k| is_key(k));
        let mut chain = Vec::new();
        if email.is_none() {
            chain.push(ErrorItem::new(
                CODE_BAD_AUTH_EMAIL,
                "Invalid format for X-Auth-Email header",
            ));
        }
        if key.is_none() {
            chain.push(ErrorItem::new(
                CODE_BAD_AUTH_KEY,
                "Invalid format for X-Auth-Key header",
            ));
        }
        match (email, key) {
            (Some(email), Some(key)) => {
                if self.keys.contains(&(email.to_owned(), key.to_owned())) {
                    Ok(Access::Write)
                } else {
                    Err(ApiError::authentication())
                }
            }
            _ => Err(ApiError::invalid_headers(chain)),
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// RFC 6750 `b64token`: what may follow `Bearer `.
fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
}

fn is_email(value: &str) -> bool {
    match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !value
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        }
        None => false,
    }
}

fn is_key(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn credentials() -> Credentials {
        let mut c = Credentials::default();
        c.add_token("good-token".into());
        c.add_key("user@example.com".into(), "key123".into());
        c
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn accepts_both_schemes() {
        let c = credentials();
        assert!(
            c.check(&headers(&[("authorization", "Bearer good-token")]))
                .is_ok()
        );
        assert!(
            c.check(&headers(&[
                ("x-auth-email", "user@example.com"),
                ("x-auth-key", "key123")
            ]))
            .is_ok()
        );
    }

    #[test]
    fn malformed_is_400_and_wrong_is_403() {
        let c = credentials();
        let status = |pairs: &[(&'static str, &'static str)]| {
            c.check(&headers(pairs)).unwrap_err().status().as_u16()
        };
        assert_eq!(status(&[("authorization", "Basic abc")]), 400);
        assert_eq!(status(&[("authorization", "Bearer ")]), 400);
        assert_eq!(status(&[("authorization", "Bearer other")]), 403);
        assert_eq!(status(&[]), 400);
        assert_eq!(
            status(&[("x-auth-email", "nope"), ("x-auth-key", "key123")]),
            400
        );
        assert_eq!(
            status(&[("x-auth-email", "user@example.com"), ("x-auth-key", "k y")]),
            400
        );
        assert_eq!(
            status(&[
                ("x-auth-email", "user@example.com"),
                ("x-auth-key", "other")
            ]),
            403
        );
    }

    #[test]
    fn a_read_only_token_reads_and_is_refused_anything_else() {
        let mut c = credentials();
        c.add_read_only_token("reader".into());
        let access = c
            .check(&headers(&[("authorization", "Bearer reader")]))
            .unwrap();
        assert_eq!(access, Access::ReadOnly);
        assert!(access.allows(&axum::http::Method::GET).is_ok());
        let refused = access.allows(&axum::http::Method::DELETE).unwrap_err();
        assert_eq!(refused.status().as_u16(), 403);
        assert_eq!(refused.body()["errors"][0]["code"], 10000);
        let full = c
            .check(&headers(&[("authorization", "Bearer good-token")]))
            .unwrap();
        assert!(full.allows(&axum::http::Method::DELETE).is_ok());
    }

    #[test]
    fn debug_hides_secrets() {
        assert!(!format!("{:?}", credentials()).contains("good-token"));
    }
}
