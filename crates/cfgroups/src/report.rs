//! Renders a plan for people and programs: Terraform-style text, versioned JSON, and
//! Markdown fit for a pull-request comment.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use crate::after_deletions::DeletionReport;
use crate::plan::{AccountPlan, Action, BlockReason, Cause, Listing, Plan, PlanItem, Summary};
use crate::shown::{Escaped, Quoted};

/// The version of the JSON report. Fields are only ever added within a version.
pub const REPORT_FORMAT_VERSION: u32 = 1;

/// An output format of `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

/// Renders `plan`, listed from `source`, in `format`. Text carries ANSI styles; the caller's
/// stream strips them when colour is off.
pub fn render(plan: &Plan, source: &str, format: Format) -> String {
    match format {
        Format::Text => text(plan, source),
        Format::Json => json(plan, source),
        Format::Markdown => markdown(plan, source),
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    format_version: u32,
    source: &'a str,
    #[serde(flatten)]
    cycle: Option<&'a CycleFacts>,
    summary: JsonSummary,
    accounts: &'a [AccountPlan],
}

/// What the daemon's `last-report.json` adds to the plan report: when, from which config,
/// and how each deletion of the cycle ended (its plan is the one after those deletions).
#[derive(Debug, Clone, Serialize)]
pub struct CycleFacts {
    /// When the cycle finished, RFC 3339 UTC.
    pub generated_at: String,
    /// The desired state's content hash (SHA-256 over every file's path and content).
    pub config_hash: String,
    /// Every deletion the cycle attempted, with its outcome.
    pub deletions: Vec<DeletionReport>,
}

#[derive(Serialize)]
struct JsonSummary {
    #[serde(flatten)]
    counts: Summary,
    drift: bool,
}

/// The JSON report: `{"format_version": 1, "source", "summary", "accounts"}`.
pub fn json(plan: &Plan, source: &str) -> String {
    let mut out =
        serde_json::to_string_pretty(&json_report(plan, source, None)).unwrap_or_else(|e| {
            format!("{{\"format_version\":{REPORT_FORMAT_VERSION},\"error\":\"{e}\"}}")
        });
    out.push('\n');
    out
}

fn json_report<'a>(
    plan: &'a Plan,
    source: &'a str,
    cycle: Option<&'a CycleFacts>,
) -> JsonReport<'a> {
    let summary = plan.summary();
    JsonReport {
        format_version: REPORT_FORMAT_VERSION,
        source,
        cycle,
        summary: JsonSummary {
            counts: summary,
            drift: summary.drift(),
        },
        accounts: &plan.accounts,
    }
}

/// Writes [`render`]'s output to `out`; JSON as it is encoded, so that a large report is
/// never held whole.
pub fn write(
    plan: &Plan,
    source: &str,
    format: Format,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    match format {
        Format::Json => write_json(&json_report(plan, source, None), out),
        other => out.write_all(render(plan, source, other).as_bytes()),
    }
}

/// Writes the JSON report of a daemon cycle: the plan report plus `generated_at`,
/// `config_hash` and `deletions` ([`CycleFacts`]), `plan` being the state after the cycle's
/// deletions; as it is encoded, like [`write`].
pub fn write_cycle(
    plan: &Plan,
    source: &str,
    cycle: &CycleFacts,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    write_json(&json_report(plan, source, Some(cycle)), out)
}

fn write_json(report: &JsonReport<'_>, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    out.write_all(b"\n")
}

/// Each action's mark and colour. `missing` is deliberately not Terraform's green `+`
/// ("will be created"): cfgroups never creates a group, it only reports the absence.
fn symbol(action: Action) -> (&'static str, Style) {
    let color = |c: AnsiColor| Style::new().fg_color(Some(c.into()));
    match action {
        Action::Delete => ("-", color(AnsiColor::Red)),
        Action::Blocked => ("!", color(AnsiColor::Yellow)),
        Action::Missing => ("*", color(AnsiColor::Magenta)),
        Action::Unmanaged => ("?", color(AnsiColor::Cyan)),
        Action::InSync => (" ", Style::new()),
    }
}

