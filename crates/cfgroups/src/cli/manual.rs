//! The man page sections clap cannot derive from the argument definitions: EXIT STATUS,
//! ENVIRONMENT and FILES, written once here and added to every page `cfgroups man` prints.

/// The exit codes, as `(code, meaning)`; the same words as `--help` and the README.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "Success. With plan --detailed-exitcode: no drift. apply: everything planned was done.",
    ),
    (
        "1",
        "Error: a usage error (an unknown flag, a missing argument, a bad value), an invalid \
         desired state, an account that could not be listed (the report is still printed), a \
         deletion that failed, was blocked or was not started, a reviewed plan that no longer \
         matches, a journal line that cannot be read.",
    ),
    (
        "2",
        "Only with plan --detailed-exitcode: drift (something to delete, blocked, missing or \
         unmanaged). Never a usage error.",
    ),
];

/// The environment variables cfgroups reads, as `(name, meaning)`. Every `env = "..."` of
/// the argument definitions is here too (a test checks).
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "CLOUDFLARE_API_TOKEN",
        "The API token (preferred). Needs Account Settings Read to plan, Account Settings \
         Write to delete.",
    ),
    (
        "CLOUDFLARE_EMAIL, CLOUDFLARE_API_KEY",
        "The legacy global API key and its account e-mail, instead of a token.",
    ),
    (
        "CLOUDFLARE_BASE_URL",
        "The API base URL (default https://api.cloudflare.com/client/v4); plain http only to \
         loopback. Same as --api-base-url.",
    ),
    (
        "CREDENTIALS_DIRECTORY",
        "Set by systemd's LoadCredential=: the token is read from its cloudflare-api-token file.",
    ),
    (
        "CFGROUPS_CONFIG",
        "The desired-state file or directory (--config).",
    ),
    (
        "CFGROUPS_SUSPEND_FILE",
        "run --suspend-file: while anything exists at this path, every account is suspended \
         (listed and reported, nothing deleted).",
    ),
    (
        "CFGROUPS_LEADER_ELECTION, CFGROUPS_LOCK_NAME, CFGROUPS_LEASE_DURATION, \
         CFGROUPS_RENEW_DEADLINE, CFGROUPS_RETRY_PERIOD",
        "run's leader-election flags of the same names.",
    ),
    (
        "CFGROUPS_ETCD_ENDPOINTS, CFGROUPS_ETCD_CA_FILE, CFGROUPS_ETCD_CERT_FILE, \
         CFGROUPS_ETCD_KEY_FILE, CFGROUPS_ETCD_USERNAME_FILE, CFGROUPS_ETCD_PASSWORD_FILE",
        "run's etcd flags of the same names.",
    ),
    (
        "POD_NAME, POD_NAMESPACE",
        "This replica's name (--identity) and the Lease's namespace (--lease-namespace), from \
         the Kubernetes downward API.",
    ),
    (
        "STATE_DIRECTORY, XDG_STATE_HOME",
        "Where the journal lives without --state-dir: $STATE_DIRECTORY (systemd), else \
         $XDG_STATE_HOME/cfgroups, else ~/.local/state/cfgroups.",
    ),
    (
        "RUST_LOG",
        "What is logged (default info for run, warn for the other commands).",
    ),
    (
        "NO_COLOR, CLICOLOR_FORCE",
        "With --color auto: NO_COLOR turns colour off, CLICOLOR_FORCE=1 forces it.",
    ),
    (
        "SOURCE_DATE_EPOCH",
        "Pins the time export writes in its header, for byte-identical exports.",
    ),
    (
        "NOTIFY_SOCKET, WATCHDOG_USEC",
        "Set by systemd for Type=notify and WatchdogSec=; run notifies and pings it.",
    ),
];

/// The files cfgroups reads and writes, as `(path, meaning)`.
pub const FILES: &[(&str, &str)] = &[
    (
        "STATE_DIR/journal.jsonl",
        "The append-only journal: a backup of every group before its deletion, each outcome, \
         each restore. Readable by its owner only.",
    ),
    (
        "STATE_DIR/journal.jsonl.lock",
        "Held by restore, so that one restore runs at a time.",
    ),
    (
        "STATE_DIR/last-report.json",
        "run: the report of the last full cycle, as it stands after its deletions (plan \
         --output json plus generated_at, config_hash and each deletion's outcome).",
    ),
    (
        "$CREDENTIALS_DIRECTORY/cloudflare-api-token",
        "The API token under systemd's LoadCredential=.",
    ),
    (
        "cfgroups.schema.json",
        "The JSON Schema of the desired-state file (cfgroups schema prints it), for editors.",
    ),
];

/// The three sections as roff, for the end of a page.
pub fn roff_sections() -> String {
    let mut roff = String::new();
    for (title, entries) in [
        ("EXIT STATUS", EXIT_STATUS),
        ("ENVIRONMENT", ENVIRONMENT),
        ("FILES", FILES),
    ] {
        roff.push_str(&format!(".SH \"{title}\"\n"));
        for (term, meaning) in entries {
            roff.push_str(&format!(
                ".TP\n\\fB{}\\fR\n{}\n",
                escape(term),
                escape(meaning)
            ));
        }
    }
    roff
}

/// `page` (clap_mangen's roff) with the three sections added before VERSION, or at the end.
pub fn with_sections(page: &str) -> String {
    let sections = roff_sections();
    match page.find(".SH VERSION") {
        Some(at) => format!("{}{sections}{}", &page[..at], &page[at..]),
        None => format!("{page}{sections}"),
    }
}

/// Text as roff: backslashes and hyphens escaped, and no line starting with a control
/// character.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::cli::Cli;

    #[test]
    fn every_environment_fallback_of_a_flag_is_documented() {
        fn walk(command: &clap::Command, found: &mut Vec<String>) {
            for arg in command.get_arguments() {
                if let Some(name) = arg.get_env() {
                    found.push(name.to_string_lossy().into_owned());
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, found);
            }
        }
        let mut names = Vec::new();
        walk(&Cli::command(), &mut names);
        assert!(names.len() > 10, "{names:?}");
        for name in names {
            assert!(
                ENVIRONMENT
                    .iter()
                    .any(|(documented, _)| documented.split(", ").any(|n| n == name)),
                "{name} is not in the man page's ENVIRONMENT"
            );
        }
    }

    #[test]
    fn sections_go_before_version() {
        let page = with_sections(".TH x 1\n.SH NAME\nx\n.SH VERSION\nv1\n");
        let exit = page.find(".SH \"EXIT STATUS\"").unwrap();
        assert!(exit < page.find(".SH VERSION").unwrap(), "{page}");
        assert!(page.contains(".SH \"ENVIRONMENT\"") && page.contains(".SH \"FILES\""));
        assert!(page.contains("plan \\-\\-detailed\\-exitcode"), "{page}");
    }
}
