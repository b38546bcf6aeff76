//! Leadership as a value the controller holds: the electors publish this replica's standing
//! through a [`Publisher`]; the controller reads it through a [`Leadership`] (a
//! `watch::Receiver`), checks it right before each batch of writes, and ties each reconcile
//! to the term it started in with a [`TermGuard`], whose cancellation token fires the moment
//! the term ends (stepped down, lost, or its validity ran out without a renewal).
//!
//! "Leading" is never a flag that stays true by itself: a [`Term`] carries the instant until
//! which writes may start ([`super::lease::LeaseTiming::valid_until`]), and every check
//! compares it with the clock. A process that was frozen past that instant finds itself a
//! standby when it wakes, before its elector has run at all.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::daemon::metrics::{LeaderChange, Metrics};

/// One term of leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    /// Tells terms apart, growing from one to the next: the revision of the etcd leader
    /// key, the Lease's `leaseTransitions`. 0 without an election.
    pub number: u64,
    /// Writes may start until then; `None` without an election (leading for good).
    pub valid_until: Option<Instant>,
}

impl Term {
    /// Whether writes may still start under this term.
    pub fn is_valid_at(&self, now: Instant) -> bool {
        self.valid_until.is_none_or(|until| now < until)
    }
}

/// What an elector last published: this replica's term, if it leads, and who holds the
/// lock as far as it knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// `Some` while this replica leads (valid or not: see [`Term::is_valid_at`]).
    pub term: Option<Term>,
    /// The lock's holder, when known: this replica's identity while it leads.
    pub holder: Option<String>,
}

/// This replica's leadership, as the controller sees it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Leadership {
    standing: watch::Receiver<Standing>,
    /// Keeps the channel open when nobody publishes (no election).
    _always: Option<Arc<watch::Sender<Standing>>>,
}

impl Leadership {
    /// Leadership without an election (`--leader-election none`): term 0, for good.
    pub fn always() -> Self {
        let (sender, standing) = watch::channel(Standing {
            term: Some(Term {
                number: 0,
                valid_until: None,
            }),
            holder: None,
        });
        Self {
            standing,
            _always: Some(Arc::new(sender)),
        }
    }

    /// The term under which writes may start now, if any.
    pub fn current_term(&self) -> Option<Term> {
        let term = self.standing.borrow().term?;
        term.is_valid_at(Instant::now()).then_some(term)
    }

    /// Whether this replica may start writes now.
    pub fn is_leader(&self) -> bool {
        self.current_term().is_some()
    }

    /// The lock's holder, as last published.
    pub fn holder(&self) -> Option<String> {
        self.standing.borrow().holder.clone()
    }

    /// Waits for the next published change; `false` when the elector is gone for good.
    pub async fn changed(&mut self) -> bool {
        self.standing.changed().await.is_ok()
    }

    /// A guard over the current term: its token (a child of `parent`) is cancelled when
    /// the term ends: a step-down, another term, an elector gone, or the validity running out
    /// with no renewal. Already cancelled when there is no valid term now.
    pub fn guard_term(&self, parent: &CancellationToken) -> TermGuard {
        let token = parent.child_token();
        let Some(term) = self.current_term() else {
            token.cancel();
            return TermGuard { token, task: None };
        };
        let task = tokio::spawn(watch_term(term, self.standing.clone(), token.clone()));
        TermGuard {
            token,
            task: Some(task),
        }
    }
}

/// Cancels `token` when `term` ends.
async fn watch_term(term: Term, mut standing: watch::Receiver<Standing>, token: CancellationToken) {
    let mut valid_until = term.valid_until;
    loop {
        let expiry = async {
            match valid_until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = token.cancelled() => return,
            () = expiry => {
                // A renewal may have been published at the same moment.
                match standing.borrow_and_update().term {
                    Some(now) if now.number == term.number && now.is_valid_at(Instant::now()) => {
                        valid_until = now.valid_until;
                    }
                    _ => {
                        token.cancel();
                        return;
                    }
                }
            }
            changed = standing.changed() => {
                let current = changed.ok().and_then(|()| standing.borrow_and_update().term);
                match current {
                    Some(now) if now.number == term.number => valid_until = now.valid_until,
                    _ => {
                        token.cancel();
                        return;
                    }
                }
            }
        }
    }
}

