//! Reading snapshot-format text (what `export --snapshot` writes, and what an `exec:`
//! command prints): one pass from text to typed groups, the `format_version` check, and
//! errors that name the field path (and, for JSON, the position) of the first mistake.
//!
//! JSON, the format cfgroups writes and the one worth being fast at, is deserialized in a
//! single pass straight into [`ObservedGroup`]s whose `policies` stay the raw text of the
//! document: no tree of the file, or of any group, is ever built, and a file is read one
//! account at a time, never held whole. `format_version` is checked after that pass (or as soon as it is read, when it comes first, as it does in
//! everything cfgroups writes). Only a document that failed to parse is read again: with a
//! scan that builds nothing, to tell "another format version" from a mistake, then with the
//! field path tracked, to say where the mistake is. Accounts other than the one asked for
//! are skipped without being built.
//!
//! YAML takes a slower path, because raw JSON text can only come out of a JSON parser: the
//! groups are read into mirror types whose `policies` is a `serde_json::Value`, which is then
//! written out as JSON text. A YAML snapshot therefore costs a tree per group's policies
//! while it is read, and its policies are carried as compact JSON rather than byte for byte.
//! Export to JSON when the snapshot is large.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::snapshot::{SNAPSHOT_FORMAT_VERSION, SnapshotAccount, SnapshotError};
use super::split;
use crate::model::{AccountId, GroupId, ObservedGroup};

/// Which accounts of a whole snapshot to build.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Keep<'a> {
    /// Every account (a snapshot file read once and served for every account).
    All,
    /// Only this one (an `exec:` command's output, read once per account).
    Only(&'a AccountId),
}

impl Keep<'_> {
    pub(crate) fn keeps(self, account: &AccountId) -> bool {
        match self {
            Keep::All => true,
            Keep::Only(wanted) => wanted == account,
        }
    }
}

/// The top-level keys of a document: a snapshot's `format_version` and `accounts`, or one
/// account's `groups`. Other keys are ignored.
#[derive(Debug, Default)]
pub(crate) struct Document {
    pub format_version: Option<u32>,
    pub accounts: Option<BTreeMap<AccountId, SnapshotAccount>>,
    pub groups: Option<Vec<ObservedGroup>>,
}

impl Document {
    /// Refuses a snapshot (a document with `accounts`) of any other format version.
    pub(crate) fn check_version(&self, origin: &str) -> Result<(), SnapshotError> {
        if self.accounts.is_none() {
            return Ok(());
        }
        match self.format_version {
            Some(SNAPSHOT_FORMAT_VERSION) => Ok(()),
            Some(found) => Err(SnapshotError::Version {
                origin: origin.to_owned(),
                found,
            }),
            None => Err(SnapshotError::Parse {
                origin: origin.to_owned(),
                message: "missing field `format_version`".to_owned(),
            }),
        }
    }
}

/// Parses JSON text (when it starts with `{`) or YAML text, keeping the accounts `keep`
/// names. A snapshot's `format_version` is checked; what else must be present is the
/// caller's to say.
pub(crate) fn parse(text: &str, origin: &str, keep: Keep<'_>) -> Result<Document, SnapshotError> {
    let document = if text.trim_start().starts_with('{') {
        parse_json(
            || Ok(serde_json::Deserializer::from_str(text)),
            origin,
            keep,
        )?
    } else {
        parse_yaml(text, origin, keep)?
    };
    document.check_version(origin)?;
    Ok(document)
}

