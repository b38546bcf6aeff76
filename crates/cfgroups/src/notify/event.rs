//! One notification: what happened, to which account and group, why, in which run, and for a
//! deletion the command that undoes it. Serialized as is, it is the generic webhook's JSON
//! payload (`format_version` 1: fields are only ever added); [`super::slack`] renders the
//! same event for people.
//!
//! Names and labels are carried exactly in their JSON fields (JSON escapes what needs
//! escaping); the one-line `summary` shows them quoted and escaped as every report does
//! ([`crate::shown`]), so no name can forge a line or drive a terminal.

use serde::Serialize;

use crate::config::EventKind;
use crate::model::{AccountId, GroupId, ListingFailure};
use crate::refusal::Refusal;
use crate::shown::{Escaped, Quoted};

/// The version of the webhook payload.
pub const PAYLOAD_FORMAT_VERSION: u32 = 1;

/// A notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub format_version: u32,
    pub event: EventKind,
    /// A problem sent again because it persists (the sink's `reminder`).
    pub reminder: bool,
    /// The run id the cycle journals under (`cfgroups journal` shows it).
    pub run_id: String,
    /// When the event was made, RFC 3339, UTC.
    pub at: String,
    pub account: AccountRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupRef>,
    /// What cfgroups did: `delete` (tried to delete the group), `skip_delete` (a safety rule
    /// stopped the deletion), `skip_account` (nothing in the account is deleted), `report`.
    pub action: &'static str,
    /// For `delete`: `deleted` or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// For `drift`: the account's counts after the cycle's deletions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftCounts>,
    /// For `recovered`: the event whose problem ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_from: Option<EventKind>,
    /// For `deleted`: the command that recreates the group from its journal backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_command: Option<String>,
    /// The event in one line, for people, with the hint and the undo command when there
    /// are.
    pub summary: String,
    /// The summary without the hint and the undo command (Slack shows those apart).
    #[serde(skip)]
    pub headline: String,
}

/// The account an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountRef {
    pub id: AccountId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// The group an event is about: its live id and name, or what the file declares when no
/// single live group is meant (an ambiguous name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<GroupId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Why: a safety rule, Cloudflare's answer, or a listing error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// `protected`, `ambiguous_name`, ... (the plan's block reasons), `suspended`,
    /// `refused` (Cloudflare refused for good), `error` (a failure that may pass),
    /// `listing`.
    pub kind: String,
    /// The reason for people (escaped, one line).
    pub message: String,
    /// Cloudflare's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Cloudflare's error code, when it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// Cloudflare's error message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloudflare_message: Option<String>,
    /// What it most likely means, when Cloudflare refused for good.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Reason {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
            status: None,
            code: None,
            cloudflare_message: None,
            hint: None,
        }
    }

    /// Cloudflare's permanent refusal.
    pub fn refused(refusal: &Refusal) -> Self {
        Self {
            kind: "refused".to_owned(),
            message: format!(
                "Cloudflare refuses this deletion for good: {}",
                refusal.answer()
            ),
            status: Some(refusal.status),
            code: refusal.code,
            cloudflare_message: Some(refusal.message.clone()),
            hint: Some(refusal.hint.clone()),
        }
    }
}

/// An account's drift after a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct DriftCounts {
    pub delete: usize,
    pub blocked: usize,
    pub missing: usize,
    pub unmanaged: usize,
}

impl DriftCounts {
    pub fn any(&self) -> bool {
        self.delete + self.blocked + self.missing + self.unmanaged > 0
    }
}

impl std::fmt::Display for DriftCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} to delete, {} blocked, {} missing, {} unmanaged",
            self.delete, self.blocked, self.missing, self.unmanaged
        )
    }
}

impl AccountRef {
    /// `production (023e...)`, or the id alone.
    pub fn shown(&self) -> String {
        match &self.label {
            Some(label) => format!("{} ({})", Escaped(label), self.id),
            None => self.id.to_string(),
        }
    }
}

impl GroupRef {
    /// `"Name" (id)`, `"Name"` or the id, quoted and escaped.
    pub fn shown(&self) -> String {
        match (&self.name, &self.id) {
            (Some(name), Some(id)) => format!("{} ({id})", Quoted(name)),
            (Some(name), None) => Quoted(name).to_string(),
            (None, Some(id)) => id.to_string(),
            (None, None) => "(unnamed)".to_owned(),
        }
    }
}