/// The one-line legend of the marks, which also says the delete-only model: a `missing`
/// group is reported, never created.
pub const LEGEND: &str = "Marks: - deleted by apply, ! blocked (kept), * missing: reported, \
                          never created (cfgroups only deletes), ? unmanaged (not declared).";

/// [`LEGEND`] for Markdown, the marks as code.
const MARKDOWN_LEGEND: &str = "Marks: `-` deleted by apply, `!` blocked (kept), `*` missing: \
                               reported, never created (cfgroups only deletes), `?` unmanaged \
                               (not declared).";

/// The headline of a plan in which no account could be listed: not "Drift".
pub const NOTHING_LISTED: &str = "No account could be listed: nothing was planned or deleted.";

/// Whether every account of a non-empty plan failed to list.
fn nothing_listed(summary: &Summary) -> bool {
    summary.accounts > 0 && summary.listing_failed == summary.accounts
}

fn action_word(action: Action) -> &'static str {
    match action {
        Action::Delete => "delete",
        Action::Blocked => "blocked",
        Action::Missing => "missing",
        Action::Unmanaged => "unmanaged",
        Action::InSync => "in sync",
    }
}

/// Why an item is what it is, in a few words.
pub fn explain(item: &PlanItem) -> String {
    let mut why = match (&item.blocked, item.cause) {
        (Some(reason), _) => blocked_text(reason),
        (None, Cause::DeclaredAbsent) if item.action == Action::InSync => {
            "declared absent, already gone".to_owned()
        }
        (None, Cause::DeclaredAbsent) => "declared absent".to_owned(),
        (None, Cause::DeclaredPresent) if item.action == Action::Missing => {
            "declared present, not found (reported only: cfgroups never creates groups)".to_owned()
        }
        (None, Cause::DeclaredPresent) => "declared present".to_owned(),
        (None, Cause::NotDeclared) if item.action == Action::Delete => {
            "not declared (unmanaged: delete)".to_owned()
        }
        (None, Cause::NotDeclared) => "exists, not declared".to_owned(),
    };
    if let Some(note) = &item.note {
        let _ = write!(why, "; {note}");
    }
    why
}

fn blocked_text(reason: &BlockReason) -> String {
    match reason {
        BlockReason::Protected { pattern } => format!("protected by {pattern:?}"),
        BlockReason::AmbiguousName { matches } => {
            let ids: Vec<&str> = matches.iter().map(|id| id.as_str()).collect();
            format!(
                "name matches {} groups ({}); declare the id instead",
                matches.len(),
                ids.join(", ")
            )
        }
        BlockReason::IdNameMismatch { declared, live } => {
            format!("id/name mismatch: declared {declared:?}, live name {live:?}")
        }
        BlockReason::OverMaxDeletes { planned, max } => {
            format!("{planned} deletions planned, max_deletes is {max}")
        }
        BlockReason::ConflictingDeclarations => "conflicting declarations".to_owned(),
        BlockReason::NameOfAnotherDeclaredGroup { declared_id } => format!(
            "its name is declared for group {declared_id}; declare this group by id to decide"
        ),
        BlockReason::Suspended { by } => format!("account suspended ({})", Escaped(by)),
    }
}

fn account_title(account: &AccountPlan) -> String {
    match &account.label {
        Some(label) => format!("{} ({})", Escaped(label), account.id),
        None => account.id.to_string(),
    }
}

fn summary_line(summary: &Summary) -> String {
    let failed = match summary.listing_failed {
        1 => "1 account failed to list".to_owned(),
        n => format!("{n} accounts failed to list"),
    };
    format!(
        "{} to delete, {} blocked, {} missing, {} unmanaged, {} in sync, {failed}.",
        summary.delete, summary.blocked, summary.missing, summary.unmanaged, summary.in_sync
    )
}

/// The text report: a block per account, drift lines marked `-`, `!`, `*`, `?`.
pub fn text(plan: &Plan, source: &str) -> String {
    text_for("plan", plan, source)
}

