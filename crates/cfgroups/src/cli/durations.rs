//! The duration flags' parsers: each refuses, at parse time, a value below the least one that
//! makes sense, and says what that least value is and why.
//!
//! | flag | least value | why |
//! |---|---|---|
//! | `--interval` | 1s | each tick lists every account; below a second the loop spins (`0s` ran 65 reconciles in 5 s). Config changes do not wait for the tick: the watch sees them at once. |
//! | `--budget-window` | 1s | `0s` turned the request budget off, and the account was locked out. |
//! | `--debounce` | 10ms | the coalescing window of file events; shorter is no window at all. |
//! | `--request-timeout`, `--connect-timeout`, `--exec-timeout` | 1ms | `0s` fails every attempt before it starts. |

use std::time::Duration;

/// The least `--interval`.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The least `--budget-window`.
pub const MIN_BUDGET_WINDOW: Duration = Duration::from_secs(1);
/// The least `--debounce`.
pub const MIN_DEBOUNCE: Duration = crate::daemon::MIN_DEBOUNCE;
/// The least request, connect or exec timeout.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// `--interval`: at least [`MIN_INTERVAL`].
pub fn interval(text: &str) -> Result<Duration, String> {
    at_least(
        text,
        MIN_INTERVAL,
        "each tick lists every account, so a shorter interval spins; config changes are \
         picked up at once by the watch, not by the tick",
    )
}

/// `--budget-window`: at least [`MIN_BUDGET_WINDOW`].
pub fn budget_window(text: &str) -> Result<Duration, String> {
    at_least(
        text,
        MIN_BUDGET_WINDOW,
        "a shorter window turns the request budget off (Cloudflare counts 1200 requests per \
         5 minutes)",
    )
}

/// `--debounce`: at least [`MIN_DEBOUNCE`].
pub fn debounce(text: &str) -> Result<Duration, String> {
    at_least(
        text,
        MIN_DEBOUNCE,
        "it is the window in which file events are coalesced",
    )
}

/// `--request-timeout`, `--connect-timeout`, `--exec-timeout`: at least [`MIN_TIMEOUT`].
pub fn timeout(text: &str) -> Result<Duration, String> {
    at_least(
        text,
        MIN_TIMEOUT,
        "a zero timeout fails every attempt before it starts",
    )
}

fn at_least(text: &str, least: Duration, why: &str) -> Result<Duration, String> {
    let value = humantime::parse_duration(text)
        .map_err(|e| format!("{e} (write a duration such as 30s, 5m or 250ms)"))?;
    if value < least {
        return Err(format!(
            "must be at least {}: {why}",
            humantime::format_duration(least)
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refuses_below_its_minimum_and_names_it() {
        type Parse = fn(&str) -> Result<Duration, String>;
        let cases: [(Parse, &str, &str, &str); 4] = [
            (interval, "999ms", "1s", "at least 1s"),
            (budget_window, "0s", "1s", "at least 1s"),
            (debounce, "9ms", "10ms", "at least 10ms"),
            (timeout, "0s", "1ms", "at least 1ms"),
        ];
        for (parse, below, least, message) in cases {
            let err = parse(below).unwrap_err();
            assert!(err.contains(message), "{below}: {err}");
            assert_eq!(
                parse(least).unwrap(),
                humantime::parse_duration(least).unwrap()
            );
        }
    }

    #[test]
    fn garbage_is_refused_with_an_example() {
        let err = interval("soon").unwrap_err();
        assert!(err.contains("such as 30s"), "{err}");
    }

    /// The flags use these parsers: a nonsensical value stops the command before it starts.
    #[test]
    fn the_command_line_refuses_each_nonsensical_duration() {
        use clap::Parser;

        use crate::cli::Cli;

        let run = ["cfgroups", "run", "--config", "groups.yaml"];
        let plan = ["cfgroups", "plan", "--config", "groups.yaml"];
        let cases: [(&[&str], &str, &str, &str); 7] = [
            (&run, "--interval", "0s", "at least 1s"),
            (&run, "--budget-window", "0s", "at least 1s"),
            (&run, "--debounce", "0s", "at least 10ms"),
            (&run, "--request-timeout", "0s", "at least 1ms"),
            (&run, "--connect-timeout", "0s", "at least 1ms"),
            (&plan, "--exec-timeout", "0s", "at least 1ms"),
            (&plan, "--budget-window", "0ms", "at least 1s"),
        ];
        for (command, flag, value, message) in cases {
            let args = command.iter().copied().chain([flag, value]);
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{flag}"
            );
            let text = err.to_string();
            assert!(text.contains(message), "{flag} {value}: {text}");
            assert!(text.contains(flag), "{flag} {value}: {text}");
        }
        let ok = run
            .iter()
            .copied()
            .chain(["--interval", "1s", "--debounce", "10ms"]);
        assert!(Cli::try_parse_from(ok).is_ok());
    }
}
