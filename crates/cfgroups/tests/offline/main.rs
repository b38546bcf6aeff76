//! The binary and the library without the network, plus the few checks that need only a
//! local fake: reports, exit codes and the bad-input corpus; the request budget's
//! properties on paused time; the plan engine and its
//! properties; export; the schema, completions and man pages; the deployment examples;
//! hostile inputs; the security pass; what an `exec:` lister may see and print; systemd
//! notifications.

mod budget_window;
mod cli;
mod ecosystem;
mod examples;
mod exec_secrets;
mod export;
mod hostile;
mod plan;
mod security;
mod systemd_notify;