/// The term one reconcile runs under; see [`Leadership::guard_term`].
#[derive(Debug)]
pub struct TermGuard {
    token: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl TermGuard {
    /// Cancelled when the term ends (or the parent is cancelled).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The elector's side: publishes this replica's standing, logs every change of it and
/// keeps the `cfgroups_leader*` metrics.
#[derive(Debug)]
pub struct Publisher {
    standing: watch::Sender<Standing>,
    identity: String,
    metrics: Metrics,
}

impl Publisher {
    /// A publisher for the replica named `identity`, starting as a standby, and the
    /// [`Leadership`] that reads it.
    pub fn new(identity: &str, metrics: Metrics) -> (Self, Leadership) {
        let (sender, standing) = watch::channel(Standing::default());
        metrics.set_leader(false);
        let publisher = Self {
            standing: sender,
            identity: identity.to_owned(),
            metrics,
        };
        let leadership = Leadership {
            standing,
            _always: None,
        };
        (publisher, leadership)
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The term this replica leads under, valid or not.
    pub fn term(&self) -> Option<Term> {
        self.standing.borrow().term
    }

    /// This replica won term `number`; writes may start until `valid_until`.
    pub fn lead(&self, number: u64, valid_until: Instant) {
        let term = Term {
            number,
            valid_until: Some(valid_until),
        };
        let previous = self.standing.send_replace(Standing {
            term: Some(term),
            holder: Some(self.identity.clone()),
        });
        if previous.term.map(|t| t.number) != Some(number) {
            if previous.term.is_some() {
                self.metrics.record_leader_change(LeaderChange::Lost);
            }
            tracing::info!(identity = %self.identity, term = number, "leadership acquired: this replica now reconciles");
            self.metrics.set_leader(true);
            self.metrics.record_leader_change(LeaderChange::Acquired);
            self.metrics.set_leader_holder(Some(&self.identity));
        }
    }

    /// The hold was renewed: writes may start until `valid_until`.
    pub fn renewed(&self, valid_until: Instant) {
        self.standing
            .send_if_modified(|standing| match &mut standing.term {
                Some(term) => {
                    term.valid_until = Some(valid_until);
                    true
                }
                None => false,
            });
    }

    /// This replica no longer leads (or never did), and the holder is `holder` as far as
    /// is known; `reason` is logged when a term ends.
    pub fn step_down(&self, reason: &str, holder: Option<String>) {
        let previous = self.standing.send_replace(Standing {
            term: None,
            holder: holder.clone(),
        });
        if let Some(term) = previous.term {
            tracing::warn!(identity = %self.identity, term = term.number, reason, "leadership lost: no new write starts");
            self.metrics.set_leader(false);
            self.metrics.record_leader_change(LeaderChange::Lost);
        }
        if previous.holder != holder {
            self.log_holder(holder.as_deref());
        }
    }

    /// A standby learnt who holds the lock.
    pub fn observe_holder(&self, holder: Option<String>) {
        let changed = self.standing.send_if_modified(|standing| {
            if standing.term.is_none() && standing.holder != holder {
                standing.holder = holder.clone();
                true
            } else {
                false
            }
        });
        if changed {
            self.log_holder(holder.as_deref());
        }
    }

    fn log_holder(&self, holder: Option<&str>) {
        match holder {
            Some(holder) => {
                tracing::info!(identity = %self.identity, leader = holder, "standing by; the leader is {holder}")
            }
            None => {
                tracing::info!(identity = %self.identity, "standing by; no replica holds the lock")
            }
        }
        self.metrics.set_leader_holder(holder);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn publisher() -> (Publisher, Leadership, Metrics) {
        let metrics = Metrics::new("0");
        let (publisher, leadership) = Publisher::new("replica-a", metrics.clone());
        (publisher, leadership, metrics)
    }

    #[tokio::test(start_paused = true)]
    async fn a_term_is_valid_until_its_deadline_and_not_an_instant_longer() {
        let (publisher, leadership, _) = publisher();
        assert!(!leadership.is_leader());
        publisher.lead(7, Instant::now() + Duration::from_secs(10));
        assert_eq!(leadership.current_term().map(|t| t.number), Some(7));
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(leadership.is_leader());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(
            !leadership.is_leader(),
            "a leader that was not renewed must not write, whatever its elector is doing"
        );
        publisher.renewed(Instant::now() + Duration::from_secs(10));
        assert!(leadership.is_leader());
    }

    #[tokio::test(start_paused = true)]
    async fn the_term_guard_fires_at_the_deadline_unless_renewed() {
        let (publisher, leadership, _) = publisher();
        publisher.lead(1, Instant::now() + Duration::from_secs(10));
        let parent = CancellationToken::new();
        let guard = leadership.guard_term(&parent);
        tokio::time::sleep(Duration::from_secs(6)).await;
        publisher.renewed(Instant::now() + Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!guard.token().is_cancelled(), "renewed in time");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            guard.token().is_cancelled(),
            "not renewed: the term is over"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_term_guard_fires_on_step_down_and_on_a_new_term() {
        let (publisher, leadership, _) = publisher();
        let far = Instant::now() + Duration::from_secs(3600);
        publisher.lead(1, far);
        let parent = CancellationToken::new();
        let guard = leadership.guard_term(&parent);
        publisher.step_down("test", None);
        tokio::time::timeout(Duration::from_secs(1), guard.token().cancelled())
            .await
            .expect("cancelled at once");

        publisher.lead(2, far);
        let guard = leadership.guard_term(&parent);
        publisher.lead(3, far);
        tokio::time::timeout(Duration::from_secs(1), guard.token().cancelled())
            .await
            .expect("another term is another guard");

        let guard = leadership.guard_term(&parent);
        parent.cancel();
        assert!(
            guard.token().is_cancelled(),
            "a child of the shutdown token"
        );
    }

    #[tokio::test]
    async fn a_standby_gets_a_cancelled_guard() {
        let (_publisher, leadership, _) = publisher();
        let guard = leadership.guard_term(&CancellationToken::new());
        assert!(guard.token().is_cancelled());
    }

    #[tokio::test]
    async fn without_an_election_the_replica_leads_for_good() {
        let leadership = Leadership::always();
        assert_eq!(
            leadership.current_term(),
            Some(Term {
                number: 0,
                valid_until: None
            })
        );
        let guard = leadership.guard_term(&CancellationToken::new());
        assert!(!guard.token().is_cancelled());
    }

    #[tokio::test]
    async fn metrics_follow_the_standing() {
        let (publisher, _leadership, metrics) = publisher();
        let text = metrics.encode();
        assert!(text.contains("cfgroups_leader 0"), "{text}");
        publisher.lead(4, Instant::now() + Duration::from_secs(10));
        publisher.renewed(Instant::now() + Duration::from_secs(10));
        let text = metrics.encode();
        assert!(text.contains("cfgroups_leader 1"), "{text}");
        assert!(
            text.contains("cfgroups_leader_transitions_total{change=\"acquired\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("cfgroups_leader_holder_info{holder=\"replica-a\"} 1"),
            "{text}"
        );
        publisher.step_down("test", Some("replica-b".to_owned()));
        let text = metrics.encode();
        assert!(text.contains("cfgroups_leader 0"), "{text}");
        assert!(
            text.contains("cfgroups_leader_transitions_total{change=\"lost\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("cfgroups_leader_holder_info{holder=\"replica-b\"} 1"),
            "{text}"
        );
        assert!(!text.contains("holder=\"replica-a\""), "{text}");
    }
}
