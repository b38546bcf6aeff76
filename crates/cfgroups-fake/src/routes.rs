//! The endpoints: which kind of route a request is, and the handlers for reading an
//! account, listing, reading, creating, updating and deleting user groups, and for listing,
//! adding, replacing and removing their members.
//!
//! Paths live under `/client/v4/accounts/{account_id}`. A malformed account, group or member
//! id (not 32 lowercase hex) does not route: 400 with `7003` + `7000`, as the real API
//! answers. A well-formed account the fake does not hold is a 403 `9109` ("Unauthorized to
//! access requested resource"), which is what the real API says for an account the
//! credentials cannot see; a missing group (or a member not in the group) is a 404. A method
//! a path does not serve (`PATCH` on a group: the API has none) is a 405. A group provisioned
//! by SCIM is read as any other, but every change to it (delete, update, members) is a 403
//! [`envelope::CODE_SCIM_MANAGED`], every time.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::envelope::{ApiError, Item, Payload, ResultInfo};
use crate::ids::{Id, is_id};
use crate::pagination::{Direction, PageRequest, Query};
use crate::state::{FakeGroup, FakeMember, Store};

/// Where every path the fake serves starts.
pub const API_PREFIX: &str = "/client/v4";

/// The kind of a request, for fault matching and accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// `GET .../user_groups`
    List,
    /// `GET .../user_groups/{id}`
    Get,
    /// `POST .../user_groups`
    Create,
    /// `PUT .../user_groups/{id}`
    Update,
    /// `DELETE .../user_groups/{id}`
    Delete,
    /// `GET`, `POST` or `PUT .../user_groups/{id}/members`
    Members,
    /// `DELETE .../user_groups/{id}/members/{member_id}`
    RemoveMember,
    /// `GET /accounts/{account_id}`
    Account,
    /// Anything else (unknown paths, unsupported methods).
    Other,
}

impl Route {
    /// Whether a request answers with a paginated list.
    pub(crate) fn is_listing(self, method: &Method) -> bool {
        self == Self::List || (self == Self::Members && method == Method::GET)
    }
}

/// A request path, split into the ids it names (not yet validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    Account {
        account: &'a str,
    },
    Groups {
        account: &'a str,
    },
    Group {
        account: &'a str,
        group: &'a str,
    },
    Members {
        account: &'a str,
        group: &'a str,
    },
    Member {
        account: &'a str,
        group: &'a str,
        member: &'a str,
    },
    Unknown,
}

impl<'a> Target<'a> {
    pub(crate) fn parse(path: &'a str) -> Self {
        let Some(rest) = path
            .strip_prefix(API_PREFIX)
            .and_then(|p| p.strip_prefix("/accounts/"))
        else {
            return Self::Unknown;
        };
        let segments: Vec<&str> = rest.split('/').collect();
        match segments.as_slice() {
            [account] => Self::Account { account },
            [account, "iam", "user_groups"] => Self::Groups { account },
            [account, "iam", "user_groups", group] => Self::Group { account, group },
            [account, "iam", "user_groups", group, "members"] => Self::Members { account, group },
            [account, "iam", "user_groups", group, "members", member] => Self::Member {
                account,
                group,
                member,
            },
            _ => Self::Unknown,
        }
    }

    pub(crate) fn route(&self, method: &Method) -> Route {
        match (self, method) {
            (Self::Account { .. }, &Method::GET) => Route::Account,
            (Self::Groups { .. }, &Method::GET) => Route::List,
            (Self::Groups { .. }, &Method::POST) => Route::Create,
            (Self::Group { .. }, &Method::GET) => Route::Get,
            (Self::Group { .. }, &Method::PUT) => Route::Update,
            (Self::Group { .. }, &Method::DELETE) => Route::Delete,
            (Self::Members { .. }, &Method::GET | &Method::POST | &Method::PUT) => Route::Members,
            (Self::Member { .. }, &Method::DELETE) => Route::RemoveMember,
            _ => Route::Other,
        }
    }
}

/// A successful answer, before it becomes bytes (so list faults can still alter it).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) result: Payload,
    /// Whether the state changed (and should be persisted).
    pub(crate) mutated: bool,
}

impl Reply {
    fn ok(result: impl Into<Item>) -> Self {
        Self {
            status: StatusCode::OK,
            result: Payload::One(result.into()),
            mutated: false,
        }
    }

    fn list(items: Vec<Item>, info: ResultInfo) -> Self {
        Self {
            status: StatusCode::OK,
            result: Payload::Page { items, info },
            mutated: false,
        }
    }

    fn mutated(mut self) -> Self {
        self.mutated = true;
        self
    }
}

/// A request the handlers can answer: everything but the connection.
pub(crate) struct Call<'a> {
    pub(crate) method: &'a Method,
    pub(crate) path: &'a str,
    pub(crate) target: Target<'a>,
    pub(crate) query: Option<&'a str>,
    pub(crate) body: Bytes,
}

