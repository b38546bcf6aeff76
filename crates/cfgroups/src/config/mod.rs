//! The desired state: loading one file or a directory of them, validating everything, and
//! resolving defaults into a [`DesiredState`] the planner can trust.
//!
//! Loading never stops at the first problem: every file is read, every account and group is
//! checked on its own, and all errors come back together, each naming file:line:column and
//! the field. A desired state with any error is never returned, so no error can lead to a
//! deletion.

mod error;
mod locate;
pub mod schema;

use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

pub use error::{ConfigError, ConfigErrors};
pub use locate::Position;
pub use schema::{
    AccountSpec, CONFIG_VERSION, DEFAULT_MAX_DELETES, DefaultsSpec, FileSpec, GroupSpec,
    UnmanagedPolicy,
};

use crate::model::{AccountId, GroupId, GroupState};
use crate::protect::Protect;
use crate::yaml_guard;
use locate::Locator;

/// The largest desired-state file read: 100,000 declared groups take about 5 MiB, and a
/// bigger file would cost several times its size in memory while parsing.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Everything the config files declare, validated and with defaults resolved.
#[derive(Debug, Clone)]
pub struct DesiredState {
    pub accounts: Vec<DesiredAccount>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// SHA-256 over every file's path and content: equal hashes mean nothing changed.
    pub content_hash: String,
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
}

/// Loads `path`: a file, or a directory whose `*.yaml` and `*.yml` files (sorted, not
/// recursive) together form the desired state.
pub fn load(path: &Path) -> Result<DesiredState, ConfigErrors> {
    let files = config_files(path).map_err(|e| ConfigErrors(vec![e]))?;
    let mut errors = Vec::new();
    let mut documents = Vec::with_capacity(files.len());
    for file in files {
        match read_text(&file) {
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
    // Where each account was first declared: (document, account index).
    let mut declared_in: HashMap<AccountId, (usize, usize)> = HashMap::new();

    for (document, (file, text)) in documents.iter().enumerate() {
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
        let mut ctx = FileContext::new(file, text);
        for (index, account) in parse_file(&mut ctx) {
            match declared_in.get(&account.id) {
                Some(&(first_document, first_index)) => {
                    let (first_file, first_text) = &documents[first_document];
                    let at = Locator::new(first_text)
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
        errors.extend(ctx.errors);
    }

    if errors.is_empty() {
        Ok(DesiredState {
            accounts,
            files: documents.iter().map(|(file, _)| file.clone()).collect(),
            content_hash: format!("{:x}", hasher.finalize()),
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

fn config_files(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let whole = |message: String| ConfigError {
        file: path.to_owned(),
        position: None,
        field: None,
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| whole(format!("cannot read: {e}")))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| whole(format!("cannot list: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| whole(format!("cannot list: {e}")))?;
        let file = entry.path();
        let is_yaml = file
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml");
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if is_yaml && !hidden && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(whole("directory has no *.yaml or *.yml files".to_owned()));
    }
    Ok(files)
}

fn read_text(file: &Path) -> Result<String, ConfigError> {
    let whole = |message: String| ConfigError {
        file: file.to_owned(),
        position: None,
        field: None,
        message,
    };
    let size = std::fs::metadata(file)
        .map_err(|e| whole(format!("cannot read: {e}")))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(whole(format!(
            "the file is {size} bytes; a desired-state file may be at most {MAX_FILE_BYTES} \
             bytes (split it into a directory of files)"
        )));
    }
    let bytes = std::fs::read(file).map_err(|e| whole(format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        whole(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
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

    fn position(&self, field: &str) -> Option<Position> {
        self.locator
            .get_or_init(|| Locator::new(self.text))
            .find(field)
    }

    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            position: self.position(field),
            field: (!field.is_empty()).then(|| field.to_owned()),
            message: message.into(),
        });
    }

    /// Deserializes `value` as `T`, reporting a failure at its exact field path.
    fn typed<T: DeserializeOwned>(&mut self, base: &str, value: serde_yaml::Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(typed) => Some(typed),
            Err(e) => {
                let message = e.inner().to_string();
                let mut field = base.to_owned();
                for segment in e.path().iter() {
                    field = match segment {
                        serde_path_to_error::Segment::Seq { index } => format!("{field}[{index}]"),
                        serde_path_to_error::Segment::Map { key } => locate_join(&field, key),
                        _ => field,
                    };
                }
                if let Some(unknown) = unknown_field(&message)
                    && !field.ends_with(unknown)
                {
                    field = locate_join(&field, unknown);
                }
                self.error(&field, message);
                None
            }
        }
    }
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

/// Parses and checks one file, returning its valid accounts with their index in the file.
fn parse_file(ctx: &mut FileContext<'_>) -> Vec<(usize, DesiredAccount)> {
    if let Err(too_deep) = yaml_guard::check_depth(ctx.text) {
        ctx.error("", format!("invalid YAML: {too_deep}"));
        return Vec::new();
    }
    let value: serde_yaml::Value = match serde_yaml::from_str(ctx.text) {
        Ok(value) => value,
        Err(e) => {
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
            return Vec::new();
        }
    };
    if value.is_null() {
        ctx.error(
            "",
            "the file is empty: it must declare `version: 1` and `accounts`",
        );
        return Vec::new();
    }
    let Some(spec) = ctx.typed::<FileSpec<serde_yaml::Value>>("", value) else {
        return Vec::new();
    };
    if spec.version != CONFIG_VERSION {
        ctx.error(
            "version",
            format!(
                "unsupported version {} (this build reads version {CONFIG_VERSION})",
                spec.version
            ),
        );
        return Vec::new();
    }
    if spec.accounts.is_empty() {
        ctx.error("accounts", "the file declares no accounts");
        return Vec::new();
    }
    let default_protect = check_protect(ctx, "defaults.protect", &spec.defaults.protect);
    let mut accounts = Vec::new();
    for (index, raw) in spec.accounts.into_iter().enumerate() {
        let base = format!("accounts[{index}]");
        let Some(account) = ctx.typed::<AccountSpec<serde_yaml::Value>>(&base, raw) else {
            continue;
        };
        if let Some(account) = resolve_account(ctx, &base, &spec.defaults, default_protect, account)
        {
            accounts.push((index, account));
        }
    }
    accounts
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

fn resolve_account(
    ctx: &mut FileContext<'_>,
    base: &str,
    defaults: &DefaultsSpec,
    defaults_valid: bool,
    account: AccountSpec<serde_yaml::Value>,
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
        let Some(spec) = ctx.typed::<GroupSpec>(&field, raw) else {
            continue;
        };
        if spec.name.is_none() && spec.id.is_none() {
            ctx.error(&field, "a group needs a `name`, an `id`, or both");
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
        file: ctx.file.to_owned(),
    })
}

fn line_note(ctx: &FileContext<'_>, field: &str) -> String {
    ctx.position(field)
        .map(|p| format!(" at line {}", p.line))
        .unwrap_or_default()
}
