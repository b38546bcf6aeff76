//! The Cloudflare secrets this process can see, and which environment variables carry them:
//! what a child process must not inherit, and what must be scrubbed from anything it prints
//! before that text reaches an error, a report or a log.
//!
//! Collected leniently, unlike [`Credentials`](super::Credentials): a command that never
//! calls the API (`plan --source exec:...`) still holds the token in its environment or
//! token file, and a conflict between two sources is no reason to scrub less.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::credentials::{ENV_CREDENTIALS_DIRECTORY, SYSTEMD_CREDENTIAL_NAME};

/// What a scrubbed secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Parts of a credential variable's name that say its value is a secret (rather than, say,
/// an email address or an account id).
const SECRET_NAME_PARTS: [&str; 6] = ["TOKEN", "KEY", "SECRET", "PASSWORD", "AUTH", "CREDENTIAL"];

/// Whether a child process must not inherit the variable `name` (unless told to pass
/// credentials): every `CLOUDFLARE_*` variable (`CLOUDFLARE_API_TOKEN`, `CLOUDFLARE_API_KEY`,
/// `CLOUDFLARE_EMAIL` and whatever a future tool adds; guessing which of them are secret
/// would miss the next one), the older `CF_API_*` names other Cloudflare tools read, and
/// `CREDENTIALS_DIRECTORY`, where systemd keeps cfgroups' own token file.
pub fn is_credential_variable(name: &OsStr) -> bool {
    let upper = name.as_encoded_bytes().to_ascii_uppercase();
    upper.starts_with(b"CLOUDFLARE_")
        || upper.starts_with(b"CF_API_")
        || upper == ENV_CREDENTIALS_DIRECTORY.as_bytes()
}

/// Whether the value of the credential variable `name` is a secret to scrub.
fn holds_secret(name: &OsStr) -> bool {
    if !is_credential_variable(name) || name == OsStr::new(ENV_CREDENTIALS_DIRECTORY) {
        return false;
    }
    let upper = name.to_string_lossy().to_ascii_uppercase();
    SECRET_NAME_PARTS.iter().any(|part| upper.contains(part))
}

/// Every secret value the process holds. `Debug` shows only how many.
#[derive(Clone, Default)]
pub struct KnownSecrets {
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: Vec<SecretString>,
}

impl KnownSecrets {
    /// No secrets: nothing is scrubbed.
    pub fn none() -> Self {
        Self::default()
    }

    /// The secrets of this process: the values of its Cloudflare credential variables, the
    /// token file (`--api-token-file`) and the systemd credential, whichever exist.
    pub fn from_process(token_file: Option<&Path>) -> Self {
        Self::collect(
            std::env::vars_os(),
            |path| std::fs::read_to_string(path),
            token_file,
        )
    }

    /// [`from_process`](Self::from_process) over a given environment and file reader.
    /// Unreadable files are skipped: there is nothing in them to leak.
    pub fn collect(
        env: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>,
        read_file: impl Fn(&Path) -> io::Result<String>,
        token_file: Option<&Path>,
    ) -> Self {
        let mut values: Vec<String> = Vec::new();
        let mut credentials_directory = None;
        for (name, value) in env {
            let (name, value) = (name.as_ref(), value.as_ref());
            if name == OsStr::new(ENV_CREDENTIALS_DIRECTORY) {
                credentials_directory = Some(Path::new(value).join(SYSTEMD_CREDENTIAL_NAME));
            } else if holds_secret(name) {
                values.push(value.to_string_lossy().into_owned());
            }
        }
        for path in token_file
            .into_iter()
            .chain(credentials_directory.as_deref())
        {
            if let Ok(text) = read_file(path) {
                values.push(text);
            }
        }
        let mut secrets: Vec<String> = values
            .into_iter()
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Self {
            secrets: secrets.into_iter().map(SecretString::from).collect(),
        }
    }

    /// How many secrets are known.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every known secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            let secret = secret.expose_secret();
            if text.contains(secret) {
                text = text.replace(secret, REDACTED);
            }
        }
        text
    }
}

impl fmt::Debug for KnownSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KnownSecrets({} redacted)", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn every_cloudflare_variable_is_withheld_and_nothing_else() {
        for name in [
            "CLOUDFLARE_API_TOKEN",
            "CLOUDFLARE_API_KEY",
            "CLOUDFLARE_EMAIL",
            "CLOUDFLARE_API_USER_SERVICE_KEY",
            "CLOUDFLARE_BASE_URL",
            "cloudflare_api_token",
            "CF_API_TOKEN",
            "CF_API_KEY",
            "CF_API_EMAIL",
            "CREDENTIALS_DIRECTORY",
        ] {
            assert!(is_credential_variable(OsStr::new(name)), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "INVENTORY_TOKEN",
            "CFGROUPS_CONFIG",
            "CF_PAGES",
            "RUST_LOG",
        ] {
            assert!(!is_credential_variable(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn secrets_come_from_the_environment_and_both_token_files() {
        let env = [
            ("CLOUDFLARE_API_TOKEN", "env-token-0123456789"),
            ("CLOUDFLARE_API_KEY", "global-key-abcdef"),
            ("CLOUDFLARE_EMAIL", "ops@example.com"),
            ("CF_API_TOKEN", "legacy-token-xyz"),
            ("CLOUDFLARE_ACCOUNT_ID", "023e105f4ecef8ad9ca31a8372d0c353"),
            ("CREDENTIALS_DIRECTORY", "/run/credentials/cfgroups.service"),
            ("INVENTORY_TOKEN", "not-ours"),
            ("CLOUDFLARE_API_TOKEN_EMPTY", ""),
        ];
        let read = |path: &Path| -> io::Result<String> {
            if path == Path::new("/etc/cfgroups/token") {
                Ok("file-token-9876543210\n".to_owned())
            } else if path == Path::new("/run/credentials/cfgroups.service/cloudflare-api-token") {
                Ok("systemd-token-abc\n".to_owned())
            } else {
                Err(io::ErrorKind::NotFound.into())
            }
        };
        let token_file = PathBuf::from("/etc/cfgroups/token");
        let secrets = KnownSecrets::collect(env, read, Some(&token_file));
        assert_eq!(secrets.len(), 5, "{secrets:?}");
        let text = "env-token-0123456789 global-key-abcdef legacy-token-xyz \
                    file-token-9876543210 systemd-token-abc ops@example.com not-ours \
                    023e105f4ecef8ad9ca31a8372d0c353";
        assert_eq!(
            secrets.redact(text),
            "[REDACTED] [REDACTED] [REDACTED] [REDACTED] [REDACTED] ops@example.com not-ours \
             023e105f4ecef8ad9ca31a8372d0c353"
        );
        assert!(!format!("{secrets:?}").contains("token"));
    }

    #[test]
    fn a_secret_inside_another_is_replaced_after_it() {
        let env = [
            ("CLOUDFLARE_API_TOKEN", "abc"),
            ("CLOUDFLARE_API_KEY", "xxabcxx"),
        ];
        let secrets = KnownSecrets::collect(env, |_| Err(io::ErrorKind::NotFound.into()), None);
        assert_eq!(
            secrets.redact("1 xxabcxx 2 abc"),
            "1 [REDACTED] 2 [REDACTED]"
        );
    }
}
