//! The `--source` spec (`cloudflare`, `snapshot:FILE`, `exec:COMMAND`) and the source it opens.

use std::path::PathBuf;
use std::str::FromStr;

use thiserror::Error;

use super::exec::{ExecError, ExecOptions};
use super::snapshot::SnapshotError;
use super::{CloudflareSource, ExecSource, GroupSource, ListingError, SnapshotSource};
use crate::model::{AccountId, ObservedGroup};

/// Which listing source to use, as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The live Cloudflare API.
    Cloudflare,
    /// A snapshot file (JSON or YAML), as `export --snapshot` writes.
    Snapshot(PathBuf),
    /// A program that prints an account's groups; the account id is its last argument.
    Exec(String),
}

impl FromStr for SourceSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        match spec.split_once(':') {
            _ if spec == "cloudflare" => Ok(Self::Cloudflare),
            Some(("snapshot", path)) if !path.is_empty() => Ok(Self::Snapshot(path.into())),
            Some(("exec", command)) if !command.trim().is_empty() => {
                Ok(Self::Exec(command.to_owned()))
            }
            _ => Err(format!(
                "unknown source {spec:?}: expected `cloudflare`, `snapshot:FILE` or `exec:COMMAND`"
            )),
        }
    }
}

/// Every source, behind one type so commands can hold whichever was asked for.
#[derive(Debug)]
pub enum AnySource {
    Cloudflare(CloudflareSource),
    Snapshot(SnapshotSource),
    Exec(ExecSource),
}

/// Settings that only some sources use.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// How `exec:` commands run: timeout, environment, what is scrubbed from their output.
    pub exec: ExecOptions,
}

/// Why an offline source could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("the cloudflare source is not an offline source: it needs credentials")]
    NotOffline,
}

impl AnySource {
    /// Opens an offline source. The live source needs credentials and is opened by the
    /// command that has them.
    pub fn open_offline(spec: &SourceSpec, options: &SourceOptions) -> Result<Self, OpenError> {
        Ok(match spec {
            SourceSpec::Snapshot(path) => Self::Snapshot(SnapshotSource::open(path)?),
            SourceSpec::Exec(command) => {
                Self::Exec(ExecSource::new(command, options.exec.clone())?)
            }
            SourceSpec::Cloudflare => return Err(OpenError::NotOffline),
        })
    }
}

impl GroupSource for AnySource {
    fn describe(&self) -> String {
        match self {
            Self::Cloudflare(source) => source.describe(),
            Self::Snapshot(source) => source.describe(),
            Self::Exec(source) => source.describe(),
        }
    }

    async fn list(&self, account: &AccountId) -> Result<Vec<ObservedGroup>, ListingError> {
        match self {
            Self::Cloudflare(source) => source.list(account).await,
            Self::Snapshot(source) => source.list(account).await,
            Self::Exec(source) => source.list(account).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spec() {
        assert_eq!("cloudflare".parse(), Ok(SourceSpec::Cloudflare));
        assert_eq!(
            "snapshot:a/b.json".parse(),
            Ok(SourceSpec::Snapshot("a/b.json".into()))
        );
        assert_eq!(
            "exec:lister --flag 'a b'".parse(),
            Ok(SourceSpec::Exec("lister --flag 'a b'".into()))
        );
        for bad in ["", "snapshot:", "exec: ", "cloudflare:x", "file:x"] {
            assert!(bad.parse::<SourceSpec>().is_err(), "{bad:?} was accepted");
        }
    }
}
