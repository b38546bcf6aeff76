//! What an operator should check when Cloudflare refuses a request or cannot be reached:
//! one line from the HTTP status, Cloudflare's error codes, or how the connection failed.
//! The error itself says what happened; the hint says where to look.

use crate::cloudflare::unreachable::{Cause, Unreachable};

/// `10000`: authentication error (a token that is unknown, revoked or expired).
pub const CODE_AUTHENTICATION: i64 = 10000;
/// `9109`: valid credentials, but not for this resource (token scope, or a wrong account id).
pub const CODE_UNAUTHORIZED: i64 = 9109;
/// `6003`: the credential headers are malformed (with `6102`, `6103` or `6111` in its chain).
pub const CODE_INVALID_HEADERS: i64 = 6003;
/// `971`: rate limited.
pub const CODE_RATE_LIMITED: i64 = 971;

/// The hint for an answer with `status` and Cloudflare's `codes`, if there is a useful one.
pub fn for_answer(status: u16, codes: &[i64]) -> Option<String> {
    let has = |code| codes.contains(&code);
    let hint = if has(CODE_UNAUTHORIZED) {
        "the credentials cannot access this account: check the account id, and that the \
         token's account resources include it with Account Settings Read (Write to delete)"
    } else if has(CODE_AUTHENTICATION) || status == 401 {
        "authentication failed: the token (or key) is unknown, revoked or expired; check \
         CLOUDFLARE_API_TOKEN or the token file"
    } else if has(CODE_INVALID_HEADERS) {
        "the credential headers were refused as malformed: check the token or key for \
         stray spaces, quotes or line breaks, and CLOUDFLARE_EMAIL with CLOUDFLARE_API_KEY"
    } else if status == 403 {
        "forbidden: the token lacks a permission this needs (Account Settings Read to list, \
         Account Settings Write to delete), or this account id is wrong"
    } else if status == 404 {
        "not found: check the account id"
    } else if status == 429 || has(CODE_RATE_LIMITED) {
        "rate limited: another client is spending the same token's 1200 requests per 5 \
         minutes, or --max-requests is above what the token may use"
    } else if status >= 500 {
        "Cloudflare failed to answer (retried): see https://www.cloudflarestatus.com"
    } else {
        return None;
    };
    Some(hint.to_owned())
}

/// The hint for a request that got no answer at all.
pub fn for_unreachable(unreachable: &Unreachable) -> String {
    let endpoint = &unreachable.endpoint;
    match &unreachable.cause {
        Cause::Refused => format!(
            "nothing accepts connections at {endpoint}: check CLOUDFLARE_BASE_URL (or \
             --api-base-url), a proxy or a firewall"
        ),
        Cause::Dns => format!(
            "the host of {endpoint} does not resolve: check DNS on this host and \
             CLOUDFLARE_BASE_URL (or --api-base-url)"
        ),
        Cause::Tls(_) => format!(
            "TLS with {endpoint} failed: check the system's CA certificates, a \
             TLS-intercepting proxy, and the clock"
        ),
        Cause::Timeout => format!(
            "{endpoint} did not answer in time: check the network path (firewall, proxy), \
             or raise --connect-timeout / --request-timeout"
        ),
        Cause::Broken | Cause::Other(_) => format!(
            "the connection to {endpoint} failed: check the network path (firewall, proxy) \
             and CLOUDFLARE_BASE_URL (or --api-base-url)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_points_somewhere_else() {
        let scope = for_answer(403, &[9109]).unwrap();
        assert!(scope.contains("Account Settings Read") && scope.contains("account id"));
        let auth = for_answer(403, &[10000]).unwrap();
        assert!(auth.contains("revoked"), "{auth}");
        assert!(
            for_answer(400, &[6003, 6111])
                .unwrap()
                .contains("malformed")
        );
        assert!(for_answer(429, &[971]).unwrap().contains("1200"));
        assert!(for_answer(503, &[]).unwrap().contains("cloudflarestatus"));
        assert_eq!(for_answer(409, &[]), None);
    }

    #[test]
    fn an_unreachable_api_names_its_endpoint() {
        let refused = Unreachable {
            endpoint: "127.0.0.1:8787".to_owned(),
            cause: Cause::Refused,
        };
        let hint = for_unreachable(&refused);
        assert!(
            hint.contains("127.0.0.1:8787") && hint.contains("CLOUDFLARE_BASE_URL"),
            "{hint}"
        );
        let tls = Unreachable {
            endpoint: "api.cloudflare.com:443".to_owned(),
            cause: Cause::Tls("invalid peer certificate".to_owned()),
        };
        assert!(for_unreachable(&tls).contains("CA certificates"));
    }
}