/// Reads a snapshot file. JSON is read one value at a time ([`super::split`]), so its text
/// is never held whole next to the groups; YAML, and any JSON the scanner gives up on, is
/// read whole and parsed as [`parse`] does, which names any mistake with its position.
pub(crate) fn load(path: &Path, keep: Keep<'_>) -> Result<Document, SnapshotError> {
    let origin = path.display().to_string();
    let read_error = |source| SnapshotError::Read {
        path: path.to_owned(),
        source,
    };
    if let Some(document) = split::load(path, keep).map_err(read_error)? {
        document.check_version(&origin)?;
        return Ok(document);
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    parse(&text, &origin, keep)
}

fn parse_error(origin: &str, message: String) -> SnapshotError {
    SnapshotError::Parse {
        origin: origin.to_owned(),
        message,
    }
}

/// One pass straight into the document, with nothing tracked. Only when that fails is the
/// input read again (`open` starts it over): first for its `format_version`, then with the
/// field path tracked, to say where the mistake is.
fn parse_json<'de, R: serde_json::de::Read<'de>>(
    open: impl Fn() -> Result<serde_json::Deserializer<R>, SnapshotError>,
    origin: &str,
    keep: Keep<'_>,
) -> Result<Document, SnapshotError> {
    let mut de = open()?;
    let parsed = DocumentSeed { keep }
        .deserialize(&mut de)
        .and_then(|document| de.end().map(|()| document));
    match parsed {
        Ok(document) => Ok(document),
        Err(first) => Err(explain(open, origin, keep, first)),
    }
}

/// Why a JSON document does not parse: another format version, or the field path and
/// position of the first mistake.
fn explain<'de, R: serde_json::de::Read<'de>>(
    open: impl Fn() -> Result<serde_json::Deserializer<R>, SnapshotError>,
    origin: &str,
    keep: Keep<'_>,
    first: serde_json::Error,
) -> SnapshotError {
    let probe = open().and_then(|mut de| {
        VersionProbe::deserialize(&mut de).map_err(|e| parse_error(origin, e.to_string()))
    });
    if let Some(version) = probe.ok().and_then(|probe| version_error(probe, origin)) {
        return version;
    }
    let mut de = match open() {
        Ok(de) => de,
        Err(error) => return error,
    };
    let mut track = serde_path_to_error::Track::new();
    let tracked = DocumentSeed { keep }
        .deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track))
        .and_then(|_| de.end());
    let (inner, path) = match tracked {
        Err(inner) => (inner, track.path().to_string()),
        // It parsed the second time: the input changed under the first reading.
        Ok(()) => (first, "?".to_owned()),
    };
    parse_error(
        origin,
        format!(
            "line {} column {}: {path}: {}",
            inner.line(),
            inner.column(),
            strip_position(&inner.to_string())
        ),
    )
}

/// Just `format_version`; everything else is skipped.
#[derive(Deserialize)]
struct VersionProbe {
    #[serde(default)]
    format_version: Option<u32>,
}

fn version_error(probe: VersionProbe, origin: &str) -> Option<SnapshotError> {
    match probe.format_version? {
        SNAPSHOT_FORMAT_VERSION => None,
        found => Some(SnapshotError::Version {
            origin: origin.to_owned(),
            found,
        }),
    }
}

/// serde_json appends " at line L column C"; the position is printed first instead.
fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

/// The top-level object, read key by key so a wrong `format_version` read first stops the
/// parse at once, and `accounts` keeps only what [`Keep`] asks for.
struct DocumentSeed<'a> {
    keep: Keep<'a>,
}

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = Document;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Document, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_> {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a snapshot object with format_version and accounts, or {\"groups\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        let mut document = Document::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "format_version" => {
                    if document.format_version.is_some() {
                        return Err(de::Error::duplicate_field("format_version"));
                    }
                    let version: u32 = map.next_value()?;
                    if version != SNAPSHOT_FORMAT_VERSION {
                        // Reported as a version error by the caller's second look.
                        return Err(de::Error::custom(format_args!(
                            "unsupported format_version {version}"
                        )));
                    }
                    document.format_version = Some(version);
                }
                "accounts" => {
                    if document.accounts.is_some() {
                        return Err(de::Error::duplicate_field("accounts"));
                    }
                    document.accounts =
                        Some(map.next_value_seed(AccountsSeed { keep: self.keep })?);
                }
                "groups" => {
                    if document.groups.is_some() {
                        return Err(de::Error::duplicate_field("groups"));
                    }
                    document.groups = Some(map.next_value()?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(document)
    }
}

/// `accounts`: every key checked as an account id, only the kept accounts built.
struct AccountsSeed<'a> {
    keep: Keep<'a>,
}

impl<'de> DeserializeSeed<'de> for AccountsSeed<'_> {
    type Value = BTreeMap<AccountId, SnapshotAccount>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AccountsSeed<'_> {
    type Value = BTreeMap<AccountId, SnapshotAccount>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of account ids")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut accounts = BTreeMap::new();
        while let Some(account) = map.next_key::<AccountId>()? {
            if !self.keep.keeps(&account) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let entry: SnapshotAccount = map.next_value()?;
            if accounts.contains_key(&account) {
                return Err(de::Error::custom(format_args!(
                    "account {account} appears more than once"
                )));
            }
            accounts.insert(account, entry);
        }
        Ok(accounts)
    }
}

