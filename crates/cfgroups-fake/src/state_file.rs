//! The state file: reading it (JSON, or YAML when the text does not start with `{`), its
//! `format_version` check, the errors that name the field and position of a mistake, and the
//! on-file records that validate every id before a [`FakeState`] exists.
//!
//! The format is the snapshot format (`{"format_version":1,"accounts":{"<account id>":
//! {"groups":[...]}}}`) where an account may also carry a `name` and a group may carry
//! `"members": [{"id","email","status"}]` and `"scim": true` (provisioned by SCIM: every
//! change through the API is refused). Unknown fields are ignored, as the API's group
//! objects gain fields over time; account, group and member ids must be 32 lowercase hex.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;

use crate::ids::Id;
use crate::state::{FakeAccount, FakeGroup, FakeMember, FakeState};

/// The only state file format version the fake reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Deepest flow nesting (`[`, `{`) accepted in YAML text: deeper nesting makes the parser
/// take time quadratic in the depth before it reaches its own recursion limit.
const MAX_YAML_FLOW_DEPTH: usize = 128;

/// Why a state file could not be read.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot read fake API state {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: unsupported format_version {found} (this build reads {FORMAT_VERSION})")]
    Version { origin: String, found: u32 },
}

/// Parses state text; `origin` names it in errors (a path, say).
pub(crate) fn parse(text: &str, origin: &str) -> Result<FakeState, LoadError> {
    // The version first, so a file of another version is refused as such rather than for
    // whatever field changed shape.
    let probe: VersionProbe = parse_document(text, origin)?;
    if probe.format_version != FORMAT_VERSION {
        return Err(LoadError::Version {
            origin: origin.to_owned(),
            found: probe.format_version,
        });
    }
    parse_document(text, origin)
}

/// Reads and parses a state file, naming it in errors.
pub(crate) fn load(path: &Path) -> Result<FakeState, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

#[derive(Deserialize)]
struct VersionProbe {
    format_version: u32,
}

/// A whole state file as written, before it becomes a [`FakeState`].
#[derive(Deserialize)]
pub(crate) struct StateRecord {
    format_version: u32,
    accounts: BTreeMap<Id, FakeAccount>,
}

impl From<StateRecord> for FakeState {
    fn from(record: StateRecord) -> Self {
        Self {
            format_version: record.format_version,
            accounts: record
                .accounts
                .into_iter()
                .map(|(id, account)| (id.into_string(), account))
                .collect(),
        }
    }
}

/// One group as written: only `id` and `name` are required.
#[derive(Deserialize)]
pub(crate) struct GroupRecord {
    id: Id,
    name: String,
    #[serde(default)]
    created_on: Option<String>,
    #[serde(default)]
    modified_on: Option<String>,
    #[serde(default)]
    policies: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    members: Vec<FakeMember>,
    /// `"scim": true`: provisioned by SCIM, refused every change through the API.
    #[serde(default)]
    scim: bool,
}

impl From<GroupRecord> for FakeGroup {
    fn from(record: GroupRecord) -> Self {
        let mut group = FakeGroup::new(record.id.into_string(), record.name);
        if let Some(created_on) = record.created_on {
            group.created_on = created_on;
        }
        if let Some(modified_on) = record.modified_on {
            group.modified_on = modified_on;
        }
        if let Some(policies) = record.policies {
            group.policies = policies;
        }
        group.members = record.members;
        group.scim = record.scim;
        group
    }
}

/// One member as written: `status` defaults to `accepted`.
#[derive(Deserialize)]
pub(crate) struct MemberRecord {
    id: Id,
    email: String,
    #[serde(default)]
    status: Option<String>,
}

impl From<MemberRecord> for FakeMember {
    fn from(record: MemberRecord) -> Self {
        let mut member = FakeMember::new(record.id.into_string(), record.email);
        if let Some(status) = record.status {
            member.status = status;
        }
        member
    }
}

/// Deserializes JSON or YAML text, naming the field path (and for JSON the position) of the
/// first error.
fn parse_document<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, LoadError> {
    let parse_error = |message: String| LoadError::Parse {
        origin: origin.to_owned(),
        message,
    };
    if text.trim_start().starts_with('{') {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let inner = e.inner();
            parse_error(format!(
                "line {} column {}: {}: {}",
                inner.line(),
                inner.column(),
                e.path(),
                strip_position(&inner.to_string())
            ))
        })
    } else {
        if max_flow_depth(text) > MAX_YAML_FLOW_DEPTH {
            return Err(parse_error(format!(
                "nesting deeper than {MAX_YAML_FLOW_DEPTH} levels"
            )));
        }
        // Policies are kept as JSON text, which only a JSON reader gives: the YAML is read
        // as a tree first, and the state from that tree (policies become compact JSON).
        let de = serde_yaml::Deserializer::from_str(text);
        let tree: Value = serde_path_to_error::deserialize(de)
            .map_err(|e| parse_error(format!("{}: {}", e.path(), e.inner())))?;
        serde_path_to_error::deserialize(tree)
            .map_err(|e| parse_error(format!("{}: {}", e.path(), e.inner())))
    }
}

