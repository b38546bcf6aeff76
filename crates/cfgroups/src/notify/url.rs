//! A sink's URL: read from its environment variable or file when needed, checked (`https://`,
//! or plain `http://` to a loopback host only), and never shown. A Slack incoming-webhook URL
//! is its own credential, so errors name where the URL comes from, never what it is.

use std::io::Read;
use std::net::IpAddr;

use reqwest::Url;
use thiserror::Error;

use crate::config::UrlSource;

/// The most read from a URL file: a URL is short, and a wrong path (`/dev/zero`) must not
/// fill memory.
const MAX_URL_FILE: u64 = 64 * 1024;

/// Why a sink's URL cannot be used. Never holds the URL or any part of it.
#[derive(Debug, Error)]
pub enum UrlError {
    #[error("environment variable {0} is not set (or not UTF-8)")]
    MissingEnv(String),
    #[error("cannot read {path}: {source}")]
    File {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is empty")]
    Empty(String),
    #[error("{0} does not hold a URL")]
    NotAUrl(String),
    #[error(
        "{0} holds a URL that is neither https:// nor http:// to a loopback host; notifications carry account and group names, so they are not sent in clear text"
    )]
    Insecure(String),
}

/// The URL `source` holds now.
pub fn resolve(source: &UrlSource) -> Result<Url, UrlError> {
    let text = match source {
        UrlSource::Env(name) => {
            std::env::var(name).map_err(|_| UrlError::MissingEnv(name.clone()))?
        }
        UrlSource::File(path) => {
            let file = std::fs::File::open(path).map_err(|source| UrlError::File {
                path: path.clone(),
                source,
            })?;
            let mut text = String::new();
            file.take(MAX_URL_FILE)
                .read_to_string(&mut text)
                .map_err(|source| UrlError::File {
                    path: path.clone(),
                    source,
                })?;
            text.lines().next().unwrap_or_default().to_owned()
        }
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(UrlError::Empty(source.to_string()));
    }
    let url = Url::parse(text).map_err(|_| UrlError::NotAUrl(source.to_string()))?;
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(UrlError::Insecure(source.to_string())),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some(host) if host.eq_ignore_ascii_case("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_file(text: &str) -> Result<Url, UrlError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(&path, text).unwrap();
        resolve(&UrlSource::File(path))
    }

    #[test]
    fn a_file_gives_its_first_line() {
        let url = from_file("https://hooks.example.com/services/T0/B0/XyZ\nignored\n").unwrap();
        assert_eq!(url.path(), "/services/T0/B0/XyZ");
        assert!(from_file("http://127.0.0.1:9/hook\n").is_ok());
    }

    #[test]
    fn errors_never_show_the_url() {
        let secret = "http://hooks.example.com/services/T0/B0/SECRET-PART";
        let error = from_file(secret).unwrap_err();
        assert!(matches!(error, UrlError::Insecure(_)));
        assert!(!error.to_string().contains("SECRET"), "{error}");
        let error = from_file("not a url SECRET").unwrap_err();
        assert!(!error.to_string().contains("SECRET"), "{error}");
        assert!(matches!(from_file("\n"), Err(UrlError::Empty(_))));
        let missing = resolve(&UrlSource::Env("CFGROUPS_TEST_NO_SUCH_VARIABLE".into()));
        assert!(matches!(missing, Err(UrlError::MissingEnv(_))));
    }
}
