//! Who cfgroups is to Cloudflare: the API credentials, where they came from, and the rule
//! that exactly one source of them may be configured.
//!
//! Sources, each checked before any request is made:
//! - `--api-token-file PATH`: a file holding an API token (trailing whitespace trimmed);
//! - `CLOUDFLARE_API_TOKEN`: an API token, sent as `Authorization: Bearer`;
//! - `CLOUDFLARE_EMAIL` + `CLOUDFLARE_API_KEY`: the legacy global key, sent as
//!   `X-Auth-Email` + `X-Auth-Key`;
//! - `$CREDENTIALS_DIRECTORY/cloudflare-api-token`: a token that systemd's
//!   `LoadCredential=` provides.
//!
//! Two configured sources are an error, never a silent precedence: a service that has both a
//! token and a global key set would otherwise run with whichever one the reader guesses
//! wrong. Empty environment variables count as unset (CI systems often export `VAR=`).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

/// Environment variable holding an API token.
pub const ENV_API_TOKEN: &str = "CLOUDFLARE_API_TOKEN";
/// Environment variable holding the account email for the legacy global key.
pub const ENV_EMAIL: &str = "CLOUDFLARE_EMAIL";
/// Environment variable holding the legacy global API key.
pub const ENV_API_KEY: &str = "CLOUDFLARE_API_KEY";
/// Environment variable systemd sets to the directory of `LoadCredential=` files.
pub const ENV_CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";
/// The file name cfgroups looks for in `$CREDENTIALS_DIRECTORY`.
pub const SYSTEMD_CREDENTIAL_NAME: &str = "cloudflare-api-token";

const REDACTED: &str = "[REDACTED]";

/// Why no usable credentials could be resolved. Never contains a secret.
#[derive(Debug, Error)]
pub enum CredentialsError {
    #[error(
        "no Cloudflare credentials: set {ENV_API_TOKEN}, or {ENV_EMAIL} and {ENV_API_KEY}, \
         or pass --api-token-file"
    )]
    Missing,
    #[error("conflicting Cloudflare credentials: {first} and {second} are both set; keep one")]
    Conflict { first: String, second: String },
    #[error("incomplete Cloudflare credentials: {present} is set but {missing} is not")]
    Incomplete {
        present: &'static str,
        missing: &'static str,
    },
    #[error("cannot read Cloudflare API token file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cloudflare credential from {origin} is empty")]
    Empty { origin: String },
    #[error(
        "Cloudflare credential from {origin} contains characters not allowed in an HTTP header \
         (whitespace, line breaks or non-ASCII)"
    )]
    InvalidCharacters { origin: String },
}

/// Where the credentials were found; safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialOrigin {
    /// `CLOUDFLARE_API_TOKEN`, or `CLOUDFLARE_EMAIL` + `CLOUDFLARE_API_KEY`.
    Environment,
    /// `--api-token-file PATH`.
    TokenFile(PathBuf),
    /// `$CREDENTIALS_DIRECTORY/cloudflare-api-token`.
    SystemdCredential(PathBuf),
    /// Built in code, e.g. by a test or an embedding program.
    Explicit,
}

impl fmt::Display for CredentialOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Environment => f.write_str("the environment"),
            Self::TokenFile(path) => write!(f, "token file {}", path.display()),
            Self::SystemdCredential(path) => write!(f, "systemd credential {}", path.display()),
            Self::Explicit => f.write_str("the caller"),
        }
    }
}

#[derive(Clone)]
enum Auth {
    Token(SecretString),
    GlobalKey { email: String, key: SecretString },
}

/// Cloudflare API credentials. `Debug` and `Display` never show the secret.
#[derive(Clone)]
pub struct Credentials {
    auth: Auth,
    origin: CredentialOrigin,
}

impl Credentials {
    /// An API token (`Authorization: Bearer`), the preferred scheme.
    pub fn api_token(token: SecretString) -> Result<Self, CredentialsError> {
        let origin = CredentialOrigin::Explicit;
        check_header_safe(token.expose_secret(), &origin)?;
        Ok(Self {
            auth: Auth::Token(token),
            origin,
        })
    }

    /// The legacy global key (`X-Auth-Email` + `X-Auth-Key`).
    pub fn global_key(email: String, key: SecretString) -> Result<Self, CredentialsError> {
        let origin = CredentialOrigin::Explicit;
        check_header_safe(&email, &origin)?;
        check_header_safe(key.expose_secret(), &origin)?;
        Ok(Self {
            auth: Auth::GlobalKey { email, key },
            origin,
        })
    }