/// serde_json appends " at line L column C"; the error names the position first instead.
fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

/// The deepest flow nesting in YAML `text`, skipping quoted scalars and comments. Brackets
/// inside plain scalars (`name: Team [EU]`) may be over-counted, which only matters past the
/// limit.
fn max_flow_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut previous = '\n';
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') if previous.is_whitespace() => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            (None, '[' | '{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = c;
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";
    const GROUP: &str = "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a";

    #[test]
    fn json_and_yaml_parse_alike() {
        let json = format!(
            r#"{{"format_version":1,"accounts":{{"{ACCOUNT}":{{"name":"Acme","groups":[
                {{"id":"{GROUP}","name":"Ops","created_on":"2024-03-01T12:21:02Z",
                  "members":[{{"id":"{GROUP}","email":"a@example.com"}}]}}]}}}}}}"#
        );
        let yaml = format!(
            "format_version: 1\naccounts:\n  \"{ACCOUNT}\":\n    name: Acme\n    groups:\n      - id: {GROUP}\n        name: Ops\n        created_on: \"2024-03-01T12:21:02Z\"\n        members:\n          - id: {GROUP}\n            email: a@example.com\n"
        );
        let a = parse(&json, "a.json").unwrap();
        let b = parse(&yaml, "b.yaml").unwrap();
        assert_eq!(a, b);
        let account = &a.accounts[ACCOUNT];
        assert_eq!(account.name.as_deref(), Some("Acme"));
        assert_eq!(account.groups[0].members[0].status, "accepted");
    }

    #[test]
    fn unknown_fields_and_null_policies_are_tolerated() {
        let json = format!(
            r#"{{"format_version":1,"exported_by":"x","accounts":{{"{ACCOUNT}":{{"groups":[
                {{"id":"{GROUP}","name":"Ops","policies":null,"color":"blue"}}],"plan":"ent"}}}}}}"#
        );
        let state = parse(&json, "s.json").unwrap();
        assert_eq!(state.groups(ACCOUNT)[0].policies.get(), "[]");
    }

    #[test]
    fn errors_name_the_field_and_position() {
        for (field, text) in [
            (
                "groups[0].id",
                format!(
                    "{{\"format_version\":1,\"accounts\":{{\"{ACCOUNT}\":{{\"groups\":[\n{{\"id\":\"not-an-id\",\"name\":\"Ops\"}}]}}}}}}"
                ),
            ),
            (
                "accounts",
                "{\"format_version\":1,\"accounts\":{\n\"ACCOUNT\":{\"groups\":[]}}}".to_owned(),
            ),
            (
                "members[0].id",
                format!(
                    "{{\"format_version\":1,\"accounts\":{{\"{ACCOUNT}\":{{\"groups\":[\n{{\"id\":\"{GROUP}\",\"name\":\"Ops\",\"members\":[{{\"id\":\"m1\",\"email\":\"e\"}}]}}]}}}}}}"
                ),
            ),
        ] {
            let err = parse(&text, "s.json").unwrap_err().to_string();
            assert!(err.starts_with("s.json: line 2 column"), "{err}");
            assert!(err.contains(field), "{field}: {err}");
            assert!(err.contains("not 32 lowercase hexadecimal"), "{err}");
        }
    }

    #[test]
    fn refuses_other_format_versions_and_missing_ones() {
        let err = parse(
            r#"{"format_version":2,"accounts":{"x":{"groups":"changed"}}}"#,
            "s.json",
        )
        .unwrap_err();
        assert!(matches!(err, LoadError::Version { found: 2, .. }), "{err}");
        assert!(err.to_string().contains("unsupported format_version 2"));
        let err = parse(r#"{"accounts":{}}"#, "s.json").unwrap_err();
        assert!(err.to_string().contains("format_version"), "{err}");
    }

    #[test]
    fn deep_yaml_is_refused_before_parsing() {
        let text = format!("format_version: 1\naccounts: {}", "[".repeat(200));
        let err = parse(&text, "s.yaml").unwrap_err().to_string();
        assert!(err.contains("nesting deeper than 128"), "{err}");
        assert_eq!(max_flow_depth("a: \"[[[[\"\nb: '{{' # [[[[\n"), 0);
        assert_eq!(max_flow_depth("a: [1, {b: [2]}]"), 3);
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(&dir.path().join("absent.json")).unwrap_err();
        assert!(matches!(err, LoadError::Read { .. }), "{err}");
    }
}
