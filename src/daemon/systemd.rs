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
const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
const WATCHDOG_PID: &str = "WATCHDOG_PID";

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

/// How often to call [`notify_watchdog`]: half of `WATCHDOG_USEC`, or `None` when the
/// watchdog is off, meant for another process (`WATCHDOG_PID`), or there is no
/// `NOTIFY_SOCKET` to ping.
pub fn watchdog_interval() -> Option<Duration> {
    std::env::var_os(NOTIFY_SOCKET)?;
    watchdog_interval_from(
        std::env::var(WATCHDOG_USEC).ok().as_deref(),
        std::env::var(WATCHDOG_PID).ok().as_deref(),
        std::process::id(),
    )
}

/// [`watchdog_interval`] on explicit values, as `sd_watchdog_enabled(3)` reads them: a
/// missing, unparsable or zero `WATCHDOG_USEC` is no watchdog, and a `WATCHDOG_PID` that is
/// set must name this process.
pub fn watchdog_interval_from(
    usec: Option<&str>,
    pid: Option<&str>,
    own_pid: u32,
) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        let pid: u32 = pid.trim().parse().ok()?;
        if pid != own_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_the_timeout() {
        assert_eq!(
            watchdog_interval_from(Some("60000000"), None, 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_interval_from(Some("60000000"), Some("7"), 7),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn watchdog_for_another_process_or_malformed_is_off() {
        assert_eq!(watchdog_interval_from(Some("60000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("60000000"), Some("x"), 7), None);
        assert_eq!(watchdog_interval_from(None, Some("7"), 7), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("-5"), None, 7), None);
    }
}
