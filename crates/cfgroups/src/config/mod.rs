//! The desired state: loading one file or a directory of them, validating everything, and
//! resolving defaults into a [`DesiredState`] the planner can trust.
//!
//! Loading never stops at the first problem: every file is read, every account and group is
//! checked on its own, and all errors come back together, each naming file:line:column and
//! the field. A desired state with any error is never returned, so no error can lead to a
//! deletion.

mod error;
mod files;
mod lenient;
mod locate;
pub mod notify;
mod numeric;
pub mod schema;

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

pub use error::{ConfigError, ConfigErrors};
pub use files::MAX_FILE_BYTES;
pub use locate::Position;
pub use notify::{SinkConfig, UrlSource};
pub use schema::{
    AccountSpec, CONFIG_VERSION, DEFAULT_MAX_DELETES, DefaultsSpec, EventKind, FileSpec, GroupSpec,
    NotifySpec, SinkKind, SinkSpec, UnmanagedPolicy,
};

use crate::model::{AccountId, GroupId, GroupState};
use crate::protect::Protect;
use crate::yaml_guard;
use lenient::Step;
use locate::Locator;

/// Everything the config files declare, validated and with defaults resolved.
#[derive(Debug, Clone)]
pub struct DesiredState {
    pub accounts: Vec<DesiredAccount>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// SHA-256 over every file's path and content: equal hashes mean nothing changed.
    pub content_hash: String,
    /// SHA-256 of each file's content, by file: which files a change touched.
    pub file_hashes: BTreeMap<PathBuf, String>,
    /// The notification sinks of every file's `notify:` section, in file order.
    pub notify: Vec<SinkConfig>,
}

/// One account's desired groups and the rules that guard them.
#[derive(Debug, Clone)]
pub struct DesiredAccount {
    pub id: AccountId,
    pub label: Option<String>,
    pub unmanaged: UnmanagedPolicy,
    pub max_deletes: u32,
    pub protect: Protect,
    pub groups: Vec<DesiredGroup>,
    /// The file that declares the account.
    pub file: PathBuf,
    /// Why the account is suspended (listed and reported, nothing deleted), for people:
    /// `suspend: true in groups.yaml`; `None` when it is not.
    pub suspended: Option<String>,
}

/// One declared group: a name, an id, or both, and whether it should exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGroup {
    pub name: Option<String>,
    pub id: Option<GroupId>,
    pub state: GroupState,
}

impl DesiredState {
    /// The declared account ids, in declaration order.
    pub fn account_ids(&self) -> Vec<AccountId> {
        self.accounts.iter().map(|a| a.id.clone()).collect()
    }

    /// The files that differ from `before`, each with what happened to it: `a.yaml
    /// (edited)`, `b.yaml (added)`, `c.yaml (removed)`.
    pub fn changed_files(&self, before: &DesiredState) -> Vec<String> {
        let mut changes = Vec::new();
        for (file, hash) in &self.file_hashes {
            match before.file_hashes.get(file) {
                None => changes.push(format!("{} (added)", file.display())),
                Some(old) if old != hash => changes.push(format!("{} (edited)", file.display())),
                Some(_) => {}
            }
        }
        for file in before.file_hashes.keys() {
            if !self.file_hashes.contains_key(file) {
                changes.push(format!("{} (removed)", file.display()));
            }
        }
        changes
    }
}

/// Loads `path`: a file, or a directory whose `*.yaml` and `*.yml` files (sorted, not
/// recursive) together form the desired state. In a directory, an entry that looks like a
/// config file but cannot be read as one is an error, never skipped (see `config/files.rs`).
pub fn load(path: &Path) -> Result<DesiredState, ConfigErrors> {
    let (paths, mut errors) = files::config_files(path).map_err(|e| ConfigErrors(vec![e]))?;
    let mut documents = Vec::with_capacity(paths.len());
    for file in paths {
        match files::read_text(&file) {
            Ok(text) => documents.push((file, text)),
            Err(e) => errors.push(e),
        }
    }
    from_documents(&documents, errors)
}