/// The parts every event of one cycle shares.
#[derive(Debug, Clone)]
pub struct Context {
    pub run_id: String,
    pub at: String,
}

impl Context {
    /// The context of the run `run_id`, now.
    pub fn now(run_id: &str) -> Self {
        Self {
            run_id: run_id.to_owned(),
            at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }
}

impl Event {
    fn new(
        context: &Context,
        event: EventKind,
        account: AccountRef,
        group: Option<GroupRef>,
        action: &'static str,
    ) -> Self {
        Self {
            format_version: PAYLOAD_FORMAT_VERSION,
            event,
            reminder: false,
            run_id: context.run_id.clone(),
            at: context.at.clone(),
            account,
            group,
            action,
            outcome: None,
            reason: None,
            drift: None,
            recovered_from: None,
            restore_command: None,
            summary: String::new(),
            headline: String::new(),
        }
    }

    /// Sets the headline, and the summary: the headline, then the hint and the undo command.
    fn finish(mut self, headline: String) -> Self {
        let mut summary = headline.clone();
        if let Some(hint) = self.reason.as_ref().and_then(|r| r.hint.as_deref()) {
            summary.push_str(&format!(" Hint: {hint}."));
        }
        if let Some(command) = &self.restore_command {
            summary.push_str(&format!(" Undo: {command}"));
        }
        self.headline = headline;
        self.summary = summary;
        self
    }

    /// A group was deleted; `restore_command` undoes it.
    pub fn deleted(
        context: &Context,
        account: AccountRef,
        group: GroupRef,
        why: Reason,
        restore_command: String,
    ) -> Self {
        let headline = format!(
            "Deleted group {} in {}: {}.",
            group.shown(),
            account.shown(),
            why.message
        );
        Self {
            outcome: Some("deleted"),
            reason: Some(why),
            restore_command: Some(restore_command),
            ..Self::new(context, EventKind::Deleted, account, Some(group), "delete")
        }
        .finish(headline)
    }

    /// A deletion failed for `why` (Cloudflare's refusal, or an error that may pass).
    pub fn delete_failed(
        context: &Context,
        account: AccountRef,
        group: GroupRef,
        why: Reason,
    ) -> Self {
        let headline = format!(
            "Could not delete group {} in {}: {}.",
            group.shown(),
            account.shown(),
            why.message
        );
        Self {
            outcome: Some("failed"),
            reason: Some(why),
            ..Self::new(
                context,
                EventKind::DeleteFailed,
                account,
                Some(group),
                "delete",
            )
        }
        .finish(headline)
    }

    /// A safety rule stops the deletion of a group.
    pub fn blocked(context: &Context, account: AccountRef, group: GroupRef, why: Reason) -> Self {
        let headline = format!(
            "Not deleting group {} in {}: {}.",
            group.shown(),
            account.shown(),
            why.message
        );
        Self {
            reason: Some(why),
            ..Self::new(
                context,
                EventKind::Blocked,
                account,
                Some(group),
                "skip_delete",
            )
        }
        .finish(headline)
    }

    /// An account could not be listed: why, with Cloudflare's status, first error code and
    /// the hint when there are.
    pub fn listing_failed(
        context: &Context,
        account: AccountRef,
        failure: &ListingFailure,
    ) -> Self {
        let headline = format!(
            "Cannot list account {}, so nothing in it is deleted: {}.",
            account.shown(),
            Escaped(&failure.message)
        );
        let reason = Reason {
            status: failure.status,
            code: failure.codes.first().copied(),
            hint: failure
                .hint
                .as_deref()
                .map(|hint| Escaped(hint).to_string()),
            ..Reason::new("listing", Escaped(&failure.message).to_string())
        };
        Self {
            reason: Some(reason),
            ..Self::new(
                context,
                EventKind::ListingFailed,
                account,
                None,
                "skip_account",
            )
        }
        .finish(headline)
    }

    /// An account's drift changed.
    pub fn drift(context: &Context, account: AccountRef, drift: DriftCounts) -> Self {
        let headline = format!("Drift in {}: {drift}.", account.shown());
        Self {
            drift: Some(drift),
            ..Self::new(context, EventKind::Drift, account, None, "report")
        }
        .finish(headline)
    }

