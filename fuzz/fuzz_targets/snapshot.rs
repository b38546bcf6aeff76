//! Fuzzes the snapshot parser (JSON and YAML).
#![no_main]

use cfgroups::source::snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Snapshot::parse(text, "fuzz");
    }
});
