//! What `apply` shows while its requests wait for Cloudflare's rate limit (or for a long
//! wait in the request budget): a countdown on a terminal, redrawn every second, or a line
//! every 10 seconds when stderr is not a terminal. The requests resume by themselves.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;

use crate::cloudflare::{Budget, Waiting};

/// How often the budget is looked at.
const TICK: Duration = Duration::from_secs(1);

/// How often a line is written when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(10);

/// A wait in the budget's own window is shown only when it is at least this long; a wait
/// the server announced is always shown.
const SHOW_BUDGET_WAITS_FROM: Duration = Duration::from_secs(5);

/// Where the notice goes.
pub enum Sink {
    /// A line on stderr every [`LINE_EVERY`].
    Lines,
    /// A countdown line among the terminal's progress bars.
    Terminal(MultiProgress),
}

/// The running notice; it ends when dropped.
pub struct WaitNotice {
    task: JoinHandle<()>,
}

impl Drop for WaitNotice {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The notice's text for `waiting`.
pub fn describe(waiting: &Waiting) -> String {
    let left = match waiting.ready_in {
        Some(left) => format!("{}s", left.as_secs_f64().ceil()),
        None => "until a request in flight is answered".to_owned(),
    };
    format!(
        "Waiting for {}: {left} left; requests resume by themselves.",
        waiting.reason
    )
}

fn shown(waiting: &Waiting) -> bool {
    waiting.reason.announced()
        || waiting
            .ready_in
            .is_none_or(|left| left >= SHOW_BUDGET_WAITS_FROM)
}

/// Starts watching `budget`, telling `sink` about every wait worth showing.
pub fn start(budget: Budget, sink: Sink) -> WaitNotice {
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut bar: Option<ProgressBar> = None;
        let mut last_line: Option<tokio::time::Instant> = None;
        loop {
            ticker.tick().await;
            let waiting = budget.snapshot().waiting.filter(shown);
            match (&sink, waiting) {
                (Sink::Terminal(multi), Some(waiting)) => {
                    let bar = bar.get_or_insert_with(|| {
                        let bar = multi.add(ProgressBar::new_spinner());
                        if let Ok(style) = ProgressStyle::with_template("{spinner} {wide_msg}") {
                            bar.set_style(style);
                        }
                        bar
                    });
                    bar.set_message(describe(&waiting));
                    bar.tick();
                }
                (Sink::Terminal(_), None) => {
                    if let Some(bar) = bar.take() {
                        bar.finish_and_clear();
                    }
                }
                (Sink::Lines, Some(waiting)) => {
                    let now = tokio::time::Instant::now();
                    if last_line.is_none_or(|at| now - at >= LINE_EVERY) {
                        eprintln!("{}", describe(&waiting));
                        last_line = Some(now);
                    }
                }
                (Sink::Lines, None) => {
                    if last_line.take().is_some() {
                        eprintln!("Requests resumed.");
                    }
                }
            }
        }
    });
    WaitNotice { task }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudflare::WaitReason;

    #[test]
    fn the_notice_names_the_reason_and_the_time_left() {
        let text = describe(&Waiting {
            reason: WaitReason::Lockout,
            ready_in: Some(Duration::from_millis(64_200)),
        });
        assert_eq!(
            text,
            "Waiting for Cloudflare's rate-limit lockout (HTTP 429): 65s left; requests resume by themselves."
        );
    }

    #[test]
    fn short_budget_waits_are_not_shown_but_announced_ones_are() {
        let budget = |secs| Waiting {
            reason: WaitReason::Budget,
            ready_in: Some(Duration::from_secs(secs)),
        };
        assert!(!shown(&budget(1)));
        assert!(shown(&budget(20)));
        assert!(shown(&Waiting {
            reason: WaitReason::ServerReset,
            ready_in: Some(Duration::from_secs(1)),
        }));
    }
}
