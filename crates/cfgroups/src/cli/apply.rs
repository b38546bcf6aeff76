//! `apply`: drive the reconcile pipeline once, with a person or a reviewed plan in the loop:
//! show the fresh plan, check it against the reviewed one, ask, then delete.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::bail;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::notify::RunNotifications;
use super::output::{confirm, print_out};
use super::wait_notice::{self, Sink};
use super::{ApplyArgs, Exit, connect};
use crate::apply::{AccountTally, ApplyOptions, ApplySummary, Attempts, Progress};
use crate::config::{self, DesiredState};
use crate::journal::{JOURNAL_FILE, Journal, Record};
use crate::model::DeletionOutcome;
use crate::plan::{self, BlockReason, Listing, Plan, PlanOptions};
use crate::reconcile::{Pipeline, PipelineOptions};
use crate::report;
use crate::saved_plan::{self, SavedPlan};
use crate::shown::{Escaped, Quoted};
use crate::source::{self, CloudflareSource, GroupSource, SourceSpec};
use crate::state_dir;

pub async fn apply(args: &ApplyArgs) -> anyhow::Result<Exit> {
    let desired = config::load(&args.config.config)?;
    let reviewed = args.plan.as_deref().map(SavedPlan::load).transpose()?;
    if args.force {
        eprintln!("{FORCE_BANNER}");
    }
    if args.dry_run {
        return dry_run(args, &desired, reviewed.as_ref()).await;
    }
    if args.source.source != SourceSpec::Cloudflare {
        bail!(
            "apply deletes through the live API, so it lists from it too: a snapshot or exec \
             listing may be stale; use --source cloudflare, or --dry-run to preview"
        );
    }
    let client = connect::client(&args.source.api)?;
    // One set of terminal lines for the deletions' bar and the rate-limit countdown.
    let terminal = std::io::stderr().is_terminal().then(MultiProgress::new);
    let _notice = wait_notice::start(
        client.budget().clone(),
        terminal.clone().map_or(Sink::Lines, Sink::Terminal),
    );
    let state_dir = state_dir::resolve(args.state.state_dir.clone());
    let notifications = RunNotifications::start(args.notify, &desired, &state_dir)?;
    let path = state_dir.join(JOURNAL_FILE);
    let journal = Arc::new(Journal::open(&path)?);
    let options = PipelineOptions {
        listing_concurrency: usize::from(args.source.concurrency),
        apply: ApplyOptions {
            backup_members: !args.no_backup_members,
            concurrency: usize::from(args.apply_concurrency),
        },
        plan: PlanOptions { force: args.force },
    };
    let pipeline = Pipeline::new(
        CloudflareSource::new(client.clone()),
        client,
        journal,
        options,
    );

    let mut cycle = pipeline.observe(&desired).await?;
    say_settled(&cycle.settled);
    print_out(&report::text_for(
        "apply",
        &cycle.plan,
        &pipeline.source().describe(),
    ))?;
    say_suspended(&cycle.plan);
    if let Some(reviewed) = &reviewed {
        check_reviewed(reviewed, &desired, &cycle.plan)?;
    }
    let summary = cycle.plan.summary();
    if summary.delete == 0 {
        print_out("\nNothing to delete.\n")?;
        if let Some(notifications) = notifications {
            notifications.finish(&cycle.run_id, &cycle.plan, &[]).await;
        }
        return Ok(verdict(&cycle.plan, None));
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
            return Ok(Exit::Failed);
        }
        // The answer may have come long after the listing: list again, and act only if the
        // deletions are still exactly the ones just approved.
        cycle = match pipeline.confirm(&desired, &cycle).await? {
            Ok(fresh) => fresh,
            Err(moved) => {
                eprintln!(
                    "Differences (+ not approved, - approved but no longer planned):\n  {}",
                    moved.differences.join("\n  ")
                );
                bail!(
                    "the live groups changed while waiting for the answer (differences above); \
                     nothing was deleted"
                );
            }
        };
        say_settled(&cycle.settled);
    }

    let stop = CancellationToken::new();
    watch_signals(stop.clone());
    let bar = terminal
        .as_ref()
        .map(|terminal| terminal.add(progress_bar(summary.delete as u64)));
    let refusals = std::sync::Mutex::new(Vec::new());
    let attempts = Attempts::default();
    let on_progress = |progress: Progress<'_>| {
        attempts.push(progress.account, progress.group, progress.outcome);
        if let Some(refusal) = progress.outcome.refusal() {
            refusals
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(format!(
                    "  {} {} {}: {refusal}",
                    progress.account,
                    progress.group.id,
                    Quoted(&progress.group.name)
                ));
        }
        // Each group is named as it completes, as Terraform does: above the bar on a
        // terminal (the bar alone would take the names with it when it clears).
        let line = format!(
            "{} {} {} {}",
            outcome_words(progress.outcome),
            progress.account,
            progress.group.id,
            Quoted(&progress.group.name)
        );
        match (&terminal, &bar) {
            (Some(terminal), Some(bar)) => {
                terminal.suspend(|| eprintln!("{line}"));
                bar.inc(1);
                bar.set_message(progress.group.name.clone());
            }
            _ => eprintln!("{line}"),
        }
    };
    let result = pipeline.execute(&cycle, &stop, &on_progress).await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let journal = pipeline.journal().path();
    let applied = match result {
        Ok(applied) => applied,
        Err(e) => {
            // The deletions made before the journal failed are still told to the sinks.
            if let Some(notifications) = notifications {
                notifications
                    .finish(&cycle.run_id, &cycle.plan, &attempts.into_inner())
                    .await;
            }
            return Err(anyhow::Error::from(e).context(format!(
                "journal {} could not be written; no further deletion was started",
                journal.display()
            )));
        }
    };
    print_out(&summary_text(&applied, &cycle.plan, journal))?;
    let refusals = refusals
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !refusals.is_empty() {
        print_out(&format!(
            "Refused for good by Cloudflare (asking again fails the same way):\n{}\n",
            refusals.join("\n")
        ))?;
    }
    if let Some(notifications) = notifications {
        notifications
            .finish(&cycle.run_id, &cycle.plan, &attempts.into_inner())
            .await;
    }
    Ok(verdict(&cycle.plan, Some(&applied)))
}

