//! Validated identifiers, the shapes of observed groups and listings, and how a deletion
//! ends: the vocabulary every other module speaks, checked once at the edge so nothing
//! malformed ever reaches a URL path.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::refusal::Refusal;

/// Why a string was refused as a Cloudflare identifier.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind} id {value:?} is not 32 lowercase hexadecimal characters")]
pub struct InvalidId {
    kind: &'static str,
    value: String,
}

/// The shape of every Cloudflare id, as the editor schema states it.
pub const ID_PATTERN: &str = "^[0-9a-f]{32}$";

fn is_cloudflare_id(value: &str) -> bool {
    value.len() == 32
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

macro_rules! cloudflare_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(into = "String")]
        pub struct $name(String);

        /// Read as text only: an unquoted YAML number is refused, not taken as its digits.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = crate::text::Text::deserialize(deserializer)?;
                Self::try_from(text.0).map_err(serde::de::Error::custom)
            }
        }

        impl $name {
            /// The id as it goes into a URL path.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                if is_cloudflare_id(&value) {
                    Ok(Self(value))
                } else {
                    Err(InvalidId { kind: $kind, value })
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::try_from(value.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "description": concat!("A Cloudflare ", $kind, " id: 32 lowercase hexadecimal characters."),
                    "type": "string",
                    "pattern": ID_PATTERN,
                })
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

cloudflare_id!(
    /// A Cloudflare account id: exactly 32 lowercase hex characters.
    AccountId,
    "account"
);
cloudflare_id!(
    /// A Cloudflare user group id: exactly 32 lowercase hex characters.
    GroupId,
    "user group"
);

/// Whether a declared group should exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    /// The group must exist; cfgroups reports it as `missing` when it does not.
    Present,
    /// The group must not exist; cfgroups deletes it.
    Absent,
}

/// A user group as a listing source saw it: the Cloudflare group object, parsed leniently.
///
/// Unknown fields are ignored. `policies` is kept as the raw JSON text the source gave,
/// byte for byte: its documented shape varies, cfgroups never looks inside it while
/// planning or deleting, and carries it unchanged into the journal, where only `restore`
/// reads it (see [`crate::restore::creatable_policies`]). Keeping text instead of a JSON
/// tree costs one allocation per group, and no number or key is ever re-encoded.
///
/// Deserializing `policies` needs serde_json (JSON text); the snapshot reader turns the
/// policies of a YAML snapshot into JSON text first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObservedGroup {
    pub id: GroupId,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Box<RawValue>>,
}

/// Equal when every field is, the policies compared as text: two listings of the same
/// group that encode its policies differently are different observations.
impl PartialEq for ObservedGroup {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.name == other.name
            && self.created_on == other.created_on
            && self.modified_on == other.modified_on
            && self.policies.as_deref().map(RawValue::get)
                == other.policies.as_deref().map(RawValue::get)
    }
}

/// Why one account's listing cannot be trusted, as the planner and the reports need it: the
/// account gets no deletion this cycle (safety rule 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListingFailure {
    /// What went wrong, for people: the source's error with its cause.
    pub message: String,
    /// The HTTP status of the answer, when an answer came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Cloudflare's error codes, outermost first (`[9109]`), when it sent any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<i64>,
    /// What to check (token scope, the account id, the base URL), when something is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl ListingFailure {
    /// A failure described by `error` and its causes, outermost first, on one line.
    pub fn from_error(error: &dyn std::error::Error) -> Self {
        let mut message = error.to_string();
        let mut next = error.source();
        while let Some(cause) = next {
            let cause_text = cause.to_string();
            if !message.contains(&cause_text) {
                message.push_str(": ");
                message.push_str(&cause_text);
            }
            next = cause.source();
        }
        Self::new(message)
    }

    /// A failure with only a message.
    pub fn new(message: String) -> Self {
        Self {
            message,
            status: None,
            codes: Vec::new(),
            hint: None,
        }
    }
}

