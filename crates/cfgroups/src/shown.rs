//! How text from outside (group names, labels, server messages) is shown to people: quoted
//! and escaped, so that no name can forge a report line or drive a terminal, and keyed so
//! that names which only look alike can be told apart and warned about.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// A name as people see it: in double quotes, with control, invisible (zero-width, bidi),
/// combining and other unprintable characters escaped as `\u{200b}`, the way Rust's debug
/// format writes strings. A trailing space shows inside the quotes; a decomposed accent
/// shows as its code point.
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Free text from outside (an error message from a server or a command), unquoted, with
/// control and invisible characters escaped, so it stays on one line and carries no
/// terminal escape sequence.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if is_unprintable(c) {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// Whether `c` is one a person cannot see for what it is: a control or format character,
/// a separator other than the plain space, a combining mark, or an unassigned code point.
/// Rust's debug format escapes exactly these (besides quotes and backslashes).
fn is_unprintable(c: char) -> bool {
    !matches!(c, '"' | '\'' | '\\' | ' ') && c.escape_debug().next() == Some('\\')
}

/// The key under which names that look the same to a person are equal: compatibility forms
/// folded (NFKC), lookalike letters of other scripts mapped to one prototype (Unicode's
/// confusable skeleton, UTS #39), invisible characters dropped, and surrounding whitespace
/// trimmed. Two different names with one key are a trap: a declaration names one of them,
/// and the person reading the plan believes it names the other.
pub fn lookalike_key(name: &str) -> String {
    // ASCII is its own NFKC form and holds no invisible character: only the skeleton applies.
    if name.is_ascii() {
        return unicode_security::skeleton(name.trim()).collect();
    }
    let folded: String = name.nfkc().filter(|c| !is_invisible(*c)).collect();
    unicode_security::skeleton(folded.trim()).collect()
}

/// Characters that take no room on screen: format characters such as zero-width spaces and
/// joiners, bidi controls and the byte-order mark.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// How two names with the same [`lookalike_key`] differ, for a person: which characters are
/// not what they seem.
pub fn difference(declared: &str, live: &str) -> String {
    let mut parts = Vec::new();
    if declared.trim() != declared || live.trim() != live {
        parts.push("leading or trailing spaces".to_owned());
    }
    let odd: Vec<String> = live
        .chars()
        .chain(declared.chars())
        .filter(|c| !c.is_ascii() && !is_latin_letter(*c))
        .map(|c| format!("U+{:04X}", u32::from(c)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if declared.nfc().eq(live.nfc()) {
        parts.push("Unicode normalization (composed vs decomposed accents)".to_owned());
    } else if !odd.is_empty() {
        parts.push(format!(
            "invisible or lookalike characters {}",
            odd.join(", ")
        ));
    }
    if parts.is_empty() {
        parts.push("compatibility forms of the same characters".to_owned());
    }
    parts.join("; ")
}

/// Latin letters with accents are ordinary in names; only other characters are called out.
fn is_latin_letter(c: char) -> bool {
    c.is_alphabetic() && matches!(u32::from(c), 0x00C0..=0x024F | 0x1E00..=0x1EFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_forge_lines_or_drive_the_terminal() {
        let hostile = "Ops\n  - delete  Admins\r\u{1b}[2K\u{1b}[1A\u{202e}sgnirts\u{200b}";
        let shown = Quoted(hostile).to_string();
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
        assert!(shown.contains("\\n") && shown.contains("\\u{1b}") && shown.contains("\\u{202e}"));
        assert!(shown.starts_with('"') && shown.ends_with('"'));
        let escaped = Escaped(hostile).to_string();
        assert!(
            !escaped.chars().any(|c| c.is_control() || is_invisible(c)),
            "{escaped}"
        );
        assert!(escaped.contains("\\u{1b}") && escaped.contains("\\u{200b}"));
        assert_eq!(
            Escaped("plain text: HTTP 403").to_string(),
            "plain text: HTTP 403"
        );
    }

    #[test]
    fn names_that_look_alike_share_a_key_and_show_differently() {
        let plain = "Contractors";
        for lookalike in [
            "Contractors ",
            " Contractors",
            "Contr\u{0430}ctors",
            "Con\u{200b}tractors",
            "Contractor\u{FEFF}s",
        ] {
            assert_eq!(
                lookalike_key(lookalike),
                lookalike_key(plain),
                "{lookalike:?}"
            );
            assert_ne!(Quoted(lookalike).to_string(), Quoted(plain).to_string());
        }
        let (composed, decomposed) = ("Caf\u{e9}", "Cafe\u{301}");
        assert_eq!(lookalike_key(composed), lookalike_key(decomposed));
        assert_ne!(Quoted(composed).to_string(), Quoted(decomposed).to_string());
        assert_ne!(lookalike_key("Contractors"), lookalike_key("Contractor"));
        assert!(difference(plain, "Contr\u{0430}ctors").contains("U+0430"));
        assert!(difference(plain, "Contractors ").contains("trailing"));
        assert!(difference(composed, decomposed).contains("normalization"));
    }
}
