//! Exact sliding windows over request instants: the configured budget counts admissions,
//! the server's declared policy counts requests from admission until their answer.
//!
//! "At most `limit` in any rolling `window`": two requests share a window when less than
//! `window` separates them, so a request at `t` fits when fewer than `limit` earlier ones
//! lie in `(t - window, t]`. When the window is full, the next request may go exactly when
//! the oldest of the last `limit` leaves it: never earlier, never later.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// When a window lets the next request go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// Now.
    Now,
    /// At this instant, when an old request leaves the window.
    At(Instant),
    /// When a request in flight is answered: its place in the window is known only then.
    Answer,
}

/// At most `limit` admissions in any rolling `window`, counted at admission.
#[derive(Debug, Clone)]
pub struct AdmissionWindow {
    limit: usize,
    window: Duration,
    /// Admission instants, oldest first; only those still inside the window are kept.
    admitted: VecDeque<Instant>,
}

impl AdmissionWindow {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX).max(1),
            window,
            admitted: VecDeque::new(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Forgets admissions that have left the window at `now`.
    fn expire(&mut self, now: Instant) {
        forget_before(&mut self.admitted, now, self.window);
    }

    /// Admissions inside the window at `now`.
    pub fn used(&mut self, now: Instant) -> usize {
        self.expire(now);
        self.admitted.len()
    }

    /// Whether one more admission fits at `now`, else when it will.
    pub fn room(&mut self, now: Instant) -> Room {
        self.expire(now);
        if self.admitted.len() < self.limit {
            return Room::Now;
        }
        // The oldest of the last `limit` admissions must leave first.
        let oldest = self.admitted[self.admitted.len() - self.limit];
        Room::At(oldest + self.window)
    }

    pub fn admit(&mut self, now: Instant) {
        self.admitted.push_back(now);
    }
}

/// The server's declared window (`Ratelimit-Policy: q, w`), held so that the server's
/// count can never exceed it whatever the network's delays: the server counts a request
/// when it arrives, somewhere between its admission here and its answer, so a request
/// occupies a place from its admission until `window` after its answer (and, while in
/// flight, indefinitely).
#[derive(Debug, Clone)]
pub struct ServerWindow {
    limit: usize,
    window: Duration,
    in_flight: usize,
    /// Answer instants, oldest first; only those still inside the window are kept.
    answered: VecDeque<Instant>,
}

impl ServerWindow {
    pub fn new(limit: u64, window: Duration) -> Self {
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX).max(1),
            window,
            in_flight: 0,
            answered: VecDeque::new(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    fn expire(&mut self, now: Instant) {
        forget_before(&mut self.answered, now, self.window);
    }

    /// Places taken at `now`: requests in flight and those answered less than `window` ago.
    pub fn used(&mut self, now: Instant) -> usize {
        self.expire(now);
        self.in_flight + self.answered.len()
    }

    pub fn room(&mut self, now: Instant) -> Room {
        let used = self.used(now);
        if used < self.limit {
            return Room::Now;
        }
        let must_leave = used - self.limit;
        match self.answered.get(must_leave) {
            Some(answered) => Room::At(*answered + self.window),
            None => Room::Answer,
        }
    }

    pub fn admit(&mut self) {
        self.in_flight += 1;
    }

    /// A request admitted while this window was held was answered (or abandoned) at `now`.
    pub fn answer(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.answered.push_back(now);
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Answers less than `span` before `now` (at most those still inside the window).
    pub fn answered_within(&self, now: Instant, span: Duration) -> Vec<Instant> {
        self.answered
            .iter()
            .copied()
            .filter(|at| now.saturating_duration_since(*at) < span)
            .collect()
    }

    /// Takes over the places of requests already in flight, or answered within the window,
    /// when the window starts being held.
    pub fn seed(&mut self, in_flight: usize, answered: impl IntoIterator<Item = Instant>) {
        self.in_flight = in_flight;
        self.answered = answered.into_iter().collect();
    }
}

/// Drops the times, oldest first, that are `window` or more before `now`.
fn forget_before(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|first| now.saturating_duration_since(*first) >= window)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admissions_wait_exactly_for_the_oldest_to_leave() {
        let start = Instant::now();
        let mut window = AdmissionWindow::new(2, Duration::from_secs(10));
        assert_eq!(window.room(start), Room::Now);
        window.admit(start);
        window.admit(start + Duration::from_secs(3));
        assert_eq!(
            window.room(start + Duration::from_secs(4)),
            Room::At(start + Duration::from_secs(10))
        );
        assert_eq!(window.room(start + Duration::from_secs(10)), Room::Now);
        assert_eq!(window.used(start + Duration::from_secs(10)), 1);
    }

    #[test]
    fn a_server_window_counts_until_the_answer_leaves_it() {
        let start = Instant::now();
        let mut window = ServerWindow::new(2, Duration::from_secs(10));
        window.admit();
        window.admit();
        assert_eq!(window.room(start), Room::Answer);
        window.answer(start + Duration::from_secs(1));
        assert_eq!(
            window.room(start + Duration::from_secs(2)),
            Room::At(start + Duration::from_secs(11))
        );
        window.answer(start + Duration::from_secs(2));
        assert_eq!(window.room(start + Duration::from_secs(11)), Room::Now);
    }
}
