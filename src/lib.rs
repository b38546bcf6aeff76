//! cfgroups keeps Cloudflare IAM user groups the way a YAML file says they should be.
//!
//! Crate map, in the order data flows:
//! - [`model`]: validated ids and the observed group shape;
//! - [`config`]: the desired-state file: schema, loading, validation into a [`config::DesiredState`];
//! - [`protect`]: the names, ids and globs of groups that are never deleted;
//! - [`source`]: the `GroupSource` trait and its snapshot and exec implementations;
//! - [`plan`]: the pure diff of desired against observed into a [`plan::Plan`];
//! - [`report`]: the plan as text, JSON or Markdown;
//! - [`saved_plan`]: the deletions a reviewed plan allows, for `plan --out` / `apply --plan`;
//! - [`journal`]: the append-only record of every deletion, with backups for restores;
//! - [`daemon`]: the `run` command's parts: config watch, metrics, health server, systemd;
//! - [`cli`]: the command line, its commands and exit codes.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod journal;
pub mod model;
pub mod plan;
pub mod protect;
pub mod report;
pub mod saved_plan;
pub mod source;
