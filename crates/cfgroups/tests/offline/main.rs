//! The binary and the library without the network, plus the few checks that need only a
//! local fake: reports, exit codes and the bad-input corpus; the plan engine and its
//! properties; export; the schema, completions and man pages; the deployment examples;
//! hostile inputs; the security pass; systemd notifications.

mod cli;
mod ecosystem;
mod examples;
mod export;
mod hostile;
mod plan;
mod security;
mod systemd_notify;