    /// An account was suspended (`by` says how).
    pub fn suspended(context: &Context, account: AccountRef, by: &str) -> Self {
        let headline = format!(
            "Account {} is suspended ({}): listed and reported, nothing is deleted.",
            account.shown(),
            Escaped(by)
        );
        Self {
            reason: Some(Reason::new("suspended", Escaped(by).to_string())),
            ..Self::new(context, EventKind::Suspended, account, None, "skip_account")
        }
        .finish(headline)
    }

    /// The problem `previous` told of has ended.
    pub fn recovered(context: &Context, previous: &Event) -> Self {
        let what = match (previous.event, &previous.group) {
            (EventKind::Drift, _) => format!("no drift left in {}", previous.account.shown()),
            (EventKind::ListingFailed, _) => {
                format!("account {} is listed again", previous.account.shown())
            }
            (EventKind::Suspended, _) => {
                format!(
                    "account {} is no longer suspended",
                    previous.account.shown()
                )
            }
            (EventKind::Blocked, Some(group)) => format!(
                "group {} in {} is no longer blocked",
                group.shown(),
                previous.account.shown()
            ),
            (_, Some(group)) => format!(
                "the deletion of group {} in {} is no longer failing",
                group.shown(),
                previous.account.shown()
            ),
            (_, None) => format!(
                "{} in {} is over",
                previous.event.as_str(),
                previous.account.shown()
            ),
        };
        let headline = format!("Recovered: {what}.");
        Self {
            recovered_from: Some(previous.event),
            ..Self::new(
                context,
                EventKind::Recovered,
                previous.account.clone(),
                previous.group.clone(),
                "report",
            )
        }
        .finish(headline)
    }

    /// The same event sent again because it persists, in the context of a later cycle.
    pub fn reminder(&self, context: &Context) -> Self {
        let mut again = self.clone();
        again.reminder = true;
        again.run_id = context.run_id.clone();
        again.at = context.at.clone();
        again.summary = format!("Reminder: {}", self.summary);
        again.headline = format!("Reminder: {}", self.headline);
        again
    }

    /// The webhook payload.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain data cannot fail; an empty object would still be delivered.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountRef {
        AccountRef {
            id: "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap(),
            label: Some("prod\u{1b}[2J".to_owned()),
        }
    }

    #[test]
    fn a_listing_failure_carries_cloudflares_status_code_and_the_hint() {
        let context = Context {
            run_id: "r".into(),
            at: "t".into(),
        };
        let failure = ListingFailure {
            message: "HTTP 403: Authentication error".into(),
            status: Some(403),
            codes: vec![10000, 9109],
            hint: Some("check the token's Account Settings Read\u{1b}[2J".into()),
        };
        let event = Event::listing_failed(&context, account(), &failure);
        let reason = event.reason.as_ref().unwrap();
        assert_eq!(
            (reason.kind.as_str(), reason.status, reason.code),
            ("listing", Some(403), Some(10000))
        );
        assert_eq!(
            reason.hint.as_deref(),
            Some("check the token's Account Settings Read\\u{1b}[2J")
        );
        assert!(
            event
                .summary
                .ends_with("Hint: check the token's Account Settings Read\\u{1b}[2J."),
            "{}",
            event.summary
        );
    }

    #[test]
    fn summaries_quote_and_escape_outside_text_and_json_keeps_it_exact() {
        let context = Context {
            run_id: "r".into(),
            at: "t".into(),
        };
        let group = GroupRef {
            id: Some("3f1c5e0a9b8d7c6e5f4a3b2c1d0e9f8a".parse().unwrap()),
            name: Some("Ops\n- forged line".to_owned()),
        };
        let event = Event::blocked(
            &context,
            account(),
            group,
            Reason::new("protected", "protected by \"Ops*\""),
        );
        assert!(!event.summary.contains('\n') && !event.summary.contains('\u{1b}'));
        assert!(
            event.summary.contains("\"Ops\\n- forged line\""),
            "{}",
            event.summary
        );
        let json: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
        assert_eq!(json["group"]["name"], "Ops\n- forged line");
        assert_eq!(json["event"], "blocked");
        assert_eq!(json["format_version"], 1);
    }
}