/// The slower YAML path: groups whose policies are read as a tree, then written as JSON.
fn parse_yaml(text: &str, origin: &str, keep: Keep<'_>) -> Result<Document, SnapshotError> {
    crate::yaml_guard::check_depth(text).map_err(|e| parse_error(origin, e.to_string()))?;
    let de = serde_yaml::Deserializer::from_str(text);
    let yaml: YamlDocument = serde_path_to_error::deserialize(de).map_err(|e| {
        serde_yaml::from_str::<VersionProbe>(text)
            .ok()
            .and_then(|probe| version_error(probe, origin))
            .unwrap_or_else(|| parse_error(origin, format!("{}: {}", e.path(), e.inner())))
    })?;
    let groups = |groups: Vec<YamlGroup>| -> Result<Vec<ObservedGroup>, SnapshotError> {
        groups
            .into_iter()
            .map(|group| group.into_observed(origin))
            .collect()
    };
    let accounts = match yaml.accounts {
        None => None,
        Some(accounts) => {
            let mut kept = BTreeMap::new();
            for (account, entry) in accounts.into_iter().filter(|(id, _)| keep.keeps(id)) {
                let entry = SnapshotAccount {
                    groups: groups(entry.groups)?,
                };
                kept.insert(account, entry);
            }
            Some(kept)
        }
    };
    Ok(Document {
        format_version: yaml.format_version,
        accounts,
        groups: yaml.groups.map(groups).transpose()?,
    })
}

#[derive(Deserialize)]
struct YamlDocument {
    #[serde(default)]
    format_version: Option<u32>,
    #[serde(default)]
    accounts: Option<BTreeMap<AccountId, YamlAccount>>,
    #[serde(default)]
    groups: Option<Vec<YamlGroup>>,
}

#[derive(Deserialize)]
struct YamlAccount {
    groups: Vec<YamlGroup>,
}

/// [`ObservedGroup`] as YAML can give it: the same fields, `policies` as a tree.
#[derive(Deserialize)]
struct YamlGroup {
    id: GroupId,
    name: String,
    #[serde(default)]
    created_on: Option<String>,
    #[serde(default)]
    modified_on: Option<String>,
    #[serde(default)]
    policies: Option<serde_json::Value>,
}

