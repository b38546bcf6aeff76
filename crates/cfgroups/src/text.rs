//! Text fields read strictly: a value YAML reads as a number, a boolean or null is not text,
//! whichever way a file is read (straight into the schema, or staged through YAML values).
//!
//! The YAML reader hands a plain scalar such as `123` to a `String` field as the text it was
//! written as, but the same scalar staged through a YAML value is a number. Reading every
//! text field through [`Text`] makes both ways refuse it alike, with the parser's own
//! "invalid type: integer ..., expected a string", which the config loader turns into
//! "quote it".

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, Visitor};

/// One text value, refused unless the document holds it as a string.
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor).map(Text)
    }
}

struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = String;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_str<E: Error>(self, value: &str) -> Result<String, E> {
        Ok(value.to_owned())
    }

    fn visit_string<E: Error>(self, value: String) -> Result<String, E> {
        Ok(value)
    }
}

/// For `#[serde(deserialize_with)]` on a `String` field.
pub fn one<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Text::deserialize(deserializer).map(|text| text.0)
}

/// For `#[serde(deserialize_with)]` on an `Option<String>` field (with `default`).
pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Option::<Text>::deserialize(deserializer).map(|text| text.map(|text| text.0))
}

/// For `#[serde(deserialize_with)]` on an `Option<PathBuf>` field (with `default`).
pub fn optional_path<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<std::path::PathBuf>, D::Error> {
    optional(deserializer).map(|text| text.map(std::path::PathBuf::from))
}

/// For `#[serde(deserialize_with)]` on a `Vec<String>` field.
pub fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Vec::<Text>::deserialize(deserializer).map(|texts| texts.into_iter().map(|t| t.0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Entry {
        #[serde(deserialize_with = "one")]
        name: String,
        #[serde(default, deserialize_with = "optional")]
        label: Option<String>,
        #[serde(default, deserialize_with = "list")]
        protect: Vec<String>,
    }

    fn both_ways(yaml: &str) -> [Result<Entry, String>; 2] {
        let direct = serde_yaml::from_str::<Entry>(yaml).map_err(|e| e.to_string());
        let staged = serde_yaml::from_str::<serde_yaml::Value>(yaml)
            .map_err(|e| e.to_string())
            .and_then(|value| serde_yaml::from_value::<Entry>(value).map_err(|e| e.to_string()));
        [direct, staged]
    }

    #[test]
    fn a_number_a_boolean_or_null_is_refused_as_text_both_ways() {
        for yaml in [
            "name: 123",
            "name: 1e5",
            "name: true",
            "name: ~",
            "{name: a, label: 0x1F}",
            "{name: a, protect: [Ops, 42]}",
        ] {
            for read in both_ways(yaml) {
                let error = read.expect_err(yaml);
                assert!(error.contains("expected a string"), "{yaml}: {error}");
            }
        }
    }

    #[test]
    fn quoted_and_plain_words_are_text_both_ways() {
        for read in both_ways("{name: \"123\", label: Production team, protect: [Ops, '7']}") {
            let entry = read.expect("reads");
            assert_eq!(entry.name, "123");
            assert_eq!(entry.label.as_deref(), Some("Production team"));
            assert_eq!(entry.protect, ["Ops", "7"]);
        }
        for read in both_ways("{name: a, label: ~}") {
            assert_eq!(read.expect("reads").label, None);
        }
    }
}