    /// Resolves credentials from the process environment and the file system.
    pub fn from_process(token_file: Option<&Path>) -> Result<Self, CredentialsError> {
        Self::resolve(
            |name| std::env::var(name).ok(),
            |path| std::fs::read_to_string(path),
            token_file,
        )
    }

    /// Resolves credentials from `env` (a variable lookup) and `read_file`, with no other
    /// I/O: the whole rule set is testable without touching the process environment.
    ///
    /// Exactly one source must be configured; see the module documentation.
    pub fn resolve(
        env: impl Fn(&str) -> Option<String>,
        read_file: impl Fn(&Path) -> io::Result<String>,
        token_file: Option<&Path>,
    ) -> Result<Self, CredentialsError> {
        let var = |name: &str| env(name).filter(|value| !value.is_empty());
        let token = var(ENV_API_TOKEN);
        let email = var(ENV_EMAIL);
        let key = var(ENV_API_KEY);

        let systemd_path =
            var(ENV_CREDENTIALS_DIRECTORY).map(|dir| Path::new(&dir).join(SYSTEMD_CREDENTIAL_NAME));
        let systemd_token = match &systemd_path {
            Some(path) => match read_file(path) {
                Ok(text) => Some((path.clone(), text)),
                Err(err) if err.kind() == io::ErrorKind::NotFound => None,
                Err(source) => {
                    return Err(CredentialsError::ReadFile {
                        path: path.clone(),
                        source,
                    });
                }
            },
            None => None,
        };

        let mut configured: Vec<String> = Vec::new();
        if let Some(path) = token_file {
            configured.push(format!("--api-token-file {}", path.display()));
        }
        if token.is_some() {
            configured.push(ENV_API_TOKEN.to_owned());
        }
        if email.is_some() || key.is_some() {
            configured.push(format!("{ENV_EMAIL}/{ENV_API_KEY}"));
        }
        if let Some((path, _)) = &systemd_token {
            configured.push(format!("systemd credential {}", path.display()));
        }
        if configured.len() > 1 {
            return Err(CredentialsError::Conflict {
                first: configured[0].clone(),
                second: configured[1].clone(),
            });
        }

        if let Some(path) = token_file {
            let text = read_file(path).map_err(|source| CredentialsError::ReadFile {
                path: path.to_owned(),
                source,
            })?;
            return from_token_text(text, CredentialOrigin::TokenFile(path.to_owned()));
        }
        if let Some(token) = token {
            return from_token_text(token, CredentialOrigin::Environment);
        }
        match (email, key) {
            (Some(email), Some(key)) => {
                let origin = CredentialOrigin::Environment;
                check_header_safe(&email, &origin)?;
                check_header_safe(&key, &origin)?;
                return Ok(Self {
                    auth: Auth::GlobalKey {
                        email,
                        key: SecretString::from(key),
                    },
                    origin,
                });
            }
            (Some(_), None) => {
                return Err(CredentialsError::Incomplete {
                    present: ENV_EMAIL,
                    missing: ENV_API_KEY,
                });
            }
            (None, Some(_)) => {
                return Err(CredentialsError::Incomplete {
                    present: ENV_API_KEY,
                    missing: ENV_EMAIL,
                });
            }
            (None, None) => {}
        }
        if let Some((path, text)) = systemd_token {
            return from_token_text(text, CredentialOrigin::SystemdCredential(path));
        }
        Err(CredentialsError::Missing)
    }

    /// Where these credentials came from.
    pub fn origin(&self) -> &CredentialOrigin {
        &self.origin
    }

    /// The authentication scheme, for logs: `api-token` or `global-key`.
    pub fn scheme(&self) -> &'static str {
        match self.auth {
            Auth::Token(_) => "api-token",
            Auth::GlobalKey { .. } => "global-key",
        }
    }

    /// The request headers that authenticate as these credentials, marked sensitive so
    /// that the HTTP stack never prints them.
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        // Every secret was checked by `check_header_safe` on construction, so these
        // conversions cannot fail; a failure would only drop the header, never panic.
        match &self.auth {
            Auth::Token(token) => {
                if let Ok(mut value) =
                    HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                {
                    value.set_sensitive(true);
                    headers.insert(AUTHORIZATION, value);
                }
            }
            Auth::GlobalKey { email, key } => {
                if let Ok(value) = HeaderValue::from_str(email) {
                    headers.insert(HeaderName::from_static("x-auth-email"), value);
                }
                if let Ok(mut value) = HeaderValue::from_str(key.expose_secret()) {
                    value.set_sensitive(true);
                    headers.insert(HeaderName::from_static("x-auth-key"), value);
                }
            }
        }
        headers
    }

    /// `text` with every occurrence of the secret replaced, for text that came back from a
    /// server and is about to go into an error message.
    pub(crate) fn redact(&self, text: &str) -> String {
        let secret = match &self.auth {
            Auth::Token(token) => token.expose_secret(),
            Auth::GlobalKey { key, .. } => key.expose_secret(),
        };
        if secret.is_empty() {
            text.to_owned()
        } else {
            text.replace(secret, REDACTED)
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Credentials");
        match &self.auth {
            Auth::Token(_) => s.field("token", &REDACTED),
            Auth::GlobalKey { email, .. } => s.field("email", email).field("key", &REDACTED),
        };
        s.field("origin", &self.origin).finish()
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.auth {
            Auth::Token(_) => write!(f, "API token from {}", self.origin),
            Auth::GlobalKey { email, .. } => {
                write!(f, "global API key of {email} from {}", self.origin)
            }
        }
    }
}

