//! An event as a Slack-compatible incoming-webhook message: `text` (what every compatible
//! server shows, and Slack's notification fallback) plus Block Kit `blocks` for Slack itself.
//!
//! Outside text (group names, labels, Cloudflare's messages) is already quoted and escaped
//! in the event's headline; here `&`, `<` and `>` are escaped as Slack asks, so that no name
//! can turn into a link or a mention (`<!channel>`).

use serde_json::{Value, json};

use super::event::Event;
use crate::config::EventKind;

fn emoji(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Deleted => ":wastebasket:",
        EventKind::DeleteFailed => ":x:",
        EventKind::Blocked => ":no_entry:",
        EventKind::ListingFailed => ":warning:",
        EventKind::Drift => ":mag:",
        EventKind::Suspended => ":double_vertical_bar:",
        EventKind::Recovered => ":white_check_mark:",
    }
}

/// Escapes the three characters Slack's mrkdwn treats as control.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The message for `event`.
pub fn message(event: &Event) -> Value {
    let title = format!("{} {}", emoji(event.event), escape(&event.headline));
    let mut lines = vec![title.clone()];
    if let Some(hint) = event.reason.as_ref().and_then(|r| r.hint.as_deref()) {
        lines.push(format!("*Hint:* {}", escape(hint)));
    }
    if let Some(command) = &event.restore_command {
        lines.push(format!("*Undo:* `{}`", escape(&command.replace('`', "'"))));
    }
    let context = format!(
        "cfgroups · event `{}` · run `{}` · {}",
        event.event.as_str(),
        escape(&event.run_id),
        escape(&event.at)
    );
    json!({
        "text": title,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": lines.join("\n")}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}
        ]
    })
}

/// The message as the bytes POSTed.
pub fn to_json(event: &Event) -> Vec<u8> {
    serde_json::to_vec(&message(event)).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::event::{AccountRef, Context, GroupRef, Reason};

    #[test]
    fn no_name_becomes_a_mention_or_a_link() {
        let context = Context {
            run_id: "r".into(),
            at: "t".into(),
        };
        let event = Event::blocked(
            &context,
            AccountRef {
                id: "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap(),
                label: Some("<!channel>".into()),
            },
            GroupRef {
                id: None,
                name: Some("<https://evil.example|click> & co".into()),
            },
            Reason::new("ambiguous_name", "x"),
        );
        let text = message(&event).to_string();
        assert!(
            !text.contains("<!channel>") && !text.contains("<https://"),
            "{text}"
        );
        assert!(text.contains("&lt;!channel&gt;"), "{text}");
    }
}
