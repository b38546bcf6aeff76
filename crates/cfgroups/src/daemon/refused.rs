//! Deletions Cloudflare refused for good ([`crate::refusal`]), held off per group: the daemon
//! does not ask again every cycle, only after a wait that doubles with each refusal, from
//! [`DEFAULT_FIRST_WAIT`] up to [`DEFAULT_MAX_WAIT`] (a day).
//!
//! A hold is for one group as it was and one config: it ends as soon as the config's content
//! hash, or the group's name or `modified_on`, differs from what was refused (a SCIM group
//! handed back to manual management, a token given write permission and the config touched,
//! a renamed group), and the next cycle asks again with the wait reset. Any answer other
//! than a permanent refusal (deleted, gone, a transient failure) ends the hold too.

use std::collections::BTreeMap;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::time::Instant;

use crate::model::{AccountId, DeletionOutcome, GroupId, ObservedGroup};
use crate::plan::{Action, Listing, Plan};
use crate::refusal::Refusal;

/// The wait after a group's first refusal.
pub const DEFAULT_FIRST_WAIT: Duration = Duration::from_secs(15 * 60);

/// The longest wait between two attempts at a refused group.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// One refused group.
#[derive(Debug)]
pub struct Hold {
    /// The group's name when it was refused, for logs.
    pub name: String,
    /// What Cloudflare answered.
    pub refusal: Refusal,
    /// Refusals in a row for this group as it is, under this config.
    pub refusals: u32,
    /// No attempt before this.
    pub until: Instant,
    /// Config hash, name and `modified_on` the refusal was for.
    fingerprint: String,
    backoff: ExponentialBackoff,
}

/// The held-off deletions, by account and group.
#[derive(Debug)]
pub struct RefusedDeletions {
    first_wait: Duration,
    max_wait: Duration,
    holds: BTreeMap<(AccountId, GroupId), Hold>,
}

impl Default for RefusedDeletions {
    fn default() -> Self {
        Self::new(DEFAULT_FIRST_WAIT, DEFAULT_MAX_WAIT)
    }
}

/// What a hold is for: the config, and the group as it was listed.
fn fingerprint(group: &ObservedGroup, config_hash: &str) -> String {
    format!(
        "{config_hash}\u{0}{}\u{0}{}",
        group.name,
        group.modified_on.as_deref().unwrap_or("")
    )
}

impl RefusedDeletions {
    /// Waits start at `first_wait` and double up to `max_wait`.
    pub fn new(first_wait: Duration, max_wait: Duration) -> Self {
        Self {
            first_wait,
            max_wait: max_wait.max(first_wait),
            holds: BTreeMap::new(),
        }
    }

    /// Whether the deletion of `group` (as listed now) is held off at `now` under the config
    /// with `config_hash`.
    pub fn holds(
        &self,
        account: &AccountId,
        group: &ObservedGroup,
        config_hash: &str,
        now: Instant,
    ) -> bool {
        self.holds
            .get(&(account.clone(), group.id.clone()))
            .is_some_and(|hold| {
                now < hold.until && hold.fingerprint == fingerprint(group, config_hash)
            })
    }

    /// Records how an attempt to delete `group` ended at `now`: a permanent refusal starts or
    /// extends its hold (and returns the wait), anything else ends it.
    pub fn record(
        &mut self,
        account: &AccountId,
        group: &ObservedGroup,
        outcome: &DeletionOutcome,
        config_hash: &str,
        now: Instant,
    ) -> Option<Duration> {
        let key = (account.clone(), group.id.clone());
        let Some(refusal) = outcome.refusal() else {
            self.holds.remove(&key);
            return None;
        };
        let fingerprint = fingerprint(group, config_hash);
        let fresh = || {
            ExponentialBuilder::new()
                .with_min_delay(self.first_wait)
                .with_factor(2.0)
                .with_max_delay(self.max_wait)
                .without_max_times()
                .build()
        };
        let hold = self.holds.entry(key).or_insert_with(|| Hold {
            name: group.name.clone(),
            refusal: refusal.clone(),
            refusals: 0,
            until: now,
            fingerprint: fingerprint.clone(),
            backoff: fresh(),
        });
        if hold.fingerprint != fingerprint {
            // The group or the config changed since the last refusal: start over.
            hold.fingerprint = fingerprint;
            hold.refusals = 0;
            hold.backoff = fresh();
        }
        hold.name = group.name.clone();
        hold.refusal = refusal.clone();
        hold.refusals += 1;
        let wait = hold.backoff.next().unwrap_or(self.max_wait);
        hold.until = now + wait;
        Some(wait)
    }