/// Parses one desired-state document held in memory; `file` names it in errors.
pub fn parse(text: &str, file: &Path) -> Result<DesiredState, ConfigErrors> {
    from_documents(&[(file.to_owned(), text.to_owned())], Vec::new())
}

fn from_documents(
    documents: &[(PathBuf, String)],
    mut errors: Vec<ConfigError>,
) -> Result<DesiredState, ConfigErrors> {
    let mut accounts = Vec::new();
    let mut hasher = Sha256::new();
    let mut file_hashes = BTreeMap::new();
    // Where each account was first declared: (document, account index).
    let mut declared_in: HashMap<AccountId, (usize, usize)> = HashMap::new();
    // Every sink, with where it was declared: (document, sink index, sink).
    let mut sinks: Vec<(usize, usize, SinkConfig)> = Vec::new();

    for (document, (file, text)) in documents.iter().enumerate() {
        let text = files::strip_bom(text);
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
        file_hashes.insert(
            file.clone(),
            format!("{:x}", Sha256::digest(text.as_bytes())),
        );
        let mut ctx = FileContext::new(file, text);
        let (parsed, file_sinks) = parse_file(&mut ctx);
        for (index, sink) in file_sinks {
            match sinks
                .iter()
                .find(|(_, _, s): &&(usize, usize, SinkConfig)| s.name == sink.name)
            {
                Some((first_document, first_index, _)) => {
                    let (first_file, first_text) = &documents[*first_document];
                    let at = Locator::new(files::strip_bom(first_text))
                        .find(&format!("notify.sinks[{first_index}].name"))
                        .map(|p| format!(":{}:{}", p.line, p.column))
                        .unwrap_or_default();
                    ctx.error(
                        &format!("notify.sinks[{index}].name"),
                        format!(
                            "sink {:?} is already declared in {}{at}",
                            sink.name,
                            first_file.display()
                        ),
                    );
                }
                None => sinks.push((document, index, sink)),
            }
        }
        for (index, account) in parsed {
            match declared_in.get(&account.id) {
                Some(&(first_document, first_index)) => {
                    let (first_file, first_text) = &documents[first_document];
                    let at = Locator::new(files::strip_bom(first_text))
                        .find(&format!("accounts[{first_index}].id"))
                        .map(|p| format!(":{}:{}", p.line, p.column))
                        .unwrap_or_default();
                    ctx.error(
                        &format!("accounts[{index}].id"),
                        format!(
                            "account {} is already declared in {}{at}",
                            account.id,
                            first_file.display()
                        ),
                    );
                }
                None => {
                    declared_in.insert(account.id.clone(), (document, index));
                    accounts.push(account);
                }
            }
        }
        // In the order of the file, whichever check found them.
        ctx.errors
            .sort_by_key(|e| e.position.map(|p| (p.line, p.column)));
        errors.extend(ctx.errors);
    }

    if errors.is_empty() {
        Ok(DesiredState {
            accounts,
            files: documents.iter().map(|(file, _)| file.clone()).collect(),
            content_hash: format!("{:x}", hasher.finalize()),
            file_hashes,
            notify: sinks.into_iter().map(|(_, _, sink)| sink).collect(),
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

/// One file being checked: its errors, and a position index built on the first error.
struct FileContext<'a> {
    file: &'a Path,
    text: &'a str,
    locator: OnceCell<Locator>,
    errors: Vec<ConfigError>,
}

impl<'a> FileContext<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        Self {
            file,
            text,
            locator: OnceCell::new(),
            errors: Vec::new(),
        }
    }

    fn locator(&self) -> &Locator {
        self.locator.get_or_init(|| Locator::new(self.text))
    }

    fn position(&self, field: &str) -> Option<Position> {
        self.locator().find(field)
    }

    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            position: self.position(field),
            field: (!field.is_empty()).then(|| field.to_owned()),
            message: message.into(),
        });
    }

    /// Deserializes `value` as `T`, reporting every failure at its exact field path. serde
    /// stops a struct at its first bad key; here each bad key is reported, dropped (see
    /// [`lenient`]) and the rest read again, so that one unknown key or wrong type hides no
    /// other error of the same mapping. Returns what was read, and whether it was read
    /// without any error (a repaired value only serves to find more errors: its account is
    /// never taken).
    fn typed<T: DeserializeOwned>(
        &mut self,
        base: &str,
        mut value: serde_yaml::Value,
    ) -> Option<(T, bool)> {
        let mut clean = true;
        // What was dropped, so that its absence is not reported again as a missing key.
        let mut dropped: Vec<Vec<Step>> = Vec::new();
        for _ in 0..MAX_ERRORS_PER_VALUE {
            let e = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(typed) => return Some((typed, clean)),
                Err(e) => e,
            };
            let mut message = e.inner().to_string();
            let mut at = lenient::steps(e.path());
            if let Some(missing) = missing_field(&message) {
                let mut key_path = at.clone();
                key_path.push(Step::Key(missing.to_owned()));
                if dropped.contains(&key_path)
                    && let Some(placeholder) = lenient::placeholder(missing)
                    && lenient::put(&mut value, &at, missing, placeholder)
                {
                    continue;
                }
            }
            if let Some(unknown) = unknown_field(&message)
                && at.last() != Some(&Step::Key(unknown.to_owned()))
            {
                at.push(Step::Key(unknown.to_owned()));
            }
            let field = at.iter().fold(base.to_owned(), |field, step| match step {
                Step::Index(index) => format!("{field}[{index}]"),
                Step::Key(key) => locate_join(&field, key),
            });
            if numeric::is_number_for_text(&message)
                && let Some((written, _)) = self.locator().plain_scalar(&field)
                && numeric::reads_as_number(written)
            {
                message = numeric::quote_it(&field, written);
            }
            self.error(&field, message);
            clean = false;
            if dropped.contains(&at) || !lenient::drop_at(&mut value, &at) {
                return None;
            }
            dropped.push(at);
        }
        None
    }
}