/// Printed on stderr first thing by `apply --force`: the one override of a safety rule.
const FORCE_BANNER: &str = "WARNING: --force: max_deletes is overridden for this run. Every \
                            planned deletion goes ahead, however many there are in an account.";

/// How the apply ends: success, or failure with one last line on stderr saying why.
fn verdict(plan: &Plan, applied: Option<&ApplySummary>) -> Exit {
    let reasons = failure_reasons(plan, applied);
    if reasons.is_empty() {
        return Exit::Success;
    }
    eprintln!("error: {}.", reasons.join("; "));
    Exit::Failed
}

/// Why an apply that ran to its end did not do everything: accounts not listed, groups
/// blocked (by reason, with `max_deletes` spelt out), deletions failed, moved or not
/// started. Empty when everything planned was done.
pub(crate) fn failure_reasons(plan: &Plan, applied: Option<&ApplySummary>) -> Vec<String> {
    let mut reasons = Vec::new();
    let unlisted: Vec<String> = plan
        .accounts
        .iter()
        .filter(|a| matches!(a.listing, Listing::ListingFailed { .. }))
        .map(|a| a.id.to_string())
        .collect();
    if !unlisted.is_empty() {
        reasons.push(format!(
            "{} account(s) could not be listed, so nothing in them was deleted ({})",
            unlisted.len(),
            unlisted.join(", ")
        ));
    }
    let mut over_max = Vec::new();
    let mut blocked_by: BTreeMap<&'static str, usize> = BTreeMap::new();
    for account in &plan.accounts {
        let mut over = None;
        for item in &account.items {
            match &item.blocked {
                Some(BlockReason::OverMaxDeletes { planned, max }) => over = Some((planned, max)),
                Some(other) => *blocked_by.entry(block_word(other)).or_default() += 1,
                None => {}
            }
        }
        if let Some((planned, max)) = over {
            let overrides = match account.suspended {
                Some(_) => "--force overrides that, not the account's suspension",
                None => "--force overrides",
            };
            over_max.push(format!(
                "account {} plans {planned} deletions, over its max_deletes of {max}, so none \
                 was made ({overrides})",
                account.id
            ));
        }
    }
    reasons.extend(over_max);
    if !blocked_by.is_empty() {
        let counts: Vec<String> = blocked_by
            .iter()
            .map(|(word, count)| format!("{count} {word}"))
            .collect();
        reasons.push(format!("group(s) blocked: {}", counts.join(", ")));
    }
    if let Some(applied) = applied {
        let total = applied.total();
        for (count, what) in [
            (total.failed, "deletion(s) failed"),
            (
                total.moved,
                "group(s) changed since planned and were not deleted",
            ),
            (total.not_started, "deletion(s) not started"),
            (total.held_off, "deletion(s) held off"),
        ] {
            if count > 0 {
                reasons.push(format!("{count} {what}"));
            }
        }
    }
    reasons
}

/// A block reason in a few words, for counting.
fn block_word(reason: &BlockReason) -> &'static str {
    match reason {
        BlockReason::Protected { .. } => "protected",
        BlockReason::AmbiguousName { .. } => "with an ambiguous name",
        BlockReason::IdNameMismatch { .. } => "with an id/name mismatch",
        BlockReason::OverMaxDeletes { .. } => "over max_deletes",
        BlockReason::ConflictingDeclarations => "with conflicting declarations",
        BlockReason::NameOfAnotherDeclaredGroup { .. } => "named like another declared group",
        BlockReason::Suspended { .. } => "in a suspended account",
    }
}