impl fmt::Display for ListingFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// One account's listing: every group it has, or why the listing cannot be trusted.
pub type AccountListing = Result<Vec<ObservedGroup>, ListingFailure>;

/// The listing of every declared account, by account id: the planner's view of what exists.
pub type Observed = BTreeMap<AccountId, AccountListing>;

/// How one attempted deletion ended. The one vocabulary of the client, the executor, the
/// journal, the reports and the metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeletionOutcome {
    /// Cloudflare deleted the group.
    Deleted,
    /// The group was already gone (HTTP 404): what was wanted.
    AlreadyAbsent,
    /// The group may still exist: the error says why. `refused` is set when Cloudflare
    /// refused for good (asking again fails the same way): see [`crate::refusal`].
    Failed {
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refused: Option<Refusal>,
    },
    /// Not deleted: the group read right before its DELETE was no longer the one planned
    /// (renamed, protected, its name now shared); the next plan decides again.
    Moved { reason: String },
}

impl DeletionOutcome {
    /// A failure that may pass (or whose nature is unknown): `error` says what happened.
    pub fn failed(error: impl Into<String>) -> Self {
        Self::Failed {
            error: error.into(),
            refused: None,
        }
    }

    /// Cloudflare's permanent refusal, when this is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Self::Failed {
                refused: Some(refusal),
                ..
            } => Some(refusal),
            _ => None,
        }
    }

    /// The outcome's name in metrics labels and summaries.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::AlreadyAbsent => "already_absent",
            Self::Failed { .. } => "failed",
            Self::Moved { .. } => "moved",
        }
    }

    /// Whether the group is gone, as wanted.
    pub fn is_gone(&self) -> bool {
        matches!(self, Self::Deleted | Self::AlreadyAbsent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lowercase_hex_of_length_32() {
        let id: AccountId = "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap();
        assert_eq!(id.as_str(), "023e105f4ecef8ad9ca31a8372d0c353");
    }

    #[test]
    fn refuses_anything_that_could_escape_a_url_path() {
        for bad in [
            "",
            "023e105f4ecef8ad9ca31a8372d0c35",
            "023e105f4ecef8ad9ca31a8372d0c3533",
            "023E105F4ECEF8AD9CA31A8372D0C353",
            "../../../../../../../../../../..",
            "023e105f4ecef8ad9ca31a8372d0%2Fa",
            "023e105f4ecef8ad9ca31a8372d0 353",
            "g23e105f4ecef8ad9ca31a8372d0c353",
        ] {
            assert!(bad.parse::<GroupId>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn policies_are_carried_byte_for_byte() {
        let policies = r#"[ {"access":"allow","n":1e400,"m":1.0E-5,"big":123456789012345678901234567890,"k\u00e9":"Zoë"} ]"#;
        let text = format!(
            r#"{{"id":"3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a","name":"Ops","policies":{policies}}}"#
        );
        let group: ObservedGroup = serde_json::from_str(&text).unwrap();
        assert_eq!(group.policies.as_deref().map(RawValue::get), Some(policies));
        let written = serde_json::to_string(&group).unwrap();
        assert!(written.contains(policies), "{written}");
        let null: ObservedGroup = serde_json::from_str(
            r#"{"id":"3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a","name":"Ops","policies":null}"#,
        )
        .unwrap();
        assert!(null.policies.is_none());
    }

    #[test]
    fn observed_group_ignores_unknown_fields() {
        let group: ObservedGroup = serde_json::from_str(
            r#"{"id":"3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a","name":"Ops","created_on":"2024-03-01T12:21:02Z",
                "modified_on":"2024-03-01T12:21:02Z","policies":[{"access":"allow"}],"new_field":1}"#,
        )
        .unwrap();
        assert_eq!(group.name, "Ops");
        assert_eq!(
            group.policies.as_deref().map(RawValue::get),
            Some(r#"[{"access":"allow"}]"#)
        );
    }
}
