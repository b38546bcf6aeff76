//! Reading a JSON snapshot file one value at a time, so that the file is never held whole
//! next to the groups built from it: a small scanner walks the top-level object and its
//! `accounts`, finding only where each value ends (JSON's strings, escapes and nesting), and
//! each value's text (an account's groups: a few hundred kilobytes) is handed to serde_json
//! on its own, which checks and builds it exactly as in a whole-text parse.
//!
//! The scanner checks the structure between the values (braces, colons, commas, keys) and
//! gives up on anything it does not expect: an escape in a key, a key twice, a value that
//! does not parse, text after the document, bytes that are not UTF-8. Giving up is not an
//! error: the caller then parses the whole text, which accepts exactly what JSON accepts and
//! names any mistake with its line and column.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::de::IgnoredAny;

use super::document::{Document, Keep};
use super::snapshot::{SNAPSHOT_FORMAT_VERSION, SnapshotAccount};
use crate::model::AccountId;

/// How much of the file is read at a time.
const READ_BUFFER: usize = 256 * 1024;

/// The document in `path`, or `None` when the scanner gave up (see the module
/// documentation); an error only when the file cannot be read.
pub(crate) fn load(path: &Path, keep: Keep<'_>) -> std::io::Result<Option<Document>> {
    let file = File::open(path)?;
    let mut scanner = Scanner {
        reader: BufReader::with_capacity(READ_BUFFER, file),
        value: Vec::new(),
    };
    match scanner.document(keep) {
        Ok(document) => Ok(document),
        Err(Stop::Io(error)) => Err(error),
        Err(Stop::GiveUp) => Ok(None),
    }
}

/// Why the scan stopped early.
enum Stop {
    Io(std::io::Error),
    GiveUp,
}

impl From<std::io::Error> for Stop {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

type Step<T> = Result<T, Stop>;

fn give_up<T>() -> Step<T> {
    Err(Stop::GiveUp)
}

/// serde_json's reading of one value's text; a value it refuses ends the scan.
fn parsed<'a, T: serde::Deserialize<'a>>(text: &'a [u8]) -> Step<T> {
    if std::str::from_utf8(text).is_err() {
        return give_up();
    }
    serde_json::from_slice(text).map_err(|_| Stop::GiveUp)
}

struct Scanner<R> {
    reader: R,
    /// The text of the value being read; reused from one value to the next.
    value: Vec<u8>,
}

fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

impl<R: BufRead> Scanner<R> {
    fn document(&mut self, keep: Keep<'_>) -> Step<Option<Document>> {
        self.expect(b'{')?;
        let mut document = Document::default();
        if self.peek_after_whitespace()? == Some(b'}') {
            self.reader.consume(1);
        } else {
            loop {
                let key = self.key()?;
                match key.as_str() {
                    "format_version" if document.format_version.is_none() => {
                        self.read_value()?;
                        let version = parsed(&self.value)?;
                        document.format_version = Some(version);
                        if version != SNAPSHOT_FORMAT_VERSION {
                            // Refused as such by the caller; the rest may differ anywhere.
                            return Ok(Some(document));
                        }
                    }
                    "accounts" if document.accounts.is_none() => {
                        document.accounts = Some(self.accounts(keep)?);
                    }
                    "groups" if document.groups.is_none() => {
                        self.read_value()?;
                        document.groups = Some(parsed(&self.value)?);
                    }
                    "format_version" | "accounts" | "groups" => return give_up(),
                    _ => {
                        self.read_value()?;
                        parsed::<IgnoredAny>(&self.value)?;
                    }
                }
                if !self.more(b'}')? {
                    break;
                }
            }
        }
        match self.peek_after_whitespace()? {
            None => Ok(Some(document)),
            Some(_) => give_up(),
        }
    }

    /// The `accounts` object: every key an account id, the kept accounts built, the others
    /// checked and dropped.
    fn accounts(&mut self, keep: Keep<'_>) -> Step<BTreeMap<AccountId, SnapshotAccount>> {
        self.expect(b'{')?;
        let mut accounts = BTreeMap::new();
        if self.peek_after_whitespace()? == Some(b'}') {
            self.reader.consume(1);
            return Ok(accounts);
        }
        loop {
            let account: AccountId = match self.key()?.parse() {
                Ok(account) => account,
                Err(_) => return give_up(),
            };
            self.read_value()?;
            if keep.keeps(&account) {
                let entry: SnapshotAccount = parsed(&self.value)?;
                if accounts.insert(account, entry).is_some() {
                    return give_up();
                }
            } else {
                parsed::<IgnoredAny>(&self.value)?;
            }
            if !self.more(b'}')? {
                return Ok(accounts);
            }
        }
    }

