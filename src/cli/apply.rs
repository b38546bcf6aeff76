//! `apply`: list fresh, plan, check the reviewed plan, confirm, then delete with a journal.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::output::{confirm, print_out};
use super::{ApplyArgs, Outcome, connect};
use crate::apply::{self, ApplyOptions, ApplySummary, DeletionResult, Progress, StopSignal};
use crate::config;
use crate::journal::{self, JOURNAL_FILE, Journal};
use crate::plan::{self, PlanOptions};
use crate::report::{self, Format};
use crate::saved_plan::{self, SavedPlan};
use crate::source::{self, AnySource, GroupSource, SourceSpec};
use crate::state_dir;

pub async fn apply(args: &ApplyArgs) -> anyhow::Result<Outcome> {
    let desired = config::load(&args.config.config)?;
    if args.source.source != SourceSpec::Cloudflare && !args.dry_run {
        bail!(
            "apply deletes through the live API, so it lists from it too: a snapshot or exec \
             listing may be stale; use --source cloudflare, or --dry-run to preview"
        );
    }
    let reviewed = args.plan.as_deref().map(SavedPlan::load).transpose()?;
    let source = connect::source(&args.source)?;
    let observed = source::list_accounts(
        &source,
        &desired.account_ids(),
        usize::from(args.source.concurrency),
    )
    .await;

    let journal = if args.dry_run {
        None
    } else {
        let path = state_dir::resolve(args.state.state_dir.clone()).join(JOURNAL_FILE);
        let journal = Arc::new(Journal::open(&path)?);
        resolve_interrupted(&journal, &observed)?;
        Some(journal)
    };

    let mut plan = plan::plan(&desired, &observed, PlanOptions { force: args.force });
    print_out(&report::render(&plan, &source.describe(), Format::Text))?;
    let summary = plan.summary();
    if let Some(reviewed) = &reviewed {
        let difference = reviewed.difference(&saved_plan::deletions(&plan));
        if !difference.is_empty() {
            bail!(
                "the live state or the config moved since the plan was reviewed; nothing was \
                 deleted. Differences (+ not reviewed, - reviewed but no longer planned):\n  {}",
                difference.join("\n  ")
            );
        }
        // The deletions are what was reviewed and what safety rests on; an edit elsewhere in
        // the files (a comment, a `present` group) does not stop the apply, but is said.
        if reviewed.config_hash != desired.content_hash {
            eprintln!(
                "Warning: the desired-state files changed since the plan was reviewed; the \
                 deletions are identical, so applying."
            );
        }
    }
    let unfinished = summary.blocked + summary.listing_failed > 0;
    let (Some(journal), AnySource::Cloudflare(live)) = (journal, &source) else {
        eprintln!("Dry run: nothing was deleted.");
        return Ok(if summary.listing_failed > 0 {
            Outcome::Failed
        } else {
            Outcome::Success
        });
    };
    if summary.delete == 0 {
        print_out("\nNothing to delete.\n")?;
        return Ok(if unfinished {
            Outcome::Failed
        } else {
            Outcome::Success
        });
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "refusing to delete {} group(s) without confirmation: run on a terminal, or \
                 pass --yes",
                summary.delete
            );
        }
        let agreed = confirm(
            &mut std::io::stdin().lock(),
            &mut std::io::stderr(),
            summary.delete,
        )?;
        if !agreed {
            eprintln!("Apply cancelled: nothing was deleted.");
            return Ok(Outcome::Failed);
        }
        // The answer may have come long after the listing: list again, and act only if the
        // deletions are still exactly the ones just approved.
        let fresh = source::list_accounts(
            &source,
            &desired.account_ids(),
            usize::from(args.source.concurrency),
        )
        .await;
        let replanned = plan::plan(&desired, &fresh, PlanOptions { force: args.force });
        let approved = SavedPlan::new(&plan, &desired.content_hash);
        let difference = approved.difference(&saved_plan::deletions(&replanned));
        if !difference.is_empty() {
            bail!(
                "the live groups changed while waiting for the answer; nothing was deleted. \
                 Differences (+ not approved, - approved but no longer planned):\n  {}",
                difference.join("\n  ")
            );
        }
        plan = replanned;
    }

    let stop = StopSignal::default();
    watch_signals(stop.clone());
    let options = ApplyOptions {
        backup_members: !args.no_backup_members,
        concurrency: usize::from(args.apply_concurrency),
        run_id: journal::new_run_id(),
    };
    let bar = progress_bar(summary.delete as u64);
    let on_progress = |progress: Progress<'_>| match &bar {
        Some(bar) => {
            bar.inc(1);
            bar.set_message(progress.group.name.clone());
        }
        None => eprintln!(
            "{} {} {} {:?}",
            result_word(progress.result),
            progress.account,
            progress.group.id,
            progress.group.name
        ),
    };
    let result = apply::execute(
        &plan,
        live.client(),
        &journal,
        &options,
        &stop,
        &on_progress,
    )
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let applied = result.with_context(|| {
        format!(
            "journal {} could not be written; no further deletion was started",
            journal.path().display()
        )
    })?;
    print_out(&summary_text(&applied, journal.path()))?;
    Ok(if applied.complete() && !unfinished {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

/// Settles what earlier runs left unsettled (an intent without an outcome after a crash, a
/// failed delete whose group is gone all the same), from the fresh listing, and says so.
fn resolve_interrupted(journal: &Journal, observed: &source::Observed) -> anyhow::Result<()> {
    for record in apply::settle(journal, observed)? {
        if let journal::Record::Outcome {
            account,
            group_id,
            outcome,
            ..
        } = &record
        {
            eprintln!(
                "An earlier run left the deletion of group {group_id} in account {account} \
                 unsettled (interrupted, or failed); from the fresh listing: {outcome:?}"
            );
        }
    }
    Ok(())
}

fn progress_bar(total: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} deleted {wide_msg}") {
        bar.set_style(style);
    }
    Some(bar)
}

fn result_word(result: &DeletionResult) -> String {
    match result {
        DeletionResult::Deleted => "deleted".to_owned(),
        DeletionResult::AlreadyAbsent => "already-absent".to_owned(),
        DeletionResult::Failed { error } => format!("failed ({error})"),
        DeletionResult::NotStarted => "not-started".to_owned(),
    }
}

fn summary_text(applied: &ApplySummary, journal: &std::path::Path) -> String {
    let line = |t: &apply::AccountTally| {
        format!(
            "{} deleted, {} already absent, {} failed, {} blocked, {} not started",
            t.deleted, t.already_absent, t.failed, t.blocked, t.not_started
        )
    };
    let mut text = format!("\nApply: {}.\n", line(&applied.total()));
    for (account, tally) in &applied.accounts {
        text.push_str(&format!("  {account}: {}\n", line(tally)));
    }
    if !applied.members_backed_up {
        text.push_str("Members were NOT backed up (--no-backup-members): a restore recreates groups without members.\n");
    }
    text.push_str(&format!("Journal: {}\n", journal.display()));
    text
}

/// First SIGINT/SIGTERM: start no new deletion, let the ones in flight finish and be
/// journaled. Second: exit at once (a line torn by the exit is ended by the next writer and
/// skipped by readers).
fn watch_signals(stop: StopSignal) {
    tokio::spawn(async move {
        if wait_for_signal().await.is_err() {
            return;
        }
        stop.stop();
        eprintln!(
            "Stopping: no new deletion starts; those in flight finish. Signal again to exit now."
        );
        if wait_for_signal().await.is_ok() {
            std::process::exit(130);
        }
    });
}

async fn wait_for_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = term.recv() => Ok(()),
    }
}