/// Most errors reported in one mapping before the rest of it is given up on.
const MAX_ERRORS_PER_VALUE: usize = 256;

/// The key named by serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

fn locate_join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The key named by serde's "unknown field `x`" message, so the error points at it.
fn unknown_field(message: &str) -> Option<&str> {
    message.strip_prefix("unknown field `")?.split('`').next()
}

/// What one file declares: its valid accounts and notification sinks, each with its index.
type Parsed = (Vec<(usize, DesiredAccount)>, Vec<(usize, SinkConfig)>);

/// Parses and checks one file, returning its valid accounts and sinks with their index in
/// the file.
///
/// A file that reads as the schema in one pass (the common case, and the only one at scale)
/// is read straight into typed entries, then checked; only a file that does not is read
/// again, staged through YAML values, so that every one of its errors is found and placed.
fn parse_file(ctx: &mut FileContext<'_>) -> Parsed {
    if let Err(too_deep) = yaml_guard::check_depth(ctx.text) {
        ctx.error("", format!("invalid YAML: {too_deep}"));
        return (Vec::new(), Vec::new());
    }
    if let Ok(spec) = serde_yaml::from_str::<FileSpec>(ctx.text) {
        if !check_header(ctx, spec.version, spec.accounts.len()) {
            return (Vec::new(), Vec::new());
        }
        let entries = Entries {
            defaults: spec.defaults,
            accounts: spec
                .accounts
                .into_iter()
                .enumerate()
                .map(|(index, account)| (index, account, true))
                .collect(),
            notify: spec.notify,
        };
        return check_entries(ctx, entries, |_, _, group| Some((group, true)));
    }
    parse_staged(ctx)
}

