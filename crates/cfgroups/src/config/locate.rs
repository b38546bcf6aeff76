//! Finds where a field path (`accounts[0].groups[2].id`) stands in YAML text, so that errors
//! found after parsing can still name a line and column, and what an unquoted value there
//! was written as (YAML's reading of it may differ: `id: 0123` is a number). Built only when
//! there is an error to report: the happy path never pays for it.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};

use crate::yaml_guard::MAX_FLOW_DEPTH;

/// Deepest nesting indexed: the YAML reader refuses anything deeper, so no error can point
/// there.
const MAX_DEPTH: usize = MAX_FLOW_DEPTH;
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Every mapping key and sequence item of a YAML document, by field path.
#[derive(Debug, Default)]
pub struct Locator {
    positions: HashMap<String, Position>,
    /// Unquoted scalar values as written, by field path.
    plain: HashMap<String, (String, Position)>,
}

impl Locator {
    /// Indexes the first document of `text`. Text that does not parse, or nests deeper than
    /// the YAML reader accepts, yields an empty index: callers then report errors without a
    /// position rather than not at all. The events are pulled one at a time (the parser's
    /// own `load` recurses once per level, and hostile nesting would overflow the stack).
    pub fn new(text: &str) -> Self {
        let mut indexer = Indexer::default();
        let mut parser = Parser::new_from_str(text);
        loop {
            match parser.next_token() {
                Ok((Event::DocumentEnd | Event::StreamEnd, _)) => break,
                Ok(_) if indexer.stack.len() > MAX_DEPTH => return Self::default(),
                Ok((event, mark)) => indexer.on_event(event, mark),
                Err(_) => return Self::default(),
            }
        }
        Self {
            positions: indexer.positions,
            plain: indexer.plain,
        }
    }

    /// The unquoted scalar value at exactly `path`, as written, and where it stands.
    pub fn plain_scalar(&self, path: &str) -> Option<(&str, Position)> {
        self.plain
            .get(path)
            .map(|(text, position)| (text.as_str(), *position))
    }

    /// Every unquoted scalar value: its path, its text as written and where it stands.
    pub fn plain_scalars(&self) -> impl Iterator<Item = (&str, &str, Position)> {
        self.plain
            .iter()
            .map(|(path, (text, position))| (path.as_str(), text.as_str(), *position))
    }

    /// The position of `path`, or of its closest ancestor that is indexed.
    pub fn find(&self, path: &str) -> Option<Position> {
        let mut path = path;
        loop {
            if let Some(position) = self.positions.get(path) {
                return Some(*position);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Indexer {
    positions: HashMap<String, Position>,
    plain: HashMap<String, (String, Position)>,
    stack: Vec<Frame>,
}

impl Indexer {
    /// The path of the node starting now, recording keys and items as they are met.
    /// Collections get the position of their first key or item, not their start event,
    /// whose mark the parser places after the first key.
    fn enter(&mut self, key_text: Option<&str>, collection: bool, mark: Marker) -> Option<String> {
        let position = Position {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let item = format!("{path}[{next}]");
                *next += 1;
                self.positions.entry(path.clone()).or_insert(position);
                if !collection {
                    self.positions.entry(item.clone()).or_insert(position);
                }
                Some(item)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(key) => Some(join(path, &key)),
                None => {
                    let name = key_text.unwrap_or("?").to_owned();
                    self.positions.entry(path.clone()).or_insert(position);
                    self.positions.entry(join(path, &name)).or_insert(position);
                    *key = Some(name);
                    None
                }
            },
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, style, ..) => {
                let value = self.enter(Some(&text), false, mark);
                if let Some(path) = value
                    && style == TScalarStyle::Plain
                {
                    let position = Position {
                        line: mark.line(),
                        column: mark.col() + 1,
                    };
                    self.plain.insert(path, (text, position));
                }
            }
            Event::Alias(_) => {
                self.enter(None, false, mark);
            }
            Event::MappingStart(..) => {
                let path = self
                    .enter(None, true, mark)
                    .unwrap_or_else(|| "?".to_owned());
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self
                    .enter(None, true, mark)
                    .unwrap_or_else(|| "?".to_owned());
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "version: 1
accounts:
  - id: 023e105f4ecef8ad9ca31a8372d0c353
    groups:
      - name: Engineering
        state: present
      - {name: Ops, state: absent}
";

    #[test]
    fn finds_keys_and_items() {
        let locator = Locator::new(TEXT);
        let at = |path| locator.find(path).map(|p| (p.line, p.column));
        assert_eq!(at("version"), Some((1, 1)));
        assert_eq!(at("accounts[0]"), Some((3, 5)));
        assert_eq!(at("accounts[0].id"), Some((3, 5)));
        assert_eq!(at("accounts[0].groups[0].state"), Some((6, 9)));
        assert_eq!(at("accounts[0].groups[1]"), Some((7, 10)));
        assert_eq!(at("accounts[0].groups[1].state"), Some((7, 21)));
    }

    #[test]
    fn falls_back_to_the_closest_indexed_ancestor() {
        let locator = Locator::new(TEXT);
        let found = locator.find("accounts[0].groups[1].nope[3]").unwrap();
        assert_eq!((found.line, found.column), (7, 10));
    }

    #[test]
    fn unquoted_values_are_kept_as_written() {
        let locator =
            Locator::new("accounts:\n  - id: 0123\n    label: \"0123\"\n    protect: [007, 'x']\n");
        let plain = |path| {
            locator
                .plain_scalar(path)
                .map(|(text, p)| (text, p.line, p.column))
        };
        assert_eq!(plain("accounts[0].id"), Some(("0123", 2, 9)));
        assert_eq!(plain("accounts[0].label"), None);
        assert_eq!(plain("accounts[0].protect[0]"), Some(("007", 4, 15)));
        assert_eq!(plain("accounts[0].protect[1]"), None);
        assert_eq!(plain("accounts"), None);
    }

    #[test]
    fn hostile_nesting_is_not_indexed_and_does_not_overflow() {
        let deep: String = (0..20_000)
            .map(|depth| format!("{}- \n", "  ".repeat(depth)))
            .collect();
        assert!(Locator::new(&deep).plain_scalars().next().is_none());
        let shallow = format!("a:\n{}", "  - b\n");
        assert!(Locator::new(&shallow).find("a[0]").is_some());
    }

    #[test]
    fn unparsable_text_has_no_positions() {
        assert!(Locator::new("a: [").find("a").is_none());
    }
}
