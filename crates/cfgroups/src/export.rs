//! `export`: what a source lists, written either as a desired-state file that plans with no
//! drift against the same state, or as a snapshot that `--source snapshot:FILE` reads back.
//!
//! Output is deterministic: accounts sorted by id, groups by name then id. Only the header
//! carries the export time, and `SOURCE_DATE_EPOCH` pins it (the reproducible-builds
//! convention), so two exports of the same state compare byte for byte.
//!
//! Names must be unique among one account's declarations, but Cloudflare lets two groups
//! share a name. Every group whose name is shared (or blank, which a declaration may not
//! be) is therefore exported by `id` only, with a YAML comment saying its name: declared by
//! id, each group is matched exactly, and no namesake is favoured over another.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use thiserror::Error;

use crate::config::{AccountSpec, DefaultsSpec, FileSpec, GroupSpec};
use crate::model::{AccountId, GroupId, GroupState, ObservedGroup};
use crate::source::snapshot::SNAPSHOT_FORMAT_VERSION;

/// Why an export could not be written.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error("SOURCE_DATE_EPOCH={0:?} is not whole seconds")]
    SourceDateEpoch(String),
    #[error("cannot encode the export as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot encode the export as YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error(
        "group {group}: its policies cannot be written as YAML ({source}); export the snapshot as JSON, which keeps them as they are"
    )]
    YamlPolicies {
        group: GroupId,
        #[source]
        source: serde_json::Error,
    },
}

/// Where and when an export was taken, for its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// RFC 3339, UTC, whole seconds.
    pub exported_at: String,
    /// The source, as reports name it (`cloudflare`, `snapshot:FILE`, `exec:COMMAND`).
    pub exported_from: String,
}

impl Provenance {
    /// Provenance for an export from `source` taken now (or at `SOURCE_DATE_EPOCH`).
    pub fn now(source: String) -> Result<Self, ExportError> {
        Ok(Self {
            exported_at: humantime::format_rfc3339_seconds(export_time()?).to_string(),
            exported_from: source,
        })
    }

    /// The header comment of an export of `what`.
    pub fn comment(&self, what: &str) -> String {
        format!(
            "# {what} exported by cfgroups {} at {} from {}.\n",
            env!("CARGO_PKG_VERSION"),
            self.exported_at,
            one_line(&self.exported_from),
        )
    }
}

/// Every listed group of each account, sorted: accounts by id, groups by name then id.
pub type Listed = BTreeMap<AccountId, Vec<ObservedGroup>>;

/// The `label:` an exported account gets: the account's name as Cloudflare has it, or why
/// it is not known (said in a comment where the label would be; never a failure of the
/// export).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountLabel {
    Named(String),
    Unknown(String),
}

/// The labels of the exported accounts; an account missing here gets no label and no
/// comment.
pub type Labels = BTreeMap<AccountId, AccountLabel>;

/// Where an exported file finds the JSON Schema unless told otherwise: the repository root
/// above a directory of account files (`accounts/*.yaml`), where the README suggests
/// keeping `cfgroups.schema.json`.
pub const DEFAULT_SCHEMA_PATH: &str = "../cfgroups.schema.json";

/// The first line that points the YAML language server (VS Code, Neovim, Helix, JetBrains)
/// at the schema of the desired-state file.
pub fn schema_modeline(schema: &str) -> String {
    format!("# yaml-language-server: $schema={}\n", one_line(schema))
}

/// Now, or `SOURCE_DATE_EPOCH` when it is set, so that exports can be reproduced exactly.
fn export_time() -> Result<SystemTime, ExportError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => {
            let seconds: u64 = text
                .trim()
                .parse()
                .map_err(|_| ExportError::SourceDateEpoch(text.clone()))?;
            Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
        }
        Err(_) => Ok(SystemTime::now()),
    }
}

/// `groups` in export order: by name, then id.
pub fn sorted(mut groups: Vec<ObservedGroup>) -> Vec<ObservedGroup> {
    groups.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    groups
}

/// Why a group is declared by id only, if it is: its name is shared or blank.
fn id_only_reason(group: &ObservedGroup, name_counts: &HashMap<&str, usize>) -> Option<String> {
    if group.name.trim().is_empty() {
        return Some("is blank".to_owned());
    }
    match name_counts.get(group.name.as_str()) {
        Some(&count) if count > 1 => Some(format!("is shared by {count} groups")),
        _ => None,
    }
}

