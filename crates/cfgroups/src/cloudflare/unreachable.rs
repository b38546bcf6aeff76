//! How a request failed to reach the API, said the way an operator looks for it: which
//! `host:port`, and whether the connection was refused, the name did not resolve, the TLS
//! handshake failed, or nothing answered in time. Read from the HTTP stack's error chain,
//! whose own top line ("error sending request for url (...)") says none of it.

use std::fmt;

/// Why a connection to the API could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Nothing listens there (`ECONNREFUSED`): a wrong port, a service down.
    Refused,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed (certificate, protocol); the detail says which.
    Tls(String),
    /// No answer in time (connect or request timeout).
    Timeout,
    /// The connection broke (reset, closed early).
    Broken,
    /// Something else; the detail is the innermost error's text.
    Other(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused => f.write_str("connection refused"),
            Self::Dns => f.write_str("the host name does not resolve (DNS)"),
            Self::Tls(detail) => write!(f, "TLS handshake failed: {detail}"),
            Self::Timeout => f.write_str("no answer in time"),
            Self::Broken => f.write_str("the connection broke"),
            Self::Other(detail) => f.write_str(detail),
        }
    }
}

/// Where a request went and why it got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    /// `host:port` of the request's URL (the port filled in from the scheme).
    pub endpoint: String,
    pub cause: Cause,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot reach {}: {}", self.endpoint, self.cause)
    }
}

impl Unreachable {
    /// What `error` says about the connection, from its whole chain of causes.
    pub fn of(error: &reqwest::Error) -> Self {
        let endpoint = error
            .url()
            .and_then(|url| {
                let host = url.host_str()?;
                let port = url.port_or_known_default()?;
                Some(if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                })
            })
            .unwrap_or_else(|| "the API".to_owned());
        Self {
            endpoint,
            cause: cause_of(error),
        }
    }
}

/// The cause, from the deepest error that names one.
fn cause_of(error: &reqwest::Error) -> Cause {
    if error.is_timeout() {
        return Cause::Timeout;
    }
    let mut texts = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = next {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Cause::Refused,
                std::io::ErrorKind::TimedOut => return Cause::Timeout,
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => return Cause::Broken,
                _ => {}
            }
        }
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Cause::Tls(tls.to_string());
        }
        texts.push(current.to_string());
        next = current.source();
    }
    let all = texts.join(": ").to_lowercase();
    if all.contains("dns error") || all.contains("failed to lookup address") {
        Cause::Dns
    } else if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
        Cause::Tls(texts.last().cloned().unwrap_or_default())
    } else if all.contains("connection closed") || all.contains("connection reset") {
        Cause::Broken
    } else {
        Cause::Other(texts.last().cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn failure(url: &str) -> reqwest::Error {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap();
        client.get(url).send().await.unwrap_err()
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_host_and_port() {
        // A port just freed: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let shown = Unreachable::of(&failure(&format!("http://127.0.0.1:{port}/x")).await);
        assert_eq!(shown.cause, Cause::Refused);
        assert_eq!(
            shown.to_string(),
            format!("cannot reach 127.0.0.1:{port}: connection refused")
        );
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_a_dns_failure() {
        // `.invalid` never resolves (RFC 2606).
        let shown = Unreachable::of(&failure("https://api.cfgroups-test.invalid/x").await);
        assert_eq!(shown.endpoint, "api.cfgroups-test.invalid:443");
        assert_eq!(shown.cause, Cause::Dns, "{shown}");
    }
}
