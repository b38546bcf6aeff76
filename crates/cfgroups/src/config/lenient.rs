//! Repairs that let loading read on past an error: serde stops a struct at its first bad
//! key, so after each error the offending key is dropped from the raw YAML value (a list
//! item blanked, so later indices stay true) and the rest is read again. A required key
//! dropped this way comes back as a neutral placeholder, so that its absence is not
//! reported as a second error. The repaired value is only ever used to find more errors:
//! a file with any error never becomes a desired state.

use serde_path_to_error::{Path, Segment};
use serde_yaml::Value;

/// One step into a YAML value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// The steps of a deserializer's error path.
pub fn steps(path: &Path) -> Vec<Step> {
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Map { key } => Some(Step::Key(key.clone())),
            _ => None,
        })
        .collect()
}

/// Drops what `at` names from `value`: a mapping key is removed, a list item is blanked
/// (an empty string, so the items after it keep their indices). `false` when there is
/// nothing there to drop.
pub fn drop_at(value: &mut Value, at: &[Step]) -> bool {
    let Some((last, parents)) = at.split_last() else {
        return false;
    };
    let Some(parent) = walk(value, parents) else {
        return false;
    };
    match (last, parent) {
        (Step::Key(key), Value::Mapping(map)) => map.remove(key.as_str()).is_some(),
        (Step::Index(index), Value::Sequence(items)) => match items.get_mut(*index) {
            Some(item) => {
                *item = Value::String(String::new());
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Puts `placeholder` under `key` in the mapping at `at`.
pub fn put(value: &mut Value, at: &[Step], key: &str, placeholder: Value) -> bool {
    match walk(value, at) {
        Some(Value::Mapping(map)) => {
            map.insert(Value::String(key.to_owned()), placeholder);
            true
        }
        _ => false,
    }
}

/// A value that reads as valid for a required key of the desired-state schema, for a key
/// dropped after its own error was reported.
pub fn placeholder(key: &str) -> Option<Value> {
    match key {
        "version" => Some(Value::Number(1.into())),
        "id" => Some(Value::String("0".repeat(32))),
        "state" => Some(Value::String("present".to_owned())),
        "accounts" => Some(Value::Sequence(Vec::new())),
        _ => None,
    }
}

fn walk<'v>(value: &'v mut Value, at: &[Step]) -> Option<&'v mut Value> {
    at.iter().try_fold(value, |node, step| match (step, node) {
        (Step::Key(key), Value::Mapping(map)) => map.get_mut(key.as_str()),
        (Step::Index(index), Value::Sequence(items)) => items.get_mut(*index),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_dropped_and_items_blanked_in_place() {
        let mut value: Value = serde_yaml::from_str("a: {b: 1, c: 2}\nlist: [x, 7, z]\n").unwrap();
        assert!(drop_at(
            &mut value,
            &[Step::Key("a".into()), Step::Key("b".into())]
        ));
        assert!(drop_at(
            &mut value,
            &[Step::Key("list".into()), Step::Index(1)]
        ));
        assert!(!drop_at(&mut value, &[Step::Key("nope".into())]));
        assert!(!drop_at(&mut value, &[]));
        let expected: Value = serde_yaml::from_str("a: {c: 2}\nlist: [x, '', z]\n").unwrap();
        assert_eq!(value, expected);
        assert!(put(
            &mut value,
            &[Step::Key("a".into())],
            "id",
            placeholder("id").unwrap()
        ));
        assert_eq!(value["a"]["id"], Value::String("0".repeat(32)));
    }
}
