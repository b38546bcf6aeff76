//! Talking to systemd through `sd_notify(3)`: readiness, stopping, status text and watchdog
//! pings, each a no-op when the daemon does not run under a service manager.
//!
//! The unit (`systemd/cfgroups.service`) is `Type=notify` with `WatchdogSec=`: systemd
//! considers the service started only after [`notify_ready`], and restarts it when
//! [`notify_watchdog`] is not called at least every `WatchdogSec`. [`watchdog_interval`] gives
//! the period to ping at: half the watchdog timeout, as `sd_watchdog_enabled(3)` advises.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset: a terminal, a container) every function does
//! nothing and [`watchdog_interval`] is `None`.

use std::time::Duration;

use sd_notify::NotifyState;
use thiserror::Error;

const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// A notification could not be sent to the service manager. Worth a warning, never worth
/// stopping for: the daemon's job does not depend on it (but a missed ready or watchdog
/// message will make systemd act, so say so loudly).
#[derive(Debug, Error)]
#[error("cannot notify systemd ({message}): {source}")]
pub struct NotifyError {
    message: String,
    #[source]
    source: std::io::Error,
}

fn send(state: &[NotifyState<'_>], message: &str) -> Result<(), NotifyError> {
    sd_notify::notify(state).map_err(|source| NotifyError {
        message: message.to_owned(),
        source,
    })
}

/// `READY=1`: startup is finished (the config is loaded and the server is listening).
pub fn notify_ready() -> Result<(), NotifyError> {
    send(&[NotifyState::Ready], "READY=1")
}

/// `STOPPING=1`: shutdown has begun; systemd stops expecting watchdog pings.
pub fn notify_stopping() -> Result<(), NotifyError> {
    send(&[NotifyState::Stopping], "STOPPING=1")
}

/// `WATCHDOG=1`: the loop is alive. Call it every [`watchdog_interval`].
pub fn notify_watchdog() -> Result<(), NotifyError> {
    send(&[NotifyState::Watchdog], "WATCHDOG=1")
}

/// `STATUS=...`: a one-line status shown by `systemctl status`. Newlines would end the
/// field early, so they become spaces.
pub fn notify_status(status: &str) -> Result<(), NotifyError> {
    let line = status.replace(['\n', '\r'], " ");
    send(&[NotifyState::Status(&line)], "STATUS")
}

/// How often to call [`notify_watchdog`]: half the watchdog timeout, as
/// `sd_watchdog_enabled(3)` advises; `None` when there is no `NOTIFY_SOCKET` to ping, or the
/// watchdog is off or meant for another process (what [`sd_notify::watchdog_enabled`] reads).
pub fn watchdog_interval() -> Option<Duration> {
    std::env::var_os(NOTIFY_SOCKET)?;
    ping_interval(sd_notify::watchdog_enabled())
}

/// Half of a watchdog `timeout`; a zero timeout is no watchdog.
fn ping_interval(timeout: Option<Duration>) -> Option<Duration> {
    timeout.filter(|t| !t.is_zero()).map(|t| t / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ping_interval_is_half_the_timeout() {
        assert_eq!(
            ping_interval(Some(Duration::from_secs(60))),
            Some(Duration::from_secs(30))
        );
        assert_eq!(ping_interval(Some(Duration::ZERO)), None);
        assert_eq!(ping_interval(None), None);
    }
}