/// [`text`], headed `cfgroups COMMAND:` (`apply` shows the same report).
pub fn text_for(command: &str, plan: &Plan, source: &str) -> String {
    let mut out = String::new();
    let bold = Style::new().bold();
    let _ = writeln!(
        out,
        "cfgroups {command}: {} account(s), listed from {source}",
        plan.accounts.len()
    );
    for account in &plan.accounts {
        let _ = write!(out, "\n{bold}{}{bold:#}", account_title(account));
        match &account.listing {
            Listing::ListingFailed { error, hint, .. } => {
                let red = symbol(Action::Delete).1;
                let _ = writeln!(out, "\n  {red}x listing failed:{red:#} {}", Escaped(error));
                if let Some(hint) = hint {
                    let _ = writeln!(out, "    hint: {}", Escaped(hint));
                }
                let _ = writeln!(out, "    no deletions for this account this cycle");
                if let Some(by) = &account.suspended {
                    let _ = writeln!(out, "    suspended ({})", Escaped(by));
                }
                continue;
            }
            Listing::Ok { groups } => {
                let _ = writeln!(
                    out,
                    ": {groups} groups listed, unmanaged: {}, max_deletes: {}",
                    policy_word(account),
                    account.max_deletes
                );
            }
        }
        if let Some(by) = &account.suspended {
            let yellow = symbol(Action::Blocked).1;
            let _ = writeln!(
                out,
                "  {yellow}|| suspended{yellow:#} ({}): listed and reported, nothing is deleted",
                Escaped(by)
            );
        }
        let drift: Vec<&PlanItem> = account
            .items
            .iter()
            .filter(|i| i.action != Action::InSync)
            .collect();
        let width = drift
            .iter()
            .map(|i| display_name(i).chars().count())
            .max()
            .unwrap_or(0);
        for item in &drift {
            let (mark, style) = symbol(item.action);
            let id = item.id.as_ref().map(|id| id.as_str()).unwrap_or("-");
            let _ = writeln!(
                out,
                "  {style}{mark} {:<9}{style:#}  {:<width$}  {id:<32}  {}",
                action_word(item.action),
                display_name(item),
                explain(item),
            );
        }
        let in_sync = account.items.len() - drift.len();
        let _ = write!(out, "    {in_sync} in sync");
        if account.ignored > 0 {
            let _ = write!(out, ", {} unmanaged ignored", account.ignored);
        }
        out.push('\n');
    }
    let summary = plan.summary();
    let verdict = if nothing_listed(&summary) {
        NOTHING_LISTED
    } else if summary.drift() {
        "Drift."
    } else {
        "No drift."
    };
    let _ = writeln!(out, "\n{bold}{verdict}{bold:#} {}", summary_line(&summary));
    let _ = writeln!(out, "{LEGEND}");
    out
}

/// The group's name, quoted and escaped (see [`crate::shown`]), or `(by id)`.
fn display_name(item: &PlanItem) -> String {
    match &item.name {
        Some(name) => Quoted(name).to_string(),
        None => "(by id)".to_owned(),
    }
}

fn policy_word(account: &AccountPlan) -> &'static str {
    match account.unmanaged {
        crate::config::UnmanagedPolicy::Ignore => "ignore",
        crate::config::UnmanagedPolicy::Report => "report",
        crate::config::UnmanagedPolicy::Delete => "delete",
    }
}