/// Answers an authenticated request from the store.
pub(crate) fn dispatch(store: &mut Store, call: &Call<'_>) -> Result<Reply, ApiError> {
    let id = |raw: &str| {
        raw.parse::<Id>()
            .map_err(|_| ApiError::could_not_route(call.path))
    };
    match call.target {
        Target::Unknown => Err(ApiError::could_not_route(call.path)),
        Target::Account { account } => {
            let account = id(account)?;
            let entry = store
                .account(account.as_str())
                .ok_or_else(ApiError::unauthorized_account)?;
            match *call.method {
                Method::GET => Ok(Reply::ok(entry.to_api_json(account.as_str()))),
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        Target::Groups { account } => {
            let account = id(account)?;
            let account = account.as_str();
            known_account(store, account)?;
            match *call.method {
                Method::GET => list_groups(store, account, &Query::parse(call.query)?),
                Method::POST => create_group(store, account, &call.body),
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        Target::Group { account, group } => {
            let (account, group) = (id(account)?, id(group)?);
            let (account, group) = (account.as_str(), group.as_str());
            known_account(store, account)?;
            match *call.method {
                Method::GET => store
                    .group(account, group)
                    .map(|g| Reply::ok(g.api_object()))
                    .ok_or_else(ApiError::group_not_found),
                Method::PUT | Method::DELETE if store.is_scim(account, group) => {
                    Err(ApiError::scim_managed())
                }
                Method::PUT => update_group(store, account, group, &call.body),
                Method::DELETE => {
                    if store.delete_group(account, group) {
                        Ok(Reply::ok(serde_json::json!({"id": group})).mutated())
                    } else {
                        Err(ApiError::group_not_found())
                    }
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        Target::Members { account, group } => {
            let (account, group) = (id(account)?, id(group)?);
            let (account, group) = (account.as_str(), group.as_str());
            known_account(store, account)?;
            match *call.method {
                Method::GET => list_members(store, account, group, &Query::parse(call.query)?),
                Method::POST | Method::PUT if store.is_scim(account, group) => {
                    Err(ApiError::scim_managed())
                }
                Method::POST => {
                    let ids = member_ids(&call.body)?;
                    let added = store
                        .add_members(account, group, ids)
                        .ok_or_else(ApiError::group_not_found)?;
                    Ok(members_reply(&added).mutated())
                }
                Method::PUT => {
                    let ids = member_ids(&call.body)?;
                    let members = store
                        .replace_members(account, group, ids)
                        .ok_or_else(ApiError::group_not_found)?;
                    Ok(members_reply(&members).mutated())
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        Target::Member {
            account,
            group,
            member,
        } => {
            let (account, group, member) = (id(account)?, id(group)?, id(member)?);
            known_account(store, account.as_str())?;
            match *call.method {
                Method::DELETE if store.is_scim(account.as_str(), group.as_str()) => {
                    Err(ApiError::scim_managed())
                }
                Method::DELETE => {
                    match store.remove_member(account.as_str(), group.as_str(), member.as_str()) {
                        Ok(removed) => Ok(Reply::ok(removed.to_api_json()).mutated()),
                        Err(true) => Err(ApiError::member_not_found()),
                        Err(false) => Err(ApiError::group_not_found()),
                    }
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
    }
}

fn known_account(store: &Store, account: &str) -> Result<(), ApiError> {
    store
        .account(account)
        .map(|_| ())
        .ok_or_else(ApiError::unauthorized_account)
}

fn list_groups(store: &Store, account: &str, query: &Query) -> Result<Reply, ApiError> {
    let page = PageRequest::from_query(query)?;
    let direction = Direction::from_query(query)?;
    let id = query.get("id");
    let name = query.get("name");
    let fuzzy = query.get("fuzzyName").map(str::to_lowercase);
    let mut groups: Vec<&FakeGroup> = store
        .account(account)
        .map(|a| a.groups.iter().collect())
        .unwrap_or_default();
    groups.retain(|g| {
        id.is_none_or(|id| g.id == id)
            && name.is_none_or(|name| g.name == name)
            && fuzzy
                .as_deref()
                .is_none_or(|f| g.name.to_lowercase().contains(f))
    });
    direction.sort(&mut groups, |g| (g.name.as_str(), g.id.as_str()));
    let (items, info) = page.slice(&groups);
    Ok(Reply::list(
        items.iter().map(|g| g.api_object().into()).collect(),
        info,
    ))
}

/// The request body as a JSON object.
fn body_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::invalid_input(
            "request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::invalid_input(format!(
            "request body is not JSON: {e}"
        ))),
    }
}

/// `name`: absent (`None`), or a non-empty string (trimmed).
fn group_name(body: &serde_json::Map<String, Value>) -> Result<Option<String>, ApiError> {
    match body.get("name") {
        None => Ok(None),
        Some(value) => value
            .as_str()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| Some(n.to_owned()))
            .ok_or_else(|| ApiError::invalid_field("/name", "name must be a non-empty string")),
    }
}

/// `policies`: absent or null (`None`), or an array.
fn group_policies(body: &serde_json::Map<String, Value>) -> Result<Option<Vec<Value>>, ApiError> {
    match body.get("policies") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(policies)) => Ok(Some(policies.clone())),
        Some(_) => Err(ApiError::invalid_field(
            "/policies",
            "policies must be an array",
        )),
    }
}

fn create_group(store: &mut Store, account: &str, body: &[u8]) -> Result<Reply, ApiError> {
    let body = body_object(body)?;
    let name = group_name(&body)?.ok_or_else(|| {
        ApiError::invalid_field("/name", "name is required and must be a non-empty string")
    })?;
    let policies = group_policies(&body)?.unwrap_or_default();
    let group = store
        .create_group(account, name, policies)
        .ok_or_else(ApiError::unauthorized_account)?;
    Ok(Reply::ok(group.api_object()).mutated())
}

fn update_group(
    store: &mut Store,
    account: &str,
    group: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let body = body_object(body)?;
    let name = group_name(&body)?;
    let policies = group_policies(&body)?;
    let group = store
        .update_group(account, group, name, policies)
        .ok_or_else(ApiError::group_not_found)?;
    Ok(Reply::ok(group.api_object()).mutated())
}

fn list_members(
    store: &Store,
    account: &str,
    group: &str,
    query: &Query,
) -> Result<Reply, ApiError> {
    let page = PageRequest::from_query(query)?;
    let direction = Direction::from_query(query)?;
    let fuzzy = query.get("fuzzyEmail").map(str::to_lowercase);
    let group = store
        .group(account, group)
        .ok_or_else(ApiError::group_not_found)?;
    let mut members: Vec<&FakeMember> = group
        .members
        .iter()
        .filter(|m| {
            fuzzy
                .as_deref()
                .is_none_or(|f| m.email.to_lowercase().contains(f))
        })
        .collect();
    direction.sort(&mut members, |m| (m.email.as_str(), m.id.as_str()));
    let (items, info) = page.slice(&members);
    Ok(Reply::list(
        items.iter().map(|m| m.to_api_json().into()).collect(),
        info,
    ))
}

/// The member ids of a `POST`/`PUT .../members` body: a bare array of `{"id": ...}`.
fn member_ids(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_input(format!("request body is not JSON: {e}")))?;
    let Value::Array(entries) = body else {
        return Err(ApiError::invalid_input(
            "request body must be an array of {\"id\": ...} objects",
        ));
    };
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            entry
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| is_id(id))
                .map(str::to_owned)
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        format!("/{index}/id"),
                        "each member needs an id of 32 lowercase hex characters",
                    )
                })
        })
        .collect()
}