/// [`parse_file`]'s careful path: every error of a file that does not read as the schema.
fn parse_staged(ctx: &mut FileContext<'_>) -> Parsed {
    let value: serde_yaml::Value = match serde_yaml::from_str(ctx.text) {
        Ok(value) => value,
        Err(e) => {
            let numbers = numeric::unloadable_numbers(ctx.locator());
            if !numbers.is_empty() {
                for (field, written, position) in numbers {
                    ctx.errors.push(ConfigError {
                        file: ctx.file.to_owned(),
                        position: Some(position),
                        message: numeric::quote_it(&field, &written),
                        field: Some(field),
                    });
                }
                return (Vec::new(), Vec::new());
            }
            let position = e.location().map(|l| Position {
                line: l.line(),
                column: l.column(),
            });
            let message = e.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            ctx.errors.push(ConfigError {
                file: ctx.file.to_owned(),
                position,
                field: None,
                message: format!("invalid YAML: {message}"),
            });
            return (Vec::new(), Vec::new());
        }
    };
    if value.is_null() {
        ctx.error(
            "",
            "the file is empty: it must declare `version: 1` and `accounts`",
        );
        return (Vec::new(), Vec::new());
    }
    let Some((spec, _)) = ctx.typed::<FileSpec<serde_yaml::Value, serde_yaml::Value>>("", value)
    else {
        return (Vec::new(), Vec::new());
    };
    if !check_header(ctx, spec.version, spec.accounts.len()) {
        return (Vec::new(), Vec::new());
    }
    let notify = spec
        .notify
        .and_then(|raw| ctx.typed::<NotifySpec>("notify", raw))
        .map(|(notify, _)| notify);
    let accounts = spec
        .accounts
        .into_iter()
        .enumerate()
        .filter_map(|(index, raw)| {
            let base = format!("accounts[{index}]");
            let (account, clean) = ctx.typed::<AccountSpec<serde_yaml::Value>>(&base, raw)?;
            Some((index, account, clean))
        })
        .collect();
    let entries = Entries {
        defaults: spec.defaults,
        accounts,
        notify,
    };
    check_entries(ctx, entries, |ctx, field, raw| {
        ctx.typed::<GroupSpec>(field, raw)
    })
}

/// Checks a file's version and that it declares accounts; `false` (with the error said)
/// when the rest of it is not worth reading.
fn check_header(ctx: &mut FileContext<'_>, version: u32, accounts: usize) -> bool {
    if version != CONFIG_VERSION {
        ctx.error(
            "version",
            format!("unsupported version {version} (this build reads version {CONFIG_VERSION})"),
        );
        return false;
    }
    if accounts == 0 {
        ctx.error("accounts", "the file declares no accounts");
        return false;
    }
    true
}

/// A file's entries, however they were read: each account with its index and whether it
/// was read without repairs, its group entries of type `G`.
struct Entries<G> {
    defaults: DefaultsSpec,
    accounts: Vec<(usize, AccountSpec<G>, bool)>,
    notify: Option<NotifySpec>,
}