fn name_counts(groups: &[ObservedGroup]) -> HashMap<&str, usize> {
    let mut counts = HashMap::with_capacity(groups.len());
    for group in groups {
        *counts.entry(group.name.as_str()).or_insert(0) += 1;
    }
    counts
}

/// The desired state that declares every listed group `present`, with each account's
/// label where it is known.
pub fn desired_spec(listed: &Listed, labels: &Labels) -> FileSpec {
    FileSpec {
        version: crate::config::CONFIG_VERSION,
        defaults: DefaultsSpec::default(),
        accounts: listed
            .iter()
            .map(|(id, groups)| {
                let counts = name_counts(groups);
                AccountSpec {
                    id: id.clone(),
                    label: match labels.get(id) {
                        Some(AccountLabel::Named(name)) => Some(name.clone()),
                        _ => None,
                    },
                    protect: Vec::new(),
                    unmanaged: None,
                    max_deletes: None,
                    suspend: None,
                    groups: groups
                        .iter()
                        .map(|group| GroupSpec {
                            name: id_only_reason(group, &counts)
                                .is_none()
                                .then(|| group.name.clone()),
                            id: Some(group.id.clone()),
                            state: GroupState::Present,
                        })
                        .collect(),
                }
            })
            .collect(),
        notify: None,
    }
}

/// The desired state as YAML, with a header, each account's label (or a comment saying
/// why there is none) and a comment on each group declared by id only.
pub fn desired_yaml(listed: &Listed, labels: &Labels, provenance: &Provenance) -> String {
    let mut out = provenance.comment("Desired state");
    out.push_str(
        "# Every group that existed then is declared `present`, so `cfgroups plan` with this\n\
         # file reports no drift. Mark a group `absent` to have it deleted.\n",
    );
    let any_id_only = listed.values().any(|groups| {
        let counts = name_counts(groups);
        groups.iter().any(|g| id_only_reason(g, &counts).is_some())
    });
    if any_id_only {
        out.push_str(
            "# A group whose name is shared or blank is declared by id only: a name may be\n\
             # declared once per account, and an id matches exactly one group.\n",
        );
    }
    out.push_str("version: 1\naccounts:\n");
    for (account, groups) in listed {
        out.push_str(&format!("  - id: {account}\n"));
        match labels.get(account) {
            Some(AccountLabel::Named(name)) => {
                out.push_str(&format!("    label: {}\n", yaml_scalar(name)));
            }
            Some(AccountLabel::Unknown(why)) => {
                out.push_str(&format!("    # label: not set: {}\n", one_line(why)));
            }
            None => {}
        }
        if groups.is_empty() {
            out.push_str("    groups: []\n");
            continue;
        }
        out.push_str("    groups:\n");
        let counts = name_counts(groups);
        for group in groups {
            match id_only_reason(group, &counts) {
                None => out.push_str(&format!(
                    "      - id: {}\n        name: {}\n        state: present\n",
                    group.id,
                    yaml_scalar(&group.name)
                )),
                Some(reason) => out.push_str(&format!(
                    "      # name {} {reason}: declared by id only\n      - id: {}\n        state: present\n",
                    quoted(&group.name),
                    group.id
                )),
            }
        }
    }
    out
}

/// The desired state as JSON (which the YAML reader also reads). No header: the file
/// format refuses keys it does not know.
pub fn desired_json(listed: &Listed, labels: &Labels) -> Result<String, ExportError> {
    Ok(serde_json::to_string_pretty(&desired_spec(listed, labels))? + "\n")
}

/// One desired-state file per account, for `export --out-dir`: the file name (the account
/// id, `.yaml`) and its text, which starts with the schema modeline.
pub fn desired_yaml_files(
    listed: &Listed,
    labels: &Labels,
    provenance: &Provenance,
    schema: &str,
) -> Vec<(String, String)> {
    listed
        .iter()
        .map(|(account, groups)| {
            let one = Listed::from([(account.clone(), groups.clone())]);
            let text = schema_modeline(schema) + &desired_yaml(&one, labels, provenance);
            (format!("{account}.yaml"), text)
        })
        .collect()
}

