//! Cloudflare's v4 response envelopes: the success and list shapes, the error envelope with
//! its codes, and turning either into an HTTP response.
//!
//! Every failure is `{"success":false,"errors":[{"code","message",...}],"messages":[],
//! "result":null}`; an error about one field of a request body also carries
//! `"source":{"pointer":"/name"}` (a JSON pointer into the body), one of the optional error
//! fields the API documents. Error codes follow what the real API is known to send (see the
//! reference); where the real code is undocumented (a missing group, a bad query parameter)
//! the fake picks one and says so on the constant. Clients should branch on the HTTP status,
//! never on these codes.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;
use serde_json::{Value, json};
use thiserror::Error;

use crate::state::ApiGroup;

/// A response on its way out of the fake.
pub(crate) type HttpResponse = Response<Body>;

/// `6003`: a malformed credential header; the `error_chain` says which header.
pub const CODE_INVALID_HEADERS: u32 = 6003;
/// `6102`: `X-Auth-Email` missing or not an email address.
pub const CODE_BAD_AUTH_EMAIL: u32 = 6102;
/// `6103`: `X-Auth-Key` missing or malformed.
pub const CODE_BAD_AUTH_KEY: u32 = 6103;
/// `6111`: `Authorization` is not `Bearer <token>`.
pub const CODE_BAD_AUTHORIZATION: u32 = 6111;
/// `10000`: well-formed credentials that match no user.
pub const CODE_AUTHENTICATION: u32 = 10000;
/// `9109`: valid credentials, but an account they cannot access (here: an unknown account).
pub const CODE_UNAUTHORIZED_ACCOUNT: u32 = 9109;
/// `7003`: the path does not route, usually because an identifier is malformed.
pub const CODE_COULD_NOT_ROUTE: u32 = 7003;
/// `7000`: sent after `7003`, as the real API does.
pub const CODE_NO_ROUTE: u32 = 7000;
/// `971`: the rate limit was exceeded.
pub const CODE_RATE_LIMITED: u32 = 971;
/// Undocumented upstream; the fake's choice for "no such user group" and for "no such
/// member in this group" (HTTP 404).
pub const CODE_GROUP_NOT_FOUND: u32 = 1003;
/// Undocumented upstream; the fake's choice for a bad query parameter or body (HTTP 400).
pub const CODE_INVALID_INPUT: u32 = 1001;
/// Undocumented upstream; the fake's choice for a method a route does not serve (HTTP 405).
pub const CODE_METHOD_NOT_ALLOWED: u32 = 10405;
/// Undocumented upstream; the fake's choice for a change to a group provisioned by SCIM
/// (HTTP 403). Cloudflare documents only that such groups "cannot be renamed, re-membered or
/// deleted through the API or the dashboard", not the answer. 403 is the most plausible: the
/// caller is authenticated and the request well-formed, but this resource is not theirs to
/// change, and asking again changes nothing (a 409 would say "retry later", a 400 "fix your
/// request"). The message names SCIM, so a person reading it knows what to do.
pub const CODE_SCIM_MANAGED: u32 = 1010;
/// The message of a [`CODE_SCIM_MANAGED`] error.
pub const SCIM_MANAGED_MESSAGE: &str =
    "This user group is provisioned by SCIM and cannot be modified through the API";
/// The code an injected failure (a status fault other than 429, or `success:false` under
/// 200) carries.
pub const CODE_INTERNAL: u32 = 1000;

/// The message of a `971` rate-limit error, as seen from the real API.
pub const RATE_LIMIT_MESSAGE: &str = "Please wait and consider throttling your request speed";

/// `result_info` of a paginated listing, field for field as the real API sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ResultInfo {
    pub page: u64,
    pub per_page: u64,
    pub count: u64,
    pub total_count: u64,
}

/// One entry of an envelope's `errors` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ErrorItem {
    code: u32,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<ErrorSource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    error_chain: Vec<ErrorItem>,
}

/// What an error is about: `{"pointer": "/name"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ErrorSource {
    pointer: String,
}

impl ErrorItem {
    pub(crate) fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            source: None,
            error_chain: Vec::new(),
        }
    }
}

/// A failed request: the HTTP status and the `errors` of its envelope.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("HTTP {status}: {}", first_message(.errors))]
pub(crate) struct ApiError {
    status: StatusCode,
    errors: Vec<ErrorItem>,
}

