//! The API base URL and the rule that keeps credentials off the wire in clear text:
//! `https://` anywhere, plain `http://` only to a loopback host (a local fake or proxy).
//!
//! A refused value is never echoed whole: a URL with user info carries a password, and a
//! token pasted into `CLOUDFLARE_BASE_URL` by mistake is the secret itself. Errors show at
//! most the scheme and host (see [`describe_refused`]).

use std::fmt;
use std::net::IpAddr;

use reqwest::Url;

use super::error::Error;

/// Cloudflare's API v4 base URL, the default.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";

/// A validated API base URL, without a trailing slash.
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl {
    url: Url,
    loopback: bool,
}

impl BaseUrl {
    /// Checks `text`: an absolute `https://` URL, or `http://` to 127.0.0.0/8, `::1` or
    /// `localhost`; no user info, query or fragment.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidBaseUrl {
            url: describe_refused(text),
            reason: reason.to_owned(),
        };
        let url = Url::parse(text.trim()).map_err(|err| invalid(&err.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "user info is not allowed; credentials go in headers",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a query or fragment is not allowed"));
        }
        let loopback = is_loopback(&url);
        match url.scheme() {
            "https" if url.host().is_some() => {}
            "http" if loopback => {}
            "http" => {
                return Err(invalid(
                    "plain http is only allowed to a loopback host (127.0.0.0/8, ::1, localhost)",
                ));
            }
            _ => return Err(invalid("the scheme must be https")),
        }
        let mut url = url;
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&path);
        Ok(Self { url, loopback })
    }

    /// Whether the host is loopback; such a base bypasses any configured HTTP proxy.
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }

    /// The base joined with `path` (which starts with `/`).
    pub(crate) fn join(&self, path: &str) -> Result<Url, Error> {
        let text = format!("{}{}", self.url.as_str().trim_end_matches('/'), path);
        Url::parse(&text).map_err(|err| Error::InvalidBaseUrl {
            url: describe_refused(&text),
            reason: err.to_string(),
        })
    }
}

impl Default for BaseUrl {
    /// [`DEFAULT_BASE_URL`].
    fn default() -> Self {
        Self {
            url: Url::parse(DEFAULT_BASE_URL).expect("DEFAULT_BASE_URL is a valid URL"),
            loopback: false,
        }
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str().trim_end_matches('/'))
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BaseUrl({self})")
    }
}

/// What an error may show of a refused base URL: `scheme://host[:port]` when the text parses
/// as a URL with a host, else a placeholder with only its length. The path, query, fragment
/// and user info are never shown: any of them may hold a secret.
pub fn describe_refused(text: &str) -> String {
    if let Ok(url) = Url::parse(text.trim())
        && let Some(host) = url.host_str()
        && !host.is_empty()
    {
        return match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        };
    }
    format!("<not shown: {} characters>", text.chars().count())
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_cloudflare() {
        assert_eq!(BaseUrl::default().to_string(), DEFAULT_BASE_URL);
        assert!(!BaseUrl::default().is_loopback());
    }

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        for ok in [
            "https://api.cloudflare.com/client/v4",
            "https://api.cloudflare.com/client/v4/",
            "https://proxy.internal:8443/cf",
            "http://127.0.0.1:8080/client/v4",
            "http://127.5.6.7",
            "http://[::1]:9000/",
            "http://localhost:1234/client/v4",
            "http://LOCALHOST/",
        ] {
            assert!(BaseUrl::parse(ok).is_ok(), "{ok} refused");
        }
        for bad in [
            "http://api.cloudflare.com/client/v4",
            "http://10.0.0.1/",
            "http://128.0.0.1/",
            "http://[::2]/",
            "http://localhost.example.com/",
            "http://127.0.0.1.nip.io/",
            "ftp://127.0.0.1/",
            "file:///tmp/x",
            "https://user:pass@api.cloudflare.com/",
            "https://api.cloudflare.com/client/v4?x=1",
            "api.cloudflare.com/client/v4",
            "",
        ] {
            let err = BaseUrl::parse(bad).expect_err(bad);
            assert!(matches!(err, Error::InvalidBaseUrl { .. }));
        }
    }

    #[test]
    fn a_refused_url_shows_at_most_its_scheme_and_host() {
        let err = BaseUrl::parse("https://deploy:hunter2-pass@api.cloudflare.com/client/v4")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(!err.contains("deploy"), "{err}");
        assert!(err.contains("\"https://api.cloudflare.com\""), "{err}");
        assert!(err.contains("user info"), "{err}");

        let err = BaseUrl::parse("https://proxy.internal:8443/client/v4/s3cr3t?key=s3cr3t#s3cr3t")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(err.contains("\"https://proxy.internal:8443\""), "{err}");

        let err = BaseUrl::parse("http://10.0.0.1/secret-path")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret-path"), "{err}");
    }

    #[test]
    fn a_token_pasted_as_the_url_is_never_printed() {
        let token = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdo";
        for text in [
            token.to_owned(),
            format!(" {token}\n"),
            format!("Bearer {token}"),
        ] {
            let err = BaseUrl::parse(&text).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(token), "{shown}");
            assert!(!shown.contains("Zm9v"), "{shown}");
            assert!(
                shown.contains(&format!("{} characters", text.chars().count())),
                "{shown}"
            );
        }
    }

    #[test]
    fn join_keeps_the_base_path() {
        let base = BaseUrl::parse("http://127.0.0.1:8080/client/v4/").unwrap();
        assert_eq!(
            base.join("/accounts/x").unwrap().as_str(),
            "http://127.0.0.1:8080/client/v4/accounts/x"
        );
    }
}
