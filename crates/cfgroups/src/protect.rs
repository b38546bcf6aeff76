//! Protection patterns: the names, ids and globs of groups that are never deleted.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::model::GroupId;

/// A compiled `protect` list. A pattern protects a group when it equals the group's name or
/// id exactly, or when it is a glob (`*`, `?`, `[...]`) that matches the name or the id.
#[derive(Debug, Clone, Default)]
pub struct Protect {
    patterns: Vec<String>,
    globs: GlobSet,
}

/// A pattern that is not a valid glob, by its index in the list.
#[derive(Debug, Clone, thiserror::Error)]
#[error("protect pattern {pattern:?} is not a valid glob: {reason}")]
pub struct BadPattern {
    pub index: usize,
    pub pattern: String,
    pub reason: String,
}

impl Protect {
    pub fn new(patterns: Vec<String>) -> Result<Self, BadPattern> {
        let mut builder = GlobSetBuilder::new();
        for (index, pattern) in patterns.iter().enumerate() {
            let glob = GlobBuilder::new(pattern)
                .literal_separator(false)
                .build()
                .map_err(|e| BadPattern {
                    index,
                    pattern: pattern.clone(),
                    reason: e.kind().to_string(),
                })?;
            builder.add(glob);
        }
        let globs = builder.build().map_err(|e| BadPattern {
            index: 0,
            pattern: patterns.first().cloned().unwrap_or_default(),
            reason: e.to_string(),
        })?;
        Ok(Self { patterns, globs })
    }

    /// The patterns as written, defaults first.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// The first pattern that protects a group with this id and/or name, if any.
    pub fn matching(&self, id: Option<&GroupId>, name: Option<&str>) -> Option<&str> {
        let candidates = [id.map(GroupId::as_str), name];
        let candidates = candidates.iter().flatten();
        for candidate in candidates.clone() {
            if let Some(exact) = self.patterns.iter().find(|p| p.as_str() == *candidate) {
                return Some(exact);
            }
        }
        candidates
            .flat_map(|candidate| self.globs.matches(candidate))
            .min()
            .map(|index| self.patterns[index].as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protect(patterns: &[&str]) -> Protect {
        Protect::new(patterns.iter().map(|p| p.to_string()).collect()).unwrap()
    }

    #[test]
    fn the_patterns_are_kept_as_written_defaults_first() {
        let yaml = "version: 1\ndefaults:\n  protect: [\"Break-glass*\"]\naccounts:\n  - id: 023e105f4ecef8ad9ca31a8372d0c353\n    protect: [Admins, \"SCIM-?\"]\n    groups: []\n";
        let desired = crate::config::parse(yaml, std::path::Path::new("g.yaml")).unwrap();
        assert_eq!(
            desired.accounts[0].protect.patterns(),
            ["Break-glass*", "Admins", "SCIM-?"]
        );
    }

    #[test]
    fn matches_names_ids_and_globs() {
        let p = protect(&["Admins", "SCIM-*", "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a"]);
        let id: GroupId = "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a".parse().unwrap();
        let other: GroupId = "00000000000000000000000000000000".parse().unwrap();
        assert_eq!(p.matching(None, Some("Admins")), Some("Admins"));
        assert_eq!(p.matching(None, Some("SCIM-Okta/EU")), Some("SCIM-*"));
        assert_eq!(
            p.matching(Some(&id), Some("Anything")),
            Some("3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a")
        );
        assert_eq!(p.matching(Some(&other), Some("admins")), None);
    }

    #[test]
    fn a_name_with_glob_characters_still_matches_itself_exactly() {
        let p = protect(&["Team [EU]"]);
        assert_eq!(p.matching(None, Some("Team [EU]")), Some("Team [EU]"));
    }

    #[test]
    fn reports_the_bad_pattern() {
        let err = Protect::new(vec!["ok".into(), "[unclosed".into()]).unwrap_err();
        assert_eq!(err.index, 1);
    }
}
