//! Where things are: the repository root (where `examples/`, `cfgroups.schema.json` and
//! `systemd/` live), the example files in it, and the `cfgroups` binary under test.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cfgroups_fake::FakeState;

/// The example desired state, relative to the repository root (where [`crate::cfgroups`]
/// runs).
pub const EXAMPLE_CONFIG: &str = "examples/groups.yaml";
/// The example snapshot, relative to the repository root.
pub const EXAMPLE_SNAPSHOT: &str = "examples/snapshot.json";
/// The production account of the examples.
pub const EXAMPLE_PRODUCTION: &str = "023e105f4ecef8ad9ca31a8372d0c353";
/// The staging account of the examples.
pub const EXAMPLE_STAGING: &str = "9a7806061c88ada191ed06f989cc3dac";

/// The environment variable naming another `cfgroups` build to run (see [`bin`]).
pub const BENCH_BIN_VAR: &str = "CFGROUPS_BENCH_BIN";

/// The repository root: this crate lives in `crates/testkit`, two levels below it.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit is two levels below the repository root")
}

/// The groups of `examples/snapshot.json`, as the fake API's state.
pub fn example_state() -> FakeState {
    FakeState::load(&repo_root().join(EXAMPLE_SNAPSHOT)).expect("the example snapshot loads")
}

/// The `cfgroups` binary under test.
///
/// Found next to the running executable: cargo builds integration tests and benches into
/// `target/<profile>/deps/` and the package's binaries, which it builds first, into
/// `target/<profile>/`. (`CARGO_BIN_EXE_cfgroups` cannot be used: cargo sets it only while
/// compiling cfgroups' own tests and benches, not this crate.)
///
/// [`BENCH_BIN_VAR`] names another build instead, so a benchmark can measure the build
/// before a change on exactly the same data.
pub fn bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(other) = std::env::var_os(BENCH_BIN_VAR) {
            return PathBuf::from(other);
        }
        let exe = std::env::current_exe().expect("the path of the running test");
        let dir = exe.parent().expect("the test's directory");
        let profile = if dir.ends_with("deps") {
            dir.parent().expect("the profile directory")
        } else {
            dir
        };
        let bin = profile.join(format!("cfgroups{}", std::env::consts::EXE_SUFFIX));
        assert!(
            bin.is_file(),
            "{} is not built: run the tests of the cfgroups package (cargo test -p cfgroups)",
            bin.display()
        );
        bin
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_root_holds_the_examples_and_the_schema() {
        let root = repo_root();
        assert!(root.join(EXAMPLE_CONFIG).is_file());
        assert!(root.join("cfgroups.schema.json").is_file());
        assert!(root.join("systemd").is_dir());
        let state = example_state();
        assert!(!state.groups(EXAMPLE_PRODUCTION).is_empty());
        assert!(!state.groups(EXAMPLE_STAGING).is_empty());
    }
}