impl YamlGroup {
    fn into_observed(self, origin: &str) -> Result<ObservedGroup, SnapshotError> {
        let policies = self
            .policies
            .filter(|policies| !policies.is_null())
            .map(|policies| serde_json::value::to_raw_value(&policies))
            .transpose()
            .map_err(|e| parse_error(origin, format!("group {}: policies: {e}", self.id)))?;
        Ok(ObservedGroup {
            id: self.id,
            name: self.name,
            created_on: self.created_on,
            modified_on: self.modified_on,
            policies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";
    const OTHER: &str = "123e105f4ecef8ad9ca31a8372d0c353";
    const GROUP: &str = "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a";

    fn policies_of(document: &Document, account: &str) -> Option<String> {
        let account: AccountId = account.parse().unwrap();
        document.accounts.as_ref().unwrap()[&account].groups[0]
            .policies
            .as_deref()
            .map(RawValue::get)
            .map(str::to_owned)
    }

    #[test]
    fn json_policies_are_the_document_text() {
        let policies = r#"[{"access":"allow","x":[1e400,-0.0,1.0E-5,123456789012345678901234567890],"ü":{"deep":[[[{}]]]}}]"#;
        let text = format!(
            r#"{{"format_version":1,"accounts":{{"{ACCOUNT}":{{"groups":[{{"id":"{GROUP}","name":"Ops","policies":{policies},"new":{{"a":1}}}}]}}}}}}"#
        );
        let document = parse(&text, "s.json", Keep::All).unwrap();
        assert_eq!(policies_of(&document, ACCOUNT).as_deref(), Some(policies));
    }

    #[test]
    fn only_the_kept_account_is_built_but_every_key_is_checked() {
        let text = format!(
            r#"{{"format_version":1,"accounts":{{"{OTHER}":{{"groups":[{{"id":"bad"}}]}},"{ACCOUNT}":{{"groups":[{{"id":"{GROUP}","name":"Ops"}}]}}}}}}"#
        );
        let account: AccountId = ACCOUNT.parse().unwrap();
        let document = parse(&text, "s.json", Keep::Only(&account)).unwrap();
        assert_eq!(document.accounts.as_ref().unwrap().len(), 1);
        assert!(parse(&text, "s.json", Keep::All).is_err());
        let bad_key = r#"{"format_version":1,"accounts":{"nope":{"groups":[]}}}"#;
        let err = parse(bad_key, "s.json", Keep::Only(&account)).unwrap_err();
        assert!(err.to_string().contains("not 32 lowercase"), "{err}");
    }

    #[test]
    fn another_version_is_named_wherever_it_stands() {
        for text in [
            r#"{"format_version":2,"accounts":{"x":"changed"}}"#.to_owned(),
            r#"{"accounts":{"x":"changed"},"format_version":2}"#.to_owned(),
            r#"{"accounts":{},"format_version":2}"#.to_owned(),
            "format_version: 2\naccounts: {}\n".to_owned(),
            "format_version: 2\naccounts: [changed]\n".to_owned(),
        ] {
            let err = parse(&text, "s", Keep::All).unwrap_err();
            assert!(
                matches!(err, SnapshotError::Version { found: 2, .. }),
                "{text}: {err}"
            );
        }
        let err = parse(r#"{"accounts":{}}"#, "s", Keep::All).unwrap_err();
        assert!(err.to_string().contains("format_version"), "{err}");
    }

    #[test]
    fn an_account_listed_twice_is_refused() {
        let text = format!(
            r#"{{"format_version":1,"accounts":{{"{ACCOUNT}":{{"groups":[]}},"{ACCOUNT}":{{"groups":[]}}}}}}"#
        );
        let err = parse(&text, "s.json", Keep::All).unwrap_err().to_string();
        assert!(err.contains("more than once"), "{err}");
    }

    #[test]
    fn trailing_text_is_refused() {
        let err = parse(r#"{"groups":[]} {"#, "s.json", Keep::All).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }

    #[test]
    fn files_are_read_alike_streamed_or_whole_and_errors_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let policies = r#"[{"access":"allow","n":1e400}]"#;
        let json = dir.path().join("s.json");
        std::fs::write(
            &json,
            format!(
                "\n  {{\"format_version\":1,\"accounts\":{{\"{ACCOUNT}\":{{\"groups\":[{{\"id\":\"{GROUP}\",\"name\":\"Ops\",\"policies\":{policies}}}]}}}}}}"
            ),
        )
        .unwrap();
        let loaded = load(&json, Keep::All).unwrap();
        assert_eq!(policies_of(&loaded, ACCOUNT).as_deref(), Some(policies));

        let yaml = dir.path().join("s.yaml");
        std::fs::write(
            &yaml,
            format!("format_version: 1\naccounts:\n  \"{ACCOUNT}\":\n    groups: []\n"),
        )
        .unwrap();
        assert!(load(&yaml, Keep::All).unwrap().accounts.is_some());

        let bad = dir.path().join("bad.json");
        std::fs::write(
            &bad,
            format!(
                "{{\"format_version\":1,\"accounts\":{{\"{ACCOUNT}\":{{\"groups\":[\n{{\"id\":\"nope\",\"name\":\"Ops\"}}]}}}}}}"
            ),
        )
        .unwrap();
        let err = load(&bad, Keep::All).unwrap_err().to_string();
        assert!(err.contains("line 2 column"), "{err}");
        assert!(
            err.contains(&format!("accounts.{ACCOUNT}.groups[0].id")),
            "{err}"
        );

        let other = dir.path().join("v2.json");
        std::fs::write(&other, r#"{"accounts":{"x":1},"format_version":2}"#).unwrap();
        assert!(matches!(
            load(&other, Keep::All),
            Err(SnapshotError::Version { found: 2, .. })
        ));
        assert!(matches!(
            load(&dir.path().join("none.json"), Keep::All),
            Err(SnapshotError::Read { .. })
        ));
    }

    #[test]
    fn yaml_policies_become_json_text() {
        let yaml = format!(
            "format_version: 1\naccounts:\n  \"{ACCOUNT}\":\n    groups:\n      - id: {GROUP}\n        name: 2024\n        policies:\n          - access: allow\n            permission_groups: [{{id: p1, name: \"Zoë\"}}]\n"
        );
        let document = parse(&yaml, "s.yaml", Keep::All).unwrap();
        let account: AccountId = ACCOUNT.parse().unwrap();
        assert_eq!(
            document.accounts.as_ref().unwrap()[&account].groups[0].name,
            "2024"
        );
        assert_eq!(
            policies_of(&document, ACCOUNT).as_deref(),
            Some(r#"[{"access":"allow","permission_groups":[{"id":"p1","name":"Zoë"}]}]"#)
        );
    }
}