    /// Drops the holds of groups that no longer need deleting: in an account this `plan`
    /// listed, a group not planned `delete` (gone, declared present, protected, ...).
    /// Accounts whose listing failed, or that the plan did not cover, keep theirs.
    pub fn forget_settled(&mut self, plan: &Plan) {
        for account in &plan.accounts {
            if !matches!(account.listing, Listing::Ok { .. }) {
                continue;
            }
            self.holds.retain(|(held_account, group), _| {
                held_account != &account.id
                    || account.items.iter().any(|item| {
                        item.action == Action::Delete && item.id.as_ref() == Some(group)
                    })
            });
        }
    }

    /// Drops every hold in `account` (it left the config).
    pub fn forget_account(&mut self, account: &AccountId) {
        self.holds.retain(|(held, _), _| held != account);
    }

    /// Every hold, by account and group.
    pub fn iter(&self) -> impl Iterator<Item = (&AccountId, &GroupId, &Hold)> {
        self.holds
            .iter()
            .map(|((account, group), hold)| (account, group, hold))
    }

    /// How many groups of `account` are held off.
    pub fn count(&self, account: &AccountId) -> usize {
        self.holds
            .keys()
            .filter(|(held, _)| held == account)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudflare::{ApiError, ApiErrors};

    const HOUR: Duration = Duration::from_secs(3600);

    fn account() -> AccountId {
        "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap()
    }

    fn group(modified_on: &str) -> ObservedGroup {
        ObservedGroup {
            id: "5c1a000000000000000000000000000a".parse().unwrap(),
            name: "SCIM-Engineering".to_owned(),
            created_on: None,
            modified_on: Some(modified_on.to_owned()),
            policies: None,
        }
    }

    fn refused() -> DeletionOutcome {
        DeletionOutcome::Failed {
            error: "HTTP 403".to_owned(),
            refused: Some(Refusal::new(
                403,
                &ApiErrors(vec![ApiError {
                    code: 1010,
                    message: "provisioned by SCIM".to_owned(),
                    documentation_url: None,
                    source: None,
                    error_chain: None,
                }]),
            )),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_double_from_a_quarter_hour_up_to_a_day() {
        let mut refused_deletions = RefusedDeletions::default();
        let (a, g) = (account(), group("2024-03-01T12:21:02Z"));
        let mut waits = Vec::new();
        for _ in 0..9 {
            let now = Instant::now();
            assert!(!refused_deletions.holds(&a, &g, "h", now), "due again");
            let wait = refused_deletions
                .record(&a, &g, &refused(), "h", now)
                .unwrap();
            assert!(refused_deletions.holds(&a, &g, "h", now));
            assert!(refused_deletions.holds(&a, &g, "h", now + wait - Duration::from_secs(1)));
            waits.push(wait);
            tokio::time::advance(wait).await;
        }
        let minutes: Vec<u64> = waits.iter().map(|w| w.as_secs() / 60).collect();
        assert_eq!(minutes, [15, 30, 60, 120, 240, 480, 960, 1440, 1440]);
        assert_eq!(refused_deletions.iter().next().unwrap().2.refusals, 9);
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_config_or_group_ends_the_hold_and_resets_the_wait() {
        let mut refused_deletions = RefusedDeletions::default();
        let (a, g) = (account(), group("2024-03-01T12:21:02Z"));
        let now = Instant::now();
        for _ in 0..3 {
            refused_deletions.record(&a, &g, &refused(), "h", now);
        }
        assert!(refused_deletions.holds(&a, &g, "h", now));
        assert!(!refused_deletions.holds(&a, &g, "other config", now));
        let touched = group("2025-01-01T00:00:00Z");
        assert!(!refused_deletions.holds(&a, &touched, "h", now));
        let mut renamed = g.clone();
        renamed.name = "Engineering".to_owned();
        assert!(!refused_deletions.holds(&a, &renamed, "h", now));
        // Refused again as it is now: the wait starts over.
        let wait = refused_deletions.record(&a, &touched, &refused(), "h", now);
        assert_eq!(wait, Some(Duration::from_secs(15 * 60)));
        assert_eq!(refused_deletions.iter().next().unwrap().2.refusals, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn any_other_outcome_ends_the_hold() {
        let mut refused_deletions = RefusedDeletions::new(HOUR, HOUR);
        let (a, g) = (account(), group("x"));
        let now = Instant::now();
        refused_deletions.record(&a, &g, &refused(), "h", now);
        assert_eq!(refused_deletions.count(&a), 1);
        let transient = DeletionOutcome::failed("HTTP 503");
        assert_eq!(refused_deletions.record(&a, &g, &transient, "h", now), None);
        assert_eq!(refused_deletions.count(&a), 0);
        refused_deletions.record(&a, &g, &refused(), "h", now);
        refused_deletions.record(&a, &g, &DeletionOutcome::Deleted, "h", now);
        assert!(!refused_deletions.holds(&a, &g, "h", now));
        refused_deletions.record(&a, &g, &refused(), "h", now);
        refused_deletions.forget_account(&a);
        assert_eq!(refused_deletions.count(&a), 0);
    }
}