/// `apply --dry-run`: list from any source, plan and show; no journal, no writes.
async fn dry_run(
    args: &ApplyArgs,
    desired: &DesiredState,
    reviewed: Option<&SavedPlan>,
) -> anyhow::Result<Exit> {
    let state_dir = state_dir::resolve(args.state.state_dir.clone());
    let notifications = RunNotifications::start(args.notify, desired, &state_dir)?;
    let source = connect::source(&args.source)?;
    let observed = source::list_accounts(
        &source,
        &desired.account_ids(),
        usize::from(args.source.concurrency),
    )
    .await;
    let plan = plan::plan(desired, &observed, PlanOptions { force: args.force });
    print_out(&report::text_for("apply", &plan, &source.describe()))?;
    say_suspended(&plan);
    if let Some(reviewed) = reviewed {
        check_reviewed(reviewed, desired, &plan)?;
    }
    eprintln!("Dry run: nothing was deleted.");
    if let Some(notifications) = notifications {
        notifications
            .finish(&crate::journal::new_run_id(), &plan, &[])
            .await;
    }
    let unlisted = plan.summary().listing_failed;
    Ok(if unlisted > 0 {
        eprintln!("error: {unlisted} account(s) could not be listed.");
        Exit::Failed
    } else {
        Exit::Success
    })
}

/// Refuses a fresh plan whose deletions are not exactly the reviewed ones; warns when only
/// the files changed.
fn check_reviewed(
    reviewed: &SavedPlan,
    desired: &DesiredState,
    fresh: &Plan,
) -> anyhow::Result<()> {
    let difference = reviewed.difference(&saved_plan::deletions(fresh));
    if !difference.is_empty() {
        eprintln!(
            "Differences (+ not reviewed, - reviewed but no longer planned):\n  {}",
            difference.join("\n  ")
        );
        bail!(
            "the live state or the config moved since the plan was reviewed (differences \
             above); nothing was deleted. Plan again and review the new plan"
        );
    }
    // The deletions are what was reviewed and what safety rests on; an edit elsewhere in the
    // files (a comment, a `present` group) does not stop the apply, but is said.
    if reviewed.config_hash != desired.content_hash {
        eprintln!(
            "Warning: the desired-state files changed since the plan was reviewed; the \
             deletions are identical, so applying."
        );
    }
    Ok(())
}

/// `apply` honours `suspend:`: a suspended account's deletions are reported `blocked`
/// (`suspended`) and not carried out, while the other accounts go ahead; said here once more
/// on stderr, since a pause must not go unnoticed.
fn say_suspended(plan: &Plan) {
    for account in &plan.accounts {
        let Some(by) = &account.suspended else {
            continue;
        };
        let withheld = account
            .items
            .iter()
            .filter(|i| {
                matches!(
                    i.blocked,
                    Some(BlockReason::Suspended { .. } | BlockReason::OverMaxDeletes { .. })
                )
            })
            .count();
        eprintln!(
            "Account {} is suspended ({}): nothing in it is deleted; {withheld} deletion(s) withheld.",
            account.id,
            Escaped(by)
        );
    }
}

/// Says what the fresh listing settled of what earlier runs left open (an intent without an
/// outcome after a crash, a failed delete whose group is gone all the same).
fn say_settled(settled: &[Record]) {
    for record in settled {
        if let Record::Outcome {
            account,
            group_id,
            outcome,
            ..
        } = record
        {
            eprintln!(
                "An earlier run left the deletion of group {group_id} in account {account} \
                 unsettled (interrupted, or failed); from the fresh listing: {}",
                outcome_words(outcome)
            );
        }
    }
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} deleted {wide_msg}") {
        bar.set_style(style);
    }
    bar
}

fn outcome_words(outcome: &DeletionOutcome) -> String {
    match outcome {
        DeletionOutcome::Failed {
            refused: Some(refusal),
            ..
        } => format!("failed ({refusal})"),
        DeletionOutcome::Failed { error, .. } => format!("failed ({error})"),
        other => other.as_str().replace('_', "-"),
    }
}

fn summary_text(applied: &ApplySummary, plan: &Plan, journal: &std::path::Path) -> String {
    let line = |t: &AccountTally| {
        format!(
            "{} deleted, {} already absent, {} failed{}, {} blocked, {} changed since planned, {} not started",
            t.deleted,
            t.already_absent,
            t.failed,
            match t.refused {
                0 => String::new(),
                n => format!(" ({n} refused for good)"),
            },
            t.blocked,
            t.moved,
            t.not_started
        )
    };
    let mut text = format!("\nApply: {}.\n", line(&applied.total()));
    for (account, tally) in &applied.accounts {
        text.push_str(&format!("  {account}: {}\n", line(tally)));
    }
    if !applied.members_backed_up {
        text.push_str("Members were NOT backed up (--no-backup-members): a restore recreates groups without members.\n");
    }
    text.push_str(&format!(
        "Missing groups are reported, never created: cfgroups only deletes ({} missing).\n",
        plan.summary().missing
    ));
    text.push_str(&format!("Journal: {}\n", journal.display()));
    text
}

/// First SIGINT/SIGTERM: start no new deletion, let the ones in flight finish and be
/// journaled. Second: exit at once (a line torn by the exit is ended by the next writer and
/// skipped by readers).
fn watch_signals(stop: CancellationToken) {
    tokio::spawn(async move {
        if wait_for_signal().await.is_err() {
            return;
        }
        stop.cancel();
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