    /// The next byte that is not whitespace, left unread.
    fn peek_after_whitespace(&mut self) -> Step<Option<u8>> {
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                return Ok(None);
            }
            match buffer.iter().position(|b| !is_whitespace(*b)) {
                Some(at) => {
                    let byte = buffer[at];
                    self.reader.consume(at);
                    return Ok(Some(byte));
                }
                None => {
                    let len = buffer.len();
                    self.reader.consume(len);
                }
            }
        }
    }

    fn expect(&mut self, byte: u8) -> Step<()> {
        if self.peek_after_whitespace()? != Some(byte) {
            return give_up();
        }
        self.reader.consume(1);
        Ok(())
    }

    /// After a member: `true` on a comma (another member follows), `false` on `close`.
    fn more(&mut self, close: u8) -> Step<bool> {
        match self.peek_after_whitespace()? {
            Some(b',') => {
                self.reader.consume(1);
                Ok(true)
            }
            Some(byte) if byte == close => {
                self.reader.consume(1);
                Ok(false)
            }
            _ => give_up(),
        }
    }

    /// A member's key and its colon. A key with an escape is left to the whole-text parse.
    fn key(&mut self) -> Step<String> {
        if self.peek_after_whitespace()? != Some(b'"') {
            return give_up();
        }
        self.value.clear();
        self.string()?;
        if self.value.contains(&b'\\') {
            return give_up();
        }
        let key: String = parsed(&self.value)?;
        self.expect(b':')?;
        Ok(key)
    }

    /// Reads one whole value's text into `self.value`.
    fn read_value(&mut self) -> Step<()> {
        self.value.clear();
        match self.peek_after_whitespace()? {
            Some(b'"') => self.string(),
            Some(b'{' | b'[') => self.container(),
            Some(_) => self.scalar(),
            None => give_up(),
        }
    }

    /// A string, from its opening quote (unread) to its closing one, escapes and all.
    fn string(&mut self) -> Step<()> {
        self.take(1)?;
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                return give_up();
            }
            match memchr::memchr2(b'"', b'\\', buffer) {
                None => {
                    let len = buffer.len();
                    self.value.extend_from_slice(buffer);
                    self.reader.consume(len);
                }
                Some(at) if buffer[at] == b'"' => {
                    self.value.extend_from_slice(&buffer[..=at]);
                    self.reader.consume(at + 1);
                    return Ok(());
                }
                Some(at) => {
                    // A backslash and the byte it escapes, which may be in the next buffer.
                    self.value.extend_from_slice(&buffer[..=at]);
                    self.reader.consume(at + 1);
                    self.take(1)?;
                }
            }
        }
    }

    /// An object or array, to its matching close, strings inside read as strings.
    fn container(&mut self) -> Step<()> {
        let mut depth = 0usize;
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                return give_up();
            }
            let mut end = None;
            for (at, byte) in buffer.iter().enumerate() {
                match byte {
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            end = Some((at + 1, true));
                            break;
                        }
                    }
                    b'"' => {
                        end = Some((at, false));
                        break;
                    }
                    _ => {}
                }
            }
            match end {
                Some((len, closed)) => {
                    self.value.extend_from_slice(&buffer[..len]);
                    self.reader.consume(len);
                    if closed {
                        return Ok(());
                    }
                    self.string()?;
                }
                None => {
                    let len = buffer.len();
                    self.value.extend_from_slice(buffer);
                    self.reader.consume(len);
                }
            }
        }
    }

    /// A number or literal: up to the next delimiter or whitespace.
    fn scalar(&mut self) -> Step<()> {
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                return Ok(());
            }
            match buffer
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']') || is_whitespace(*b))
            {
                Some(at) => {
                    self.value.extend_from_slice(&buffer[..at]);
                    self.reader.consume(at);
                    return Ok(());
                }
                None => {
                    let len = buffer.len();
                    self.value.extend_from_slice(buffer);
                    self.reader.consume(len);
                }
            }
        }
    }

    /// Moves `count` bytes from the reader to the value.
    fn take(&mut self, count: usize) -> Step<()> {
        for _ in 0..count {
            let buffer = self.reader.fill_buf()?;
            let Some(byte) = buffer.first().copied() else {
                return give_up();
            };
            self.value.push(byte);
            self.reader.consume(1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";
    const OTHER: &str = "123e105f4ecef8ad9ca31a8372d0c353";
    const GROUP: &str = "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a";

    /// Scans `text` with a tiny buffer, so that values and escapes straddle reads.
    fn scan(text: &str, keep: Keep<'_>) -> Option<Document> {
        let mut scanner = Scanner {
            reader: BufReader::with_capacity(3, text.as_bytes()),
            value: Vec::new(),
        };
        match scanner.document(keep) {
            Ok(document) => document,
            Err(Stop::GiveUp) => None,
            Err(Stop::Io(error)) => panic!("{error}"),
        }
    }

    fn snapshot() -> String {
        format!(
            r#" {{ "exported_at" : "x\"}}{{" , "format_version":1, "accounts":{{
                "{OTHER}": {{"groups": []}},
                "{ACCOUNT}" : {{"groups":[{{"id":"{GROUP}","name":"Ops \"q\" \\ }}]","new":[1,{{"a":"]"}}],
                  "policies":[{{"access":"allow","n":1e400,"s":"\u00e9\\\"[{{"}}]}}]}} }},
              "trailing_unknown": [true, null, -1.5e-3] }}
"#
        )
    }

    #[test]
    fn a_snapshot_scans_as_the_whole_text_parses() {
        let text = snapshot();
        let whole = super::super::document::parse(&text, "s", Keep::All).unwrap();
        let scanned = scan(&text, Keep::All).expect("scanned");
        assert_eq!(scanned.format_version, whole.format_version);
        assert_eq!(scanned.accounts, whole.accounts);
        let account: AccountId = ACCOUNT.parse().unwrap();
        let group = &scanned.accounts.as_ref().unwrap()[&account].groups[0];
        assert_eq!(group.name, r#"Ops "q" \ }]"#);
        assert_eq!(
            group.policies.as_deref().map(|p| p.get()),
            Some(r#"[{"access":"allow","n":1e400,"s":"\u00e9\\\"[{"}]"#)
        );
        let only = scan(&text, Keep::Only(&account)).expect("scanned");
        assert_eq!(only.accounts.as_ref().map(BTreeMap::len), Some(1));
        let groups = scan(r#"{"groups":[]}"#, Keep::All).expect("scanned");
        assert_eq!(groups.groups.map(|g| g.len()), Some(0));
        assert!(scan("{}", Keep::All).is_some());
        let other_version = scan(r#"{"format_version":2,"accounts":"changed"}"#, Keep::All);
        assert_eq!(other_version.and_then(|d| d.format_version), Some(2));
    }

    #[test]
    fn anything_unexpected_is_left_to_the_whole_text_parse() {
        let good = snapshot();
        for bad in [
            good.replace("\"format_version\":1", "\"format_version\":1x"),
            good.replace("true", "tru"),
            good.replace(OTHER, "nope"),
            good.replace("\"groups\": []", "\"groups\": [}"),
            format!("{good} {{}}"),
            good.replace("\"exported_at\"", "\"exported\\u005fat\""),
            good.replace("\"trailing_unknown\"", "\"accounts\""),
            format!(
                "{{\"accounts\":{{\"{ACCOUNT}\":{{\"groups\":[]}},\"{ACCOUNT}\":{{\"groups\":[]}}}}}}"
            ),
            good[..good.len() / 2].to_owned(),
            "[]".to_owned(),
            String::new(),
        ] {
            assert!(scan(&bad, Keep::All).is_none(), "{bad}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_left_to_the_whole_text_parse() {
        let mut bytes = br#"{"accounts":{},"x":"#.to_vec();
        bytes.extend_from_slice(b"\"\xff\"}");
        let mut scanner = Scanner {
            reader: BufReader::new(bytes.as_slice()),
            value: Vec::new(),
        };
        assert!(matches!(scanner.document(Keep::All), Err(Stop::GiveUp)));
    }
}
