//! Which endpoint a request is for, and the only place where ids become URL paths: every
//! path segment comes from a validated [`AccountId`] or [`GroupId`], never from raw text.

use std::fmt;

use reqwest::Method;

use crate::model::{AccountId, GroupId};

/// One endpoint of the user groups API, with the ids it addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /accounts/{account}`: the account object (its name).
    GetAccount { account: AccountId },
    /// `GET /accounts/{account}/iam/user_groups`
    ListGroups { account: AccountId },
    /// `GET /accounts/{account}/iam/user_groups/{group}`
    GetGroup { account: AccountId, group: GroupId },
    /// `POST /accounts/{account}/iam/user_groups`
    CreateGroup { account: AccountId },
    /// `DELETE /accounts/{account}/iam/user_groups/{group}`
    DeleteGroup { account: AccountId, group: GroupId },
    /// `GET /accounts/{account}/iam/user_groups/{group}/members`
    ListMembers { account: AccountId, group: GroupId },
    /// `POST /accounts/{account}/iam/user_groups/{group}/members`
    AddMembers { account: AccountId, group: GroupId },
}

/// A [`Route`] without its ids: a low-cardinality label for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    GetAccount,
    ListGroups,
    GetGroup,
    CreateGroup,
    DeleteGroup,
    ListMembers,
    AddMembers,
}

impl RouteKind {
    /// A stable snake_case name, e.g. `delete_group`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GetAccount => "get_account",
            Self::ListGroups => "list_groups",
            Self::GetGroup => "get_group",
            Self::CreateGroup => "create_group",
            Self::DeleteGroup => "delete_group",
            Self::ListMembers => "list_members",
            Self::AddMembers => "add_members",
        }
    }
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Route {
    /// The label of this route.
    pub fn kind(&self) -> RouteKind {
        match self {
            Self::GetAccount { .. } => RouteKind::GetAccount,
            Self::ListGroups { .. } => RouteKind::ListGroups,
            Self::GetGroup { .. } => RouteKind::GetGroup,
            Self::CreateGroup { .. } => RouteKind::CreateGroup,
            Self::DeleteGroup { .. } => RouteKind::DeleteGroup,
            Self::ListMembers { .. } => RouteKind::ListMembers,
            Self::AddMembers { .. } => RouteKind::AddMembers,
        }
    }

    /// The HTTP method of this route.
    pub fn method(&self) -> Method {
        match self {
            Self::GetAccount { .. }
            | Self::ListGroups { .. }
            | Self::GetGroup { .. }
            | Self::ListMembers { .. } => Method::GET,
            Self::CreateGroup { .. } | Self::AddMembers { .. } => Method::POST,
            Self::DeleteGroup { .. } => Method::DELETE,
        }
    }

    /// Whether sending the request twice has the same effect as sending it once. Requests
    /// that are not idempotent are only retried when the server cannot have acted on them.
    pub fn is_idempotent(&self) -> bool {
        !matches!(self, Self::CreateGroup { .. } | Self::AddMembers { .. })
    }

    /// The path below the API base URL, starting with `/`.
    pub fn path(&self) -> String {
        let groups =
            |account: &AccountId| format!("/accounts/{}/iam/user_groups", account.as_str());
        match self {
            Self::GetAccount { account } => format!("/accounts/{}", account.as_str()),
            Self::ListGroups { account } | Self::CreateGroup { account } => groups(account),
            Self::GetGroup { account, group } | Self::DeleteGroup { account, group } => {
                format!("{}/{}", groups(account), group.as_str())
            }
            Self::ListMembers { account, group } | Self::AddMembers { account, group } => {
                format!("{}/{}/members", groups(account), group.as_str())
            }
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method(), self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_built_from_validated_ids() {
        let account: AccountId = "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap();
        let group: GroupId = "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a".parse().unwrap();
        let route = Route::DeleteGroup {
            account: account.clone(),
            group: group.clone(),
        };
        assert_eq!(
            route.to_string(),
            "DELETE /accounts/023e105f4ecef8ad9ca31a8372d0c353/iam/user_groups/3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a"
        );
        assert_eq!(route.kind().as_str(), "delete_group");
        assert!(route.is_idempotent());
        let members = Route::AddMembers { account, group };
        assert!(members.path().ends_with("/members"));
        assert!(!members.is_idempotent());
    }
}
