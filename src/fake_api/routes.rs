//! The endpoints: which kind of route a request is, and the handlers for listing, reading,
//! creating and deleting user groups and for listing and adding their members.
//!
//! Paths live under `/client/v4/accounts/{account_id}/iam/user_groups`. A malformed account
//! or group id (not 32 lowercase hex) does not route: 400 with `7003` + `7000`, as the real
//! API answers. A well-formed account the fake does not hold is a 403 `9109` ("Unauthorized
//! to access requested resource"), which is what the real API says for an account the
//! credentials cannot see; a missing group is a 404.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::envelope::{self, ApiError, ResultInfo};
use super::pagination::{Direction, PageRequest, Query};
use super::state::{FakeGroup, FakeMember, Store, is_hex_id};
use crate::model::{AccountId, GroupId};

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
    /// `DELETE .../user_groups/{id}`
    Delete,
    /// `GET` or `POST .../user_groups/{id}/members`
    Members,
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
    Groups { account: &'a str },
    Group { account: &'a str, group: &'a str },
    Members { account: &'a str, group: &'a str },
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
            [account, "iam", "user_groups"] => Self::Groups { account },
            [account, "iam", "user_groups", group] => Self::Group { account, group },
            [account, "iam", "user_groups", group, "members"] => Self::Members { account, group },
            _ => Self::Unknown,
        }
    }

    pub(crate) fn route(&self, method: &Method) -> Route {
        match (self, method) {
            (Self::Groups { .. }, &Method::GET) => Route::List,
            (Self::Groups { .. }, &Method::POST) => Route::Create,
            (Self::Group { .. }, &Method::GET) => Route::Get,
            (Self::Group { .. }, &Method::DELETE) => Route::Delete,
            (Self::Members { .. }, &Method::GET | &Method::POST) => Route::Members,
            _ => Route::Other,
        }
    }
}

/// A successful answer, before it becomes bytes (so list faults can still alter it).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    /// Whether the state changed (and should be persisted).
    pub(crate) mutated: bool,
}

impl Reply {
    fn ok(result: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: envelope::success(result),
            mutated: false,
        }
    }

    fn list(result: Vec<Value>, info: ResultInfo) -> Self {
        Self {
            status: StatusCode::OK,
            body: envelope::success_list(result, info),
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
    let not_routable = || ApiError::could_not_route(call.path);
    let account_id = |raw: &str| raw.parse::<AccountId>().map_err(|_| not_routable());
    let group_id = |raw: &str| raw.parse::<GroupId>().map_err(|_| not_routable());
    match call.target {
        Target::Unknown => Err(not_routable()),
        Target::Groups { account } => {
            let account = account_id(account)?;
            known_account(store, &account)?;
            match *call.method {
                Method::GET => list_groups(store, &account, &Query::parse(call.query)?),
                Method::POST => create_group(store, &account, &call.body),
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        Target::Group { account, group } => {
            let account = account_id(account)?;
            let group = group_id(group)?;
            known_account(store, &account)?;
            match *call.method {
                Method::GET => store
                    .group(&account, &group)
                    .map(|g| Reply::ok(g.to_api_json()))
                    .ok_or_else(ApiError::group_not_found),
                Method::DELETE => {
                    if store.delete_group(&account, &group) {
                        Ok(Reply::ok(serde_json::json!({"id": group})).mutated())
                    } else {
                        Err(ApiError::group_not_found())
                    }
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        Target::Members { account, group } => {
            let account = account_id(account)?;
            let group = group_id(group)?;
            known_account(store, &account)?;
            match *call.method {
                Method::GET => list_members(store, &account, &group, &Query::parse(call.query)?),
                Method::POST => add_members(store, &account, &group, &call.body),
                _ => Err(ApiError::method_not_allowed()),
            }
        }
    }
}

fn known_account(store: &Store, account: &AccountId) -> Result<(), ApiError> {
    store
        .account(account)
        .map(|_| ())
        .ok_or_else(ApiError::unauthorized_account)
}

fn list_groups(store: &Store, account: &AccountId, query: &Query) -> Result<Reply, ApiError> {
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
        id.is_none_or(|id| g.id.as_str() == id)
            && name.is_none_or(|name| g.name == name)
            && fuzzy
                .as_deref()
                .is_none_or(|f| g.name.to_lowercase().contains(f))
    });
    direction.sort(&mut groups, |g| (g.name.as_str(), g.id.as_str()));
    let (items, info) = page.slice(&groups);
    Ok(Reply::list(
        items.iter().map(|g| g.to_api_json()).collect(),
        info,
    ))
}

fn create_group(store: &mut Store, account: &AccountId, body: &[u8]) -> Result<Reply, ApiError> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_input(format!("request body is not JSON: {e}")))?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid_input("name is required and must be a non-empty string"))?
        .to_owned();
    let policies = match body.get("policies") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(policies)) => policies.clone(),
        Some(_) => return Err(ApiError::invalid_input("policies must be an array")),
    };
    let group = store
        .create_group(account, name, policies)
        .ok_or_else(ApiError::unauthorized_account)?;
    Ok(Reply::ok(group.to_api_json()).mutated())
}

fn list_members(
    store: &Store,
    account: &AccountId,
    group: &GroupId,
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
        items.iter().map(|m| m.to_api_json()).collect(),
        info,
    ))
}

fn add_members(
    store: &mut Store,
    account: &AccountId,
    group: &GroupId,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_input(format!("request body is not JSON: {e}")))?;
    let Value::Array(entries) = body else {
        return Err(ApiError::invalid_input(
            "request body must be an array of {\"id\": ...} objects",
        ));
    };
    let ids = entries
        .iter()
        .map(|entry| {
            entry
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| is_hex_id(id))
                .map(str::to_owned)
                .ok_or_else(|| {
                    ApiError::invalid_input(
                        "each member needs an id of 32 lowercase hex characters",
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let added = store
        .add_members(account, group, ids)
        .ok_or_else(ApiError::group_not_found)?;
    Ok(Reply::ok(Value::Array(
        added.iter().map(FakeMember::to_api_json).collect(),
    ))
    .mutated())
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
        assert_eq!(Target::parse(&one).route(&Method::PUT), Route::Other);
        let members = format!("{one}/members");
        assert_eq!(Target::parse(&members).route(&Method::POST), Route::Members);
        assert_eq!(Target::parse("/client/v4/user"), Target::Unknown);
        assert_eq!(
            Target::parse(&format!("{groups}/")).route(&Method::GET),
            Route::Get
        );
    }
}