/// The snapshot written: the format `--source snapshot:FILE` reads, plus provenance fields
/// that its reader ignores. Groups are borrowed from the listing, not copied.
#[derive(Serialize)]
struct ExportedSnapshot<'a, G> {
    format_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    exported_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exported_from: Option<&'a str>,
    accounts: BTreeMap<&'a AccountId, ExportedAccount<G>>,
}

#[derive(Serialize)]
struct ExportedAccount<G> {
    groups: Vec<G>,
}

fn exported_snapshot<'a, G>(
    listed: &'a Listed,
    provenance: Option<&'a Provenance>,
    group: impl Fn(&'a ObservedGroup) -> Result<G, ExportError>,
) -> Result<ExportedSnapshot<'a, G>, ExportError> {
    let mut accounts = BTreeMap::new();
    for (id, groups) in listed {
        let groups = groups.iter().map(&group).collect::<Result<_, _>>()?;
        accounts.insert(id, ExportedAccount { groups });
    }
    Ok(ExportedSnapshot {
        format_version: SNAPSHOT_FORMAT_VERSION,
        exported_at: provenance.map(|p| p.exported_at.as_str()),
        exported_from: provenance.map(|p| p.exported_from.as_str()),
        accounts,
    })
}

/// The snapshot as JSON, with `exported_at` and `exported_from` fields. Policies are written
/// as the source gave them, byte for byte.
pub fn snapshot_json(listed: &Listed, provenance: &Provenance) -> Result<String, ExportError> {
    let snapshot = exported_snapshot(listed, Some(provenance), Ok)?;
    Ok(serde_json::to_string_pretty(&snapshot)? + "\n")
}

/// The snapshot as YAML, with the provenance as a comment header. Policies become YAML
/// (raw JSON text has no YAML form), so a number no float holds cannot be written.
pub fn snapshot_yaml(listed: &Listed, provenance: &Provenance) -> Result<String, ExportError> {
    let snapshot = exported_snapshot(listed, None, YamlGroup::new)?;
    let body = serde_yaml::to_string(&snapshot)?;
    Ok(provenance.comment("Snapshot") + &body)
}

/// A group as a YAML snapshot holds it: its policies as a tree.
#[derive(Serialize)]
struct YamlGroup<'a> {
    id: &'a GroupId,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_on: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    modified_on: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policies: Option<serde_json::Value>,
}

impl<'a> YamlGroup<'a> {
    fn new(group: &'a ObservedGroup) -> Result<Self, ExportError> {
        let policies = group
            .policies
            .as_deref()
            .map(|raw| serde_json::from_str(raw.get()))
            .transpose()
            .map_err(|source| ExportError::YamlPolicies {
                group: group.id.clone(),
                source,
            })?;
        Ok(Self {
            id: &group.id,
            name: &group.name,
            created_on: group.created_on.as_deref(),
            modified_on: group.modified_on.as_deref(),
            policies,
        })
    }
}

/// `text` as one YAML flow scalar: plain when YAML reads it back as the same string,
/// quoted otherwise (the YAML serializer decides), never a multi-line block.
fn yaml_scalar(text: &str) -> String {
    match serde_yaml::to_string(text) {
        Ok(yaml) => match yaml.strip_suffix('\n') {
            Some(line) if !line.is_empty() && !line.contains('\n') && !line.starts_with('|') => {
                line.to_owned()
            }
            _ => quoted(text),
        },
        Err(_) => quoted(text),
    }
}

