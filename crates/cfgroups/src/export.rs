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
use crate::model::{AccountId, GroupState, ObservedGroup};
use crate::source::snapshot::{SNAPSHOT_FORMAT_VERSION, SnapshotAccount};

/// Why an export could not be written.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error("SOURCE_DATE_EPOCH={0:?} is not whole seconds")]
    SourceDateEpoch(String),
    #[error("cannot encode the export as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot encode the export as YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
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

/// The desired state that declares every listed group `present`.
pub fn desired_spec(listed: &Listed) -> FileSpec {
    FileSpec {
        version: crate::config::CONFIG_VERSION,
        defaults: DefaultsSpec::default(),
        accounts: listed
            .iter()
            .map(|(id, groups)| {
                let counts = name_counts(groups);
                AccountSpec {
                    id: id.clone(),
                    label: None,
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

/// The desired state as YAML, with a header and a comment on each group declared by id only.
pub fn desired_yaml(listed: &Listed, provenance: &Provenance) -> String {
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
pub fn desired_json(listed: &Listed) -> Result<String, ExportError> {
    Ok(serde_json::to_string_pretty(&desired_spec(listed))? + "\n")
}

/// The snapshot written: the format `--source snapshot:FILE` reads, plus provenance fields
/// that its reader ignores.
#[derive(Serialize)]
struct ExportedSnapshot<'a> {
    format_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    exported_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exported_from: Option<&'a str>,
    accounts: BTreeMap<&'a AccountId, SnapshotAccount>,
}

fn exported_snapshot<'a>(
    listed: &'a Listed,
    provenance: Option<&'a Provenance>,
) -> ExportedSnapshot<'a> {
    ExportedSnapshot {
        format_version: SNAPSHOT_FORMAT_VERSION,
        exported_at: provenance.map(|p| p.exported_at.as_str()),
        exported_from: provenance.map(|p| p.exported_from.as_str()),
        accounts: listed
            .iter()
            .map(|(id, groups)| {
                (
                    id,
                    SnapshotAccount {
                        groups: groups.clone(),
                    },
                )
            })
            .collect(),
    }
}

/// The snapshot as JSON, with `exported_at` and `exported_from` fields.
pub fn snapshot_json(listed: &Listed, provenance: &Provenance) -> Result<String, ExportError> {
    Ok(serde_json::to_string_pretty(&exported_snapshot(listed, Some(provenance)))? + "\n")
}

/// The snapshot as YAML, with the provenance as a comment header.
pub fn snapshot_yaml(listed: &Listed, provenance: &Provenance) -> Result<String, ExportError> {
    let body = serde_yaml::to_string(&exported_snapshot(listed, None))?;
    Ok(provenance.comment("Snapshot") + &body)
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
        let yaml = desired_yaml(&listed, &provenance());
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
            serde_yaml::from_str(&desired_yaml(&listed, &provenance())).unwrap();
        // The JSON spells out the empty defaults the YAML leaves implicit.
        from_yaml["defaults"] = serde_json::json!({});
        let from_json: serde_json::Value =
            serde_json::from_str(&desired_json(&listed).unwrap()).unwrap();
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
        let yaml = desired_yaml(&listed, &provenance());
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
}