fn first_message(errors: &[ErrorItem]) -> &str {
    errors.first().map_or("", |e| e.message.as_str())
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            errors: vec![ErrorItem::new(code, message)],
        }
    }

    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// HTTP 400, `6003` with the offending headers in `error_chain`.
    pub(crate) fn invalid_headers(chain: Vec<ErrorItem>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            errors: vec![ErrorItem {
                error_chain: chain,
                ..ErrorItem::new(CODE_INVALID_HEADERS, "Invalid request headers")
            }],
        }
    }

    /// HTTP 403, `10000`: credentials that are well-formed but wrong.
    pub(crate) fn authentication() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            CODE_AUTHENTICATION,
            "Authentication error",
        )
    }

    /// HTTP 403, `10000`: a token that may read but not change (it lacks "Account Settings
    /// Write"). Cloudflare answers a token without the permission an endpoint needs with the
    /// same 403 `10000` "Authentication error" as a wrong token.
    pub(crate) fn missing_permission() -> Self {
        Self::authentication()
    }

    /// HTTP 403, [`CODE_SCIM_MANAGED`]: a change to a group provisioned by SCIM.
    pub(crate) fn scim_managed() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            CODE_SCIM_MANAGED,
            SCIM_MANAGED_MESSAGE,
        )
    }

    /// HTTP 403, `9109`: an account the caller cannot see.
    pub(crate) fn unauthorized_account() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            CODE_UNAUTHORIZED_ACCOUNT,
            "Unauthorized to access requested resource",
        )
    }

    /// HTTP 400, `7003` + `7000`: what the real API answers for a malformed identifier.
    pub(crate) fn could_not_route(path: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            errors: vec![
                ErrorItem::new(
                    CODE_COULD_NOT_ROUTE,
                    format!(
                        "Could not route to {path}, perhaps your object identifier is invalid?"
                    ),
                ),
                ErrorItem::new(CODE_NO_ROUTE, "No route for that URI"),
            ],
        }
    }

    /// HTTP 404 for a well-formed group id that names no group.
    pub(crate) fn group_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            CODE_GROUP_NOT_FOUND,
            "user group not found",
        )
    }

    /// HTTP 404 for a member id that is not in the group.
    pub(crate) fn member_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            CODE_GROUP_NOT_FOUND,
            "user group member not found",
        )
    }

    /// HTTP 400 for a query parameter or body the API would refuse.
    pub(crate) fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, CODE_INVALID_INPUT, message)
    }

    /// HTTP 400 for one field of the request body, named by a JSON pointer.
    pub(crate) fn invalid_field(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        let mut error = Self::invalid_input(message);
        if let Some(item) = error.errors.first_mut() {
            item.source = Some(ErrorSource {
                pointer: pointer.into(),
            });
        }
        error
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            CODE_METHOD_NOT_ALLOWED,
            "Method not allowed",
        )
    }

    /// HTTP 429, `971`.
    pub(crate) fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            CODE_RATE_LIMITED,
            RATE_LIMIT_MESSAGE,
        )
    }

    /// An injected failure with the given status: a 429 carries the rate limit's `971`
    /// body (without `Retry-After`, which the API does not always send), anything else
    /// [`CODE_INTERNAL`].
    pub(crate) fn injected(status: StatusCode) -> Self {
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Self::rate_limited();
        }
        let message = status.canonical_reason().unwrap_or("Internal error");
        Self::new(status, CODE_INTERNAL, message)
    }

    /// The full error envelope.
    pub(crate) fn body(&self) -> Value {
        json!({"success": false, "errors": self.errors, "messages": [], "result": null})
    }

    pub(crate) fn into_response(self) -> HttpResponse {
        json_response(self.status, &self.body())
    }
}

/// One value of a success answer: a tree, or a group object whose policies are written out
/// as the stored text.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Item {
    Tree(Value),
    Group(ApiGroup),
}

impl From<Value> for Item {
    fn from(value: Value) -> Self {
        Self::Tree(value)
    }
}

impl From<ApiGroup> for Item {
    fn from(group: ApiGroup) -> Self {
        Self::Group(group)
    }
}

/// The `result` of a success answer: one value, or a page of a listing with its
/// `result_info` (which list faults may still alter).
#[derive(Debug)]
pub(crate) enum Payload {
    One(Item),
    Page { items: Vec<Item>, info: ResultInfo },
}

/// `{"success":true,"errors":[],"messages":[],"result":...}`, with `result_info` for a page.
#[derive(Serialize)]
struct Success<'a, T> {
    success: bool,
    errors: [Value; 0],
    messages: [Value; 0],
    result: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_info: Option<&'a ResultInfo>,
}

/// The success envelope around `payload`, as an HTTP response.
pub(crate) fn success_response(status: StatusCode, payload: &Payload) -> HttpResponse {
    let encoded = match payload {
        Payload::One(item) => serde_json::to_vec(&Success {
            success: true,
            errors: [],
            messages: [],
            result: item,
            result_info: None,
        }),
        Payload::Page { items, info } => serde_json::to_vec(&Success {
            success: true,
            errors: [],
            messages: [],
            result: items,
            result_info: Some(info),
        }),
    };
    match encoded {
        Ok(bytes) => raw_json_response(status, bytes),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            CODE_INTERNAL,
            format!("cannot encode the answer: {e}"),
        )
        .into_response(),
    }
}

/// A JSON body with `Content-Type: application/json`.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    raw_json_response(status, body.to_string().into_bytes())
}

/// Bytes labelled as JSON, whether they are or not (the malformed-body fault uses this).
pub(crate) fn raw_json_response(status: StatusCode, bytes: Vec<u8>) -> HttpResponse {
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelope_has_the_documented_shape() {
        let body =
            ApiError::invalid_headers(vec![ErrorItem::new(CODE_BAD_AUTHORIZATION, "x")]).body();
        assert_eq!(
            body,
            json!({"success": false, "messages": [], "result": null, "errors": [
                {"code": 6003, "message": "Invalid request headers",
                 "error_chain": [{"code": 6111, "message": "x"}]}]})
        );
    }

    #[test]
    fn field_errors_point_at_the_field() {
        let body = ApiError::invalid_field("/name", "bad").body();
        assert_eq!(
            body["errors"],
            json!([{"code": 1001, "message": "bad", "source": {"pointer": "/name"}}])
        );
    }

    #[test]
    fn an_injected_429_is_a_rate_limit_body() {
        let body = ApiError::injected(StatusCode::TOO_MANY_REQUESTS).body();
        assert_eq!(body["errors"][0]["code"], json!(971));
        assert_eq!(
            ApiError::injected(StatusCode::BAD_GATEWAY).body()["errors"][0]["code"],
            json!(1000)
        );
    }

    #[test]
    fn plain_errors_carry_no_error_chain_key() {
        let body = ApiError::authentication().body();
        assert_eq!(
            body["errors"],
            json!([{"code": 10000, "message": "Authentication error"}])
        );
    }
}
