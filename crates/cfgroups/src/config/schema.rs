//! The desired-state file schema. These structs are the config reference: their doc
//! comments are what the README's reference section and the editor schema say.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{AccountId, GroupId, GroupState};
use crate::text;

/// The only desired-state file version this build reads.
pub const CONFIG_VERSION: u32 = 1;

/// Default for `max_deletes` when neither the account nor `defaults` sets one.
pub const DEFAULT_MAX_DELETES: u32 = 10;

/// A cfgroups desired-state file: the Cloudflare IAM user groups some accounts should (and
/// should not) have. A directory of such files is read as one desired state.
// `A` is the account entry type; loading reads entries as raw YAML first so that one bad
// account does not hide the errors of the others.
// `N` is the notify section's type, raw YAML while loading for the same reason as `A`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    bound(deserialize = "A: Deserialize<'de>, N: Deserialize<'de>")
)]
#[schemars(rename = "DesiredStateFile", title = "cfgroups desired state")]
pub struct FileSpec<A = AccountSpec, N = NotifySpec> {
    /// Schema version of the file. Only `1` exists.
    #[schemars(extend("const" = 1))]
    pub version: u32,
    /// Settings inherited by every account of this file that does not set its own.
    #[serde(default)]
    pub defaults: DefaultsSpec,
    /// The accounts this file manages; at least one. An account may appear in only one
    /// file of a config directory.
    #[schemars(length(min = 1))]
    pub accounts: Vec<A>,
    /// Where `cfgroups run` (and `cfgroups apply --notify`) sends notifications of what it
    /// did and found. In a config directory, the sinks of every file are used together; a
    /// sink name may appear once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<N>,
}

/// Notifications: one or more sinks, each with the events it wants. A sink's URL is a secret
/// and never lives in this file: it comes from an environment variable or a file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Notify")]
pub struct NotifySpec {
    /// The sinks; at least one.
    #[schemars(length(min = 1))]
    pub sinks: Vec<SinkSpec>,
}

/// One place notifications go.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Sink")]
pub struct SinkSpec {
    /// The sink's name in logs and metrics (`cfgroups_notifications_total{sink="..."}`):
    /// letters, digits, `-`, `_` and `.`, at most 64. Unique across the desired state.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"))]
    #[serde(deserialize_with = "text::one")]
    pub name: String,
    /// `webhook`: a JSON document (`format_version: 1`) POSTed to the URL. `slack`: a
    /// Slack-compatible incoming-webhook message (Slack, Mattermost, Rocket.Chat and others
    /// that accept `{"text": ...}`).
    pub kind: SinkKind,
    /// The environment variable holding the sink's URL (a Slack webhook URL is its own
    /// credential, so it never goes in Git). Exactly one of `url_env` and `url_file`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub url_env: Option<String>,
    /// A file whose first line is the sink's URL: a mounted Kubernetes Secret, a systemd
    /// credential. Read before each delivery, so a rotated URL is used without a restart.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional_path"
    )]
    pub url_file: Option<std::path::PathBuf>,
    /// The events this sink wants; at least one. `deleted`: a group was deleted (with the
    /// `cfgroups restore` command that undoes it). `delete_failed`: a deletion failed (with
    /// Cloudflare's status, code and message, and a hint when it refused for good).
    /// `blocked`: a deletion is stopped by a safety rule (with the rule). `listing_failed`: an
    /// account could not be listed, so nothing in it is deleted. `drift`: an account's drift
    /// counts changed. `suspended`: an account was suspended. `recovered`: one of those
    /// problems ended. Each is sent when it starts or changes, not every cycle.
    #[schemars(length(min = 1))]
    pub events: Vec<EventKind>,
    /// Send a problem that persists again after this long (e.g. `24h`), marked as a
    /// reminder. At least `1m`. Default: only when it starts or changes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub reminder: Option<String>,
    /// Time allowed for one delivery attempt, e.g. `10s` (the default); from `100ms` to `5m`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub timeout: Option<String>,
    /// Attempts per message before it is given up (counted `failed`), with exponential
    /// backoff between them: 1 to 10, default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub attempts: Option<u32>,
    /// Refused: a URL written in the file would be a secret in Git.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub url: Option<serde_yaml::Value>,
}

/// How a sink's messages are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// A generic JSON webhook.
    Webhook,
    /// A Slack-compatible incoming webhook.
    Slack,
}

