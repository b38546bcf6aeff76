//! etcd's v3 JSON gateway (grpc-gateway over the client port), reduced to the calls an
//! election needs: lease grant / keep-alive / revoke, and the election service's campaign /
//! leader / resign. Plain HTTP+JSON through reqwest, so nothing needs `protoc` or a gRPC
//! stack: keys and values travel base64-encoded, 64-bit integers as strings.
//!
//! Endpoints are tried in order, starting with the one that answered last; a member that
//! does not answer is skipped for the next. A `Refused` answer (an HTTP error with etcd's
//! `{"error", "code", "message"}` body) is final for that call. With credentials, the token
//! from `/v3/auth/authenticate` rides in the `Authorization` header and is renewed once
//! when etcd calls it invalid.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use thiserror::Error;

use super::EtcdSettings;

/// What went wrong talking to etcd. Never carries a password or token.
#[derive(Debug, Error)]
pub enum GatewayError {
    #[error("no etcd endpoint given (--etcd-endpoints URL[,URL...])")]
    NoEndpoints,
    #[error("bad etcd endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("cannot read the etcd {what} file {path}: {source}")]
    File {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad TLS material in {path}: {source}")]
    Tls {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("--etcd-cert-file and --etcd-key-file go together")]
    HalfIdentity,
    #[error("--etcd-username-file and --etcd-password-file go together")]
    HalfCredentials,
    #[error("refusing to send etcd credentials over plain http to {0}: use https, or loopback")]
    CredentialsInClear(String),
    #[error("cannot build the etcd client: {0}")]
    Build(#[source] reqwest::Error),
    #[error("etcd at {endpoint} did not answer {call}: {source}")]
    Transport {
        endpoint: String,
        call: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("etcd at {endpoint} refused {call}: {message} (HTTP {status}, code {code})")]
    Refused {
        endpoint: String,
        call: &'static str,
        status: u16,
        code: i64,
        message: String,
    },
    #[error("etcd at {endpoint} answered {call} with an unexpected body: {detail}")]
    Decode {
        endpoint: String,
        call: &'static str,
        detail: String,
    },
}

impl GatewayError {
    /// etcd answered, and said there is no leader in the election.
    pub fn is_no_leader(&self) -> bool {
        matches!(self, Self::Refused { message, .. } if message.contains("no leader"))
    }

    /// etcd answered, and said the auth token is no longer good.
    fn is_token_rejected(&self) -> bool {
        matches!(self, Self::Refused { message, code, .. }
            if *code == 16 || message.contains("invalid auth token"))
    }
}

/// An etcd lease id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(pub i64);

impl std::fmt::Display for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// This replica's key in an election once it leads, as `resign` wants it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderKey {
    /// The election name, base64.
    pub name: String,
    /// The key, base64.
    pub key: String,
    /// The key's create revision: the term's number.
    pub rev: i64,
    pub lease: LeaseId,
}

/// The election's current leader, as `leader` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    /// The leader's key, base64.
    pub key: String,
    /// The value it campaigned with: its identity.
    pub value: String,
    pub create_revision: i64,
}

/// Name and password, read from files.
struct Credentials {
    user: String,
    password: SecretString,
}