fn members_reply(members: &[FakeMember]) -> Reply {
    Reply::ok(Value::Array(
        members.iter().map(FakeMember::to_api_json).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    #[test]
    fn classifies_paths() {
        let groups = format!("/client/v4/accounts/{A}/iam/user_groups");
        assert_eq!(Target::parse(&groups).route(&Method::GET), Route::List);
        assert_eq!(Target::parse(&groups).route(&Method::POST), Route::Create);
        let one = format!("{groups}/abc");
        assert_eq!(Target::parse(&one).route(&Method::DELETE), Route::Delete);
        assert_eq!(Target::parse(&one).route(&Method::PUT), Route::Update);
        assert_eq!(Target::parse(&one).route(&Method::PATCH), Route::Other);
        let members = format!("{one}/members");
        assert_eq!(Target::parse(&members).route(&Method::POST), Route::Members);
        assert_eq!(Target::parse(&members).route(&Method::PUT), Route::Members);
        let member = format!("{members}/m");
        assert_eq!(
            Target::parse(&member).route(&Method::DELETE),
            Route::RemoveMember
        );
        assert_eq!(Target::parse(&member).route(&Method::GET), Route::Other);
        let account = format!("/client/v4/accounts/{A}");
        assert_eq!(Target::parse(&account).route(&Method::GET), Route::Account);
        assert_eq!(Target::parse("/client/v4/user"), Target::Unknown);
        assert_eq!(
            Target::parse(&format!("{groups}/")).route(&Method::GET),
            Route::Get
        );
    }

    #[test]
    fn member_ids_point_at_the_bad_entry() {
        let good = format!(r#"[{{"id":"{A}"}}]"#);
        assert_eq!(member_ids(good.as_bytes()).unwrap(), [A]);
        let bad = format!(r#"[{{"id":"{A}"}},{{"id":"short"}}]"#);
        let body = member_ids(bad.as_bytes()).unwrap_err().body();
        assert_eq!(body["errors"][0]["source"]["pointer"], "/1/id");
    }
}