/// Checks a file's entries: its sinks, defaults and accounts, `read_group` reading each
/// group entry (and saying whether it was read without repairs).
fn check_entries<G>(
    ctx: &mut FileContext<'_>,
    entries: Entries<G>,
    mut read_group: impl FnMut(&mut FileContext<'_>, &str, G) -> Option<(GroupSpec, bool)>,
) -> Parsed {
    let sinks = entries
        .notify
        .map(|notify| match notify::resolve(notify, ctx.file) {
            Ok(sinks) => sinks.into_iter().enumerate().collect(),
            Err(problems) => {
                for (field, message) in problems {
                    ctx.error(&field, message);
                }
                Vec::new()
            }
        })
        .unwrap_or_default();
    let default_protect = check_protect(ctx, "defaults.protect", &entries.defaults.protect);
    let mut accounts = Vec::new();
    for (index, account, clean) in entries.accounts {
        let base = format!("accounts[{index}]");
        // An account read only after repairs is still checked, group by group, for more
        // errors, but never taken (its id may be a placeholder).
        if let Some(account) = resolve_account(
            ctx,
            &base,
            &entries.defaults,
            default_protect,
            account,
            &mut read_group,
        ) && clean
        {
            accounts.push((index, account));
        }
    }
    (accounts, sinks)
}

/// Checks a protect list's globs; `true` when every pattern compiles.
fn check_protect(ctx: &mut FileContext<'_>, field: &str, patterns: &[String]) -> bool {
    match Protect::new(patterns.to_vec()) {
        Ok(_) => true,
        Err(bad) => {
            ctx.error(&format!("{field}[{}]", bad.index), bad.to_string());
            false
        }
    }
}

fn resolve_account<G>(
    ctx: &mut FileContext<'_>,
    base: &str,
    defaults: &DefaultsSpec,
    defaults_valid: bool,
    account: AccountSpec<G>,
    read_group: &mut impl FnMut(&mut FileContext<'_>, &str, G) -> Option<(GroupSpec, bool)>,
) -> Option<DesiredAccount> {
    let errors_before = ctx.errors.len();
    let own_protect_valid = check_protect(ctx, &format!("{base}.protect"), &account.protect);
    let patterns: Vec<String> = defaults
        .protect
        .iter()
        .chain(&account.protect)
        .cloned()
        .collect();
    let protect = if defaults_valid && own_protect_valid {
        Protect::new(patterns).ok()
    } else {
        None
    };

    let mut groups = Vec::with_capacity(account.groups.len());
    let mut ids: HashMap<GroupId, usize> = HashMap::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (index, raw) in account.groups.into_iter().enumerate() {
        let field = format!("{base}.groups[{index}]");
        // A group read after repairs still takes part in the checks below (a duplicate
        // name is an error of its own); its account is not taken either way.
        let Some((spec, clean)) = read_group(ctx, &field, raw) else {
            continue;
        };
        if spec.name.is_none() && spec.id.is_none() {
            // Unless a repair dropped them: that key's own error is already reported.
            if clean {
                ctx.error(&field, "a group needs a `name`, an `id`, or both");
            }
            continue;
        }
        if spec.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            ctx.error(&format!("{field}.name"), "the name is empty");
            continue;
        }
        if let Some(id) = &spec.id
            && let Some(first) = ids.insert(id.clone(), index)
        {
            let at = line_note(ctx, &format!("{base}.groups[{first}]"));
            ctx.error(
                &format!("{field}.id"),
                format!("duplicate group: id {id} is already declared{at}"),
            );
        }
        if let Some(name) = &spec.name
            && let Some(first) = names.insert(name.clone(), index)
        {
            let at = line_note(ctx, &format!("{base}.groups[{first}]"));
            ctx.error(
                &format!("{field}.name"),
                format!("duplicate group: name {name:?} is already declared{at}"),
            );
        }
        if spec.state == GroupState::Absent
            && let Some(protect) = &protect
            && let Some(pattern) = protect.matching(spec.id.as_ref(), spec.name.as_deref())
        {
            ctx.error(
                &format!("{field}.state"),
                format!("the group is declared absent but protected by {pattern:?}"),
            );
        }
        groups.push(DesiredGroup {
            name: spec.name,
            id: spec.id,
            state: spec.state,
        });
    }

    if ctx.errors.len() > errors_before {
        return None;
    }
    Some(DesiredAccount {
        id: account.id,
        label: account.label,
        unmanaged: account
            .unmanaged
            .or(defaults.unmanaged)
            .unwrap_or(UnmanagedPolicy::Report),
        max_deletes: account
            .max_deletes
            .or(defaults.max_deletes)
            .unwrap_or(DEFAULT_MAX_DELETES),
        protect: protect?,
        groups,
        suspended: suspension(ctx.file, defaults.suspend, account.suspend),
        file: ctx.file.to_owned(),
    })
}

/// Why an account is suspended, from its own `suspend` and the file's default.
fn suspension(file: &Path, defaults: Option<bool>, own: Option<bool>) -> Option<String> {
    match (own, defaults) {
        (Some(true), _) => Some(format!("suspend: true in {}", file.display())),
        (None, Some(true)) => Some(format!(
            "suspend: true in the defaults of {}",
            file.display()
        )),
        _ => None,
    }
}

fn line_note(ctx: &FileContext<'_>, field: &str) -> String {
    ctx.position(field)
        .map(|p| format!(" at line {}", p.line))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    fn errors(text: &str) -> Vec<String> {
        match parse(text, Path::new("groups.yaml")) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    /// Both ways of reading a file: the one-pass read when it succeeds, and the staged one.
    fn read_both_ways(text: &str) -> (String, String) {
        let file = Path::new("groups.yaml");
        let mut direct = FileContext::new(file, text);
        let direct_parsed = parse_file(&mut direct);
        let mut staged = FileContext::new(file, text);
        let staged_parsed = parse_staged(&mut staged);
        (
            format!("{direct_parsed:?} {:?}", direct.errors),
            format!("{staged_parsed:?} {:?}", staged.errors),
        )
    }

    #[test]
    fn the_one_pass_read_and_the_staged_read_agree_on_every_file() {
        let mut texts: Vec<(String, String)> = vec![(
            "every field".to_owned(),
            format!(
                "version: 1\ndefaults:\n  unmanaged: delete\n  max_deletes: 3\n  protect: [\"Break-glass*\", '7']\n  suspend: false\naccounts:\n  - id: \"{ACCOUNT}\"\n    label: 'Production – EU'\n    protect: [\"SCIM-*\"]\n    suspend: true\n    unmanaged: report\n    max_deletes: 2\n    groups:\n      - {{name: \"123\", state: absent}}\n      - {{name: Équipe données, state: present}}\n      - {{id: \"3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a\", name: Ops, state: absent}}\n      - {{id: 9a7806061c88ada191ed06f989cc3dac, state: present}}\nnotify:\n  sinks:\n    - {{name: ops, kind: slack, url_env: OPS_HOOK, events: [deleted, blocked], reminder: 24h, timeout: 5s, attempts: 2}}\n"
            ),
        )];
        // Numbers where text is wanted, in every text field of the schema.
        for (field, line) in [
            (
                "label",
                format!("  - {{id: \"{ACCOUNT}\", label: 2024, groups: []}}\n"),
            ),
            (
                "name",
                format!("  - {{id: \"{ACCOUNT}\", groups: [{{name: 7, state: absent}}]}}\n"),
            ),
            (
                "protect",
                format!("  - {{id: \"{ACCOUNT}\", protect: [1], groups: []}}\n"),
            ),
            (
                "id",
                "  - {id: 12345678901234567890123456789012, groups: []}\n".to_owned(),
            ),
        ] {
            texts.push((field.to_owned(), format!("version: 1\naccounts:\n{line}")));
        }
        for sink in [
            "{name: 1, kind: slack, url_env: HOOK, events: [deleted]}",
            "{name: a, kind: slack, url_env: 12, events: [deleted]}",
            "{name: a, kind: slack, url_file: 123, events: [deleted]}",
            "{name: a, kind: slack, url_env: HOOK, events: [deleted], reminder: 5}",
            "{name: a, kind: slack, url_env: HOOK, events: [deleted], timeout: 10}",
        ] {
            texts.push((
                sink.to_owned(),
                format!("version: 1\naccounts:\n  - {{id: \"{ACCOUNT}\", groups: []}}\nnotify:\n  sinks:\n    - {sink}\n"),
            ));
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("../../examples/groups.yaml")];
        for dir in [
            root.join("tests/fixtures/bad"),
            root.join("../../examples/gitops/accounts"),
        ] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                files.push(entry.unwrap().path());
            }
        }
        for file in files {
            if let Ok(text) = std::fs::read_to_string(&file) {
                texts.push((file.display().to_string(), text));
            }
        }
        assert!(texts.len() > 25, "{}", texts.len());
        // The first reads in one pass, and is valid: the fast path itself is compared.
        assert!(serde_yaml::from_str::<FileSpec>(&texts[0].1).is_ok());
        assert!(errors(&texts[0].1).is_empty(), "{:?}", errors(&texts[0].1));
        for (name, text) in texts {
            let (direct, staged) = read_both_ways(&text);
            assert_eq!(direct, staged, "{name}");
        }
    }

    #[test]
    fn changed_files_name_what_an_edit_touched() {
        let file = |name: &str, label: &str| {
            (
                PathBuf::from(name),
                format!("version: 1\naccounts:\n  - id: {ACCOUNT}\n    label: {label}\n"),
            )
        };
        let other = |name: &str| {
            (
                PathBuf::from(name),
                "version: 1\naccounts:\n  - id: 9a7806061c88ada191ed06f989cc3dac\n".to_owned(),
            )
        };
        let before = from_documents(&[file("a.yaml", "one"), other("b.yaml")], Vec::new()).unwrap();
        let after = from_documents(&[file("a.yaml", "two"), other("c.yaml")], Vec::new()).unwrap();
        assert_eq!(
            after.changed_files(&before),
            ["a.yaml (edited)", "c.yaml (added)", "b.yaml (removed)"]
        );
        assert!(before.changed_files(&before).is_empty());
    }

    #[test]
    fn a_utf8_bom_is_accepted_and_positions_ignore_it() {
        let text = format!("\u{feff}version: 1\naccounts:\n  - id: {ACCOUNT}\n    groups: []\n");
        let state = parse(&text, Path::new("groups.yaml")).unwrap();
        assert_eq!(state.accounts.len(), 1);
        let bad = format!("\u{feff}version: 1\naccounts:\n  - id: {ACCOUNT}\n    colour: red\n");
        let shown = errors(&bad);
        assert!(
            shown[0].starts_with("groups.yaml:4:5: accounts[0].colour"),
            "{shown:?}"
        );
    }

    #[test]
    fn a_bom_in_a_file_on_disk_is_accepted() {
        let tmp = tempfile::TempDir::new().unwrap();
        let file = tmp.path().join("groups.yaml");
        std::fs::write(
            &file,
            format!("\u{feff}version: 1\naccounts:\n  - id: {ACCOUNT}\n"),
        )
        .unwrap();
        assert_eq!(load(&file).unwrap().accounts.len(), 1);
    }

    #[test]
    fn an_all_digit_id_says_quote_it_with_its_position() {
        let account = "12345678901234567890123456789012";
        let shown = errors(&format!("version: 1\naccounts:\n  - id: {account}\n"));
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(
            shown[0].starts_with("groups.yaml:3:9: accounts[0].id: YAML reads the unquoted"),
            "{shown:?}"
        );
        assert!(
            shown[0].contains(&format!("quote it, as in \"{account}\"")),
            "{shown:?}"
        );
        assert!(!shown[0].contains("u128"), "{shown:?}");

        let group = "92345678901234567890123456789012";
        let shown = errors(&format!(
            "version: 1\naccounts:\n  - id: {ACCOUNT}\n    groups:\n      - id: {group}\n        state: absent\n"
        ));
        assert!(
            shown[0].starts_with("groups.yaml:5:13: accounts[0].groups[0].id:"),
            "{shown:?}"
        );
        assert!(shown[0].contains(&format!("\"{group}\"")), "{shown:?}");
    }

    #[test]
    fn a_short_number_where_text_is_wanted_says_quote_it_too() {
        let shown = errors(&format!(
            "version: 1\naccounts:\n  - id: {ACCOUNT}\n    protect: [\"Admins\", 42]\n"
        ));
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(
            shown[0].contains("accounts[0].protect[1]: YAML reads the unquoted 42"),
            "{shown:?}"
        );
        assert!(shown[0].contains("as in \"42\""), "{shown:?}");
        let shown = errors(&format!(
            "version: 1\naccounts:\n  - id: {ACCOUNT}\n    groups:\n      - name: 2024\n        state: absent\n"
        ));
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(
            shown[0].contains("accounts[0].groups[0].name: YAML reads the unquoted 2024"),
            "{shown:?}"
        );
    }

    #[test]
    fn suspend_is_inherited_from_defaults_and_overridden_per_account() {
        let other = "0000000000000000000000000000beef";
        let third = "0000000000000000000000000000cafe";
        let text = format!(
            "version: 1\ndefaults:\n  suspend: true\naccounts:\n  - id: {ACCOUNT}\n  - id: {other}\n    suspend: false\n"
        );
        let state = parse(&text, Path::new("groups.yaml")).unwrap();
        assert_eq!(
            state.accounts[0].suspended.as_deref(),
            Some("suspend: true in the defaults of groups.yaml")
        );
        assert_eq!(state.accounts[1].suspended, None);
        let text = format!(
            "version: 1\naccounts:\n  - id: {ACCOUNT}\n    suspend: true\n  - id: {third}\n"
        );
        let state = parse(&text, Path::new("groups.yaml")).unwrap();
        assert_eq!(
            state.accounts[0].suspended.as_deref(),
            Some("suspend: true in groups.yaml")
        );
        assert_eq!(state.accounts[1].suspended, None);
        let shown = errors(&format!(
            "version: 1\naccounts:\n  - id: {ACCOUNT}\n    suspend: maybe\n"
        ));
        assert!(
            shown[0].starts_with("groups.yaml:4:5: accounts[0].suspend: invalid type"),
            "{shown:?}"
        );
    }

    #[test]
    fn notify_sinks_are_read_from_every_file_and_named_once() {
        let tmp = tempfile::TempDir::new().unwrap();
        let sink = |name: &str| {
            format!(
                "notify:\n  sinks:\n    - name: {name}\n      kind: slack\n      url_env: HOOK\n      events: [deleted]\n"
            )
        };
        std::fs::write(
            tmp.path().join("a.yaml"),
            format!("version: 1\naccounts:\n  - id: {ACCOUNT}\n{}", sink("ops")),
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("b.yaml"),
            format!(
                "version: 1\naccounts:\n  - id: 0000000000000000000000000000beef\n{}",
                sink("audit")
            ),
        )
        .unwrap();
        let state = load(tmp.path()).unwrap();
        let names: Vec<&str> = state.notify.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ops", "audit"]);

        std::fs::write(
            tmp.path().join("b.yaml"),
            format!(
                "version: 1\naccounts:\n  - id: 0000000000000000000000000000beef\n{}",
                sink("ops")
            ),
        )
        .unwrap();
        let shown: Vec<String> = load(tmp.path())
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(
            shown[0]
                .contains("b.yaml:6:7: notify.sinks[0].name: sink \"ops\" is already declared in")
                && shown[0].contains("a.yaml:6:7"),
            "{shown:?}"
        );
    }

    #[test]
    fn a_url_in_the_file_is_refused_at_its_line_without_repeating_it() {
        let text = format!(
            "version: 1\naccounts:\n  - id: {ACCOUNT}\nnotify:\n  sinks:\n    - name: ops\n      kind: webhook\n      url: https://hooks.example.com/T0/SECRET\n      events: [deleted]\n"
        );
        let shown = errors(&text);
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(
            shown[0].starts_with("groups.yaml:8:7: notify.sinks[0].url: a sink's URL is a secret"),
            "{shown:?}"
        );
        assert!(!shown[0].contains("SECRET"), "{shown:?}");
    }

    #[test]
    fn refused_directory_entries_fail_the_load_with_every_other_error() {
        let tmp = tempfile::TempDir::new().unwrap();
        std::fs::write(
            tmp.path().join("a.yaml"),
            format!("version: 1\naccounts:\n  - id: {ACCOUNT}\n"),
        )
        .unwrap();
        std::os::unix::fs::symlink("gone.yaml", tmp.path().join("b.yaml")).unwrap();
        std::fs::write(tmp.path().join("c.YML"), "version: 1\n").unwrap();
        let errors = load(tmp.path()).unwrap_err();
        let shown: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown[0].contains("b.yaml: a broken symbolic link"),
            "{shown:?}"
        );
        assert!(
            shown[1].contains("c.YML: the extension .YML is not read"),
            "{shown:?}"
        );
    }
}
