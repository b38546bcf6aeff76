//! The design's deletion rules restated from scratch (../shared/design.md: safety rules 1,
//! 2, 4 and 5, and "with an id, the name must match too"), as the judge of the planner's
//! property tests and fuzz targets. It shares no code with the planner — its `protect`
//! matcher is its own — so a planner that breaks a rule cannot also bend the check.

use cfgroups::config::{DesiredGroup, UnmanagedPolicy};
use cfgroups::model::{GroupState, ObservedGroup};

/// One account as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct World<'a> {
    pub declared: &'a [DesiredGroup],
    pub live: &'a [ObservedGroup],
    pub unmanaged: UnmanagedPolicy,
    /// The `protect` patterns as written.
    pub protect: &'a [String],
    /// Whether the account's listing succeeded.
    pub listed: bool,
    /// Whether the account is suspended (`suspend: true`, or the daemon's suspend file).
    pub suspended: bool,
}

/// Why the rules forbid deleting `group`, or `None` when they allow it. `None` is also
/// the answer the caller gets when a `protect` pattern uses glob syntax this judge does not
/// restate (see [`protected`]): check [`judgeable`] first.
pub fn forbidden(world: &World<'_>, group: &ObservedGroup) -> Option<&'static str> {
    if !world.listed {
        return Some("the listing failed (rule 1)");
    }
    if world.suspended {
        return Some("the account is suspended");
    }
    if protected(world.protect, group) == Some(true) {
        return Some("protected (rule 4)");
    }
    // Every declaration that speaks of this group, by its id or by its name.
    let mentions: Vec<&DesiredGroup> = world
        .declared
        .iter()
        .filter(|d| d.id.as_ref() == Some(&group.id) || d.name.as_ref() == Some(&group.name))
        .collect();
    if mentions.is_empty() {
        return (world.unmanaged != UnmanagedPolicy::Delete)
            .then_some("not declared, and the account does not prune (rule 2)");
    }
    if mentions.iter().any(|d| d.state == GroupState::Present) {
        return Some("a declaration says present");
    }
    // "With an id, the name must match too, or the delete is blocked."
    let mismatch = mentions.iter().any(|d| {
        d.id.as_ref() == Some(&group.id) && d.name.as_ref().is_some_and(|n| *n != group.name)
    });
    if mismatch {
        return Some("declared by id under another name");
    }
    let namesakes = world.live.iter().filter(|g| g.name == group.name).count();
    let exact = mentions.iter().any(|d| match (&d.id, &d.name) {
        (Some(id), _) => *id == group.id,
        (None, Some(_)) => namesakes == 1,
        (None, None) => false,
    });
    (!exact).then_some("no declaration names it unambiguously (rule 4)")
}

/// Whether every `protect` pattern is one [`protected`] can judge.
pub fn judgeable(protect: &[String]) -> bool {
    protect
        .iter()
        .all(|p| !p.contains(['[', ']', '{', '}', '\\']))
}

/// Whether a pattern protects `group`: equal to its name or id, or a glob (`*` any run of
/// characters, `?` one character) matching either. `None` for glob syntax beyond those.
pub fn protected(protect: &[String], group: &ObservedGroup) -> Option<bool> {
    if !judgeable(protect) {
        return None;
    }
    Some(protect.iter().any(|pattern| {
        [group.name.as_str(), group.id.as_str()]
            .iter()
            .any(|candidate| wildcard(pattern, candidate))
    }))
}

/// `*` and `?` matching, the plain recursive way.
fn wildcard(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    fn at(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|skip| at(rest, &t[skip..])),
            Some(('?', rest)) => !t.is_empty() && at(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && at(rest, &t[1..]),
        }
    }
    at(&pattern, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_globs_do() {
        assert!(wildcard("SCIM-*", "SCIM-Okta"));
        assert!(wildcard("SCIM-*", "SCIM-"));
        assert!(!wildcard("SCIM-*", "scim-okta"));
        assert!(wildcard("*admin*", "the admins"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
        assert!(wildcard("exact", "exact"));
        assert!(!wildcard("exact", "exactly"));
        assert!(!judgeable(&["[ab]".to_owned()]));
    }
}
