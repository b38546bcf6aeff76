//! The [`ReloadGate`]: whether a freshly loaded config differs from the last one accepted,
//! by content hash, so that events which did not change the content cost no reconcile.

use crate::config::DesiredState;

/// Whether a freshly loaded config differs from the last one accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The content differs (or nothing was accepted yet): use the new state.
    Changed,
    /// Same content as the last accepted state: nothing to do.
    Unchanged,
}

/// Remembers the content hash of the last good config, so that events which did not change
/// the content (a `touch`, a save without edits, an unrelated file in the directory, a
/// ConfigMap resync) cost no reconcile.
///
/// Only successfully loaded states pass through the gate: a failed load leaves it holding the
/// last good hash, so a later fix back to that same content is `Unchanged` (correctly: the
/// daemon has been enforcing exactly that state all along).
#[derive(Debug, Clone, Default)]
pub struct ReloadGate {
    last: Option<String>,
}

impl ReloadGate {
    /// A gate that has accepted nothing yet: the first state is always `Changed`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compares `state` with the last accepted one and, when it differs, accepts it.
    pub fn observe(&mut self, state: &DesiredState) -> Reload {
        self.observe_hash(&state.content_hash)
    }

    /// [`observe`](Self::observe) for a bare content hash.
    pub fn observe_hash(&mut self, hash: &str) -> Reload {
        if self.last.as_deref() == Some(hash) {
            Reload::Unchanged
        } else {
            self.last = Some(hash.to_owned());
            Reload::Changed
        }
    }

    /// The content hash of the last accepted state.
    pub fn last_hash(&self) -> Option<&str> {
        self.last.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_gate_accepts_only_new_content() {
        let mut gate = ReloadGate::new();
        assert_eq!(gate.last_hash(), None);
        assert_eq!(gate.observe_hash("a"), Reload::Changed);
        assert_eq!(gate.observe_hash("a"), Reload::Unchanged);
        assert_eq!(gate.observe_hash("b"), Reload::Changed);
        assert_eq!(gate.observe_hash("a"), Reload::Changed);
        assert_eq!(gate.last_hash(), Some("a"));
    }
}
