//! The API base URL and the rule that keeps credentials off the wire in clear text:
//! `https://` anywhere, plain `http://` only to a loopback host (a local fake or proxy).

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
            url: text.to_owned(),
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
            url: text,
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
    fn join_keeps_the_base_path() {
        let base = BaseUrl::parse("http://127.0.0.1:8080/client/v4/").unwrap();
        assert_eq!(
            base.join("/accounts/x").unwrap().as_str(),
            "http://127.0.0.1:8080/client/v4/accounts/x"
        );
    }
}
