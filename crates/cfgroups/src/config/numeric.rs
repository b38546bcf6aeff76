//! Values YAML reads as numbers where the desired state wants text: an id of 32 digits
//! (`id: 12345678901234567890123456789012`), a name or a protect pattern of digits, all
//! unquoted. The parser's own words for it ("invalid type: integer `...` as u128, expected
//! any YAML value") say nothing of the fix; these say "quote it", at the value's position,
//! with the value as it was written (leading zeros included, which YAML drops).

use super::locate::{Locator, Position};

/// Fields whose values are numbers: a number there is no quoting mistake.
const NUMERIC_FIELDS: [&str; 2] = ["version", "max_deletes"];

/// Whether `text`, written unquoted, is a number to the YAML reader: an integer (decimal,
/// `0x`, `0o`, `0b`, optionally signed; digits after a leading zero are text, as YAML 1.2
/// says) or a finite float (`1.5`, `1e9`, `.5`) or `.inf`/`.nan`.
pub(super) fn reads_as_number(text: &str) -> bool {
    integer(text).is_some() || reads_as_float(text)
}

/// Whether `text` is an integer too large for 64 bits: the reader takes it, but no YAML
/// value can hold it, so the whole file fails to load.
fn beyond_64_bits(text: &str) -> bool {
    match integer(text) {
        Some((false, magnitude)) => magnitude > u128::from(u64::MAX),
        Some((true, magnitude)) => magnitude > 1u128 << 63,
        None => false,
    }
}

/// The integer `text` reads as: its sign (`true` for negative) and magnitude.
fn integer(text: &str) -> Option<(bool, u128)> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (radix, digits) = if let Some(rest) = unsigned.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = unsigned.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = unsigned.strip_prefix("0b") {
        (2, rest)
    } else if leading_zero_digits(unsigned) {
        return None;
    } else {
        (10, unsigned)
    };
    if digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    (!negative || magnitude <= 1u128 << 127).then_some((negative, magnitude))
}

fn reads_as_float(text: &str) -> bool {
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    if unsigned.starts_with(['+', '-']) && text.starts_with('+') {
        return false;
    }
    let bare = unsigned.strip_prefix('-').unwrap_or(unsigned);
    if matches!(bare, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    !leading_zero_digits(unsigned) && unsigned.parse::<f64>().is_ok_and(f64::is_finite)
}

/// `0123`: a leading zero followed by digits only, which YAML 1.2 reads as text.
fn leading_zero_digits(text: &str) -> bool {
    let text = text.strip_prefix(['-', '+']).unwrap_or(text);
    text.len() > 1 && text.starts_with('0') && text[1..].bytes().all(|b| b.is_ascii_digit())
}

/// The "quote it" message for the unquoted `written` at `field`.
pub(super) fn quote_it(field: &str, written: &str) -> String {
    let what = if field.ends_with(".id") || field == "id" {
        "an id"
    } else {
        "this value"
    };
    format!(
        "YAML reads the unquoted {written} as a number, but {what} is text: quote it, as in \
         \"{written}\""
    )
}

/// Whether a typed-deserialization message says a number came where text was expected.
pub(super) fn is_number_for_text(message: &str) -> bool {
    (message.starts_with("invalid type: integer")
        || message.starts_with("invalid type: floating point"))
        && message.contains("expected a string")
}

/// The unquoted numbers in text fields of a document YAML could not even load (an integer
/// beyond 64 bits cannot be held), each with its field and position.
pub(super) fn unloadable_numbers(locator: &Locator) -> Vec<(String, String, Position)> {
    let mut found: Vec<(String, String, Position)> = locator
        .plain_scalars()
        .filter(|(path, text, _)| {
            let key = path.rsplit('.').next().unwrap_or(path);
            !NUMERIC_FIELDS.contains(&key) && beyond_64_bits(text)
        })
        .map(|(path, text, position)| (path.to_owned(), text.to_owned(), position))
        .collect();
    found.sort_by_key(|(_, _, position)| (position.line, position.column));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_yaml_reads_them() {
        for number in [
            "0",
            "12345678901234567890123456789012",
            "-12",
            "+1",
            "1.5",
            ".5",
            "1.",
            "1e9",
            "1E-3",
            "0x1F",
            "0o17",
            "0b101",
            ".inf",
            "-.Inf",
            ".NaN",
        ] {
            assert!(reads_as_number(number), "{number}");
        }
        for text in [
            "023e105f4ecef8ad9ca31a8372d0c353",
            "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a",
            // A leading zero makes digits text.
            "0123",
            "02345678901234567890123456789012",
            // Beyond f64: text, not infinity.
            "12345678901234567890123e45678901",
            "1_000",
            "",
            ".",
            "e5",
            "1e",
            "0x",
            "0o8",
            "1.2.3",
            "++1",
            "Engineering",
            "12 Monkeys",
        ] {
            assert!(!reads_as_number(text), "{text}");
        }
        assert!(beyond_64_bits("18446744073709551616"));
        assert!(!beyond_64_bits("18446744073709551615"));
        assert!(beyond_64_bits("-9223372036854775809"));
        assert!(!beyond_64_bits("-9223372036854775808"));
    }

    #[test]
    fn only_numbers_beyond_64_bits_in_text_fields_are_unloadable() {
        let locator = Locator::new(
            "version: 1\naccounts:\n  - id: 12345678901234567890123456789012\n    \
             max_deletes: 99999999999999999999999\n    groups:\n      - id: 1234\n        \
             name: \"12345678901234567890123456789012\"\n",
        );
        let found = unloadable_numbers(&locator);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "accounts[0].id");
        assert_eq!((found[0].2.line, found[0].2.column), (3, 9));
    }

    #[test]
    fn the_message_says_quote_it_with_the_value_as_written() {
        let message = quote_it("accounts[0].groups[1].id", "0123");
        assert!(message.contains("an id is text: quote it"), "{message}");
        assert!(message.contains("\"0123\""), "{message}");
        assert!(is_number_for_text(
            "invalid type: integer `1234`, expected a string"
        ));
        assert!(!is_number_for_text(
            "invalid type: integer `1`, expected struct X"
        ));
    }
}
