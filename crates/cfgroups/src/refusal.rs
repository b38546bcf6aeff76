//! Deletions Cloudflare will never allow: which failed DELETE answers are permanent (asking
//! again fails the same way until the group, the token or the config changes), what they
//! carry into reports, and the hint that tells a person why.
//!
//! The cases this exists for: a group provisioned by SCIM (Cloudflare refuses to delete it
//! through the API or the dashboard; only the identity provider can), and a token that can
//! list groups ("Account Settings Read") but not delete them (no "Account Settings Write").
//!
//! Permanent, by the DELETE's final HTTP status: every 4xx except 404 (already gone: a
//! success), 408 and 409 (a timeout and a conflict may pass) and 429 (rate limited). That is
//! 400 (Cloudflare reads the request as invalid for this group), 401 and 403 (credentials or
//! permission, SCIM), 405, 410, 422 and the rest: answers about the request itself, not about
//! the moment. 5xx, 429, timeouts and broken connections stay transient and keep the ordinary
//! retries. The status decides, not Cloudflare's error codes: those are undocumented for this
//! endpoint, so they only shape the hint.

use serde::{Deserialize, Serialize};

use crate::cloudflare::{self, ApiErrors};
use crate::shown::Escaped;

/// Cloudflare's permanent refusal of a deletion: what it answered, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The HTTP status of the final answer.
    pub status: u16,
    /// Cloudflare's first error code, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// Cloudflare's error messages (secrets already scrubbed), joined with `; `.
    pub message: String,
    /// What the answer most likely means, for a person.
    pub hint: String,
}

/// Whether a DELETE that ended with `status` would end the same way if sent again.
pub fn is_permanent_status(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 404 | 408 | 409 | 429)
}

impl Refusal {
    /// The refusal in `error`, when it is a permanent one (see the module doc).
    pub fn from_error(error: &cloudflare::Error) -> Option<Self> {
        match error {
            cloudflare::Error::Api { status, errors, .. } if is_permanent_status(*status) => {
                Some(Self::new(*status, errors))
            }
            _ => None,
        }
    }

    /// A refusal with `status` and Cloudflare's `errors`.
    pub fn new(status: u16, errors: &ApiErrors) -> Self {
        let code = errors.0.first().map(|e| e.code);
        let message = errors
            .0
            .iter()
            .map(|e| e.message.as_str())
            .filter(|m| !m.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let hint = hint(status, &errors.codes(), &message);
        Self {
            status,
            code,
            message,
            hint,
        }
    }

    /// `HTTP 403 [1010] message`, escaped for one line.
    pub fn answer(&self) -> String {
        let code = self.code.map(|c| format!(" [{c}]")).unwrap_or_default();
        format!("HTTP {}{code} {}", self.status, Escaped(&self.message))
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Cloudflare refuses this deletion for good ({}): {}",
            self.answer(),
            self.hint
        )
    }
}

/// Cloudflare's "Authentication error" and "Unauthorized to access requested resource": what
/// a token without the permission an endpoint needs gets.
const PERMISSION_CODES: [i64; 2] = [10000, 9109];

/// The likely cause of a permanent refusal, and what to do.
fn hint(status: u16, codes: &[i64], message: &str) -> String {
    const PROTECT: &str = "to stop asking, `protect` such groups by name (e.g. \
                           protect: [\"SCIM-*\"]) instead of declaring them absent";
    if message.to_ascii_lowercase().contains("scim") {
        return format!(
            "the group is provisioned by SCIM: only the identity provider can delete it; \
             {PROTECT}"
        );
    }
    match status {
        403 if codes.iter().any(|c| PERMISSION_CODES.contains(c)) => format!(
            "the API token can list groups but may lack \"Account Settings Write\", which \
             deletion needs; or the group is provisioned by SCIM (only the identity provider \
             can delete it; {PROTECT})"
        ),
        403 => format!(
            "is the group provisioned by SCIM? Only the identity provider can delete it ({PROTECT}). \
             Or the API token lacks \"Account Settings Write\", which deletion needs"
        ),
        401 => {
            "Cloudflare refused the credentials for this deletion: check the API token".to_owned()
        }
        400 => format!(
            "Cloudflare reads this deletion as invalid, and will every time; check the group \
             in the dashboard (provisioned by SCIM? {PROTECT})"
        ),
        _ => format!(
            "Cloudflare answers HTTP {status} to this deletion, and will every time until the \
             group, the token or the config changes"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudflare::ApiError;

    fn errors(code: i64, message: &str) -> ApiErrors {
        ApiErrors(vec![ApiError {
            code,
            message: message.to_owned(),
            documentation_url: None,
            source: None,
            error_chain: None,
        }])
    }

    #[test]
    fn permanent_statuses_are_the_4xx_that_do_not_pass() {
        for status in [400, 401, 403, 405, 410, 422] {
            assert!(is_permanent_status(status), "{status}");
        }
        for status in [200, 404, 408, 409, 429, 500, 502, 503] {
            assert!(!is_permanent_status(status), "{status}");
        }
    }

    #[test]
    fn the_hint_names_scim_or_the_missing_permission() {
        let scim = Refusal::new(403, &errors(1010, "This user group is provisioned by SCIM"));
        assert_eq!(scim.code, Some(1010));
        assert!(scim.hint.contains("provisioned by SCIM"), "{}", scim.hint);
        assert!(scim.hint.contains("protect"), "{}", scim.hint);

        let token = Refusal::new(403, &errors(10000, "Authentication error"));
        assert!(
            token.hint.contains("Account Settings Write"),
            "{}",
            token.hint
        );
        let other = Refusal::new(403, &errors(1234, "Forbidden"));
        assert!(other.hint.contains("SCIM") && other.hint.contains("Account Settings Write"));
        assert!(
            Refusal::new(400, &errors(1001, "bad"))
                .hint
                .contains("invalid")
        );
        assert!(
            Refusal::new(410, &ApiErrors::default())
                .hint
                .contains("HTTP 410")
        );
    }

    #[test]
    fn shown_on_one_line_with_status_code_and_message() {
        let refusal = Refusal::new(403, &errors(1010, "managed by SCIM\n\u{1b}[2K"));
        let shown = refusal.to_string();
        assert!(
            shown.starts_with(
                "Cloudflare refuses this deletion for good (HTTP 403 [1010] managed by SCIM"
            ),
            "{shown}"
        );
        assert!(!shown.chars().any(char::is_control), "{shown}");
    }
}
