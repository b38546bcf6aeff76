//! The one harness of cfgroups' integration tests and benches: the binary under test, the
//! fake Cloudflare API, waiting for conditions, desired-state files, scenarios and their
//! checks, the HTTP client pointed at the fake, and the daemon.
//!
//! Module map:
//! - [`bench`]: generated accounts, medians, and figures printed against their bounds;
//! - [`paths`]: the repository root, the examples in it, and the `cfgroups` binary;
//! - [`command`]: the hermetic `cfgroups` command, wired to a fake API, and its output;
//! - [`fake`]: the fake API with the test token, started async or on a runtime of its own;
//! - [`wait`]: a condition polled until it holds or a deadline passes, async or blocking;
//! - [`config`]: account, group and member ids, fake groups, and desired-state files;
//! - [`scenario`]: accounts full of groups to delete, and checks over the fake's state and
//!   the journal;
//! - [`seeded`]: seeded randomness and run sizes taken from the environment;
//! - [`measure`]: the benchmarks' wall times, peak memory, medians and targets;
//! - [`client`]: the product's HTTP client pointed at a fake, recording every attempt;
//! - [`daemon`]: `cfgroups run` against the fake: its JSON log, its health and metrics
//!   server, signals, and its memory and CPU from `/proc`;
//! - [`etcd`]: a real etcd (Debian's `etcd-server`) on free loopback ports, for leader
//!   election;
//! - [`lease_api`]: a fake of the Kubernetes Lease endpoints that enforces `resourceVersion`;
//! - [`oracle`]: the deletion rules restated independently of the planner, for property
//!   tests and fuzz targets.
//! - [`receiver`]: a local HTTP receiver for notifications that records what it is sent and
//!   answers 200, an error, or hangs.
//!
//! The most used items are re-exported here, so a test can `use testkit::*`.

pub mod bench;
pub mod client;
pub mod command;
pub mod config;
pub mod daemon;
pub mod etcd;
pub mod fake;
pub mod lease_api;
pub mod measure;
pub mod oracle;
pub mod paths;
pub mod receiver;
pub mod scenario;
pub mod seeded;
pub mod wait;

pub use command::{CommandExt, Run, apply, cfgroups, cfgroups_with_file_size_limit, signal};
pub use config::{
    AccountConfig, account, config_text, group, group_id, member_id, write_by_rename, write_config,
    write_in_place,
};
pub use fake::{Fake, TOKEN, fake, start_fake};
pub use nix::sys::signal::Signal;
pub use paths::{
    EXAMPLE_CONFIG, EXAMPLE_PRODUCTION, EXAMPLE_SNAPSHOT, EXAMPLE_STAGING, bin, example_state,
    repo_root,
};
pub use scenario::{
    Scenario, assert_every_deletion_was_journaled_first, assert_journal_covers,
    assert_only_planned_deleted, delete_count, delete_targets, groups_by_id, journal, scenario,
};
pub use seeded::{env_or, rng};
pub use wait::{WAIT, eventually, wait_until, within, within_blocking};
