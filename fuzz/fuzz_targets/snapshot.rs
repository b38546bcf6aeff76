//! Fuzzes the snapshot parser (JSON and YAML): whatever parses, written back as JSON and
//! parsed again, is the same snapshot, so nothing a snapshot says is lost or changed on the
//! way through cfgroups.
#![no_main]

use cfgroups::source::snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(snapshot) = Snapshot::parse(text, "fuzz") else {
        return;
    };
    let json = serde_json::to_string(&snapshot).expect("a parsed snapshot serializes");
    let again = Snapshot::parse(&json, "round trip").expect("its own JSON parses");
    assert_eq!(again, snapshot);
});
