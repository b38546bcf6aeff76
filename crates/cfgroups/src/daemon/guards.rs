//! What the reconcile loop does around each cycle for the operator's guards, in one place so
//! the loop itself only calls in: before the cycle, which deletions are held off (refused for
//! good by Cloudflare, see [`super::refused`]); after it, recording every attempt, the
//! metrics of the guards and the log lines that repeat each cycle while a guard holds.

use std::sync::Mutex;

use tokio::time::Instant;

use super::metrics::Metrics;
use super::refused::RefusedDeletions;
use crate::model::{AccountId, DeletionOutcome, ObservedGroup};
use crate::plan::Plan;
use crate::shown::Quoted;

/// One attempted deletion of a cycle, as the executor reported it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub account: AccountId,
    /// The group as read right before its DELETE.
    pub group: ObservedGroup,
    pub outcome: DeletionOutcome,
}

/// The attempts of one cycle, collected from the executor's progress callback.
#[derive(Debug, Default)]
pub struct Attempts(Mutex<Vec<Attempt>>);

impl Attempts {
    pub fn push(&self, account: &AccountId, group: &ObservedGroup, outcome: &DeletionOutcome) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Attempt {
                account: account.clone(),
                group: group.clone(),
                outcome: outcome.clone(),
            });
    }

    pub fn into_inner(self) -> Vec<Attempt> {
        self.0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The guards' state across cycles.
#[derive(Debug, Default)]
pub struct Guards {
    refused: RefusedDeletions,
}

impl Guards {
    pub fn new(refused: RefusedDeletions) -> Self {
        Self { refused }
    }

    /// Whether the deletion of `group` is held off in a cycle planned from the config with
    /// `config_hash`, starting at `now`.
    pub fn holds(
        &self,
        account: &AccountId,
        group: &ObservedGroup,
        config_hash: &str,
        now: Instant,
    ) -> bool {
        self.refused.holds(account, group, config_hash, now)
    }

    /// After a cycle of `plan` (made from the config with `config_hash`): records the
    /// refusals among `attempts`, drops the holds no longer needed, sets the guards' metrics
    /// and logs each deletion still held off.
    pub fn after_cycle(
        &mut self,
        plan: &Plan,
        attempts: &[Attempt],
        config_hash: &str,
        metrics: &Metrics,
    ) {
        let now = Instant::now();
        for attempt in attempts {
            if attempt.outcome.refusal().is_some() {
                metrics.guards().record_refusal(&attempt.account);
            }
            if let Some(wait) = self.refused.record(
                &attempt.account,
                &attempt.group,
                &attempt.outcome,
                config_hash,
                now,
            ) {
                tracing::warn!(
                    account = %attempt.account,
                    group = %attempt.group.id,
                    name = %Quoted(&attempt.group.name),
                    retry_in = %humantime::format_duration(wait),
                    "Cloudflare refused this deletion for good; not asking again before the \
                     wait has passed, unless the config or the group changes"
                );
            }
        }
        self.refused.forget_settled(plan);
        for account in &plan.accounts {
            metrics
                .guards()
                .set_held_off(&account.id, self.refused.count(&account.id));
        }
        for (account, group, hold) in self.refused.iter() {
            let just_refused = attempts
                .iter()
                .any(|a| a.account == *account && a.group.id == *group);
            if just_refused {
                continue;
            }
            let left = hold.until.saturating_duration_since(now);
            tracing::info!(
                %account,
                %group,
                name = %Quoted(&hold.name),
                refusals = hold.refusals,
                next_attempt_in = %humantime::format_duration(round_to_seconds(left)),
                hint = %hold.refusal.hint,
                "deletion held off: Cloudflare refused it for good ({})",
                hold.refusal.answer()
            );
        }
    }

    /// Forgets everything about an account that left the config.
    pub fn forget_account(&mut self, account: &AccountId) {
        self.refused.forget_account(account);
    }
}

fn round_to_seconds(duration: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(duration.as_secs())
}