/// A client of the JSON gateway of one etcd cluster.
pub struct Gateway {
    http: reqwest::Client,
    endpoints: Vec<Url>,
    /// The endpoint that answered last, tried first.
    preferred: AtomicUsize,
    credentials: Option<Credentials>,
    token: Mutex<Option<SecretString>>,
    /// Time allowed for each call but `campaign` (which waits for its turn).
    timeout: Duration,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("endpoints", &self.endpoints)
            .field("authenticated", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Checks the endpoints and reads the TLS and credential files. Connects lazily.
    pub fn connect(settings: &EtcdSettings, timeout: Duration) -> Result<Self, GatewayError> {
        let endpoints = settings
            .endpoints
            .iter()
            .map(|e| parse_endpoint(e))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(GatewayError::NoEndpoints);
        }
        // reqwest is built without a default crypto provider; a second install is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none());
        if endpoints.iter().all(is_loopback) {
            builder = builder.no_proxy();
        }
        if let Some(path) = &settings.ca_file {
            let pem = read(path, "CA")?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                GatewayError::Tls {
                    path: path.display().to_string(),
                    source,
                }
            })?;
            builder = builder.tls_certs_only(certs);
        }
        match (&settings.cert_file, &settings.key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = read(cert, "client certificate")?;
                pem.push(b'\n');
                pem.extend(read(key, "client key")?);
                let identity =
                    reqwest::Identity::from_pem(&pem).map_err(|source| GatewayError::Tls {
                        path: cert.display().to_string(),
                        source,
                    })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => return Err(GatewayError::HalfIdentity),
        }
        let credentials = match (&settings.username_file, &settings.password_file) {
            (Some(user), Some(password)) => {
                if let Some(clear) = endpoints
                    .iter()
                    .find(|e| e.scheme() == "http" && !is_loopback(e))
                {
                    return Err(GatewayError::CredentialsInClear(clear.to_string()));
                }
                let user = String::from_utf8_lossy(&read(user, "user name")?)
                    .trim()
                    .to_owned();
                let password = SecretString::from(
                    String::from_utf8_lossy(&read(password, "password")?)
                        .trim_end_matches(['\r', '\n'])
                        .to_owned(),
                );
                Some(Credentials { user, password })
            }
            (None, None) => None,
            _ => return Err(GatewayError::HalfCredentials),
        };
        Ok(Self {
            http: builder.build().map_err(GatewayError::Build)?,
            endpoints,
            preferred: AtomicUsize::new(0),
            credentials,
            token: Mutex::new(None),
            timeout,
        })
    }

    /// A new lease of `ttl` seconds, and the TTL etcd granted.
    pub async fn grant(&self, ttl: u32) -> Result<(LeaseId, i64), GatewayError> {
        let (endpoint, body) = self
            .call(
                "lease grant",
                "/v3/lease/grant",
                json!({ "TTL": ttl }),
                true,
            )
            .await?;
        let id = int(&body["ID"]).ok_or_else(|| decode(&endpoint, "lease grant", "no ID"))?;
        let ttl = int(&body["TTL"]).unwrap_or(0);
        Ok((LeaseId(id), ttl))
    }

    /// Renews the lease once: its remaining TTL, or `None` when the lease no longer exists.
    pub async fn keep_alive(&self, lease: LeaseId) -> Result<Option<i64>, GatewayError> {
        let (_, body) = self
            .call(
                "lease keep-alive",
                "/v3/lease/keepalive",
                json!({ "ID": lease.0.to_string() }),
                true,
            )
            .await?;
        // One response per request; etcd leaves TTL out (zero) for an unknown lease.
        let ttl = int(&body["result"]["TTL"]).unwrap_or(0);
        Ok((ttl > 0).then_some(ttl))
    }

    /// Revokes the lease, deleting every key attached to it (an unknown lease is fine).
    pub async fn revoke(&self, lease: LeaseId) -> Result<(), GatewayError> {
        match self
            .call(
                "lease revoke",
                "/v3/lease/revoke",
                json!({ "ID": lease.0.to_string() }),
                true,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(GatewayError::Refused { message, .. }) if message.contains("lease not found") => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Campaigns in election `name` with `lease`, announcing `value`; returns once this
    /// campaigner leads (which may take as long as the current leader holds on).
    pub async fn campaign(
        &self,
        name: &str,
        lease: LeaseId,
        value: &str,
    ) -> Result<LeaderKey, GatewayError> {
        let (endpoint, body) = self
            .call(
                "election campaign",
                "/v3/election/campaign",
                json!({
                    "name": BASE64.encode(name),
                    "lease": lease.0.to_string(),
                    "value": BASE64.encode(value),
                }),
                false,
            )
            .await?;
        let leader = &body["leader"];
        let field = |key: &str| {
            leader[key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| decode(&endpoint, "election campaign", &format!("no leader.{key}")))
        };
        Ok(LeaderKey {
            name: field("name")?,
            key: field("key")?,
            rev: int(&leader["rev"])
                .ok_or_else(|| decode(&endpoint, "election campaign", "no leader.rev"))?,
            lease: LeaseId(int(&leader["lease"]).unwrap_or(lease.0)),
        })
    }

    /// The election's leader, or `None` when nobody leads.
    pub async fn leader(&self, name: &str) -> Result<Option<LeaderInfo>, GatewayError> {
        let (endpoint, body) = match self
            .call(
                "election leader",
                "/v3/election/leader",
                json!({ "name": BASE64.encode(name) }),
                true,
            )
            .await
        {
            Ok(answer) => answer,
            Err(e) if e.is_no_leader() => return Ok(None),
            Err(e) => return Err(e),
        };
        let kv = &body["kv"];
        let Some(key) = kv["key"].as_str() else {
            return Ok(None);
        };
        let value = kv["value"]
            .as_str()
            .and_then(|v| BASE64.decode(v).ok())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default();
        Ok(Some(LeaderInfo {
            key: key.to_owned(),
            value,
            create_revision: int(&kv["create_revision"])
                .ok_or_else(|| decode(&endpoint, "election leader", "no kv.create_revision"))?,
        }))
    }

    /// Gives up leadership: deletes this replica's key, so the next campaigner leads now.
    pub async fn resign(&self, leader: &LeaderKey) -> Result<(), GatewayError> {
        self.call(
            "election resign",
            "/v3/election/resign",
            json!({ "leader": {
                "name": leader.name,
                "key": leader.key,
                "rev": leader.rev.to_string(),
                "lease": leader.lease.0.to_string(),
            }}),
            true,
        )
        .await
        .map(drop)
    }

    /// Sends one call, trying each endpoint in turn until one answers; renews the auth
    /// token once if etcd rejects it. `bounded`: under the call timeout.
    async fn call(
        &self,
        call: &'static str,
        path: &str,
        body: Value,
        bounded: bool,
    ) -> Result<(String, Value), GatewayError> {
        match self.call_once(call, path, &body, bounded).await {
            Err(e) if e.is_token_rejected() && self.credentials.is_some() => {
                self.forget_token();
                self.call_once(call, path, &body, bounded).await
            }
            other => other,
        }
    }

    async fn call_once(
        &self,
        call: &'static str,
        path: &str,
        body: &Value,
        bounded: bool,
    ) -> Result<(String, Value), GatewayError> {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last = None;
        for offset in 0..self.endpoints.len() {
            let index = (first + offset) % self.endpoints.len();
            let endpoint = &self.endpoints[index];
            let token = match self.token(endpoint).await {
                Ok(token) => token,
                Err(e @ GatewayError::Transport { .. }) => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match self.post(endpoint, call, path, body, token, bounded).await {
                Err(e @ GatewayError::Transport { .. }) => last = Some(e),
                other => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return other.map(|value| (endpoint_name(endpoint), value));
                }
            }
        }
        Err(last.unwrap_or(GatewayError::NoEndpoints))
    }

    async fn post(
        &self,
        endpoint: &Url,
        call: &'static str,
        path: &str,
        body: &Value,
        token: Option<SecretString>,
        bounded: bool,
    ) -> Result<Value, GatewayError> {
        let name = endpoint_name(endpoint);
        let url =
            endpoint
                .join(path.trim_start_matches('/'))
                .map_err(|e| GatewayError::Endpoint {
                    endpoint: name.clone(),
                    reason: e.to_string(),
                })?;
        let mut request = self.http.post(url).json(body);
        if bounded {
            request = request.timeout(self.timeout);
        }
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(token.expose_secret())
                .map_err(|_| decode(&name, call, "an auth token that is not a header value"))?;
            value.set_sensitive(true);
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        let transport = |source| GatewayError::Transport {
            endpoint: name.clone(),
            call,
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let text = response.text().await.map_err(transport)?;
        // A keep-alive stream may carry several lines; the first is the answer.
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let value: Value = serde_json::from_str(first)
            .map_err(|e| decode(&name, call, &format!("{e}: {}", clip(first))))?;
        let error = value.get("error").filter(|e| !e.is_null());
        if status != StatusCode::OK || error.is_some() {
            let message = value["message"]
                .as_str()
                .or_else(|| value["error"].as_str())
                .or_else(|| value["error"]["message"].as_str())
                .unwrap_or("")
                .to_owned();
            let code = int(&value["code"])
                .or_else(|| int(&value["error"]["grpc_code"]))
                .unwrap_or(0);
            return Err(GatewayError::Refused {
                endpoint: name,
                call,
                status: status.as_u16(),
                code,
                message,
            });
        }
        Ok(value)
    }

    /// The auth token, authenticating first when there is none yet.
    async fn token(&self, endpoint: &Url) -> Result<Option<SecretString>, GatewayError> {
        let Some(credentials) = &self.credentials else {
            return Ok(None);
        };
        if let Some(token) = self.lock_token().clone() {
            return Ok(Some(token));
        }
        let body = json!({
            "name": credentials.user,
            "password": credentials.password.expose_secret(),
        });
        let answer = self
            .post(
                endpoint,
                "authenticate",
                "/v3/auth/authenticate",
                &body,
                None,
                true,
            )
            .await?;
        let token = answer["token"]
            .as_str()
            .ok_or_else(|| decode(&endpoint_name(endpoint), "authenticate", "no token"))?;
        let token = SecretString::from(token.to_owned());
        *self.lock_token() = Some(token.clone());
        Ok(Some(token))
    }

    fn forget_token(&self) {
        *self.lock_token() = None;
    }

    fn lock_token(&self) -> std::sync::MutexGuard<'_, Option<SecretString>> {
        self.token.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An endpoint URL: http or https, a host, no credentials, no query.
fn parse_endpoint(text: &str) -> Result<Url, GatewayError> {
    let bad = |reason: &str| GatewayError::Endpoint {
        endpoint: redact(text),
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials do not go in the URL: use --etcd-username-file and --etcd-password-file",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// An endpoint as it may be shown: whatever stands before an `@` (credentials someone put
/// in the URL) replaced by `***`.
fn redact(text: &str) -> String {
    match text.rfind('@') {
        Some(at) => {
            let start = text.find("://").map_or(0, |i| i + 3).min(at);
            format!("{}***{}", &text[..start], &text[at..])
        }
        None => text.to_owned(),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn endpoint_name(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, GatewayError> {
    std::fs::read(path).map_err(|source| GatewayError::File {
        what,
        path: path.display().to_string(),
        source,
    })
}

fn decode(endpoint: &str, call: &'static str, detail: &str) -> GatewayError {
    GatewayError::Decode {
        endpoint: endpoint.to_owned(),
        call,
        detail: detail.to_owned(),
    }
}

/// A JSON integer as the gateway writes 64-bit ones (a string), or a plain number.
fn int(value: &Value) -> Option<i64> {
    match value {
        Value::String(text) => text.parse().ok(),
        Value::Number(number) => number.as_i64(),
        _ => None,
    }
}

fn clip(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked() {
        let ok = parse_endpoint("http://127.0.0.1:2379").unwrap();
        assert_eq!(ok.as_str(), "http://127.0.0.1:2379/");
        assert_eq!(
            parse_endpoint("https://etcd.internal:2379/prefix")
                .unwrap()
                .as_str(),
            "https://etcd.internal:2379/prefix/"
        );
        for bad in [
            "etcd:2379",
            "unix:///run/etcd.sock",
            "http://user:pw@127.0.0.1:2379",
            "http://127.0.0.1:2379/?x=1",
            "",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_in_an_endpoint_are_never_echoed() {
        let error = parse_endpoint("http://user:s3cret@127.0.0.1:2379").unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert_eq!(redact("user:s3cret@host:2379"), "***@host:2379");
        assert_eq!(redact("https://a:b@h"), "https://***@h");
        assert_eq!(redact("http://h:1"), "http://h:1");
    }

    #[test]
    fn integers_come_as_strings_or_numbers() {
        assert_eq!(
            int(&json!("7587862334915174659")),
            Some(7_587_862_334_915_174_659)
        );
        assert_eq!(int(&json!(15)), Some(15));
        assert_eq!(int(&json!(null)), None);
        assert_eq!(int(&json!("x")), None);
    }

    #[test]
    fn credentials_are_never_sent_in_clear_to_another_host() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user");
        let password = dir.path().join("password");
        std::fs::write(&user, "cfgroups\n").unwrap();
        std::fs::write(&password, "s3cret\n").unwrap();
        let settings = |endpoint: &str| EtcdSettings {
            endpoints: vec![endpoint.to_owned()],
            username_file: Some(user.clone()),
            password_file: Some(password.clone()),
            ..EtcdSettings::default()
        };
        let timeout = Duration::from_secs(1);
        assert!(matches!(
            Gateway::connect(&settings("http://10.0.0.5:2379"), timeout),
            Err(GatewayError::CredentialsInClear(_))
        ));
        let gateway = Gateway::connect(&settings("http://127.0.0.1:2379"), timeout).unwrap();
        assert!(!format!("{gateway:?}").contains("s3cret"));
        assert!(matches!(
            Gateway::connect(
                &EtcdSettings {
                    password_file: None,
                    ..settings("http://127.0.0.1:2379")
                },
                timeout
            ),
            Err(GatewayError::HalfCredentials)
        ));
    }
}