/// A JSON string literal: also a valid YAML double-quoted scalar, and safe in a comment
/// because control characters (newlines included) are escaped.
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    fn group(id: &str, name: &str) -> ObservedGroup {
        ObservedGroup {
            id: id.parse().unwrap(),
            name: name.to_owned(),
            created_on: None,
            modified_on: None,
            policies: None,
        }
    }

    fn provenance() -> Provenance {
        Provenance {
            exported_at: "2025-01-01T00:00:00Z".into(),
            exported_from: "snapshot:s.json".into(),
        }
    }

    fn listed(groups: Vec<ObservedGroup>) -> Listed {
        Listed::from([(ACCOUNT.parse().unwrap(), sorted(groups))])
    }

    #[test]
    fn awkward_names_survive_the_yaml_round_trip() {
        let names = [
            "yes",
            "null",
            "~",
            "1.0",
            "0x1f",
            "- dash",
            "a: b",
            "#hash",
            " leading",
            "trailing ",
            "multi\nline",
            "quote\"s",
            "it's",
            "Ünïcode ✓",
            "tab\there",
            "[flow]",
            "{map}",
            "*ref",
            "&anchor",
            "!tag",
            "%directive",
            "@at",
            "`tick",
            "---",
            "...",
            "back\\slash",
            "\u{1b}[31m",
        ];
        let groups: Vec<ObservedGroup> = names
            .iter()
            .enumerate()
            .map(|(i, name)| group(&format!("{i:032x}"), name))
            .collect();
        let listed = listed(groups);
        let yaml = desired_yaml(&listed, &Labels::new(), &provenance());
        let desired = crate::config::parse(&yaml, Path::new("export.yaml"))
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let mut read: Vec<String> = desired.accounts[0]
            .groups
            .iter()
            .map(|g| g.name.clone().unwrap())
            .collect();
        let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        read.sort();
        expected.sort();
        assert_eq!(read, expected, "{yaml}");
    }

    #[test]
    fn yaml_and_json_declare_the_same_state() {
        let listed = listed(vec![
            group("b2c3d4e5f60718293a4b5c6d7e8f90a1", "Finance"),
            group("e5f60718293a4b5c6d7e8f90a1b2c3d4", "Interns"),
            group("d4e5f60718293a4b5c6d7e8f90a1b2c3", "Interns"),
            group("a1b2c3d4e5f60718293a4b5c6d7e8f90", "  "),
        ]);
        let mut from_yaml: serde_json::Value =
            serde_yaml::from_str(&desired_yaml(&listed, &Labels::new(), &provenance())).unwrap();
        // The JSON spells out the empty defaults the YAML leaves implicit.
        from_yaml["defaults"] = serde_json::json!({});
        let from_json: serde_json::Value =
            serde_json::from_str(&desired_json(&listed, &Labels::new()).unwrap()).unwrap();
        assert_eq!(from_yaml, from_json);
    }

    #[test]
    fn shared_and_blank_names_are_declared_by_id_only_with_a_comment() {
        let listed = listed(vec![
            group("e5f60718293a4b5c6d7e8f90a1b2c3d4", "Interns"),
            group("b2c3d4e5f60718293a4b5c6d7e8f90a1", "Finance"),
            group("d4e5f60718293a4b5c6d7e8f90a1b2c3", "Interns"),
            group("a1b2c3d4e5f60718293a4b5c6d7e8f90", ""),
        ]);
        let yaml = desired_yaml(&listed, &Labels::new(), &provenance());
        let body: String = yaml.lines().skip(6).map(|l| format!("{l}\n")).collect();
        assert_eq!(
            body,
            "accounts:
  - id: 023e105f4ecef8ad9ca31a8372d0c353
    groups:
      # name \"\" is blank: declared by id only
      - id: a1b2c3d4e5f60718293a4b5c6d7e8f90
        state: present
      - id: b2c3d4e5f60718293a4b5c6d7e8f90a1
        name: Finance
        state: present
      # name \"Interns\" is shared by 2 groups: declared by id only
      - id: d4e5f60718293a4b5c6d7e8f90a1b2c3
        state: present
      # name \"Interns\" is shared by 2 groups: declared by id only
      - id: e5f60718293a4b5c6d7e8f90a1b2c3d4
        state: present
"
        );
        crate::config::parse(&yaml, Path::new("export.yaml")).unwrap();
    }

    #[test]
    fn labels_are_the_account_names_or_a_comment_saying_why_not() {
        let other: AccountId = "9a7806061c88ada191ed06f989cc3dac".parse().unwrap();
        let mut listed = listed(vec![group("b2c3d4e5f60718293a4b5c6d7e8f90a1", "Finance")]);
        listed.insert(other.clone(), Vec::new());
        let labels = Labels::from([
            (
                ACCOUNT.parse().unwrap(),
                AccountLabel::Named("Acme: Production #1".to_owned()),
            ),
            (
                other.clone(),
                AccountLabel::Unknown("the token may not read the account's name".to_owned()),
            ),
        ]);
        let yaml = desired_yaml(&listed, &labels, &provenance());
        assert!(
            yaml.contains("    # label: not set: the token may not read the account's name\n"),
            "{yaml}"
        );
        let desired = crate::config::parse(&yaml, Path::new("export.yaml")).unwrap();
        assert_eq!(
            desired.accounts[0].label.as_deref(),
            Some("Acme: Production #1")
        );
        assert_eq!(desired.accounts[1].label, None);
        let json: serde_json::Value =
            serde_json::from_str(&desired_json(&listed, &labels).unwrap()).unwrap();
        assert_eq!(json["accounts"][0]["label"], "Acme: Production #1");

        let files = desired_yaml_files(&listed, &labels, &provenance(), DEFAULT_SCHEMA_PATH);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].0, format!("{ACCOUNT}.yaml"));
        for (name, text) in &files {
            assert!(
                text.starts_with("# yaml-language-server: $schema=../cfgroups.schema.json\n"),
                "{name}: {text}"
            );
            let one = crate::config::parse(text, Path::new(name)).unwrap();
            assert_eq!(one.accounts.len(), 1);
        }
    }

    #[test]
    fn snapshot_exports_read_back_as_the_same_listing() {
        let listed = listed(vec![
            group("e5f60718293a4b5c6d7e8f90a1b2c3d4", "Interns"),
            group("b2c3d4e5f60718293a4b5c6d7e8f90a1", "Finance"),
        ]);
        for text in [
            snapshot_json(&listed, &provenance()).unwrap(),
            snapshot_yaml(&listed, &provenance()).unwrap(),
        ] {
            let read = crate::source::snapshot::Snapshot::parse(&text, "export").unwrap();
            let account: AccountId = ACCOUNT.parse().unwrap();
            assert_eq!(read.accounts[&account].groups, listed[&account], "{text}");
        }
        let json: serde_json::Value =
            serde_json::from_str(&snapshot_json(&listed, &provenance()).unwrap()).unwrap();
        assert_eq!(json["exported_at"], "2025-01-01T00:00:00Z");
        assert_eq!(json["exported_from"], "snapshot:s.json");
    }

    #[test]
    fn snapshots_carry_policies_json_byte_for_byte_yaml_as_a_tree() {
        use serde_json::value::RawValue;
        let policies = r#"[{"access":"allow","permission_groups":[{"id":"p1","meta":{"label":"Zoë"}}],"resource_groups":[{"id":"r1","scope":[{"key":"k","objects":[{"key":"*"}]}]}],"n":1.0E-5}]"#;
        let mut with_policies = group("e5f60718293a4b5c6d7e8f90a1b2c3d4", "Équipe Sécurité");
        with_policies.policies = Some(RawValue::from_string(policies.to_owned()).unwrap());
        let listed = listed(vec![with_policies]);
        let account: AccountId = ACCOUNT.parse().unwrap();
        let json = snapshot_json(&listed, &provenance()).unwrap();
        assert!(json.contains(policies), "{json}");
        let read = crate::source::snapshot::Snapshot::parse(&json, "export").unwrap();
        assert_eq!(read.accounts[&account].groups, listed[&account]);

        let yaml = snapshot_yaml(&listed, &provenance()).unwrap();
        let read = crate::source::snapshot::Snapshot::parse(&yaml, "export").unwrap();
        let tree = |raw: Option<&RawValue>| -> serde_json::Value {
            serde_json::from_str(raw.unwrap().get()).unwrap()
        };
        assert_eq!(
            tree(read.accounts[&account].groups[0].policies.as_deref()),
            tree(listed[&account][0].policies.as_deref())
        );

        let mut huge = group("b2c3d4e5f60718293a4b5c6d7e8f90a1", "Huge");
        huge.policies = Some(RawValue::from_string("[{\"n\":1e400}]".to_owned()).unwrap());
        let err = snapshot_yaml(&self::listed(vec![huge]), &provenance()).unwrap_err();
        assert!(matches!(err, ExportError::YamlPolicies { .. }), "{err}");
    }
}
