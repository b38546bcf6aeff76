//! cfgroups keeps Cloudflare IAM user groups the way a YAML file says they should be.
//!
//! Crate map, in the order data flows:
//! - [`model`]: validated ids, observed groups and listings, and how a deletion ends;
//! - [`config`]: the desired-state file: schema, loading, validation into a [`config::DesiredState`];
//! - [`protect`]: the names, ids and globs of groups that are never deleted;
//! - [`cloudflare`]: the live API client (credentials, retries, request budget, pagination);
//! - [`source`]: the `GroupSource` trait and its cloudflare, snapshot and exec implementations;
//! - [`hint`]: what an operator should check when Cloudflare refuses or cannot be reached;
//! - [`plan`]: the pure diff of desired against observed into a [`plan::Plan`];
//! - [`report`]: the plan as text, JSON or Markdown;
//! - [`shown`]: outside text shown to people: quoted, escaped, lookalikes told apart;
//! - [`saved_plan`]: the deletions a reviewed plan allows, for `plan --out` / `apply --plan`;
//! - [`journal`]: the append-only record of every deletion, with backups for restores;
//! - [`writer`]: the write operations as a trait, the seam between executor and HTTP;
//! - [`refusal`]: deletions Cloudflare will never allow (SCIM-provisioned groups, a token
//!   without write permission): permanent failures and their hints;
//! - [`apply`]: carrying out a plan's deletions: back up, journal, delete;
//! - [`after_deletions`]: the plan as it stands after a cycle's deletions, for reports;
//! - [`reconcile`]: the one pipeline `apply` and the daemon share: list, settle, plan, execute;
//! - [`restore`]: recreating a deleted group from its journal backup;
//! - [`export`]: what exists, written as a desired-state file or a snapshot;
//! - [`notify`]: notifications to webhooks and Slack: events, deduplication, delivery;
//! - [`daemon`]: the `run` command's parts: config watch, metrics, health server, systemd,
//!   leader election;
//! - [`memory`]: giving the system back what a daemon cycle allocated and freed;
//! - [`state_dir`]: where the journal and reports are kept;
//! - [`permissions`]: warnings about secrets and backups readable by others;
//! - [`yaml_guard`]: refuses YAML nested deep enough to stall the parser;
//! - [`cli`]: the command line: arguments, prompts, printing and exit codes.

pub mod after_deletions;
pub mod apply;
pub mod cli;
pub mod cloudflare;
pub mod config;
pub mod daemon;
pub mod export;
pub mod hint;
pub mod journal;
pub mod memory;
pub mod model;
pub mod notify;
pub mod permissions;
pub mod plan;
pub mod protect;
pub mod reconcile;
pub mod refusal;
pub mod report;
pub mod restore;
pub mod saved_plan;
pub mod shown;
pub mod source;
pub mod state_dir;
pub mod text;
pub mod writer;
pub mod yaml_guard;
