//! The `notify:` section, checked and resolved: every sink named once, its URL's source
//! (an environment variable or a file, never the URL itself), the events it wants, and its
//! durations parsed. Whether the URL is there and usable is checked where notifications are
//! sent (`run` at start, `apply --notify`), not here: `validate` runs in CI without secrets.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::schema::{EventKind, NotifySpec, SinkKind, SinkSpec};

/// Default time for one delivery attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default attempts per message.
pub const DEFAULT_ATTEMPTS: u32 = 4;
/// Most attempts per message.
pub const MAX_ATTEMPTS: u32 = 10;
/// Shortest reminder interval.
pub const MIN_REMINDER: Duration = Duration::from_secs(60);

/// Where a sink's URL is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UrlSource {
    /// An environment variable, by name.
    Env(String),
    /// A file; its first line, trimmed.
    File(PathBuf),
}

impl std::fmt::Display for UrlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// One sink, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SinkConfig {
    pub name: String,
    pub kind: SinkKind,
    pub url: UrlSource,
    pub events: BTreeSet<EventKind>,
    /// Re-send a persisting problem after this long; `None`: only on change.
    pub reminder: Option<Duration>,
    pub timeout: Duration,
    pub attempts: u32,
    /// The file that declares the sink.
    pub file: PathBuf,
}

impl SinkConfig {
    /// Whether the sink wants `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.contains(&kind)
    }
}

/// One problem found in a `notify:` section: the field (under `notify.`) and what is wrong.
pub(crate) type Problem = (String, String);

/// Checks `spec`, declared in `file`; the sinks, or every problem found.
pub(crate) fn resolve(spec: NotifySpec, file: &Path) -> Result<Vec<SinkConfig>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut sinks = Vec::new();
    if spec.sinks.is_empty() {
        problems.push((
            "notify.sinks".to_owned(),
            "declare at least one sink".to_owned(),
        ));
    }
    for (index, sink) in spec.sinks.into_iter().enumerate() {
        let field = format!("notify.sinks[{index}]");
        match resolve_sink(sink, file, &field) {
            Ok(sink) => sinks.push(sink),
            Err(mut found) => problems.append(&mut found),
        }
    }
    if problems.is_empty() {
        Ok(sinks)
    } else {
        Err(problems)
    }
}

fn resolve_sink(sink: SinkSpec, file: &Path, field: &str) -> Result<SinkConfig, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: String| {
        problems.push((format!("{field}.{key}"), message));
    };
    if !valid_name(&sink.name) {
        problem(
            "name",
            format!(
                "{:?} is not a sink name: letters, digits, '-', '_' and '.', starting with a \
                 letter or digit, at most 64",
                sink.name
            ),
        );
    }
    let inline_url = sink.url.is_some();
    if inline_url {
        problem(
            "url",
            "a sink's URL is a secret and never lives in this file: put it in an environment \
             variable (url_env) or a file (url_file)"
                .to_owned(),
        );
    }
    let url = match (sink.url_env, sink.url_file) {
        (Some(name), None) if valid_env_name(&name) => Some(UrlSource::Env(name)),
        (Some(name), None) => {
            problem(
                "url_env",
                format!("{name:?} is not an environment variable name"),
            );
            None
        }
        (None, Some(path)) if path.as_os_str().is_empty() => {
            problem("url_file", "the path is empty".to_owned());
            None
        }
        (None, Some(path)) => Some(UrlSource::File(path)),
        (Some(_), Some(_)) => {
            problem("url_env", "give url_env or url_file, not both".to_owned());
            None
        }
        (None, None) => {
            if !inline_url {
                problem(
                    "url_env",
                    "where is the URL? Give url_env (an environment variable) or url_file"
                        .to_owned(),
                );
            }
            None
        }
    };
    if sink.events.is_empty() {
        problem("events", "name at least one event".to_owned());
    }
    let reminder = sink.reminder.as_deref().and_then(|text| {
        match duration(text, MIN_REMINDER, Duration::MAX) {
            Ok(reminder) => Some(reminder),
            Err(message) => {
                problem("reminder", message);
                None
            }
        }
    });
    let timeout = match sink.timeout.as_deref() {
        None => DEFAULT_TIMEOUT,
        Some(text) => duration(text, Duration::from_millis(100), Duration::from_secs(300))
            .unwrap_or_else(|message| {
                problem("timeout", message);
                DEFAULT_TIMEOUT
            }),
    };
    let attempts = sink.attempts.unwrap_or(DEFAULT_ATTEMPTS);
    if !(1..=MAX_ATTEMPTS).contains(&attempts) {
        problem(
            "attempts",
            format!("{attempts} is not from 1 to {MAX_ATTEMPTS}"),
        );
    }
    match (problems.is_empty(), url) {
        (true, Some(url)) => Ok(SinkConfig {
            name: sink.name,
            kind: sink.kind,
            url,
            events: sink.events.into_iter().collect(),
            reminder,
            timeout,
            attempts,
            file: file.to_owned(),
        }),
        _ => Err(problems),
    }
}

fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn valid_env_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `text` as a duration (`10s`, `24h`) from `min` to `max`.
fn duration(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration such as \"30s\" or \"24h\": {e}"))?;
    if parsed < min {
        return Err(format!(
            "{text:?} is shorter than {}",
            humantime::format_duration(min)
        ));
    }
    if parsed > max {
        return Err(format!(
            "{text:?} is longer than {}",
            humantime::format_duration(max)
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(yaml: &str) -> Result<Vec<SinkConfig>, Vec<Problem>> {
        let spec: NotifySpec = serde_yaml::from_str(yaml).unwrap();
        resolve(spec, Path::new("groups.yaml"))
    }

    #[test]
    fn a_sink_resolves_with_its_defaults() {
        let sinks = sink(
            "sinks:\n  - {name: ops, kind: slack, url_env: SLACK_URL, events: [deleted, blocked]}\n",
        )
        .unwrap();
        assert_eq!(sinks[0].url, UrlSource::Env("SLACK_URL".into()));
        assert_eq!(sinks[0].timeout, DEFAULT_TIMEOUT);
        assert_eq!(sinks[0].attempts, DEFAULT_ATTEMPTS);
        assert_eq!(sinks[0].reminder, None);
        assert!(sinks[0].wants(EventKind::Blocked) && !sinks[0].wants(EventKind::Drift));
    }

    #[test]
    fn every_problem_of_a_sink_is_reported() {
        let problems = sink(
            "sinks:\n  - {name: 'bad name', kind: webhook, url: 'https://hooks.example/T0/B0/secret', events: [], reminder: 5s, timeout: soon, attempts: 0}\n",
        )
        .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "notify.sinks[0].name",
                "notify.sinks[0].url",
                "notify.sinks[0].events",
                "notify.sinks[0].reminder",
                "notify.sinks[0].timeout",
                "notify.sinks[0].attempts"
            ],
            "{problems:?}"
        );
        let shown = format!("{problems:?}");
        assert!(
            shown.contains("secret and never lives in this file"),
            "{shown}"
        );
        assert!(
            !shown.contains("hooks.example"),
            "the URL is never repeated: {shown}"
        );
    }

    #[test]
    fn the_url_comes_from_exactly_one_place() {
        let both = sink(
            "sinks:\n  - {name: a, kind: webhook, url_env: A, url_file: /run/a, events: [drift]}\n",
        )
        .unwrap_err();
        assert!(both[0].1.contains("not both"), "{both:?}");
        let none = sink("sinks:\n  - {name: a, kind: webhook, events: [drift]}\n").unwrap_err();
        assert!(none[0].1.contains("where is the URL"), "{none:?}");
        let bad = sink("sinks:\n  - {name: a, kind: webhook, url_env: 'A-B', events: [drift]}\n")
            .unwrap_err();
        assert_eq!(bad[0].0, "notify.sinks[0].url_env");
    }
}