/// What a sink can be told about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A group was deleted.
    Deleted,
    /// A deletion failed.
    DeleteFailed,
    /// A deletion is stopped by a safety rule.
    Blocked,
    /// An account could not be listed.
    ListingFailed,
    /// An account's drift changed.
    Drift,
    /// An account was suspended.
    Suspended,
    /// A problem ended.
    Recovered,
}

impl EventKind {
    /// The event's name, as in the file and the payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::DeleteFailed => "delete_failed",
            Self::Blocked => "blocked",
            Self::ListingFailed => "listing_failed",
            Self::Drift => "drift",
            Self::Suspended => "suspended",
            Self::Recovered => "recovered",
        }
    }
}

/// Settings inherited by every account of the file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Defaults")]
pub struct DefaultsSpec {
    /// What to do with groups that exist but are not declared. Default `report`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmanaged: Option<UnmanagedPolicy>,
    /// Most deletions one reconcile may make in one account; a plan with more deletes none
    /// of them. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deletes: Option<u32>,
    /// Names, ids or globs never deleted in any account of the file; added to each
    /// account's own `protect`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "text::list"
    )]
    pub protect: Vec<String>,
    /// Suspend every account of the file (unless an account sets `suspend: false`): each is
    /// still listed and its drift reported, but nothing in it is deleted; its deletions show
    /// as `blocked` (`suspended`). Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// One Cloudflare account and the groups it should (and should not) have.
// `G` is the group entry type, raw YAML while loading for the same reason as `A` above.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, bound(deserialize = "G: Deserialize<'de>"))]
#[schemars(rename = "Account")]
pub struct AccountSpec<G = GroupSpec> {
    /// The account id: 32 lowercase hexadecimal characters.
    pub id: AccountId,
    /// A name for humans and reports; never sent to Cloudflare.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub label: Option<String>,
    /// Names, ids or globs (`*`, `?`, `[...]`) of groups that are never deleted. Declaring a
    /// protected group `absent` is an error.
    ///
    /// Groups provisioned by SCIM cannot be deleted through the API at all (Cloudflare
    /// refuses, every time); if your identity provider names them by a pattern, protect it,
    /// e.g. `protect: ["SCIM-*"]`, so that they are reported `blocked` instead of attempted.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "text::list"
    )]
    pub protect: Vec<String>,
    /// Overrides `defaults.suspend` for this account: `true` lists and reports the account
    /// but deletes nothing in it (an emergency brake that is reviewed in Git).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Overrides `defaults.unmanaged` for this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmanaged: Option<UnmanagedPolicy>,
    /// Overrides `defaults.max_deletes` for this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deletes: Option<u32>,
    /// The declared groups. Each is named by `name`, `id`, or both.
    #[serde(default)]
    pub groups: Vec<G>,
}

/// One declared group, named by `name`, `id`, or both.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    rename = "Group",
    extend("anyOf" = [{"required": ["name"]}, {"required": ["id"]}])
)]
pub struct GroupSpec {
    /// The group's name, matched exactly. A name that matches several live groups is never
    /// deleted.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    #[schemars(regex(pattern = r"\S"))]
    pub name: Option<String>,
    /// The group's id (32 lowercase hex). With an id, a `name` must match the live group's
    /// name too, or its deletion is blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<GroupId>,
    /// `present`: the group must exist. `absent`: the group is deleted.
    pub state: GroupState,
}

/// What to do with a group that exists but is not declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnmanagedPolicy {
    /// Leave it alone and say nothing.
    Ignore,
    /// Leave it alone and report it as drift.
    Report,
    /// Delete it (prune). Opt-in only; protected groups and `max_deletes` still apply.
    Delete,
}

/// The JSON Schema (draft-07) of a desired-state file, for editors and CI linters. Field
/// descriptions are the doc comments above; ids carry their pattern.
///
/// The schema checks shape only: what it cannot say (duplicate groups or accounts, globs that
/// do not compile, a protected group declared `absent`) `cfgroups validate` still reports.
pub fn json_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<FileSpec>().to_value();
    unwrap_descriptions(&mut schema);
    schema
}

/// Joins the doc comments' wrapped lines, so editors reflow a description to their width;
/// blank lines (paragraphs) stay.
fn unwrap_descriptions(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match child {
                    serde_json::Value::String(text) if key == "description" => {
                        *text = text
                            .split("\n\n")
                            .map(|paragraph| paragraph.split('\n').collect::<Vec<_>>().join(" "))
                            .collect::<Vec<_>>()
                            .join("\n\n");
                    }
                    _ => unwrap_descriptions(child),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}
