//! Cloudflare identifiers as the fake checks them: [`Id`], exactly 32 lowercase hexadecimal
//! characters, for accounts, user groups and members, and the generator of fresh ones.
//!
//! The API declares ids as 32 characters without a pattern; every example is lowercase hex,
//! and the fake holds every id it routes or loads to that shape.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a string was refused as an [`Id`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("id {value:?} is not 32 lowercase hexadecimal characters")]
pub struct InvalidId {
    value: String,
}

/// A Cloudflare id: exactly 32 lowercase hexadecimal characters. Serialized as a string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Id(String);

/// Whether `value` has the shape of an [`Id`].
pub(crate) fn is_id(value: &str) -> bool {
    value.len() == 32
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Id {
    /// The id as it appears in a path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }

    /// A fresh random id drawn from `rng`.
    pub(crate) fn random(rng: &mut fastrand::Rng) -> Self {
        Self(format!("{:016x}{:016x}", rng.u64(..), rng.u64(..)))
    }
}

impl TryFrom<String> for Id {
    type Error = InvalidId;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if is_id(&value) {
            Ok(Self(value))
        } else {
            Err(InvalidId { value })
        }
    }
}

impl FromStr for Id {
    type Err = InvalidId;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::try_from(value.to_owned())
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Id> for String {
    fn from(id: Id) -> Self {
        id.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_32_lowercase_hex_characters_parse() {
        let id: Id = "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap();
        assert_eq!(id.to_string(), "023e105f4ecef8ad9ca31a8372d0c353");
        assert_eq!(id.as_ref(), id.as_str());
        for bad in [
            "",
            "023e105f4ecef8ad9ca31a8372d0c35",
            "023e105f4ecef8ad9ca31a8372d0c3533",
            "023E105F4ECEF8AD9CA31A8372D0C353",
            "023e105f4ecef8ad9ca31a8372d0c35g",
            "023e105f4ecef8ad9ca31a8372d0c35\u{e9}",
        ] {
            let error = bad.parse::<Id>().unwrap_err();
            assert!(error.to_string().contains("not 32 lowercase"), "{error}");
        }
    }

    #[test]
    fn serde_is_a_string_and_validates() {
        let id: Id = serde_json::from_str("\"3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a\"").unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a\""
        );
        assert!(serde_json::from_str::<Id>("\"abc\"").is_err());
    }

    #[test]
    fn random_ids_are_ids() {
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..100 {
            assert!(is_id(Id::random(&mut rng).as_str()));
        }
    }
}
