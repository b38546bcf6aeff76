//! Cloudflare's response envelope (`success`, `errors`, `messages`, `result`,
//! `result_info`) and the rendering of its error list into human-readable text.
//!
//! Parsing is lenient about everything cfgroups does not need (unknown fields, missing
//! `messages`), and strict about the one field that decides the outcome: `success`. A
//! response without it, or with `success: false`, is never a success, whatever the HTTP
//! status said.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

/// The envelope around every Cloudflare API v4 response, its `result` of type `T`: the
/// caller's typed payload (list pages deserialize straight into groups), `IgnoredAny` where
/// the payload does not matter, or a `Value` where it is not known.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope<T = Value> {
    /// Whether the request succeeded; a `false` under HTTP 200 is still a failure.
    pub success: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub errors: Vec<ApiError>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub messages: Vec<Value>,
    /// The payload; `None` when absent or `null`.
    #[serde(default = "none")]
    pub result: Option<T>,
    #[serde(default)]
    pub result_info: Option<ResultInfo>,
}

/// One entry of `errors` (and of an `error_chain`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub documentation_url: Option<String>,
    #[serde(default)]
    pub source: Option<Value>,
    /// Nested causes, e.g. `6003` "Invalid request headers" caused by `6111`.
    #[serde(default)]
    pub error_chain: Option<Vec<ApiError>>,
}

/// Pagination facts of a list response. Every field is optional because Cloudflare omits
/// some of them on some endpoints; the pager decides what it can check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct ResultInfo {
    #[serde(default)]
    pub page: Option<u64>,
    #[serde(default)]
    pub per_page: Option<u64>,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub total_count: Option<u64>,
}

fn none<T>() -> Option<T> {
    None
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Cloudflare's error list rendered for people: `[10000] Authentication error; [6003]
/// Invalid request headers (caused by [6111] Invalid format for Authorization header)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiErrors(pub Vec<ApiError>);

impl ApiErrors {
    /// The codes, outermost first, including those of every `error_chain`.
    pub fn codes(&self) -> Vec<i64> {
        fn walk(errors: &[ApiError], out: &mut Vec<i64>) {
            for error in errors {
                out.push(error.code);
                if let Some(chain) = &error.error_chain {
                    walk(chain, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.0, &mut out);
        out
    }

    /// Whether the list says nothing at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same list with `scrub` applied to every message, used to remove secrets a
    /// server may have echoed back before the text reaches a log.
    pub(crate) fn scrubbed(mut self, scrub: &impl Fn(&str) -> String) -> Self {
        fn walk(errors: &mut [ApiError], scrub: &impl Fn(&str) -> String) {
            for error in errors {
                error.message = scrub(&error.message);
                error.source = None;
                if let Some(chain) = &mut error.error_chain {
                    walk(chain, scrub);
                }
            }
        }
        walk(&mut self.0, scrub);
        self
    }
}

impl fmt::Display for ApiErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn one(error: &ApiError, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "[{}] {}",
                error.code,
                crate::shown::Escaped(&error.message)
            )?;
            if let Some(chain) = error.error_chain.as_deref().filter(|c| !c.is_empty()) {
                f.write_str(" (caused by ")?;
                for (i, cause) in chain.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    one(cause, f)?;
                }
                f.write_str(")")?;
            }
            Ok(())
        }
        if self.0.is_empty() {
            return f.write_str("no error details");
        }
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            one(error, f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_list_page() {
        let envelope: Envelope = serde_json::from_str(
            r#"{"success":true,"errors":[],"messages":[],"result":[{"id":"x"}],
                "result_info":{"page":1,"per_page":100,"count":1,"total_count":1,"new":true}}"#,
        )
        .unwrap();
        assert!(envelope.success);
        assert_eq!(
            envelope.result_info,
            Some(ResultInfo {
                page: Some(1),
                per_page: Some(100),
                count: Some(1),
                total_count: Some(1)
            })
        );
    }

    #[test]
    fn success_false_under_200_carries_codes_and_chain() {
        let envelope: Envelope = serde_json::from_str(
            r#"{"success":false,"errors":[{"code":6003,"message":"Invalid request headers",
                "error_chain":[{"code":6111,"message":"Invalid format for Authorization header"}]},
                {"code":10000,"message":"Authentication error","documentation_url":"https://x",
                 "source":{"pointer":"/a"}}],
                "messages":null,"result":null}"#,
        )
        .unwrap();
        assert!(!envelope.success);
        let errors = ApiErrors(envelope.errors);
        assert_eq!(errors.codes(), vec![6003, 6111, 10000]);
        assert_eq!(
            errors.to_string(),
            "[6003] Invalid request headers (caused by [6111] Invalid format for \
             Authorization header); [10000] Authentication error"
        );
    }

    #[test]
    fn missing_success_is_a_decode_error() {
        assert!(serde_json::from_str::<Envelope>(r#"{"result":[]}"#).is_err());
    }

    #[test]
    fn empty_error_list_says_so() {
        assert_eq!(ApiErrors::default().to_string(), "no error details");
    }
}