/// Escapes text for a Markdown table cell.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// The Markdown report: a summary table, then the drift of each account.
pub fn markdown(plan: &Plan, source: &str) -> String {
    let summary = plan.summary();
    let mut out = String::from("### cfgroups plan\n\n");
    let verdict = if nothing_listed(&summary) {
        format!(":x: **{NOTHING_LISTED}**")
    } else if summary.drift() {
        "**Drift detected.**".to_owned()
    } else {
        "**No drift.**".to_owned()
    };
    let _ = writeln!(out, "{verdict} {}\n", summary_line(&summary));
    let _ = writeln!(out, "Listed from `{}`.\n", source.replace('`', "'"));
    let _ = writeln!(out, "{MARKDOWN_LEGEND}\n");
    out.push_str("| Account | Delete | Blocked | Missing | Unmanaged | In sync | Listing |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---|\n");
    for account in &plan.accounts {
        let counts = account.summary();
        let listing = match account.listing {
            Listing::Ok { .. } => "ok",
            Listing::ListingFailed { .. } => "**failed**",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {listing} |",
            md(&account_title(account)),
            counts.delete,
            counts.blocked,
            counts.missing,
            counts.unmanaged,
            counts.in_sync,
        );
    }
    for account in &plan.accounts {
        let drift: Vec<&PlanItem> = account
            .items
            .iter()
            .filter(|i| i.action != Action::InSync)
            .collect();
        let suspended = account.suspended.as_ref().map(|by| {
            format!(
                ":pause_button: **Suspended** ({}): listed and reported, nothing is deleted.\n",
                md(&Escaped(by).to_string())
            )
        });
        if let Listing::ListingFailed { error, hint, .. } = &account.listing {
            let _ = writeln!(
                out,
                "\n#### {}\n\n:x: Listing failed, so nothing is deleted in this account: {}",
                md(&account_title(account)),
                md(&Escaped(error).to_string())
            );
            if let Some(hint) = hint {
                let _ = writeln!(out, "\nHint: {}", md(&Escaped(hint).to_string()));
            }
            if let Some(suspended) = &suspended {
                let _ = write!(out, "\n{suspended}");
            }
            continue;
        }
        if drift.is_empty() && suspended.is_none() {
            continue;
        }
        let _ = writeln!(out, "\n#### {}\n", md(&account_title(account)));
        if let Some(suspended) = &suspended {
            let _ = writeln!(out, "{suspended}");
        }
        if drift.is_empty() {
            continue;
        }
        out.push_str("| Action | Group | Id | Why |\n|---|---|---|---|\n");
        for item in drift {
            let id = item
                .id
                .as_ref()
                .map(|id| format!("`{id}`"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} {} | {} | {id} | {} |",
                md(symbol(item.action).0.trim()),
                action_word(item.action),
                md(&display_name(item)),
                md(&explain(item)),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, ObservedGroup};
    use crate::plan::{PlanOptions, plan};

    fn plan_with(name: &str, label: &str) -> Plan {
        let id = "023e105f4ecef8ad9ca31a8372d0c353";
        let yaml = format!(
            "version: 1\naccounts:\n  - id: {id}\n    label: {}\n    unmanaged: report\n    groups: []\n",
            serde_json::Value::String(label.to_owned())
        );
        let desired = crate::config::parse(&yaml, std::path::Path::new("g.yaml")).unwrap();
        let account: AccountId = id.parse().unwrap();
        let group = ObservedGroup {
            id: "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a".parse().unwrap(),
            name: name.to_owned(),
            created_on: None,
            modified_on: None,
            policies: None,
        };
        let observed = crate::model::Observed::from([(account, Ok(vec![group]))]);
        plan(&desired, &observed, PlanOptions::default())
    }

    fn failed_plan(accounts: &[&str]) -> Plan {
        let yaml = accounts
            .iter()
            .fold("version: 1\naccounts:\n".to_owned(), |yaml, id| {
                yaml + &format!("  - id: {id}\n    groups: [{{name: Ops, state: present}}]\n")
            });
        let desired = crate::config::parse(&yaml, std::path::Path::new("g.yaml")).unwrap();
        let mut observed = crate::model::Observed::new();
        for (index, id) in accounts.iter().enumerate() {
            let listing = if index == 0 {
                Err(crate::model::ListingFailure {
                    status: Some(403),
                    codes: vec![9109],
                    hint: Some("check the token's account resources".to_owned()),
                    ..crate::model::ListingFailure::new("HTTP 403: [9109] Unauthorized".to_owned())
                })
            } else {
                Ok(Vec::new())
            };
            observed.insert(id.parse().unwrap(), listing);
        }
        plan(&desired, &observed, PlanOptions::default())
    }

    #[test]
    fn a_plan_in_which_no_account_could_be_listed_is_headed_as_an_error_not_drift() {
        let nothing = failed_plan(&["023e105f4ecef8ad9ca31a8372d0c353"]);
        let text = render(&nothing, "cloudflare", Format::Text);
        assert!(text.contains(NOTHING_LISTED), "{text}");
        assert!(!text.contains("Drift."), "{text}");
        assert!(
            text.contains("hint: check the token's account resources"),
            "{text}"
        );
        let markdown = render(&nothing, "cloudflare", Format::Markdown);
        assert!(markdown.contains(NOTHING_LISTED), "{markdown}");
        assert!(!markdown.contains("Drift detected"), "{markdown}");
        assert!(markdown.contains("Hint: check"), "{markdown}");
        let json: serde_json::Value =
            serde_json::from_str(&render(&nothing, "cloudflare", Format::Json)).unwrap();
        let listing = &json["accounts"][0]["listing"];
        assert_eq!(listing["status"], "listing_failed");
        assert_eq!(listing["error"], "HTTP 403: [9109] Unauthorized");
        assert_eq!(listing["codes"], serde_json::json!([9109]));
        assert_eq!(listing["hint"], "check the token's account resources");

        // One account of two listed: drift, as before.
        let some = failed_plan(&[
            "023e105f4ecef8ad9ca31a8372d0c353",
            "9a7806061c88ada191ed06f989cc3dac",
        ]);
        let text = render(&some, "cloudflare", Format::Text);
        assert!(text.contains("Drift."), "{text}");
        assert!(!text.contains(NOTHING_LISTED), "{text}");
    }

    #[test]
    fn missing_is_not_marked_as_a_creation_and_the_legend_says_nothing_is_created() {
        let plan = failed_plan(&[
            "023e105f4ecef8ad9ca31a8372d0c353",
            "9a7806061c88ada191ed06f989cc3dac",
        ]);
        for format in [Format::Text, Format::Markdown] {
            let out = render(&plan, "s", format);
            let missing = out
                .lines()
                .find(|l| l.contains("missing") && l.contains("Ops"))
                .unwrap_or_else(|| panic!("no missing line in {out}"));
            assert!(!missing.trim_start().starts_with('+'), "{missing}");
            assert!(!missing.trim_start().starts_with("| +"), "{missing}");
            assert!(
                out.contains("never created (cfgroups only deletes)"),
                "{out}"
            );
        }
    }

    #[test]
    fn a_suspended_account_says_so_in_every_format() {
        let yaml = "version: 1\naccounts:\n  - id: 023e105f4ecef8ad9ca31a8372d0c353\n    suspend: true\n    groups:\n      - {name: Ops, state: absent}\n";
        let desired = crate::config::parse(yaml, std::path::Path::new("g.yaml")).unwrap();
        let account: AccountId = "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap();
        let group = ObservedGroup {
            id: "3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a".parse().unwrap(),
            name: "Ops".to_owned(),
            created_on: None,
            modified_on: None,
            policies: None,
        };
        let observed = crate::model::Observed::from([(account, Ok(vec![group]))]);
        let plan = plan(&desired, &observed, PlanOptions::default());
        let text = anstream::adapter::strip_str(&render(&plan, "s", Format::Text)).to_string();
        assert!(
            text.contains(
                "|| suspended (suspend: true in g.yaml): listed and reported, nothing is deleted"
            ),
            "{text}"
        );
        assert!(
            text.contains("account suspended (suspend: true in g.yaml)"),
            "{text}"
        );
        let markdown = render(&plan, "s", Format::Markdown);
        assert!(
            markdown.contains(":pause_button: **Suspended**"),
            "{markdown}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&plan, "s", Format::Json)).unwrap();
        assert_eq!(json["accounts"][0]["suspended"], "suspend: true in g.yaml");
        assert_eq!(
            json["accounts"][0]["items"][0]["blocked"]["kind"],
            "suspended"
        );
        assert_eq!(json["summary"]["delete"], 0);
    }

    #[test]
    fn a_hostile_name_or_label_cannot_forge_lines_or_reach_the_terminal() {
        let hostile = "Ops\n  - delete     Admins\r\u{1b}[2K\u{1b}[1A\u{202e}";
        let benign = plan_with("Ops", "production");
        let attacked = plan_with(hostile, hostile);
        for format in [Format::Text, Format::Markdown] {
            let expected_lines = render(&benign, "s", format).lines().count();
            let out = render(&attacked, "s", format);
            assert_eq!(out.lines().count(), expected_lines, "{out}");
            assert!(
                !out.contains('\r') && !out.contains("\u{1b}[2K") && !out.contains('\u{202e}'),
                "{out}"
            );
            assert!(
                !out.lines().any(|l| l.trim_start().starts_with("- delete")),
                "{out}"
            );
        }
    }
}