fn from_token_text(
    text: String,
    origin: CredentialOrigin,
) -> Result<Credentials, CredentialsError> {
    let token = text.trim_end_matches(['\n', '\r', ' ', '\t']);
    check_header_safe(token, &origin)?;
    let token = SecretString::from(token);
    drop(text);
    Ok(Credentials {
        auth: Auth::Token(token),
        origin,
    })
}

/// Refuses values that would be empty, split into several header lines, or be rejected by
/// the HTTP stack later, so that a malformed secret fails before any request.
fn check_header_safe(value: &str, origin: &CredentialOrigin) -> Result<(), CredentialsError> {
    if value.is_empty() {
        return Err(CredentialsError::Empty {
            origin: origin.to_string(),
        });
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CredentialsError::InvalidCharacters {
            origin: origin.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const TOKEN: &str = "tok_SECRET_0123456789abcdef";
    const KEY: &str = "key_SECRET_fedcba9876543210";

    fn resolve(
        vars: &[(&str, &str)],
        files: &[(&str, &str)],
        flag: Option<&str>,
    ) -> Result<Credentials, CredentialsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let files: HashMap<PathBuf, String> = files
            .iter()
            .map(|(k, v)| (PathBuf::from(k), (*v).to_owned()))
            .collect();
        Credentials::resolve(
            |name| vars.get(name).cloned(),
            |path| {
                files
                    .get(path)
                    .cloned()
                    .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
            },
            flag.map(Path::new),
        )
    }

    fn bearer(creds: &Credentials) -> String {
        creds.headers()[AUTHORIZATION].to_str().unwrap().to_owned()
    }

    #[test]
    fn token_from_environment() {
        let creds = resolve(&[(ENV_API_TOKEN, TOKEN)], &[], None).unwrap();
        assert_eq!(bearer(&creds), format!("Bearer {TOKEN}"));
        assert_eq!(creds.origin(), &CredentialOrigin::Environment);
        assert_eq!(creds.scheme(), "api-token");
    }

    #[test]
    fn global_key_from_environment() {
        let creds = resolve(
            &[(ENV_EMAIL, "ops@example.com"), (ENV_API_KEY, KEY)],
            &[],
            None,
        )
        .unwrap();
        let headers = creds.headers();
        assert_eq!(headers["x-auth-email"], "ops@example.com");
        assert_eq!(headers["x-auth-key"], KEY);
        assert!(headers["x-auth-key"].is_sensitive());
        assert!(!headers.contains_key(AUTHORIZATION));
        assert_eq!(creds.scheme(), "global-key");
    }

    #[test]
    fn token_file_flag_trims_trailing_newline() {
        let creds = resolve(
            &[],
            &[("/etc/cf/token", &format!("{TOKEN}\r\n"))],
            Some("/etc/cf/token"),
        )
        .unwrap();
        assert_eq!(bearer(&creds), format!("Bearer {TOKEN}"));
        assert_eq!(
            creds.origin(),
            &CredentialOrigin::TokenFile("/etc/cf/token".into())
        );
        assert!(creds.headers()[AUTHORIZATION].is_sensitive());
    }

    #[test]
    fn systemd_credential_is_used_when_nothing_else_is_set() {
        let creds = resolve(
            &[(
                ENV_CREDENTIALS_DIRECTORY,
                "/run/credentials/cfgroups.service",
            )],
            &[(
                "/run/credentials/cfgroups.service/cloudflare-api-token",
                &format!("{TOKEN}\n"),
            )],
            None,
        )
        .unwrap();
        assert_eq!(bearer(&creds), format!("Bearer {TOKEN}"));
        assert!(matches!(
            creds.origin(),
            CredentialOrigin::SystemdCredential(_)
        ));
    }

    #[test]
    fn credentials_directory_without_our_file_is_ignored() {
        let creds = resolve(
            &[
                (ENV_CREDENTIALS_DIRECTORY, "/run/credentials/x"),
                (ENV_API_TOKEN, TOKEN),
            ],
            &[],
            None,
        )
        .unwrap();
        assert_eq!(creds.origin(), &CredentialOrigin::Environment);
    }

    #[test]
    fn nothing_set_is_missing() {
        assert!(matches!(
            resolve(&[], &[], None),
            Err(CredentialsError::Missing)
        ));
        // Empty variables count as unset.
        assert!(matches!(
            resolve(&[(ENV_API_TOKEN, ""), (ENV_EMAIL, "")], &[], None),
            Err(CredentialsError::Missing)
        ));
    }

    #[test]
    fn half_a_global_key_is_incomplete() {
        assert!(matches!(
            resolve(&[(ENV_EMAIL, "ops@example.com")], &[], None),
            Err(CredentialsError::Incomplete {
                missing: ENV_API_KEY,
                ..
            })
        ));
        assert!(matches!(
            resolve(&[(ENV_API_KEY, KEY)], &[], None),
            Err(CredentialsError::Incomplete {
                missing: ENV_EMAIL,
                ..
            })
        ));
    }

    #[test]
    fn every_pair_of_sources_conflicts() {
        let systemd = (ENV_CREDENTIALS_DIRECTORY, "/run/c");
        let file = [("/run/c/cloudflare-api-token", TOKEN), ("/etc/tok", TOKEN)];
        type Vars<'a> = Vec<(&'a str, &'a str)>;
        let cases: Vec<(Vars, Option<&str>)> = vec![
            (vec![(ENV_API_TOKEN, TOKEN), (ENV_API_KEY, KEY)], None),
            (
                vec![
                    (ENV_API_TOKEN, TOKEN),
                    (ENV_EMAIL, "a@b.c"),
                    (ENV_API_KEY, KEY),
                ],
                None,
            ),
            (vec![(ENV_API_TOKEN, TOKEN), (ENV_EMAIL, "a@b.c")], None),
            (vec![(ENV_API_TOKEN, TOKEN)], Some("/etc/tok")),
            (
                vec![(ENV_EMAIL, "a@b.c"), (ENV_API_KEY, KEY)],
                Some("/etc/tok"),
            ),
            (vec![systemd, (ENV_API_TOKEN, TOKEN)], None),
            (vec![systemd], Some("/etc/tok")),
            (
                vec![systemd, (ENV_EMAIL, "a@b.c"), (ENV_API_KEY, KEY)],
                None,
            ),
        ];
        for (vars, flag) in cases {
            let result = resolve(&vars, &file, flag);
            assert!(
                matches!(result, Err(CredentialsError::Conflict { .. })),
                "{vars:?} {flag:?} gave {result:?}"
            );
        }
    }

    #[test]
    fn unreadable_or_malformed_token_files_fail() {
        assert!(matches!(
            resolve(&[], &[], Some("/nope")),
            Err(CredentialsError::ReadFile { .. })
        ));
        assert!(matches!(
            resolve(&[], &[("/t", "\n")], Some("/t")),
            Err(CredentialsError::Empty { .. })
        ));
        assert!(matches!(
            resolve(&[], &[("/t", "line1\nline2\n")], Some("/t")),
            Err(CredentialsError::InvalidCharacters { .. })
        ));
    }

    #[test]
    fn debug_display_and_errors_never_show_secrets() {
        let token = resolve(&[(ENV_API_TOKEN, TOKEN)], &[], None).unwrap();
        let key = resolve(
            &[(ENV_EMAIL, "ops@example.com"), (ENV_API_KEY, KEY)],
            &[],
            None,
        )
        .unwrap();
        for text in [
            format!("{token:?}"),
            format!("{token}"),
            format!("{key:?}"),
            format!("{key}"),
            format!("{:?}", token.headers()),
            format!("{:?}", key.headers()),
        ] {
            assert!(
                !text.contains(TOKEN) && !text.contains(KEY),
                "leaked: {text}"
            );
        }
        assert!(format!("{key:?}").contains("ops@example.com"));
        let conflict =
            resolve(&[(ENV_API_TOKEN, TOKEN), (ENV_API_KEY, KEY)], &[], None).unwrap_err();
        let text = format!("{conflict} {conflict:?}");
        assert!(
            !text.contains(TOKEN) && !text.contains(KEY),
            "leaked: {text}"
        );
    }

    #[test]
    fn redact_scrubs_echoed_secrets() {
        let creds = resolve(&[(ENV_API_TOKEN, TOKEN)], &[], None).unwrap();
        assert_eq!(
            creds.redact(&format!("bad token {TOKEN}!")),
            "bad token [REDACTED]!"
        );
    }
}
