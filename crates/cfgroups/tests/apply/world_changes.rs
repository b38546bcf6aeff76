//! The world changing under `apply` between its listing and its DELETE, against the fake
//! API: the fake's arrival hook changes the state at the exact request where another admin
//! could. A group renamed to a protected name or given a namesake is not deleted; a group
//! someone else deleted is already absent; a members listing that fails, or answers 404 for a
//! group still there, deletes nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cfgroups_fake::{FakeGroup, FakeState, Fault, Method, RequestRecord, Route, World};
use tempfile::TempDir;
use testkit::*;

const NAME: &str = "Contractors 2024";

/// One account where `NAME` (group 1, two members) is declared absent by name, `Team`
/// present, and `SCIM-*` protected; the config and state directory to apply with.
struct Setup {
    fake: Fake,
    config: PathBuf,
    state: PathBuf,
    id: String,
    _dir: TempDir,
}

fn setup() -> Setup {
    let a = account(0);
    let doomed = group(0, 1, NAME, 2);
    let id = doomed.id.clone();
    let fake = Fake::start(
        FakeState::new()
            .with_group(&a, doomed)
            .with_group(&a, group(0, 2, "Team", 1)),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = AccountConfig::new(a).absent(NAME).present("Team");
    config.protect = vec!["SCIM-*".to_owned()];
    let config = write_config(dir.path(), &[config]);
    Setup {
        fake,
        config,
        state: dir.path().join("state"),
        id,
        _dir: dir,
    }
}

/// Runs `change` on the world once, as the first request matching `first` arrives.
fn once(
    setup: &Setup,
    first: fn(&RequestRecord) -> bool,
    change: impl Fn(&World) + Send + Sync + 'static,
) {
    let world = setup.fake.world();
    let done = Arc::new(AtomicBool::new(false));
    setup.fake.on_arrival(move |request| {
        if first(request) && !done.swap(true, Ordering::SeqCst) {
            change(&world);
        }
    });
}

/// The exact `?name=` query the executor sends before deleting a group matched by name.
fn name_query(request: &RequestRecord) -> bool {
    request.route == Route::List && request.path.contains("name=")
}

fn members_listing(request: &RequestRecord) -> bool {
    request.route == Route::Members && request.method == Method::GET
}

fn deletes(setup: &Setup) -> usize {
    setup.fake.requests().count(Method::DELETE, Route::Delete)
}

/// GETs of one group by id: the confirmations (a group matched by name is read by `?name=`).
fn gets(setup: &Setup) -> usize {
    setup.fake.requests().count(Method::GET, Route::Get)
}

/// Asserts the apply summary line begins with `counts`.
fn assert_applied(out: &Run, counts: &str) {
    assert!(
        out.stdout.contains(&format!("Apply: {counts}")),
        "{}",
        out.stdout
    );
}

fn names(setup: &Setup) -> Vec<String> {
    let mut names: Vec<String> = setup
        .fake
        .groups(account(0))
        .into_iter()
        .map(|g| g.name)
        .collect();
    names.sort();
    names
}

#[test]
fn a_group_renamed_to_a_protected_name_after_the_plan_is_not_deleted() {
    let setup = setup();
    let id = setup.id.clone();
    once(&setup, name_query, move |world| {
        assert!(world.rename_group(account(0), &id, "SCIM-Contractors"));
    });
    let out = apply(&setup.fake, &setup.config, &setup.state).run();
    assert!(
        out.stdout.contains("0 deleted") && out.stdout.contains("1 changed since planned"),
        "{}",
        out.stdout
    );
    assert_eq!(deletes(&setup), 0);
    assert_eq!(names(&setup), ["SCIM-Contractors", "Team"]);
}

#[test]
fn a_namesake_created_after_the_plan_stops_a_deletion_by_name() {
    let setup = setup();
    once(&setup, name_query, |world| {
        world.add_group(account(0), FakeGroup::new(group_id(0, 9).as_str(), NAME));
    });
    let out = apply(&setup.fake, &setup.config, &setup.state).run();
    assert!(
        out.stdout.contains("0 deleted") && out.stdout.contains("1 changed since planned"),
        "{}",
        out.stdout
    );
    assert_eq!(deletes(&setup), 0);
    assert_eq!(names(&setup), [NAME, NAME, "Team"]);
}

#[test]
fn a_group_deleted_by_someone_else_before_its_members_are_read_is_already_absent() {
    let setup = setup();
    let id = setup.id.clone();
    once(&setup, members_listing, move |world| {
        assert!(world.remove_group(account(0), &id));
    });
    let out = apply(&setup.fake, &setup.config, &setup.state).run();
    out.assert_code(0);
    assert_applied(&out, "0 deleted, 1 already absent, 0 failed");
    assert_eq!(deletes(&setup), 0);
    assert_eq!(gets(&setup), 1, "the 404 was confirmed by a GET");
    assert_eq!(names(&setup), ["Team"]);
}

#[test]
fn a_members_listing_that_answers_404_for_a_group_still_there_deletes_nothing() {
    let setup = setup();
    setup
        .fake
        .inject(Fault::Status(404).on(Route::Members).method(Method::GET));
    let out = apply(&setup.fake, &setup.config, &setup.state).run();
    out.assert_code(1);
    assert_applied(&out, "0 deleted, 0 already absent, 1 failed");
    assert!(
        out.stderr.contains("failed (cannot back up members"),
        "{}",
        out.stderr
    );
    assert_eq!(deletes(&setup), 0);
    assert_eq!(names(&setup), [NAME, "Team"]);
}

#[test]
fn a_members_listing_refused_deletes_nothing_and_asks_nothing_more() {
    let setup = setup();
    setup
        .fake
        .inject(Fault::Status(403).on(Route::Members).method(Method::GET));
    let out = apply(&setup.fake, &setup.config, &setup.state).run();
    out.assert_code(1);
    assert_applied(&out, "0 deleted, 0 already absent, 1 failed");
    assert_eq!(deletes(&setup), 0);
    assert_eq!(
        gets(&setup),
        0,
        "a refusal is not a 404: there is nothing to confirm"
    );
    assert_eq!(names(&setup), [NAME, "Team"]);
}
